//! A witness's verifier key, a co-signed checkpoint note and its body, read from files, never
//! panic the parsers, and a cosignature never verifies for a body it was not made over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medsec_audit::checkpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = checkpoint::parse_body(s);
    if let Ok((name, key)) = checkpoint::parse_verifier_key(s) {
        let _ = checkpoint::verify_cosignature(s, s, &name, &key);
    }
    if let Ok((body, sigs)) = checkpoint::split_note(s) {
        let _ = checkpoint::parse_body(body);
        let _ = sigs.lines().count();
    }
});
