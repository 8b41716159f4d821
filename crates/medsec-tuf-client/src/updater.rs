//! The update workflow (TUF specification section 5), after python-tuf's `ngclient.Updater` so
//! that both clients make the same decisions on the same repository.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use medsec_crypto::digest::{HashAlgorithm, Hasher, constant_time_eq};
use medsec_tuf::{Limits, TargetFile, Targets, TrustedSet};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::transport::{AnyTransport, FileTransport, HttpTransport};
use crate::{Error, Transport, TransportError};
use medsec_util::fs::{self as persist, Access};

/// Python's `urllib.parse.quote(name, safe="")`: everything but `A-Za-z0-9_.-~` is escaped.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Percent-encodes a role name or target path for use as a single file name.
pub(crate) fn quote(name: &str) -> String {
    utf8_percent_encode(name, QUOTE).to_string()
}

/// Read size for artifacts (large enough to keep system-call overhead negligible).
const CHUNK: usize = 1024 * 1024;

/// How the updater behaves.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// Size caps and counts.
    pub limits: Limits,
    /// Fetch targets as `HASH.NAME` when root says `consistent_snapshot` (the specification's
    /// default; python-tuf's `prefix_targets_with_hash`).
    pub prefix_targets_with_hash: bool,
    /// The update's start time (default: now). Every expiry check in one refresh uses it.
    pub reference_time: Option<OffsetDateTime>,
    /// Let a server that announces its newest root version beside `timestamp.json` (see
    /// [`crate::ROOT_VERSION_HEADER`]) spare the root probe of 5.3 when that version is not
    /// newer than ours, so that a poll with no change is one request. Off by default: the
    /// specification's order (root N+1 first, then the timestamp) holds. Meant for a server
    /// that is itself authenticated (the medsec director, over mutual TLS, which signs the
    /// metadata it announces), never for a mirror or a CDN.
    pub trust_announced_root_version: bool,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            prefix_targets_with_hash: true,
            reference_time: None,
            trust_announced_root_version: false,
        }
    }
}

