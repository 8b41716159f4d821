//! Device telemetry over HTTPS on the device port: `POST /api/v1/devices/{id}/telemetry`.
//!
//! - The device is the one the mutual-TLS certificate names; Cedar's `telemetry.send` lets a
//!   device send only about itself, and quarantine does not stop it (a quarantined device must
//!   stay visible).
//! - The body is a [`medsec_defender::telemetry::Batch`], plain or `Content-Encoding: gzip`.
//!   Its compressed size is bounded by `limits.max_body_bytes`, its decoded size by
//!   `limits.telemetry_max_batch_bytes`, its events by `limits.telemetry_max_events`.
//! - Each batch carries the device's next sequence number. The store keeps every number once:
//!   a batch after the device's newest (by at most `limits.telemetry_max_sequence_step`) is
//!   stored and the numbers it skipped become a gap; a late batch inside a gap fills it (two
//!   MQTT consumers, two replicas and a broker's redelivered backlog all deliver out of order);
//!   a gap still open after `limits.telemetry_gap_timeout_secs` raises the alert
//!   `telemetry-gap` once.
//! - A batch stored already with the same content is a duplicate (a lost answer, a broker's
//!   redelivery): answered as stored (`"duplicate": true`), not stored twice, and counted in the
//!   audit log's summary rather than logged one by one. Other content under a stored number is
//!   a replay: refused with 409 (`{"error", "last_sequence"}`), audited (summarised per
//!   window), and raised as the alert `telemetry-replay`; so is a number below the newest that
//!   was never skipped. A jump past the step is refused too and raises
//!   `telemetry-sequence-jump`: accepted, it would push the device's numbering out of reach.
//!   Re-enrolment, and an operator's `POST /api/v1/devices/{id}/telemetry/reset`, forget the
//!   cursor and the gaps.
//! - The answer (200) comes only after the batch is committed: an acknowledged batch is stored,
//!   and a device that got no answer sends the same batch again, which is then either stored or
//!   answered as a duplicate.

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

/// The audit kinds of what becomes of a batch beside being stored; each is summarised per
/// window and device (`crate::repeats::SUMMARISED_KINDS`).
pub(crate) const MALFORMED: &str = "telemetry-malformed";
/// A replayed batch, a jump too far ahead.
pub(crate) const REPLAY: &str = "telemetry-replay";
/// A batch stored already, sent again.
pub(crate) const DUPLICATE: &str = "telemetry-duplicate";

/// Raises the alert `telemetry-gap` for each gap open longer than
/// `limits.telemetry_gap_timeout_secs` (once per gap, across replicas), a hundred at a time.
pub(crate) async fn alert_gaps(state: &AppState, now: i64) -> Result<usize, Error> {
    let timeout = state.config.limits.telemetry_gap_timeout_secs;
    let cutoff =
        now.saturating_sub(i64::try_from(timeout.saturating_mul(1000)).unwrap_or(i64::MAX));
    let mut raised = 0;
    loop {
        let gaps = state.store.expire_telemetry_gaps(cutoff, now, 100).await?;
        for g in &gaps {
            let alert = medsec_defender::rules::sequence_gap(
                g.first_sequence,
                g.last_sequence,
                g.opened_at_ms,
                timeout,
                now,
            );
            raise(state, &g.device_id, g.first_sequence, &alert, now).await?;
        }
        raised += gaps.len();
        if gaps.len() < 100 {
            return Ok(raised);
        }
    }
}

