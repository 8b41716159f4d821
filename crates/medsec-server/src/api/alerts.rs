//! One alert, and an operator's acknowledgement of it: `GET /api/v1/alerts/{id}` and
//! `POST /api/v1/alerts/{id}/acknowledge` `{"note": …}` (audited, once per alert). Listings
//! show each alert's acknowledgement (`acknowledged`: who, when, the note; null if none).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;
use medsec_store::{AlertAck, AlertRow};
use serde::Deserialize;

use super::auth::Auth;
use super::defender::alerts_json;
use super::error::ApiError;
use crate::authz::Target;
use crate::state::{AppState, now_ms};

/// The alerts as listed, each with its acknowledgement (one range query for the page).
pub(super) async fn with_acks(
    state: &AppState,
    rows: &[AlertRow],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut shown = alerts_json(rows);
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.id).min(),
        rows.iter().map(|r| r.id).max(),
    ) else {
        return Ok(shown);
    };
    let acks = state.store.alert_acks(first, last).await?;
    for (row, v) in rows.iter().zip(shown.iter_mut()) {
        let ack = acks.iter().find(|a| a.alert_id == row.id);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "acknowledged".into(),
                ack.map_or(serde_json::Value::Null, |a| {
                    serde_json::json!({"by": a.acknowledged_by, "at_ms": a.at_ms, "note": a.note})
                }),
            );
        }
    }
    Ok(shown)
}

async fn one(state: &AppState, id: i64) -> Result<serde_json::Value, ApiError> {
    let row = state.store.alert(id).await?;
    with_acks(state, std::slice::from_ref(&row))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "defender",
    operation_id = "alerts_get",
    params(("id" = i64, Path, description = "The alert's id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/alerts/{id}`.
pub(super) async fn get(auth: Auth, Path(id): Path<i64>) -> Result<Response, ApiError> {
    auth.authorize("device.list", &Target::Fleet).await?;
    Ok(Json(one(&auth.state, id).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(default)]
    note: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/acknowledge",
    tag = "defender",
    operation_id = "acknowledge",
    params(("id" = i64, Path, description = "The alert's id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/alerts/{id}/acknowledge`.
pub(super) async fn acknowledge(
    auth: Auth,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = auth.caller("alert.acknowledge", &Target::Fleet).await?;
    let req: AckRequest = if body.is_empty() {
        AckRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("expected {{\"note\": \"…\"}}: {e}")))?
    };
    if req.note.len() > 500 {
        return Err(ApiError::BadRequest(
            "the note is over 500 characters".into(),
        ));
    }
    auth.check(&who, "alert.acknowledge", &Target::Fleet)
        .await?;
    let by = who.subject.label();
    match auth
        .state
        .store
        .acknowledge_alert(&AlertAck {
            alert_id: id,
            acknowledged_by: by.clone(),
            at_ms: now_ms(),
            note: req.note.trim().to_owned(),
        })
        .await
    {
        Ok(()) => {}
        Err(medsec_store::Error::WrongState { .. }) => {
            return Err(ApiError::Conflict(format!(
                "alert {id} is acknowledged already"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let mut e = auth.event(
        "alert",
        &by,
        "alert.acknowledge",
        &format!("Alert::\"{id}\""),
        "info",
    );
    e.detail = if req.note.trim().is_empty() {
        "acknowledged".into()
    } else {
        format!("acknowledged: {}", req.note.trim())
    };
    auth.state.audit(e).await?;
    Ok(Json(one(&auth.state, id).await?).into_response())
}
