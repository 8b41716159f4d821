//! Plain TUF 1.0 metadata types. Parsing checks shape (types, ranges, required roles, unique key
//! ids and role names); trust decisions are in `verify` and `trusted`.

use std::collections::{BTreeMap, BTreeSet};

use medsec_crypto::PublicKey;
use medsec_crypto::digest::sha256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::{Error, RoleName, canonical};

/// The specification version medsec writes.
pub const SPEC_VERSION: &str = "1.0.31";
/// The four top-level role names.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// A key id. medsec writes the lowercase hex SHA-256 of the key's canonical JSON ([`Key::key_id`]);
/// when reading it treats ids as opaque names, as TAP 12 (accepted) and the tuf-conformance suite
/// require. What keeps that safe: an id names exactly one key (metadata whose JSON repeats an
/// object key is refused by the canonicaliser), and a public key counts once towards a threshold
/// however many ids list it ([`crate::verify_threshold`]).
pub type KeyId = String;

/// An expiry instant, written `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(pub OffsetDateTime);

const EXPIRES_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

impl Expires {
    /// Whether the metadata has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.0 <= now
    }
    /// Truncates to whole seconds (the format has no fractions).
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        Self(t.replace_nanosecond(0).unwrap_or(t))
    }
}

impl std::fmt::Display for Expires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self
            .0
            .to_offset(time::UtcOffset::UTC)
            .format(EXPIRES_FORMAT)
            .map_err(|_| std::fmt::Error)?;
        f.write_str(&s)
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        time::PrimitiveDateTime::parse(&s, EXPIRES_FORMAT)
            .map(|p| Expires(p.assume_utc()))
            .map_err(|_| {
                serde::de::Error::custom(format!("expires {s:?} is not YYYY-MM-DDTHH:MM:SSZ"))
            })
    }
}

/// A public key as TUF writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Key {
    /// Key type (`ed25519`, `ecdsa`, `rsa`, `mldsa65-ed25519`).
    pub keytype: String,
    /// Signature scheme.
    pub scheme: String,
    /// Key value; `public` is the only field medsec reads.
    pub keyval: KeyVal,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// `keyval` of a key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyVal {
    /// The public key.
    pub public: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Key {
    /// The TUF form of a public key.
    pub fn from_public(key: &PublicKey) -> Self {
        Self {
            keytype: key.scheme().keytype().to_owned(),
            scheme: key.scheme().name().to_owned(),
            keyval: KeyVal {
                public: key.to_tuf_public(),
                unrecognized: BTreeMap::new(),
            },
            unrecognized: BTreeMap::new(),
        }
    }

    /// SHA-256 of the canonical JSON, hex.
    pub fn key_id(&self) -> Result<KeyId, Error> {
        let value = serde_json::to_value(self).map_err(|e| Error::Malformed {
            role: "key".into(),
            reason: e.to_string(),
        })?;
        Ok(hex::encode(sha256(&canonical::to_vec(&value)?)))
    }

    /// Decodes the public key.
    pub fn public_key(&self, keyid: &str) -> Result<PublicKey, Error> {
        PublicKey::from_tuf(&self.keytype, &self.scheme, &self.keyval.public).map_err(|source| {
            Error::BadKey {
                keyid: keyid.to_owned(),
                source,
            }
        })
    }
}

/// A role's keys and threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Role {
    /// Key ids allowed to sign.
    pub keyids: Vec<KeyId>,
    /// Signatures from distinct keys required.
    pub threshold: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Role {
    /// A role with these keys and threshold.
    pub fn new(keyids: Vec<KeyId>, threshold: u64) -> Self {
        Self {
            keyids,
            threshold,
            unrecognized: BTreeMap::new(),
        }
    }
}

