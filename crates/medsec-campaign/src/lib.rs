//! Update campaigns: which devices get a release, in which order, when, and when to stop.
//!
//! A [`Campaign`] splits its devices into waves — a canary, then waves that grow by a factor —
//! and offers the release only to devices in open waves, inside their site's maintenance
//! [`window`], and not in clinical use (those are *deferred*, never failed). Each wave is watched:
//! when its failures pass `max_failure_rate` of the wave, the campaign **halts** and offers
//! nothing more; when enough of it has finished, the next wave opens.
//!
//! It is a state machine and nothing else: it does no IO, never reads the clock (every call
//! takes `now_ms`, so tests drive time) and never talks to devices. The server calls
//! [`Campaign::offer`] when a device polls, [`Campaign::report`] when it says how the install
//! went, and [`Campaign::tick`] now and then; it stores the campaign as JSON (serde).

pub mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use window::{Window, WindowSpec};

/// What a campaign refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The campaign's specification is not usable.
    #[error("campaign {field}: {reason}")]
    Spec {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A maintenance window is not usable.
    #[error("maintenance window of site {site:?}: {reason}")]
    Window {
        /// The site.
        site: String,
        /// What is wrong.
        reason: String,
    },
    /// The time given is outside what calendars represent.
    #[error("time: {reason}")]
    Clock {
        /// What is wrong.
        reason: String,
    },
    /// The operation does not apply in the campaign's state.
    #[error("campaign is {status}: cannot {action}")]
    Status {
        /// The campaign's state.
        status: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// A device that is not in the campaign.
    #[error("device {device:?} is not in this campaign")]
    UnknownDevice {
        /// The device.
        device: String,
    },
    /// A report from a device that was not offered the release (or already reported an end).
    #[error("device {device:?} is {state}: a report is accepted only after an offer")]
    Unexpected {
        /// The device.
        device: String,
        /// Its state.
        state: &'static str,
    },
}

/// The release a campaign installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Version string, as devices report it.
    pub version: String,
    /// Release counter (anti-rollback).
    pub release_counter: i64,
    /// Target name in the image repository.
    pub target: String,
}

/// How big the canary wave is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveSize {
    /// This many devices.
    Count(u32),
    /// This percentage of the campaign's devices (rounded up, at least one device).
    Percent(f64),
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Campaign name; also seeds the order devices are put in waves.
    pub name: String,
    /// The release.
    pub release: Release,
    /// Size of the first (canary) wave (default 5 %).
    #[serde(default = "default_canary")]
    pub canary: WaveSize,
    /// Each next wave is this many times the previous (at least 1; default 2).
    #[serde(default = "default_growth")]
    pub growth: f64,
    /// A wave whose failures exceed this fraction of it halts the campaign (0 to 1; default 0.1).
    #[serde(default = "default_max_failure_rate")]
    pub max_failure_rate: f64,
    /// The next wave opens when this fraction of the current one has finished (0 to 1;
    /// default 0.9).
    #[serde(default = "default_advance")]
    pub advance_when_finished: f64,
    /// An offered device that has not reported within this time counts as failed (default 2 h).
    #[serde(default = "default_report_timeout")]
    pub report_timeout_ms: i64,
    /// Maintenance windows by site; a site without one may install at any time.
    #[serde(default)]
    pub windows: BTreeMap<String, WindowSpec>,
}

fn default_canary() -> WaveSize {
    WaveSize::Percent(5.0)
}
fn default_growth() -> f64 {
    2.0
}
fn default_max_failure_rate() -> f64 {
    0.1
}
fn default_advance() -> f64 {
    0.9
}
fn default_report_timeout() -> i64 {
    2 * 3_600_000
}

impl Spec {
    /// A spec with the defaults: 5 % canary, waves doubling, halt above 10 % failures, next
    /// wave at 90 % finished, 2 h to report, no windows.
    pub fn new(name: &str, release: Release) -> Self {
        Self {
            name: name.to_owned(),
            release,
            canary: default_canary(),
            growth: default_growth(),
            max_failure_rate: default_max_failure_rate(),
            advance_when_finished: default_advance(),
            report_timeout_ms: default_report_timeout(),
            windows: BTreeMap::new(),
        }
    }

