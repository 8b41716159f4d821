//! `medsec agent …` and the standalone `medsec-agent …`: the same commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};

use crate::agent::{self, Agent, Credential, Enrolment, Options};
use crate::keys::KeyStore;

/// The agent's commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// First start: enrol over EST, fetch the repositories' roots, provision slot A.
    Enrol(Box<EnrolArgs>),
    /// Poll, install, health-check, report; forever, or until idle with --once.
    Run(RunArgs),
    /// What runs, and where the install cycle is.
    Status {
        /// The agent's directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The agent's directory (keys, state, simulated slots).
    #[arg(long)]
    pub dir: PathBuf,
    /// The server's device port, `https://HOST:PORT`.
    #[arg(long)]
    pub server: String,
    /// The fleet CA chain (PEM) the server's certificate must chain to.
    #[arg(long)]
    pub ca: PathBuf,
    /// This device's id.
    #[arg(long)]
    pub device: String,
    /// This device's hardware id.
    #[arg(long)]
    pub hardware_id: String,
    /// A one-time enrolment token (or MEDSEC_ENROLMENT_TOKEN).
    #[arg(long, env = "MEDSEC_ENROLMENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A manufacturer certificate (IDevID, PEM) to enrol with instead of a token.
    #[arg(long, requires = "idevid_key")]
    pub idevid_cert: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long)]
    pub idevid_key: Option<PathBuf>,
    /// The image repository's root as shipped (default: fetched over the authenticated channel).
    #[arg(long)]
    pub image_root: Option<PathBuf>,
    /// The factory image that slot A starts with.
    #[arg(long)]
    pub factory_image: PathBuf,
    /// Its version.
    #[arg(long)]
    pub factory_version: String,
    /// Its release counter.
    #[arg(long, default_value_t = 0)]
    pub factory_release_counter: u64,
    /// Slot A (a file or block device; default DIR/slot-a.img).
    #[arg(long, requires = "slot_b")]
    pub slot_a: Option<PathBuf>,
    /// Slot B.
    #[arg(long)]
    pub slot_b: Option<PathBuf>,
    /// Keep the device key in a PKCS#11 token: the module (shared library), for example
    /// /usr/lib/softhsm/libsofthsm2.so or the tpm2-pkcs11 module. Default: a key file.
    #[arg(long, requires_all = ["pkcs11_token", "pkcs11_pin_file"])]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// A file holding the token's user PIN (read at each start).
    #[arg(long, requires = "pkcs11_module")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Stop when there is nothing to do instead of polling again.
    #[arg(long)]
    pub once: bool,
    /// Seconds between polls.
    #[arg(long, default_value_t = 300)]
    pub poll_secs: u64,
    /// Health check on a trial boot (sh -c; exit 0 is healthy; gets MEDSEC_SLOT,
    /// MEDSEC_TARGET, MEDSEC_VERSION). Default: healthy when it booted.
    #[arg(long)]
    pub health_command: Option<String>,
    /// The device is in clinical use while this file exists.
    #[arg(long)]
    pub clinical_use_file: Option<PathBuf>,
    /// The device is in clinical use while this command exits 0.
    #[arg(long)]
    pub clinical_use_command: Option<String>,
    /// Reboots the device (sh -c). Default: the simulated device boots again in-process.
    #[arg(long)]
    pub reboot_command: Option<String>,
    /// Download rate cap in bytes per second.
    #[arg(long)]
    pub max_download_rate: Option<u64>,
    /// Renew the certificate when less than this fraction of its lifetime is left (0 to 1).
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub renew_at: f64,
    /// Send no telemetry (security events, network metrics).
    #[arg(long)]
    pub no_telemetry: bool,
    /// Most telemetry batches kept while the server cannot be reached; past it the oldest
    /// are dropped and counted.
    #[arg(long, default_value_t = crate::telemetry::DEFAULT_MAX_QUEUED)]
    pub telemetry_max_queued: usize,
}

