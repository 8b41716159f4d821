//! Investigator: one device's forensic timeline, joining what the store knows about it —
//! telemetry batches and the security events in them, alerts, incidents and their actions,
//! signed version reports (installs), certificates, and the audit log's policy decisions —
//! in time order, filtered by time and kind, as JSON or CSV.

use std::collections::BTreeSet;

use medsec_store::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// The value at `pointer` in `v`, or null.
fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

use medsec_defender::incident::Incident;

/// The kinds of entry.
pub const KINDS: &[&str] = &[
    "telemetry",
    "security",
    "alert",
    "incident",
    "update",
    "certificate",
    "decision",
];

/// What to show.
#[derive(Debug, Clone)]
pub struct Filter {
    /// From (Unix ms, inclusive).
    pub since_ms: i64,
    /// To (Unix ms, inclusive).
    pub until_ms: i64,
    /// Kinds to show (all when empty).
    pub kinds: BTreeSet<String>,
    /// Most entries read from each source.
    pub per_source: u32,
}

impl Filter {
    /// Parses a comma-separated kind list, naming an unknown kind.
    pub fn kinds(list: &str) -> Result<BTreeSet<String>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                if KINDS.contains(&k) {
                    Ok(k.to_owned())
                } else {
                    Err(format!("unknown kind {k:?} (kinds: {})", KINDS.join(", ")))
                }
            })
            .collect()
    }

    fn wants(&self, kind: &str, at_ms: i64) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(kind))
            && (self.since_ms..=self.until_ms).contains(&at_ms)
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// When (Unix ms; device events at the device's clock, the rest at the server's).
    pub at_ms: i64,
    /// Which kind.
    pub kind: String,
    /// One line.
    pub summary: String,
    /// The record behind it.
    pub detail: serde_json::Value,
}

/// The timeline of `device`, oldest first.
pub async fn build(
    store: &medsec_store::AnyStore,
    device: &str,
    filter: &Filter,
) -> Result<Vec<Entry>, medsec_store::Error> {
    store.device(device).await?;
    let mut out = Vec::new();
    let mut push = |at_ms: i64, kind: &str, summary: String, detail: serde_json::Value| {
        if filter.wants(kind, at_ms) {
            out.push(Entry {
                at_ms,
                kind: kind.to_owned(),
                summary,
                detail,
            });
        }
    };
    for b in store
        .telemetry(device, filter.since_ms, filter.per_source)
        .await?
    {
        let batch: serde_json::Value = serde_json::from_slice(&b.body).unwrap_or_default();
        let events = at(&batch, "/events")
            .as_array()
            .cloned()
            .unwrap_or_default();
        push(
            b.received_at_ms,
            "telemetry",
            format!(
                "batch {} from {}: {} event(s)",
                b.sequence, b.source, b.events
            ),
            serde_json::json!({"sequence": b.sequence, "source": b.source}),
        );
        for e in events.iter().filter(|e| at(e, "/kind") == "security") {
            push(
                at(e, "/at_ms").as_i64().unwrap_or(b.received_at_ms),
                "security",
                format!(
                    "{} {}",
                    at(e, "/event").as_str().unwrap_or("?"),
                    at(e, "/detail").as_str().unwrap_or_default()
                )
                .trim()
                .to_owned(),
                e.clone(),
            );
        }
    }
    for a in store
        .alerts(Some(device), filter.since_ms, filter.per_source)
        .await?
    {
        let mut body: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
        let mut note = String::new();
        if a.occurrences > 1 {
            note.push_str(&format!(
                " [{} times, last at {}]",
                a.occurrences, a.last_seen_ms
            ));
        }
        if a.suppressed_by != 0 {
            note.push_str(&format!(" [suppressed by suppression {}]", a.suppressed_by));
        }
        if let Some(o) = body.as_object_mut() {
            o.insert("count".into(), a.occurrences.into());
            o.insert("last_seen_ms".into(), a.last_seen_ms.into());
            o.insert("suppressed_by".into(), a.suppressed_by.into());
        }
        push(
            a.raised_at_ms,
            "alert",
            format!(
                "{} {} ({}): {}{note}",
                a.severity,
                a.rule,
                at(&body, "/technique/id").as_str().unwrap_or("?"),
                at(&body, "/summary").as_str().unwrap_or_default()
            ),
            body,
        );
    }
    for row in store.incidents(false, filter.per_source).await? {
        let Ok(i) = serde_json::from_str::<Incident>(&row.body) else {
            continue;
        };
        if !i.devices.iter().any(|d| d == device) {
            continue;
        }
        push(
            i.opened_at_ms,
            "incident",
            format!("incident {} opened: {}", i.id, i.title),
            serde_json::json!({"incident": i.id}),
        );
        for a in i.actions.iter().filter(|a| a.device == device) {
            push(
                a.at_ms,
                "incident",
                format!(
                    "incident {}: {} by {}: {}",
                    i.id, a.playbook, a.by, a.detail
                ),
                serde_json::json!({"incident": i.id, "playbook": a.playbook, "by": a.by}),
            );
        }
    }
    for r in store.version_reports(device, filter.per_source).await? {
        let payload: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
        let install = payload
            .get("install")
            .map(|i| {
                format!(
                    "; {} {} ({})",
                    at(i, "/outcome").as_str().unwrap_or("?"),
                    at(i, "/target").as_str().unwrap_or("?"),
                    at(i, "/campaign").as_str().unwrap_or("?")
                )
            })
            .unwrap_or_default();
        push(
            r.received_at_ms,
            "update",
            format!(
                "signed report: runs {} (release counter {}){install}",
                r.version, r.release_counter
            ),
            payload,
        );
    }
    for k in store.device_keys(device).await? {
        push(
            k.created_at_ms,
            "certificate",
            format!(
                "certificate {} issued, valid until {}",
                k.serial, k.not_after_ms
            ),
            serde_json::json!({"serial": k.serial, "not_after_ms": k.not_after_ms,
                "spki_sha256": hex::encode(&k.spki_sha256)}),
        );
    }
    let label = format!("Device::{device:?}");
    // Entries are stored as JSON text, so the label is searched for as JSON writes it.
    let quoted = serde_json::to_string(&label).unwrap_or_default();
    let needle = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted);
    for row in store
        .audit_entries_mentioning(needle, filter.per_source)
        .await?
    {
        let entry: serde_json::Value = serde_json::from_str(&row.entry).unwrap_or_default();
        let ev = at(&entry, "/event");
        // Only entries whose principal or resource is the device (the label could also appear
        // in a free-text detail).
        if at(ev, "/principal") != label.as_str() && at(ev, "/resource") != label.as_str() {
            continue;
        }
        push(
            at(&entry, "/time_ms").as_i64().unwrap_or(0),
            "decision",
            format!(
                "{} {} {} on {}{}",
                at(ev, "/decision").as_str().unwrap_or("?"),
                at(ev, "/action").as_str().unwrap_or("?"),
                at(ev, "/principal").as_str().unwrap_or("?"),
                at(ev, "/resource").as_str().unwrap_or("?"),
                at(ev, "/detail")
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
            serde_json::json!({"seq": row.seq, "event": ev}),
        );
    }
    out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.kind.cmp(&b.kind)));
    Ok(out)
}

/// The timeline as CSV (`at_ms,time,kind,summary`), RFC 4180 quoting.
pub fn to_csv(entries: &[Entry]) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["at_ms", "time_utc", "kind", "summary"])
        .map_err(|e| e.to_string())?;
    for e in entries {
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        w.write_record([e.at_ms.to_string(), time, e.kind.clone(), e.summary.clone()])
            .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}
