use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::keyfile::{self, KdfCost, Protection};
use super::*;

const VECTORS: &str = include_str!("../testdata/composite-sigs-testvectors.json");

fn b64(v: &serde_json::Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

fn composite_vector() -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let m = b64(&doc["m"]);
    let ctx = b64(&doc["ctx"]);
    let test = doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tcId"] == "id-MLDSA65-Ed25519-SHA512")
        .unwrap()
        .clone();
    (test, m, ctx)
}

#[test]
fn official_composite_vectors_verify() {
    let (t, m, ctx) = composite_vector();
    let pk = PublicKey::from_raw(Scheme::MlDsa65Ed25519, b64(&t["pk"])).unwrap();
    pk.verify(&m, &b64(&t["s"])).unwrap();
    pk.verify_with_context(&m, &ctx, &b64(&t["sWithContext"]))
        .unwrap();
    // The context is bound into the signature.
    assert!(pk.verify(&m, &b64(&t["sWithContext"])).is_err());
}

#[test]
fn official_composite_private_key_derives_the_public_key() {
    let (t, m, ctx) = composite_vector();
    let key = SigningKey::from_pkcs8_der(&b64(&t["sk_pkcs8"])).unwrap();
    assert_eq!(key.public_key().as_bytes(), &b64(&t["pk"])[..]);
    assert_eq!(key.to_pkcs8_der().unwrap(), b64(&t["sk_pkcs8"]));
    let sig = key.sign_with_context(&m, &ctx).unwrap();
    key.public_key()
        .verify_with_context(&m, &ctx, &sig)
        .unwrap();
}

#[test]
fn composite_refuses_a_signature_with_one_half_broken() {
    let key = SigningKey::generate(Scheme::MlDsa65Ed25519).unwrap();
    let sig = key.sign(b"firmware").unwrap();
    assert_eq!(sig.len(), 3373);
    let mut ml_broken = sig.clone();
    ml_broken[10] ^= 1;
    assert!(matches!(
        key.public_key().verify(b"firmware", &ml_broken),
        Err(Error::HybridHalfFailed { half: "ML-DSA-65" })
    ));
    let mut ed_broken = sig.clone();
    *ed_broken.last_mut().unwrap() ^= 1;
    assert!(matches!(
        key.public_key().verify(b"firmware", &ed_broken),
        Err(Error::HybridHalfFailed { half: "Ed25519" })
    ));
    // A classical-only signature cannot stand in for the composite (stripping attack).
    let ed_only = sig[3309..].to_vec();
    assert!(key.public_key().verify(b"firmware", &ed_only).is_err());
    assert!(key.public_key().verify(b"firmware", &sig[..3372]).is_err());
}

#[test]
fn each_scheme_signs_and_verifies_and_refuses_other_messages() {
    for scheme in [
        Scheme::Ed25519,
        Scheme::EcdsaP256Sha256,
        Scheme::MlDsa65Ed25519,
    ] {
        let key = SigningKey::generate(scheme).unwrap();
        let sig = key.sign(b"metadata").unwrap();
        key.public_key().verify(b"metadata", &sig).unwrap();
        assert!(
            key.public_key().verify(b"metadata!", &sig).is_err(),
            "{scheme}"
        );
        let tuf = key.public_key().to_tuf_public();
        let back = PublicKey::from_tuf(scheme.keytype(), scheme.name(), &tuf).unwrap();
        assert_eq!(&back, key.public_key());
        let reread = SigningKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(reread.public_key(), key.public_key());
    }
}

#[test]
fn rsa_is_verify_only() {
    assert!(matches!(
        SigningKey::generate(Scheme::RsaPssSha256),
        Err(Error::VerifyOnly { .. })
    ));
}

#[test]
fn key_type_must_match_scheme() {
    let key = SigningKey::generate(Scheme::Ed25519).unwrap();
    let tuf = key.public_key().to_tuf_public();
    assert!(matches!(
        PublicKey::from_tuf("ecdsa", "ed25519", &tuf),
        Err(Error::KeyTypeMismatch { .. })
    ));
    assert!(matches!(
        PublicKey::from_tuf("ed25519", "ed448", &tuf),
        Err(Error::UnknownScheme { .. })
    ));
}

const CHEAP: KdfCost = KdfCost {
    m_cost_kib: 256,
    t_cost: 1,
    lanes: 1,
};

