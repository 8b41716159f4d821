use std::process::Command;

use super::*;

fn openssl(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("openssl").args(args).output() {
        Ok(o) => Some(o),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: openssl is not installed");
            None
        }
        Err(e) => panic!("openssl is required in CI: {e}"),
    }
}

/// A P-256 key and CSR made by openssl that asks for a name and SAN the CA must ignore.
fn openssl_csr(dir: &Path) -> Option<String> {
    let key = dir.join("dev.key");
    let csr = dir.join("dev.csr");
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=root-of-all-pumps",
        "-addext",
        "subjectAltName=DNS:evil.example",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(std::fs::read_to_string(csr).unwrap())
}

fn new_ca(dir: &Path, alg: CaAlgorithm) -> FleetCa {
    FleetCa::init(
        &dir.join("ca"),
        "Acme Fleet",
        alg,
        3650,
        730,
        Protection::Plaintext,
    )
    .unwrap()
}

#[test]
fn issued_certificates_verify_with_openssl_and_carry_only_the_ca_chosen_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(csr) = openssl_csr(tmp.path()) else {
        return;
    };
    let mut ca = new_ca(tmp.path(), CaAlgorithm::EcdsaP256);
    let device = DeviceId::new("pump-0001").unwrap();
    let (record, pem) = ca.issue(&csr, &device, 30).unwrap();
    assert_eq!(record.device_id, device);
    let cert = tmp.path().join("dev.crt");
    std::fs::write(&cert, &pem).unwrap();
    let root = ca.root_path();
    let issuing = tmp.path().join("ca/issuing.crt");
    let out = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issuing.to_str().unwrap(),
        "-purpose",
        "sslclient",
        cert.to_str().unwrap(),
    ])
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]).unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CN = pump-0001"), "{text}");
    assert!(text.contains("URI:urn:medsec:device:pump-0001"), "{text}");
    assert!(
        !text.contains("evil.example") && !text.contains("root-of-all-pumps"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
}

#[test]
fn revoked_certificates_are_refused_by_openssl_with_the_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(csr) = openssl_csr(tmp.path()) else {
        return;
    };
    let mut ca = new_ca(tmp.path(), CaAlgorithm::EcdsaP256);
    let (record, pem) = ca
        .issue(&csr, &DeviceId::new("monitor-7").unwrap(), 30)
        .unwrap();
    let cert = tmp.path().join("dev.crt");
    std::fs::write(&cert, &pem).unwrap();
    let chain = ca.chain_path();
    let crl = tmp.path().join("crl.pem");
    std::fs::write(&crl, ca.crl(7).unwrap()).unwrap();
    let verify = |crl: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            chain.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
        .unwrap()
    };
    assert!(verify(&crl).status.success(), "not yet revoked");
    ca.revoke(&record.serial, RevocationReason::KeyCompromise)
        .unwrap();
    assert!(matches!(
        ca.revoke(&record.serial, RevocationReason::KeyCompromise),
        Err(Error::AlreadyRevoked { .. })
    ));
    std::fs::write(&crl, ca.crl(7).unwrap()).unwrap();
    let out = verify(&crl);
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("certificate revoked"), "{said}");
    assert!(matches!(
        ca.revoke("00ff", RevocationReason::KeyCompromise),
        Err(Error::UnknownSerial { .. })
    ));
}

#[test]
fn forged_requests_bad_ids_and_long_lifetimes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(csr) = openssl_csr(tmp.path()) else {
        return;
    };
    let mut ca = new_ca(tmp.path(), CaAlgorithm::EcdsaP256);
    // Change one byte inside the base64 body: the self-signature no longer verifies.
    let mut lines: Vec<String> = csr.lines().map(str::to_owned).collect();
    let body = &mut lines[3];
    let flipped = if body.starts_with('A') { 'B' } else { 'A' };
    body.replace_range(0..1, &flipped.to_string());
    let forged = lines.join("\n");
    assert!(matches!(
        ca.issue(&forged, &DeviceId::new("pump-1").unwrap(), 30),
        Err(Error::BadRequest { .. })
    ));
    assert!(matches!(
        ca.issue(&csr, &DeviceId::new("pump-1").unwrap(), 365),
        Err(Error::BadValidity { .. })
    ));
    for bad in ["", "pump/1", "pump 1", "../x", &"x".repeat(65)] {
        assert!(DeviceId::new(bad).is_err(), "{bad:?}");
    }
    assert!(
        ca.issued().is_empty(),
        "nothing recorded for refused requests"
    );
}

