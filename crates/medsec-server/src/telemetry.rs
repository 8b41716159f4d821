//! Device telemetry over HTTPS on the device port: `POST /api/v1/devices/{id}/telemetry`.
//!
//! - The device is the one the mutual-TLS certificate names; Cedar's `telemetry.send` lets a
//!   device send only about itself, and quarantine does not stop it (a quarantined device must
//!   stay visible).
//! - The body is a [`medsec_defender::telemetry::Batch`], plain or `Content-Encoding: gzip`.
//!   Its compressed size is bounded by `limits.max_body_bytes`, its decoded size by
//!   `limits.telemetry_max_batch_bytes`, its events by `limits.telemetry_max_events`.
//! - Each batch carries the device's next sequence number; one not after the last accepted is a
//!   replay (or reordering) and is refused with 409 (`{"error", "last_sequence"}`), audited,
//!   and changes nothing.
//! - The answer (200) comes only after the batch is committed: an acknowledged batch is stored,
//!   and a device that got no answer sends the same batch again, which is then either stored or
//!   refused as already stored.

use std::io::Read as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use medsec_defender::incident::AlertRef;
use medsec_defender::rules::Severity;
use medsec_defender::telemetry::Batch;
use medsec_store::{AlertRow, Store as _, TelemetryBatch};

use crate::api::{ApiError, Caller, authorize, caller, device_id};
use crate::audit_log::event;
use crate::authz::Target;
use crate::state::{AppState, Conn, now_ms};

/// The Cedar action.
pub(crate) const ACTION: &str = "telemetry.send";

/// Decodes the body as `encoding` (its `Content-Encoding`) says, refusing more than `max`
/// decoded bytes.
fn decode(encoding: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, ApiError> {
    let encoding = encoding.map(|v| v.trim().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadRequest(format!("the gzip body does not decode: {e}")))?;
            out
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Content-Encoding {other:?} is not accepted: send the batch as gzip or unencoded"
            )));
        }
    };
    if decoded.len() > max {
        return Err(ApiError::TooLarge(max));
    }
    Ok(decoded)
}

