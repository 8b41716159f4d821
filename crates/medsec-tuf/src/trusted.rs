//! The client's trusted metadata, updated one file at a time in the order of the TUF
//! specification's section 5 (detailed client workflow). Each `update_*` either accepts the bytes
//! and makes them trusted, or refuses them and leaves the trusted state exactly as it was.
//!
//! The checks, in the specification's order:
//! - **root** (5.3): signed by a threshold of the trusted root's keys *and* of its own keys;
//!   version exactly trusted + 1. Expiry of the final root is checked when timestamp is loaded.
//! - **timestamp** (5.4): final root not expired; signed by root's timestamp keys; version not
//!   lower than trusted (equal: [`Error::EqualVersion`], nothing to do); snapshot version it names
//!   not lower than trusted; then not expired.
//! - **snapshot** (5.5): length and hashes as timestamp gives them (skipped for a locally cached
//!   copy that was verified before); signed by root's snapshot keys; no role that the trusted
//!   snapshot lists is missing or lower; version equal to timestamp's; not expired.
//! - **targets and delegated targets** (5.6, 5.7): length and hashes as snapshot gives them;
//!   signed by the delegator's keys for that role; version equal to snapshot's; not expired.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::schema::SignedMetadata;
use crate::verify::{verify_length_and_hashes, verify_threshold};
use crate::{Envelope, Error, Root, Snapshot, Targets, Timestamp};

/// Trusted metadata for one update (one refresh), with its fixed start time.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    reference_time: OffsetDateTime,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: BTreeMap<String, Targets>,
    /// Which delegators each loaded targets role was verified through: a role two delegators
    /// delegate is trusted on a path only once the delegator on that path has checked it.
    verified_through: BTreeMap<String, BTreeSet<String>>,
}

fn expired<T: SignedMetadata>(role: &str, m: &T, now: OffsetDateTime) -> Result<(), Error> {
    if m.expires().is_expired(now) {
        return Err(Error::Expired {
            role: role.into(),
            expires: m.expires().to_string(),
        });
    }
    Ok(())
}

impl TrustedSet {
    /// Starts from the locally trusted root (which must be signed by a threshold of its own keys).
    /// `reference_time` is the update's start time, used for every expiry check in it.
    pub fn new(root_bytes: &[u8], reference_time: OffsetDateTime) -> Result<Self, Error> {
        let env = Envelope::parse("root", root_bytes)?;
        let root = Root::from_envelope(&env)?;
        let (keyids, threshold) = root.role("root").unwrap_or_default();
        verify_threshold("root", &root.keys, keyids, threshold, &env)?;
        Ok(Self {
            reference_time,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            verified_through: BTreeMap::new(),
        })
    }

