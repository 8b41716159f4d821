//! The director (Uptane): per-device TUF metadata that tells one device which image to install.
//!
//! The director is a TUF repository of its own, one per device, served on the device port at
//! `/director/DEVICE/`: a root shared by all devices (its root key signs it; the server creates
//! it on first start, see [`Director::load_or_create`]), and per device a `targets.json` naming at
//! most one target, with `snapshot.json` and `timestamp.json` over it, all three signed with the
//! director's **online** keys: targets with a hybrid ML-DSA-65 + Ed25519 key, snapshot and
//! timestamp with an Ed25519 key (as the image repository's online roles), so that the file a
//! device fetches on every poll stays under a kilobyte. Its target entries copy length and
//! hashes from the image repository and add `custom.medsec`: the device's hardware id, the release
//! counter, the version and the campaign. The device checks both repositories and installs only
//! when they agree (`medsec_tuf::uptane::agree`), so a stolen online key alone cannot install an
//! image the offline image-repository keys did not sign, nor roll a device back.
//!
//! What a device is told comes from the campaigns it is in: the newest campaign that offers it
//! an install (open wave, open maintenance window; see `medsec-campaign`) names the target. The
//! three files are re-signed, one version up, when that changes or when less than half of the
//! timestamp's lifetime is left; otherwise a poll is answered from the stored row.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medsec_campaign::Campaign;
use medsec_crypto::{KeySource as _, Scheme, SigningKey};
use medsec_store::{Device, DevicePoll, DirectorMetadata, DirectorTimestamp, Store};
use medsec_tuf::{Expires, Key, MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp};
use medsec_tuf_client::{FileTransport, Updater, UpdaterConfig};
use serde_json::json;
use time::OffsetDateTime;

use crate::{Error, campaigns};

/// How long the director's root is valid (it is re-created by an operator before then).
const ROOT_DAYS: i64 = 3650;
/// How long image-repository lookups are reused before the published metadata is read again.
const IMAGE_REFRESH: Duration = Duration::from_secs(5);

/// The director's keys and root.
pub struct Director {
    /// `N.root.json` bytes, index `N - 1`.
    roots: Vec<Vec<u8>>,
    online: SigningKey,
    /// Signs snapshot and timestamp.
    timestamp_key: SigningKey,
    expiry_ms: i64,
    image: Option<Arc<ImageRepository>>,
    /// Parsed campaigns by id, with the version they were parsed at: a poll reuses them until
    /// the campaign changes, instead of parsing its whole document again.
    campaigns: Mutex<HashMap<String, (i64, Arc<Campaign>)>>,
}

/// Most parsed campaigns kept; beyond that the cache starts over.
const CAMPAIGN_CACHE: usize = 64;

impl std::fmt::Debug for Director {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Director")
            .field("roots", &self.roots.len())
            .field("online", &self.online)
            .finish_non_exhaustive()
    }
}

fn tuf_error(e: medsec_tuf::Error) -> Error {
    Error::Config {
        reason: format!("director metadata: {e}"),
    }
}

fn expires(at_ms: i64) -> Result<Expires, Error> {
    let t =
        OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000)).map_err(|e| Error::Config {
            reason: format!("expiry out of range: {e}"),
        })?;
    Ok(Expires::from_datetime(t))
}

fn read_key(path: &Path, passphrase: Option<&str>) -> Result<SigningKey, Error> {
    let pem = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    Ok(medsec_crypto::keyfile::decode_private(&pem, || {
        passphrase.map(str::to_owned)
    })?)
}

fn write_key(path: &Path, key: &SigningKey, passphrase: Option<&str>) -> Result<(), Error> {
    let protection = match passphrase {
        Some(p) => medsec_crypto::keyfile::Protection::Passphrase(p),
        None => medsec_crypto::keyfile::Protection::Plaintext,
    };
    let pem = medsec_crypto::keyfile::encode_private(key, protection)?;
    Ok(medsec_util::write_atomic(
        path,
        pem.as_bytes(),
        medsec_util::Access::Private,
    )?)
}

