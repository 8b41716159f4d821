//! Update campaigns: create, list, show and control (start, pause, resume, halt, cancel).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;
use serde::Deserialize;

use crate::authz::Target;
use crate::campaigns;

use super::auth::Auth;
use super::error::{ApiError, bad_request};
use crate::state::now_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignRequest {
    spec: medsec_campaign::Spec,
    selection: campaigns::Selection,
}

#[utoipa::path(
    post,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    operation_id = "create_campaign",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Plans a campaign: `{"spec": …, "selection": …}` (campaigns.md); it starts with `/start`.
pub(super) async fn create_campaign(auth: Auth, body: Bytes) -> Result<Response, ApiError> {
    let who = auth.caller("campaign.create", &Target::Fleet).await?;
    let req: CampaignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("campaign request: {e}")))?;
    auth.check(&who, "campaign.create", &Target::Fleet).await?;
    let by = who.subject.label();
    let now = now_ms();
    let c = campaigns::create(
        &auth.state.store,
        auth.state.director.image(),
        req.spec,
        &req.selection,
        auth.state.config.limits.max_campaign_devices,
        &by,
        now,
    )
    .await
    .map_err(bad_request)?;
    let row = auth.state.store.campaign(&c.spec().name).await?;
    let mut e = auth.event(
        "campaign",
        &by,
        "campaign.create",
        &format!("Campaign::{:?}", row.id),
        "info",
    );
    e.detail = format!(
        "release {} (counter {}), {} device(s) in {} wave(s)",
        c.spec().release.version,
        c.spec().release.release_counter,
        c.devices().count(),
        c.waves().len()
    );
    auth.state.audit(e).await?;
    Ok((StatusCode::CREATED, Json(campaigns::view(&row, &c, false))).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/campaigns/preview",
    tag = "campaigns",
    operation_id = "preview_campaign",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "The campaign as it would be planned.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// The campaign a `POST /api/v1/campaigns` body would plan — its devices, waves and windows,
/// checked the same way (selection, release in the image repository) — without storing it
/// (`campaign.create`: only those who may create a campaign see its plan).
pub(super) async fn preview_campaign(auth: Auth, body: Bytes) -> Result<Response, ApiError> {
    let who = auth.caller("campaign.create", &Target::Fleet).await?;
    let req: CampaignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("campaign request: {e}")))?;
    auth.check(&who, "campaign.create", &Target::Fleet).await?;
    let (c, members) = campaigns::plan(
        &auth.state.store,
        auth.state.director.image(),
        req.spec,
        &req.selection,
        auth.state.config.limits.max_campaign_devices,
    )
    .await
    .map_err(bad_request)?;
    let mut sites = std::collections::BTreeMap::<&str, usize>::new();
    for m in &members {
        *sites.entry(m.site.as_str()).or_default() += 1;
    }
    let row = medsec_store::CampaignRow {
        id: c.spec().name.clone(),
        status: c.status().name().to_owned(),
        state: String::new(),
        version: 0,
        created_by: who.subject.label(),
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
    };
    let mut v = campaigns::view(&row, &c, false);
    if let Some(map) = v.as_object_mut() {
        map.insert("devices_selected".into(), members.len().into());
        map.insert("sites".into(), serde_json::json!(sites));
    }
    Ok(Json(v).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    operation_id = "list_campaigns",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Every update campaign with its status and wave progress.
pub(super) async fn list_campaigns(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("campaign.read", &Target::Fleet).await?;
    let mut out = Vec::new();
    for row in auth.state.store.campaigns().await? {
        let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(campaigns::view(&row, &c, false));
    }
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CampaignQuery {
    #[serde(default)]
    devices: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{id}",
    tag = "campaigns",
    operation_id = "get_campaign",
    params(("id" = String, Path, description = "The id."), CampaignQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// One campaign, with each device's progress when `devices=true`.
pub(super) async fn get_campaign(
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("campaign.read", &Target::Fleet).await?;
    let row = auth.state.store.campaign(&id).await?;
    let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(campaigns::view(&row, &c, q.devices)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/campaigns/{id}/{control}",
    tag = "campaigns",
    operation_id = "control_campaign",
    params(("id" = String, Path, description = "The id."), ("control" = String, Path, description = "The control.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `start`, `pause`, `resume` or `abort` (see `campaigns::Control` for the actions they need).
pub(super) async fn control_campaign(
    auth: Auth,
    Path((id, control)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let control = campaigns::Control::from_name(&control).ok_or(ApiError::NotFound)?;
    let action = control.action();
    let who = auth.authorize(action, &Target::Fleet).await?;
    let c = campaigns::control(&auth.state.store, &id, control, now_ms())
        .await
        .map_err(|e| match e {
            crate::Error::Config { reason } => ApiError::Conflict(reason),
            other => bad_request(other),
        })?;
    let row = auth.state.store.campaign(&id).await?;
    let mut e = auth.event(
        "campaign",
        &who.subject.label(),
        &format!("campaign.{}", control.name()),
        &format!("Campaign::{id:?}"),
        "info",
    );
    e.detail = format!("now {}", c.status().name());
    auth.state.audit(e).await?;
    Ok(Json(campaigns::view(&row, &c, false)).into_response())
}
