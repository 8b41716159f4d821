use std::path::PathBuf;

use crate::TransportError;

/// Why an update or download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Metadata failed a TUF check (signature, version, expiry, hash, …).
    #[error(transparent)]
    Metadata(#[from] medsec_tuf::Error),
    /// Fetching failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Local storage failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No trusted root in the metadata directory.
    #[error("no trusted root in {dir}: run `init` with a root you trust first")]
    NoTrustedRoot {
        /// The metadata directory.
        dir: PathBuf,
    },
    /// The target is not in any role trusted for its path.
    #[error("target {path:?} is not listed by any role trusted for it")]
    UnknownTarget {
        /// Target path.
        path: String,
    },
    /// The trusted state lacks what this step needs: `refresh` has not succeeded.
    #[error("refresh() must succeed before targets are looked up")]
    NotRefreshed,
    /// A target path that cannot be stored safely.
    #[error("target path {path:?} is not allowed: {reason}")]
    BadTargetPath {
        /// Target path.
        path: String,
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<medsec_util::FsError> for Error {
    fn from(e: medsec_util::FsError) -> Self {
        Self::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