/// Identity binding: a MAC address other than the one the device first reported, and a
/// certificate used from two addresses by turns within `address_window_secs` (HTTPS only:
/// through a broker the device's address is not seen).
async fn identity_alerts(
    state: &AppState,
    conn: &Conn,
    id: &str,
    batch: &Batch,
    now: i64,
) -> Result<Vec<medsec_defender::rules::Alert>, ApiError> {
    use medsec_defender::binding::{address_alert, mac_alerts, reported_mac};
    let mut alerts = Vec::new();
    if let Some((_, mac)) = reported_mac(batch) {
        let bound = state.store.bind_identity(id, "mac", &mac, now).await?;
        alerts.extend(mac_alerts(&bound, batch));
    }
    let window = state.defender.address_window_secs;
    if conn.broker.is_none() && window > 0 {
        let since =
            now.saturating_sub(i64::try_from(window.saturating_mul(1000)).unwrap_or(i64::MAX));
        let recent: Vec<std::net::IpAddr> = state
            .store
            .telemetry_sources(id, since, 16)
            .await?
            .iter()
            .filter_map(|s| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            .collect();
        alerts.extend(address_alert(&recent, conn.addr.ip(), now, window));
    }
    Ok(alerts)
}

/// What became of a batch that was authorised.
pub(crate) enum Ingested {
    /// Stored, with its alerts.
    Accepted {
        /// Its sequence number.
        sequence: i64,
        /// Its events.
        events: usize,
    },
    /// Refused as a replay; the device's newest stored number is `last`.
    Replayed {
        /// Why, for the device.
        reason: String,
        /// The newest stored batch's number.
        last: i64,
    },
}

/// One authorised batch, on any transport: decodes it, checks it, runs the rules, and stores it
/// with its alerts in one transaction (then groups the alerts into incidents). A malformed or
/// replayed batch is audited; a malformed one is an error naming the problem.
pub(crate) async fn ingest(
    state: &AppState,
    conn: &Conn,
    who: &Caller,
    target: &Target,
    encoding: Option<&str>,
    body: &[u8],
    reorder_window: i64,
) -> Result<Ingested, ApiError> {
    let Target::Device(id) = target else {
        return Err(ApiError::Internal("telemetry targets a device".into()));
    };
    let limits = &state.config.limits;
    // A refused batch is audited: malformed or replayed telemetry from an authenticated
    // device is itself worth an investigator's look.
    let refuse = |reason: String| {
        let mut e = event(
            "telemetry",
            &who.subject.label(),
            ACTION,
            &target.label(),
            "deny",
        );
        e.source = conn.addr.to_string();
        e.detail = reason;
        e
    };
    let json = match decode(encoding, body, limits.telemetry_max_batch_bytes) {
        Ok(json) => json,
        Err(err) => {
            state.audit(refuse(format!("{err:?}"))).await?;
            return Err(err);
        }
    };
    let batch = match Batch::parse(&json, limits.telemetry_max_events) {
        Ok(batch) => batch,
        Err(e) => {
            state.audit(refuse(e.to_string())).await?;
            return Err(ApiError::BadRequest(e.to_string()));
        }
    };
    let model = match &who.record {
        Some(own) => own.model.clone(),
        None => state.store.device(id).await?.model,
    };
    let received_at_ms = now_ms();
    let class = state.defender.class(&model);
    let mut raised = medsec_defender::rules::evaluate(class, &batch);
    if class.longest_window_secs() > 0 {
        // Window rules read the device's earlier batches back from the store (so every
        // replica sees them all); only classes that have such rules pay for it.
        let since = received_at_ms
            .saturating_sub(i64::try_from(class.longest_window_secs()).unwrap_or(0) * 1000);
        let earlier: Vec<(i64, Batch)> = state
            .store
            .telemetry(id, since, 1000)
            .await?
            .iter()
            .filter_map(|b| Some((b.received_at_ms, Batch::parse(&b.body, usize::MAX).ok()?)))
            .collect();
        raised.extend(medsec_defender::rules::evaluate_windows(
            class,
            &batch,
            &earlier,
            received_at_ms,
        ));
    }
    raised.extend(state.sigma.evaluate(&model, &batch));
    raised.extend(identity_alerts(state, conn, id, &batch, received_at_ms).await?);
    if let Some((version, baseline)) = state.baselines.current(state, &model).await {
        raised.extend(baseline.score(id, &batch, state.defender.baseline_threshold, version));
    }
    // The device learns nothing of what its batch raised.
    let alerts: Vec<AlertRow> = raised
        .into_iter()
        .map(|a| AlertRow {
            id: 0,
            device_id: id.clone(),
            sequence: batch.sequence,
            at_ms: a.at_ms,
            raised_at_ms: received_at_ms,
            rule: a.rule.clone(),
            severity: a.severity.name().to_owned(),
            body: serde_json::to_string(&a).unwrap_or_default(),
        })
        .collect();
    let stored = TelemetryBatch {
        device_id: id.clone(),
        sequence: batch.sequence,
        received_at_ms,
        events: i64::try_from(batch.events.len()).unwrap_or(i64::MAX),
        source: conn.source_label(),
        body: json,
    };
    match state
        .store
        .record_telemetry(&stored, &alerts, reorder_window)
        .await
    {
        Ok(ids) => {
            let refs: Vec<AlertRef> = ids
                .iter()
                .zip(&alerts)
                .map(|(id, a)| AlertRef {
                    id: *id,
                    device: a.device_id.clone(),
                    rule: a.rule.clone(),
                    severity: Severity::from_name(&a.severity).unwrap_or(Severity::Low),
                    raised_at_ms: a.raised_at_ms,
                })
                .collect();
            // The batch and its alerts are stored: a failure to group them must not make the
            // device send the batch again. The alerts stay listed under the device.
            if let Err(e) = crate::incidents::group(state, id, refs, received_at_ms).await {
                tracing::error!(device = id.as_str(), error = ?e, "grouping alerts into an incident");
            }
            Ok(Ingested::Accepted {
                sequence: batch.sequence,
                events: batch.events.len(),
            })
        }
        Err(medsec_store::Error::Replayed { sequence, last, .. }) => {
            let reason = format!(
                "batch {sequence} is not after the last accepted batch, {last}, or was stored \
                 already: a replayed or reordered batch is refused (send {} next)",
                last.saturating_add(1)
            );
            state.audit(refuse(reason.clone())).await?;
            Ok(Ingested::Replayed { reason, last })
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /api/v1/devices/{id}/telemetry`.
pub(crate) async fn post_telemetry(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, ACTION, &target).await?;
    authorize(&state, &conn, &who, ACTION, &target).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    // Over HTTPS a device's batches arrive in order on one connection: no reorder window.
    match ingest(&state, &conn, &who, &target, encoding, &body, 0).await? {
        Ingested::Accepted { sequence, events } => Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "accepted": sequence, "events": events })),
        )
            .into_response()),
        // The agent needs the number, not just the sentence: a batch equal to it was stored
        // already (an acknowledgement lost), one below it was numbered from a lost state and
        // goes again as the next number.
        Ingested::Replayed { reason, last } => Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": reason, "last_sequence": last })),
        )
            .into_response()),
    }
}

/// The operator-port preamble of the per-device read routes: the device id, checked; the
/// caller, authorised for `device.read` on it; the device, known.
async fn readable_device(
    state: &AppState,
    conn: &Conn,
    headers: &HeaderMap,
    id: &str,
) -> Result<(medsec_pki::DeviceId, crate::api::Caller), ApiError> {
    let id = device_id(id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(state, conn, headers, "device.read", &target).await?;
    authorize(state, conn, &who, "device.read", &target).await?;
    state.store.device(id.as_str()).await?;
    Ok((id, who))
}

/// Query of the telemetry and alert lists (operator port).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinceQuery {
    /// Received or raised at or after this time (Unix ms; default: all).
    since_ms: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
}

/// `GET /api/v1/devices/{id}/telemetry`: the device's stored batches, newest first.
pub(crate) async fn list_telemetry(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    let (id, _) = readable_device(&state, &conn, &headers, &id).await?;
    let batches = state
        .store
        .telemetry(
            id.as_str(),
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    let shown: Vec<serde_json::Value> = batches
        .iter()
        .map(|b| {
            serde_json::json!({
                "sequence": b.sequence,
                "received_at_ms": b.received_at_ms,
                "events": b.events,
                "source": b.source,
                "batch": serde_json::from_slice::<serde_json::Value>(&b.body)
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();
    Ok(Json(shown).into_response())
}

fn alerts_json(rows: &[AlertRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|a| {
            let mut v: serde_json::Value =
                serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), a.id.into());
                o.insert("device".into(), a.device_id.clone().into());
                o.insert("sequence".into(), a.sequence.into());
                o.insert("raised_at_ms".into(), a.raised_at_ms.into());
            }
            v
        })
        .collect()
}

/// `GET /api/v1/devices/{id}/alerts`: the device's alerts, newest first (`device.read`).
pub(crate) async fn device_alerts(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    let (id, _) = readable_device(&state, &conn, &headers, &id).await?;
    let rows = state
        .store
        .alerts(
            Some(id.as_str()),
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(alerts_json(&rows)).into_response())
}

/// `GET /api/v1/alerts`: the fleet's alerts, newest first (`device.list`).
pub(crate) async fn fleet_alerts(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    let target = Target::Fleet;
    let who = caller(&state, &conn, &headers, "device.list", &target).await?;
    authorize(&state, &conn, &who, "device.list", &target).await?;
    let rows = state
        .store
        .alerts(
            None,
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(alerts_json(&rows)).into_response())
}

/// Query of `GET /api/v1/devices/{id}/timeline`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimelineQuery {
    /// From (Unix ms; default: the beginning).
    since_ms: Option<i64>,
    /// To (Unix ms; default: now).
    until_ms: Option<i64>,
    /// Comma-separated kinds (default: all).
    kind: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// Most entries read from each source (1 to 10000, default 1000).
    limit: Option<u32>,
}

/// `GET /api/v1/devices/{id}/timeline`: Investigator's view of one device. It includes policy
/// decisions from the audit log, so it needs `audit.read` as well as `device.read`.
pub(crate) async fn device_timeline(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TimelineQuery>,
) -> Result<Response, ApiError> {
    let (id, who) = readable_device(&state, &conn, &headers, &id).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let filter = crate::timeline::Filter {
        since_ms: q.since_ms.unwrap_or(0),
        until_ms: q.until_ms.unwrap_or(i64::MAX),
        kinds: crate::timeline::Filter::kinds(q.kind.as_deref().unwrap_or(""))
            .map_err(ApiError::BadRequest)?,
        per_source: q.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let entries = crate::timeline::build(&state.store, id.as_str(), &filter).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(entries).into_response()),
        "csv" => {
            let text = crate::timeline::to_csv(&entries).map_err(ApiError::Internal)?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                text,
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

/// Query of `GET /api/v1/defender/audit`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditChecksQuery {
    /// Report device certificates expiring within this many days (default 7).
    cert_days: Option<i64>,
    /// Report enrolled devices not seen for this many hours (default 24).
    silent_hours: Option<i64>,
}

/// `GET /api/v1/defender/audit`: the audit checks now (`audit.read`).
pub(crate) async fn audit_checks(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<AuditChecksQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let defaults = crate::defender_audit::Thresholds::default();
    let thresholds = crate::defender_audit::Thresholds {
        cert_days: q.cert_days.unwrap_or(defaults.cert_days).clamp(0, 3650),
        silent_hours: q
            .silent_hours
            .unwrap_or(defaults.silent_hours)
            .clamp(1, 87_600),
    };
    let findings = crate::defender_audit::run(
        &state.store,
        &state.config,
        &state.policies,
        thresholds,
        now_ms(),
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(findings).into_response())
}

/// `GET /api/v1/devices/{id}/identity`: the identities the device is bound to (`device.read`).
pub(crate) async fn identity(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, _) = readable_device(&state, &conn, &headers, &id).await?;
    let bindings = state.store.identity_bindings(id.as_str()).await?;
    Ok(Json(serde_json::json!({ "device": id.as_str(), "bindings": bindings })).into_response())
}

/// The longest reason a re-bind may give.
const MAX_REASON_BYTES: usize = 500;

/// The body of a re-bind.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RebindRequest {
    /// The device's new MAC address.
    mac: String,
    /// Why (a repair's work order, say); required, and audited.
    reason: String,
}

/// `POST /api/v1/devices/{id}/identity/rebind` (`device.rebind`): binds the device to the MAC
/// address of its new network interface after a repair. The new address is given explicitly
/// (read off the device), never taken from the next batch, so the re-bind opens no window in
/// which a clone's MAC would be bound. The old and new addresses and the reason are audited.
pub(crate) async fn rebind(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.rebind", &target).await?;
    let req: RebindRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("re-bind request: {e}")))?;
    let mac = req.mac.trim().to_ascii_lowercase();
    if !medsec_defender::telemetry::is_mac(&mac) {
        return Err(ApiError::BadRequest(format!(
            "mac {:?} is not a MAC address (six hex octets separated by `:`)",
            req.mac
        )));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "reason must be 1 to {MAX_REASON_BYTES} bytes of text on one line"
        )));
    }
    authorize(&state, &conn, &who, "device.rebind", &target).await?;
    state.store.device(id.as_str()).await?;
    let previous = state
        .store
        .rebind_identity(id.as_str(), "mac", &mac, now_ms())
        .await?;
    let mut e = event(
        "defender",
        &who.subject.label(),
        "device.rebind",
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "mac {} -> {mac}: {reason}",
        previous.as_deref().unwrap_or("(none)")
    );
    state.audit(e).await?;
    Ok(Json(serde_json::json!({
        "device": id.as_str(),
        "kind": "mac",
        "value": mac,
        "previous": previous,
    }))
    .into_response())
}
