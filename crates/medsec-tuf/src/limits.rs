/// Every size and count the client enforces, in one place.
///
/// The defaults are python-tuf's, so that a repository that works with the reference client works
/// with medsec's. Raise the metadata caps for very large flat repositories (100k targets in one
/// `targets.json` is about 20 MB), or better, use hash-bin delegations.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `root.json` (bytes).
    pub root_max_length: u64,
    /// Largest `timestamp.json` (bytes).
    pub timestamp_max_length: u64,
    /// Largest `snapshot.json` when timestamp does not give its length (bytes).
    pub snapshot_max_length: u64,
    /// Largest targets or delegated targets file when snapshot does not give its length (bytes).
    pub targets_max_length: u64,
    /// Most root versions one refresh will walk forward.
    pub max_root_rotations: u64,
    /// Most delegated roles one target search visits.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            max_root_rotations: 256,
            max_delegations: 32,
        }
    }
}