    /// The update's start time.
    pub fn reference_time(&self) -> OffsetDateTime {
        self.reference_time
    }
    /// Trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }
    /// Trusted timestamp, once loaded.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }
    /// Trusted snapshot, once loaded.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    /// Trusted targets or delegated targets role.
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role)
    }

    /// A loaded targets role, if `delegator` has verified it: the role as reached through
    /// that delegator. A role delegated by several delegators (each with its own keys) must be
    /// verified through each before it is trusted on that delegator's paths; `None` means
    /// [`TrustedSet::update_delegated_targets`] must check it with `delegator`'s keys first.
    pub fn targets_through(&self, role: &str, delegator: &str) -> Option<&Targets> {
        self.verified_through
            .get(role)
            .is_some_and(|d| d.contains(delegator))
            .then(|| self.targets.get(role))
            .flatten()
    }

    /// Verifies a root one version newer than the trusted one (5.3.4–5.3.5).
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Root, Error> {
        if self.timestamp.is_some() {
            return Err(Error::OutOfOrder {
                role: "root".into(),
                reason: "root cannot change after timestamp was loaded",
            });
        }
        let env = Envelope::parse("root", bytes)?;
        let (old_keyids, old_threshold) = self.root.role("root").unwrap_or_default();
        verify_threshold("root", &self.root.keys, old_keyids, old_threshold, &env)?;
        let new_root = Root::from_envelope(&env)?;
        if new_root.version != self.root.version + 1 {
            return Err(Error::BadVersion {
                role: "root".into(),
                found: new_root.version,
                expected: (self.root.version + 1).to_string(),
            });
        }
        let (keyids, threshold) = new_root.role("root").unwrap_or_default();
        verify_threshold("root", &new_root.keys, keyids, threshold, &env)?;
        self.root = new_root;
        Ok(&self.root)
    }

    /// Verifies a timestamp (5.4). On [`Error::EqualVersion`] the trusted one stays.
    ///
    /// An expired timestamp is still kept as the rollback reference for the next one (so a local
    /// copy that expired still protects against rollback) but the error is returned.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&Timestamp, Error> {
        if self.snapshot.is_some() {
            return Err(Error::OutOfOrder {
                role: "timestamp".into(),
                reason: "timestamp cannot change after snapshot was loaded",
            });
        }
        expired("root", &self.root, self.reference_time)?;
        let env = Envelope::parse("timestamp", bytes)?;
        let new = Timestamp::from_envelope(&env)?;
        let (keyids, threshold) = self.root.role("timestamp").unwrap_or_default();
        verify_threshold("timestamp", &self.root.keys, keyids, threshold, &env)?;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(Error::BadVersion {
                    role: "timestamp".into(),
                    found: new.version,
                    expected: format!("at least {}", old.version),
                });
            }
            if new.version == old.version {
                return Err(Error::EqualVersion {
                    version: new.version,
                });
            }
            let old_snap = old.snapshot_meta().map_or(0, |m| m.version);
            let new_snap = new.snapshot_meta().map_or(0, |m| m.version);
            if new_snap < old_snap {
                return Err(Error::BadVersion {
                    role: "snapshot".into(),
                    found: new_snap,
                    expected: format!("at least {old_snap}"),
                });
            }
        }
        let reference_time = self.reference_time;
        let ts = self.timestamp.insert(new);
        expired("timestamp", ts, reference_time)?;
        Ok(ts)
    }

    fn check_final_timestamp(&self) -> Result<&Timestamp, Error> {
        let ts = self.timestamp.as_ref().ok_or(Error::OutOfOrder {
            role: "snapshot".into(),
            reason: "timestamp must be loaded first",
        })?;
        expired("timestamp", ts, self.reference_time)?;
        Ok(ts)
    }

    /// Verifies a snapshot (5.5). `cached` skips the length/hash check for a local copy that was
    /// verified when it was stored; everything else is still checked.
    pub fn update_snapshot(&mut self, bytes: &[u8], cached: bool) -> Result<&Snapshot, Error> {
        if !self.targets.is_empty() {
            return Err(Error::OutOfOrder {
                role: "snapshot".into(),
                reason: "snapshot cannot change after targets were loaded",
            });
        }
        let ts = self.check_final_timestamp()?;
        let meta = ts
            .snapshot_meta()
            .cloned()
            .ok_or(Error::MissingFromSnapshot {
                role: "snapshot".into(),
            })?;
        if !cached {
            verify_length_and_hashes("snapshot.json", bytes, meta.length, meta.hashes.as_ref())?;
        }
        let env = Envelope::parse("snapshot", bytes)?;
        let new = Snapshot::from_envelope(&env)?;
        let (keyids, threshold) = self.root.role("snapshot").unwrap_or_default();
        verify_threshold("snapshot", &self.root.keys, keyids, threshold, &env)?;
        if let Some(old) = &self.snapshot {
            for (name, old_info) in &old.meta {
                let new_info = new
                    .meta
                    .get(name)
                    .ok_or_else(|| Error::MissingFromSnapshot {
                        role: name.trim_end_matches(".json").into(),
                    })?;
                if new_info.version < old_info.version {
                    return Err(Error::BadVersion {
                        role: name.trim_end_matches(".json").into(),
                        found: new_info.version,
                        expected: format!("at least {}", old_info.version),
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot()
    }

    fn check_final_snapshot(&self) -> Result<&Snapshot, Error> {
        let snap = self.snapshot.as_ref().ok_or(Error::OutOfOrder {
            role: "targets".into(),
            reason: "snapshot must be loaded first",
        })?;
        expired("snapshot", snap, self.reference_time)?;
        let expected = self
            .timestamp
            .as_ref()
            .and_then(Timestamp::snapshot_meta)
            .map_or(0, |m| m.version);
        if snap.version != expected {
            return Err(Error::BadVersion {
                role: "snapshot".into(),
                found: snap.version,
                expected: expected.to_string(),
            });
        }
        Ok(snap)
    }

    /// Verifies top-level targets (5.6).
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&Targets, Error> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Verifies targets role `role`, delegated by `delegator` (`root` for top-level targets).
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&Targets, Error> {
        let snap = self.check_final_snapshot()?;
        let meta = snap
            .meta
            .get(&format!("{role}.json"))
            .cloned()
            .ok_or_else(|| Error::MissingFromSnapshot { role: role.into() })?;
        let (keys, keyids, threshold) = if delegator == "root" {
            let (ids, t) = self.root.role(role).ok_or(Error::OutOfOrder {
                role: role.into(),
                reason: "root delegates only the top-level targets role",
            })?;
            (&self.root.keys, ids, t)
        } else {
            let parent = self.targets.get(delegator).ok_or(Error::OutOfOrder {
                role: role.into(),
                reason: "its delegator is not loaded",
            })?;
            let delegations = parent.delegations.as_ref().ok_or(Error::OutOfOrder {
                role: role.into(),
                reason: "its delegator has no delegations",
            })?;
            let (ids, t) = delegations.role(role).ok_or(Error::OutOfOrder {
                role: role.into(),
                reason: "its delegator does not delegate it",
            })?;
            (&delegations.keys, ids, t)
        };
        verify_length_and_hashes(
            &format!("{role}.json"),
            bytes,
            meta.length,
            meta.hashes.as_ref(),
        )?;
        let env = Envelope::parse(role, bytes)?;
        let new = Targets::from_envelope(role, &env)?;
        verify_threshold(role, keys, keyids, threshold, &env)?;
        if new.version != meta.version {
            return Err(Error::BadVersion {
                role: role.into(),
                found: new.version,
                expected: meta.version.to_string(),
            });
        }
        expired(role, &new, self.reference_time)?;
        if self
            .targets
            .get(role)
            .is_some_and(|old| old.version != new.version)
        {
            // Another version than the one verified through other delegators: only this
            // delegator has checked it.
            self.verified_through.remove(role);
        }
        self.targets.insert(role.to_owned(), new);
        self.verified_through
            .entry(role.to_owned())
            .or_default()
            .insert(delegator.to_owned());
        self.targets.get(role).ok_or(Error::OutOfOrder {
            role: role.into(),
            reason: "just stored",
        })
    }
}