impl RunArgs {
    fn options(&self) -> Options {
        Options {
            poll: Duration::from_secs(self.poll_secs.max(1)),
            health_command: self.health_command.clone(),
            clinical_use_file: self.clinical_use_file.clone(),
            clinical_use_command: self.clinical_use_command.clone(),
            reboot_command: self.reboot_command.clone(),
            max_download_rate: self.max_download_rate,
            renew_at: self.renew_at.clamp(0.0, 1.0),
            telemetry: !self.no_telemetry,
            telemetry_max_queued: self.telemetry_max_queued.max(1),
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs one command.
pub fn run(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Enrol(a) => {
            let credential = match (&a.token, &a.idevid_cert, &a.idevid_key) {
                (Some(t), None, _) => Credential::Token(t.clone()),
                (None, Some(c), Some(k)) => Credential::Manufacturer {
                    chain_pem: read(c)?,
                    key_pem: read(k)?,
                },
                _ => bail!("give either --token or --idevid-cert with --idevid-key"),
            };
            let e = Enrolment {
                server: a.server.clone(),
                ca_pem: read(&a.ca)?,
                device: a.device.clone(),
                hardware_id: a.hardware_id.clone(),
                credential,
                image_root: a.image_root.as_ref().map(read).transpose()?,
                factory_image: a.factory_image.clone(),
                factory_version: a.factory_version.clone(),
                factory_release_counter: a.factory_release_counter,
                slots: a.slot_a.clone().zip(a.slot_b.clone()).map(|(x, y)| [x, y]),
                key_store: match (&a.pkcs11_module, &a.pkcs11_token, &a.pkcs11_pin_file) {
                    (Some(module), Some(token), Some(pin_file)) => KeyStore::Pkcs11 {
                        module: module.clone(),
                        token: token.clone(),
                        pin_file: pin_file.clone(),
                    },
                    _ => KeyStore::File,
                },
            };
            agent::enrol(&a.dir, &e).context("enrolment failed")?;
            println!(
                "enrolled {} with {}; key in {}; slot A holds {} {}",
                a.device,
                a.server,
                e.key_store.describe(),
                a.factory_image.display(),
                a.factory_version
            );
            Ok(())
        }
        AgentCommand::Run(a) => {
            let options = a.options();
            let mut agent = Agent::start(&a.dir, options.clone())?;
            loop {
                match agent.run_until_idle() {
                    Ok(()) if a.once => return Ok(()),
                    Ok(()) => {}
                    Err(e) if a.once => return Err(e.into()),
                    Err(e) => eprintln!("medsec-agent: {e}; trying again at the next poll"),
                }
                std::thread::sleep(options.poll);
            }
        }
        AgentCommand::Status { dir } => {
            // Read only: no boot decision is made (that would spend a trial boot).
            let env = crate::record::Record::<crate::boot::BootEnv>::new(&dir, "boot")
                .load()
                .context("no valid boot environment: is the device enrolled?")?;
            let state = crate::record::Record::<agent::State>::new(&dir, "state")
                .load()
                .unwrap_or_default();
            for (i, slot) in env.slots.iter().enumerate() {
                let mark = match (env.active == i, env.pending.map(|p| p.0) == Some(i)) {
                    (true, _) => "active",
                    (_, true) => "pending",
                    _ => "",
                };
                match slot {
                    Some(s) => println!(
                        "slot {}: {} {} (release counter {}) {mark}",
                        ["A", "B"].get(i).unwrap_or(&"?"),
                        s.target,
                        s.version,
                        s.release_counter
                    ),
                    None => println!("slot {}: empty", ["A", "B"].get(i).unwrap_or(&"?")),
                }
            }
            println!(
                "state: {}",
                serde_json::to_string(&state).unwrap_or_default()
            );
            let telemetry =
                crate::record::Record::<crate::telemetry::TelemetryState>::new(&dir, "telemetry")
                    .load()
                    .unwrap_or_default();
            let queued = std::fs::read_dir(dir.join("telemetry"))
                .map(|d| d.filter(|e| e.is_ok()).count())
                .unwrap_or(0);
            println!(
                "telemetry: {queued} batch(es) waiting, {} event(s) not sealed, next sequence {}, {} batch(es) dropped (outbox full)",
                telemetry.pending.len(),
                telemetry.next_sequence.max(1),
                telemetry.dropped
            );
            Ok(())
        }
    }
}
