//! Signed tree heads: the log's size and root at an instant, signed by the log's key.

use medsec_crypto::{KeySource, PublicKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Hash};

/// Domain separation: a tree-head signature can never be mistaken for any other medsec signature.
const CONTEXT: &[u8] = b"medsec audit tree head v1\n";

/// The log's size and root hash at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Number of entries.
    pub tree_size: u64,
    /// Root hash, hex.
    pub root_hash: String,
    /// Milliseconds since the Unix epoch when the head was made.
    pub timestamp_ms: u64,
}

/// A tree head and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// The head.
    pub head: TreeHead,
    /// Signature scheme of the log key.
    pub scheme: String,
    /// Signature, hex.
    pub signature: String,
}

impl TreeHead {
    /// A head for `tree_size` entries with root `root`.
    pub fn new(tree_size: u64, root: &Hash, timestamp_ms: u64) -> Self {
        Self {
            tree_size,
            root_hash: hex::encode(root),
            timestamp_ms,
        }
    }

    /// The root hash as bytes.
    pub fn root(&self) -> Result<Hash, Error> {
        hex::decode(&self.root_hash)
            .ok()
            .and_then(|b| <Hash>::try_from(b).ok())
            .ok_or_else(|| Error::Malformed {
                reason: "root_hash is not 32 bytes of hex".into(),
            })
    }

    fn message(&self) -> Vec<u8> {
        // Fixed field order and integers only: the serialisation is deterministic.
        let mut m = CONTEXT.to_vec();
        m.extend_from_slice(
            format!(
                "{{\"root_hash\":\"{}\",\"timestamp_ms\":{},\"tree_size\":{}}}",
                self.root_hash, self.timestamp_ms, self.tree_size
            )
            .as_bytes(),
        );
        m
    }

    /// Signs the head with the log key.
    pub fn sign(self, key: &dyn KeySource) -> Result<SignedTreeHead, Error> {
        let signature = hex::encode(key.sign(&self.message())?);
        Ok(SignedTreeHead {
            scheme: key.public_key().scheme().name().to_owned(),
            head: self,
            signature,
        })
    }
}

impl SignedTreeHead {
    /// Verifies the signature with the log's public key and returns the head.
    pub fn verify(&self, key: &PublicKey) -> Result<&TreeHead, Error> {
        if self.scheme != key.scheme().name() {
            return Err(Error::Malformed {
                reason: format!(
                    "signed with scheme {:?}, but the log key is {}",
                    self.scheme,
                    key.scheme()
                ),
            });
        }
        self.head.root()?;
        let sig = hex::decode(&self.signature).map_err(|_| Error::Malformed {
            reason: "signature is not hex".into(),
        })?;
        key.verify(&self.head.message(), &sig)?;
        Ok(&self.head)
    }
}
