//! Export of security events to the hospital's SIEM and to webhooks: alerts, incidents and
//! their phase changes, campaign status changes (halts), failed audit checks, revocations,
//! decommissioning, quarantine releases and (opt-in) refusals.
//!
//! **Nothing is lost.** The events are rows that commit with what they record — the audit
//! log's entries (written before any answer) and the Defender's alerts (written with their
//! telemetry batch) — so they are their own outbox. Each sink keeps, per source, the position
//! up to which it has delivered or filtered out everything (`export_cursors`), moved only after
//! the receiver acknowledged (HTTP 2xx; for syslog, the frame written to the TLS connection).
//! A receiver that is down is retried with exponential back-off for as long as it takes; a
//! server killed mid-delivery sends the same event again after restart, with the same id
//! (at-least-once; receivers de-duplicate on `id`). An event a receiver refuses for good (HTTP
//! 4xx other than 408 and 429) is retried `max_attempts` times, then kept as a dead letter
//! (`medsec export dead-letters`) and passed.
//!
//! Sinks (`[[export]]` in the configuration) are webhooks (JSON, signed with HMAC-SHA256 over
//! the timestamp and body, as Stripe and GitHub sign theirs), Splunk's HTTP Event Collector, and
//! syslog over TLS (RFC 5424 framed by octet counting, RFC 5425) carrying CEF.

pub mod sinks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medsec_store::prelude::*;
use medsec_store::{AlertRow, AuditRow, DeadLetter};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::state::AppState;

/// Kinds of event a sink may take.
pub const KINDS: &[&str] = &[
    "alert",
    "incident",
    "campaign",
    "audit-check",
    "revocation",
    "lifecycle",
    "refusal",
];

/// Severities, lowest first.
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];

fn rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

/// What a sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    /// JSON over HTTP(S), signed.
    Webhook,
    /// Splunk's HTTP Event Collector.
    SplunkHec,
    /// Syslog over TLS with CEF payloads.
    Syslog,
}

/// Where new sinks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// With the events recorded after the sink was first seen.
    #[default]
    Now,
    /// With every event the store holds.
    Beginning,
}

/// One `[[export]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Its name (its cursors and dead letters are kept under it).
    pub name: String,
    /// `webhook`, `splunk-hec` or `syslog`.
    pub kind: SinkKind,
    /// Webhook and Splunk HEC: the URL (`https://…`, or `http://` for a receiver on the host).
    #[serde(default)]
    pub url: Option<String>,
    /// Syslog: `HOST:PORT` of the TLS receiver.
    #[serde(default)]
    pub address: Option<String>,
    /// Syslog: the name the receiver's certificate must carry (default: HOST).
    #[serde(default)]
    pub server_name: Option<String>,
    /// The CA the receiver's certificate must chain to (required for TLS).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Webhook: the HMAC key; Splunk HEC: the token. A file only its owner may read.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The kinds it takes (default all but `refusal`).
    #[serde(default = "default_kinds")]
    pub kinds: Vec<String>,
    /// The lowest severity it takes (default `low`).
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
    /// Attempts at an event the receiver refuses for good before it becomes a dead letter.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Where a sink seen for the first time starts: `now` (default) or `beginning`.
    #[serde(default)]
    pub start: Start,
}

fn default_kinds() -> Vec<String> {
    KINDS
        .iter()
        .filter(|k| **k != "refusal")
        .map(|k| (*k).to_owned())
        .collect()
}

fn default_min_severity() -> String {
    "low".into()
}

fn default_max_attempts() -> u32 {
    5
}

