//! The install cycle as a persisted state machine.
//!
//! ```text
//!  Idle ──director names T, both repositories agree, not in clinical use──▶ Download(T)
//!  Download ──range-resumed, length + hashes verified──▶ Install(T)
//!  Install ──slot recorded empty, written, read back and verified, set pending (3 tries)──▶ Reboot(T)
//!  Reboot ──boot──▶ on trial: health check ──pass──▶ commit ──▶ Report(succeeded)
//!                                          └─fail──▶ Report(failed), pending dropped ──▶ boot (old slot)
//!  Report ──signed version report with the outcome──▶ Idle
//! ```
//!
//! Every transition is saved (two checksummed copies) before the next begins, and every step
//! can run again after a kill: what it reads back decides what is left to do. The boot
//! environment, not this record, decides what runs, so even losing both copies of this record
//! only costs a repeated download.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medsec_api::report;
use medsec_tuf::TargetFile;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::boot::{Booted, Bootloader, SlotImage, Slots, TRIES};
use crate::keys::KeyStore;
use crate::net::{self, Session};
use crate::record::Record;
use crate::telemetry::Telemetry;
use crate::{Access, Error};

/// What enrolment wrote: who the device is and where it talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Server base URL (`https://host:port`, the device port).
    pub server: String,
    /// Device id.
    pub device: String,
    /// Hardware id (what images must be built for).
    pub hardware_id: String,
    /// Slot A and slot B (files or block devices).
    pub slots: [PathBuf; 2],
    /// Where the device key is kept.
    #[serde(default)]
    pub key_store: KeyStore,
}

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between polls.
    pub poll: Duration,
    /// Health check run on a trial boot (`sh -c`; exit 0 is healthy). `None`: healthy when it
    /// booted. Gets `MEDSEC_SLOT`, `MEDSEC_TARGET` and `MEDSEC_VERSION`.
    pub health_command: Option<String>,
    /// The device is in clinical use while this file exists.
    pub clinical_use_file: Option<PathBuf>,
    /// The device is in clinical use while this command exits 0.
    pub clinical_use_command: Option<String>,
    /// Reboots the device (`sh -c`). `None`: the simulated device boots again in-process.
    pub reboot_command: Option<String>,
    /// Download rate cap, bytes per second.
    pub max_download_rate: Option<u64>,
    /// Renew the certificate when less than this fraction of its lifetime is left.
    pub renew_at: f64,
    /// Send telemetry (security events, network metrics) at the end of each cycle.
    pub telemetry: bool,
    /// Most telemetry batches kept while the server cannot be reached.
    pub telemetry_max_queued: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(300),
            health_command: None,
            clinical_use_file: None,
            clinical_use_command: None,
            reboot_command: None,
            max_download_rate: None,
            renew_at: 1.0 / 3.0,
            telemetry: true,
            telemetry_max_queued: crate::telemetry::DEFAULT_MAX_QUEUED,
        }
    }
}

/// An install in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The campaign that asked for it (from the director's metadata).
    pub campaign: Option<String>,
    /// The image, as the image repository signed it.
    pub image: SlotImage,
}

/// How an install ended, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Campaign.
    pub campaign: Option<String>,
    /// Target.
    pub target: String,
    /// `succeeded`, `failed` or `deferred`.
    pub outcome: String,
    /// Why.
    pub reason: String,
}

/// Where the cycle is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Nothing to do but poll.
    Idle,
    /// Fetching the image (resumable).
    Download {
        /// What.
        job: Job,
        /// Failed verifications so far.
        attempts: u32,
    },
    /// Writing the inactive slot.
    Install {
        /// What.
        job: Job,
    },
    /// Waiting for the boot into the new slot.
    Reboot {
        /// What.
        job: Job,
    },
    /// A version report to send, with an install outcome or without.
    Report {
        /// The outcome, if the report ends an install.
        outcome: Option<Outcome>,
    },
}

