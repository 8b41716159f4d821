//! A device's end of life and the way out of quarantine on the operator port:
//! - `POST /api/v1/devices/{id}/decommission` `{"reason": …}`: revokes its certificates
//!   (cessation of operation), sets it `decommissioned` (a policy then refuses every request it
//!   makes, so no update is offered to it), withdraws it from the unfinished campaigns it is in
//!   (so it neither fails a wave by never reporting nor holds one open), keeps its history, and
//!   leaves its name taken until an explicit re-registration (`re_register` on a new enrolment
//!   token);
//! - `POST /api/v1/devices/{id}/release` `{"reason": …}`: lifts a quarantine whatever became
//!   of the incident that set it (closed, or none), so a device is never stuck.
//!
//! Both need a reason, which goes into the audit entry with the operator's name.

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;
use serde::Deserialize;

use super::auth::{Auth, DevicePath};
use super::devices::revoke_live;
use super::error::ApiError;
use crate::authz::Target;
use crate::tokens::DECOMMISSIONED;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

fn reason(body: &Bytes) -> Result<String, ApiError> {
    let r: Reason = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"reason\": \"…\"}}: {e}")))?;
    let text = r.reason.trim();
    if text.is_empty() || text.len() > 500 {
        return Err(ApiError::BadRequest(
            "the reason must be 1 to 500 characters".into(),
        ));
    }
    Ok(text.to_owned())
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/decommission",
    tag = "devices",
    operation_id = "decommission",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/devices/{id}/decommission`.
pub(super) async fn decommission(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.decommission", &target).await?;
    let why = reason(&body)?;
    auth.check(&who, "device.decommission", &target).await?;
    let device = auth.state.store.device(id.as_str()).await?;
    if device.state == DECOMMISSIONED {
        return Err(ApiError::Conflict(format!(
            "device {} is decommissioned already",
            id.as_str()
        )));
    }
    let serials = revoke_live(
        &auth.state,
        &id,
        medsec_pki::RevocationReason::CessationOfOperation,
        None,
    )
    .await?;
    auth.state
        .store
        .set_device_state(id.as_str(), DECOMMISSIONED)
        .await?;
    let campaigns = crate::campaigns::withdraw_device(
        &auth.state.store,
        id.as_str(),
        &format!("decommissioned: {why}"),
        crate::state::now_ms(),
    )
    .await?;
    let mut e = auth.event(
        "lifecycle",
        &who.subject.label(),
        "device.decommission",
        &target.label(),
        "info",
    );
    e.detail = format!(
        "decommissioned ({why}); {} certificate(s) revoked: {}; withdrawn from {} campaign(s): {}",
        serials.len(),
        serials.join(", "),
        campaigns.len(),
        campaigns.join(", ")
    );
    auth.state.audit(e).await?;
    tracing::info!(device = id.as_str(), by = %who.subject.label(), certificates = serials.len(), "device decommissioned");
    Ok(Json(serde_json::json!({
        "device": id.as_str(), "state": DECOMMISSIONED, "revoked": serials, "reason": why,
        "withdrawn_from": campaigns,
    }))
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/release",
    tag = "devices",
    operation_id = "release",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/devices/{id}/release`.
pub(super) async fn release(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.release", &target).await?;
    let why = reason(&body)?;
    auth.check(&who, "device.release", &target).await?;
    let device = auth.state.store.device(id.as_str()).await?;
    if !device.quarantined {
        return Err(ApiError::Conflict(format!(
            "device {} is not quarantined",
            id.as_str()
        )));
    }
    auth.state
        .store
        .set_device_quarantined(id.as_str(), false)
        .await?;
    let mut e = auth.event(
        "incident",
        &who.subject.label(),
        "device.release",
        &target.label(),
        "info",
    );
    e.detail = format!("released from quarantine ({why})");
    auth.state.audit(e).await?;
    tracing::info!(device = id.as_str(), by = %who.subject.label(), "device released from quarantine");
    Ok(Json(serde_json::json!({
        "device": id.as_str(), "quarantined": false, "reason": why,
    }))
    .into_response())
}