#[test]
fn encrypted_key_files_round_trip_and_refuse_wrong_passphrase_and_edits() {
    let key = SigningKey::generate(Scheme::MlDsa65Ed25519).unwrap();
    let pem =
        keyfile::encode_private_with_cost(&key, Protection::Passphrase("correct horse"), CHEAP)
            .unwrap();
    assert!(keyfile::is_encrypted(&pem));
    let back = keyfile::decode_private(&pem, || Some("correct horse".into())).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    assert!(matches!(
        keyfile::decode_private(&pem, || Some("wrong".into())),
        Err(Error::WrongPassphrase)
    ));
    assert!(matches!(
        keyfile::decode_private(&pem, || None),
        Err(Error::PassphraseRequired)
    ));
    // Lower the recorded Argon2 cost: the header is authenticated, so this is refused too.
    let (label, mut body) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    body[8] ^= 1;
    let edited = pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, &body).unwrap();
    assert!(keyfile::decode_private(&edited, || Some("correct horse".into())).is_err());
}

#[test]
fn plaintext_key_files_are_standard_pkcs8_that_openssl_reads() {
    let key = SigningKey::generate(Scheme::EcdsaP256Sha256).unwrap();
    let pem = keyfile::encode_private(&key, Protection::Plaintext).unwrap();
    assert!(!keyfile::is_encrypted(&pem));
    let Some(out) = openssl(&["pkey", "-noout", "-text"], pem.as_bytes()) else {
        return;
    };
    assert!(String::from_utf8_lossy(&out).contains("P-256"));
}

fn openssl(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: openssl is not installed");
            return None;
        }
        Err(e) => panic!("openssl is required in CI: {e}"),
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    Some(out.stdout)
}

#[test]
fn openssl_made_keys_and_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"signed bytes").unwrap();
    for (alg, scheme, sign_args) in [
        ("ED25519", Scheme::Ed25519, vec!["-rawin"]),
        (
            "EC",
            Scheme::EcdsaP256Sha256,
            vec!["-rawin", "-digest", "sha256"],
        ),
        (
            "RSA",
            Scheme::RsaPssSha256,
            vec![
                "-rawin",
                "-digest",
                "sha256",
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "rsa_pss_saltlen:digest",
            ],
        ),
    ] {
        let mut gen_args = vec!["genpkey", "-algorithm", alg];
        if alg == "EC" {
            gen_args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        let Some(private) = openssl(&gen_args, b"") else {
            return;
        };
        let key_path = dir.path().join(format!("{alg}.pem"));
        std::fs::write(&key_path, &private).unwrap();
        let public = openssl(&["pkey", "-pubout", "-in", key_path.to_str().unwrap()], b"").unwrap();
        let mut args = vec!["pkeyutl", "-sign", "-inkey", key_path.to_str().unwrap()];
        args.extend(sign_args);
        args.extend(["-in", msg.to_str().unwrap()]);
        let sig = openssl(&args, b"").unwrap();
        let mut public = String::from_utf8(public).unwrap();
        if scheme == Scheme::Ed25519 {
            // TUF writes Ed25519 keys as hex of the raw 32 bytes, the tail of the SPKI.
            let (_, der) = pem_rfc7468::decode_vec(public.trim().as_bytes()).unwrap();
            public = hex::encode(&der[der.len() - 32..]);
        }
        let pk = PublicKey::from_tuf(scheme.keytype(), scheme.name(), &public).unwrap();
        pk.verify(b"signed bytes", &sig).unwrap();
        assert!(pk.verify(b"other bytes", &sig).is_err(), "{alg}");
        if scheme != Scheme::RsaPssSha256 {
            let ours =
                keyfile::decode_private(std::str::from_utf8(&private).unwrap(), || None).unwrap();
            assert_eq!(ours.public_key(), &pk);
        }
    }
}

#[test]
fn official_pure_ml_dsa_65_vectors_verify_with_the_context_backend() {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let (m, ctx) = (b64(&doc["m"]), b64(&doc["ctx"]));
    let t = doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tcId"] == "id-ML-DSA-65")
        .unwrap();
    let pk = b64(&t["pk"]);
    assert!(crate::mldsa::verify(&pk, &m, &[], &b64(&t["s"])));
    assert!(crate::mldsa::verify(
        &pk,
        &m,
        &ctx,
        &b64(&t["sWithContext"])
    ));
    assert!(!crate::mldsa::verify(
        &pk,
        &m,
        &[],
        &b64(&t["sWithContext"])
    ));
    // The seed in the vector derives the same public key.
    let seed: [u8; 32] = b64(&t["sk"]).try_into().unwrap();
    assert_eq!(crate::mldsa::public_key_from_seed(&seed), pk);
}

