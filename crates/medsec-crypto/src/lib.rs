//! Signing keys and signatures for medsec, with the scheme named on every key and signature.
//!
//! Schemes (their names are the TUF `scheme` strings):
//! - `ed25519`
//! - `ecdsa-sha2-nistp256` (DER-encoded signatures, as securesystemslib and python-tuf write them)
//! - `rsassa-pss-sha256` (verify only: medsec never creates RSA keys)
//! - `id-MLDSA65-Ed25519-SHA512`, the hybrid composite of draft-ietf-lamps-pq-composite-sigs: an
//!   ML-DSA-65 and an Ed25519 signature over the same prepared message; **both** must verify.
//!
//! Classical primitives and hashing come from aws-lc-rs. The ML-DSA half of the composite needs the
//! ML-DSA context parameter, which aws-lc-rs does not expose yet, so it comes from RustCrypto `ml-dsa`
//! behind the two functions in [`mldsa`]; swapping the backend touches only that module.
//!
//! Private keys are held by something that implements [`KeySource`]: an in-memory [`SigningKey`],
//! or (feature `pkcs11`) a key inside a PKCS#11 token (`pkcs11::Pkcs11Key`: an HSM, a smart card,
//! a TPM through tpm2-pkcs11). On disk ([`keyfile`]) they are PKCS#8 PEM, encrypted with a
//! passphrase (Argon2id + AES-256-GCM) unless the caller explicitly asks for plaintext.
//!
//! This crate does no IO besides asking the operating system for randomness, and never logs.

#![forbid(unsafe_code)]

mod der;
pub mod digest;
mod error;
pub mod keyfile;
mod keys;
mod mldsa;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;

pub use der::{pkcs7_certificates, pkcs7_certs_only};
pub use error::Error;
pub use keys::{KeySource, PublicKey, Scheme, SigningKey};

#[cfg(test)]
mod tests;
