//! `medsec`: one binary for the medsec platform. This file parses arguments and dispatches; each
//! subcommand is a module of `cmd/`, the work is in the library crates, and `editor/` edits a
//! TUF repository for `medsec repo`.

#![forbid(unsafe_code)]

// Standard output may be a pipe whose reader has gone (`medsec device list | head -1`). std's
// `println!` panics then (exit 101). These two shadow it for the whole crate (macro_rules scope
// runs from here down through every module declared below): a closed pipe ends the program
// quietly with success, as it would under the default SIGPIPE action, and any other write
// error ends it with a message.
macro_rules! println {
    () => { $crate::stdout_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::stdout_line(format_args!($($arg)*)) };
}
macro_rules! print {
    ($($arg:tt)*) => { $crate::stdout_text(format_args!($($arg)*)) };
}

/// `println!`'s replacement (see above).
pub(crate) fn stdout_line(args: std::fmt::Arguments<'_>) {
    stdout_write(&format!("{args}\n"));
}

/// `print!`'s replacement (see above).
pub(crate) fn stdout_text(args: std::fmt::Arguments<'_>) {
    stdout_write(&args.to_string());
}

fn stdout_write(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

mod cmd;
mod editor;
mod keys;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::remote::{self, Remote};
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
        /// After the story, keep the server running and print the web console's address and a
        /// one-time sign-in link (Ctrl-C stops it).
        #[arg(long, conflicts_with = "tuf_tour")]
        console: bool,
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
        /// Log lines as `json` (one object per line, for a log shipper) or `text`; colours
        /// only when standard error is a terminal. The filter is MEDSEC_LOG (default `info`,
        /// e.g. `medsec_server=debug,info`).
        #[arg(long, env = "MEDSEC_LOG_FORMAT", default_value = "text")]
        log_format: LogFormat,
    },
    /// Creates a server's data directory (fleet CA, server certificate, audit key, database)
    /// without starting it. `medsec server` does the same on first start; no other command
    /// creates one.
    Init {
        #[command(flatten)]
        location: server::Location,
    },
    /// Saves a context for a remote server (its URL, the CA its certificate must chain to, an
    /// operator token) and makes it current; the remote commands use it.
    Login(remote::LoginArgs),
    /// The saved contexts: list, use, delete.
    #[command(subcommand)]
    Context(remote::ContextCommand),
    /// Devices on the current context's server: list, show, update, revoke, release,
    /// decommission, versions.
    Device {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::DeviceCommand,
    },
    /// Enrolment tokens on the current context's server: create, list, revoke.
    Token {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::TokenCommand,
    },
    /// The Defender's alerts on the current context's server.
    Alerts {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::AlertsCommand,
    },
    /// Incidents on the current context's server: list, show, confirm, phase, close, playbook
    /// (quarantine, release, revoke, cancel-update).
    Incident {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::IncidentCommand,
    },
    /// Release SBOMs: upload one to the current context's server.
    Sbom {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::risk::UploadCommand,
    },
    /// Advisories (CSAF, OSV, CISA KEV; files or zip archives): upload to the current
    /// context's server.
    Advisory {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::risk::UploadCommand,
    },
    /// VEX documents (CycloneDX, OpenVEX, CSAF): upload to the current context's server.
    Vex {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::risk::UploadCommand,
    },
    /// The export of security events to SIEMs and webhooks (configured as `[[export]]` on the
    /// server): each sink's position and its dead letters.
    Export {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: remote::ExportCommand,
    },
    /// One device's findings on the current context's server.
    Findings {
        #[command(flatten)]
        remote: Remote,
        /// The device id.
        device: String,
    },
    /// The fleet ranked by device risk, from the current context's server.
    Ranking {
        #[command(flatten)]
        remote: Remote,
        /// Most devices.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The OpenAPI 3.1 description of the operator API (what the server serves at
    /// /api/v1/openapi.json) or of the device port, to standard output or a file.
    Openapi {
        /// Which port: operator or device.
        #[arg(long, default_value = "operator", value_parser = ["operator", "device"])]
        port: String,
        /// Write it here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Shell completions for bash, zsh or fish, to standard output.
    Completions {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
    /// Man pages (roff), one per command, into a directory.
    Man {
        /// The directory (created if absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Admin commands on the server host's data directory: enrolment tokens and each device's
    /// inventory fields. From elsewhere use `medsec device` and `medsec token`.
    #[command(subcommand)]
    Fleet(server::FleetCommand),
    /// The inventory records no device reports: model profiles, the vendor registry, and the
    /// devices whose vendor support has ended or ends soon (through the current context's
    /// server, or with --data-dir on the server host).
    Inventory {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: inventory::InventoryCommand,
    },
    /// Update campaigns: waves, automatic halt, maintenance windows, clinical-use deferral
    /// (through the current context's server, or with --data-dir on the server host).
    Campaign {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: campaign::CampaignCommand,
    },
    /// The device agent: enrol, poll the director, install A/B with health check and rollback.
    #[command(subcommand)]
    Agent(medsec_agent::cli::AgentCommand),
    /// Operators: API tokens (`create` on the server host with --data-dir; `list` and `revoke`
    /// there or through the current context's server).
    Operator {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: server::OperatorCommand,
    },
    /// The tamper-evident audit log: verify (on the server host, or the remote server's
    /// verification with its head checked here), head, proof.
    Audit {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: cmd::audit::AuditCommand,
    },
    /// A witness of the audit log, run on another machine: checks each new signed head
    /// extends the one it holds, co-signs it, and refuses (with evidence) one that does not.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Cedar policies: validate, list, and test a decision.
    #[command(subcommand)]
    Policy(server::PolicyCommand),
    /// The Defender: evaluate its detectors on labelled flow data; its audit checks and alert
    /// suppressions (through the current context's server, or with --data-dir on the host).
    Defender {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: defender::DefenderCommand,
    },
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
    /// EU MDR, IEC 81001-5-1, IEC 62304, NIST CSF 2.0, HIPAA and the EU CRA (from the current
    /// context's server, or with --data-dir from the store on the server host).
    Report {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        cmd: report::ReportCommand,
    },
    /// Investigator: one device's timeline (telemetry, security events, alerts, incidents,
    /// installs, certificates, policy decisions), as a table, JSON or CSV.
    Investigate(Box<investigate::InvestigateArgs>),
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Structured logs to standard error; `MEDSEC_LOG` sets the filter (default `info`). Colour
/// codes only when standard error is a terminal, so a redirected log holds none.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// `medsec man --out DIR`: a page for the program and one per (sub)command.
fn write_man_pages(out: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use clap::CommandFactory as _;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut count = 0;
    // (command, its page's name, how it is typed)
    let mut stack = vec![(Cli::command(), "medsec".to_owned(), "medsec".to_owned())];
    while let Some((cmd, name, typed)) = stack.pop() {
        let cmd = cmd.display_name(name.clone()).bin_name(typed.clone());
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() {
                stack.push((
                    sub.clone(),
                    format!("{name}-{}", sub.get_name()),
                    format!("{typed} {}", sub.get_name()),
                ));
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        count += 1;
    }
    println!("{count} man pages written to {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            dir,
            devices,
            tuf_tour,
            image_mib,
            console,
        } => {
            if tuf_tour {
                demo::run(dir, image_mib)
            } else {
                fleet_demo::run(dir, devices, console)
            }
        }
        Command::Repo(cmd) => repo::run(*cmd),
        Command::Ca(cmd) => ca::run(*cmd),
        Command::Server {
            location,
            device_listen,
            operator_listen,
            insecure_plaintext_audit_key,
            log_format,
        } => {
            init_logging(log_format);
            server::serve(
                &location,
                device_listen,
                operator_listen,
                insecure_plaintext_audit_key,
            )
        }
        Command::Init { location } => server::init(&location),
        Command::Login(args) => remote::login(args),
        Command::Context(cmd) => remote::run_context(cmd),
        Command::Device { remote, cmd } => remote::run_device(&remote, cmd),
        Command::Token { remote, cmd } => remote::run_token(&remote, cmd),
        Command::Alerts { remote, cmd } => remote::run_alerts(&remote, cmd),
        Command::Incident { remote, cmd } => remote::run_incident(&remote, cmd),
        Command::Sbom { remote, cmd } => {
            remote::risk::run_upload(&remote, remote::risk::Document::Sbom, cmd)
        }
        Command::Advisory { remote, cmd } => {
            remote::risk::run_upload(&remote, remote::risk::Document::Advisory, cmd)
        }
        Command::Vex { remote, cmd } => {
            remote::risk::run_upload(&remote, remote::risk::Document::Vex, cmd)
        }
        Command::Findings { remote, device } => remote::risk::run_findings(&remote, &device),
        Command::Export { remote, cmd } => remote::run_export(&remote, cmd),
        Command::Ranking { remote, limit } => remote::risk::run_ranking(&remote, limit),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "medsec", &mut text);
            remote::output::emit(&String::from_utf8_lossy(&text))
        }
        Command::Man { out } => write_man_pages(&out),
        Command::Openapi { port, out } => {
            let text = if port == "device" {
                medsec_server::api::device_port::document()
            } else {
                medsec_server::api::openapi::document()
            } + "\n";
            match out {
                Some(path) => {
                    medsec_util::write_atomic(&path, text.as_bytes(), medsec_util::Access::Public)
                        .map_err(anyhow::Error::from)
                }
                None => remote::output::emit(&text),
            }
        }
        Command::Fleet(cmd) => server::run_fleet(cmd),
        Command::Inventory { remote, cmd } => inventory::run(cmd, &remote),
        Command::Campaign { remote, cmd } => campaign::run(cmd, &remote),
        Command::Agent(cmd) => medsec_agent::cli::run(cmd),
        Command::Operator { remote, cmd } => server::run_operator(cmd, &remote),
        Command::Audit { remote, cmd } => cmd::audit::run_audit(cmd, &remote),
        Command::Witness(cmd) => witness::run(cmd),
        Command::Policy(cmd) => server::run_policy(cmd),
        Command::Defender { remote, cmd } => defender::run(cmd, &remote),
        Command::Investigate(args) => investigate::run(*args),
        Command::Mqtt(cmd) => mqtt::run(cmd),
        Command::Risk(cmd) => risk::run(cmd),
        Command::Release(cmd) => risk::run_release(cmd),
        Command::Report { remote, cmd } => report::run(cmd, &remote),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