mod pkcs7 {
    use proptest::prelude::*;

    use crate::der::write_tlv;
    use crate::pkcs7_certificates;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_tlv(&mut out, tag, content);
        out
    }

    use crate::pkcs7_certs_only as certs_only;

    proptest! {
        #[test]
        fn certificates_come_back_in_order(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4)) {
            let mut certs: Vec<Vec<u8>> = bodies.iter().map(|b| tlv(0x30, b)).collect();
            let der = certs_only(&certs);
            // DER orders a SET OF by the elements' encodings.
            certs.sort();
            prop_assert_eq!(pkcs7_certificates(&der), Some(certs));
        }

        #[test]
        fn truncated_or_arbitrary_input_is_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), cut in 1usize..50) {
            let _ = pkcs7_certificates(&bytes);
            let whole = certs_only(&[tlv(0x30, &bytes)]);
            let cut = cut.min(whole.len());
            prop_assert_eq!(pkcs7_certificates(&whole[..whole.len() - cut]), None);
        }
    }

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn an_empty_bundle_is_well_formed() {
        let der = certs_only(&[]);
        assert_eq!(der[0], 0x30);
        assert_eq!(usize::from(der[1]), der.len() - 2);
        assert_eq!(pkcs7_certificates(&der), Some(Vec::new()));
    }

    #[test]
    fn other_content_types_are_refused() {
        let mut data = certs_only(&[tlv(0x30, &[1, 2])]);
        // id-data instead of id-signedData.
        let pos = data
            .windows(3)
            .position(|w| w == [0x01, 0x07, 0x02])
            .unwrap();
        data[pos + 2] = 0x01;
        assert_eq!(pkcs7_certificates(&data), None);
    }
}

#[test]
fn raw_ecdsa_signatures_from_tokens_become_der_that_verifies() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
    let public =
        PublicKey::from_raw(Scheme::EcdsaP256Sha256, pair.public_key().as_ref().to_vec()).unwrap();
    // Enough signatures that r or s starts with a set top bit (half of them) and, now and then,
    // with a zero byte: both need the minimal-INTEGER rule right.
    for i in 0..600u32 {
        let msg = i.to_be_bytes();
        let raw = pair.sign(&rng, &msg).unwrap();
        let der = der::ecdsa_signature_from_raw(raw.as_ref()).unwrap();
        public.verify(&msg, &der).unwrap();
        assert!(public.verify(b"another message", &der).is_err());
    }
    // Edge values: r = 1 (31 leading zero bytes), s with its top bit set.
    let mut raw = [0u8; 64];
    raw[31] = 1;
    raw[32] = 0x80;
    assert_eq!(
        der::ecdsa_signature_from_raw(&raw).unwrap()[..7],
        [0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21]
    );
    // Anything but 64 bytes is refused, not padded.
    assert!(der::ecdsa_signature_from_raw(&[1u8; 63]).is_none());
    assert!(der::ecdsa_signature_from_raw(&[1u8; 65]).is_none());
}

#[test]
fn certificate_public_keys_parse_from_spki() {
    for scheme in [Scheme::EcdsaP256Sha256, Scheme::Ed25519] {
        let key = SigningKey::generate(scheme).unwrap();
        let alg = if scheme == Scheme::Ed25519 {
            der::ALG_ED25519
        } else {
            der::ALG_EC_P256
        };
        let spki = der::encode_spki(alg, key.public_key().as_bytes());
        assert_eq!(&PublicKey::from_spki_der(&spki).unwrap(), key.public_key());
    }
    let rsa = der::encode_spki(der::ALG_RSA, &[0x30, 0x00]);
    let err = PublicKey::from_spki_der(&rsa).unwrap_err().to_string();
    assert!(err.contains("neither ECDSA P-256 nor Ed25519"), "{err}");
    assert!(PublicKey::from_spki_der(b"junk").is_err());
}