/// Root metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    kind: String,
    /// Specification version.
    pub spec_version: String,
    /// Whether metadata and targets are published under versioned / hashed names.
    #[serde(default)]
    pub consistent_snapshot: bool,
    /// Version (≥ 1).
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Keys by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<String, Role>,
    /// Fields this version does not know.
    // Filled by `from_envelope` (flatten on deserialisation would buffer the whole
    // object, tens of thousands of targets, a second time).
    #[serde(flatten, skip_deserializing)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A snapshot or timestamp entry for a metadata file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetaFile {
    /// Version of the file.
    pub version: u64,
    /// Length in bytes, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Hashes, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// Timestamp metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    kind: String,
    /// Specification version.
    pub spec_version: String,
    /// Version (≥ 1).
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this version does not know.
    // Filled by `from_envelope` (flatten on deserialisation would buffer the whole
    // object, tens of thousands of targets, a second time).
    #[serde(flatten, skip_deserializing)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// Snapshot metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    kind: String,
    /// Specification version.
    pub spec_version: String,
    /// Version (≥ 1).
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// `ROLE.json` → its version (and optionally length and hashes).
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this version does not know.
    // Filled by `from_envelope` (flatten on deserialisation would buffer the whole
    // object, tens of thousands of targets, a second time).
    #[serde(flatten, skip_deserializing)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// A target file's entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes (at least one).
    pub hashes: BTreeMap<String, String>,
    /// Application data (medsec: hardware ids, version, release counter, SBOM digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// A delegated role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DelegatedRole {
    /// Role name.
    pub name: String,
    /// Key ids allowed to sign it.
    pub keyids: Vec<KeyId>,
    /// Signatures required.
    pub threshold: u64,
    /// Whether a search stops here when the path matches.
    #[serde(default)]
    pub terminating: bool,
    /// Path patterns this role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of SHA-256(path) this role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl DelegatedRole {
    /// Whether this role is trusted for `target`.
    pub fn is_delegated_path(&self, target: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| crate::pattern::matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(sha256(target.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }
}

/// TAP 15 succinct hash-bin delegation: `2^bit_length` bins named `PREFIX-XX`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SuccinctRoles {
    /// Key ids that sign every bin.
    pub keyids: Vec<KeyId>,
    /// Signatures required per bin.
    pub threshold: u64,
    /// Bits of SHA-256(path) that choose the bin (1–32).
    pub bit_length: u32,
    /// Bin names are `{name_prefix}-{hex}`.
    pub name_prefix: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl SuccinctRoles {
    /// Number of bins.
    pub fn bin_count(&self) -> u64 {
        1u64 << self.bit_length
    }

    fn suffix_len(&self) -> usize {
        format!("{:x}", self.bin_count() - 1).len()
    }

    /// The name of bin `n`.
    pub fn bin_name(&self, n: u64) -> String {
        format!(
            "{}-{:0width$x}",
            self.name_prefix,
            n,
            width = self.suffix_len()
        )
    }

    /// The bin responsible for `target`.
    pub fn role_for_target(&self, target: &str) -> String {
        let digest = sha256(target.as_bytes());
        let mut first = [0u8; 4];
        first.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
        let n = u32::from_be_bytes(first) >> (32 - self.bit_length);
        self.bin_name(u64::from(n))
    }

    /// Whether `name` is one of these bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|s| s.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.suffix_len()
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < self.bin_count())
            && suffix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// Delegations from a targets role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delegations {
    /// Keys by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// Ordered delegated roles (exclusive with `succinct_roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hash-bin delegation (exclusive with `roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Delegations {
    /// Delegated roles trusted for `target`, in order, each with its `terminating` flag.
    pub fn roles_for_target(&self, target: &str) -> Vec<(String, bool)> {
        if let Some(succinct) = &self.succinct_roles {
            return vec![(succinct.role_for_target(target), true)];
        }
        self.roles
            .iter()
            .flatten()
            .filter(|r| r.is_delegated_path(target))
            .map(|r| (r.name.clone(), r.terminating))
            .collect()
    }

    /// The keys and threshold of delegated role `name`, if this delegates it.
    pub fn role(&self, name: &str) -> Option<(&[KeyId], u64)> {
        if let Some(s) = &self.succinct_roles {
            return s.is_bin(name).then_some((s.keyids.as_slice(), s.threshold));
        }
        self.roles
            .iter()
            .flatten()
            .find(|r| r.name == name)
            .map(|r| (r.keyids.as_slice(), r.threshold))
    }
}

