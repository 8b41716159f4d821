//! TUF 1.0 metadata for medsec: the plain schema types, OLPC canonical JSON, signature thresholds,
//! delegation lookup (path patterns, hash prefixes and TAP 15 succinct hash bins), and the client's
//! trusted-metadata state machine ([`TrustedSet`]) that applies the specification's section 5
//! checks in their order.
//!
//! This crate never does IO, never reads the clock (callers pass the update's start time) and never
//! logs. Fetching, persisting and the order of the client workflow live in `medsec-tuf-client`;
//! building and signing repositories lives in the `medsec` binary's `repo` tool on top of
//! [`sign`].
//!
//! Every signature is checked over the canonical form of the `signed` object **as received**, so
//! fields this version does not know are still covered by the signature and never dropped.

#![forbid(unsafe_code)]

pub mod canonical;
mod error;
mod limits;
pub mod pattern;
mod schema;
mod sign;
mod trusted;
pub mod uptane;
mod verify;

pub use error::{Error, RoleName};
pub use limits::Limits;
pub use schema::{
    DelegatedRole, Delegations, Envelope, Expires, Key, KeyId, MetaFile, Role, Root, SPEC_VERSION,
    Signature, Snapshot, SuccinctRoles, TOP_LEVEL_ROLES, TargetFile, Targets, Timestamp,
};
pub use sign::{sign, sign_raw};
pub use trusted::TrustedSet;
pub use verify::{verify_length_and_hashes, verify_threshold};

#[cfg(test)]
mod tests;