/// A TUF client bound to one metadata directory and one repository.
pub struct Updater {
    metadata_dir: PathBuf,
    metadata_base_url: String,
    target_base_url: Option<String>,
    transport: Box<dyn Transport>,
    config: UpdaterConfig,
    trusted: TrustedSet,
    refreshed: bool,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

impl Updater {
    /// Opens the metadata directory, which must hold a trusted `root.json`.
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata_base_url: &str,
        target_base_url: Option<&str>,
        transport: Box<dyn Transport>,
        config: UpdaterConfig,
    ) -> Result<Self, Error> {
        let metadata_dir = metadata_dir.into();
        persist::remove_stale_temporaries(&metadata_dir);
        let root_path = metadata_dir.join("root.json");
        let root = std::fs::read(&root_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NoTrustedRoot {
                    dir: metadata_dir.clone(),
                }
            } else {
                Error::io("reading", root_path.clone(), e)
            }
        })?;
        let reference_time = config
            .reference_time
            .unwrap_or_else(OffsetDateTime::now_utc);
        let trusted = TrustedSet::new(&root, reference_time)?;
        Ok(Self {
            metadata_dir,
            metadata_base_url: with_slash(metadata_base_url),
            target_base_url: target_base_url.map(with_slash),
            transport,
            config,
            trusted,
            refreshed: false,
        })
    }

    /// The transport medsec uses by default: HTTP(S) for `http(s)://` URLs, files otherwise.
    pub fn default_transport(ca_pem: Option<&[u8]>) -> Result<Box<dyn Transport>, Error> {
        Ok(Box::new(AnyTransport {
            http: HttpTransport::new(ca_pem, Duration::from_secs(30))?,
            file: FileTransport,
        }))
    }

    /// Copies a root the caller trusts (obtained out of band) into an empty metadata directory.
    /// The root must be signed by a threshold of its own keys; nothing is fetched.
    pub fn init(metadata_dir: &Path, trusted_root: &[u8]) -> Result<(), Error> {
        TrustedSet::new(trusted_root, OffsetDateTime::now_utc())?;
        std::fs::create_dir_all(metadata_dir)
            .map_err(|e| Error::io("creating", metadata_dir, e))?;
        Ok(persist::write_atomic(
            &metadata_dir.join("root.json"),
            trusted_root,
            Access::Private,
        )?)
    }

    /// The trusted metadata so far.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// Updates root, timestamp, snapshot and top-level targets (section 5.3–5.6), in the
    /// specification's order: root version N+1 (and on, until "not found"), then
    /// `timestamp.json`, then the snapshot, then the top-level targets. One update is one
    /// `Updater`: after a refresh (successful or not), start the next update with a new one.
    ///
    /// With [`UpdaterConfig::trust_announced_root_version`], the timestamp is fetched first, so
    /// that a server that announces its newest root version beside it spares the probe when
    /// that version is not newer than ours. For an authenticated server that signs what it
    /// announces this is as safe as the probe (whose "not found" is unauthenticated too), and
    /// every root walked is verified; without an announcement the probe still runs, the
    /// timestamp is verified only after the root walk, and fetched again if the root changed.
    pub fn refresh(&mut self) -> Result<(), Error> {
        let timestamp = if self.config.trust_announced_root_version {
            let before = self.trusted.root().version;
            let (mut timestamp, announced) = self.download_timestamp()?;
            if announced.is_none_or(|v| v > before) {
                self.load_root()?;
                if self.trusted.root().version != before {
                    timestamp = self.download_timestamp()?.0;
                }
            }
            timestamp
        } else {
            self.load_root()?;
            self.download_timestamp()?.0
        };
        self.load_timestamp(&timestamp)?;
        self.load_snapshot()?;
        self.load_targets("targets", "root")?;
        self.refreshed = true;
        Ok(())
    }

    fn fetch(&self, url: &str, max_length: u64) -> Result<Vec<u8>, Error> {
        read_capped(self.transport.fetch(url)?, url, max_length)
    }

    fn download_metadata(
        &self,
        role: &str,
        max_length: u64,
        version: Option<u64>,
    ) -> Result<Vec<u8>, Error> {
        let name = quote(role);
        let url = match version {
            Some(v) => format!("{}{v}.{name}.json", self.metadata_base_url),
            None => format!("{}{name}.json", self.metadata_base_url),
        };
        self.fetch(&url, max_length)
    }

    fn load_local(&self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.metadata_dir.join(format!("{}.json", quote(role)))).ok()
    }

    fn persist(&self, role: &str, data: &[u8]) -> Result<(), Error> {
        Ok(persist::write_atomic(
            &self.metadata_dir.join(format!("{}.json", quote(role))),
            data,
            Access::Private,
        )?)
    }

    /// 5.3: walk root versions forward until the repository has no next one, or the cap.
    fn load_root(&mut self) -> Result<(), Error> {
        let lower = self.trusted.root().version + 1;
        let upper = lower.saturating_add(self.config.limits.max_root_rotations);
        for next in lower..upper {
            let data = match self.download_metadata(
                "root",
                self.config.limits.root_max_length,
                Some(next),
            ) {
                Ok(d) => d,
                Err(Error::Transport(TransportError::NotFound { .. })) => break,
                Err(e) => return Err(e),
            };
            self.trusted.update_root(&data)?;
            // Versioned copies are not kept: root.json is always the newest trusted root.
            self.persist("root", &data)?;
        }
        Ok(())
    }

    /// The repository's `timestamp.json` (capped) and the root version announced with it.
    fn download_timestamp(&self) -> Result<(Vec<u8>, Option<u64>), Error> {
        let url = format!("{}timestamp.json", self.metadata_base_url);
        let (reader, announced) = self.transport.fetch_announced(&url)?;
        Ok((
            read_capped(reader, &url, self.config.limits.timestamp_max_length)?,
            announced,
        ))
    }

    /// 5.4, with the downloaded `data`.
    fn load_timestamp(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(local) = self.load_local("timestamp") {
            // A local timestamp that fails (even only by expiry) still serves as the rollback
            // reference: the trusted set keeps it as the intermediate version.
            let _ = self.trusted.update_timestamp(&local);
        }
        match self.trusted.update_timestamp(data) {
            Ok(_) => self.persist("timestamp", data),
            Err(medsec_tuf::Error::EqualVersion { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// 5.5
    fn load_snapshot(&mut self) -> Result<(), Error> {
        if let Some(local) = self.load_local("snapshot")
            && self.trusted.update_snapshot(&local, true).is_ok()
        {
            return Ok(());
        }
        let meta = self
            .trusted
            .timestamp()
            .and_then(|t| t.snapshot_meta())
            .cloned()
            .ok_or(Error::NotRefreshed)?;
        let length = meta
            .length
            .unwrap_or(self.config.limits.snapshot_max_length);
        let version = self
            .trusted
            .root()
            .consistent_snapshot
            .then_some(meta.version);
        let data = self.download_metadata("snapshot", length, version)?;
        self.trusted.update_snapshot(&data, false)?;
        self.persist("snapshot", &data)
    }

    /// 5.6 / 5.7: a targets role as reached from `parent`, from the local copy if it is still
    /// current, else fetched. A role already loaded is reused only if `parent` verified it: one
    /// reached through another delegator is checked again with this one's keys.
    fn load_targets(&mut self, role: &str, parent: &str) -> Result<&Targets, Error> {
        if self.trusted.targets_through(role, parent).is_some() {
            return self.trusted.targets(role).ok_or(Error::NotRefreshed);
        }
        if let Some(local) = self.load_local(role)
            && self
                .trusted
                .update_delegated_targets(&local, role, parent)
                .is_ok()
        {
            return self.trusted.targets(role).ok_or(Error::NotRefreshed);
        }
        let meta = self
            .trusted
            .snapshot()
            .and_then(|s| s.meta.get(&format!("{role}.json")))
            .cloned()
            .ok_or_else(|| medsec_tuf::Error::MissingFromSnapshot { role: role.into() })?;
        let length = meta.length.unwrap_or(self.config.limits.targets_max_length);
        let version = self
            .trusted
            .root()
            .consistent_snapshot
            .then_some(meta.version);
        let data = self.download_metadata(role, length, version)?;
        self.trusted.update_delegated_targets(&data, role, parent)?;
        self.persist(role, &data)?;
        self.trusted.targets(role).ok_or(Error::NotRefreshed)
    }

    /// Finds the trusted entry for `target_path`: depth-first, pre-order search of the
    /// delegation graph (5.6.7), loading delegated roles lazily.
    pub fn get_target_info(&mut self, target_path: &str) -> Result<TargetFile, Error> {
        if !self.refreshed {
            self.refresh()?;
        }
        let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        while visited.len() <= self.config.limits.max_delegations {
            let Some((role, parent)) = to_visit.pop() else {
                break;
            };
            // Cycle detection: a role reached a second time is not searched again.
            if visited.contains(&role) {
                continue;
            }
            let targets = self.load_targets(&role, &parent)?;
            if let Some(found) = targets.targets.get(target_path) {
                return Ok(found.clone());
            }
            visited.insert(role.clone());
            if let Some(delegations) = &targets.delegations {
                let mut children = Vec::new();
                for (child, terminating) in delegations.roles_for_target(target_path) {
                    children.push((child, role.clone()));
                    if terminating {
                        to_visit.clear();
                        break;
                    }
                }
                children.reverse();
                to_visit.extend(children);
            }
        }
        Err(Error::UnknownTarget {
            path: target_path.to_owned(),
        })
    }

    /// Where [`Updater::download_target`] stores `target_path` in `dir`.
    pub fn local_path(dir: &Path, target_path: &str) -> PathBuf {
        dir.join(quote(target_path))
    }

    /// Whether `path` already holds the artifact `info` describes (length and every hash).
    pub fn is_cached(info: &TargetFile, path: &Path) -> Result<bool, Error> {
        let Ok(file) = std::fs::File::open(path) else {
            return Ok(false);
        };
        match verify_stream(
            path.display().to_string().as_str(),
            file,
            info,
            None,
            &mut std::io::sink(),
        ) {
            Ok(()) => Ok(true),
            Err(Error::Metadata(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where `target_path` is fetched from: the target base URL (or the metadata URL), with
    /// the hash prefix when root says `consistent_snapshot`. For callers that fetch the artifact
    /// themselves (range-resumed downloads); they must check it with [`Updater::is_cached`].
    pub fn target_url(&self, info: &TargetFile, target_path: &str) -> String {
        let base = self
            .target_base_url
            .as_deref()
            .unwrap_or(&self.metadata_base_url);
        let mut remote = target_path.to_owned();
        if self.trusted.root().consistent_snapshot && self.config.prefix_targets_with_hash {
            let hash = info
                .hashes
                .get("sha256")
                .or_else(|| info.hashes.values().next())
                .cloned()
                .unwrap_or_default();
            remote = match target_path.rsplit_once('/') {
                Some((dirname, basename)) => format!("{dirname}/{hash}.{basename}"),
                None => format!("{hash}.{target_path}"),
            };
        }
        format!("{base}{remote}")
    }

    /// Downloads `target_path` into `dir` (streamed, capped at its length, hashed on the way) and
    /// returns where it was stored. Nothing appears at that path unless it verified.
    pub fn download_target(
        &self,
        info: &TargetFile,
        target_path: &str,
        dir: &Path,
        progress: Option<&dyn Fn(u64, u64)>,
    ) -> Result<PathBuf, Error> {
        if target_path.is_empty() {
            return Err(Error::BadTargetPath {
                path: target_path.to_owned(),
                reason: "empty",
            });
        }
        let url = self.target_url(info, target_path);
        let dest = Self::local_path(dir, target_path);
        let mut tmp = tempfile::Builder::new()
            .prefix(persist::TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
        let reader = self.transport.fetch(&url)?;
        verify_stream(&url, reader, info, progress, tmp.as_file_mut())?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("flushing", tmp.path().to_owned(), e))?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("storing", dest.clone(), e.error))?;
        persist::sync_dir(dir)?;
        Ok(dest)
    }
}

/// Copies `reader` to `out` while hashing, refusing it as soon as it passes `info.length`, and
/// checks length and every hash at the end.
fn verify_stream(
    what: &str,
    reader: impl Read + Send,
    info: &TargetFile,
    progress: Option<&dyn Fn(u64, u64)>,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut hashers = Vec::with_capacity(info.hashes.len());
    for (name, expected) in &info.hashes {
        let algorithm =
            HashAlgorithm::from_name(name).ok_or_else(|| medsec_tuf::Error::UnsupportedHash {
                what: what.to_owned(),
                algorithm: name.clone(),
            })?;
        hashers.push((name, expected, Hasher::new(algorithm)));
    }
    let mut total: u64 = 0;
    read_ahead(what, reader, |chunk| {
        total += chunk.len() as u64;
        if total > info.length {
            return Err(medsec_tuf::Error::TooLong {
                what: what.to_owned(),
                limit: info.length,
            }
            .into());
        }
        for (_, _, h) in &mut hashers {
            h.update(chunk);
        }
        out.write_all(chunk)
            .map_err(|e| Error::io("writing download of", what, e))?;
        if let Some(p) = progress {
            p(total, info.length);
        }
        Ok(())
    })?;
    if total != info.length {
        return Err(medsec_tuf::Error::LengthMismatch {
            what: what.to_owned(),
            found: total,
            expected: info.length,
        }
        .into());
    }
    for (name, expected, h) in hashers {
        let ok = hex::decode(expected).is_ok_and(|e| constant_time_eq(&h.finish(), &e));
        if !ok {
            return Err(medsec_tuf::Error::HashMismatch {
                what: what.to_owned(),
                algorithm: name.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// Chunks in flight between the reading thread and the hashing one.
const READ_AHEAD: usize = 3;

/// Reads `reader` on a helper thread, up to [`READ_AHEAD`] chunks ahead, and hands each chunk to
/// `consume` on this thread, so that reading (a copy out of the page cache or a socket) overlaps
/// hashing. Memory stays bounded at `READ_AHEAD` chunks. An error from `consume` stops the reader.
fn read_ahead(
    what: &str,
    reader: impl Read + Send,
    mut consume: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) =
            mpsc::sync_channel::<std::io::Result<(Vec<u8>, usize)>>(READ_AHEAD);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(READ_AHEAD);
        for _ in 0..READ_AHEAD {
            let _ = empty_tx.send(vec![0u8; CHUNK]);
        }
        scope.spawn(move || {
            let mut reader = reader;
            while let Ok(mut buf) = empty_rx.recv() {
                let read = loop {
                    match reader.read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let last = !matches!(read, Ok(n) if n > 0);
                if full_tx.send(read.map(|n| (buf, n))).is_err() || last {
                    return;
                }
            }
        });
        let result = loop {
            match full_rx.recv() {
                Ok(Ok((_, 0))) => break Ok(()),
                Ok(Ok((buf, n))) => {
                    if let Err(e) = consume(buf.get(..n).unwrap_or_default()) {
                        break Err(e);
                    }
                    let _ = empty_tx.send(buf);
                }
                Ok(Err(e)) => {
                    break Err(TransportError::Failed {
                        url: what.to_owned(),
                        reason: e.to_string(),
                    }
                    .into());
                }
                Err(_) => {
                    break Err(TransportError::Failed {
                        url: what.to_owned(),
                        reason: "the reading thread stopped".into(),
                    }
                    .into());
                }
            }
        };
        // Dropping our ends unblocks the reader wherever it waits, so the scope can join it.
        drop(full_rx);
        drop(empty_tx);
        result
    })
}

/// Reads at most `max_length` bytes of `reader`, failing when there are more.
fn read_capped(reader: Box<dyn Read + Send>, url: &str, max_length: u64) -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    reader
        .take(max_length.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| TransportError::Failed {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    if data.len() as u64 > max_length {
        return Err(medsec_tuf::Error::TooLong {
            what: url.to_owned(),
            limit: max_length,
        }
        .into());
    }
    Ok(data)
}