impl Director {
    /// Opens `dir` (`root.key`, `online.key`, `timestamp.key`, `N.root.json`), creating the keys and root v1 on
    /// first start. Keys are encrypted with `passphrase` when one is given (the CA's), else
    /// written 0600 with a warning, as the CA is. `expiry` is the lifetime of the per-device
    /// files; `image` is the image repository the director copies entries from.
    pub fn load_or_create(
        dir: &Path,
        passphrase: Option<&str>,
        expiry: Duration,
        image: Option<Arc<ImageRepository>>,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        let online_path = dir.join("online.key");
        let timestamp_path = dir.join("timestamp.key");
        let root_path = dir.join("1.root.json");
        if !root_path.exists() {
            if passphrase.is_none() {
                tracing::warn!(
                    dir = %dir.display(),
                    "creating the director's keys unencrypted; set a CA passphrase to encrypt \
                     them, and move root.key offline"
                );
            }
            let root_key = SigningKey::generate(Scheme::MlDsa65Ed25519)?;
            let online = SigningKey::generate(Scheme::MlDsa65Ed25519)?;
            let timestamp_key = SigningKey::generate(Scheme::Ed25519)?;
            let root_pub = Key::from_public(root_key.public_key());
            let online_pub = Key::from_public(online.public_key());
            let timestamp_pub = Key::from_public(timestamp_key.public_key());
            let root_id = root_pub.key_id().map_err(tuf_error)?;
            let online_id = online_pub.key_id().map_err(tuf_error)?;
            let timestamp_id = timestamp_pub.key_id().map_err(tuf_error)?;
            let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
            let mut root = Root::new(1, expires(now + ROOT_DAYS * 86_400_000)?, false);
            root.keys.insert(root_id.clone(), root_pub);
            root.keys.insert(online_id.clone(), online_pub);
            root.keys.insert(timestamp_id.clone(), timestamp_pub);
            root.roles
                .insert("root".into(), Role::new(vec![root_id], 1));
            root.roles
                .insert("targets".into(), Role::new(vec![online_id], 1));
            for role in ["snapshot", "timestamp"] {
                root.roles
                    .insert(role.into(), Role::new(vec![timestamp_id.clone()], 1));
            }
            let bytes = medsec_tuf::sign(&root, &[&root_key]).map_err(tuf_error)?;
            write_key(&dir.join("root.key"), &root_key, passphrase)?;
            write_key(&online_path, &online, passphrase)?;
            write_key(&timestamp_path, &timestamp_key, passphrase)?;
            medsec_util::write_atomic(&root_path, &bytes, medsec_util::Access::Public)?;
        }
        let mut roots = Vec::new();
        loop {
            let path = dir.join(format!("{}.root.json", roots.len() + 1));
            match std::fs::read(&path) {
                Ok(bytes) => roots.push(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io("reading", &path)(e)),
            }
        }
        let online = read_key(&online_path, passphrase)?;
        let timestamp_key = read_key(&timestamp_path, passphrase)?;
        let expiry_ms = i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX);
        Ok(Self {
            roots,
            online,
            timestamp_key,
            expiry_ms,
            image,
            campaigns: Mutex::new(HashMap::new()),
        })
    }

    /// The newest root's version (roots are numbered from 1 without gaps).
    pub fn root_version(&self) -> u64 {
        u64::try_from(self.roots.len()).unwrap_or(u64::MAX)
    }

    /// `N.root.json`, or the newest root for `None`.
    pub fn root(&self, version: Option<u64>) -> Option<&[u8]> {
        match version {
            None => self.roots.last(),
            Some(v) => self.roots.get(usize::try_from(v).ok()?.checked_sub(1)?),
        }
        .map(Vec::as_slice)
    }

    /// The image repository, if one is configured.
    pub fn image(&self) -> Option<&Arc<ImageRepository>> {
        self.image.as_ref()
    }

    /// Signs version `version` of a device's targets, snapshot and timestamp for `assignment`.
    pub fn sign(
        &self,
        device: &str,
        version: i64,
        assignment: &BTreeMap<String, TargetFile>,
        now_ms: i64,
    ) -> Result<DirectorMetadata, Error> {
        let v = u64::try_from(version).map_err(|_| Error::Config {
            reason: format!("director version {version} is not positive"),
        })?;
        let expires_at_ms = now_ms.saturating_add(self.expiry_ms);
        let exp = expires(expires_at_ms)?;
        let keys: [&dyn medsec_crypto::KeySource; 1] = [&self.online];
        let mut targets = Targets::new(v, exp);
        targets.targets = assignment.clone();
        let targets_bytes = medsec_tuf::sign(&targets, &keys).map_err(tuf_error)?;
        let keys: [&dyn medsec_crypto::KeySource; 1] = [&self.timestamp_key];
        let mut snapshot = Snapshot::new(v, exp);
        snapshot.meta.insert(
            "targets.json".into(),
            MetaFile {
                version: v,
                length: None,
                hashes: None,
            },
        );
        let snapshot_bytes = medsec_tuf::sign(&snapshot, &keys).map_err(tuf_error)?;
        // The timestamp pins the snapshot by length and hash, so a replica that raced with us
        // can never pair our timestamp with its snapshot.
        let snapshot_meta = MetaFile {
            version: v,
            length: Some(snapshot_bytes.len() as u64),
            hashes: Some(BTreeMap::from([(
                "sha256".to_owned(),
                hex::encode(medsec_crypto::digest::sha256(&snapshot_bytes)),
            )])),
        };
        let timestamp = Timestamp::new(v, exp, snapshot_meta);
        let timestamp_bytes = medsec_tuf::sign(&timestamp, &keys).map_err(tuf_error)?;
        Ok(DirectorMetadata {
            device_id: device.to_owned(),
            version,
            assignment: assignment_json(assignment)?,
            targets: targets_bytes,
            snapshot: snapshot_bytes,
            timestamp: timestamp_bytes,
            expires_at_ms,
            updated_at_ms: now_ms,
        })
    }

    /// Campaign `id` at `version`: the parsed copy if it is that version, else read and parsed.
    async fn campaign<S: Store>(
        &self,
        store: &S,
        id: &str,
        version: i64,
    ) -> Result<Arc<Campaign>, Error> {
        let poisoned = || Error::Config {
            reason: "campaign cache poisoned".into(),
        };
        if let Some((v, c)) = self.campaigns.lock().map_err(|_| poisoned())?.get(id)
            && *v == version
        {
            return Ok(c.clone());
        }
        let row = store.campaign(id).await?;
        let parsed = Arc::new(campaigns::load(&row)?);
        let mut cache = self.campaigns.lock().map_err(|_| poisoned())?;
        if cache.len() >= CAMPAIGN_CACHE {
            cache.clear();
        }
        cache.insert(id.to_owned(), (row.version, parsed.clone()));
        Ok(parsed)
    }

    /// Whether stored metadata can still be served for `assignment` at `now_ms`.
    fn is_current(&self, m: &DirectorTimestamp, assignment: &str, now_ms: i64) -> bool {
        m.assignment == assignment && m.expires_at_ms - now_ms > self.expiry_ms / 2
    }
}

