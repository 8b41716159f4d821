//! `medsec`: one binary for the medsec platform. This file parses arguments and dispatches; each
//! subcommand is a module of `cmd/`, the work is in the library crates, and `editor/` edits a
//! TUF repository for `medsec repo`.

#![forbid(unsafe_code)]

mod cmd;
mod editor;
mod keys;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::{
    ca, campaign, defender, demo, fleet_demo, inventory, investigate, mqtt, repo, report, risk,
    server, witness,
};

#[derive(Parser)]
#[command(name = "medsec", version, about = "Keeps fleets of connected medical devices secure", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole update story on embedded defaults: sign firmware, start the server, enrol a
    /// simulated fleet with the agent, watch a broken build halt in its canaries and the fix
    /// complete while devices in clinical use defer. `--tuf-tour` shows the TUF repository and
    /// client alone, with a tampered image refused.
    Demo {
        /// Keep the demo's files here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Devices in the simulated fleet.
        #[arg(long, default_value_t = 50)]
        devices: usize,
        /// The TUF repository and client tour instead of the fleet.
        #[arg(long)]
        tuf_tour: bool,
        /// Size of the tour's firmware image in MiB.
        #[arg(long, default_value_t = 8)]
        image_mib: u64,
    },
    /// Manage a signed TUF update repository (release engineers).
    #[command(subcommand)]
    Repo(Box<repo::RepoCommand>),
    /// The fleet certificate authority: device certificates, revocation, CRLs.
    #[command(subcommand)]
    Ca(Box<ca::CaCommand>),
    /// Run the server: EST enrolment and the device API on a mutual-TLS port, the operator API
    /// on another. With no configuration it starts on embedded defaults in ./medsec-data.
    Server {
        #[command(flatten)]
        location: server::Location,
        /// Device port address (default 127.0.0.1:8443).
        #[arg(long)]
        device_listen: Option<std::net::SocketAddr>,
        /// Operator port address (default 127.0.0.1:8444).
        #[arg(long)]
        operator_listen: Option<std::net::SocketAddr>,
        /// Allow the audit log key unencrypted (no CA passphrase): tests and throw-away demos
        /// only, since whoever reads it can re-sign a rewritten log.
        #[arg(long)]
        insecure_plaintext_audit_key: bool,
    },
    /// Devices: enrolment tokens, each device's inventory fields (model, hardware id, site,
    /// groups).
    #[command(subcommand)]
    Fleet(server::FleetCommand),
    /// The inventory records no device reports: model profiles, the vendor registry, and the
    /// devices whose vendor support has ended or ends soon.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Update campaigns: waves, automatic halt, maintenance windows, clinical-use deferral.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
    /// The device agent: enrol, poll the director, install A/B with health check and rollback.
    #[command(subcommand)]
    Agent(medsec_agent::cli::AgentCommand),
    /// Operators: API tokens.
    #[command(subcommand)]
    Operator(server::OperatorCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(server::AuditCommand),
    /// A witness of the audit log, run on another machine: checks each new signed head
    /// extends the one it holds, co-signs it, and refuses (with evidence) one that does not.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Cedar policies: validate, list, and test a decision.
    #[command(subcommand)]
    Policy(server::PolicyCommand),
    /// The Defender's detectors: evaluate them on labelled flow data.
    #[command(subcommand)]
    Defender(defender::DefenderCommand),
    /// MQTT telemetry ingestion: the broker's configuration.
    #[command(subcommand)]
    Mqtt(mqtt::MqttCommand),
    /// Risk and compliance: check SBOMs, score CVSS vectors, match components against
    /// advisories.
    #[command(subcommand)]
    Risk(risk::RiskCommand),
    /// Release gates: `release check` fails a release with open critical findings.
    #[command(subcommand)]
    Release(risk::ReleaseCommand),
    /// Evidence reports: `report compliance` maps live fleet data to the controls of FDA,
    /// EU MDR, IEC 81001-5-1, IEC 62304, NIST CSF 2.0, HIPAA and the EU CRA.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Investigator: one device's timeline (telemetry, security events, alerts, incidents,
    /// installs, certificates, policy decisions), as a table, JSON or CSV.
    Investigate(Box<investigate::InvestigateArgs>),
}

/// Structured logs to standard error; `MEDSEC_LOG` sets the filter (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            dir,
            devices,
            tuf_tour,
            image_mib,
        } => {
            if tuf_tour {
                demo::run(dir, image_mib)
            } else {
                fleet_demo::run(dir, devices)
            }
        }
        Command::Repo(cmd) => repo::run(*cmd),
        Command::Ca(cmd) => ca::run(*cmd),
        Command::Server {
            location,
            device_listen,
            operator_listen,
            insecure_plaintext_audit_key,
        } => {
            init_logging();
            server::serve(
                &location,
                device_listen,
                operator_listen,
                insecure_plaintext_audit_key,
            )
        }
        Command::Fleet(cmd) => server::run_fleet(cmd),
        Command::Inventory(cmd) => inventory::run(cmd),
        Command::Campaign(cmd) => campaign::run(cmd),
        Command::Agent(cmd) => medsec_agent::cli::run(cmd),
        Command::Operator(cmd) => server::run_operator(cmd),
        Command::Audit(cmd) => server::run_audit(cmd),
        Command::Witness(cmd) => witness::run(cmd),
        Command::Policy(cmd) => server::run_policy(cmd),
        Command::Defender(cmd) => defender::run(cmd),
        Command::Investigate(args) => investigate::run(*args),
        Command::Mqtt(cmd) => mqtt::run(cmd),
        Command::Risk(cmd) => risk::run(cmd),
        Command::Release(cmd) => risk::run_release(cmd),
        Command::Report(cmd) => report::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
