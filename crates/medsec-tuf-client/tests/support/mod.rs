//! A TUF repository on disk that tests can publish, tamper with and serve to the client.
//!
//! Every test builds its repository in its own folder (named after the attack) from these
//! primitives, so each attack's data is generated, inspectable (`MEDSEC_KEEP_TEST_DATA=1` keeps
//! the folders) and never goes stale by expiring.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use medsec_crypto::{KeySource, Scheme, SigningKey};
use medsec_tuf::{
    DelegatedRole, Delegations, Expires, Key, KeyId, MetaFile, Role, Root, Snapshot, SuccinctRoles,
    TargetFile, Targets, Timestamp,
};
use medsec_tuf_client::{FileTransport, Transport, TransportError, Updater, UpdaterConfig};
use time::{Duration, OffsetDateTime};

pub fn in_days(d: i64) -> Expires {
    Expires::from_datetime(OffsetDateTime::now_utc() + Duration::days(d))
}

pub fn key(scheme: Scheme) -> SigningKey {
    SigningKey::generate(scheme).unwrap()
}

pub fn keyid(k: &SigningKey) -> KeyId {
    Key::from_public(k.public_key()).key_id().unwrap()
}

pub fn sign_bytes(signed: &impl serde::Serialize, keys: &[&SigningKey]) -> Vec<u8> {
    let sources: Vec<&dyn KeySource> = keys.iter().map(|k| *k as &dyn KeySource).collect();
    medsec_tuf::sign(signed, &sources).unwrap()
}

/// A delegated targets role and its keys.
pub struct DelegatedState {
    pub targets: Targets,
    pub keys: Vec<SigningKey>,
}

pub struct Fixture {
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub root: Root,
    pub root_keys: Vec<SigningKey>,
    pub targets_keys: Vec<SigningKey>,
    pub snapshot_keys: Vec<SigningKey>,
    pub timestamp_keys: Vec<SigningKey>,
    pub targets: Targets,
    pub snapshot: Snapshot,
    pub timestamp: Timestamp,
    pub delegated: BTreeMap<String, DelegatedState>,
    pub artifacts: BTreeMap<String, Vec<u8>>,
}

fn role(keys: &[SigningKey], threshold: u64) -> Role {
    Role::new(keys.iter().map(keyid).collect(), threshold)
}

impl Fixture {
    /// A repository with one Ed25519 key per role, consistent snapshots, published at version 1.
    pub fn new(name: &str) -> Self {
        Self::with_scheme(name, Scheme::Ed25519)
    }