fn assignment_json(assignment: &BTreeMap<String, TargetFile>) -> Result<String, Error> {
    serde_json::to_string(assignment).map_err(|e| Error::Config {
        reason: format!("director assignment does not serialise: {e}"),
    })
}

/// Target lookups since the given instant (`None`: not in the image repository).
type Lookups = (Instant, BTreeMap<String, Option<TargetFile>>);

/// The image repository as published by `medsec repo publish` (`metadata/`, `targets/`), read
/// through the TUF client like any device reads it, so the director only ever copies entries
/// that verify under the image repository's root.
pub struct ImageRepository {
    published: PathBuf,
    cache_dir: PathBuf,
    cached: Mutex<Option<Lookups>>,
}

impl std::fmt::Debug for ImageRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRepository")
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

impl ImageRepository {
    /// Opens the published repository at `published`, keeping verified metadata in `cache_dir`.
    /// Trust starts from `trusted_root` (the root the operator gave) or, without one, from the
    /// published `1.root.json` (trust on first use, logged).
    pub fn open(
        published: &Path,
        cache_dir: &Path,
        trusted_root: Option<&Path>,
    ) -> Result<Self, Error> {
        let metadata = published.join("metadata");
        if !metadata.is_dir() {
            return Err(Error::Config {
                reason: format!(
                    "image_repository {} has no metadata/ directory: point it at the output of \
                     `medsec repo publish`",
                    published.display()
                ),
            });
        }
        if !cache_dir.join("root.json").exists() {
            let root_path = match trusted_root {
                Some(p) => p.to_owned(),
                None => {
                    let p = metadata.join("1.root.json");
                    tracing::warn!(
                        root = %p.display(),
                        "no image_root configured: trusting the published 1.root.json"
                    );
                    p
                }
            };
            let root = std::fs::read(&root_path).map_err(Error::io("reading", &root_path))?;
            Updater::init(cache_dir, &root).map_err(|e| Error::Config {
                reason: format!("image repository root {}: {e}", root_path.display()),
            })?;
        }
        Ok(Self {
            published: published.to_owned(),
            cache_dir: cache_dir.to_owned(),
            cached: Mutex::new(None),
        })
    }

