//! `medsec inventory`: the model profiles and vendor records no device reports, and the
//! devices whose vendor support has ended or ends soon. They read and write the store directly,
//! like `medsec audit verify`; changes are audited. The operator API serves the same records
//! under `/api/v1/inventory/…`; a device's own inventory fields (model, hardware id, site,
//! groups) are `medsec fleet device update`.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use clap::Subcommand;
use medsec_server::audit_log;
use medsec_server::inventory::records::{Record, Registry, all_devices};

use crate::cmd::remote::Remote;
use crate::cmd::server::{Location, cli_principal, now_ms, open_with_audit, runtime};

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Model profiles: vendor, clinical class, network reach, vendor support, MDS2 answers.
    #[command(subcommand)]
    Model(RecordCommand),
    /// The vendor registry: security documents received, contract security terms.
    #[command(subcommand)]
    Vendor(RecordCommand),
    /// Devices whose vendor no longer ships updates (replace them), whose support ends
    /// within 180 days, or whose model has no profile.
    Support {
        #[command(flatten)]
        location: Location,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one command.
/// Runs one command: on the server host's store when a location is given, else through the
/// current context's server.
pub fn run(cmd: InventoryCommand, remote: &Remote) -> Result<()> {
    use crate::cmd::remote::records;
    let (record, cmd) = match cmd {
        InventoryCommand::Support { location, json } if !location.direct(remote) => {
            return records::support(remote, json);
        }
        InventoryCommand::Support { location, json } => return run_support(&location, json),
        InventoryCommand::Model(cmd) => (Record::Model, cmd),
        InventoryCommand::Vendor(cmd) => (Record::Vendor, cmd),
    };
    let plural = match record {
        Record::Model => "models",
        Record::Vendor => "vendors",
    };
    match cmd {
        RecordCommand::Set {
            location,
            name,
            file,
        } if !location.direct(remote) => records::set(remote, plural, &name, &file),
        RecordCommand::List { location } if !location.direct(remote) => {
            records::list(remote, plural)
        }
        cmd => run_record(record, cmd),
    }
}

#[derive(Subcommand)]
pub enum RecordCommand {
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

fn run_record(record: Record, cmd: RecordCommand) -> Result<()> {
    match cmd {
        RecordCommand::Set {
            location,
            name,
            file,
        } => {
            let config = location.existing()?;
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            runtime()?.block_on(async move {
                let (store, log) = open_with_audit(&config).await?;
                let result =
                    medsec_server::inventory::records::put(&store, record, &name, &body, now_ms())
                        .await;
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
        RecordCommand::List { location } => {
            let config = location.existing()?;
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

/// `medsec inventory support`: the devices whose vendor no longer ships updates, those whose
/// support ends soon, and those with no model profile.
pub fn run_support(location: &Location, json: bool) -> Result<()> {
    let config = location.existing()?;
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