    pub fn with_scheme(name: &str, scheme: Scheme) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("medsec-attack-{name}-"))
            .tempdir()
            .unwrap();
        let (dir, tmp) = if std::env::var_os("MEDSEC_KEEP_TEST_DATA").is_some() {
            (tmp.keep(), None)
        } else {
            (tmp.path().to_owned(), Some(tmp))
        };
        std::fs::create_dir_all(dir.join("repo/metadata")).unwrap();
        std::fs::create_dir_all(dir.join("repo/targets")).unwrap();
        let root_keys = vec![key(scheme)];
        let targets_keys = vec![key(scheme)];
        let snapshot_keys = vec![key(Scheme::Ed25519)];
        let timestamp_keys = vec![key(Scheme::Ed25519)];
        let mut root = Root::new(1, in_days(365), true);
        for k in root_keys
            .iter()
            .chain(&targets_keys)
            .chain(&snapshot_keys)
            .chain(&timestamp_keys)
        {
            root.keys.insert(keyid(k), Key::from_public(k.public_key()));
        }
        root.roles.insert("root".into(), role(&root_keys, 1));
        root.roles.insert("targets".into(), role(&targets_keys, 1));
        root.roles
            .insert("snapshot".into(), role(&snapshot_keys, 1));
        root.roles
            .insert("timestamp".into(), role(&timestamp_keys, 1));
        let mut f = Self {
            dir,
            _tmp: tmp,
            root,
            root_keys,
            targets_keys,
            snapshot_keys,
            timestamp_keys,
            targets: Targets::new(1, in_days(90)),
            snapshot: Snapshot::new(1, in_days(7)),
            timestamp: Timestamp::new(
                1,
                in_days(1),
                MetaFile {
                    version: 1,
                    length: None,
                    hashes: None,
                },
            ),
            delegated: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        };
        f.publish_root();
        f.publish_targets_role("targets");
        f.publish_snapshot();
        f.publish_timestamp();
        f
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.dir.join("repo/metadata")
    }
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("repo/targets")
    }
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client/metadata")
    }
    pub fn download_dir(&self) -> PathBuf {
        let d = self.dir.join("client/downloads");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn write_meta(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.meta_dir().join(name), bytes).unwrap();
    }

    pub fn read_meta(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.meta_dir().join(name)).unwrap()
    }

    /// Signs root with its own keys and writes N.root.json.
    pub fn publish_root(&mut self) {
        let keys: Vec<&SigningKey> = self.root_keys.iter().collect();
        self.publish_root_signed_by(&keys);
    }

    pub fn publish_root_signed_by(&self, keys: &[&SigningKey]) {
        let bytes = sign_bytes(&self.root, keys);
        self.write_meta(&format!("{}.root.json", self.root.version), &bytes);
    }

    pub fn publish_targets_role(&mut self, name: &str) {
        if name == "targets" {
            let keys: Vec<&SigningKey> = self.targets_keys.iter().collect();
            let bytes = sign_bytes(&self.targets, &keys);
            self.write_meta(&format!("{}.targets.json", self.targets.version), &bytes);
            self.snapshot.meta.insert(
                "targets.json".into(),
                MetaFile {
                    version: self.targets.version,
                    length: None,
                    hashes: None,
                },
            );
        } else {
            let state = &self.delegated[name];
            let keys: Vec<&SigningKey> = state.keys.iter().collect();
            let bytes = sign_bytes(&state.targets, &keys);
            let version = state.targets.version;
            self.write_meta(&format!("{version}.{name}.json"), &bytes);
            self.snapshot.meta.insert(
                format!("{name}.json"),
                MetaFile {
                    version,
                    length: None,
                    hashes: None,
                },
            );
        }
    }

    pub fn publish_snapshot(&mut self) {
        let keys: Vec<&SigningKey> = self.snapshot_keys.iter().collect();
        let bytes = sign_bytes(&self.snapshot, &keys);
        self.write_meta(&format!("{}.snapshot.json", self.snapshot.version), &bytes);
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile {
                version: self.snapshot.version,
                length: Some(bytes.len() as u64),
                hashes: Some(BTreeMap::from([(
                    "sha256".into(),
                    hex::encode(medsec_crypto::digest::sha256(&bytes)),
                )])),
            },
        );
    }

    pub fn publish_timestamp(&mut self) {
        let keys: Vec<&SigningKey> = self.timestamp_keys.iter().collect();
        let bytes = sign_bytes(&self.timestamp, &keys);
        self.write_meta("timestamp.json", &bytes);
    }

    /// Bumps and publishes snapshot and timestamp.
    pub fn release(&mut self) {
        self.snapshot.version += 1;
        self.publish_snapshot();
        self.timestamp.version += 1;
        self.publish_timestamp();
    }

    /// Adds an artifact to `role` (top-level or delegated), bumps and publishes that role, then
    /// snapshot and timestamp.
    pub fn add_target(&mut self, role_name: &str, path: &str, data: &[u8]) -> TargetFile {
        let info = target_info(data);
        self.store_artifact(path, &info, data);
        let t = self.targets_mut(role_name);
        t.targets.insert(path.into(), info.clone());
        t.version += 1;
        self.publish_targets_role(role_name);
        self.release();
        info
    }

    pub fn store_artifact(&mut self, path: &str, info: &TargetFile, data: &[u8]) {
        let hash = &info.hashes["sha256"];
        let name = match path.rsplit_once('/') {
            Some((d, b)) => format!("{d}/{hash}.{b}"),
            None => format!("{hash}.{path}"),
        };
        let dest = self.targets_dir().join(name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, data).unwrap();
        self.artifacts.insert(path.into(), data.to_vec());
    }

    pub fn artifact_path(&self, path: &str) -> PathBuf {
        let data = &self.artifacts[path];
        let hash = hex::encode(medsec_crypto::digest::sha256(data));
        let name = match path.rsplit_once('/') {
            Some((d, b)) => format!("{d}/{hash}.{b}"),
            None => format!("{hash}.{path}"),
        };
        self.targets_dir().join(name)
    }

    pub fn targets_mut(&mut self, role_name: &str) -> &mut Targets {
        if role_name == "targets" {
            &mut self.targets
        } else {
            &mut self.delegated.get_mut(role_name).unwrap().targets
        }
    }

    /// `from` delegates `paths` to a new role `name` (one Ed25519 key).
    pub fn delegate(&mut self, from: &str, name: &str, paths: &[&str], terminating: bool) {
        let k = key(Scheme::Ed25519);
        let id = keyid(&k);
        let parent = self.targets_mut(from);
        let d = parent.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(vec![]),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        });
        d.keys.insert(id.clone(), Key::from_public(k.public_key()));
        d.roles.as_mut().unwrap().push(DelegatedRole {
            name: name.into(),
            keyids: vec![id],
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        });
        parent.version += 1;
        self.delegated.insert(
            name.into(),
            DelegatedState {
                targets: Targets::new(1, in_days(90)),
                keys: vec![k],
            },
        );
        self.publish_targets_role(name);
        self.publish_targets_role(from);
        self.release();
    }

    /// Top-level targets delegates everything to 2^bits hash bins sharing one key.
    pub fn hash_bins(&mut self, bits: u32) -> SuccinctRoles {
        let k = key(Scheme::Ed25519);
        let id = keyid(&k);
        let bins = SuccinctRoles {
            keyids: vec![id.clone()],
            threshold: 1,
            bit_length: bits,
            name_prefix: "bins".into(),
            unrecognized: BTreeMap::new(),
        };
        self.targets.delegations = Some(Delegations {
            keys: BTreeMap::from([(id, Key::from_public(k.public_key()))]),
            roles: None,
            succinct_roles: Some(bins.clone()),
            unrecognized: BTreeMap::new(),
        });
        self.targets.version += 1;
        for n in 0..bins.bin_count() {
            let name = bins.bin_name(n);
            self.delegated.insert(
                name.clone(),
                DelegatedState {
                    targets: Targets::new(1, in_days(90)),
                    keys: vec![SigningKey::from_pkcs8_der(&k.to_pkcs8_der().unwrap()).unwrap()],
                },
            );
            self.publish_targets_role(&name);
        }
        self.publish_targets_role("targets");
        self.release();
        bins
    }

    /// Initialises a client that trusts root version 1.
    pub fn init_client(&self) {
        let root = self.read_meta("1.root.json");
        Updater::init(&self.client_dir(), &root).unwrap();
    }

    pub fn updater(&self) -> Updater {
        self.updater_with(UpdaterConfig::default())
    }

    pub fn updater_with(&self, config: UpdaterConfig) -> Updater {
        self.updater_over(Box::new(FileTransport), config)
    }

    pub fn updater_over(&self, transport: Box<dyn Transport>, config: UpdaterConfig) -> Updater {
        if !self.client_dir().join("root.json").exists() {
            self.init_client();
        }
        Updater::new(
            self.client_dir(),
            &format!("file://{}/", self.meta_dir().display()),
            Some(&format!("file://{}/", self.targets_dir().display())),
            transport,
            config,
        )
        .unwrap()
    }

    pub fn client_file(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.client_dir().join(name)).ok()
    }

    pub fn client_version(&self, role: &str) -> Option<u64> {
        let bytes = self.client_file(&format!("{role}.json"))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["signed"]["version"].as_u64()
    }

    /// Files in the client's metadata directory.
    pub fn client_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.client_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