/// Targets metadata (top-level or delegated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    kind: String,
    /// Specification version.
    pub spec_version: String,
    /// Version (≥ 1).
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Target path → file info.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Fields this version does not know.
    // Filled by `from_envelope` (flatten on deserialisation would buffer the whole
    // object, tens of thousands of targets, a second time).
    #[serde(flatten, skip_deserializing)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Signature {
    /// Signing key id.
    pub keyid: KeyId,
    /// Signature, hex.
    pub sig: String,
}

/// A parsed metadata file: the signatures, the `signed` object exactly as received, and the
/// canonical bytes the signatures cover.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Signatures (key ids unique).
    pub signatures: Vec<Signature>,
    signed: Box<RawValue>,
    /// Canonical bytes of `signed`, which the signatures cover.
    pub canonical: Vec<u8>,
    /// Keys of the `signed` object.
    top_keys: Vec<String>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    signatures: Vec<Signature>,
    #[serde(borrow)]
    signed: &'a RawValue,
}

impl Envelope {
    /// Parses a metadata file's bytes. The `signed` object is canonicalised straight from the
    /// text (no intermediate tree), so large targets files stay cheap.
    pub fn parse(role: &str, bytes: &[u8]) -> Result<Self, Error> {
        let malformed = |reason: String| Error::Malformed {
            role: role.into(),
            reason,
        };
        let raw: RawEnvelope<'_> = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("not a metadata envelope: {e}")))?;
        if !raw.signed.get().starts_with('{') {
            return Err(malformed("`signed` is not an object".into()));
        }
        let mut seen = BTreeSet::new();
        for s in &raw.signatures {
            if !seen.insert(s.keyid.as_str()) {
                return Err(Error::DuplicateSignature {
                    role: role.into(),
                    keyid: s.keyid.clone(),
                });
            }
        }
        let (canonical, top_keys) = canonical::with_top_level_keys(raw.signed.get())?;
        Ok(Self {
            signatures: raw.signatures,
            signed: raw.signed.to_owned(),
            canonical,
            top_keys,
        })
    }

    /// The `signed` object's JSON text as received.
    pub fn signed_json(&self) -> &str {
        self.signed.get()
    }

    /// The `signed` object as a JSON value (for tools that edit metadata).
    pub fn signed_value(&self) -> Result<Value, Error> {
        serde_json::from_str(self.signed.get()).map_err(|e| Error::Malformed {
            role: "metadata".into(),
            reason: e.to_string(),
        })
    }
}

/// Common checks every signed type passes after parsing.
pub(crate) trait SignedMetadata: serde::de::DeserializeOwned {
    const TYPE: &'static str;
    fn version(&self) -> u64;
    fn expires(&self) -> Expires;
    fn spec_version(&self) -> &str;
    fn kind(&self) -> &str;
    /// Type-specific shape checks.
    fn check(&self, role: &str) -> Result<(), Error>;
    /// The fields this version knows; the rest is kept in `unrecognized`.
    const KNOWN: &'static [&'static str];
    fn unrecognized_mut(&mut self) -> &mut BTreeMap<String, Value>;

    fn from_envelope(role: &str, env: &Envelope) -> Result<Self, Error> {
        let malformed = |e: serde_json::Error| Error::Malformed {
            role: role.into(),
            reason: e.to_string(),
        };
        let mut parsed: Self = match serde_json::from_str(env.signed_json()) {
            Ok(p) => p,
            Err(e) => {
                // Say "wrong type" rather than "missing field" when a snapshot is served as
                // timestamp, say; this second look happens only on the error path.
                #[derive(Deserialize)]
                struct Kind {
                    #[serde(rename = "_type")]
                    kind: String,
                }
                if let Ok(k) = serde_json::from_str::<Kind>(env.signed_json())
                    && k.kind != Self::TYPE
                {
                    return Err(Error::WrongType {
                        expected: Self::TYPE,
                        found: k.kind,
                    });
                }
                return Err(malformed(e));
            }
        };
        // Fields this version does not know are kept; parsing them again is needed only when
        // the canonicaliser saw such a key.
        if env
            .top_keys
            .iter()
            .any(|k| !Self::KNOWN.contains(&k.as_str()))
        {
            let top: BTreeMap<String, &RawValue> =
                serde_json::from_str(env.signed_json()).map_err(malformed)?;
            let extra = parsed.unrecognized_mut();
            for (k, v) in top {
                if !Self::KNOWN.contains(&k.as_str()) {
                    extra.insert(k, serde_json::from_str(v.get()).map_err(malformed)?);
                }
            }
        }
        if parsed.kind() != Self::TYPE {
            return Err(Error::WrongType {
                expected: Self::TYPE,
                found: parsed.kind().to_owned(),
            });
        }
        check_spec_version(role, parsed.spec_version())?;
        if parsed.version() == 0 {
            return Err(Error::Malformed {
                role: role.into(),
                reason: "version must be at least 1".into(),
            });
        }
        parsed.check(role)?;
        Ok(parsed)
    }
}