    /// The published directory (served to devices at `/repo/`).
    pub fn published(&self) -> &Path {
        &self.published
    }

    /// The verified entry for `target`, or `None` if the image repository does not list it.
    /// Blocking (reads and verifies files): call it from a blocking task.
    pub fn target(&self, target: &str) -> Result<Option<TargetFile>, Error> {
        let mut cached = self.cached.lock().map_err(|_| Error::Config {
            reason: "image repository cache poisoned".into(),
        })?;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < IMAGE_REFRESH);
        if !fresh {
            *cached = Some((Instant::now(), BTreeMap::new()));
        }
        if let Some((_, map)) = cached.as_ref()
            && let Some(hit) = map.get(target)
        {
            return Ok(hit.clone());
        }
        let mut updater = self.updater()?;
        let found = match updater.get_target_info(target) {
            Ok(info) => Some(info),
            Err(medsec_tuf_client::Error::UnknownTarget { .. }) => None,
            Err(e) => return Err(image_error(&e)),
        };
        if let Some((_, map)) = cached.as_mut() {
            map.insert(target.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// A TUF client over the published metadata, trusting what `cache_dir` holds.
    fn updater(&self) -> Result<Updater, Error> {
        let url = self.published.join("metadata");
        Updater::new(
            &self.cache_dir,
            &url.to_string_lossy(),
            None,
            Box::new(FileTransport),
            UpdaterConfig::default(),
        )
        .map_err(|e| image_error(&e))
    }

    /// The top-level targets role's entries, verified through the TUF client as a device would
    /// verify them (root, timestamp, snapshot, targets). Roles it delegates to are not walked.
    /// Blocking (reads and verifies files): call it from a blocking task.
    pub fn top_level_targets(&self) -> Result<Vec<(String, TargetFile)>, Error> {
        // The lookup cache's lock also keeps two updaters off the metadata directory at once.
        let _guard = self.cached.lock().map_err(|_| Error::Config {
            reason: "image repository cache poisoned".into(),
        })?;
        let mut updater = self.updater()?;
        updater.refresh().map_err(|e| image_error(&e))?;
        let targets = updater
            .trusted()
            .targets("targets")
            .ok_or_else(|| Error::Config {
                reason: "the image repository's targets role did not load".into(),
            })?;
        Ok(targets
            .targets
            .iter()
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect())
    }
}

/// [`ImageRepository::top_level_targets`] on a blocking thread.
pub async fn top_level_targets(
    image: &Arc<ImageRepository>,
) -> Result<Vec<(String, TargetFile)>, Error> {
    let image = image.clone();
    tokio::task::spawn_blocking(move || image.top_level_targets())
        .await
        .map_err(|e| Error::Config {
            reason: format!("image repository listing failed: {e}"),
        })?
}

fn image_error(e: &medsec_tuf_client::Error) -> Error {
    Error::Config {
        reason: format!("the image repository does not verify: {e}"),
    }
}

/// [`ImageRepository::target`] on a blocking thread.
pub async fn lookup(
    image: &Arc<ImageRepository>,
    target: &str,
) -> Result<Option<TargetFile>, Error> {
    let (image, target) = (image.clone(), target.to_owned());
    tokio::task::spawn_blocking(move || image.target(&target))
        .await
        .map_err(|e| Error::Config {
            reason: format!("image repository lookup failed: {e}"),
        })?
}

/// The medsec part of an image entry's custom metadata.
fn image_custom(info: &TargetFile) -> Option<&serde_json::Map<String, serde_json::Value>> {
    info.custom.as_ref()?.get("medsec")?.as_object()
}

/// Checks that `release` names an image the repository signs for this version and counter,
/// built for every hardware id among `hardware_ids`. Used when a campaign is created, so an
/// operator learns of a mistake before any device does.
pub fn check_release(
    image: &ImageRepository,
    release: &medsec_campaign::Release,
    hardware_ids: &[String],
) -> Result<TargetFile, Error> {
    let bad = |reason: String| Error::Config { reason };
    let info = image
        .target(&release.target)?
        .ok_or_else(|| bad(format!(
            "target {:?} is not in the image repository: add and publish it with `medsec repo` first",
            release.target
        )))?;
    let custom = image_custom(&info).ok_or_else(|| {
        bad(format!(
            "target {:?} has no custom.medsec metadata (hardware ids, version, release counter)",
            release.target
        ))
    })?;
    let version = custom.get("version").and_then(|v| v.as_str());
    if version != Some(release.version.as_str()) {
        return Err(bad(format!(
            "target {:?} is version {}, not {:?}",
            release.target,
            version.unwrap_or("(none)"),
            release.version
        )));
    }
    let counter = custom.get("release_counter").and_then(|v| v.as_i64());
    if counter != Some(release.release_counter) {
        return Err(bad(format!(
            "target {:?} has release counter {}, not {}",
            release.target,
            counter.map_or("(none)".into(), |c| c.to_string()),
            release.release_counter
        )));
    }
    let built_for: Vec<&str> = custom
        .get("hardware_ids")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|h| h.as_str()).collect())
        .unwrap_or_default();
    for hw in hardware_ids {
        if !built_for.contains(&hw.as_str()) {
            return Err(bad(format!(
                "target {:?} is built for {built_for:?}, but the selection has devices with \
                 hardware id {hw:?}: narrow the selection",
                release.target
            )));
        }
    }
    Ok(info)
}