pub fn target_info(data: &[u8]) -> TargetFile {
    TargetFile {
        length: data.len() as u64,
        hashes: BTreeMap::from([
            (
                "sha256".into(),
                hex::encode(medsec_crypto::digest::sha256(data)),
            ),
            (
                "sha512".into(),
                hex::encode(medsec_crypto::digest::hash(
                    medsec_crypto::digest::HashAlgorithm::Sha512,
                    data,
                )),
            ),
        ]),
        custom: None,
    }
}

/// A transport that records every URL it is asked for.
#[derive(Clone, Default)]
pub struct Recording {
    pub urls: Arc<Mutex<Vec<String>>>,
}

impl Transport for Recording {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        self.urls.lock().unwrap().push(url.to_owned());
        FileTransport.fetch(url)
    }
}

/// A transport that records every URL and announces a root version beside `timestamp.json`, as
/// medsec's director does: `Some(v)` announces `v` (truthfully or not), `None` the newest
/// `N.root.json` in the metadata folder.
#[derive(Clone)]
pub struct Announcing {
    pub urls: Arc<Mutex<Vec<String>>>,
    pub metadata: PathBuf,
    pub announce: Option<u64>,
}

impl Transport for Announcing {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        self.urls.lock().unwrap().push(url.to_owned());
        FileTransport.fetch(url)
    }

    fn fetch_announced(
        &self,
        url: &str,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>), TransportError> {
        let reader = self.fetch(url)?;
        if !url.ends_with("/timestamp.json") {
            return Ok((reader, None));
        }
        let newest = (1..)
            .take_while(|v| self.metadata.join(format!("{v}.root.json")).exists())
            .last();
        Ok((reader, self.announce.or(newest)))
    }
}

/// A transport that serves endless bytes for URLs containing `needle`.
pub struct Endless {
    pub needle: String,
}

impl Transport for Endless {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        if url.contains(&self.needle) {
            Ok(Box::new(std::io::repeat(b'x')))
        } else {
            FileTransport.fetch(url)
        }
    }
}

pub fn assert_no_temporaries(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".medsec-tmp-"),
            "left a temporary file {name}"
        );
    }
}

/// A transport whose artifact stream fails after `after` bytes (a connection dropped mid-way).
pub struct Broken {
    pub needle: String,
    pub after: usize,
}

impl Transport for Broken {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        if url.contains(&self.needle) {
            let head = std::io::Cursor::new(vec![b'x'; self.after]);
            Ok(Box::new(head.chain(FailingRead)))
        } else {
            FileTransport.fetch(url)
        }
    }
}

struct FailingRead;

impl Read for FailingRead {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        ))
    }
}