fn check_spec_version(role: &str, version: &str) -> Result<(), Error> {
    let parts: Vec<&str> = version.split('.').collect();
    let well_formed = matches!(parts.len(), 2 | 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed || parts.first() != Some(&"1") {
        return Err(Error::UnsupportedSpecVersion {
            role: role.into(),
            version: version.to_owned(),
        });
    }
    Ok(())
}

fn malformed(role: &str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        role: RoleName(role.to_owned()),
        reason: reason.into(),
    }
}

fn check_role_keys(role: &str, keyids: &[KeyId], threshold: u64) -> Result<(), Error> {
    if threshold == 0 {
        return Err(malformed(role, "threshold must be at least 1"));
    }
    let unique: BTreeSet<&KeyId> = keyids.iter().collect();
    if unique.len() != keyids.len() {
        return Err(malformed(role, "a role lists the same key id twice"));
    }
    Ok(())
}

fn check_hashes(role: &str, hashes: &BTreeMap<String, String>) -> Result<(), Error> {
    if hashes.is_empty() {
        return Err(malformed(role, "hashes must not be empty"));
    }
    Ok(())
}

macro_rules! impl_signed {
    ($t:ty, $type:literal, $known:expr, |$s:ident, $role:ident| $check:block) => {
        impl SignedMetadata for $t {
            const TYPE: &'static str = $type;
            const KNOWN: &'static [&'static str] = $known;
            fn unrecognized_mut(&mut self) -> &mut BTreeMap<String, Value> {
                &mut self.unrecognized
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> Expires {
                self.expires
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn kind(&self) -> &str {
                &self.kind
            }
            fn check(&$s, $role: &str) -> Result<(), Error> $check
        }
    };
}

impl_signed!(
    Root,
    "root",
    &[
        "_type",
        "spec_version",
        "consistent_snapshot",
        "version",
        "expires",
        "keys",
        "roles"
    ],
    |self, role| {
        let names: BTreeSet<&str> = self.roles.keys().map(String::as_str).collect();
        if names != BTreeSet::from(TOP_LEVEL_ROLES) {
            return Err(malformed(
                role,
                "roles must be exactly root, timestamp, snapshot and targets",
            ));
        }
        for (name, r) in &self.roles {
            check_role_keys(name, &r.keyids, r.threshold)?;
        }
        Ok(())
    }
);

impl_signed!(
    Timestamp,
    "timestamp",
    &["_type", "spec_version", "version", "expires", "meta"],
    |self, role| {
        if self.meta.len() != 1 || !self.meta.contains_key("snapshot.json") {
            return Err(malformed(role, "meta must hold exactly snapshot.json"));
        }
        for m in self.meta.values() {
            check_metafile(role, m)?;
        }
        Ok(())
    }
);

impl_signed!(
    Snapshot,
    "snapshot",
    &["_type", "spec_version", "version", "expires", "meta"],
    |self, role| {
        for m in self.meta.values() {
            check_metafile(role, m)?;
        }
        Ok(())
    }
);

impl_signed!(
    Targets,
    "targets",
    &[
        "_type",
        "spec_version",
        "version",
        "expires",
        "targets",
        "delegations"
    ],
    |self, role| {
        for t in self.targets.values() {
            check_hashes(role, &t.hashes)?;
        }
        if let Some(d) = &self.delegations {
            match (&d.roles, &d.succinct_roles) {
                (Some(roles), None) => {
                    let mut names = BTreeSet::new();
                    for r in roles {
                        if !names.insert(r.name.as_str()) {
                            return Err(malformed(
                                role,
                                format!("delegated role {:?} appears twice", r.name),
                            ));
                        }
                        if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                            return Err(malformed(
                                role,
                                format!("{:?} is a top-level role name", r.name),
                            ));
                        }
                        if r.paths.is_some() == r.path_hash_prefixes.is_some() {
                            return Err(malformed(
                                role,
                                format!(
                                    "delegated role {:?} needs exactly one of paths and path_hash_prefixes",
                                    r.name
                                ),
                            ));
                        }
                        check_role_keys(&r.name, &r.keyids, r.threshold)?;
                    }
                }
                (None, Some(s)) => {
                    if !(1..=32).contains(&s.bit_length) {
                        return Err(malformed(role, "succinct_roles bit_length must be 1 to 32"));
                    }
                    check_role_keys(&s.name_prefix, &s.keyids, s.threshold)?;
                }
                _ => {
                    return Err(malformed(
                        role,
                        "delegations need exactly one of roles and succinct_roles",
                    ));
                }
            }
        }
        Ok(())
    }
);

