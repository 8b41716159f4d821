//! The ML-DSA-65 half of the composite signature, with the ML-DSA context parameter.
//!
//! Everything that touches the ML-DSA backend is in these functions, so that when aws-lc-rs gains
//! `sign_with_context` this module is the only one that changes.

use ml_dsa::{EncodedVerifyingKey, ExpandedSigningKey, MlDsa65, Signature, VerifyingKey};

use crate::Error;

/// ML-DSA-65 public key length in bytes (FIPS 204).
pub(crate) const PUBLIC_KEY_LEN: usize = 1952;
/// ML-DSA-65 signature length in bytes (FIPS 204).
pub(crate) const SIGNATURE_LEN: usize = 3309;

/// Derives the public key from a 32-byte seed (FIPS 204 `ML-DSA.KeyGen_internal`).
pub(crate) fn public_key_from_seed(seed: &[u8; 32]) -> Vec<u8> {
    let sk = ExpandedSigningKey::<MlDsa65>::from_seed(&(*seed).into());
    sk.verifying_key().encode().to_vec()
}

/// Signs `message` with context `ctx` (deterministic variant of FIPS 204 `ML-DSA.Sign`).
pub(crate) fn sign(seed: &[u8; 32], message: &[u8], ctx: &[u8]) -> Result<Vec<u8>, Error> {
    let sk = ExpandedSigningKey::<MlDsa65>::from_seed(&(*seed).into());
    let sig = sk
        .sign_deterministic(message, ctx)
        .map_err(|_| Error::Crypto {
            operation: "ML-DSA-65 signing",
        })?;
    Ok(sig.encode().to_vec())
}

/// Verifies an ML-DSA-65 signature with context `ctx`.
pub(crate) fn verify(public_key: &[u8], message: &[u8], ctx: &[u8], signature: &[u8]) -> bool {
    let Ok(encoded) = EncodedVerifyingKey::<MlDsa65>::try_from(public_key) else {
        return false;
    };
    let vk = VerifyingKey::<MlDsa65>::decode(&encoded);
    let Ok(sig) = Signature::<MlDsa65>::try_from(signature) else {
        return false;
    };
    vk.verify_with_context(message, ctx, &sig)
}