    /// Checks every field, naming the first that is wrong.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::Spec {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.name.is_empty() || self.name.len() > 128 {
            return bad("name", "must be 1 to 128 bytes");
        }
        if self.release.version.is_empty() || self.release.target.is_empty() {
            return bad("release", "needs a version and a target");
        }
        if self.release.release_counter < 0 {
            return bad("release", "release_counter must not be negative");
        }
        match self.canary {
            WaveSize::Count(0) => return bad("canary", "must be at least one device"),
            WaveSize::Percent(p) if !(p > 0.0 && p <= 100.0) => {
                return bad("canary", "percentage must be above 0 and at most 100");
            }
            _ => {}
        }
        if !(1.0..=100.0).contains(&self.growth) {
            return bad("growth", "must be 1 to 100");
        }
        if !(0.0..=1.0).contains(&self.max_failure_rate) {
            return bad("max_failure_rate", "must be 0 to 1");
        }
        if !(self.advance_when_finished > 0.0 && self.advance_when_finished <= 1.0) {
            return bad("advance_when_finished", "must be above 0 and at most 1");
        }
        if self.report_timeout_ms < 1000 {
            return bad("report_timeout_ms", "must be at least 1000");
        }
        for (site, w) in &self.windows {
            Window::new(site, w)?;
        }
        Ok(())
    }
}

/// A device chosen for the campaign, with the site whose window applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Device id.
    pub device: String,
    /// Site.
    pub site: String,
}

/// Where one device is in the campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    /// Not offered yet.
    Waiting,
    /// Offered; installing.
    Offered {
        /// When it was first offered.
        at_ms: i64,
    },
    /// It said it is in clinical use; it is offered again when idle.
    Deferred {
        /// Since when.
        since_ms: i64,
        /// What it said.
        reason: String,
    },
    /// Installed and healthy.
    Succeeded {
        /// When.
        at_ms: i64,
    },
    /// Install or health check failed (and the device rolled back), or it never reported.
    Failed {
        /// When.
        at_ms: i64,
        /// Why.
        reason: String,
    },
    /// Taken out of the campaign (the device was decommissioned): counted in no wave, so it
    /// neither fails one nor holds one open.
    Withdrawn {
        /// When.
        at_ms: i64,
        /// Why.
        reason: String,
    },
}

impl DeviceState {
    fn name(&self) -> &'static str {
        match self {
            DeviceState::Waiting => "waiting",
            DeviceState::Offered { .. } => "offered",
            DeviceState::Deferred { .. } => "deferred",
            DeviceState::Succeeded { .. } => "succeeded",
            DeviceState::Failed { .. } => "failed",
            DeviceState::Withdrawn { .. } => "withdrawn",
        }
    }
}

/// The campaign as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Planned, not started.
    Created,
    /// Offering to open waves.
    Running,
    /// Stopped by an operator; `resume` continues.
    Paused,
    /// Stopped automatically; nothing more is offered.
    Halted {
        /// When.
        at_ms: i64,
        /// Why (which wave, how many failed).
        reason: String,
    },
    /// Stopped by an operator for good.
    Aborted {
        /// When.
        at_ms: i64,
    },
    /// Every device finished.
    Completed {
        /// When.
        at_ms: i64,
    },
}

impl Status {
    /// Its name: created, running, paused, halted, aborted or completed.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Halted { .. } => "halted",
            Status::Aborted { .. } => "aborted",
            Status::Completed { .. } => "completed",
        }
    }
}

/// The answer to a polling device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "offer", rename_all = "snake_case")]
pub enum Offer {
    /// Install this release now.
    Install {
        /// The release.
        release: Release,
    },
    /// Nothing now; ask again later.
    Wait {
        /// Why, for the device log and the operator.
        reason: String,
        /// When it is worth asking again, if known (a window's next opening).
        retry_at_ms: Option<i64>,
    },
    /// The device is deferred (clinical use); it is offered again when it polls idle.
    Deferred,
    /// The device has finished this campaign (succeeded or failed).
    Done,
}

/// What a device reports after an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Installed, health check passed, committed.
    Succeeded,
    /// Failed (download, verification, install, or health check → rolled back).
    Failed {
        /// Why.
        reason: String,
    },
    /// Clinical use started before installation; it waits until idle.
    Deferred {
        /// What the device said.
        reason: String,
    },
}

