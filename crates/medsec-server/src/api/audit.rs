//! The audit log over the operator API: the signed head, a full verification, entries, and
//! RFC 9162 inclusion and consistency proofs.

use axum::Json;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;
use serde::Deserialize;

use crate::authz::Target;

use super::auth::Auth;
use super::error::ApiError;

#[utoipa::path(
    get,
    path = "/api/v1/audit/head",
    tag = "audit",
    operation_id = "audit_head",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// The newest signed tree head of the audit log (null while it is empty).
pub(super) async fn audit_head(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let head = crate::audit_log::latest_head(&auth.state.store)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(head).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    operation_id = "audit_verify",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// The server's verification of the whole audit log: every entry and signed head.
pub(super) async fn audit_verify(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let key = crate::audit_log::read_public_key(
        &crate::DataDir::new(&auth.state.config.data_dir).audit_pub(),
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = crate::audit_log::verify(&auth.state.store, &key)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EntriesQuery {
    #[serde(default)]
    from: i64,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/entries",
    tag = "audit",
    operation_id = "audit_entries",
    params(EntriesQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// A page of audit entries from sequence number `from`, oldest first, as stored (each entry is
/// also returned parsed, or with `"unreadable": true` if a row no longer parses).
pub(super) async fn audit_entries(
    auth: Auth,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let rows = auth
        .state
        .store
        .audit_entries(q.from.max(0), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.entry)
                .unwrap_or_else(|_| serde_json::json!({ "seq": r.seq, "unreadable": true }))
        })
        .collect();
    Ok(Json(entries).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InclusionQuery {
    seq: u64,
    tree_size: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/proof/inclusion",
    tag = "audit",
    operation_id = "audit_inclusion",
    params(InclusionQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Inclusion proof of one entry in a signed head's tree (default: the latest head).
pub(super) async fn audit_inclusion(
    auth: Auth,
    Query(q): Query<InclusionQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let proof = crate::audit_log::prove_inclusion(&auth.state.store, q.seq, q.tree_size)
        .await
        .map_err(proof_error)?;
    Ok(Json(proof).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/proof/consistency",
    tag = "audit",
    operation_id = "audit_consistency",
    params(ConsistencyQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Consistency proof between two signed heads (default `to`: the latest).
pub(super) async fn audit_consistency(
    auth: Auth,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let proof = crate::audit_log::prove_consistency(&auth.state.store, q.from, q.to)
        .await
        .map_err(proof_error)?;
    Ok(Json(proof).into_response())
}

/// A proof request that names no signed head or entry is the caller's mistake.
fn proof_error(e: crate::Error) -> ApiError {
    match e {
        crate::Error::Audit { reason } => ApiError::BadRequest(reason),
        other => ApiError::Internal(other.to_string()),
    }
}
