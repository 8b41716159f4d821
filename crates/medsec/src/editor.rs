//! `medsec repo`: the release engineer's tool for a TUF repository on disk.
//!
//! Layout of a repository directory:
//! ```text
//! DIR/metadata/   root.json + N.root.json for every root version, timestamp.json,
//!                 snapshot.json + N.snapshot.json, targets.json + N.targets.json, delegated roles
//!                 (percent-encoded names), all as any TUF client fetches them
//! DIR/targets/    the artifacts, under their target paths
//! DIR/keys/       private keys made by `init` and `delegate` (encrypted unless asked otherwise)
//! ```
//! Every command that changes a role writes it with a new version and signs it with the keys it
//! was given (`--key`, or by default every key in `DIR/keys/` that the role trusts). Roles whose
//! keys are held by several people are completed with `sign`, one key at a time, offline.
//! `timestamp` then snapshots the targets roles (refusing while any is below its threshold) and
//! refreshes the timestamp; `publish` verifies everything and writes a directory any static web
//! server can serve.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use medsec_crypto::digest::{HashAlgorithm, Hasher};
use medsec_crypto::{KeySource, Scheme};
use medsec_tuf::{
    DelegatedRole, Delegations, Envelope, Expires, Key, KeyId, MetaFile, Role, Root, Snapshot,
    SuccinctRoles, TargetFile, Targets, Timestamp, TrustedSet, verify_threshold,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::keys::{self, LoadedKey, Passphrase};
use crate::progress;

/// A repository directory.
pub struct Repo {
    dir: PathBuf,
}

/// Default lifetimes of each role's metadata.
pub fn default_expiry(role: &str) -> time::Duration {
    match role {
        "root" => time::Duration::days(365),
        "timestamp" => time::Duration::days(1),
        "snapshot" => time::Duration::days(7),
        _ => time::Duration::days(90),
    }
}

/// A metadata lifetime: `30d`, `12h`, `90m` or `3600s` (medsec-util's one duration rule).
pub fn parse_expiry(s: &str) -> Result<time::Duration, String> {
    let d = medsec_util::parse_duration(s)?;
    time::Duration::try_from(d).map_err(|_| format!("{s:?} is too long a duration"))
}

fn expires_in(d: time::Duration) -> Expires {
    Expires::from_datetime(OffsetDateTime::now_utc() + d)
}

/// Options for `repo init`.
pub struct InitOptions {
    pub root_scheme: Scheme,
    pub targets_scheme: Scheme,
    pub online_scheme: Scheme,
    pub root_keys: u64,
    pub root_threshold: u64,
    pub targets_keys: u64,
    pub targets_threshold: u64,
    pub consistent_snapshot: bool,
    pub plaintext_keys: bool,
}

/// The release's SBOM, as the target's custom metadata records it.
pub struct SbomRef {
    /// SHA-256 of the SBOM file, hex.
    pub sha256: String,
    /// `CycloneDX 1.6`, `SPDX 2.3`, … when the SBOM itself was given and checked.
    pub format: Option<String>,
    /// Its component count, likewise.
    pub components: Option<usize>,
}

/// medsec's custom metadata for a firmware target.
pub struct TargetCustom {
    pub hardware_ids: Vec<String>,
    pub version: String,
    pub release_counter: u64,
    pub sbom: Option<SbomRef>,
}

impl TargetCustom {
    fn to_json(&self) -> Result<Value> {
        ensure!(
            !self.hardware_ids.is_empty(),
            "give at least one --hardware-id"
        );
        ensure!(
            is_semver(&self.version),
            "version {:?} is not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD])",
            self.version
        );
        let mut medsec = serde_json::Map::new();
        let core = json!({
            "hardware_ids": self.hardware_ids,
            "version": self.version,
            "release_counter": self.release_counter,
        });
        if let Value::Object(m) = core {
            medsec.extend(m);
        }
        if let Some(sbom) = &self.sbom {
            ensure!(
                sbom.sha256.len() == 64 && sbom.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "--sbom-sha256 must be 64 hex digits"
            );
            let sha256 = sbom.sha256.to_ascii_lowercase();
            let entry = match (&sbom.format, sbom.components) {
                (Some(format), Some(components)) => {
                    json!({"sha256": sha256, "format": format, "components": components})
                }
                _ => json!({ "sha256": sha256 }),
            };
            medsec.insert("sbom".into(), entry);
        }
        Ok(json!({ "medsec": medsec }))
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// What `verify` found.
#[derive(Default)]
pub struct Report {
    pub ok: Vec<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Every target, as the verified metadata gives it (path -> its signed entry).
    pub targets: BTreeMap<String, medsec_tuf::TargetFile>,
}

fn role_file(role: &str) -> String {
    format!("{}.json", quote(role))
}

/// Role names are percent-encoded in file names exactly as TUF clients request them.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a target path is safe to store under `targets/`.
fn check_target_path(path: &str) -> Result<()> {
    ensure!(!path.is_empty(), "target path is empty");
    ensure!(
        !path.starts_with('/'),
        "target path {path:?} must be relative"
    );
    ensure!(
        path.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".."),
        "target path {path:?} has an empty, '.' or '..' segment"
    );
    ensure!(
        !path.contains('\\'),
        "target path {path:?} contains a backslash"
    );
    Ok(())
}

impl Repo {
    pub fn open(dir: &Path) -> Result<Self> {
        let repo = Self {
            dir: dir.to_owned(),
        };
        ensure!(
            repo.meta_dir().join("root.json").exists(),
            "{} is not a medsec repository (no metadata/root.json): run `medsec repo init` first",
            dir.display()
        );
        Ok(repo)
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn read(&self, role: &str) -> Result<(Vec<u8>, Envelope)> {
        let path = self.meta_dir().join(role_file(role));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("role {role:?} has no metadata at {}", path.display()))?;
        let env = Envelope::parse(role, &bytes)?;
        Ok((bytes, env))
    }

    pub fn root(&self) -> Result<Root> {
        Ok(Root::from_envelope(&self.read("root")?.1)?)
    }
    fn targets(&self, role: &str) -> Result<Targets> {
        Ok(Targets::from_envelope(role, &self.read(role)?.1)?)
    }
    fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::from_envelope(&self.read("snapshot")?.1)?)
    }
    fn timestamp_meta(&self) -> Result<Timestamp> {
        Ok(Timestamp::from_envelope(&self.read("timestamp")?.1)?)
    }

    /// Writes `ROLE.json`, and `VERSION.ROLE.json` for root always and for snapshot/targets roles
    /// under consistent snapshots.
    fn write(&self, role: &str, version: u64, bytes: &[u8], consistent: bool) -> Result<()> {
        let dir = self.meta_dir();
        if role == "root" || (consistent && role != "timestamp") {
            write_atomic(&dir.join(format!("{version}.{}", role_file(role))), bytes)?;
        }
        write_atomic(&dir.join(role_file(role)), bytes)
    }

    /// Every private key in `keys/` (loaded lazily, only if its public half is wanted).
    fn local_key_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.keys_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .collect();
        paths.sort();
        paths
    }

    /// The keys to sign `role` with: the given files, or else those of the repository's own key
    /// files that the role trusts (picked by the key ids in their `.pub` files).
    fn signing_keys(
        &self,
        role: &str,
        allowed: &[KeyId],
        given: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<Vec<LoadedKey>> {
        let mut out = Vec::new();
        if !given.is_empty() {
            for p in given {
                let k = keys::load(p, passphrase)?;
                ensure!(
                    allowed.contains(&k.keyid),
                    "key {} (id {}) is not one of the keys of role {role:?}",
                    p.display(),
                    short(&k.keyid)
                );
                out.push(k);
            }
            return Ok(out);
        }
        for p in self.local_key_paths() {
            if allowed.contains(&keys::key_id_of(&p, passphrase)?) {
                let k = keys::load(&p, passphrase)?;
                if allowed.contains(&k.keyid) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Signs `signed` for `role` and writes it; returns (valid signatures, threshold).
    fn sign_and_write(
        &self,
        role: &str,
        signed: &impl serde::Serialize,
        version: u64,
        keys: &[LoadedKey],
        consistent: bool,
    ) -> Result<()> {
        let sources: Vec<&dyn KeySource> = keys.iter().map(|k| &k.key as &dyn KeySource).collect();
        let bytes = medsec_tuf::sign(signed, &sources)?;
        self.write(role, version, &bytes, consistent)
    }

    /// Keys and threshold that must sign `role`, and the key map they are in.
    fn role_keys(&self, role: &str) -> Result<(BTreeMap<KeyId, Key>, Vec<KeyId>, u64)> {
        let root = self.root()?;
        if let Some((ids, t)) = root.role(role) {
            return Ok((root.keys.clone(), ids.to_vec(), t));
        }
        for (name, _) in self.targets_roles()? {
            let t = self.targets(&name)?;
            if let Some(d) = &t.delegations
                && let Some((ids, threshold)) = d.role(role)
            {
                return Ok((d.keys.clone(), ids.to_vec(), threshold));
            }
        }
        bail!("no role named {role:?} is delegated in this repository")
    }

    /// All targets roles that have metadata, delegators before the roles they delegate.
    fn targets_roles(&self) -> Result<Vec<(String, String)>> {
        let mut out = vec![("targets".to_owned(), "root".to_owned())];
        let mut seen = BTreeSet::from(["targets".to_owned()]);
        let mut i = 0;
        while let Some((role, _)) = out.get(i).cloned() {
            i += 1;
            let t = self.targets(&role)?;
            let Some(d) = &t.delegations else { continue };
            let children: Vec<String> = match (&d.roles, &d.succinct_roles) {
                (Some(roles), _) => roles.iter().map(|r| r.name.clone()).collect(),
                (None, Some(s)) => (0..s.bin_count()).map(|n| s.bin_name(n)).collect(),
                _ => vec![],
            };
            for c in children {
                if self.meta_dir().join(role_file(&c)).exists() && seen.insert(c.clone()) {
                    out.push((c, role.clone()));
                }
            }
        }
        Ok(out)
    }

    /// `repo init`.
    pub fn init(dir: &Path, opts: &InitOptions, passphrase: &Passphrase) -> Result<Self> {
        ensure!(
            !dir.join("metadata").exists(),
            "{} already holds a repository",
            dir.display()
        );
        ensure!(
            opts.root_threshold >= 1 && opts.root_threshold <= opts.root_keys,
            "root threshold must be between 1 and the number of root keys ({})",
            opts.root_keys
        );
        ensure!(
            opts.targets_threshold >= 1 && opts.targets_threshold <= opts.targets_keys,
            "targets threshold must be between 1 and the number of targets keys ({})",
            opts.targets_keys
        );
        let pass = passphrase.protection(opts.plaintext_keys)?;
        let repo = Self {
            dir: dir.to_owned(),
        };
        for d in [repo.meta_dir(), repo.targets_dir(), repo.keys_dir()] {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut root = Root::new(
            1,
            expires_in(default_expiry("root")),
            opts.consistent_snapshot,
        );
        let mut all: BTreeMap<String, Vec<LoadedKey>> = BTreeMap::new();
        for (role, scheme, count, threshold) in [
            (
                "root",
                opts.root_scheme,
                opts.root_keys,
                opts.root_threshold,
            ),
            (
                "targets",
                opts.targets_scheme,
                opts.targets_keys,
                opts.targets_threshold,
            ),
            ("snapshot", opts.online_scheme, 1, 1),
            ("timestamp", opts.online_scheme, 1, 1),
        ] {
            let mut ids = Vec::new();
            for n in 1..=count {
                let path = repo.keys_dir().join(format!("{role}-{n}.key"));
                let k = keys::generate(&path, scheme, pass.as_deref())?;
                root.keys
                    .insert(k.keyid.clone(), Key::from_public(k.key.public_key()));
                ids.push(k.keyid.clone());
                all.entry(role.to_owned()).or_default().push(k);
            }
            root.roles
                .insert(role.to_owned(), Role::new(ids, threshold));
        }
        let get = |role: &str| all.get(role).map(Vec::as_slice).unwrap_or_default();
        repo.sign_and_write("root", &root, 1, get("root"), true)?;
        let targets = Targets::new(1, expires_in(default_expiry("targets")));
        repo.sign_and_write(
            "targets",
            &targets,
            1,
            get("targets"),
            opts.consistent_snapshot,
        )?;
        let mut snapshot = Snapshot::new(1, expires_in(default_expiry("snapshot")));
        snapshot.meta.insert("targets.json".into(), meta_version(1));
        repo.sign_and_write(
            "snapshot",
            &snapshot,
            1,
            get("snapshot"),
            opts.consistent_snapshot,
        )?;
        repo.write_timestamp(1, get("timestamp"), default_expiry("timestamp"))?;
        Ok(repo)
    }

    fn write_timestamp(
        &self,
        version: u64,
        keys: &[LoadedKey],
        expiry: time::Duration,
    ) -> Result<()> {
        let (snap_bytes, snap_env) = self.read("snapshot")?;
        let snap = Snapshot::from_envelope(&snap_env)?;
        let meta = MetaFile {
            version: snap.version,
            length: Some(snap_bytes.len() as u64),
            hashes: Some(BTreeMap::from([(
                "sha256".to_owned(),
                hex::encode(medsec_crypto::digest::sha256(&snap_bytes)),
            )])),
        };
        let ts = Timestamp::new(version, expires_in(expiry), meta);
        self.sign_and_write("timestamp", &ts, version, keys, false)
    }

    /// `repo add-target`: hashes the file, stores it under `targets/PATH`, and lists it in the
    /// role that is trusted for the path (`role`, or the hash bin when targets uses hash bins).
    #[expect(clippy::too_many_arguments, reason = "one CLI command's options")]
    pub fn add_target(
        &self,
        file: &Path,
        path: &str,
        role: Option<&str>,
        custom: &TargetCustom,
        expiry: Option<time::Duration>,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(String, TargetFile)> {
        check_target_path(path)?;
        let custom = custom.to_json()?;
        let role = match role {
            Some(r) => r.to_owned(),
            None => match self
                .targets("targets")?
                .delegations
                .and_then(|d| d.succinct_roles)
            {
                Some(bins) => bins.role_for_target(path),
                None => "targets".to_owned(),
            },
        };
        let mut targets = self.targets(&role)?;
        let (length, hashes) = hash_file_with_progress(file)?;
        let dest = self.targets_dir().join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        copy_atomic(file, &dest)?;
        let info = TargetFile {
            length,
            hashes,
            custom: Some(custom),
        };
        targets.targets.insert(path.to_owned(), info.clone());
        self.resign_targets(&role, targets, expiry, key_files, passphrase)?;
        Ok((role, info))
    }

    fn resign_targets(
        &self,
        role: &str,
        mut targets: Targets,
        expiry: Option<time::Duration>,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<()> {
        targets.version += 1;
        targets.expires = expires_in(expiry.unwrap_or_else(|| default_expiry(role)));
        let (_, ids, _) = self.role_keys(role)?;
        let keys = self.signing_keys(role, &ids, key_files, passphrase)?;
        let consistent = self.root()?.consistent_snapshot;
        self.sign_and_write(role, &targets, targets.version, &keys, consistent)
    }

    /// `repo delegate` with path patterns: creates role `name` with new keys (or the public keys
    /// of the given key files) and lists it in `from`'s delegations.
    #[expect(clippy::too_many_arguments, reason = "one CLI command's options")]
    pub fn delegate(
        &self,
        from: &str,
        name: &str,
        paths: Vec<String>,
        terminating: bool,
        threshold: u64,
        scheme: Scheme,
        key_count: u64,
        plaintext_keys: bool,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<Vec<KeyId>> {
        ensure!(!paths.is_empty(), "give at least one --path pattern");
        ensure!(
            !medsec_tuf::TOP_LEVEL_ROLES.contains(&name),
            "{name:?} is a top-level role name"
        );
        let mut parent = self.targets(from)?;
        let mut delegations = parent.delegations.take().unwrap_or(Delegations {
            keys: BTreeMap::new(),
            roles: Some(vec![]),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        });
        let roles = delegations.roles.as_mut().ok_or_else(|| {
            anyhow!("{from:?} delegates to hash bins; it cannot also delegate by path")
        })?;
        ensure!(
            roles.iter().all(|r| r.name != name),
            "{from:?} already delegates {name:?}"
        );
        let pass = passphrase.protection(plaintext_keys)?;
        let mut new_keys = Vec::new();
        for n in 1..=key_count {
            let path = self.keys_dir().join(format!("{}-{n}.key", quote(name)));
            new_keys.push(keys::generate(&path, scheme, pass.as_deref())?);
        }
        ensure!(
            threshold >= 1 && threshold <= new_keys.len() as u64,
            "threshold must be between 1 and the number of keys"
        );
        let ids: Vec<KeyId> = new_keys.iter().map(|k| k.keyid.clone()).collect();
        for k in &new_keys {
            delegations
                .keys
                .insert(k.keyid.clone(), Key::from_public(k.key.public_key()));
        }
        if let Some(roles) = delegations.roles.as_mut() {
            roles.push(DelegatedRole {
                name: name.to_owned(),
                keyids: ids.clone(),
                threshold,
                terminating,
                paths: Some(paths),
                path_hash_prefixes: None,
                unrecognized: BTreeMap::new(),
            });
        }
        parent.delegations = Some(delegations);
        let consistent = self.root()?.consistent_snapshot;
        let child = Targets::new(1, expires_in(default_expiry(name)));
        self.sign_and_write(name, &child, 1, &new_keys, consistent)?;
        self.resign_targets(from, parent, None, key_files, passphrase)?;
        Ok(ids)
    }

    /// `repo delegate --hash-bins`: splits all of `targets` over 2^bits bins (TAP 15), moving the
    /// targets it lists now into their bins.
    pub fn delegate_hash_bins(
        &self,
        bits: u32,
        prefix: &str,
        scheme: Scheme,
        plaintext_keys: bool,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<u64> {
        ensure!((1..=16).contains(&bits), "--hash-bins must be 1 to 16 bits");
        let mut top = self.targets("targets")?;
        ensure!(
            top.delegations.is_none(),
            "targets already delegates; hash bins need a targets role without delegations"
        );
        let pass = passphrase.protection(plaintext_keys)?;
        let key = keys::generate(
            &self.keys_dir().join(format!("{}-1.key", quote(prefix))),
            scheme,
            pass.as_deref(),
        )?;
        let bins = SuccinctRoles {
            keyids: vec![key.keyid.clone()],
            threshold: 1,
            bit_length: bits,
            name_prefix: prefix.to_owned(),
            unrecognized: BTreeMap::new(),
        };
        let mut per_bin: BTreeMap<String, Targets> = BTreeMap::new();
        for n in 0..bins.bin_count() {
            per_bin.insert(
                bins.bin_name(n),
                Targets::new(1, expires_in(default_expiry("bins"))),
            );
        }
        for (path, info) in std::mem::take(&mut top.targets) {
            if let Some(bin) = per_bin.get_mut(&bins.role_for_target(&path)) {
                bin.targets.insert(path, info);
            }
        }
        let consistent = self.root()?.consistent_snapshot;
        let bar = progress::bar(bins.bin_count(), "signing hash bins");
        for (name, bin) in &per_bin {
            self.sign_and_write(name, bin, 1, std::slice::from_ref(&key), consistent)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        top.delegations = Some(Delegations {
            keys: BTreeMap::from([(key.keyid.clone(), Key::from_public(key.key.public_key()))]),
            roles: None,
            succinct_roles: Some(bins.clone()),
            unrecognized: BTreeMap::new(),
        });
        self.resign_targets("targets", top, None, key_files, passphrase)?;
        Ok(bins.bin_count())
    }

    /// `repo sign`: adds one signature per key to `role`'s current metadata, without changing it.
    pub fn sign(
        &self,
        role: &str,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(u64, u64)> {
        ensure!(
            !key_files.is_empty(),
            "give the key to sign with: --key FILE"
        );
        let (_, env) = self.read(role)?;
        let (keymap, ids, threshold) = if role == "root" {
            // A new root must be signed by its own keys and by the previous root's keys.
            let root = Root::from_envelope(&env)?;
            let mut ids = root
                .role("root")
                .map(|(i, _)| i.to_vec())
                .unwrap_or_default();
            let mut keymap = root.keys.clone();
            if root.version > 1 {
                let (_, prev_env) = self.read_versioned("root", root.version - 1)?;
                let prev = Root::from_envelope(&prev_env)?;
                ids.extend(
                    prev.role("root")
                        .map(|(i, _)| i.to_vec())
                        .unwrap_or_default(),
                );
                keymap.extend(prev.keys);
            }
            let t = root.role("root").map_or(1, |(_, t)| t);
            (keymap, ids, t)
        } else {
            self.role_keys(role)?
        };
        let mut sigs: Vec<Value> = env
            .signatures
            .iter()
            .map(|s| json!({"keyid": s.keyid, "sig": s.sig}))
            .collect();
        for path in key_files {
            let k = keys::load(path, passphrase)?;
            ensure!(
                ids.contains(&k.keyid),
                "key {} (id {}) may not sign {role:?}",
                path.display(),
                short(&k.keyid)
            );
            ensure!(
                env.signatures.iter().all(|s| s.keyid != k.keyid),
                "{role:?} is already signed by key {}",
                short(&k.keyid)
            );
            let sig = k.key.sign(&env.canonical)?;
            sigs.push(json!({"keyid": k.keyid, "sig": hex::encode(sig)}));
        }
        let signed = env.signed_value()?;
        let version = signed.get("version").and_then(Value::as_u64).unwrap_or(1);
        let bytes = medsec_tuf::sign_raw(signed, sigs);
        let consistent = self.root()?.consistent_snapshot || role == "root";
        self.write(role, version, &bytes, consistent)?;
        let env = Envelope::parse(role, &bytes)?;
        let valid = count_valid(role, &keymap, &ids, &env);
        Ok((valid, threshold))
    }

    fn read_versioned(&self, role: &str, version: u64) -> Result<(Vec<u8>, Envelope)> {
        let path = self
            .meta_dir()
            .join(format!("{version}.{}", role_file(role)));
        let bytes = std::fs::read(&path).with_context(|| format!("missing {}", path.display()))?;
        let env = Envelope::parse(role, &bytes)?;
        Ok((bytes, env))
    }

    /// `repo timestamp`: snapshots the targets roles if any changed (all must meet their
    /// thresholds), then writes a new timestamp.
    pub fn timestamp(
        &self,
        expiry: Option<time::Duration>,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(u64, u64)> {
        let root = self.root()?;
        let mut snapshot = self.snapshot()?;
        let mut changed = false;
        for (role, _) in self.targets_roles()? {
            let (_, env) = self.read(&role)?;
            let (keymap, ids, threshold) = self.role_keys(&role)?;
            verify_threshold(&role, &keymap, &ids, threshold, &env).map_err(|e| {
                anyhow!(
                    "{e}: collect more signatures with `medsec repo sign --role {role} --key FILE`"
                )
            })?;
            let version = Targets::from_envelope(&role, &env)?.version;
            let name = format!("{role}.json");
            if snapshot.meta.get(&name).map(|m| m.version) != Some(version) {
                snapshot.meta.insert(name, meta_version(version));
                changed = true;
            }
        }
        if changed
            || snapshot
                .expires
                .is_expired(OffsetDateTime::now_utc() + time::Duration::days(1))
        {
            snapshot.version += 1;
            snapshot.expires = expires_in(default_expiry("snapshot"));
            let (_, ids, _) = self.role_keys("snapshot")?;
            let keys = self.signing_keys("snapshot", &ids, key_files, passphrase)?;
            self.sign_and_write(
                "snapshot",
                &snapshot,
                snapshot.version,
                &keys,
                root.consistent_snapshot,
            )?;
        }
        let version = self.timestamp_meta()?.version + 1;
        let (_, ids, _) = self.role_keys("timestamp")?;
        let keys = self.signing_keys("timestamp", &ids, key_files, passphrase)?;
        self.write_timestamp(
            version,
            &keys,
            expiry.unwrap_or_else(|| default_expiry("timestamp")),
        )?;
        Ok((snapshot.version, version))
    }

    /// `repo rotate`: a new root version with keys added to or removed from a top-level role,
    /// signed by the given keys (it needs the old root threshold *and* the new one: sign with
    /// `--key` here, or later with `repo sign --role root`).
    #[expect(clippy::too_many_arguments, reason = "one CLI command's options")]
    pub fn rotate(
        &self,
        role: &str,
        add: &[PathBuf],
        remove: &[String],
        threshold: Option<u64>,
        expiry: Option<time::Duration>,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(u64, u64, u64)> {
        ensure!(
            medsec_tuf::TOP_LEVEL_ROLES.contains(&role),
            "rotate changes top-level roles (root, targets, snapshot, timestamp); {role:?} is not one"
        );
        let old = self.root()?;
        let mut root = old.clone();
        root.version += 1;
        root.expires = expires_in(expiry.unwrap_or_else(|| default_expiry("root")));
        let entry = root
            .roles
            .get_mut(role)
            .ok_or_else(|| anyhow!("root has no role {role:?}"))?;
        for prefix in remove {
            let matching: Vec<KeyId> = entry
                .keyids
                .iter()
                .filter(|k| k.starts_with(prefix.as_str()))
                .cloned()
                .collect();
            ensure!(
                matching.len() == 1,
                "--remove-key {prefix:?} matches {} keys of {role:?}",
                matching.len()
            );
            entry.keyids.retain(|k| !matching.contains(k));
        }
        for p in add {
            let k = keys::load(p, passphrase)?;
            if !entry.keyids.contains(&k.keyid) {
                entry.keyids.push(k.keyid.clone());
            }
            root.keys
                .insert(k.keyid.clone(), Key::from_public(k.key.public_key()));
        }
        if let Some(t) = threshold {
            entry.threshold = t;
        }
        ensure!(
            entry.threshold >= 1 && entry.threshold <= entry.keyids.len() as u64,
            "threshold {} is not between 1 and the {} keys of {role:?}",
            entry.threshold,
            entry.keyids.len()
        );
        let used: BTreeSet<&KeyId> = root.roles.values().flat_map(|r| &r.keyids).collect();
        root.keys.retain(|id, _| used.contains(id));
        let mut signers = Vec::new();
        let old_ids = old
            .role("root")
            .map(|(i, _)| i.to_vec())
            .unwrap_or_default();
        let new_ids = root
            .role("root")
            .map(|(i, _)| i.to_vec())
            .unwrap_or_default();
        if key_files.is_empty() {
            let both: Vec<KeyId> = old_ids.iter().chain(&new_ids).cloned().collect();
            signers = self.signing_keys("root", &both, &[], passphrase)?;
        }
        for p in key_files {
            let k = keys::load(p, passphrase)?;
            ensure!(
                old_ids.contains(&k.keyid) || new_ids.contains(&k.keyid),
                "key {} is neither an old nor a new root key",
                p.display()
            );
            signers.push(k);
        }
        self.sign_and_write("root", &root, root.version, &signers, true)?;
        let (_, env) = self.read("root")?;
        let old_valid = count_valid("root", &old.keys, &old_ids, &env);
        let new_valid = count_valid("root", &root.keys, &new_ids, &env);
        Ok((root.version, old_valid, new_valid))
    }

    /// `repo verify`: checks the repository as a client would, from version 1 of root, at `now`.
    pub fn verify(&self, now: OffsetDateTime) -> Result<Report> {
        let mut report = Report::default();
        let (first, _) = self.read_versioned("root", 1)?;
        let mut trusted = match TrustedSet::new(&first, now) {
            Ok(t) => t,
            Err(e) => {
                report.problems.push(format!("1.root.json: {e}"));
                return Ok(report);
            }
        };
        let latest = self.root()?.version;
        for v in 2..=latest {
            match self.read_versioned("root", v) {
                Ok((bytes, _)) => {
                    if let Err(e) = trusted.update_root(&bytes) {
                        report.problems.push(format!("{v}.root.json: {e}"));
                        return Ok(report);
                    }
                }
                Err(e) => {
                    report.problems.push(format!("{e}"));
                    return Ok(report);
                }
            }
        }
        report.ok.push(format!("root chain 1..{latest} verifies (each version signed by the previous and its own threshold)"));
        type Step<'a> = &'a dyn Fn(&mut TrustedSet) -> Result<()>;
        let steps: [(&str, Step<'_>); 2] = [
            ("timestamp", &|t| {
                t.update_timestamp(&self.read("timestamp")?.0)?;
                Ok(())
            }),
            ("snapshot", &|t| {
                t.update_snapshot(&self.read("snapshot")?.0, false)?;
                Ok(())
            }),
        ];
        for (name, step) in steps {
            match step(&mut trusted) {
                Ok(()) => report.ok.push(format!("{name} verifies")),
                Err(e) => {
                    report.problems.push(format!("{name}: {e:#}"));
                    return Ok(report);
                }
            }
        }
        let soon = now + time::Duration::days(1);
        for (role, parent) in self.targets_roles()? {
            let bytes = self.read(&role)?.0;
            match trusted.update_delegated_targets(&bytes, &role, &parent) {
                Ok(t) => {
                    if t.expires.is_expired(soon) {
                        report
                            .warnings
                            .push(format!("{role} expires within a day ({})", t.expires));
                    }
                    let t = t.clone();
                    let mut bad = 0;
                    for (path, info) in &t.targets {
                        report
                            .targets
                            .entry(path.clone())
                            .or_insert_with(|| info.clone());
                        if let Err(e) = check_artifact(&self.targets_dir().join(path), info) {
                            report
                                .problems
                                .push(format!("target {path:?} ({role}): {e}"));
                            bad += 1;
                        }
                    }
                    if bad == 0 {
                        report.ok.push(format!(
                            "{role} verifies ({} targets, all artifacts match)",
                            t.targets.len()
                        ));
                    }
                }
                Err(e) => report.problems.push(format!("{role}: {e}")),
            }
        }
        for role in ["timestamp", "snapshot"] {
            let expires = if role == "timestamp" {
                self.timestamp_meta()?.expires
            } else {
                self.snapshot()?.expires
            };
            if expires.is_expired(soon) {
                report.warnings.push(format!(
                    "{role} expires within a day ({expires}): run `medsec repo timestamp`"
                ));
            }
        }
        Ok(report)
    }

    /// `repo publish`: verifies, then writes `OUT/metadata/` and `OUT/targets/` (artifacts under
    /// `HASH.NAME` for consistent snapshots, and under their plain names otherwise).
    pub fn publish(&self, out: &Path) -> Result<(usize, usize)> {
        let report = self.verify(OffsetDateTime::now_utc())?;
        ensure!(
            report.problems.is_empty(),
            "the repository does not verify; nothing was published:\n  {}",
            report.problems.join("\n  ")
        );
        let meta_out = out.join("metadata");
        let targets_out = out.join("targets");
        std::fs::create_dir_all(&meta_out)?;
        std::fs::create_dir_all(&targets_out)?;
        let mut meta_count = 0;
        for entry in std::fs::read_dir(self.meta_dir())? {
            let entry = entry?;
            let temporary = entry.file_name().to_string_lossy().starts_with('.');
            if entry.file_type()?.is_file() && !temporary {
                copy_atomic(&entry.path(), &meta_out.join(entry.file_name()))?;
                meta_count += 1;
            }
        }
        let consistent = self.root()?.consistent_snapshot;
        let mut target_count = 0;
        for (role, _) in self.targets_roles()? {
            for (path, info) in self.targets(&role)?.targets {
                let src = self.targets_dir().join(&path);
                let name = if consistent {
                    let hash = info.hashes.get("sha256").cloned().unwrap_or_default();
                    match path.rsplit_once('/') {
                        Some((d, b)) => format!("{d}/{hash}.{b}"),
                        None => format!("{hash}.{path}"),
                    }
                } else {
                    path.clone()
                };
                let dest = targets_out.join(&name);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if !dest.exists() {
                    copy_atomic(&src, &dest)?;
                }
                target_count += 1;
            }
        }
        Ok((meta_count, target_count))
    }

    /// One line per role: version, expiry and signature status.
    pub fn status(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut roles: Vec<String> = vec!["root".into(), "timestamp".into(), "snapshot".into()];
        roles.extend(self.targets_roles()?.into_iter().map(|(r, _)| r));
        for role in roles {
            let (_, env) = self.read(&role)?;
            let (keymap, ids, threshold) = self.role_keys(&role)?;
            let valid = count_valid(&role, &keymap, &ids, &env);
            let signed = env.signed_value()?;
            let version = signed.get("version").and_then(Value::as_u64).unwrap_or(0);
            let expires = signed.get("expires").and_then(Value::as_str).unwrap_or("?");
            lines.push(format!(
                "{role:<12} v{version:<4} expires {expires}  signatures {valid}/{threshold}{}",
                if valid >= threshold {
                    ""
                } else {
                    "  (below threshold)"
                }
            ));
        }
        Ok(lines)
    }
}

fn meta_version(version: u64) -> MetaFile {
    MetaFile {
        version,
        length: None,
        hashes: None,
    }
}

fn count_valid(role: &str, keys: &BTreeMap<KeyId, Key>, ids: &[KeyId], env: &Envelope) -> u64 {
    // Count by asking for ever larger thresholds: verify_threshold is the one place that decides
    // what counts, so the number shown is the number the client will see.
    (1..=ids.len() as u64)
        .take_while(|t| verify_threshold(role, keys, ids, *t, env).is_ok())
        .last()
        .unwrap_or(0)
}

pub fn short(keyid: &str) -> &str {
    keyid.get(..12).unwrap_or(keyid)
}

/// Metadata is replaced whole (medsec-util's atomic write) and readable by all: it is published.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(medsec_util::write_atomic(
        path,
        bytes,
        medsec_util::Access::Public,
    )?)
}

fn copy_atomic(src: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".medsec-tmp-")
        .tempfile_in(dir)?;
    let mut f =
        std::fs::File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    std::io::copy(&mut f, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// SHA-256 and SHA-512 of a file, streamed, with a progress bar for large files.
fn hash_file_with_progress(path: &Path) -> Result<(u64, BTreeMap<String, String>)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let total = f.metadata()?.len();
    let bar = progress::bytes_bar(total, "hashing");
    let mut h256 = Hasher::new(HashAlgorithm::Sha256);
    let mut h512 = Hasher::new(HashAlgorithm::Sha512);
    let mut buf = vec![0u8; 1 << 20];
    let mut length = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        h256.update(chunk);
        h512.update(chunk);
        length += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok((
        length,
        BTreeMap::from([
            ("sha256".to_owned(), hex::encode(h256.finish())),
            ("sha512".to_owned(), hex::encode(h512.finish())),
        ]),
    ))
}

fn check_artifact(path: &Path, info: &TargetFile) -> Result<()> {
    let (length, hashes) = hash_file_with_progress(path)
        .map_err(|_| anyhow!("artifact missing at {}", path.display()))?;
    ensure!(
        length == info.length,
        "artifact is {length} bytes; metadata says {}",
        info.length
    );
    for (alg, expected) in &info.hashes {
        match hashes.get(alg) {
            Some(h) => ensure!(h == expected, "artifact's {alg} differs from metadata"),
            None => bail!("metadata uses hash {alg:?}, which medsec repo does not write"),
        }
    }
    Ok(())
}