#[test]
fn ml_dsa_65_ca_issues_device_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(csr) = openssl_csr(tmp.path()) else {
        return;
    };
    let mut ca = new_ca(tmp.path(), CaAlgorithm::MlDsa65);
    let (_, pem) = ca
        .issue(&csr, &DeviceId::new("gateway-3").unwrap(), 7)
        .unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let crl = ca.crl(1).unwrap();
    assert!(crl.contains("BEGIN X509 CRL"));
    // Reopened from disk (through the aws-lc-rs adapter), the CA keeps issuing with the same key
    // and records, and its ML-DSA-65 signatures verify under the issuing certificate's key.
    let mut again = FleetCa::open(&tmp.path().join("ca"), || None).unwrap();
    let (_, pem2) = again
        .issue(&csr, &DeviceId::new("gateway-4").unwrap(), 7)
        .unwrap();
    assert_eq!(again.issued().len(), 2);
    let issuing = std::fs::read_to_string(tmp.path().join("ca/issuing.crt")).unwrap();
    for cert in [&pem, &pem2] {
        assert!(
            ml_dsa_65_signed_by(cert, &issuing),
            "issued certificate does not verify"
        );
    }
    // One changed byte in the signed part: refused.
    let der = x509_parser::pem::parse_x509_pem(pem2.as_bytes())
        .unwrap()
        .1
        .contents;
    let mut edited = der.clone();
    edited[40] ^= 1;
    let edited_pem =
        pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &edited).unwrap();
    assert!(
        x509_parser::parse_x509_certificate(&edited).is_ok(),
        "still parses"
    );
    assert!(!ml_dsa_65_signed_by(&edited_pem, &issuing));
}

#[test]
fn encrypted_ca_keys_need_the_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    FleetCa::init(
        &dir,
        "Acme",
        CaAlgorithm::EcdsaP256,
        3650,
        730,
        Protection::Passphrase("pw"),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(dir.join("issuing.key"))
            .unwrap()
            .contains("ENCRYPTED")
    );
    assert!(matches!(
        FleetCa::open(&dir, || Some("nope".into())),
        Err(Error::Key(_))
    ));
    assert!(matches!(FleetCa::open(&dir, || None), Err(Error::Key(_))));
    FleetCa::open(&dir, || Some("pw".into())).unwrap();
    assert!(matches!(
        FleetCa::init(
            &dir,
            "Acme",
            CaAlgorithm::EcdsaP256,
            3650,
            730,
            Protection::Plaintext
        ),
        Err(Error::Directory { .. })
    ));
}

/// Verifies `cert`'s ML-DSA-65 signature with `issuer`'s public key (OpenSSL 3.0 cannot).
fn ml_dsa_65_signed_by(cert: &str, issuer: &str) -> bool {
    use aws_lc_rs::signature::{ML_DSA_65, UnparsedPublicKey};
    let Ok((_, cert_pem)) = x509_parser::pem::parse_x509_pem(cert.as_bytes()) else {
        return false;
    };
    let (_, issuer_pem) = x509_parser::pem::parse_x509_pem(issuer.as_bytes()).unwrap();
    let Ok((_, c)) = x509_parser::parse_x509_certificate(&cert_pem.contents) else {
        return false;
    };
    let (_, i) = x509_parser::parse_x509_certificate(&issuer_pem.contents).unwrap();
    let key = &i.tbs_certificate.subject_pki.subject_public_key.data;
    UnparsedPublicKey::new(&ML_DSA_65, key)
        .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
        .is_ok()
}

