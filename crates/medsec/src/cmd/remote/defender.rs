//! `medsec defender suppress|suppressions|lift|audit` and `medsec investigate` against the
//! current context's server (with `--data-dir` they act on the server host's store).

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::Remote;
use super::client::{Body, query, segment};
use super::output::{Format, col, emit, print, time, wide};

/// A new suppression.
pub fn suppress(
    remote: &Remote,
    rule: &str,
    scope: &str,
    value: &str,
    reason: &str,
    duration_secs: i64,
) -> Result<()> {
    let (client, format) = remote.open()?;
    let body = json!({
        "rule": rule, "scope": scope, "value": value, "reason": reason,
        "duration_secs": duration_secs,
    });
    let v = client.json("POST", "/api/v1/suppressions", Body::Json(&body))?;
    match format {
        Format::Json | Format::Yaml => print(format, &v, &[], &[]),
        _ => emit(&format!(
            "suppression {}: {} for {} {} until {}: {}\n",
            v["id"],
            rule,
            scope,
            value,
            super::output::rfc3339(v["expires_at_ms"].as_i64().unwrap_or(0)),
            reason
        )),
    }
}

/// Every suppression, in force or not.
pub fn suppressions(remote: &Remote, json: bool) -> Result<()> {
    let (client, format) = remote.open_with_json(json)?;
    let v = client.get("/api/v1/suppressions")?;
    let rows = v.as_array().cloned().unwrap_or_default();
    print(
        format,
        &v,
        &rows,
        &[
            col("ID", "id"),
            col("RULE", "rule"),
            col("SCOPE", "scope"),
            col("VALUE", "value"),
            col("IN FORCE", "in_force"),
            time("EXPIRES", "expires_at_ms"),
            col("BY", "created_by"),
            col("REASON", "reason"),
            wide(time("LIFTED", "lifted_at_ms")),
        ],
    )
}

/// Lifts a suppression.
pub fn lift(remote: &Remote, id: i64) -> Result<()> {
    let (client, _) = remote.open()?;
    client.send("DELETE", &format!("/api/v1/suppressions/{id}"), Body::None)?;
    emit(&format!("suppression {id} lifted\n"))
}

/// The Defender's audit checks, run by the server; fails at `fail_on` or above.
pub fn audit(
    remote: &Remote,
    cert_days: i64,
    silent_hours: i64,
    fail_on: medsec_defender::rules::Severity,
    json: bool,
) -> Result<()> {
    let (client, format) = remote.open_with_json(json)?;
    let v = client.get(&format!(
        "/api/v1/defender/audit?cert_days={cert_days}&silent_hours={silent_hours}"
    ))?;
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() && matches!(format, Format::Table | Format::Wide) {
        emit("no findings\n")?;
    } else {
        print(
            format,
            &v,
            &rows,
            &[
                col("SEVERITY", "severity"),
                col("CHECK", "check"),
                col("RESOURCE", "resource"),
                col("DETAIL", "detail"),
            ],
        )?;
    }
    let at_or_above = rows
        .iter()
        .filter(|f| {
            f["severity"]
                .as_str()
                .and_then(medsec_defender::rules::Severity::from_name)
                .is_some_and(|s| s >= fail_on)
        })
        .count();
    if at_or_above > 0 {
        bail!("{at_or_above} finding(s) at or above {fail_on:?}");
    }
    Ok(())
}

/// One device's timeline (table, json or csv).
pub fn timeline(
    remote: &Remote,
    device: &str,
    since_ms: i64,
    until_ms: i64,
    kinds: &str,
    format_name: &str,
    limit: u32,
) -> Result<()> {
    let (client, _) = remote.open()?;
    let wire = if format_name == "csv" { "csv" } else { "json" };
    let q = query(&[
        ("since_ms", Some(since_ms.to_string())),
        (
            "until_ms",
            (until_ms != i64::MAX).then(|| until_ms.to_string()),
        ),
        ("kind", (!kinds.is_empty()).then(|| kinds.to_owned())),
        ("format", Some(wire.to_owned())),
        ("limit", Some(limit.to_string())),
    ]);
    let path = format!("/api/v1/devices/{}/timeline{q}", segment(device));
    let text = client.send("GET", &path, Body::None)?;
    match format_name {
        "csv" | "json" => emit(&text),
        _ => {
            let v: Value = serde_json::from_str(&text)?;
            let rows = v.as_array().cloned().unwrap_or_default();
            print(
                Format::Wide,
                &v,
                &rows,
                &[
                    time("AT", "at_ms"),
                    col("KIND", "kind"),
                    col("SUMMARY", "summary"),
                ],
            )?;
            eprintln!("{} entries", rows.len());
            Ok(())
        }
    }
}