/// The stored rows of alerts raised on the device's batch `sequence` at `now`: each with
/// its aggregation key and window (`limits.alert_aggregate_secs`), and the suppression in
/// force that covers it, if any (read only when there are alerts).
async fn alert_rows(
    state: &AppState,
    id: &str,
    sequence: i64,
    alerts: &[medsec_defender::rules::Alert],
    now: i64,
) -> Result<Vec<AlertRow>, Error> {
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    for alert in alerts {
        crate::metrics::global()
            .alerts_raised
            .with_label_values(&[alert.severity.name()])
            .inc();
    }
    let active = state.store.suppressions(Some(now)).await?;
    let device = if active.is_empty() {
        None
    } else {
        Some(state.store.device(id).await?)
    };
    let within = i64::try_from(state.config.limits.alert_aggregate_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    Ok(alerts
        .iter()
        .map(|alert| {
            let key = alert.aggregate_key();
            let suppressed_by = device.as_ref().and_then(|d| {
                crate::suppressions::covering(
                    &active,
                    &alert.rule,
                    &key,
                    &crate::suppressions::Subject {
                        device: id,
                        model: &d.model,
                        site: &d.site,
                    },
                )
            });
            AlertRow {
                id: 0,
                device_id: id.to_owned(),
                sequence,
                at_ms: alert.at_ms,
                raised_at_ms: now,
                rule: alert.rule.clone(),
                severity: alert.severity.name().to_owned(),
                body: serde_json::to_string(alert).unwrap_or_default(),
                aggregate_key: key,
                occurrences: 1,
                last_seen_ms: now,
                suppressed_by: suppressed_by.unwrap_or(0),
                aggregate_within_ms: within,
            }
        })
        .collect())
}

/// Groups stored alerts (`rows`, stored as `stored`) into the device's incident: only new
/// ones (an occurrence counted into an open alert is in its incident already), and none a
/// suppression covers. They are stored already: a failure to group them is logged, not
/// returned (the alerts stay listed under the device, and a batch must not be sent again for
/// it).
async fn group_stored(
    state: &AppState,
    id: &str,
    stored: &[medsec_store::StoredAlert],
    rows: &[AlertRow],
    now: i64,
) {
    let refs: Vec<AlertRef> = stored
        .iter()
        .zip(rows)
        .filter(|(s, a)| s.new && a.suppressed_by == 0)
        .map(|(s, a)| AlertRef {
            id: s.id,
            device: a.device_id.clone(),
            rule: a.rule.clone(),
            severity: Severity::from_name(&a.severity).unwrap_or(Severity::Low),
            raised_at_ms: a.raised_at_ms,
        })
        .collect();
    if refs.is_empty() {
        return;
    }
    if let Err(e) = crate::incidents::group(state, id, refs, now).await {
        tracing::error!(device = id, error = ?e, "grouping alerts into an incident");
    }
}

/// Stores an alert raised on a refused batch (none is stored to carry it) and groups it into
/// the device's incident.
pub(crate) async fn raise(
    state: &AppState,
    id: &str,
    sequence: i64,
    alert: &medsec_defender::rules::Alert,
    now: i64,
) -> Result<(), Error> {
    let rows = alert_rows(state, id, sequence, std::slice::from_ref(alert), now).await?;
    let stored = state.store.record_alerts(&rows).await?;
    group_stored(state, id, &stored, &rows, now).await;
    Ok(())
}

/// A refusal's reason cut to a log line's size (it may quote the batch).
fn clip(reason: &str) -> String {
    medsec_util::clip(reason, 240)
}

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
    /// Stored already with the same content: nothing changed, and the sender may count it as
    /// stored.
    Duplicate {
        /// Its sequence number.
        sequence: i64,
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
) -> Result<Ingested, Error> {
    let result = ingest_batch(state, conn, who, target, encoding, body).await;
    let outcome = match &result {
        Ok(Ingested::Accepted { .. }) => "stored",
        Ok(Ingested::Duplicate { .. }) => "duplicate",
        Ok(Ingested::Replayed { .. }) => "replayed",
        Err(_) => "refused",
    };
    let transport = if conn.broker.is_some() {
        "mqtt"
    } else {
        "https"
    };
    crate::metrics::global().telemetry(transport, outcome);
    result
}

async fn ingest_batch(
    state: &AppState,
    conn: &Conn,
    who: &Caller,
    target: &Target,
    encoding: Option<&str>,
    body: &[u8],
) -> Result<Ingested, Error> {
    let Target::Device(id) = target else {
        return Err(Error::Internal {
            reason: "telemetry targets a device".into(),
        });
    };
    let limits = &state.config.limits;
    // A refused batch is audited: malformed or replayed telemetry from an authenticated
    // device is itself worth an investigator's look. Repeats of one kind of refusal from one
    // device are summarised per window (`crate::repeats`), so a device sending garbage as fast
    // as its rate allows cannot grow the log by an entry per batch.
    let refuse = |kind: &str, reason: String| {
        let mut e = event(kind, &who.subject.label(), ACTION, &target.label(), "deny");
        e.source = conn.addr.to_string();
        e.detail = reason;
        e
    };
    let json = match decode(encoding, body, limits.telemetry_max_batch_bytes) {
        Ok(json) => json,
        Err(err) => {
            state
                .audit_or_count(refuse(MALFORMED, clip(&err.to_string())), conn.addr.ip())
                .await?;
            return Err(err);
        }
    };
    let batch = match Batch::parse(&json, limits.telemetry_max_events) {
        Ok(batch) => batch,
        Err(e) => {
            // A parser's message may quote the input: clipped before it is logged or answered.
            let reason = clip(&e.to_string());
            state
                .audit_or_count(refuse(MALFORMED, reason.clone()), conn.addr.ip())
                .await?;
            return Err(Error::Refused { reason });
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
    let alerts = alert_rows(state, id, batch.sequence, &raised, received_at_ms).await?;
    let stored = TelemetryBatch {
        device_id: id.clone(),
        sequence: batch.sequence,
        received_at_ms,
        events: i64::try_from(batch.events.len()).unwrap_or(i64::MAX),
        source: conn.source_label(),
        body: json,
    };
    let window = medsec_store::SequenceWindow {
        max_step: limits.telemetry_max_sequence_step,
    };
    match state.store.record_telemetry(&stored, &alerts, window).await {
        Ok(ids) => {
            group_stored(state, id, &ids, &alerts, received_at_ms).await;
            Ok(Ingested::Accepted {
                sequence: batch.sequence,
                events: batch.events.len(),
            })
        }
        Err(medsec_store::Error::Duplicate { sequence, .. }) => {
            let mut e = event(
                DUPLICATE,
                &who.subject.label(),
                ACTION,
                &target.label(),
                "allow",
            );
            e.source = conn.addr.to_string();
            e.detail = format!(
                "batch {sequence} was stored already with the same content: sent again, not stored twice"
            );
            state.audit_or_count(e, conn.addr.ip()).await?;
            Ok(Ingested::Duplicate { sequence })
        }
        Err(medsec_store::Error::ReplayConflict { sequence, last, .. }) => {
            let reason = format!(
                "batch {sequence} is stored already with other content: a replayed or forged \
                 batch is refused (send {} next)",
                last.saturating_add(1)
            );
            // Raised as an alert once per window per device: the entry is logged then.
            if state
                .audit_or_count(refuse(REPLAY, reason.clone()), conn.addr.ip())
                .await?
            {
                let alert = medsec_defender::rules::replay_conflict(sequence, received_at_ms);
                raise(state, id, sequence, &alert, received_at_ms).await?;
            }
            Ok(Ingested::Replayed { reason, last })
        }
        Err(medsec_store::Error::Replayed { sequence, last, .. }) => {
            let reason = format!(
                "batch {sequence} is not after the newest batch, {last}, and no batch of the \
                 device skipped it: a replayed batch is refused (send {} next)",
                last.saturating_add(1)
            );
            state
                .audit_or_count(refuse(REPLAY, reason.clone()), conn.addr.ip())
                .await?;
            Ok(Ingested::Replayed { reason, last })
        }
        Err(medsec_store::Error::SequenceJump {
            sequence,
            last,
            max_step,
            ..
        }) => {
            // Refused, audited, and raised as an alert (once per window, with the entry):
            // whoever numbered it so far ahead tried to make every later batch of the device a
            // "replay".
            let reason = format!(
                "batch {sequence} is more than {max_step} after the last accepted batch, {last}: \
                 refused (send {} next)",
                last.saturating_add(1)
            );
            if state
                .audit_or_count(refuse(REPLAY, reason.clone()), conn.addr.ip())
                .await?
            {
                let alert =
                    medsec_defender::rules::sequence_jump(sequence, last, max_step, received_at_ms);
                raise(state, id, sequence, &alert, received_at_ms).await?;
            }
            Ok(Ingested::Replayed { reason, last })
        }
        Err(other) => Err(other.into()),
    }
}