impl SinkConfig {
    /// Checks what the configuration says; the error names the sink and the field.
    pub fn check(&self) -> Result<(), String> {
        let named = |what: String| format!("export {:?}: {what}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(named(
                "name must be letters, digits, - or _ (it keys the sink's position)".into(),
            ));
        }
        if let Some(k) = self.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(named(format!(
                "unknown kind {k:?}: use {}",
                KINDS.join(", ")
            )));
        }
        if !SEVERITIES.contains(&self.min_severity.as_str()) {
            return Err(named(format!(
                "min_severity {:?}: use {}",
                self.min_severity,
                SEVERITIES.join(", ")
            )));
        }
        if self.max_attempts == 0 {
            return Err(named("max_attempts must be at least 1".into()));
        }
        match self.kind {
            SinkKind::Webhook | SinkKind::SplunkHec => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| named("url is required".into()))?;
                if url.starts_with("https://") && self.ca_file.is_none() {
                    return Err(named(
                        "ca_file is required for https (the receiver's CA; system roots are not used)"
                            .into(),
                    ));
                }
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    return Err(named(format!("url {url:?} is not http(s)")));
                }
                if self.secret_file.is_none() {
                    return Err(named(
                        "secret_file is required (the webhook's HMAC key, or the HEC token)".into(),
                    ));
                }
            }
            SinkKind::Syslog => {
                let address = self
                    .address
                    .as_deref()
                    .ok_or_else(|| named("address (HOST:PORT) is required".into()))?;
                if !address.contains(':') {
                    return Err(named(format!("address {address:?} is not HOST:PORT")));
                }
                if self.ca_file.is_none() {
                    return Err(named(
                        "ca_file is required (syslog is sent over TLS only)".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn takes(&self, event: &ExportEvent) -> bool {
        self.kinds.contains(&event.kind) && rank(&event.severity) >= rank(&self.min_severity)
    }
}

/// One exported event: the same fields for every sink (CEF maps them to its keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportEvent {
    /// Stable across retries and restarts: `audit-SEQ` or `alert-ID`.
    pub id: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// One of [`SEVERITIES`].
    pub severity: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// When it happened, RFC 3339.
    pub at: String,
    /// The action (`incident.manage`, `device.revoke`, an alert's rule, …).
    pub action: String,
    /// Who acted (`Operator::"olga"`, `Device::"pump-7"`, `system`).
    pub principal: String,
    /// What it was done to.
    pub resource: String,
    /// The decision or outcome.
    pub outcome: String,
    /// One line.
    pub summary: String,
    /// The device concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The source address of the request, when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The alert's ATT&CK for ICS technique, when it is an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
}

/// The export kind and severity of an audit event, if it is security-relevant (the export and
/// the security log lines take these).
pub fn classify(e: &medsec_audit::Event) -> Option<(&'static str, String)> {
    Some(match (e.kind.as_str(), e.action.as_str()) {
        (_, _) if e.decision == "deny" => ("refusal", "medium".to_owned()),
        ("incident", "incident.open") => ("incident", "high".into()),
        ("incident", _) => ("incident", "medium".into()),
        ("revocation", "crl.sign") => ("revocation", "info".into()),
        ("revocation", _) => ("revocation", "high".into()),
        ("campaign", "campaign.status") if e.detail.contains("halted") => {
            ("campaign", "high".into())
        }
        ("campaign", "campaign.status") => ("campaign", "info".into()),
        ("defender", "defender.audit") if SEVERITIES.contains(&e.decision.as_str()) => {
            ("audit-check", e.decision.clone())
        }
        ("lifecycle", _) => ("lifecycle", "medium".into()),
        _ => return None,
    })
}

/// The export event of an audit entry, if it is one sinks take.
pub fn from_audit(row: &AuditRow) -> Option<ExportEvent> {
    let entry: medsec_audit::Entry = serde_json::from_str(&row.entry).ok()?;
    let e = &entry.event;
    let (kind, severity) = classify(e)?;
    let at_ms = i64::try_from(entry.time_ms).unwrap_or(i64::MAX);
    let device = e
        .resource
        .strip_prefix("Device::\"")
        .and_then(|r| r.strip_suffix('"'))
        .map(str::to_owned);
    Some(ExportEvent {
        id: format!("audit-{}", row.seq),
        kind: kind.into(),
        severity,
        at_ms,
        at: crate::repeats::rfc3339(at_ms),
        action: e.action.clone(),
        principal: e.principal.clone(),
        resource: e.resource.clone(),
        outcome: e.decision.clone(),
        summary: if e.detail.is_empty() {
            format!("{} {} {}", e.principal, e.action, e.resource)
        } else {
            e.detail.clone()
        },
        device,
        source: e.source.clone(),
        technique: None,
    })
}

/// The export event of an alert (a suppressed one is not exported: that is what suppressing
/// it means; it stays stored and counted).
pub fn from_alert(row: &AlertRow) -> Option<ExportEvent> {
    if row.suppressed_by != 0 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(&row.body).unwrap_or_default();
    let text = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let technique = body
        .get("technique")
        .and_then(|t| t.get("id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Some(ExportEvent {
        id: format!("alert-{}", row.id),
        kind: "alert".into(),
        severity: row.severity.clone(),
        at_ms: row.raised_at_ms,
        at: crate::repeats::rfc3339(row.raised_at_ms),
        action: row.rule.clone(),
        principal: format!("Device::{:?}", row.device_id),
        resource: format!("Device::{:?}", row.device_id),
        outcome: "alert".into(),
        summary: text("summary"),
        device: Some(row.device_id.clone()),
        source: String::new(),
        technique,
    })
}

/// The two sources, each read from a position.
#[derive(Clone, Copy)]
enum Source {
    Audit,
    Alerts,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Audit => "audit",
            Source::Alerts => "alerts",
        }
    }
}

