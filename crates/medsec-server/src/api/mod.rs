//! The HTTP side: one router per port, each built by one function, sharing [`AppState`].
//!
//! Every route resolves its caller (a device from the connection's verified certificate, an
//! operator from a bearer token), asks Cedar, writes the decision to the audit log, and only then
//! acts. Refusals — no credential, an unknown or expired token, a denied request, a body over the
//! limit, a burst over the rate limit — are audited too.
//!
//! This module holds the route tables; `error.rs` the error answers, `auth.rs` the caller and the
//! Cedar call, `guard.rs` the limits, and one file per resource the handlers.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod baselines;
pub(crate) mod campaigns;
pub(crate) mod defender;
pub mod device_port;
pub(crate) mod devices;
pub(crate) mod error;
pub(crate) mod est;
pub(crate) mod guard;
pub(crate) mod incidents;
pub(crate) mod inventory;
pub(crate) mod lifecycle;
pub mod openapi;
pub(crate) mod ops;
pub(crate) mod releases;
pub(crate) mod risk;
pub(crate) mod telemetry;
pub(crate) mod tokens;
pub(crate) mod updates;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{self};
use axum::routing::put;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use audit::*;
use campaigns::*;
use devices::*;
pub use error::ApiError;
use guard::guard;

/// The device port's routes: EST and the device API, each with its OpenAPI operation
/// (`device_port.rs`).
pub fn device_router(state: Arc<AppState>) -> Router {
    let (router, _) = device_port::routes().split_for_parts();
    router
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The operator port's routes, each with its OpenAPI operation (see [`openapi`]); documents
/// (SBOMs, advisories, VEX) get `document_limit` as their body limit.
pub(crate) fn operator_routes(document_limit: usize) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(openapi_device_json))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::session))
        .routes(routes!(ops::compliance))
        .routes(routes!(ops::export_status))
        .routes(routes!(ops::dead_letters))
        .routes(routes!(list_devices))
        .routes(routes!(fleet_summary))
        .routes(routes!(get_device, patch_device))
        .routes(routes!(list_versions))
        .routes(routes!(defender::list_telemetry))
        .routes(routes!(defender::reset_telemetry))
        .routes(routes!(defender::device_alerts))
        .routes(routes!(defender::identity))
        .routes(routes!(defender::rebind))
        .routes(routes!(defender::fleet_alerts))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(
            defender::list_suppressions,
            defender::create_suppression
        ))
        .routes(routes!(defender::lift_suppression))
        .routes(routes!(defender::audit_checks))
        .routes(routes!(baselines::show, baselines::train))
        .routes(routes!(defender::device_timeline))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::get, incidents::command))
        .routes(routes!(revoke_device))
        .routes(routes!(reinstate_device))
        .routes(routes!(lifecycle::decommission))
        .routes(routes!(lifecycle::release))
        .routes(routes!(
            tokens::list_enrolment_tokens,
            create_enrolment_token
        ))
        .routes(routes!(tokens::revoke_enrolment_token))
        .routes(routes!(tokens::list_operator_tokens))
        .routes(routes!(tokens::revoke_operator_token))
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(preview_campaign))
        .routes(routes!(releases::list_releases))
        .routes(routes!(get_campaign))
        .routes(routes!(control_campaign))
        .routes(routes!(audit_head))
        .routes(routes!(audit_verify))
        .routes(routes!(audit_entries))
        .routes(routes!(audit_inclusion))
        .routes(routes!(audit_consistency))
        .routes(routes!(risk::device_findings))
        .routes(routes!(risk::advisory_devices))
        .routes(routes!(inventory::list_models))
        .routes(routes!(inventory::put_model))
        .routes(routes!(inventory::list_vendors))
        .routes(routes!(inventory::put_vendor))
        .routes(routes!(inventory::support))
        .routes(routes!(risk::ranked_devices))
        .routes(routes!(risk::risk_summary))
        .merge(
            // Documents (SBOMs, advisories, VEX) are larger than commands: their own limit.
            OpenApiRouter::new()
                .route("/api/v1/risk/sboms/{*target}", put(risk::put_sbom))
                .routes(routes!(risk::post_advisory))
                .routes(routes!(risk::post_vex))
                .layer(DefaultBodyLimit::max(document_limit)),
        )
}

/// The operator port's router.
pub fn operator_router(state: Arc<AppState>) -> Router {
    let (router, _) = operator_routes(state.config.limits.max_document_bytes).split_for_parts();
    // The web console calls the API in-process, as the signed-in person, past the guard (its
    // own request passed it).
    let router = if state.config.console.enabled {
        let internal = router
            .clone()
            .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
            .with_state(state.clone());
        router.merge(crate::console::router(
            internal,
            state.config.limits.max_document_bytes,
        ))
    } else {
        router
    };
    router
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// `GET /api/v1/openapi/device.json`: the device port's OpenAPI 3.1 description (any
/// operator; devices do not need it).
#[utoipa::path(
    get,
    path = "/api/v1/openapi/device.json",
    tag = "operations",
    operation_id = "openapi_device",
    responses((status = 200, description = "The device port's OpenAPI description.", body = serde_json::Value), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
async fn openapi_device_json(auth: auth::Auth) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    auth.authorize("session.read", &crate::authz::Target::Fleet)
        .await?;
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(device_port::document).clone();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI description.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/openapi.json`: this API's OpenAPI 3.1 description (any operator).
async fn openapi_json(auth: auth::Auth) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    auth.authorize("session.read", &crate::authz::Target::Fleet)
        .await?;
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(openapi::document).clone();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}
