//! `medsec report compliance` and the asset records behind it (`medsec fleet model|vendor|
//! support`). Both read the store directly, like `medsec audit verify`; changes are audited.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use medsec_server::DataDir;
use medsec_server::assets::{Record, Registry, all_devices};
use medsec_server::audit_log;

use crate::cmd::server::{Location, cli_principal, now_ms, open_with_audit, runtime};

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

pub fn run(cmd: ReportCommand) -> Result<()> {
    let ReportCommand::Compliance {
        location,
        out,
        as_of,
        audit_key,
        fail_on_gap,
    } = cmd;
    let as_of = as_of.as_deref().map(parse_time).transpose()?;
    let config = location.load(None, None)?;
    let key_path = audit_key.unwrap_or_else(|| DataDir::new(&config.data_dir).audit_pub());
    let key = audit_log::read_public_key(&key_path)?;
    let policies = match &config.policy_dir {
        Some(dir) => medsec_server::authz::Policies::from_dir(dir)?,
        None => medsec_server::authz::Policies::shipped()?,
    };
    let catalogue = medsec_risk::compliance::catalogue()?;
    let output = runtime()?.block_on(async {
        let store = medsec_server::open_store(&config).await?;
        let output =
            medsec_server::compliance::gather(&store, &catalogue, &policies, &key, as_of).await;
        store.close().await;
        anyhow::Ok(output?)
    })?;
    let bundle = out.join("bundle");
    std::fs::create_dir_all(&bundle).with_context(|| format!("creating {}", bundle.display()))?;
    write(
        &out.join("compliance.json"),
        output.report.to_json()?.as_bytes(),
    )?;
    write(
        &out.join("compliance.html"),
        output.report.to_html().as_bytes(),
    )?;
    for (name, bytes) in &output.bundle {
        write(&bundle.join(name), bytes)?;
    }
    // A release no longer held must not leave its files behind to be taken for evidence.
    for entry in std::fs::read_dir(&bundle)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".json") && !output.bundle.iter().any(|(n, _)| n == name) {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
    }
    let r = &output.report;
    for c in r.controls.iter().filter(|c| c.status != "evidenced") {
        println!(
            "{:<10} {:<44} {:<16} {}",
            c.status.to_uppercase(),
            c.control.framework,
            c.control.clause,
            c.control.title
        );
    }
    let count = |s: &str| r.summary.get(s).copied().unwrap_or(0);
    println!(
        "as of {}: {} controls evidenced, {} partial, {} with a gap; written to {}",
        r.as_of,
        count("evidenced"),
        count("partial"),
        count("gap"),
        out.display()
    );
    if fail_on_gap && count("gap") > 0 {
        bail!("{} control(s) have a gap", count("gap"));
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum AssetCommand {
    /// Store a record from a JSON file, replacing the earlier one (docs/risk.md gives the
    /// fields).
    Set {
        #[command(flatten)]
        location: Location,
        /// The model or vendor name.
        name: String,
        /// The JSON file.
        file: PathBuf,
    },
    /// Print every record as JSON, with each model's support state today and each vendor's
    /// missing documents.
    List {
        #[command(flatten)]
        location: Location,
    },
}

pub fn run_asset(record: Record, cmd: AssetCommand) -> Result<()> {
    match cmd {
        AssetCommand::Set {
            location,
            name,
            file,
        } => {
            let config = location.load(None, None)?;
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            runtime()?.block_on(async move {
                let (store, log) = open_with_audit(&config).await?;
                let result =
                    medsec_server::assets::put(&store, record, &name, &body, now_ms()).await;
                if result.is_ok() {
                    let (resource, what) = match record {
                        Record::Model => (format!("Model::{name:?}"), "model profile"),
                        Record::Vendor => (format!("Vendor::{name:?}"), "vendor record"),
                    };
                    let mut e =
                        audit_log::event("risk", &cli_principal(), "risk.write", &resource, "info");
                    e.detail = format!("{what} stored, on the command line");
                    log.record(e).await?;
                }
                store.close().await;
                let stored = result.map_err(|e| match e {
                    medsec_server::Error::Config { reason } => {
                        anyhow!("{}: {reason}", file.display())
                    }
                    other => anyhow!("{}: {other}", file.display()),
                })?;
                println!("{stored}");
                Ok(())
            })
        }
        AssetCommand::List { location } => {
            let config = location.load(None, None)?;
            runtime()?.block_on(async move {
                let store = medsec_server::open_store(&config).await?;
                let registry = Registry::read(&store).await;
                store.close().await;
                let registry = registry?;
                let now = now_ms();
                let value = match record {
                    Record::Model => serde_json::json!(
                        registry
                            .models
                            .iter()
                            .map(|(name, p)| serde_json::json!({
                                "model": name, "profile": p,
                                "support": registry.support(name, now),
                            }))
                            .collect::<Vec<_>>()
                    ),
                    Record::Vendor => serde_json::json!(registry.vendor_view()),
                };
                println!("{}", serde_json::to_string_pretty(&value)?);
                Ok(())
            })
        }
    }
}

/// `medsec fleet support`: the devices whose vendor no longer ships updates, those whose
/// support ends soon, and those with no model profile.
pub fn run_support(location: &Location, json: bool) -> Result<()> {
    let config = location.load(None, None)?;
    runtime()?.block_on(async move {
        let store = medsec_server::open_store(&config).await?;
        let registry = Registry::read(&store).await;
        let devices = all_devices(&store).await;
        store.close().await;
        let report = registry?.support_report(&devices?, now_ms());
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        for (label, list) in [
            ("REPLACE", &report.replace),
            ("ENDING", &report.ending_soon),
            ("UNKNOWN", &report.unknown),
        ] {
            for d in list {
                println!(
                    "{label:<8} {:<24} {:<20} {:<14} {}",
                    d.device,
                    d.model,
                    d.site,
                    d.support
                        .as_ref()
                        .map_or("no model profile", |s| s.why.as_str())
                );
            }
        }
        eprintln!(
            "{}: {} to replace, {} ending soon, {} unknown, {} supported",
            report.date,
            report.replace.len(),
            report.ending_soon.len(),
            report.unknown.len(),
            report.supported
        );
        Ok(())
    })
}
