//! `POST /api/v1/devices/{id}/telemetry` on the device port: the device is the one its
//! certificate names, and the answer comes only after `crate::telemetry::ingest` committed the
//! batch (200), or refused it as a replay (409).

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medsec_api::telemetry;

use super::auth::{Auth, DevicePath};
use super::error::ApiError;
use crate::authz::Target;
use crate::telemetry::{ACTION, Ingested, ingest};

/// `POST /api/v1/devices/{id}/telemetry`.
pub(super) async fn post_telemetry(
    auth: Auth,
    headers: HeaderMap,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.authorize(ACTION, &target).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    // Over HTTPS a device's batches arrive in order on one connection: no reorder window.
    match ingest(&auth.state, &auth.conn, &who, &target, encoding, &body, 0).await? {
        Ingested::Accepted { sequence, events } => Ok((
            StatusCode::OK,
            Json(telemetry::Accepted {
                accepted: sequence,
                events,
            }),
        )
            .into_response()),
        // The agent needs the number, not just the sentence: a batch equal to it was stored
        // already (an acknowledgement lost), one below it was numbered from a lost state and
        // goes again as the next number.
        Ingested::Replayed { reason, last } => Ok((
            StatusCode::CONFLICT,
            Json(telemetry::Replayed {
                error: reason,
                last_sequence: last,
            }),
        )
            .into_response()),
    }
}
