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

mod audit;
mod delegation;
mod signing;

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