/// Counts for one wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveProgress {
    /// Wave number, from 0 (the canary).
    pub wave: usize,
    /// Whether devices in it may be offered the release.
    pub open: bool,
    /// Devices in it.
    pub size: usize,
    /// Not offered yet.
    pub waiting: usize,
    /// Installing.
    pub offered: usize,
    /// Deferred for clinical use.
    pub deferred: usize,
    /// Succeeded.
    pub succeeded: usize,
    /// Failed.
    pub failed: usize,
    /// Devices taken out (decommissioned), not counted in `size`.
    #[serde(default)]
    pub withdrawn: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    wave: usize,
    site: String,
    state: DeviceState,
}

/// A campaign: its spec, its waves and where every device is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Campaign {
    spec: Spec,
    waves: Vec<Vec<String>>,
    devices: BTreeMap<String, Entry>,
    open_waves: usize,
    status: Status,
    #[serde(skip)]
    windows: BTreeMap<String, Window>,
}

impl Campaign {
    /// Plans a campaign over `members` (duplicates count once). The order within the fleet is
    /// a hash of campaign name and device id: stable, and spread across sites and models
    /// rather than alphabetical, so the canary is a fair sample.
    pub fn plan(spec: Spec, members: &[Member]) -> Result<Self, Error> {
        spec.check()?;
        let mut unique: BTreeMap<&str, &Member> = BTreeMap::new();
        for m in members {
            unique.entry(m.device.as_str()).or_insert(m);
        }
        if unique.is_empty() {
            return Err(Error::Spec {
                field: "devices",
                reason: "the selection matched no device".into(),
            });
        }
        let mut order: Vec<(Vec<u8>, &Member)> = unique
            .values()
            .map(|m| {
                let key = [spec.name.as_bytes(), b"\0", m.device.as_bytes()].concat();
                (medsec_crypto::digest::sha256(&key).to_vec(), *m)
            })
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.device.cmp(&b.1.device)));
        let n = order.len();
        let canary = match spec.canary {
            WaveSize::Count(c) => usize::try_from(c).unwrap_or(usize::MAX),
            // Rounded up; the product is at most n (percentage at most 100).
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "bounded by n"
            )]
            WaveSize::Percent(p) => ((n as f64) * p / 100.0).ceil() as usize,
        }
        .clamp(1, n);
        let mut waves: Vec<Vec<String>> = Vec::new();
        let mut size = canary;
        let mut rest = order.into_iter().map(|(_, m)| m);
        let mut taken = 0;
        while taken < n {
            let wave: Vec<String> = rest.by_ref().take(size).map(|m| m.device.clone()).collect();
            taken += wave.len();
            waves.push(wave);
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "clamped to n"
            )]
            let next = ((size as f64) * spec.growth).ceil().min(n as f64) as usize;
            size = next.max(size);
        }
        let mut devices = BTreeMap::new();
        for (w, wave) in waves.iter().enumerate() {
            for id in wave {
                let site = unique
                    .get(id.as_str())
                    .map(|m| m.site.clone())
                    .unwrap_or_default();
                devices.insert(
                    id.clone(),
                    Entry {
                        wave: w,
                        site,
                        state: DeviceState::Waiting,
                    },
                );
            }
        }
        let mut campaign = Self {
            spec,
            waves,
            devices,
            open_waves: 0,
            status: Status::Created,
            windows: BTreeMap::new(),
        };
        campaign.compile_windows()?;
        Ok(campaign)
    }

    /// Rebuilds the checked windows (after deserialising a stored campaign).
    pub fn compile_windows(&mut self) -> Result<(), Error> {
        self.windows = self
            .spec
            .windows
            .iter()
            .map(|(site, w)| Ok((site.clone(), Window::new(site, w)?)))
            .collect::<Result<_, Error>>()?;
        Ok(())
    }

    /// The spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The campaign's state.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The devices of each wave, in order.
    pub fn waves(&self) -> &[Vec<String>] {
        &self.waves
    }

    /// Where one device is, and its wave.
    pub fn device(&self, id: &str) -> Option<(usize, &DeviceState)> {
        self.devices.get(id).map(|e| (e.wave, &e.state))
    }

    /// Every device with its wave and state, in id order.
    pub fn devices(&self) -> impl Iterator<Item = (&str, usize, &DeviceState)> {
        self.devices
            .iter()
            .map(|(id, e)| (id.as_str(), e.wave, &e.state))
    }

    /// Starts: the canary wave opens.
    pub fn start(&mut self, now_ms: i64) -> Result<(), Error> {
        self.require(&[Status::Created], "start")?;
        self.status = Status::Running;
        self.open_waves = 1;
        self.settle(now_ms);
        Ok(())
    }

    /// Pauses: nothing new is offered; devices already installing finish and report.
    pub fn pause(&mut self) -> Result<(), Error> {
        self.require(&[Status::Running], "pause")?;
        self.status = Status::Paused;
        Ok(())
    }

    /// Resumes a paused campaign. A halted one cannot be resumed: abort it and publish a fix.
    pub fn resume(&mut self, now_ms: i64) -> Result<(), Error> {
        self.require(&[Status::Paused], "resume")?;
        self.status = Status::Running;
        self.settle(now_ms);
        Ok(())
    }

    /// Aborts for good (also a halted campaign).
    pub fn abort(&mut self, now_ms: i64) -> Result<(), Error> {
        if matches!(
            self.status,
            Status::Aborted { .. } | Status::Completed { .. }
        ) {
            return Err(Error::Status {
                status: self.status.name(),
                action: "abort",
            });
        }
        self.status = Status::Aborted { at_ms: now_ms };
        Ok(())
    }

    fn require(&self, allowed: &[Status], action: &'static str) -> Result<(), Error> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(Error::Status {
                status: self.status.name(),
                action,
            })
        }
    }

    /// A device polls. `clinical_use` is what it says about itself (for example, therapy
    /// running): such a device is deferred, never offered, and never counted as failed.
    pub fn offer(&mut self, device: &str, clinical_use: bool, now_ms: i64) -> Result<Offer, Error> {
        let entry = self
            .devices
            .get(device)
            .ok_or_else(|| Error::UnknownDevice {
                device: device.to_owned(),
            })?;
        match &entry.state {
            DeviceState::Succeeded { .. }
            | DeviceState::Failed { .. }
            | DeviceState::Withdrawn { .. } => return Ok(Offer::Done),
            // Already installing: the same answer again (the agent resumes its download), also
            // while paused; a halted or aborted campaign hands out nothing more.
            DeviceState::Offered { .. }
                if !clinical_use && matches!(self.status, Status::Running | Status::Paused) =>
            {
                return Ok(Offer::Install {
                    release: self.spec.release.clone(),
                });
            }
            _ => {}
        }
        if self.status != Status::Running {
            return Ok(Offer::Wait {
                reason: format!("campaign is {}", self.status.name()),
                retry_at_ms: None,
            });
        }
        if entry.wave >= self.open_waves {
            return Ok(Offer::Wait {
                reason: format!("wave {} is not open yet", entry.wave),
                retry_at_ms: None,
            });
        }
        if let Some(window) = self.windows.get(&entry.site)
            && !window.is_open(now_ms)?
        {
            return Ok(Offer::Wait {
                reason: format!("outside the maintenance window of site {:?}", entry.site),
                retry_at_ms: window.next_open(now_ms)?,
            });
        }
        let state = if clinical_use {
            DeviceState::Deferred {
                since_ms: match &entry.state {
                    DeviceState::Deferred { since_ms, .. } => *since_ms,
                    _ => now_ms,
                },
                reason: "in clinical use".into(),
            }
        } else {
            DeviceState::Offered { at_ms: now_ms }
        };
        let deferred = matches!(state, DeviceState::Deferred { .. });
        if let Some(e) = self.devices.get_mut(device) {
            e.state = state;
        }
        Ok(if deferred {
            Offer::Deferred
        } else {
            Offer::Install {
                release: self.spec.release.clone(),
            }
        })
    }

    /// A device reports how the install went. Accepted only from a device that was offered the
    /// release (or deferred); a failure may halt the campaign, a finish may open the next wave.
    pub fn report(&mut self, device: &str, outcome: Outcome, now_ms: i64) -> Result<(), Error> {
        let entry = self
            .devices
            .get_mut(device)
            .ok_or_else(|| Error::UnknownDevice {
                device: device.to_owned(),
            })?;
        if !matches!(
            entry.state,
            DeviceState::Offered { .. } | DeviceState::Deferred { .. }
        ) {
            return Err(Error::Unexpected {
                device: device.to_owned(),
                state: entry.state.name(),
            });
        }
        entry.state = match outcome {
            Outcome::Succeeded => DeviceState::Succeeded { at_ms: now_ms },
            Outcome::Failed { reason } => DeviceState::Failed {
                at_ms: now_ms,
                reason,
            },
            Outcome::Deferred { reason } => DeviceState::Deferred {
                since_ms: now_ms,
                reason,
            },
        };
        self.settle(now_ms);
        Ok(())
    }

    /// Takes a device out of the campaign (it was decommissioned): a device that finished keeps
    /// its outcome; any other stops counting towards its wave, which may then open the next
    /// wave or complete the campaign. Returns whether it was withdrawn.
    pub fn withdraw(&mut self, device: &str, reason: &str, now_ms: i64) -> bool {
        let Some(entry) = self.devices.get_mut(device) else {
            return false;
        };
        if matches!(
            entry.state,
            DeviceState::Succeeded { .. }
                | DeviceState::Failed { .. }
                | DeviceState::Withdrawn { .. }
        ) {
            return false;
        }
        entry.state = DeviceState::Withdrawn {
            at_ms: now_ms,
            reason: reason.to_owned(),
        };
        self.settle(now_ms);
        true
    }

    /// Time passes: devices offered more than `report_timeout_ms` ago without a report fail.
    pub fn tick(&mut self, now_ms: i64) {
        let timeout = self.spec.report_timeout_ms;
        for entry in self.devices.values_mut() {
            if let DeviceState::Offered { at_ms } = entry.state
                && now_ms.saturating_sub(at_ms) > timeout
            {
                entry.state = DeviceState::Failed {
                    at_ms: now_ms,
                    reason: format!("no report within {} s of the offer", timeout / 1000),
                };
            }
        }
        self.settle(now_ms);
    }

    /// Counts per wave.
    pub fn progress(&self) -> Vec<WaveProgress> {
        let mut waves: Vec<WaveProgress> = (0..self.waves.len())
            .map(|w| WaveProgress {
                wave: w,
                open: w < self.open_waves,
                ..WaveProgress::default()
            })
            .collect();
        for entry in self.devices.values() {
            if let Some(p) = waves.get_mut(entry.wave) {
                if matches!(entry.state, DeviceState::Withdrawn { .. }) {
                    p.withdrawn += 1;
                    continue;
                }
                p.size += 1;
                match entry.state {
                    DeviceState::Waiting => p.waiting += 1,
                    DeviceState::Offered { .. } => p.offered += 1,
                    DeviceState::Deferred { .. } => p.deferred += 1,
                    DeviceState::Succeeded { .. } => p.succeeded += 1,
                    DeviceState::Failed { .. } => p.failed += 1,
                    DeviceState::Withdrawn { .. } => {}
                }
            }
        }
        waves
    }

    /// Applies the rules after any change: halt, open the next wave, complete.
    fn settle(&mut self, now_ms: i64) {
        if self.status != Status::Running {
            return;
        }
        let progress = self.progress();
        for p in progress.iter().filter(|p| p.open) {
            // Failures beyond the threshold of the whole wave: no later report can bring the
            // wave back under it, so stop at once (this is what catches a broken canary).
            #[expect(clippy::cast_precision_loss, reason = "device counts")]
            let over = p.failed as f64 > self.spec.max_failure_rate * p.size as f64;
            if over {
                self.status = Status::Halted {
                    at_ms: now_ms,
                    reason: format!(
                        "wave {} failed on {} of {} devices, above the limit of {:.1} %",
                        p.wave,
                        p.failed,
                        p.size,
                        self.spec.max_failure_rate * 100.0
                    ),
                };
                return;
            }
        }
        // Open the next wave once enough of the last open one has finished.
        while let Some(last) = self.open_waves.checked_sub(1).and_then(|w| progress.get(w)) {
            let finished = last.succeeded + last.failed;
            #[expect(clippy::cast_precision_loss, reason = "device counts")]
            let enough = finished as f64 >= self.spec.advance_when_finished * last.size as f64;
            if !enough || self.open_waves >= self.waves.len() {
                break;
            }
            self.open_waves += 1;
        }
        if progress.iter().all(|p| p.succeeded + p.failed == p.size) {
            self.status = Status::Completed { at_ms: now_ms };
        }
    }
}
