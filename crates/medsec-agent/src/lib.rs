//! The medsec device agent.
//!
//! It enrols by EST (an enrolment token or a manufacturer certificate), then polls its director
//! and the image repository through the TUF client over mutual TLS, installs only what both
//! agree on (`medsec_tuf::uptane::agree`), downloads with HTTP range resume and an optional rate
//! cap, writes the inactive A/B slot, boots it on trial, health-checks it, and commits or rolls
//! back; it reports every outcome in a version report signed with its key, defers while the
//! device is in clinical use, and renews its certificate before it expires.
//!
//! The whole cycle is a state machine kept in crash-safe records ([`record`]): a kill or power
//! loss at any point resumes correctly, and the boot rules ([`boot`]) never start an image whose
//! hashes do not match. [`agent::Agent`] is the state machine; [`cli`] is `medsec agent` and the
//! standalone `medsec-agent` binary.

#![forbid(unsafe_code)]

pub mod agent;
pub mod boot;
pub mod cli;
pub mod fault;
pub mod keys;
pub mod net;
mod preflight;
pub mod record;
pub mod telemetry;

use std::path::Path;

pub(crate) use medsec_util::Access;

/// What the agent can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server could not be reached or answered garbage.
    #[error("network: {0}")]
    Network(String),
    /// The server refused a request.
    #[error("refused: {0}")]
    Refused(String),
    /// TUF metadata or a target did not verify.
    #[error(transparent)]
    Tuf(#[from] medsec_tuf_client::Error),
    /// Local state is missing or inconsistent.
    #[error("state: {0}")]
    State(String),
    /// Neither slot holds a verified image.
    #[error("neither slot holds a verified image: the device cannot boot")]
    Bricked,
}

impl Error {
    fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
        move |source| Error::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Flushes the directory holding `path`, so a file just created or renamed survives power loss.
pub(crate) fn sync_dir(path: &Path) -> Result<(), Error> {
    Ok(medsec_util::fs::sync_dir(medsec_util::fs::parent(path))?)
}

/// Replaces `path` with `bytes` atomically and durably (medsec-util's one rule), for files that
/// are replaced whole: the identity, the device configuration, telemetry batches.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), Error> {
    Ok(medsec_util::write_atomic(path, bytes, access)?)
}

impl From<medsec_util::FsError> for Error {
    fn from(e: medsec_util::FsError) -> Self {
        Error::Io {
            action: e.action,
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}