fn check_metafile(role: &str, m: &MetaFile) -> Result<(), Error> {
    if m.version == 0 {
        return Err(malformed(role, "meta version must be at least 1"));
    }
    if let Some(h) = &m.hashes {
        check_hashes(role, h)?;
    }
    Ok(())
}

fn new_common(kind: &str) -> (String, String) {
    (kind.to_owned(), SPEC_VERSION.to_owned())
}

impl Root {
    /// A new root with no keys; fill in `keys` and `roles`.
    pub fn new(version: u64, expires: Expires, consistent_snapshot: bool) -> Self {
        let (kind, spec_version) = new_common("root");
        Self {
            kind,
            spec_version,
            consistent_snapshot,
            version,
            expires,
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parses and shape-checks root metadata (no signature check).
    pub fn from_envelope(env: &Envelope) -> Result<Self, Error> {
        <Self as SignedMetadata>::from_envelope("root", env)
    }

    /// Keys and threshold of a top-level role.
    pub fn role(&self, name: &str) -> Option<(&[KeyId], u64)> {
        self.roles
            .get(name)
            .map(|r| (r.keyids.as_slice(), r.threshold))
    }
}

impl Timestamp {
    /// A new timestamp pointing at a snapshot.
    pub fn new(version: u64, expires: Expires, snapshot: MetaFile) -> Self {
        let (kind, spec_version) = new_common("timestamp");
        Self {
            kind,
            spec_version,
            version,
            expires,
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot)]),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parses and shape-checks timestamp metadata.
    pub fn from_envelope(env: &Envelope) -> Result<Self, Error> {
        <Self as SignedMetadata>::from_envelope("timestamp", env)
    }

    /// The snapshot entry (parsing guarantees it exists).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}

impl Snapshot {
    /// A new, empty snapshot.
    pub fn new(version: u64, expires: Expires) -> Self {
        let (kind, spec_version) = new_common("snapshot");
        Self {
            kind,
            spec_version,
            version,
            expires,
            meta: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parses and shape-checks snapshot metadata.
    pub fn from_envelope(env: &Envelope) -> Result<Self, Error> {
        <Self as SignedMetadata>::from_envelope("snapshot", env)
    }
}

impl Targets {
    /// New, empty targets metadata.
    pub fn new(version: u64, expires: Expires) -> Self {
        let (kind, spec_version) = new_common("targets");
        Self {
            kind,
            spec_version,
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Parses and shape-checks targets metadata of role `role`.
    pub fn from_envelope(role: &str, env: &Envelope) -> Result<Self, Error> {
        <Self as SignedMetadata>::from_envelope(role, env)
    }
}
