//! Signature thresholds and length/hash checks.

use std::collections::{BTreeMap, BTreeSet};

use medsec_crypto::digest::{HashAlgorithm, constant_time_eq, hash};

use crate::{Envelope, Error, Key, KeyId};

/// Checks that `env` carries valid signatures from at least `threshold` distinct keys among
/// `keyids`.
///
/// Each key counts once: signatures are deduplicated by key id (an envelope with two signatures
/// from one key id is refused at parse time) **and** by public key, so one key listed under two
/// ids cannot meet a threshold of two. Signatures from keys outside the role, from unknown key ids,
/// or that fail to verify are ignored.
pub fn verify_threshold(
    role: &str,
    keys: &BTreeMap<KeyId, Key>,
    keyids: &[KeyId],
    threshold: u64,
    env: &Envelope,
) -> Result<(), Error> {
    if threshold == 0 {
        // Parsing refuses a zero threshold; this guards callers that build roles themselves.
        return Err(Error::ThresholdNotMet {
            role: role.into(),
            valid: 0,
            threshold,
        });
    }
    let allowed: BTreeSet<&str> = keyids.iter().map(String::as_str).collect();
    let mut counted_keys = BTreeSet::new();
    for sig in &env.signatures {
        if !allowed.contains(sig.keyid.as_str()) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        let Ok(public) = key.public_key(&sig.keyid) else {
            continue;
        };
        let Ok(sig_bytes) = hex::decode(&sig.sig) else {
            continue;
        };
        if counted_keys.contains(public.as_bytes()) {
            continue;
        }
        if public.verify(&env.canonical, &sig_bytes).is_ok() {
            counted_keys.insert(public.as_bytes().to_vec());
            if counted_keys.len() as u64 >= threshold {
                return Ok(());
            }
        }
    }
    Err(Error::ThresholdNotMet {
        role: role.into(),
        valid: counted_keys.len() as u64,
        threshold,
    })
}

/// Checks `data` against an optional length and optional hashes (as snapshot and timestamp give
/// them for metadata).
pub fn verify_length_and_hashes(
    what: &str,
    data: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), Error> {
    if let Some(expected) = length
        && data.len() as u64 != expected
    {
        return Err(Error::LengthMismatch {
            what: what.to_owned(),
            found: data.len() as u64,
            expected,
        });
    }
    for (name, expected_hex) in hashes.into_iter().flatten() {
        let algorithm = HashAlgorithm::from_name(name).ok_or_else(|| Error::UnsupportedHash {
            what: what.to_owned(),
            algorithm: name.clone(),
        })?;
        let ok = hex::decode(expected_hex)
            .is_ok_and(|expected| constant_time_eq(&hash(algorithm, data), &expected));
        if !ok {
            return Err(Error::HashMismatch {
                what: what.to_owned(),
                algorithm: name.clone(),
            });
        }
    }
    Ok(())
}