/// A change the director made to a campaign while answering a poll, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// Campaign.
    pub campaign: String,
    /// Target offered.
    pub target: String,
}

/// What `device` must install now: the director entries for the newest of `active` (its running
/// and paused campaigns, newest first) that offers it an install, and whether that poll moved the
/// device in the campaign (first offer).
async fn assignment<S: Store>(
    store: &S,
    director: &Director,
    device: &Device,
    active: Vec<(String, i64)>,
    now_ms: i64,
) -> Result<(BTreeMap<String, TargetFile>, Option<Offered>), Error> {
    let none = Ok((BTreeMap::new(), None));
    let Some(image) = director.image.as_ref() else {
        return none;
    };
    // Only running and paused campaigns can offer anything (a paused one still repeats an offer
    // to a device that was installing).
    for (id, version) in active {
        let campaign = director.campaign(store, &id, version).await?;
        let Some((_, before)) = campaign.device(&device.id) else {
            continue;
        };
        // A device that said it is in clinical use stays deferred: it is told the target (it
        // installs when idle) without being counted as offered again.
        let clinical = matches!(before, medsec_campaign::DeviceState::Deferred { .. });
        let mut next = (*campaign).clone();
        let offer = next
            .offer(&device.id, clinical, now_ms)
            .map_err(|e| Error::Config {
                reason: e.to_string(),
            })?;
        let release = match offer {
            medsec_campaign::Offer::Install { release } => release,
            medsec_campaign::Offer::Deferred => campaign.spec().release.clone(),
            _ => continue,
        };
        let info = lookup(image, &release.target).await?;
        let Some(info) = info else {
            tracing::error!(campaign = %id, target = %release.target,
                "a running campaign names a target the image repository no longer has");
            continue;
        };
        let Some(hardware_id) = Some(device.hardware_id.as_str()).filter(|h| !h.is_empty()) else {
            tracing::warn!(device = %device.id, campaign = %id,
                "the device has no hardware id in the inventory: nothing can be offered");
            continue;
        };
        let mut offered = None;
        if next.device(&device.id) != campaign.device(&device.id) {
            let device_id = device.id.clone();
            campaigns::change(store, &id, now_ms, move |c| {
                c.offer(&device_id, clinical, now_ms).map(|_| ())
            })
            .await?;
            offered = Some(Offered {
                campaign: id.clone(),
                target: release.target.clone(),
            });
        }
        let entry = TargetFile {
            length: info.length,
            hashes: info.hashes.clone(),
            custom: Some(json!({"medsec": {
                "hardware_id": hardware_id,
                "release_counter": release.release_counter,
                "version": release.version,
                "campaign": id,
            }})),
        };
        return Ok((BTreeMap::from([(release.target, entry)]), offered));
    }
    none
}

