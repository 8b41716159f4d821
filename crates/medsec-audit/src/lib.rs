//! The tamper-evident audit log's mathematics: a Merkle tree as RFC 9162 (Certificate
//! Transparency 2.0) defines it, inclusion and consistency proofs with the RFC's verification
//! algorithms, and signed tree heads.
//!
//! An auditor who holds a signed tree head can check that an entry is in the log (inclusion
//! proof) and that a later tree head extends the earlier one without rewriting history
//! (consistency proof); any edit, removal or reordering of an entry changes the root hash.
//!
//! This crate does no IO and keeps no state beyond what it is given: storing entries and
//! caching subtree hashes belong to the storage layer.

#![forbid(unsafe_code)]

pub mod checkpoint;
mod error;
mod log;
mod merkle;
mod tree_head;

pub use error::Error;
pub use log::{Entry, Event, Finding, Frontier, Report, Verifier};
pub use merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion,
};
pub use tree_head::{SignedTreeHead, TreeHead};

#[cfg(test)]
mod tests;
