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
pub(crate) mod devices;
pub(crate) mod error;
pub(crate) mod est;
pub(crate) mod guard;
pub(crate) mod incidents;
pub(crate) mod inventory;
pub(crate) mod lifecycle;
pub(crate) mod ops;
pub(crate) mod risk;
pub(crate) mod telemetry;
pub(crate) mod tokens;
pub(crate) mod updates;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{self};
use axum::routing::{get, post, put};

use crate::state::AppState;
use audit::*;
use campaigns::*;
use devices::*;
pub use error::ApiError;
use est::*;
use guard::guard;

/// The device port's routes: EST and the device API.
pub fn device_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(est_cacerts))
        .route("/.well-known/est/simpleenroll", post(est_simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est_simplereenroll))
        .route("/api/v1/devices/{id}", get(get_device))
        .route("/api/v1/devices/{id}/status", put(put_status))
        .route("/api/v1/devices/{id}/report-nonce", post(report_nonce))
        .route("/api/v1/devices/{id}/version", put(put_version))
        .route(
            "/api/v1/devices/{id}/telemetry",
            post(telemetry::post_telemetry),
        )
        .route("/director/{id}/{file}", get(updates::director_file))
        .route("/repo/{*path}", get(updates::image_file))
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The operator port's routes.
pub fn operator_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/session", get(ops::session))
        .route("/api/v1/reports/compliance", get(ops::compliance))
        .route("/api/v1/export/status", get(ops::export_status))
        .route("/api/v1/export/dead-letters", get(ops::dead_letters))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{id}", get(get_device).patch(patch_device))
        .route("/api/v1/devices/{id}/versions", get(list_versions))
        .route(
            "/api/v1/devices/{id}/telemetry",
            get(defender::list_telemetry),
        )
        .route(
            "/api/v1/devices/{id}/telemetry/reset",
            post(defender::reset_telemetry),
        )
        .route("/api/v1/devices/{id}/alerts", get(defender::device_alerts))
        .route("/api/v1/devices/{id}/identity", get(defender::identity))
        .route(
            "/api/v1/devices/{id}/identity/rebind",
            post(defender::rebind),
        )
        .route("/api/v1/alerts", get(defender::fleet_alerts))
        .route("/api/v1/alerts/{id}", get(alerts::get))
        .route("/api/v1/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route(
            "/api/v1/suppressions",
            get(defender::list_suppressions).post(defender::create_suppression),
        )
        .route(
            "/api/v1/suppressions/{id}",
            axum::routing::delete(defender::lift_suppression),
        )
        .route("/api/v1/defender/audit", get(defender::audit_checks))
        .route(
            "/api/v1/defender/baselines/{model}",
            get(baselines::show).post(baselines::train),
        )
        .route(
            "/api/v1/devices/{id}/timeline",
            get(defender::device_timeline),
        )
        .route("/api/v1/incidents", get(incidents::list))
        .route(
            "/api/v1/incidents/{id}",
            get(incidents::get).post(incidents::command),
        )
        .route("/api/v1/devices/{id}/revoke", post(revoke_device))
        .route("/api/v1/devices/{id}/reinstate", post(reinstate_device))
        .route(
            "/api/v1/devices/{id}/decommission",
            post(lifecycle::decommission),
        )
        .route("/api/v1/devices/{id}/release", post(lifecycle::release))
        .route(
            "/api/v1/enrolment-tokens",
            get(tokens::list_enrolment_tokens).post(create_enrolment_token),
        )
        .route(
            "/api/v1/enrolment-tokens/{id}/revoke",
            post(tokens::revoke_enrolment_token),
        )
        .route(
            "/api/v1/operators/tokens",
            get(tokens::list_operator_tokens),
        )
        .route(
            "/api/v1/operators/tokens/{id}/revoke",
            post(tokens::revoke_operator_token),
        )
        .route(
            "/api/v1/campaigns",
            get(list_campaigns).post(create_campaign),
        )
        .route("/api/v1/campaigns/{id}", get(get_campaign))
        .route("/api/v1/campaigns/{id}/{control}", post(control_campaign))
        .route("/api/v1/audit/head", get(audit_head))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/audit/entries", get(audit_entries))
        .route("/api/v1/audit/proof/inclusion", get(audit_inclusion))
        .route("/api/v1/audit/proof/consistency", get(audit_consistency))
        .route("/api/v1/devices/{id}/findings", get(risk::device_findings))
        .route(
            "/api/v1/risk/advisories/{id}/devices",
            get(risk::advisory_devices),
        )
        .route("/api/v1/inventory/models", get(inventory::list_models))
        .route(
            "/api/v1/inventory/models/{model}",
            put(inventory::put_model),
        )
        .route("/api/v1/inventory/vendors", get(inventory::list_vendors))
        .route(
            "/api/v1/inventory/vendors/{vendor}",
            put(inventory::put_vendor),
        )
        .route("/api/v1/inventory/support", get(inventory::support))
        .route("/api/v1/risk/devices", get(risk::ranked_devices))
        .merge(
            // Documents (SBOMs, advisories, VEX) are larger than commands: their own limit.
            Router::new()
                .route("/api/v1/risk/sboms/{*target}", put(risk::put_sbom))
                .route("/api/v1/risk/advisories", post(risk::post_advisory))
                .route("/api/v1/risk/vex", post(risk::post_vex))
                .layer(DefaultBodyLimit::max(
                    state.config.limits.max_document_bytes,
                )),
        )
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}
