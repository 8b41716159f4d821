//! `medsec investigate DEVICE`: the device's forensic timeline from the server's store (the
//! same view as `GET /api/v1/devices/{id}/timeline`), as a table, JSON or CSV. The read is
//! recorded in the audit log.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use medsec_server::audit_log;
use medsec_server::timeline::{self, Filter};

use crate::cmd::server::{
    Location, cli_principal, now_ms, open_with_audit, parse_duration_secs, runtime,
};

#[derive(Args)]
pub struct InvestigateArgs {
    /// The device.
    device: String,
    #[command(flatten)]
    location: Location,
    #[command(flatten)]
    remote: crate::cmd::remote::Remote,
    /// From: an RFC 3339 time, Unix milliseconds, or a duration back from now (`24h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// To: same forms (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Kinds, comma-separated: telemetry, security, alert, incident, update, certificate,
    /// decision (default: all).
    #[arg(long, default_value = "")]
    kind: String,
    /// `table` (default), `json` or `csv`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Most entries read from each source.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

/// Parses a time as `--since`/`--until` take it.
fn parse_time(text: &str, now: i64) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    match parse_duration_secs(text) {
        Ok(secs) => Ok(now - secs * 1000),
        Err(_) => bail!(
            "{text:?} is not a time: give RFC 3339 (2026-12-03T10:00:00Z), Unix milliseconds, \
             or a duration back from now (90m, 24h, 7d)"
        ),
    }
}

pub fn run(a: InvestigateArgs) -> Result<()> {
    let now = now_ms();
    let filter = Filter {
        since_ms: a
            .since
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()?
            .unwrap_or(0),
        until_ms: a
            .until
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()?
            .unwrap_or(i64::MAX),
        kinds: Filter::kinds(&a.kind).map_err(anyhow::Error::msg)?,
        per_source: a.limit.clamp(1, 10_000),
    };
    if !["table", "json", "csv"].contains(&a.format.as_str()) {
        bail!("--format {:?}: use table, json or csv", a.format);
    }
    if !a.location.direct(&a.remote) {
        return crate::cmd::remote::defender::timeline(
            &a.remote,
            &a.device,
            filter.since_ms,
            filter.until_ms,
            &a.kind,
            &a.format,
            a.limit.clamp(1, 10_000),
        );
    }
    let config = a.location.existing()?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let entries = timeline::build(&store, &a.device, &filter)
            .await
            .with_context(|| format!("the timeline of {}", a.device))?;
        let mut e = audit_log::event(
            "investigate",
            &cli_principal(),
            "device.read",
            &format!("Device::{:?}", a.device),
            "info",
        );
        e.detail = format!(
            "timeline read on the command line: {} entries",
            entries.len()
        );
        log.record(e).await?;
        match a.format.as_str() {
            "json" => println!("{}", serde_json::to_string_pretty(&entries)?),
            "csv" => print!(
                "{}",
                timeline::to_csv(&entries).map_err(anyhow::Error::msg)?
            ),
            _ => {
                for e in &entries {
                    let t = time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(e.at_ms) * 1_000_000,
                    )
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| e.at_ms.to_string());
                    println!("{t}  {:<11}  {}", e.kind, e.summary);
                }
                eprintln!("{} entries", entries.len());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms_and_bad_ones_are_named() {
        let now = 1_796_292_000_000;
        assert_eq!(parse_time("1796291000000", now).unwrap(), 1_796_291_000_000);
        assert_eq!(parse_time("2026-12-03T10:00:00Z", now).unwrap(), now);
        assert_eq!(parse_time("24h", now).unwrap(), now - 86_400_000);
        let err = parse_time("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("not a time"), "{err}");
    }
}
