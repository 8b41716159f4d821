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
    match ingest(&auth.state, &auth.conn, &who, &target, encoding, &body).await? {
        Ingested::Accepted { sequence, events } => Ok((
            StatusCode::OK,
            Json(telemetry::Accepted {
                accepted: sequence,
                events,
                duplicate: false,
            }),
        )
            .into_response()),
        // Stored before: the device lost the answer. It is done with this batch.
        Ingested::Duplicate { sequence } => Ok((
            StatusCode::OK,
            Json(telemetry::Accepted {
                accepted: sequence,
                events: 0,
                duplicate: true,
            }),
        )
            .into_response()),
        // The agent needs the number, not just the sentence: its events go again as the next
        // number (the batch was numbered from a lost state, or jumped).
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
