//! Update campaigns: create, list, show and control (start, pause, resume, halt, cancel).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use medsec_store::Store as _;
use serde::Deserialize;

use crate::audit_log::event;
use crate::authz::Target;
use crate::campaigns;

use super::auth::{authorize, caller};
use super::error::{ApiError, bad_request};
use crate::state::{AppState, Conn, now_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignRequest {
    spec: medsec_campaign::Spec,
    selection: campaigns::Selection,
}

pub(super) async fn create_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.create", &Target::Fleet).await?;
    let req: CampaignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("campaign request: {e}")))?;
    authorize(&state, &conn, &who, "campaign.create", &Target::Fleet).await?;
    let by = who.subject.label();
    let now = now_ms();
    let c = campaigns::create(
        &state.store,
        state.director.image(),
        req.spec,
        &req.selection,
        state.config.limits.max_campaign_devices,
        &by,
        now,
    )
    .await
    .map_err(bad_request)?;
    let row = state.store.campaign(&c.spec().name).await?;
    let mut e = event(
        "campaign",
        &by,
        "campaign.create",
        &format!("Campaign::{:?}", row.id),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "release {} (counter {}), {} device(s) in {} wave(s)",
        c.spec().release.version,
        c.spec().release.release_counter,
        c.devices().count(),
        c.waves().len()
    );
    state.audit(e).await?;
    Ok((StatusCode::CREATED, Json(campaigns::view(&row, &c, false))).into_response())
}

pub(super) async fn list_campaigns(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.read", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "campaign.read", &Target::Fleet).await?;
    let mut out = Vec::new();
    for row in state.store.campaigns().await? {
        let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(campaigns::view(&row, &c, false));
    }
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignQuery {
    #[serde(default)]
    devices: bool,
}

pub(super) async fn get_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.read", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "campaign.read", &Target::Fleet).await?;
    let row = state.store.campaign(&id).await?;
    let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(campaigns::view(&row, &c, q.devices)).into_response())
}

/// `start`, `pause`, `resume` or `abort` (see `campaigns::Control` for the actions they need).
pub(super) async fn control_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path((id, control)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let control = campaigns::Control::from_name(&control).ok_or(ApiError::NotFound)?;
    let action = control.action();
    let who = caller(&state, &conn, &headers, action, &Target::Fleet).await?;
    authorize(&state, &conn, &who, action, &Target::Fleet).await?;
    let c = campaigns::control(&state.store, &id, control, now_ms())
        .await
        .map_err(|e| match e {
            crate::Error::Config { reason } => ApiError::Conflict(reason),
            other => bad_request(other),
        })?;
    let row = state.store.campaign(&id).await?;
    let mut e = event(
        "campaign",
        &who.subject.label(),
        &format!("campaign.{}", control.name()),
        &format!("Campaign::{id:?}"),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!("now {}", c.status().name());
    state.audit(e).await?;
    Ok(Json(campaigns::view(&row, &c, false)).into_response())
}
