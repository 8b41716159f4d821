//! Taking credentials back: listing and revoking operator tokens and enrolment tokens. A
//! revocation is audited and holds from the token's next use on (every request reads the
//! token's record; nothing caches it).

use axum::Json;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use medsec_store::prelude::*;
use serde::Deserialize;

use crate::authz::Target;
use crate::state::now_ms;
use crate::tokens;

use super::auth::Auth;
use super::error::ApiError;

#[utoipa::path(
    get,
    path = "/api/v1/operators/tokens",
    tag = "tokens",
    operation_id = "list_operator_tokens",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Operator tokens (never their secrets) with their roles and state.
pub(super) async fn list_operator_tokens(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth
        .authorize("operator.token.list", &Target::Fleet)
        .await?;
    let now = now_ms();
    let list: Vec<_> = auth
        .state
        .store
        .operator_tokens()
        .await?
        .iter()
        .map(|t| tokens::operator_view(t, now))
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/operators/tokens/{id}/revoke",
    tag = "tokens",
    operation_id = "revoke_operator_token",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Revokes an operator token: refused from its next request on.
pub(super) async fn revoke_operator_token(
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = auth
        .authorize("operator.token.revoke", &Target::Fleet)
        .await?;
    let now = now_ms();
    let token = tokens::revoke_operator_token(&auth.state.store, &id, now).await?;
    let mut e = auth.event(
        "token",
        &who.subject.label(),
        "operator.token.revoke",
        &format!("Operator::{:?}", token.name),
        "info",
    );
    e.detail = format!("operator token {id} revoked");
    auth.state.audit(e).await?;
    Ok(Json(tokens::operator_view(&token, now)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EnrolmentTokensQuery {
    device: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/enrolment-tokens",
    tag = "tokens",
    operation_id = "list_enrolment_tokens",
    params(EnrolmentTokensQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Enrolment tokens (never their secrets), of one device with `device=`.
pub(super) async fn list_enrolment_tokens(
    auth: Auth,
    Query(q): Query<EnrolmentTokensQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("token.list", &Target::Fleet).await?;
    let now = now_ms();
    let list: Vec<_> = auth
        .state
        .store
        .enrolment_tokens(q.device.as_deref())
        .await?
        .iter()
        .map(|t| tokens::enrolment_view(t, now))
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/enrolment-tokens/{id}/revoke",
    tag = "tokens",
    operation_id = "revoke_enrolment_token",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Revokes an unused enrolment token.
pub(super) async fn revoke_enrolment_token(
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = auth.authorize("token.revoke", &Target::Fleet).await?;
    let now = now_ms();
    let token = tokens::revoke_enrolment_token(&auth.state.store, &id, now).await?;
    let mut e = auth.event(
        "token",
        &who.subject.label(),
        "token.revoke",
        &format!("Device::{:?}", token.device_id),
        "info",
    );
    e.detail = format!("enrolment token {id} revoked");
    auth.state.audit(e).await?;
    Ok(Json(tokens::enrolment_view(&token, now)).into_response())
}
