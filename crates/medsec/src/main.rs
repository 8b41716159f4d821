//! `medsec`: one binary for the medsec platform. This file parses arguments and dispatches; the
//! work is in the library crates and in the command modules beside it.

#![forbid(unsafe_code)]

mod advisories;
mod ca;
mod campaign;
mod defender;
mod demo;
mod fleet_demo;
mod investigate;
mod keys;
mod mqtt;
mod progress;
mod repo;
mod report;
mod risk;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use medsec_crypto::Scheme;

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
    Repo(Box<RepoCommand>),
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
    },
    /// Devices: enrolment tokens.
    #[command(subcommand)]
    Fleet(server::FleetCommand),
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

#[derive(Args)]
struct KeyArgs {
    /// Private key file to sign with (repeat for several). Default: the repository's own keys
    /// for the role, from DIR/keys/.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// File holding the key passphrase (else MEDSEC_PASSPHRASE, else a prompt).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create a repository with new keys for root, targets, snapshot and timestamp.
    Init {
        /// Repository directory.
        dir: PathBuf,
        /// Scheme of root keys: hybrid (ML-DSA-65 + Ed25519), ed25519 or ecdsa.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        root_scheme: Scheme,
        /// Scheme of targets keys.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        targets_scheme: Scheme,
        /// Scheme of the online snapshot and timestamp keys.
        #[arg(long, default_value = "ed25519", value_parser = keys::parse_scheme)]
        online_scheme: Scheme,
        /// Number of root keys.
        #[arg(long, default_value_t = 1)]
        root_keys: u64,
        /// Root signatures required.
        #[arg(long, default_value_t = 1)]
        root_threshold: u64,
        /// Number of targets keys.
        #[arg(long, default_value_t = 1)]
        targets_keys: u64,
        /// Targets signatures required.
        #[arg(long, default_value_t = 1)]
        targets_threshold: u64,
        /// Publish without versioned file names (not recommended).
        #[arg(long)]
        no_consistent_snapshot: bool,
        /// Store the new private keys unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        /// File holding the passphrase for the new keys.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Add a firmware image as a target and sign the role that lists it.
    AddTarget {
        /// Repository directory.
        dir: PathBuf,
        /// The image file.
        file: PathBuf,
        /// Target path (default: the file name).
        #[arg(long)]
        path: Option<String>,
        /// Role to list it in (default: targets, or its hash bin).
        #[arg(long)]
        role: Option<String>,
        /// Hardware id the image is built for (repeat for several).
        #[arg(long = "hardware-id", required = true)]
        hardware_ids: Vec<String>,
        /// Semantic version of the firmware.
        #[arg(long = "version")]
        fw_version: String,
        /// Anti-rollback release counter.
        #[arg(long)]
        release_counter: u64,
        /// SHA-256 of the release's SBOM (prefer --sbom, which also checks it).
        #[arg(long, conflicts_with = "sbom")]
        sbom_sha256: Option<String>,
        /// The release's SBOM (CycloneDX or SPDX JSON): validated, and its SHA-256, format and
        /// component count go into the target's signed custom metadata.
        #[arg(long)]
        sbom: Option<PathBuf>,
        /// Lifetime of the new role metadata (e.g. 90d).
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Delegate target paths to a new role, or split targets into hash bins.
    Delegate {
        /// Repository directory.
        dir: PathBuf,
        /// Name of the new role (path delegation).
        #[arg(long, required_unless_present = "hash_bins")]
        name: Option<String>,
        /// Role that delegates.
        #[arg(long, default_value = "targets")]
        from: String,
        /// Path pattern the role is trusted for (repeat for several).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Stop the search at this role when its paths match.
        #[arg(long)]
        terminating: bool,
        /// Keys to create for the role.
        #[arg(long, default_value_t = 1)]
        key_count: u64,
        /// Signatures required.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// Scheme of the new keys.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        scheme: Scheme,
        /// Split all targets into 2^BITS hash bins (TAP 15) instead.
        #[arg(long, value_name = "BITS", conflicts_with_all = ["name", "paths"])]
        hash_bins: Option<u32>,
        /// Name prefix of the bins.
        #[arg(long, default_value = "bins")]
        bin_prefix: String,
        /// Store the new private keys unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Add signatures to a role's current metadata, one key holder at a time.
    Sign {
        /// Repository directory.
        dir: PathBuf,
        /// Role to sign.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Snapshot changed targets roles and refresh the timestamp (online keys).
    Timestamp {
        /// Repository directory.
        dir: PathBuf,
        /// Lifetime of the timestamp (e.g. 1d, 6h).
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Write a new root that changes a top-level role's keys or threshold.
    Rotate {
        /// Repository directory.
        dir: PathBuf,
        /// Role whose keys change.
        #[arg(long, default_value = "root")]
        role: String,
        /// Private key file whose public key joins the role (repeat).
        #[arg(long = "add-key")]
        add: Vec<PathBuf>,
        /// Key id (or unique prefix) leaving the role (repeat).
        #[arg(long = "remove-key")]
        remove: Vec<String>,
        /// New threshold.
        #[arg(long)]
        threshold: Option<u64>,
        /// Lifetime of the new root.
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Generate a key file (for a key holder who keeps it offline).
    Keygen {
        /// Where to write the private key.
        out: PathBuf,
        /// Scheme.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        scheme: Scheme,
        /// Store it unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        /// File holding the passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Check the whole repository as a client would, and say what is wrong.
    Verify {
        /// Repository directory.
        dir: PathBuf,
    },
    /// Show each role's version, expiry and signatures.
    Status {
        /// Repository directory.
        dir: PathBuf,
    },
    /// Verify, then write a directory any static web server can serve.
    Publish {
        /// Repository directory.
        dir: PathBuf,
        /// Output directory (gets metadata/ and targets/).
        #[arg(long)]
        out: PathBuf,
    },
}

fn run_repo(cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Init {
            dir,
            root_scheme,
            targets_scheme,
            online_scheme,
            root_keys,
            root_threshold,
            targets_keys,
            targets_threshold,
            no_consistent_snapshot,
            plaintext_keys,
            passphrase_file,
        } => {
            let opts = repo::InitOptions {
                root_scheme,
                targets_scheme,
                online_scheme,
                root_keys,
                root_threshold,
                targets_keys,
                targets_threshold,
                consistent_snapshot: !no_consistent_snapshot,
                plaintext_keys,
            };
            let r = repo::Repo::init(&dir, &opts, &keys::Passphrase::new(passphrase_file))?;
            println!("created repository {}", dir.display());
            println!(
                "  root: {root_keys} {root_scheme} key(s), threshold {root_threshold}; targets: \
                 {targets_keys} {targets_scheme} key(s), threshold {targets_threshold}; \
                 snapshot/timestamp: {online_scheme}"
            );
            println!(
                "  private keys in {} — move offline keys off this machine",
                r.keys_dir().display()
            );
            println!(
                "  clients trust {}",
                r.meta_dir().join("1.root.json").display()
            );
        }
        RepoCommand::AddTarget {
            dir,
            file,
            path,
            role,
            hardware_ids,
            fw_version,
            release_counter,
            sbom_sha256,
            sbom,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let sbom = match sbom {
                Some(f) => {
                    let (bytes, parsed) = risk::read_sbom(&f)?;
                    Some(repo::SbomRef {
                        sha256: hex::encode(medsec_crypto::digest::sha256(&bytes)),
                        format: Some(parsed.format),
                        components: Some(parsed.components.len()),
                    })
                }
                None => sbom_sha256.map(|sha256| repo::SbomRef {
                    sha256,
                    format: None,
                    components: None,
                }),
            };
            let path = match path {
                Some(p) => p,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow::anyhow!("give --path: the file name is not UTF-8"))?
                    .to_owned(),
            };
            let custom = repo::TargetCustom {
                hardware_ids,
                version: fw_version,
                release_counter,
                sbom,
            };
            let (role, info) = r.add_target(
                &file,
                &path,
                role.as_deref(),
                &custom,
                expires,
                &k.keys,
                &keys::Passphrase::new(k.passphrase_file),
            )?;
            println!(
                "added {path} ({} bytes, sha256 {}) to role {role}",
                info.length,
                info.hashes.get("sha256").map(String::as_str).unwrap_or("?")
            );
            println!(
                "next: `medsec repo timestamp {}` to publish it in a new snapshot",
                dir.display()
            );
        }
        RepoCommand::Delegate {
            dir,
            name,
            from,
            paths,
            terminating,
            key_count,
            threshold,
            scheme,
            hash_bins,
            bin_prefix,
            plaintext_keys,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let pass = keys::Passphrase::new(k.passphrase_file);
            if let Some(bits) = hash_bins {
                let n = r.delegate_hash_bins(
                    bits,
                    &bin_prefix,
                    scheme,
                    plaintext_keys,
                    &k.keys,
                    &pass,
                )?;
                println!("targets now delegates to {n} hash bins named {bin_prefix}-*");
            } else {
                let name = name.unwrap_or_default();
                let ids = r.delegate(
                    &from,
                    &name,
                    paths,
                    terminating,
                    threshold,
                    scheme,
                    key_count,
                    plaintext_keys,
                    &k.keys,
                    &pass,
                )?;
                println!(
                    "{from} delegates to {name} ({} key(s), threshold {threshold}{})",
                    ids.len(),
                    if terminating { ", terminating" } else { "" }
                );
            }
        }
        RepoCommand::Sign { dir, role, keys: k } => {
            let r = repo::Repo::open(&dir)?;
            let (valid, threshold) =
                r.sign(&role, &k.keys, &keys::Passphrase::new(k.passphrase_file))?;
            println!(
                "{role}: {valid} of {threshold} required signature(s){}",
                if valid >= threshold {
                    " — threshold met"
                } else {
                    ""
                }
            );
        }
        RepoCommand::Timestamp {
            dir,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let (s, t) =
                r.timestamp(expires, &k.keys, &keys::Passphrase::new(k.passphrase_file))?;
            println!("snapshot v{s}, timestamp v{t}");
        }
        RepoCommand::Rotate {
            dir,
            role,
            add,
            remove,
            threshold,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let (v, old, new) = r.rotate(
                &role,
                &add,
                &remove,
                threshold,
                expires,
                &k.keys,
                &keys::Passphrase::new(k.passphrase_file),
            )?;
            println!(
                "root v{v} written: {old} signature(s) from the old root keys, {new} from the new ones"
            );
            println!(
                "collect the rest with `medsec repo sign {} --role root --key FILE`",
                dir.display()
            );
        }
        RepoCommand::Keygen {
            out,
            scheme,
            plaintext_keys,
            passphrase_file,
        } => {
            let pass = keys::Passphrase::new(passphrase_file).protection(plaintext_keys)?;
            let k = keys::generate(&out, scheme, pass.as_deref())?;
            println!("{} key {} written to {}", scheme, k.keyid, out.display());
        }
        RepoCommand::Verify { dir } => {
            let r = repo::Repo::open(&dir)?;
            let report = r.verify(time::OffsetDateTime::now_utc())?;
            for line in &report.ok {
                println!("ok       {line}");
            }
            for line in &report.warnings {
                println!("warning  {line}");
            }
            for line in &report.problems {
                println!("PROBLEM  {line}");
            }
            anyhow::ensure!(
                report.problems.is_empty(),
                "{} problem(s) found in {}",
                report.problems.len(),
                dir.display()
            );
            println!("repository verifies");
        }
        RepoCommand::Status { dir } => {
            for line in repo::Repo::open(&dir)?.status()? {
                println!("{line}");
            }
        }
        RepoCommand::Publish { dir, out } => {
            let (m, t) = repo::Repo::open(&dir)?.publish(&out)?;
            println!(
                "published {m} metadata file(s) and {t} target(s) to {}",
                out.display()
            );
        }
    }
    Ok(())
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
        Command::Repo(cmd) => run_repo(*cmd),
        Command::Ca(cmd) => ca::run(*cmd),
        Command::Server {
            location,
            device_listen,
            operator_listen,
        } => {
            init_logging();
            server::serve(&location, device_listen, operator_listen)
        }
        Command::Fleet(cmd) => server::run_fleet(cmd),
        Command::Campaign(cmd) => campaign::run(cmd),
        Command::Agent(cmd) => medsec_agent::cli::run(cmd),
        Command::Operator(cmd) => server::run_operator(cmd),
        Command::Audit(cmd) => server::run_audit(cmd),
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
