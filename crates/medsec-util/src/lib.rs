//! The helpers every medsec crate needs, each written once with one rule:
//!
//! - [`fs`]: replace a file atomically (temporary file, fsync, rename, fsync of the directory),
//!   flush a directory, clear what a crash left behind;
//! - [`clock`]: the wall clock in Unix milliseconds, as the store, the audit log and telemetry
//!   record time;
//! - [`duration`]: `90s`, `15m`, `24h`, `7d`, as every command line and setting writes a duration.
//!
//! It does IO, so `medsec-crypto` (which stays free of IO) does not use it; it depends on nothing
//! of medsec's, so every other crate can.

pub mod clock;
pub mod duration;
pub mod fs;

pub use clock::now_ms;
pub use duration::parse_duration;
pub use fs::{Access, FsError, make_private, read_secret, write_atomic};
