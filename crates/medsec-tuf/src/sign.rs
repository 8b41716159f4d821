//! Writing signed metadata.

use medsec_crypto::KeySource;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Error, Key, canonical};

/// Signs `signed` with each key and returns the metadata file's bytes (pretty JSON, as python-tuf
/// writes it; signatures cover the canonical form).
pub fn sign(signed: &impl Serialize, keys: &[&dyn KeySource]) -> Result<Vec<u8>, Error> {
    let value = serde_json::to_value(signed).map_err(|e| Error::Malformed {
        role: "new metadata".into(),
        reason: e.to_string(),
    })?;
    let canonical = canonical::to_vec(&value)?;
    let mut signatures = Vec::with_capacity(keys.len());
    for key in keys {
        let keyid = Key::from_public(key.public_key()).key_id()?;
        let sig = key.sign(&canonical).map_err(|source| Error::Signing {
            keyid: keyid.clone(),
            source,
        })?;
        signatures.push(json!({"keyid": keyid, "sig": hex::encode(sig)}));
    }
    Ok(sign_raw(value, signatures))
}

/// Wraps an already-built `signed` value and signature list into file bytes.
pub fn sign_raw(signed: Value, signatures: Vec<Value>) -> Vec<u8> {
    let doc = json!({"signatures": signatures, "signed": signed});
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}
