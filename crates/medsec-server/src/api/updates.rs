//! Update delivery on the device port: the director's per-device metadata at
//! `/director/DEVICE/FILE` and the published image repository at `/repo/…` (HTTP range requests
//! supported, so agents resume interrupted downloads). Both need Cedar's `update.fetch` on the
//! device itself: a device reads only its own director metadata.

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medsec_pki::DeviceId;
use medsec_store::DevicePoll;
use medsec_store::prelude::*;
use tower::ServiceExt as _;

use super::auth::{Auth, DevicePath, device_caller};
use super::error::ApiError;
use crate::audit_log::event;
use crate::authz::Target;
use crate::director;
use crate::state::{Peer, now_ms};

fn json(bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `root.json`, `N.root.json` (shared by all devices), and the device's `timestamp.json`,
/// `snapshot.json` and `targets.json`. Fetching the timestamp is the poll: it is when the
/// director decides what the device must install (and, on a first offer, records it in the
/// campaign); it carries the newest root version in the `tuf-root-version` header, so a poll
/// with no change is that one request. Snapshot and targets are served as stored, so one
/// refresh sees one version.
pub(crate) async fn director_file(
    auth: Auth,
    DevicePath(id): DevicePath,
    Path((_, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    if file == "timestamp.json" {
        return poll(&auth, &id, &target).await;
    }
    let _who = auth.authorize("update.fetch", &target).await?;
    if file == "root.json" {
        return auth
            .state
            .director
            .root(None)
            .map(|r| json(r.to_vec()))
            .ok_or(ApiError::NotFound);
    }
    if let Some(v) = file.strip_suffix(".root.json") {
        let v: u64 = v.parse().map_err(|_| ApiError::NotFound)?;
        return auth
            .state
            .director
            .root(Some(v))
            .map(|r| json(r.to_vec()))
            .ok_or(ApiError::NotFound);
    }
    match file.as_str() {
        "snapshot.json" | "targets.json" => {
            let stored = auth
                .state
                .store
                .director_metadata(id.as_str())
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(if file == "targets.json" {
                stored.targets
            } else {
                stored.snapshot
            }))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// A device's poll (`timestamp.json`). When the device asks for its own metadata, which is every
/// real poll, one store query reads its record (for Cedar), its active campaigns and its stored
/// timestamp; anyone else is authorised first, exactly as for the other files, and only then is
/// the device read.
async fn poll(auth: &Auth, id: &DeviceId, target: &Target) -> Result<Response, ApiError> {
    let (state, conn) = (&*auth.state, &auth.conn);
    let own = matches!(&conn.peer, Peer::Device(p) if p == id) && !conn.operator_port;
    let (who, read) = if own {
        let (record, rest) = match state.store.device_poll(id.as_str()).await {
            Ok(p) => (Ok(p.device), Some((p.campaigns, p.director))),
            Err(e) => (Err(e.into()), None),
        };
        let who = device_caller(state, conn, id, record, "update.fetch", target).await?;
        (who, rest)
    } else {
        (auth.caller("update.fetch", target).await?, None)
    };
    auth.check(&who, "update.fetch", target).await?;
    let polled = match (who.record, read) {
        (Some(device), Some((campaigns, director))) => DevicePoll {
            device,
            campaigns,
            director,
        },
        _ => state.store.device_poll(id.as_str()).await?,
    };
    let (timestamp, offered) = director::current(&state.store, &state.director, polled, now_ms())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(o) = offered {
        let mut e = event(
            "campaign",
            &who.subject.label(),
            "campaign.offer",
            &target.label(),
            "info",
        );
        e.source = conn.addr.to_string();
        e.detail = format!("offered {} (campaign {})", o.target, o.campaign);
        state.audit(e).await?;
    }
    // The newest root's version beside the timestamp spares the agent a root probe.
    let mut response = json(timestamp);
    response.headers_mut().insert(
        medsec_tuf_client::ROOT_VERSION_HEADER,
        HeaderValue::from(state.director.root_version()),
    );
    Ok(response)
}

/// A file of the published image repository (`metadata/…` or `targets/…`), with range support.
pub(crate) async fn image_file(
    auth: Auth,
    Path(path): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    // The image repository is read as the device itself (its own updates).
    let target = match &auth.conn.peer {
        Peer::Device(id) => Target::Device(id.as_str().to_owned()),
        _ => Target::Device("-".into()),
    };
    let _who = auth.authorize("update.fetch", &target).await?;
    let Some(image) = auth.state.director.image() else {
        return Err(ApiError::NotFound);
    };
    if !(path.starts_with("metadata/") || path.starts_with("targets/")) {
        return Err(ApiError::NotFound);
    }
    // ServeDir refuses `..` and absolute components; it answers Range, If-Range and HEAD.
    let (mut parts, body) = request.into_parts();
    parts.uri = format!("/{path}")
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("bad path {path:?}")))?;
    let served = tower_http::services::ServeDir::new(image.published())
        .append_index_html_on_directories(false)
        .oneshot(Request::from_parts(parts, body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if served.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::NotFound);
    }
    Ok(served.map(axum::body::Body::new))
}
