//! Signed version reports, in the manner of Uptane's ECU version reports: the device asks for a
//! single-use nonce, says what it runs in a small JSON payload that carries the nonce, signs
//! `CONTEXT || payload` with the key of its fleet certificate, and sends payload and signature
//! (base64) over the same mutual-TLS connection. The server keeps payload, signature and
//! certificate, so the claim can be checked again later by anyone (a regulator, an incident
//! responder), independently of medsec's database.
//!
//! What each check stops: the signature, a report made by anything but the device's key (a
//! compromised proxy or a server-side edit); the device named inside, a report signed by one
//! device being presented for another; the nonce (single-use, per device, short-lived), a
//! recorded report being replayed to hide a later change.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub use medsec_api::report::{CONTEXT, Envelope, Install, Payload, message};

/// Longest version string, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;

/// Longest install reason, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

/// The campaign outcome an install report means, given what the device says it now runs.
/// A success claimed while running another version or release counter counts as a failure.
pub fn outcome(
    install: &Install,
    report: &Payload,
    release: &medsec_campaign::Release,
) -> medsec_campaign::Outcome {
    use medsec_campaign::Outcome;
    match install.outcome.as_str() {
        "succeeded"
            if report.version == release.version
                && report.release_counter == release.release_counter =>
        {
            Outcome::Succeeded
        }
        "succeeded" => Outcome::Failed {
            reason: format!(
                "reported success but runs {} (release counter {}), not {} ({})",
                report.version, report.release_counter, release.version, release.release_counter
            ),
        },
        "deferred" => Outcome::Deferred {
            reason: install.reason.clone(),
        },
        _ => Outcome::Failed {
            reason: install.reason.clone(),
        },
    }
}

