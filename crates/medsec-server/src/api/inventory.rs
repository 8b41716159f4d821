//! The inventory's own records over the operator API (the service is `crate::assets`):
//!
//! - `PUT /api/v1/inventory/models/{model}` and `PUT /api/v1/inventory/vendors/{vendor}`
//!   (`risk.write`): one record, checked, replacing the earlier one; audited.
//! - `GET /api/v1/inventory/models` and `GET /api/v1/inventory/vendors` (`risk.read`): every
//!   record, each model with its support state today and the devices of that model, each
//!   vendor with the expected documents (SBOM, MDS2, disclosure policy) missing per model.
//! - `GET /api/v1/inventory/support` (`risk.read`): the devices whose vendor no longer ships
//!   updates (escalate replacement), those whose support ends within 180 days, and those whose
//!   model has no profile.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medsec_store::Device;

use super::auth::Auth;
use super::error::ApiError;
use crate::Error;
use crate::authz::Target;
use crate::inventory::records::{Record, Registry, all_devices, put};
use crate::state::now_ms;

async fn put_record(
    auth: &Auth,
    body: &Bytes,
    record: Record,
    name: &str,
) -> Result<Response, ApiError> {
    let (state, conn) = (&*auth.state, &auth.conn);
    let what = match record {
        Record::Model => "model profile",
        Record::Vendor => "vendor record",
    };
    let (who, _, _) = super::risk::upload(auth, body, what).await?;
    let stored = put(&state.store, record, name, body, now_ms())
        .await
        .map_err(|e| match e {
            Error::Config { reason } => ApiError::BadRequest(reason),
            other => ApiError::Internal(other.to_string()),
        })?;
    let resource = match record {
        Record::Model => format!("Model::{name:?}"),
        Record::Vendor => format!("Vendor::{name:?}"),
    };
    state
        .audit(super::risk::audit_write(
            conn,
            &who,
            &resource,
            format!("{what} stored"),
        ))
        .await?;
    let value: serde_json::Value =
        serde_json::from_str(&stored).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::OK, Json(value)).into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/inventory/models/{model}",
    tag = "inventory",
    operation_id = "put_model",
    params(("model" = String, Path, description = "The model.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `PUT /api/v1/inventory/models/{model}`.
pub(super) async fn put_model(
    auth: Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_record(&auth, &body, Record::Model, &name).await
}

#[utoipa::path(
    put,
    path = "/api/v1/inventory/vendors/{vendor}",
    tag = "inventory",
    operation_id = "put_vendor",
    params(("vendor" = String, Path, description = "The vendor.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `PUT /api/v1/inventory/vendors/{vendor}`.
pub(super) async fn put_vendor(
    auth: Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    put_record(&auth, &body, Record::Vendor, &name).await
}

async fn read_prologue(auth: &Auth) -> Result<(Registry, Vec<Device>), ApiError> {
    auth.authorize("risk.read", &Target::Fleet).await?;
    let state = &auth.state;
    let registry = Registry::read(&state.store).await?;
    let devices = all_devices(&state.store)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((registry, devices))
}

#[utoipa::path(
    get,
    path = "/api/v1/inventory/models",
    tag = "inventory",
    operation_id = "list_models",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/inventory/models`.
pub(super) async fn list_models(auth: Auth) -> Result<Response, ApiError> {
    let (registry, devices) = read_prologue(&auth).await?;
    let now = now_ms();
    let models: Vec<serde_json::Value> = registry
        .models
        .iter()
        .map(|(name, profile)| {
            serde_json::json!({
                "model": name,
                "profile": profile,
                "support": registry.support(name, now),
                "devices": devices.iter().filter(|d| &d.model == name).count(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "models": models })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/inventory/vendors",
    tag = "inventory",
    operation_id = "list_vendors",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/inventory/vendors`.
pub(super) async fn list_vendors(auth: Auth) -> Result<Response, ApiError> {
    let (registry, _) = read_prologue(&auth).await?;
    Ok(Json(serde_json::json!({ "vendors": registry.vendor_view() })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/inventory/support",
    tag = "inventory",
    operation_id = "support",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/inventory/support`.
pub(super) async fn support(auth: Auth) -> Result<Response, ApiError> {
    let (registry, devices) = read_prologue(&auth).await?;
    Ok(Json(registry.support_report(&devices, now_ms())).into_response())
}
