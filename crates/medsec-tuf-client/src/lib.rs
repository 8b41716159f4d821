//! The TUF client medsec devices use: the detailed client workflow of the TUF specification's
//! section 5, over a [`Transport`] (HTTP(S) or files), with trusted metadata persisted atomically.
//!
//! - [`Updater::refresh`] walks root versions forward (at most [`Limits::max_root_rotations`]),
//!   then timestamp, snapshot and top-level targets, using one start time for every expiry check.
//! - [`Updater::get_target_info`] searches delegations depth-first in pre-order, loading each
//!   delegated role only when the search reaches it, stopping at terminating delegations, never
//!   visiting a role twice and visiting at most [`Limits::max_delegations`] roles.
//! - [`Updater::download_target`] streams the artifact to a temporary file beside its destination
//!   while hashing it, refuses it the moment it passes its length, and renames it into place only
//!   after length and every hash match. Artifacts are never held whole in memory.
//!
//! The metadata directory holds only TUF metadata (`root.json`, `timestamp.json`, `snapshot.json`,
//! `targets.json` and delegated roles, percent-encoded), each replaced atomically: a crash at any
//! instant leaves the previous trusted file in place. This crate never logs metadata contents.

#![forbid(unsafe_code)]

mod error;
mod tls_identity;
mod transport;
mod updater;

pub use error::Error;
pub use medsec_tuf::Limits;
pub use transport::{FileTransport, HttpTransport, ROOT_VERSION_HEADER, Transport, TransportError};
pub use updater::{Updater, UpdaterConfig};
