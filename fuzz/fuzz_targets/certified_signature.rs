//! A signature checked against a peer's certificate (version reports): arbitrary certificate,
//! message and signature bytes never panic `verify_with_certificate`, and a signature it accepts
//! stops verifying when the message changes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Lengths from the first two bytes split the rest into certificate, signature and message.
    let [a, b, rest @ ..] = data else { return };
    let cert_len = usize::from(*a) * 8;
    let sig_len = usize::from(*b);
    if rest.len() < cert_len + sig_len {
        return;
    }
    let (cert, rest) = rest.split_at(cert_len);
    let (sig, message) = rest.split_at(sig_len);
    if medsec_pki::verify_with_certificate(cert, message, sig).is_ok() {
        let mut changed = message.to_vec();
        changed.push(0);
        assert!(medsec_pki::verify_with_certificate(cert, &changed, sig).is_err());
    }
});
