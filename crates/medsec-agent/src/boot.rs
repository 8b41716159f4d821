//! A/B slots and the boot decision, as a bootloader with a try counter makes it (U-Boot's
//! `bootcount`, RAUC's boot attempts). In the simulated-device profile this module *is* the
//! bootloader: it runs when the agent starts, as firmware would at power-on. On a real device the
//! same environment is what the bootloader reads, and [`decide`] documents its contract.
//!
//! The rules that keep a device from running an unverified image or being bricked:
//! - a slot is booted only if its first `length` bytes match the hashes recorded for it
//!   (verified boot); a slot being written is recorded as empty first;
//! - a pending slot gets `tries` boots; each boot spends one before the image runs, so an image
//!   that hangs or crashes is abandoned after `tries` attempts and the active slot boots again;
//! - the active slot changes only when the agent commits after a passed health check.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use medsec_crypto::digest::{HashAlgorithm, Hasher};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::record::Record;

/// What is in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotImage {
    /// Target name.
    pub target: String,
    /// Version.
    pub version: String,
    /// Release counter.
    pub release_counter: u64,
    /// Length in bytes.
    pub length: u64,
    /// Hashes by algorithm (hex), as the image repository signed them.
    pub hashes: BTreeMap<String, String>,
}

/// The bootloader's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEnv {
    /// Slot A and B contents (`None`: empty or being written).
    pub slots: [Option<SlotImage>; 2],
    /// The committed slot.
    pub active: usize,
    /// A slot to try, and how many boots it has left.
    pub pending: Option<(usize, u32)>,
    /// The highest release counter ever committed (anti-rollback, as a fuse would hold it).
    pub release_counter: u64,
}

/// Boots a pending slot gets before the bootloader gives up on it.
pub const TRIES: u32 = 3;

/// The two slot paths.
#[derive(Debug, Clone)]
pub struct Slots {
    /// Slot A and slot B: files or block devices.
    pub paths: [PathBuf; 2],
}

impl Slots {
    /// Path of slot `i`.
    pub fn path(&self, i: usize) -> Result<&Path, Error> {
        self.paths
            .get(i)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::State(format!("no slot {i}")))
    }

    /// Whether slot `i` holds exactly `image` (its first `length` bytes match every hash).
    pub fn verify(&self, i: usize, image: &SlotImage) -> bool {
        self.path(i).is_ok_and(|p| verify_prefix(p, image))
    }
}

/// Whether the first `image.length` bytes of `path` match every hash recorded for it.
pub fn verify_prefix(path: &Path, image: &SlotImage) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut hashers = Vec::new();
    for (name, want) in &image.hashes {
        let Some(alg) = HashAlgorithm::from_name(name) else {
            return false;
        };
        hashers.push((Hasher::new(alg), want));
    }
    if hashers.is_empty() {
        return false;
    }
    let mut reader = file.take(image.length);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                for (h, _) in &mut hashers {
                    h.update(buf.get(..n).unwrap_or_default());
                }
            }
            Err(_) => return false,
        }
    }
    total == image.length
        && hashers
            .into_iter()
            .all(|(h, want)| hex::encode(h.finish()).eq_ignore_ascii_case(want))
}

/// SHA-256 (hex) of the first `length` bytes of `path`.
fn prefix_sha256(path: &Path, length: u64) -> Option<String> {
    let mut h = Hasher::new(HashAlgorithm::Sha256);
    let mut reader = std::fs::File::open(path).ok()?.take(length);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n)?);
    }
    Some(hex::encode(h.finish()))
}

/// What the bootloader chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    /// Slot index.
    pub slot: usize,
    /// Its image.
    pub image: SlotImage,
    /// Whether it is the pending slot on trial (the agent must health-check and commit it).
    pub on_trial: bool,
}

/// The boot decision; changes `env` (spent tries, abandoned pending slot, fallback) and says
/// what boots. `Err(Error::Bricked)` only if neither slot holds a verified image.
pub fn decide(env: &mut BootEnv, slots: &Slots) -> Result<Booted, Error> {
    if let Some((p, tries)) = env.pending {
        let image = env.slots.get(p).cloned().flatten();
        match image {
            Some(image) if tries > 0 && slots.verify(p, &image) => {
                env.pending = Some((p, tries - 1));
                return Ok(Booted {
                    slot: p,
                    image,
                    on_trial: true,
                });
            }
            // Out of tries, or the image does not verify: give up on it.
            _ => env.pending = None,
        }
    }
    for slot in [env.active, 1 - env.active.min(1)] {
        if let Some(image) = env.slots.get(slot).cloned().flatten()
            && slots.verify(slot, &image)
        {
            env.active = slot;
            return Ok(Booted {
                slot,
                image,
                on_trial: false,
            });
        }
    }
    Err(Error::Bricked)
}

/// The boot environment on disk, with its slots.
#[derive(Debug)]
pub struct Bootloader {
    record: Record<BootEnv>,
    /// The slots.
    pub slots: Slots,
    /// The environment as last loaded or saved.
    pub env: BootEnv,
}