/// An ML-DSA-65 key and PKCS#10 request made by rcgen (OpenSSL 3.0 cannot make one).
fn ml_dsa_csr() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ML_DSA_65).unwrap();
    let params = CertificateParams::new(vec!["ignored.example".to_owned()]).unwrap();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, csr)
}

#[test]
fn ml_dsa_65_requests_are_verified_and_their_key_certified() {
    use rcgen::PublicKeyData as _;
    let tmp = tempfile::tempdir().unwrap();
    for alg in [CaAlgorithm::MlDsa65, CaAlgorithm::EcdsaP256] {
        let dir = tmp.path().join(format!("{alg:?}"));
        let mut ca = new_ca(&dir, alg);
        let (key, csr) = ml_dsa_csr();
        let (_, pem) = ca
            .issue(&csr, &DeviceId::new("insulin-pump-9").unwrap(), 30)
            .unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let spki = &cert.tbs_certificate.subject_pki;
        assert_eq!(spki.algorithm.algorithm.to_id_string(), ID_ML_DSA_65);
        assert_eq!(spki.subject_public_key.data.as_ref(), key.der_bytes());
        // The request's DNS name is not carried over.
        assert!(!String::from_utf8_lossy(&der).contains("ignored.example"));
    }
}

#[test]
fn ml_dsa_65_requests_with_a_bad_signature_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = new_ca(tmp.path(), CaAlgorithm::MlDsa65);
    let (_, csr) = ml_dsa_csr();
    let (_, mut der) = pem_rfc7468::decode_vec(csr.as_bytes()).unwrap();
    let last = der.len() - 1;
    der[last] ^= 1; // inside the signature
    let forged =
        pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, &der)
            .unwrap();
    let err = ca
        .issue(&forged, &DeviceId::new("pump-2").unwrap(), 30)
        .unwrap_err();
    assert!(
        err.to_string().contains("self-signature does not verify"),
        "{err}"
    );
    // Another key's signature over the same request info is refused too.
    let (_, other) = ml_dsa_csr();
    let (_, other_der) = pem_rfc7468::decode_vec(other.as_bytes()).unwrap();
    let sig_len = 3309;
    let mut spliced = pem_rfc7468::decode_vec(csr.as_bytes()).unwrap().1;
    let n = spliced.len();
    spliced[n - sig_len..].copy_from_slice(&other_der[other_der.len() - sig_len..]);
    let spliced =
        pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, &spliced)
            .unwrap();
    assert!(
        ca.issue(&spliced, &DeviceId::new("pump-2").unwrap(), 30)
            .is_err()
    );
    assert!(matches!(
        ca.issue(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            &DeviceId::new("p").unwrap(),
            30
        ),
        Err(Error::BadRequest { .. })
    ));
    assert!(ca.issued().is_empty());
}

#[test]
fn signatures_verify_with_the_certified_key_only() {
    use rcgen::SigningKey as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut ca = new_ca(tmp.path(), CaAlgorithm::EcdsaP256);
    let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p256_csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&p256)
        .unwrap()
        .pem()
        .unwrap();
    let (ml_key, ml_csr) = ml_dsa_csr();
    let mut certs = Vec::new();
    for (i, (key, csr)) in [(&p256, &p256_csr), (&ml_key, &ml_csr)]
        .into_iter()
        .enumerate()
    {
        let (_, pem) = ca
            .issue(csr, &DeviceId::new(&format!("dev-{i}")).unwrap(), 30)
            .unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        certs.push((key, der));
    }
    for (key, der) in &certs {
        let sig = key.sign(b"report").unwrap();
        verify_with_certificate(der, b"report", &sig).unwrap();
        let err = verify_with_certificate(der, b"report!", &sig).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
    // One device's signature does not verify with the other's certificate.
    let sig = certs[0].0.sign(b"report").unwrap();
    assert!(verify_with_certificate(&certs[1].1, b"report", &sig).is_err());
    assert!(verify_with_certificate(b"not a certificate", b"report", &sig).is_err());
}