/// How long an alert's id waits before the export passes it: a transaction that took a lower
/// id may still be committing (PostgreSQL hands out ids before commit).
const SETTLE_MS: i64 = 5_000;
/// Events read per round.
const PAGE: u32 = 200;

/// The next events after `position`: (position, event if sinks take such events).
async fn page(
    state: &AppState,
    source: Source,
    position: i64,
) -> Result<Vec<(i64, Option<ExportEvent>)>, Error> {
    Ok(match source {
        Source::Audit => state
            .store
            .audit_entries(position + 1, PAGE)
            .await?
            .iter()
            .map(|r| (r.seq, from_audit(r)))
            .collect(),
        Source::Alerts => state
            .store
            .alerts_after(position, crate::state::now_ms() - SETTLE_MS, PAGE)
            .await?
            .iter()
            .map(|r| (r.id, from_alert(r)))
            .collect(),
    })
}

/// Where a sink seen for the first time starts in `source`.
async fn initial(state: &AppState, sink: &SinkConfig, source: Source) -> Result<i64, Error> {
    if sink.start == Start::Beginning {
        return Ok(-1);
    }
    Ok(match source {
        Source::Audit => state
            .store
            .audit_latest_head()
            .await?
            .map_or(-1, |h| h.tree_size - 1),
        Source::Alerts => state.store.max_alert_id().await?,
    })
}