impl Bootloader {
    /// Opens the environment in `dir`.
    pub fn open(dir: &Path, slots: Slots) -> Result<Self, Error> {
        let mut record = Record::new(dir, "boot");
        let env = record.load().ok_or_else(|| {
            Error::State(format!(
                "no valid boot environment in {}: provision the device (medsec-agent enrol)",
                dir.display()
            ))
        })?;
        Ok(Self { record, slots, env })
    }

    /// Writes a fresh environment with `image` in slot A (the factory image).
    pub fn provision(dir: &Path, slots: Slots, image: SlotImage) -> Result<Self, Error> {
        if !slots.verify(0, &image) {
            return Err(Error::State(
                "the factory image in slot A does not verify".into(),
            ));
        }
        let mut record = Record::new(dir, "boot");
        let env = BootEnv {
            release_counter: image.release_counter,
            slots: [Some(image), None],
            active: 0,
            pending: None,
        };
        record.save(&env)?;
        Ok(Self { record, slots, env })
    }

    /// Power-on: decides what boots and records the decision before the image runs. Each boot
    /// is appended to `boots.log` with the SHA-256 of the bytes actually booted, hashed again
    /// independently of the check, so tests (and auditors) can confirm that only signed images
    /// ever ran.
    pub fn boot(&mut self) -> Result<Booted, Error> {
        let before = self.env.clone();
        let booted = decide(&mut self.env, &self.slots)?;
        if self.env != before {
            crate::fault::point("boot-env");
            self.record.save(&self.env)?;
        }
        let path = self.slots.path(booted.slot)?;
        let digest = prefix_sha256(path, booted.image.length)
            .ok_or_else(|| Error::State(format!("reading {}", path.display())))?;
        if let Some(dir) = self.record.paths().first().and_then(|p| p.parent()) {
            use std::io::Write as _;
            let log = dir.join("boots.log");
            let line = format!(
                "{} slot={} target={} version={} sha256={digest}\n",
                time::OffsetDateTime::now_utc().unix_timestamp(),
                ["A", "B"].get(booted.slot).unwrap_or(&"?"),
                booted.image.target,
                booted.image.version
            );
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(Error::io("appending to", &log))?;
        }
        Ok(booted)
    }

    /// Saves the environment after a change.
    pub fn save(&mut self) -> Result<(), Error> {
        self.record.save(&self.env)
    }

    /// The boot-environment files.
    pub fn record_paths(&self) -> &[PathBuf; 2] {
        self.record.paths()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(data: &[u8], version: &str) -> SlotImage {
        SlotImage {
            target: format!("fw-{version}"),
            version: version.into(),
            release_counter: 1,
            length: data.len() as u64,
            hashes: BTreeMap::from([(
                "sha256".into(),
                hex::encode(medsec_crypto::digest::sha256(data)),
            )]),
        }
    }

    fn setup() -> (tempfile::TempDir, Slots, BootEnv) {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots {
            paths: [dir.path().join("a"), dir.path().join("b")],
        };
        std::fs::write(&slots.paths[0], b"old image").unwrap();
        std::fs::write(&slots.paths[1], b"new image").unwrap();
        let env = BootEnv {
            slots: [
                Some(image(b"old image", "1")),
                Some(image(b"new image", "2")),
            ],
            active: 0,
            pending: Some((1, TRIES)),
            release_counter: 1,
        };
        (dir, slots, env)
    }

    #[test]
    fn a_pending_slot_gets_its_tries_then_the_active_slot_boots_again() {
        let (_d, slots, mut env) = setup();
        for left in (0..TRIES).rev() {
            let b = decide(&mut env, &slots).unwrap();
            assert_eq!(
                (b.slot, b.on_trial, env.pending),
                (1, true, Some((1, left)))
            );
        }
        let b = decide(&mut env, &slots).unwrap();
        assert_eq!((b.slot, b.on_trial, env.pending), (0, false, None));
    }

    #[test]
    fn an_unverified_image_never_boots() {
        // A pending slot whose bytes changed (torn write, tampering) is abandoned at once.
        let (_d, slots, mut env) = setup();
        std::fs::write(&slots.paths[1], b"new imagX").unwrap();
        let b = decide(&mut env, &slots).unwrap();
        assert_eq!((b.slot, env.pending), (0, None));
        // A damaged active slot falls back to the other, if that verifies.
        let (_d, slots, mut env) = setup();
        env.pending = None;
        std::fs::write(&slots.paths[0], b"old").unwrap();
        let b = decide(&mut env, &slots).unwrap();
        assert_eq!((b.slot, env.active), (1, 1));
        // Neither verifies: bricked is said, never booted.
        std::fs::write(&slots.paths[1], b"").unwrap();
        assert!(matches!(decide(&mut env, &slots), Err(Error::Bricked)));
        // A slot recorded as empty is never booted, whatever it holds.
        let (_d, slots, mut env) = setup();
        env.slots[1] = None;
        let b = decide(&mut env, &slots).unwrap();
        assert_eq!((b.slot, env.pending), (0, None));
    }

    #[test]
    fn a_block_device_slot_is_verified_over_the_image_length_only() {
        let (_d, slots, _) = setup();
        std::fs::write(&slots.paths[0], b"old image and the rest of the partition").unwrap();
        assert!(slots.verify(0, &image(b"old image", "1")));
        assert!(!slots.verify(0, &image(b"old image and more than the partition has", "1")));
    }
}
