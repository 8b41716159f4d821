//! An EST answer as the agent reads it (RFC 7030 certs-only PKCS#7): arbitrary bytes never
//! panic `pkcs7_certificates`, and every certificate it returns is one complete DER SEQUENCE
//! found inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(certs) = medsec_crypto::pkcs7_certificates(data) {
        for c in certs {
            assert_eq!(c.first(), Some(&0x30));
            assert!(data.windows(c.len().max(1)).any(|w| w == c.as_slice()));
        }
    }
});