/// The persisted agent state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where the cycle is.
    pub phase: Phase,
    /// The target the device last said it defers (not said again until it changes).
    pub deferred: Option<String>,
    /// Targets that failed here; never tried again (the campaign decides what next).
    pub given_up: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            // A device with no state says what it runs first.
            phase: Phase::Report { outcome: None },
            deferred: None,
            given_up: Vec::new(),
        }
    }
}

/// What one step left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take the next step now.
    Continue,
    /// Reboot, then continue.
    Reboot,
    /// Nothing until the next poll.
    Idle,
}

/// Downloads that fail verification this often give the target up.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 3;

/// Paths inside the agent's directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("device.json")
}
fn identity_path(dir: &Path) -> PathBuf {
    dir.join("identity.pem")
}
fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}
fn part_path(dir: &Path) -> PathBuf {
    dir.join("download.part")
}

/// The running agent.
pub struct Agent {
    dir: PathBuf,
    config: DeviceConfig,
    options: Options,
    boot: Bootloader,
    booted: Booted,
    record: Record<State>,
    state: State,
    session: Option<Session>,
    telemetry: Telemetry,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("device", &self.config.device)
            .field("booted", &self.booted)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(Error::io("reading", path))
}

fn shell(command: &str, env: &[(&str, String)]) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .is_ok_and(|s| s.success())
}

impl Agent {
    /// Power-on: reads the configuration, runs the boot decision, loads the state.
    pub fn start(dir: &Path, options: Options) -> Result<Self, Error> {
        let config: DeviceConfig = serde_json::from_slice(&read(&config_path(dir))?)
            .map_err(|e| Error::State(format!("{}: {e}", config_path(dir).display())))?;
        let slots = Slots {
            paths: config.slots.clone(),
        };
        let mut boot = Bootloader::open(dir, slots)?;
        let booted = boot.boot()?;
        let mut record = Record::new(dir, "state");
        let state = record.load().unwrap_or_default();
        let telemetry = Telemetry::open(dir, options.telemetry_max_queued)?;
        let mut agent = Self {
            dir: dir.to_owned(),
            config,
            options,
            boot,
            booted,
            record,
            state,
            session: None,
            telemetry,
        };
        agent.boot_event()?;
        Ok(agent)
    }

