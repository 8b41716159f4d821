//! What an EST client sends (a PKCS#10 request, any DER) and what a TLS peer presents (a
//! certificate, any DER: its device id, an IDevID's hardware types) never panic the readers the
//! server runs on them; a request that
//! `inspect_request` accepts always has a verified self-signature, so its key digest is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pem = pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, data)
        .unwrap_or_default();
    if let Ok(info) = medsec_pki::inspect_request(&pem) {
        let again = medsec_pki::inspect_request(&pem).expect("a request that passed once passes again");
        assert_eq!(info.spki_sha256, again.spki_sha256);
    }
    let _ = medsec_pki::certificate_device_id(data);
    let _ = medsec_pki::manufacturer_device_id(data);
    let _ = medsec_pki::hardware_module_types(data);
});
