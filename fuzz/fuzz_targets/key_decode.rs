//! Key files and TUF public keys from outside never panic the decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medsec_crypto::{PublicKey, Scheme, SigningKey, keyfile};

fuzz_target!(|data: &[u8]| {
    let _ = SigningKey::from_pkcs8_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = keyfile::decode_private(s, || Some("fuzz".into()));
        for scheme in Scheme::ALL {
            if let Ok(k) = PublicKey::from_tuf(scheme.keytype(), scheme.name(), s) {
                let _ = k.verify(b"m", data);
            }
        }
    }
});