/// A report that was refused, and why (said to the device and written to the audit log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Decodes an envelope and checks the signature with `certificate_der`'s key and that the payload
/// is well formed and names `device`. Returns the payload bytes, the signature and the payload.
/// The nonce is checked (and consumed) by the store.
pub fn open(
    body: &[u8],
    certificate_der: &[u8],
    device: &str,
) -> Result<(Vec<u8>, Vec<u8>, Payload), Refused> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| Refused(format!("version report envelope: {e}")))?;
    let payload = STANDARD
        .decode(envelope.payload.as_bytes())
        .map_err(|e| Refused(format!("version report payload is not base64: {e}")))?;
    let signature = STANDARD
        .decode(envelope.signature.as_bytes())
        .map_err(|e| Refused(format!("version report signature is not base64: {e}")))?;
    medsec_pki::verify_with_certificate(certificate_der, &message(&payload), &signature)
        .map_err(|e| Refused(format!("version report {e}")))?;
    let parsed: Payload = serde_json::from_slice(&payload)
        .map_err(|e| Refused(format!("version report payload: {e}")))?;
    if parsed.device != device {
        return Err(Refused(format!(
            "the report is signed for device {:?}, not {device:?}",
            parsed.device
        )));
    }
    let v = &parsed.version;
    if v.is_empty() || v.len() > MAX_VERSION_BYTES || v.chars().any(char::is_control) {
        return Err(Refused(format!(
            "version {v:?} must be 1 to {MAX_VERSION_BYTES} bytes without control characters"
        )));
    }
    if parsed.release_counter < 0 {
        return Err(Refused("release_counter must not be negative".into()));
    }
    if let Some(i) = &parsed.install {
        if !matches!(i.outcome.as_str(), "succeeded" | "failed" | "deferred") {
            return Err(Refused(format!(
                "install outcome {:?} must be succeeded, failed or deferred",
                i.outcome
            )));
        }
        if i.reason.len() > MAX_REASON_BYTES || i.reason.chars().any(char::is_control) {
            return Err(Refused(format!(
                "install reason must be at most {MAX_REASON_BYTES} bytes without control characters"
            )));
        }
    }
    if let Some(h) = &parsed.sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Refused(format!("sha256 {h:?} is not 64 hex digits")));
    }
    Ok((payload, signature, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Device {
        cert: Vec<u8>,
        key: rcgen::KeyPair,
    }

    fn device() -> Device {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pump-1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Device {
            cert: cert.der().to_vec(),
            key,
        }
    }

    fn sign(d: &Device, message: &[u8]) -> Vec<u8> {
        let pkcs8 = d.key.serialize_der();
        let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
        )
        .unwrap();
        kp.sign(&aws_lc_rs::rand::SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn envelope(payload: &[u8], signature: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            payload: STANDARD.encode(payload),
            signature: STANDARD.encode(signature),
        })
        .unwrap()
    }

    const GOOD: &[u8] = br#"{"device":"pump-1","nonce":"n","version":"1.1.0","release_counter":3}"#;

    proptest::proptest! {
        /// Any body never panics the reader, and what it accepts was signed by the device
        /// for the device (arbitrary bytes are never accepted).
        #[test]
        fn arbitrary_bodies_are_refused_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let d = fixed_device();
            proptest::prop_assert!(open(&body, &d.cert, "pump-1").is_err());
        }

        /// Any payload the device signs opens exactly when it is well formed and names it.
        #[test]
        fn signed_payloads_open_only_when_well_formed(version in "[ -~]{0,70}", counter in -3i64..1_000_000, device in "pump-[12]") {
            let d = fixed_device();
            let payload = serde_json::json!({
                "device": device, "nonce": "n", "version": version, "release_counter": counter,
            })
            .to_string();
            let body = envelope(payload.as_bytes(), &sign(d, &message(payload.as_bytes())));
            let opened = open(&body, &d.cert, "pump-1");
            let well_formed = device == "pump-1"
                && !version.is_empty()
                && version.len() <= MAX_VERSION_BYTES
                && counter >= 0;
            proptest::prop_assert_eq!(opened.is_ok(), well_formed, "{:?}", opened);
        }
    }

    fn fixed_device() -> &'static Device {
        static D: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
        D.get_or_init(device)
    }

    #[test]
    fn a_signed_report_opens() {
        let d = device();
        let body = envelope(GOOD, &sign(&d, &message(GOOD)));
        let (payload, _, p) = open(&body, &d.cert, "pump-1").unwrap();
        assert_eq!(payload, GOOD);
        assert_eq!((p.version.as_str(), p.release_counter), ("1.1.0", 3));
    }

    #[test]
    fn forged_altered_misdirected_and_malformed_reports_are_refused() {
        let d = device();
        let other = device();
        let sig = sign(&d, &message(GOOD));
        let refused =
            |body: Vec<u8>, cert: &[u8], device: &str| open(&body, cert, device).unwrap_err().0;
        // Another key signed it.
        let e = refused(
            envelope(GOOD, &sign(&other, &message(GOOD))),
            &d.cert,
            "pump-1",
        );
        assert!(e.contains("does not verify"), "{e}");
        // The payload was changed after signing.
        let altered = String::from_utf8(GOOD.to_vec())
            .unwrap()
            .replace("1.1.0", "9.9.9");
        let e = refused(envelope(altered.as_bytes(), &sig), &d.cert, "pump-1");
        assert!(e.contains("does not verify"), "{e}");
        // Signed without the context (a signature made for something else).
        let e = refused(envelope(GOOD, &sign(&d, GOOD)), &d.cert, "pump-1");
        assert!(e.contains("does not verify"), "{e}");
        // Signed for one device, presented for another.
        let e = refused(envelope(GOOD, &sig), &d.cert, "pump-2");
        assert!(e.contains("signed for device \"pump-1\""), "{e}");
        // Malformed.
        let e = refused(b"{}".to_vec(), &d.cert, "pump-1");
        assert!(e.contains("envelope"), "{e}");
        let bad = br#"{"device":"pump-1","nonce":"n","version":"","release_counter":3}"#;
        let e = refused(envelope(bad, &sign(&d, &message(bad))), &d.cert, "pump-1");
        assert!(e.contains("version \"\""), "{e}");
        let bad = br#"{"device":"pump-1","nonce":"n","version":"1","release_counter":-1}"#;
        let e = refused(envelope(bad, &sign(&d, &message(bad))), &d.cert, "pump-1");
        assert!(e.contains("negative"), "{e}");
        let bad =
            br#"{"device":"pump-1","nonce":"n","version":"1","release_counter":1,"sha256":"xyz"}"#;
        let e = refused(envelope(bad, &sign(&d, &message(bad))), &d.cert, "pump-1");
        assert!(e.contains("64 hex"), "{e}");
        let bad = br#"{"device":"pump-1","nonce":"n","version":"1","release_counter":1,"x":1}"#;
        let e = refused(envelope(bad, &sign(&d, &message(bad))), &d.cert, "pump-1");
        assert!(e.contains("unknown field"), "{e}");
        // Install outcomes: only the three known ones, with a short, printable reason.
        let install = |outcome: &str, reason: &str| {
            serde_json::json!({"device": "pump-1", "nonce": "n", "version": "1",
                "release_counter": 1, "install": {"campaign": "c", "target": "t",
                "outcome": outcome, "reason": reason}})
            .to_string()
        };
        for ok in ["succeeded", "failed", "deferred"] {
            let p = install(ok, "why");
            open(
                &envelope(p.as_bytes(), &sign(&d, &message(p.as_bytes()))),
                &d.cert,
                "pump-1",
            )
            .unwrap();
        }
        for (bad, want) in [
            (
                install("installed", ""),
                "must be succeeded, failed or deferred",
            ),
            (
                install("failed", &"x".repeat(MAX_REASON_BYTES + 1)),
                "install reason",
            ),
            (install("failed", "line\nbreak"), "install reason"),
        ] {
            let e = refused(
                envelope(bad.as_bytes(), &sign(&d, &message(bad.as_bytes()))),
                &d.cert,
                "pump-1",
            );
            assert!(e.contains(want), "{e}");
        }
    }
}
