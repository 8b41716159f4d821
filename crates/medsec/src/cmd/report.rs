//! `medsec report compliance`: the evidence report from the store (read directly, like
//! `medsec audit verify`), with the inventory records of `medsec inventory`.

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use medsec_server::DataDir;
use medsec_server::audit_log;

use crate::cmd::server::{Location, runtime};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The compliance evidence report: every control of the catalogue (docs/compliance.md:
    /// FDA premarket and §524B, EU MDR, IEC 81001-5-1, IEC 62304, NIST CSF 2.0, HIPAA
    /// §164.312, EU CRA) with the evidence medsec holds, as OUT/compliance.html and
    /// OUT/compliance.json, and the CycloneDX SBOM + VEX bundle in OUT/bundle/. The same data
    /// gives the same bytes.
    Compliance {
        #[command(flatten)]
        location: Location,
        /// Output directory (created if absent). The report's files in it are replaced, and
        /// bundle files of releases no longer held are removed.
        #[arg(long)]
        out: PathBuf,
        /// The moment the report is about (RFC 3339). Default: the last recorded event (the
        /// newest signed tree head of the audit log), so re-runs on the same data agree.
        #[arg(long)]
        as_of: Option<String>,
        /// The audit log's public key (default: DATA_DIR/audit.pub).
        #[arg(long)]
        audit_key: Option<PathBuf>,
        /// Exit 1 when a control has a gap.
        #[arg(long)]
        fail_on_gap: bool,
    },
}

fn parse_time(text: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--as-of {text:?} is not an RFC 3339 time"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("--as-of is out of range")
}

/// Replaces `path` with `bytes` (write to a temporary file, then rename).
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A report's files, gathered here from the store or fetched from the server.
pub struct Fetched {
    /// `compliance.json`.
    pub json: String,
    /// `compliance.html`.
    pub html: String,
    /// The bundle's files: (name, bytes).
    pub bundle: Vec<(String, Vec<u8>)>,
}

/// Gathers the report from the store named by `location` (on the server host).
fn gather(location: &Location, as_of: Option<i64>, audit_key: Option<PathBuf>) -> Result<Fetched> {
    let config = location.existing()?;
    let key_path = audit_key.unwrap_or_else(|| DataDir::new(&config.data_dir).audit_pub());
    let key = audit_log::read_public_key(&key_path)?;
    let policies = match &config.policy_dir {
        Some(dir) => medsec_server::authz::Policies::from_dir(dir)?,
        None => medsec_server::authz::Policies::shipped()?,
    };
    let catalogue = medsec_risk::compliance::catalogue()?;
    let names = medsec_server::vendor_names(&config)?;
    let output = runtime()?.block_on(async {
        let store = medsec_server::open_store(&config).await?;
        let output =
            medsec_server::compliance::gather(&store, &catalogue, &policies, &key, as_of, &names)
                .await;
        store.close().await;
        anyhow::Ok(output?)
    })?;
    Ok(Fetched {
        json: output.report.to_json()?,
        html: output.report.to_html(),
        bundle: output.bundle,
    })
}

pub fn run(cmd: ReportCommand, remote: &crate::cmd::remote::Remote) -> Result<()> {
    let ReportCommand::Compliance {
        location,
        out,
        as_of,
        audit_key,
        fail_on_gap,
    } = cmd;
    let as_of = as_of.as_deref().map(parse_time).transpose()?;
    // On the server host with --data-dir/--config/--database-url: from the store; otherwise
    // from the current context's server.
    let fetched = if location.direct(remote) {
        gather(&location, as_of, audit_key)?
    } else {
        if audit_key.is_some() {
            bail!("--audit-key applies to a report gathered on the server host (--data-dir)");
        }
        crate::cmd::remote::compliance(remote, as_of)?
    };
    let bundle = out.join("bundle");
    std::fs::create_dir_all(&bundle).with_context(|| format!("creating {}", bundle.display()))?;
    write(&out.join("compliance.json"), fetched.json.as_bytes())?;
    write(&out.join("compliance.html"), fetched.html.as_bytes())?;
    for (name, bytes) in &fetched.bundle {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            bail!("the bundle names a file {name:?} outside its folder");
        }
        write(&bundle.join(name), bytes)?;
    }
    // A release no longer held must not leave its files behind to be taken for evidence.
    for entry in std::fs::read_dir(&bundle)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".json") && !fetched.bundle.iter().any(|(n, _)| n == name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
    }
    let r: serde_json::Value =
        serde_json::from_str(&fetched.json).context("the report is not JSON")?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let mut lines = String::new();
    for c in r["controls"].as_array().into_iter().flatten() {
        if c["status"] == "evidenced" {
            continue;
        }
        lines.push_str(&format!(
            "{:<10} {:<44} {:<16} {}\n",
            text(&c["status"]).to_uppercase(),
            text(&c["framework"]),
            text(&c["clause"]),
            text(&c["title"])
        ));
    }
    let count = |s: &str| r["summary"][s].as_u64().unwrap_or(0);
    lines.push_str(&format!(
        "as of {}: {} controls evidenced, {} partial, {} with a gap; written to {}\n",
        text(&r["as_of"]),
        count("evidenced"),
        count("partial"),
        count("gap"),
        out.display()
    ));
    crate::cmd::remote::output::emit(&lines)?;
    if fail_on_gap && count("gap") > 0 {
        bail!("{} control(s) have a gap", count("gap"));
    }
    Ok(())
}