/// Runs every configured sink, each in its own task, for as long as the server runs. A sink
/// whose secret or CA cannot be read stops the start, naming it: a sink that silently never
/// runs would lose every event.
pub fn spawn(state: &Arc<AppState>) -> Result<(), Error> {
    for sink in &state.config.export {
        let mut delivery =
            sinks::Delivery::new(sink, &state.config).map_err(|e| Error::Config {
                reason: format!("export {:?}: {e}", sink.name),
            })?;
        let (state, sink) = (state.clone(), sink.clone());
        tracing::info!(sink = %sink.name, kind = ?sink.kind, "exporting security events");
        tokio::spawn(async move {
            loop {
                match round(&state, &sink, &mut delivery).await {
                    Ok(0) => tokio::time::sleep(Duration::from_millis(500)).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(sink = %sink.name, error = %e, "export: reading the store failed; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
    Ok(())
}

/// One page of each source: delivers what the sink takes, in order, and moves its positions.
/// Returns how many events it went past.
async fn round(
    state: &AppState,
    sink: &SinkConfig,
    delivery: &mut sinks::Delivery,
) -> Result<usize, Error> {
    let mut passed = 0;
    for source in [Source::Audit, Source::Alerts] {
        let position = match state.store.export_cursor(&sink.name, source.name()).await? {
            Some(p) => p,
            None => {
                let p = initial(state, sink, source).await?;
                state
                    .store
                    .set_export_cursor(&sink.name, source.name(), p, crate::state::now_ms())
                    .await?;
                p
            }
        };
        let events = page(state, source, position).await?;
        let Some(last) = events.last().map(|(p, _)| *p) else {
            continue;
        };
        for (at, event) in events {
            if let Some(event) = event.filter(|e| sink.takes(e)) {
                deliver(state, sink, delivery, &event).await?;
                state
                    .store
                    .set_export_cursor(&sink.name, source.name(), at, crate::state::now_ms())
                    .await?;
            }
            passed += 1;
        }
        // Filtered-out events after the last delivered one: passed in one write.
        state
            .store
            .set_export_cursor(&sink.name, source.name(), last, crate::state::now_ms())
            .await?;
    }
    Ok(passed)
}

/// Delivers one event: retried with back-off (1 s doubling to 5 min) until the receiver takes
/// it; a refusal for good, `max_attempts` times, makes it a dead letter.
async fn deliver(
    state: &AppState,
    sink: &SinkConfig,
    delivery: &mut sinks::Delivery,
    event: &ExportEvent,
) -> Result<(), Error> {
    let metrics = crate::metrics::global();
    let mut backoff = Duration::from_secs(1);
    let mut refusals = 0u32;
    loop {
        match delivery.send(event).await {
            Ok(()) => {
                metrics
                    .exported
                    .with_label_values(&[&sink.name, "delivered"])
                    .inc();
                return Ok(());
            }
            Err(sinks::Failure::Refused(why)) => {
                refusals += 1;
                if refusals >= sink.max_attempts {
                    tracing::warn!(sink = %sink.name, event = %event.id, error = %why, "export: event refused for good; kept as a dead letter");
                    state
                        .store
                        .add_export_dead_letter(&DeadLetter {
                            id: 0,
                            sink: sink.name.clone(),
                            event_id: event.id.clone(),
                            event: serde_json::to_string(event).unwrap_or_default(),
                            error: why,
                            attempts: i64::from(refusals),
                            at_ms: crate::state::now_ms(),
                        })
                        .await?;
                    metrics
                        .exported
                        .with_label_values(&[&sink.name, "dead-letter"])
                        .inc();
                    return Ok(());
                }
                metrics
                    .exported
                    .with_label_values(&[&sink.name, "refused"])
                    .inc();
            }
            Err(sinks::Failure::Unavailable(why)) => {
                metrics
                    .exported
                    .with_label_values(&[&sink.name, "retried"])
                    .inc();
                tracing::debug!(sink = %sink.name, event = %event.id, error = %why, "export: receiver unavailable; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(toml_kind: SinkKind) -> SinkConfig {
        SinkConfig {
            name: "soc".into(),
            kind: toml_kind,
            url: Some("https://siem.example/hook".into()),
            address: Some("siem.example:6514".into()),
            server_name: None,
            ca_file: Some("/etc/medsec/siem-ca.pem".into()),
            secret_file: Some("/etc/medsec/hook.secret".into()),
            kinds: default_kinds(),
            min_severity: "low".into(),
            max_attempts: 5,
            start: Start::Now,
        }
    }

    #[test]
    fn a_sink_is_checked_by_name_and_field() {
        assert!(sink(SinkKind::Webhook).check().is_ok());
        assert!(sink(SinkKind::Syslog).check().is_ok());
        let mut s = sink(SinkKind::Webhook);
        s.ca_file = None;
        assert!(
            s.check()
                .unwrap_err()
                .contains("ca_file is required for https")
        );
        let mut s = sink(SinkKind::SplunkHec);
        s.secret_file = None;
        assert!(s.check().unwrap_err().contains("secret_file"));
        let mut s = sink(SinkKind::Webhook);
        s.kinds.push("everything".into());
        assert!(
            s.check()
                .unwrap_err()
                .contains("unknown kind \"everything\"")
        );
        let mut s = sink(SinkKind::Syslog);
        s.address = Some("siem".into());
        assert!(s.check().unwrap_err().contains("HOST:PORT"));
        let mut s = sink(SinkKind::Webhook);
        s.name = "a b".into();
        assert!(s.check().is_err());
    }

    #[test]
    fn audit_entries_become_events_by_kind_and_the_rest_are_left_out() {
        let row = |kind: &str, action: &str, decision: &str, detail: &str| {
            let mut e = crate::audit_log::event(
                kind,
                "Operator::\"olga\"",
                action,
                "Device::\"pump-1\"",
                decision,
            );
            e.detail = detail.into();
            let entry = medsec_audit::Entry {
                seq: 41,
                time_ms: 1_796_600_000_000,
                prev: String::new(),
                event: e,
            };
            AuditRow {
                seq: 41,
                entry: serde_json::to_string(&entry).unwrap(),
            }
        };
        let e = from_audit(&row("revocation", "device.revoke", "info", "revoked 1")).unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind.as_str(), e.severity.as_str()),
            ("audit-41", "revocation", "high")
        );
        assert_eq!(e.device.as_deref(), Some("pump-1"));
        let halt = from_audit(&row(
            "campaign",
            "campaign.status",
            "warn",
            r#"{"halted":{}}"#,
        ))
        .unwrap();
        assert_eq!(halt.severity, "high");
        let deny = from_audit(&row("authz", "device.read", "deny", "")).unwrap();
        assert_eq!(deny.kind, "refusal");
        assert!(from_audit(&row("inventory", "device.update", "info", "")).is_none());
        let s = sink(SinkKind::Webhook);
        assert!(s.takes(&halt) && !s.takes(&deny), "refusals are opt-in");
        let crl = from_audit(&row("revocation", "crl.sign", "info", "")).unwrap();
        assert!(!s.takes(&crl), "info is below the default min_severity");
    }
}
