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
pub(super) struct EnrolmentTokensQuery {
    device: Option<String>,
}

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
