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

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

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

/// `GET /api/v1/reports/compliance`: the report (JSON and its HTML page) and the bundle, the
/// same bytes `medsec report compliance --data-dir` writes on the server host.
pub(super) async fn compliance(
    auth: Auth,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    auth.authorize("report.read", &Target::Fleet).await?;
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
pub(super) struct DeadLetterQuery {
    /// Only this sink's.
    sink: Option<String>,
    /// Most letters (1 to 1000, default 100).
    limit: Option<u32>,
}

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
