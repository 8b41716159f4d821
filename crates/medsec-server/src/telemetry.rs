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
//!   and changes nothing. So is one more than `limits.telemetry_max_sequence_step` after it,
//!   which also raises the alert `telemetry-sequence-jump`: accepted, such a batch would make
//!   every later batch of the device a "replay". Re-enrolment, and an operator's
//!   `POST /api/v1/devices/{id}/telemetry/reset`, forget the cursor.
//! - The answer (200) comes only after the batch is committed: an acknowledged batch is stored,
//!   and a device that got no answer sends the same batch again, which is then either stored or
//!   refused as already stored.

use std::io::Read as _;

use medsec_defender::incident::AlertRef;
use medsec_defender::rules::Severity;
use medsec_defender::telemetry::Batch;
use medsec_store::prelude::*;
use medsec_store::{AlertRow, TelemetryBatch};

use crate::Error;
use crate::access::Caller;
use crate::audit_log::event;
use crate::authz::Target;
use crate::state::{AppState, Conn, now_ms};

/// The Cedar action.
pub(crate) const ACTION: &str = "telemetry.send";

/// Decodes the body as `encoding` (its `Content-Encoding`) says, refusing more than `max`
/// decoded bytes.
fn decode(encoding: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, Error> {
    let encoding = encoding.map(|v| v.trim().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::Refused {
                    reason: format!("the gzip body does not decode: {e}"),
                })?;
            out
        }
        Some(other) => {
            return Err(Error::Refused {
                reason: format!(
                    "Content-Encoding {other:?} is not accepted: send the batch as gzip or unencoded"
                ),
            });
        }
    };
    if decoded.len() > max {
        return Err(Error::TooLarge { limit: max });
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
) -> Result<Vec<medsec_defender::rules::Alert>, Error> {
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
    /// Refused as a replay, or as a jump too far ahead; the device's newest stored number is
    /// `last`, and its next batch should be `last + 1`.
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
) -> Result<Ingested, Error> {
    let Target::Device(id) = target else {
        return Err(Error::Internal {
            reason: "telemetry targets a device".into(),
        });
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
            state.audit(refuse(err.to_string())).await?;
            return Err(err);
        }
    };
    let batch = match Batch::parse(&json, limits.telemetry_max_events) {
        Ok(batch) => batch,
        Err(e) => {
            state.audit(refuse(e.to_string())).await?;
            return Err(Error::Refused {
                reason: e.to_string(),
            });
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
    let window = medsec_store::SequenceWindow {
        reorder: reorder_window,
        max_step: limits.telemetry_max_sequence_step,
    };
    match state.store.record_telemetry(&stored, &alerts, window).await {
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
        Err(medsec_store::Error::SequenceJump {
            sequence,
            last,
            max_step,
            ..
        }) => {
            // Refused, audited, and raised as an alert: whoever numbered it so far ahead tried
            // to make every later batch of the device a "replay".
            let alert =
                medsec_defender::rules::sequence_jump(sequence, last, max_step, received_at_ms);
            let row = AlertRow {
                id: 0,
                device_id: id.clone(),
                sequence,
                at_ms: alert.at_ms,
                raised_at_ms: received_at_ms,
                rule: alert.rule.clone(),
                severity: alert.severity.name().to_owned(),
                body: serde_json::to_string(&alert).unwrap_or_default(),
            };
            let ids = state
                .store
                .record_alerts(std::slice::from_ref(&row))
                .await?;
            let refs: Vec<AlertRef> = ids
                .iter()
                .map(|alert_id| AlertRef {
                    id: *alert_id,
                    device: id.clone(),
                    rule: row.rule.clone(),
                    severity: alert.severity,
                    raised_at_ms: received_at_ms,
                })
                .collect();
            if let Err(e) = crate::incidents::group(state, id, refs, received_at_ms).await {
                tracing::error!(device = id.as_str(), error = ?e, "grouping alerts into an incident");
            }
            let reason = format!(
                "batch {sequence} is more than {max_step} after the last accepted batch, {last}: \
                 refused (send {} next)",
                last.saturating_add(1)
            );
            state.audit(refuse(reason.clone())).await?;
            Ok(Ingested::Replayed { reason, last })
        }
        Err(other) => Err(other.into()),
    }
}
