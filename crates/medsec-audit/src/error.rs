/// Why a proof or tree head was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An index or size is outside the tree.
    #[error("{what} {value} is out of range for a tree of {tree_size} entries")]
    OutOfRange {
        /// What was out of range.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The proof does not lead to the expected root.
    #[error("{kind} proof does not verify")]
    ProofFailed {
        /// `inclusion` or `consistency`.
        kind: &'static str,
    },
    /// The tree head's signature does not verify.
    #[error("tree head signature does not verify: {0}")]
    BadSignature(#[from] medsec_crypto::Error),
    /// The tree head is malformed.
    #[error("malformed tree head: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
}
