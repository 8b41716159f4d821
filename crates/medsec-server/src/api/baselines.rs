//! Learned baselines on the operator port (the service is `crate::baselines`):
//!
//! - `POST /api/v1/defender/baselines/{model}` (`baseline.train`): trains a new version from
//!   the model's telemetry since `since_ms` (default: the last hour), leaving out batches that
//!   raised an alert; audited.
//! - `GET /api/v1/defender/baselines/{model}` (`incident.read`): the version in force, its
//!   signature, and whether it verifies.

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;

use super::auth::Auth;
use super::error::{ApiError, bad_request};
use crate::authz::Target;
use crate::baselines::{TrainRequest, check_model};
use crate::state::now_ms;

#[utoipa::path(
    post,
    path = "/api/v1/defender/baselines/{model}",
    tag = "defender",
    operation_id = "train",
    params(("model" = String, Path, description = "The model.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/defender/baselines/{model}`: trains, signs and stores the next version.
pub(super) async fn train(
    auth: Auth,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = auth.authorize("baseline.train", &Target::Fleet).await?;
    let req: TrainRequest = if body.is_empty() {
        TrainRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("baseline request: {e}")))?
    };
    let by = who.subject.label();
    let t = auth
        .state
        .baselines
        .train(&auth.state.store, &model, &req, &by, now_ms())
        .await
        .map_err(bad_request)?;
    let (baseline, version, since, skipped, trees) =
        (&t.baseline, t.version, t.since, t.skipped, t.trees);
    let metrics: Vec<&String> = baseline.metrics.keys().collect();
    let mut e = auth.event(
        "defender",
        &by,
        "baseline.train",
        &format!("Model::{model:?}"),
        "info",
    );
    e.detail = format!(
        "v{version}: {} flows and metrics {metrics:?} from {} devices since {since} \
         ({skipped} alerted batches left out); {} devices with their own baseline; forest of \
         {} trees",
        baseline.flow_rows,
        baseline.devices,
        baseline.per_device.len(),
        baseline.forest.as_ref().map_or(0, |_| trees)
    );
    auth.state.audit(e).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "model": model,
            "version": version,
            "devices": baseline.devices,
            "flow_rows": baseline.flow_rows,
            "metrics": metrics,
            "devices_with_own_baseline": baseline.per_device.len(),
            "forest": baseline.forest.as_ref().map(|f| serde_json::json!({
                "trees": trees,
                "cut": f.cut,
            })),
            "trained_from_ms": since,
            "trained_to_ms": baseline.trained_to_ms,
            "alerted_batches_left_out": skipped,
        })),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/defender/baselines/{model}",
    tag = "defender",
    operation_id = "show",
    params(("model" = String, Path, description = "The model.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/defender/baselines/{model}`: the newest version, and whether it verifies.
pub(super) async fn show(auth: Auth, Path(model): Path<String>) -> Result<Response, ApiError> {
    let _who = auth.authorize("incident.read", &Target::Fleet).await?;
    check_model(&model).map_err(bad_request)?;
    let row = auth
        .state
        .store
        .latest_baseline(&model)
        .await?
        .ok_or(ApiError::NotFound)?;
    let verified = auth.state.baselines.verify(&row);
    Ok(Json(serde_json::json!({
        "model": row.model,
        "version": row.version,
        "created_at_ms": row.created_at_ms,
        "created_by": row.created_by,
        "signature": row.signature,
        "verified": verified.is_ok(),
        "problem": verified.as_ref().err(),
        "baseline": serde_json::from_str::<serde_json::Value>(&row.body).ok(),
    }))
    .into_response())
}
