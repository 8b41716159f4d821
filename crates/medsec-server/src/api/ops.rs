//! The operations routes of the operator port: liveness and readiness for load balancers (no
//! credential: a probe carries none, and the answers name no device), Prometheus metrics (an
//! operator token with `metrics.read`, e.g. the `monitor` role), who the caller is (for
//! `medsec login`), and the compliance report for the remote CLI.

use axum::Json;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use medsec_store::prelude::*;

use super::auth::Auth;
use super::error::ApiError;
use crate::authz::{Subject, Target};

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process answers.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(())
)]
/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses((status = 200, description = "Every check passed.", body = serde_json::Value), (status = 503, description = "A check failed; each is named.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(())
)]
/// `GET /readyz`: 200 when every check passes, 503 naming the failing ones otherwise.
pub(super) async fn readyz(auth: Auth) -> Response {
    let readiness = crate::health::readiness(&auth.state).await;
    let status = if readiness.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(auth: Auth) -> Result<Response, ApiError> {
    auth.authorize("metrics.read", &Target::Fleet).await?;
    let text = crate::health::scrape(&auth.state).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Who the caller is, as the server resolved the token.
#[derive(Serialize)]
struct Session {
    /// The operator's name (the token's).
    name: String,
    /// Their roles.
    roles: Vec<String>,
    /// The server's version.
    server_version: &'static str,
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "operations",
    operation_id = "session",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/session`: the caller's name and roles (what `medsec login` checks and shows).
pub(super) async fn session(auth: Auth) -> Result<Response, ApiError> {
    let who = auth.authorize("session.read", &Target::Fleet).await?;
    let (name, roles) = match who.subject {
        Subject::Operator { name, roles } => (name, roles),
        _ => return Err(ApiError::Forbidden),
    };
    Ok(Json(Session {
        name,
        roles,
        server_version: env!("CARGO_PKG_VERSION"),
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// The moment the report is about, in Unix milliseconds (default: the newest signed head).
    as_of_ms: Option<i64>,
}

/// One file of the SBOM + VEX bundle.
#[derive(Serialize)]
struct BundleFile {
    name: String,
    /// The file's JSON text.
    content: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/compliance",
    tag = "operations",
    operation_id = "compliance",
    params(ReportQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/reports/compliance`: the report (JSON and its HTML page) and the bundle, the
/// same bytes `medsec report compliance --data-dir` writes on the server host.
pub(super) async fn compliance(
    auth: Auth,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    auth.authorize("report.read", &Target::Fleet).await?;
    if let Some(t) = q.as_of_ms
        && !(0..=crate::compliance::LATEST_AS_OF_MS).contains(&t)
    {
        return Err(ApiError::BadRequest(format!(
            "as_of_ms {t} is not a time between 1970 and 9999"
        )));
    }
    let state = &auth.state;
    let key = crate::audit_log::read_public_key(
        &crate::DataDir::new(&state.config.data_dir).audit_pub(),
    )?;
    let catalogue = medsec_risk::compliance::catalogue()
        .map_err(|e| ApiError::Internal(format!("the control catalogue: {e}")))?;
    let names = crate::vendor_names(&state.config)?;
    let output = crate::compliance::gather(
        &state.store,
        &catalogue,
        &state.policies,
        &key,
        q.as_of_ms,
        &names,
    )
    .await?;
    let report = output
        .report
        .to_json()
        .map_err(|e| ApiError::Internal(format!("the report: {e}")))?;
    let bundle = output
        .bundle
        .into_iter()
        .map(|(name, bytes)| {
            String::from_utf8(bytes)
                .map(|content| BundleFile { name, content })
                .map_err(|e| ApiError::Internal(format!("bundle file: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({
        // The report's own JSON text, so the CLI writes the same bytes as on the server host.
        "report_json": report,
        "html": output.report.to_html(),
        "bundle": bundle,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeadLetterQuery {
    /// Only this sink's.
    sink: Option<String>,
    /// Most letters (1 to 1000, default 100).
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/export/dead-letters",
    tag = "operations",
    operation_id = "dead_letters",
    params(DeadLetterQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/export/dead-letters`: events a sink refused for good, oldest first.
pub(super) async fn dead_letters(
    auth: Auth,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Response, ApiError> {
    auth.authorize("audit.read", &Target::AuditLog).await?;
    let letters = auth
        .state
        .store
        .export_dead_letters(q.sink.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(letters).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/export/status",
    tag = "operations",
    operation_id = "export_status",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/export/status`: each configured sink's positions and how far behind the
/// audit log it is.
pub(super) async fn export_status(auth: Auth) -> Result<Response, ApiError> {
    auth.authorize("audit.read", &Target::AuditLog).await?;
    let store = &auth.state.store;
    let head = store
        .audit_latest_head()
        .await?
        .map_or(-1, |h| h.tree_size - 1);
    let mut sinks = Vec::new();
    for sink in &auth.state.config.export {
        let audit = store.export_cursor(&sink.name, "audit").await?;
        let alerts = store.export_cursor(&sink.name, "alerts").await?;
        let dead = store
            .export_dead_letters(Some(&sink.name), 1000)
            .await?
            .len();
        sinks.push(serde_json::json!({
            "name": sink.name, "kind": sink.kind, "kinds": sink.kinds,
            "min_severity": sink.min_severity,
            "audit_position": audit, "alerts_position": alerts,
            "audit_behind": audit.map(|p| head - p),
            "dead_letters": dead,
        }));
    }
    Ok(Json(sinks).into_response())
}