/// The device's current director timestamp, from what its poll read (`polled`): the stored
/// files if they still say the right thing and are fresh, else a new version signed and stored.
/// Also returns the first offer this poll made, if any.
pub async fn current<S: Store>(
    store: &S,
    director: &Director,
    polled: DevicePoll,
    now_ms: i64,
) -> Result<(Vec<u8>, Option<Offered>), Error> {
    let DevicePoll {
        device,
        campaigns,
        director: mut stored,
    } = polled;
    let (wanted, offered) = assignment(store, director, &device, campaigns, now_ms).await?;
    let wanted_json = assignment_json(&wanted)?;
    for attempt in 0..8 {
        // The poll's read first; after losing a race to another writer, the winner's files.
        if attempt > 0 {
            stored = store
                .director_metadata(&device.id)
                .await?
                .map(DirectorTimestamp::from);
        }
        if let Some(m) = stored.take_if(|m| director.is_current(m, &wanted_json, now_ms)) {
            return Ok((m.timestamp, offered));
        }
        let version = stored.as_ref().map_or(1, |m| m.version + 1);
        let signed = director.sign(&device.id, version, &wanted, now_ms)?;
        if store.put_director_metadata(&signed).await? {
            return Ok((signed.timestamp, offered));
        }
    }
    Err(Error::Config {
        reason: format!(
            "director metadata of {} is changing too often: try again",
            device.id
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_device_metadata_verifies_under_the_director_root_and_pins_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let d =
            Director::load_or_create(dir.path(), None, Duration::from_secs(3600), None).unwrap();
        let now = OffsetDateTime::now_utc();
        let now_ms = now.unix_timestamp() * 1000;
        let entry = TargetFile {
            length: 3,
            hashes: BTreeMap::from([("sha256".into(), "ab".repeat(32))]),
            custom: Some(json!({"medsec": {"hardware_id": "hw", "release_counter": 2}})),
        };
        let m = d
            .sign(
                "pump-1",
                4,
                &BTreeMap::from([("fw.bin".into(), entry.clone())]),
                now_ms,
            )
            .unwrap();
        let mut trusted = medsec_tuf::TrustedSet::new(d.root(None).unwrap(), now).unwrap();
        trusted.update_timestamp(&m.timestamp).unwrap();
        trusted.update_snapshot(&m.snapshot, false).unwrap();
        let targets = trusted.update_targets(&m.targets).unwrap();
        assert_eq!(targets.targets.get("fw.bin"), Some(&entry));
        assert_eq!(targets.version, 4);
        // Reopening reads the same root and key; nothing is re-created.
        let again =
            Director::load_or_create(dir.path(), None, Duration::from_secs(3600), None).unwrap();
        assert_eq!(again.root(Some(1)), d.root(None));
        assert_eq!(again.root(Some(2)), None);
        assert_eq!(again.root(Some(0)), None);
        // Metadata signed by another director's key is refused.
        let other = tempfile::tempdir().unwrap();
        let o =
            Director::load_or_create(other.path(), None, Duration::from_secs(3600), None).unwrap();
        let forged = o.sign("pump-1", 5, &BTreeMap::new(), now_ms).unwrap();
        let mut trusted = medsec_tuf::TrustedSet::new(d.root(None).unwrap(), now).unwrap();
        assert!(trusted.update_timestamp(&forged.timestamp).is_err());
    }

    #[test]
    fn stored_metadata_is_reused_until_it_changes_or_half_its_life_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let d = Director::load_or_create(dir.path(), None, Duration::from_secs(100), None).unwrap();
        let m = d.sign("pump-1", 1, &BTreeMap::new(), 0).unwrap();
        let m = DirectorTimestamp::from(m);
        assert!(d.is_current(&m, "{}", 0));
        assert!(d.is_current(&m, "{}", 49_999));
        assert!(!d.is_current(&m, "{}", 50_000));
        assert!(!d.is_current(&m, "{\"x\":1}", 0));
    }
}