    /// What runs.
    pub fn booted(&self) -> &Booted {
        &self.booted
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    fn session(&mut self) -> Result<&Session, Error> {
        if self.session.is_none() {
            let identity = read(&identity_path(&self.dir))?;
            let key = self.config.key_store.open(&identity)?;
            let s = Session::new(
                &self.config.server,
                &self.config.device,
                &read(&ca_path(&self.dir))?,
                &identity,
                key,
            )?;
            self.session = Some(s);
        }
        self.session
            .as_ref()
            .ok_or_else(|| Error::State("no session".into()))
    }

    fn set(&mut self, phase: Phase) -> Result<(), Error> {
        self.state.phase = phase;
        self.record.save(&self.state)
    }

    /// Boots again: runs the reboot command (a real device does not come back from it), or in
    /// simulation makes the boot decision again, as the bootloader would at power-on.
    pub fn reboot(&mut self) -> Result<(), Error> {
        if let Some(cmd) = &self.options.reboot_command {
            if !shell(cmd, &[]) {
                return Err(Error::State(format!("the reboot command {cmd:?} failed")));
            }
            // The device is going down; wait for it.
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        self.boot = Bootloader::open(&self.dir, self.boot.slots.clone())?;
        self.booted = self.boot.boot()?;
        self.boot_event()
    }

    /// Queues a telemetry event from the device's own integration (flow summaries, clinical
    /// signals); it goes with the next batch. See [`Telemetry::queue`].
    pub fn queue_telemetry(&mut self, event: Value) -> Result<(), Error> {
        self.telemetry.queue(event)
    }

    /// Queues the telemetry event of a boot: which slot, which image, on trial or not.
    fn boot_event(&mut self) -> Result<(), Error> {
        if !self.options.telemetry {
            return Ok(());
        }
        let b = &self.booted;
        let detail = format!(
            "slot {}: {} {}{}",
            ["A", "B"].get(b.slot).unwrap_or(&"?"),
            b.image.target,
            b.image.version,
            if b.on_trial { " (on trial)" } else { "" }
        );
        self.telemetry.security("boot", &detail)
    }

    fn in_clinical_use(&self) -> bool {
        self.options
            .clinical_use_file
            .as_ref()
            .is_some_and(|f| f.exists())
            || self
                .options
                .clinical_use_command
                .as_ref()
                .is_some_and(|c| shell(c, &[]))
    }

    fn healthy(&self) -> bool {
        let Some(cmd) = &self.options.health_command else {
            return true;
        };
        let slot = self
            .boot
            .slots
            .path(self.booted.slot)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        shell(
            cmd,
            &[
                ("MEDSEC_SLOT", slot),
                ("MEDSEC_TARGET", self.booted.image.target.clone()),
                ("MEDSEC_VERSION", self.booted.image.version.clone()),
            ],
        )
    }

    fn job(&self) -> Option<Job> {
        match &self.state.phase {
            Phase::Download { job, .. } | Phase::Install { job } | Phase::Reboot { job } => {
                Some(job.clone())
            }
            _ => None,
        }
    }

    /// One transition.
    pub fn step(&mut self) -> Result<Step, Error> {
        if self.booted.on_trial {
            return self.trial();
        }
        match self.state.phase.clone() {
            Phase::Idle => self.poll(),
            Phase::Download { job, attempts } => self.download(job, attempts),
            Phase::Install { job } => self.install(job),
            Phase::Reboot { job } => {
                if self.boot.env.pending.is_some() {
                    crate::fault::point("reboot");
                    return Ok(Step::Reboot);
                }
                // Booted, and the trial is over: committed, or the bootloader gave up on it.
                let outcome = if self.booted.image == job.image {
                    ("succeeded", String::new())
                } else {
                    (
                        "failed",
                        format!(
                            "the new image did not come up healthy within {TRIES} boots: \
                             rolled back to {}",
                            self.booted.image.version
                        ),
                    )
                };
                self.set(Phase::Report {
                    outcome: Some(Outcome {
                        campaign: job.campaign,
                        target: job.image.target,
                        outcome: outcome.0.into(),
                        reason: outcome.1,
                    }),
                })?;
                Ok(Step::Continue)
            }
            Phase::Report { outcome } => self.report(outcome),
        }
    }

    /// Booted into the pending slot: health check, then commit or roll back.
    fn trial(&mut self) -> Result<Step, Error> {
        let job = self.job().unwrap_or(Job {
            campaign: None,
            image: self.booted.image.clone(),
        });
        let decided_failed = matches!(
            &self.state.phase,
            Phase::Report { outcome: Some(o) } if o.outcome == "failed"
        );
        if !decided_failed && self.healthy() {
            // Commit first: from here the new image is what runs.
            self.boot.env.active = self.booted.slot;
            self.boot.env.pending = None;
            self.boot.env.release_counter = self
                .boot
                .env
                .release_counter
                .max(self.booted.image.release_counter);
            self.boot.save()?;
            self.booted.on_trial = false;
            crate::fault::point("committed");
            self.set(Phase::Report {
                outcome: Some(Outcome {
                    campaign: job.campaign,
                    target: job.image.target,
                    outcome: "succeeded".into(),
                    reason: String::new(),
                }),
            })?;
            return Ok(Step::Continue);
        }
        if !decided_failed {
            // Say why before giving the slot up; if killed here, the trial runs again.
            self.set(Phase::Report {
                outcome: Some(Outcome {
                    campaign: job.campaign,
                    target: job.image.target,
                    outcome: "failed".into(),
                    reason: "health check failed on the new image: rolled back".into(),
                }),
            })?;
            crate::fault::point("health-failed");
        }
        self.boot.env.pending = None;
        self.boot.save()?;
        Ok(Step::Reboot)
    }

    fn report(&mut self, outcome: Option<Outcome>) -> Result<Step, Error> {
        let image = self.booted.image.clone();
        let install = outcome.as_ref().and_then(|o| {
            o.campaign.as_ref().map(|campaign| report::Install {
                campaign: campaign.clone(),
                target: o.target.clone(),
                outcome: o.outcome.clone(),
                reason: o.reason.clone(),
            })
        });
        self.session()?.report(report::Payload {
            device: String::new(),
            nonce: String::new(),
            version: image.version.clone(),
            release_counter: i64::try_from(image.release_counter).map_err(|_| {
                Error::State(format!(
                    "release counter {} is beyond what a report can carry",
                    image.release_counter
                ))
            })?,
            target: Some(image.target.clone()),
            sha256: image.hashes.get("sha256").cloned(),
            install,
        })?;
        crate::fault::point("reported");
        if self.options.telemetry
            && let Some(o) = &outcome
        {
            let event = match o.outcome.as_str() {
                "succeeded" => Some("update_installed"),
                "failed" => Some("update_failed"),
                _ => None,
            };
            if let Some(event) = event {
                let detail = format!("{}: {}", o.target, o.reason);
                self.telemetry
                    .security(event, detail.trim_end_matches([':', ' ']))?;
            }
        }
        if let Some(o) = outcome
            && o.outcome == "failed"
            && !self.state.given_up.contains(&o.target)
        {
            self.state.given_up.push(o.target);
        }
        self.set(Phase::Idle)?;
        Ok(Step::Continue)
    }

    /// Asks the director what to install, and checks it against the image repository.
    fn poll(&mut self) -> Result<Step, Error> {
        self.renew_if_due()?;
        let Some((target, entry)) = self.director_target()? else {
            if self.state.deferred.take().is_some() {
                self.record.save(&self.state)?;
            }
            return Ok(Step::Idle);
        };
        if target == self.booted.image.target || self.state.given_up.contains(&target) {
            return Ok(Step::Idle);
        }
        let campaign = entry
            .custom
            .as_ref()
            .and_then(|c| c.pointer("/medsec/campaign"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let dir = self.dir.join("image");
        let signed = {
            let mut image = self.session()?.image(&dir)?;
            match image.get_target_info(&target) {
                Ok(info) => Some(info),
                Err(medsec_tuf_client::Error::UnknownTarget { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let approved = match medsec_tuf::uptane::agree(
            &target,
            &entry,
            signed.as_ref(),
            &self.config.hardware_id,
            self.boot.env.release_counter,
        ) {
            Ok(a) => a,
            Err(refused) => {
                self.set(Phase::Report {
                    outcome: Some(Outcome {
                        campaign,
                        target,
                        outcome: "failed".into(),
                        reason: refused.to_string(),
                    }),
                })?;
                return Ok(Step::Continue);
            }
        };
        if self.in_clinical_use() {
            if self.state.deferred.as_deref() == Some(target.as_str()) {
                return Ok(Step::Idle);
            }
            self.state.deferred = Some(target.clone());
            self.set(Phase::Report {
                outcome: Some(Outcome {
                    campaign,
                    target,
                    outcome: "deferred".into(),
                    reason: "in clinical use".into(),
                }),
            })?;
            return Ok(Step::Continue);
        }
        self.state.deferred = None;
        let job = Job {
            campaign,
            image: SlotImage {
                target,
                version: approved.version,
                release_counter: approved.release_counter,
                length: approved.info.length,
                hashes: approved.info.hashes,
            },
        };
        self.set(Phase::Download { job, attempts: 0 })?;
        Ok(Step::Continue)
    }

    /// The director's current target for this device, if any.
    fn director_target(&mut self) -> Result<Option<(String, TargetFile)>, Error> {
        let dir = self.dir.join("director");
        let mut director = self.session()?.director(&dir)?;
        director.refresh()?;
        let targets = director
            .trusted()
            .targets("targets")
            .map(|t| t.targets.clone())
            .unwrap_or_default();
        Ok(targets.into_iter().next())
    }

    fn download(&mut self, job: Job, attempts: u32) -> Result<Step, Error> {
        // A halted or aborted campaign withdraws the target: do not start what is not wanted.
        let still = self.director_target()?;
        if still.as_ref().map(|(t, _)| t) != Some(&job.image.target) {
            let _ = std::fs::remove_file(part_path(&self.dir));
            self.set(Phase::Idle)?;
            return Ok(Step::Idle);
        }
        let info = TargetFile {
            length: job.image.length,
            hashes: job.image.hashes.clone(),
            custom: None,
        };
        let part = part_path(&self.dir);
        let image_dir = self.dir.join("image");
        let url = self
            .session()?
            .image(&image_dir)?
            .target_url(&info, &job.image.target);
        let rate = self.options.max_download_rate;
        let resumed = self.session()?.download(&url, &part, info.length, rate)?;
        // Checked with the agent's own 64 KiB reader, not the client's three 1 MiB read-ahead
        // chunks: the agent's peak memory matters more than its hashing speed.
        let complete = std::fs::metadata(&part).is_ok_and(|m| m.len() == info.length);
        if complete && crate::boot::verify_prefix(&part, &job.image) {
            crate::fault::point("downloaded");
            self.set(Phase::Install { job })?;
            return Ok(Step::Continue);
        }
        let _ = std::fs::remove_file(&part);
        if resumed {
            // What was kept from before may be torn: fetch it whole once more, uncounted.
            return Ok(Step::Continue);
        }
        if attempts + 1 >= MAX_DOWNLOAD_ATTEMPTS {
            self.set(Phase::Report {
                outcome: Some(Outcome {
                    campaign: job.campaign,
                    target: job.image.target,
                    outcome: "failed".into(),
                    reason: format!(
                        "the download did not match the signed length and hashes \
                         {MAX_DOWNLOAD_ATTEMPTS} times"
                    ),
                }),
            })?;
        } else {
            self.set(Phase::Download {
                job,
                attempts: attempts + 1,
            })?;
        }
        Ok(Step::Continue)
    }

    /// Writes the verified download into the inactive slot and makes it pending.
    fn install(&mut self, job: Job) -> Result<Step, Error> {
        if self.boot.env.pending.is_some() {
            // Killed after the slot was made pending: only the reboot is left.
            self.set(Phase::Reboot { job })?;
            return Ok(Step::Continue);
        }
        let target_slot = 1 - self.boot.env.active.min(1);
        if target_slot == self.booted.slot {
            return Err(Error::State(
                "refusing to overwrite the running slot".into(),
            ));
        }
        if job.image.release_counter < self.boot.env.release_counter {
            return Err(Error::State(format!(
                "release counter {} is below the committed {}: refusing a rollback",
                job.image.release_counter, self.boot.env.release_counter
            )));
        }
        // The slot is recorded empty before a byte of it changes: a torn write never boots.
        if let Some(slot) = self.boot.env.slots.get_mut(target_slot)
            && slot.is_some()
        {
            *slot = None;
            self.boot.save()?;
        }
        crate::fault::point("slot-cleared");
        let part = part_path(&self.dir);
        let path = self.boot.slots.path(target_slot)?.to_owned();
        copy_into_slot(&part, &path)?;
        if !crate::boot::verify_prefix(&path, &job.image) {
            // The source was damaged after it was verified (or the slot cannot hold it):
            // fetch it again.
            let _ = std::fs::remove_file(&part);
            self.set(Phase::Download { job, attempts: 1 })?;
            return Ok(Step::Continue);
        }
        crate::fault::point("slot-written");
        if let Some(slot) = self.boot.env.slots.get_mut(target_slot) {
            *slot = Some(job.image.clone());
        }
        self.boot.env.pending = Some((target_slot, TRIES));
        self.boot.save()?;
        crate::fault::point("pending-set");
        self.set(Phase::Reboot { job })?;
        let _ = std::fs::remove_file(&part);
        Ok(Step::Continue)
    }

    /// Seals and sends telemetry. A server that cannot be reached or refuses is no reason to
    /// stop updating: the batches wait in the outbox for the next poll.
    fn send_telemetry(&mut self) {
        let result = self
            .telemetry
            .seal()
            .and_then(|()| self.session().map(|_| ()))
            .and_then(|()| {
                let session = self
                    .session
                    .as_ref()
                    .ok_or_else(|| Error::State("no session".into()))?;
                self.telemetry.send(|body| session.post_telemetry(body))
            });
        if let Err(e) = result {
            eprintln!("medsec-agent: telemetry: {e}; the batches wait for the next poll");
        }
    }

    /// Renews the certificate (new key, EST simplereenroll) when less than `renew_at` of its
    /// lifetime is left.
    fn renew_if_due(&mut self) -> Result<(), Error> {
        let identity = read(&identity_path(&self.dir))?;
        let Some((not_before, not_after)) = net::validity(&identity) else {
            return Err(Error::State(
                "the identity's certificate does not parse".into(),
            ));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = (not_after - not_before).max(1) as f64;
        if ((not_after - now) as f64) / lifetime > self.options.renew_at {
            return Ok(());
        }
        self.renew()
    }

    /// Renews the certificate now.
    pub fn renew(&mut self) -> Result<(), Error> {
        let key = self.config.key_store.generate()?;
        let request = net::request(key.source.as_ref(), &self.config.device)?;
        let session = self.session()?;
        let chain = net::est(
            session.agent(),
            session.server(),
            "simplereenroll",
            &request,
            None,
            None,
        )?;
        // Chain and key in one file, replaced in one rename: never a key without its certificate.
        write_atomic_identity(&self.dir, &chain, &key.stored)?;
        self.session = None;
        // The old token key goes only now: until the rename above, it was the one in use.
        self.config
            .key_store
            .remove_other_keys(key.source.public_key())?;
        Ok(())
    }

    /// Steps until there is nothing to do (then returns), rebooting when asked; then, whatever
    /// the outcome, seals and sends telemetry.
    pub fn run_until_idle(&mut self) -> Result<(), Error> {
        let result = self.cycle();
        if self.options.telemetry {
            self.send_telemetry();
        }
        result
    }

    fn cycle(&mut self) -> Result<(), Error> {
        loop {
            match self.step()? {
                Step::Continue => {}
                Step::Reboot => self.reboot()?,
                Step::Idle => return Ok(()),
            }
        }
    }
}

fn write_atomic_identity(dir: &Path, chain: &str, key_pem: &str) -> Result<(), Error> {
    crate::write_atomic(
        &identity_path(dir),
        format!("{chain}{key_pem}").as_bytes(),
        Access::Private,
    )
}

/// Copies the download into a slot: a regular file is replaced in place (truncated first), a
/// block device is written from its start; either way flushed before returning.
fn copy_into_slot(from: &Path, slot: &Path) -> Result<(), Error> {
    use std::io::{Read as _, Write as _};
    let is_file = std::fs::metadata(slot).map_or(true, |m| m.is_file());
    let mut out = std::fs::OpenOptions::new()
        .create(is_file)
        .write(true)
        .truncate(is_file)
        .open(slot)
        .map_err(Error::io("opening", slot))?;
    let mut input = std::fs::File::open(from).map_err(Error::io("reading", from))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(Error::io("reading", from))?;
        if n == 0 {
            break;
        }
        out.write_all(buf.get(..n).unwrap_or_default())
            .map_err(Error::io("writing", slot))?;
        crate::fault::point("slot-write");
    }
    out.sync_all().map_err(Error::io("flushing", slot))
}

/// How a device proves who it is at first enrolment.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A one-time enrolment token.
    Token(String),
    /// A manufacturer certificate (IDevID) and its key, PEM.
    Manufacturer {
        /// Certificate chain.
        chain_pem: Vec<u8>,
        /// Key.
        key_pem: Vec<u8>,
    },
}

/// What `enrol` needs.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// Server base URL.
    pub server: String,
    /// The fleet CA chain the server's certificate must chain to (PEM).
    pub ca_pem: Vec<u8>,
    /// Device id.
    pub device: String,
    /// Hardware id.
    pub hardware_id: String,
    /// How it proves itself.
    pub credential: Credential,
    /// The image repository's root as shipped (default: fetched over the authenticated channel).
    pub image_root: Option<Vec<u8>>,
    /// The factory image for slot A, with its version and release counter.
    pub factory_image: PathBuf,
    /// Its version.
    pub factory_version: String,
    /// Its release counter.
    pub factory_release_counter: u64,
    /// Slot paths (default `DIR/slot-a.img`, `DIR/slot-b.img`).
    pub slots: Option<[PathBuf; 2]>,
    /// Where the device key is kept.
    pub key_store: KeyStore,
}

/// First start of a device: EST enrolment, both repositories' roots, slot A with the factory
/// image, and a first version report due.
pub fn enrol(dir: &Path, e: &Enrolment) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    // Every local input is checked before the one-time token is spent: a typo must leave the
    // token usable, not a half-enrolled device in the inventory.
    crate::preflight::check(e)?;
    let key = e.key_store.generate()?;
    let request = net::request(key.source.as_ref(), &e.device)?;
    let timeout = Duration::from_secs(30);
    let (transport, token) = match &e.credential {
        Credential::Token(t) => (
            medsec_tuf_client::HttpTransport::new(Some(&e.ca_pem), timeout),
            Some(t.as_str()),
        ),
        Credential::Manufacturer { chain_pem, key_pem } => (
            medsec_tuf_client::HttpTransport::with_identity(&e.ca_pem, chain_pem, key_pem, timeout),
            None,
        ),
    };
    let transport = transport.map_err(|err| Error::Network(err.to_string()))?;
    let server = e.server.trim_end_matches('/');
    let chain = net::est(
        transport.agent(),
        server,
        "simpleenroll",
        &request,
        token,
        Some(&e.hardware_id),
    )?;
    crate::write_atomic(&ca_path(dir), &e.ca_pem, Access::Public)?;
    write_atomic_identity(dir, &chain, &key.stored)?;
    let slots = e
        .slots
        .clone()
        .unwrap_or_else(|| [dir.join("slot-a.img"), dir.join("slot-b.img")]);
    let config = DeviceConfig {
        server: server.to_owned(),
        device: e.device.clone(),
        hardware_id: e.hardware_id.clone(),
        slots: slots.clone(),
        key_store: e.key_store.clone(),
    };
    let session = Session::new(
        server,
        &e.device,
        &e.ca_pem,
        chain.as_bytes(),
        Arc::clone(&key.source),
    )?;
    // Trust anchors: the director's root over the mutually authenticated channel; the image
    // repository's as shipped, else the same way.
    let director_root = session.get(&format!("/director/{}/root.json", e.device))?;
    medsec_tuf_client::Updater::init(&dir.join("director"), &director_root)?;
    let image_root = match &e.image_root {
        Some(r) => r.clone(),
        None => session.get("/repo/metadata/1.root.json")?,
    };
    medsec_tuf_client::Updater::init(&dir.join("image"), &image_root)?;
    // Slot A: the factory image.
    let data = read(&e.factory_image)?;
    let [slot_a, _] = &slots;
    copy_into_slot(&e.factory_image, slot_a)?;
    let image = SlotImage {
        target: e
            .factory_image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "factory".into()),
        version: e.factory_version.clone(),
        release_counter: e.factory_release_counter,
        length: data.len() as u64,
        hashes: [(
            "sha256".to_owned(),
            hex::encode(medsec_crypto::digest::sha256(&data)),
        )]
        .into(),
    };
    Bootloader::provision(dir, Slots { paths: slots }, image)?;
    let mut record: Record<State> = Record::new(dir, "state");
    record.save(&State::default())?;
    crate::write_atomic(
        &config_path(dir),
        &serde_json::to_vec_pretty(&config).map_err(|err| Error::State(err.to_string()))?,
        Access::Public,
    )
}
