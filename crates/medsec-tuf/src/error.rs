use std::fmt;

/// The name of a role, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(pub String);

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RoleName {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Everything that can make metadata untrustworthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not JSON of the metadata shape.
    #[error("{role} metadata is malformed: {reason}")]
    Malformed {
        /// Role being parsed.
        role: RoleName,
        /// What was wrong.
        reason: String,
    },
    /// JSON that canonical JSON cannot represent (a float, for instance).
    #[error("value cannot be written as canonical JSON: {reason}")]
    NotCanonicalizable {
        /// What was wrong.
        reason: &'static str,
    },
    /// `_type` names another role.
    #[error("expected {expected} metadata but `_type` is {found:?}")]
    WrongType {
        /// Role type expected.
        expected: &'static str,
        /// Value found.
        found: String,
    },
    /// The metadata speaks a TUF major version this client does not.
    #[error("{role} metadata has unsupported spec_version {version:?} (this client speaks 1.x)")]
    UnsupportedSpecVersion {
        /// Role.
        role: RoleName,
        /// The version found.
        version: String,
    },
    /// The same key id signs twice in one envelope.
    #[error("{role} metadata carries two signatures from key {keyid}")]
    DuplicateSignature {
        /// Role.
        role: RoleName,
        /// Key id.
        keyid: String,
    },
    /// Fewer valid signatures than the threshold.
    #[error(
        "{role} metadata has {valid} valid signature(s) from distinct keys; the threshold is {threshold}"
    )]
    ThresholdNotMet {
        /// Role.
        role: RoleName,
        /// Distinct valid signatures counted.
        valid: u64,
        /// The threshold.
        threshold: u64,
    },
    /// A version other than the one required (rollback, or mix-and-match).
    #[error("{role} version {found} is not acceptable: expected {expected}")]
    BadVersion {
        /// Role.
        role: RoleName,
        /// Version found.
        found: u64,
        /// What was expected (e.g. "5", "at least 5").
        expected: String,
    },
    /// The new timestamp has the same version as the trusted one (not an attack: nothing changed).
    #[error("timestamp version {version} equals the trusted one")]
    EqualVersion {
        /// The version.
        version: u64,
    },
    /// Metadata expired before the update started.
    #[error("{role} metadata expired at {expires}")]
    Expired {
        /// Role.
        role: RoleName,
        /// Its expiry.
        expires: String,
    },
    /// Bytes longer than metadata allows (endless data).
    #[error("{what} is longer than the {limit} bytes allowed")]
    TooLong {
        /// What was fetched.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// The length differs from metadata.
    #[error("{what} is {found} bytes; its metadata says {expected}")]
    LengthMismatch {
        /// What was fetched.
        what: String,
        /// Length found.
        found: u64,
        /// Length expected.
        expected: u64,
    },
    /// A hash differs from metadata.
    #[error("{what} has the wrong {algorithm} hash")]
    HashMismatch {
        /// What was fetched.
        what: String,
        /// Algorithm.
        algorithm: String,
    },
    /// A hash algorithm this client does not support.
    #[error("{what} names unsupported hash algorithm {algorithm:?}")]
    UnsupportedHash {
        /// What was fetched.
        what: String,
        /// Algorithm.
        algorithm: String,
    },
    /// Snapshot lost a role the previous one listed, or has no entry for a role.
    #[error("snapshot has no entry for {role}")]
    MissingFromSnapshot {
        /// Role.
        role: RoleName,
    },
    /// The state machine was driven in the wrong order (a bug in the caller, not an attack).
    #[error("cannot load {role} now: {reason}")]
    OutOfOrder {
        /// Role.
        role: RoleName,
        /// Why.
        reason: &'static str,
    },
    /// A key in metadata could not be decoded.
    #[error("key {keyid} is unusable: {source}")]
    BadKey {
        /// Key id.
        keyid: String,
        /// Why.
        source: medsec_crypto::Error,
    },
    /// Signing failed.
    #[error("signing with key {keyid} failed: {source}")]
    Signing {
        /// Key id.
        keyid: String,
        /// Why.
        source: medsec_crypto::Error,
    },
}
