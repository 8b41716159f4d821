//! `medsec server` end to end with real peers: `openssl` makes keys, requests and rogue
//! certificates, `curl` enrols over EST and calls both APIs, a rustls client checks the key
//! exchange. Every refusal is then looked up in the audit log, and tampering with the audit table
//! (SQLite and PostgreSQL) is named by `medsec audit verify`.
//!
//! PostgreSQL: `MEDSEC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`); the
//! test fails under `CI=true` when it is unreachable and says SKIPPED elsewhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

/// A second CA, unknown to medsec, and a client certificate from it that claims `device`.
fn rogue_certificate(work: &Path, device: &str) {
    openssl(
        work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue-ca.key",
            "-out",
            "rogue-ca.pem",
            "-subj",
            "/CN=medsec fleet Issuing CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        work,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.csr",
            "-subj",
            &format!("/CN={device}"),
        ],
    );
    std::fs::write(
        work.join("rogue.ext"),
        format!("subjectAltName=URI:urn:medsec:device:{device}\nextendedKeyUsage=clientAuth\n"),
    )
    .unwrap();
    openssl(
        work,
        &[
            "x509",
            "-req",
            "-in",
            "rogue.csr",
            "-CA",
            "rogue-ca.pem",
            "-CAkey",
            "rogue-ca.key",
            "-CAcreateserial",
            "-days",
            "5",
            "-extfile",
            "rogue.ext",
            "-out",
            "rogue.pem",
        ],
    );
}

/// A certificate for `device` signed by the fleet's own issuing CA but expired last year (made
/// with `openssl ca`, which can backdate): only the validity period is wrong.
fn expired_certificate(server: &Running, device: &str) {
    let work = &server.work;
    std::fs::write(work.join("index.txt"), "").unwrap();
    std::fs::write(work.join("serial"), "1000\n").unwrap();
    std::fs::write(
        work.join("expired.cnf"),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n\
             certificate = {}\nprivate_key = {}\nserial = serial\ndefault_md = sha256\n\
             policy = p\nunique_subject = no\nx509_extensions = ext\n[p]\ncommonName = supplied\n\
             [ext]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\n\
             extendedKeyUsage = clientAuth\nsubjectAltName = URI:urn:medsec:device:{device}\n",
            server.ca("issuing.crt").display(),
            server.ca("issuing.key").display()
        ),
    )
    .unwrap();
    openssl(
        work,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "expired.key",
            "-out",
            "expired.csr",
            "-subj",
            &format!("/CN={device}"),
        ],
    );
    openssl(
        work,
        &[
            "ca",
            "-batch",
            "-config",
            "expired.cnf",
            "-in",
            "expired.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20250101000000Z",
            "-enddate",
            "20250201000000Z",
            "-notext",
        ],
    );
}

/// A rustls client (the aws-lc-rs provider's defaults, post-quantum preferred) that presents
/// `name`'s certificate, GETs `path` and returns the negotiated key-exchange group and status line.
fn rustls_get(server: &Running, name: &str, path: &str) -> (String, String) {
    let mut tls = keep_alive(server, &server.device, Some(name));
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.device
    )
    .unwrap();
    let mut response = Vec::new();
    // The server closes after the answer; a missing close_notify is not the point here.
    let _ = tls.read_to_end(&mut response);
    let group = tls
        .conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    (group, text.lines().next().unwrap_or_default().to_owned())
}

#[test]
fn enrolment_mtls_and_zero_trust_with_real_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");

    // --- openssl + curl enrol pump-1 with a one-time token; openssl verifies the chain.
    let token = s.enrolment_token("pump-1");
    s.key_and_request("pump-1", "pump-1");
    let bearer = format!("Authorization: Bearer {token}");
    let r = s.est("simpleenroll", "pump-1", &["-H", &bearer]);
    assert_eq!(r.status, 200, "{r:?}");
    let verified = openssl(
        &s.work,
        &[
            "verify",
            "-CAfile",
            &s.ca("root.crt").display().to_string(),
            "-untrusted",
            &s.ca("issuing.crt").display().to_string(),
            "-purpose",
            "sslclient",
            "pump-1.leaf.pem",
        ],
    );
    assert!(verified.contains("OK"), "{verified}");
    let text = openssl(
        &s.work,
        &["x509", "-in", "pump-1.leaf.pem", "-noout", "-text"],
    );
    assert!(text.contains("URI:urn:medsec:device:pump-1"), "{text}");
    s.audited(&admin, "the enrolment", |e| {
        field(e, "kind") == "issuance"
            && has(e, "resource", "pump-1")
            && has(e, "detail", "valid until")
    });

    // The token was one-time.
    s.key_and_request("pump-1-again", "pump-1");
    let r = s.est("simpleenroll", "pump-1-again", &["-H", &bearer]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("used"), "{r:?}");

    // The EST CA certificates (RFC 7030 4.1) as PKCS#7.
    let r = s.curl(&[
        "-o",
        "cacerts.b64",
        &s.device_url("/.well-known/est/cacerts"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    openssl(
        &s.work,
        &["base64", "-d", "-in", "cacerts.b64", "-out", "cacerts.p7"],
    );
    let certs = openssl(
        &s.work,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.p7",
            "-print_certs",
        ],
    );
    assert!(
        certs.contains("Issuing CA") && certs.contains("Root CA"),
        "{certs}"
    );

    // --- curl calls the device API with the certificate.
    let me = s.as_device("pump-1");
    let me: Vec<&str> = me.iter().map(String::as_str).collect();
    let mut args = me.clone();
    let own = s.device_url("/api/v1/devices/pump-1");
    args.push(&own);
    let r = s.curl(&args);
    assert_eq!(r.status, 200, "{r:?}");
    let record: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(record["id"], "pump-1");
    assert_eq!(record["state"], "enrolled");
    let status_url = s.device_url("/api/v1/devices/pump-1/status");
    let mut args = me.clone();
    args.extend([
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"battery":81}"#,
        &status_url,
    ]);
    assert_eq!(s.curl(&args).status, 204);

    // --- a rustls client negotiates the hybrid post-quantum group.
    let (group, status) = rustls_get(&s, "pump-1", "/api/v1/devices/pump-1");
    assert_eq!(group, "X25519MLKEM768");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // --- no client certificate: the device API refuses and says so in the log.
    let r = s.curl(&[&own]);
    assert_eq!(r.status, 401, "{r:?}");
    s.audited(&admin, "a request without a client certificate", |e| {
        field(e, "kind") == "authn"
            && has(e, "detail", "no client certificate")
            && has(e, "resource", "pump-1")
    });

    // --- a certificate from another CA that claims to be pump-1 (its CA even copies the fleet
    // issuing CA's name, so the signature is what fails): refused in the handshake.
    rogue_certificate(&s.work, "pump-1");
    let r = s.curl(&["--cert", "rogue.pem", "--key", "rogue.key", &own]);
    assert_eq!(r.status, 0, "the handshake must fail: {r:?}");
    s.audited(&admin, "the rogue CA's certificate", |e| {
        field(e, "kind") == "tls"
            && field(e, "decision") == "deny"
            && (has(e, "detail", "BadSignature") || has(e, "detail", "UnknownIssuer"))
    });

    // --- an expired certificate from the fleet CA itself: refused in the handshake.
    expired_certificate(&s, "pump-1");
    let r = s.curl(&["--cert", "expired.pem", "--key", "expired.key", &own]);
    assert_eq!(r.status, 0, "the handshake must fail: {r:?}");
    s.audited(&admin, "the expired certificate", |e| {
        field(e, "kind") == "tls" && has(e, "detail", "certificate expired")
    });

    // --- a CSR whose subject claims another device, with pump-2's token.
    let token2 = s.enrolment_token("pump-2");
    s.key_and_request("pump-2-claims-1", "pump-1");
    let r = s.est(
        "simpleenroll",
        "pump-2-claims-1",
        &["-u", &format!("pump-2:{token2}")],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("claims \\\"pump-1\\\""), "{r:?}");
    s.audited(&admin, "the CSR claiming another device", |e| {
        field(e, "kind") == "enrolment"
            && field(e, "decision") == "deny"
            && has(e, "detail", "claims \"pump-1\"")
    });
    // A token presented with a false claim is spent (whoever holds it tried to impersonate):
    // pump-2 needs a new one, then enrols honestly (HTTP Basic, as RFC 7030 clients send it).
    s.key_and_request("pump-2", "pump-2");
    let r = s.est(
        "simpleenroll",
        "pump-2",
        &["-u", &format!("pump-2:{token2}")],
    );
    assert_eq!(r.status, 401, "{r:?}");
    let token2 = s.enrolment_token("pump-2");
    let r = s.est(
        "simpleenroll",
        "pump-2",
        &["-u", &format!("pump-2:{token2}")],
    );
    assert_eq!(r.status, 200, "{r:?}");

    // --- device A reading or writing device B's resources.
    let other = s.device_url("/api/v1/devices/pump-2");
    let mut args = me.clone();
    args.push(&other);
    assert_eq!(s.curl(&args).status, 403);
    let other_status = s.device_url("/api/v1/devices/pump-2/status");
    let mut args = me.clone();
    args.extend([
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"dose":99}"#,
        &other_status,
    ]);
    assert_eq!(s.curl(&args).status, 403);
    for action in ["device.read", "device.write"] {
        s.audited(&admin, "pump-1 touching pump-2", |e| {
            field(e, "kind") == "authz"
                && field(e, "decision") == "deny"
                && field(e, "principal") == "Device::\"pump-1\""
                && field(e, "action") == action
                && has(e, "resource", "pump-2")
        });
    }
    let allowed = s.audited(&admin, "pump-1 reading its own record", |e| {
        field(e, "decision") == "allow"
            && field(e, "action") == "device.read"
            && has(e, "principal", "pump-1")
    });
    assert_eq!(
        allowed["event"]["policies"],
        serde_json::json!(["device-own-record"])
    );

    // --- re-enrolment with the current certificate needs a new key.
    s.request_for_key("pump-1", "pump-1", false);
    std::fs::copy(s.work.join("pump-1.b64"), s.work.join("pump-1-same.b64")).unwrap();
    let mut args: Vec<&str> = me.clone();
    args.extend([
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        "@pump-1-same.b64",
    ]);
    let reenroll = s.device_url("/.well-known/est/simplereenroll");
    args.push(&reenroll);
    let r = s.curl(&args);
    assert_eq!(r.status, 409, "{r:?}");
    s.audited(&admin, "re-enrolment with the same key", |e| {
        field(e, "kind") == "enrolment"
            && field(e, "decision") == "deny"
            && has(e, "detail", "new key pair")
    });
    // With a new key it works, and the new certificate is a different one.
    s.key_and_request("pump-1-next", "pump-1");
    let mut args: Vec<&str> = me.clone();
    args.extend([
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        "@pump-1-next.b64",
        "-o",
        "pump-1-next.p7.b64",
    ]);
    args.push(&reenroll);
    let r = s.curl(&args);
    assert_eq!(r.status, 200, "{r:?}");

    // --- operator tokens: a viewer may list but not revoke; an expired token is refused.
    let viewer = s.operator_token("victor", "viewer", "1h");
    let vauth = format!("Authorization: Bearer {viewer}");
    let list = s.operator_url("/api/v1/devices");
    let r = s.curl(&["-H", &vauth, &list]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("pump-2"), "{r:?}");
    let revoke2 = s.operator_url("/api/v1/devices/pump-2/revoke");
    let r = s.curl(&["-H", &vauth, "-X", "POST", &revoke2]);
    assert_eq!(r.status, 403, "{r:?}");
    s.audited(&admin, "the viewer's revocation attempt", |e| {
        field(e, "kind") == "authz"
            && field(e, "decision") == "deny"
            && field(e, "principal") == "Operator::\"victor\""
            && field(e, "action") == "device.revoke"
    });
    let brief = s.operator_token("eve", "admin", "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let r = s.curl(&["-H", &format!("Authorization: Bearer {brief}"), &list]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("expired"), "{r:?}");
    s.audited(&admin, "the expired operator token", |e| {
        field(e, "kind") == "authn"
            && field(e, "principal") == "Operator::\"eve\""
            && has(e, "detail", "expired")
    });
    let r = s.curl(&[&list]);
    assert_eq!(r.status, 401, "no token: {r:?}");

    // --- an oversized body (the default limit is 64 KiB).
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    std::fs::write(s.work.join("big.json"), big).unwrap();
    let mut args = me.clone();
    // `Expect: 100-continue`: the server refuses on the announced length before the body is
    // sent, as a client should let it. Without it the server's early 413 and close race curl's
    // upload, and curl may report a broken pipe instead of the answer.
    args.extend([
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "@big.json",
        &status_url,
    ]);
    let r = s.curl(&args);
    assert_eq!(r.status, 413, "{r:?}");
    s.audited(&admin, "the oversized body", |e| {
        field(e, "kind") == "limit" && has(e, "detail", "exceeds the limit of 65536")
    });

    // --- revocation through the operator API takes effect at once (new CRL, TLS reloaded).
    let auth = format!("Authorization: Bearer {admin}");
    let r = s.curl(&[
        "-H",
        &auth,
        "-X",
        "POST",
        "-d",
        r#"{"reason":"key-compromise"}"#,
        &revoke2,
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let p2 = s.as_device("pump-2");
    let mut args: Vec<&str> = p2.iter().map(String::as_str).collect();
    args.push(&other);
    let r = s.curl(&args);
    assert_eq!(
        r.status, 0,
        "pump-2's revoked certificate must fail the handshake: {r:?}"
    );
    s.audited(&admin, "pump-2's revoked certificate", |e| {
        field(e, "kind") == "tls" && has(e, "detail", "Revoked")
    });

    // --- a revoked device cannot enrol again, even with a fresh token, until it is reinstated;
    // a viewer cannot reinstate it.
    let token3 = s.enrolment_token("pump-2");
    s.key_and_request("pump-2-back", "pump-2");
    let r = s.est(
        "simpleenroll",
        "pump-2-back",
        &["-u", &format!("pump-2:{token3}")],
    );
    assert_eq!(r.status, 403, "{r:?}");
    let reinstate2 = s.operator_url("/api/v1/devices/pump-2/reinstate");
    let r = s.curl(&["-H", &vauth, "-X", "POST", &reinstate2]);
    assert_eq!(r.status, 403, "{r:?}");
    let r = s.curl(&["-H", &auth, "-X", "POST", &reinstate2]);
    assert_eq!(r.status, 200, "{r:?}");
    s.audited(&admin, "the reinstatement", |e| {
        field(e, "action") == "device.reinstate" && field(e, "decision") == "info"
    });
    let token4 = s.enrolment_token("pump-2");
    let r = s.est(
        "simpleenroll",
        "pump-2-back",
        &["-u", &format!("pump-2:{token4}")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.curl(&["-H", &auth, "-X", "POST", &reinstate2]);
    assert_eq!(r.status, 409, "only a revoked device is reinstated: {r:?}");

    // --- revocation with the offline CLI: the server picks up the new CRL without restart.
    let leaf = openssl(
        &s.work,
        &["x509", "-in", "pump-1.leaf.pem", "-noout", "-serial"],
    );
    let serial = leaf
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let ca_dir = s.data.join("ca");
    ok(medsec()
        .arg("ca")
        .arg("revoke")
        .arg(&ca_dir)
        .args(["--serial", &serial]));
    ok(medsec().arg("ca").arg("crl").arg(&ca_dir));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut args = me.clone();
    args.push(&own);
    loop {
        let r = s.curl(&args);
        if r.status == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never reloaded the CRL: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let refusals = s
        .audit(&admin)
        .into_iter()
        .filter(|e| field(&e["event"], "kind") == "tls" && has(&e["event"], "detail", "Revoked"))
        .count();
    assert!(refusals >= 2, "both revoked certificates are in the log");

    // --- the whole log verifies, through the API and the CLI.
    let r = s.curl(&["-H", &auth, &s.operator_url("/api/v1/audit/verify")]);
    assert_eq!(r.status, 200, "{r:?}");
    let report: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    let out = ok(medsec().args(["audit", "verify"]).args(s.location()));
    assert!(out.contains("audit log verifies"), "{out}");

    // --- proofs: pump-1's issuance is in the signed tree, and the latest head extends the first.
    let key = medsec_server::audit_log::read_public_key(&s.data.join("audit.pub")).unwrap();
    let issuance = s.audited(&admin, "the issuance", |e| field(e, "kind") == "issuance");
    let seq = issuance["seq"].as_u64().unwrap();
    let url = s.operator_url(&format!("/api/v1/audit/proof/inclusion?seq={seq}"));
    let r = s.curl(&["-H", &auth, &url]);
    assert_eq!(r.status, 200, "{r:?}");
    let p: medsec_server::audit_log::InclusionProof = serde_json::from_str(&r.body).unwrap();
    let head = p.head.verify(&key).unwrap();
    let hex32 = |h: &str| <[u8; 32]>::try_from(hex::decode(h).unwrap()).unwrap();
    let path: Vec<[u8; 32]> = p.proof.iter().map(|h| hex32(h)).collect();
    let leaf = medsec_audit::leaf_hash(p.entry.as_bytes());
    medsec_audit::verify_inclusion(&leaf, seq, head.tree_size, &path, &hex32(&head.root_hash))
        .unwrap();
    assert!(p.entry.contains("issuance"));
    // A proof for another leaf does not pass for this entry.
    assert!(
        medsec_audit::verify_inclusion(
            &leaf,
            seq + 1,
            head.tree_size,
            &path,
            &hex32(&head.root_hash)
        )
        .is_err()
    );
    let r = s.curl(&[
        "-H",
        &auth,
        &s.operator_url("/api/v1/audit/proof/consistency?from=1"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let c: medsec_server::audit_log::ConsistencyProof = serde_json::from_str(&r.body).unwrap();
    let (old, new) = (c.old.verify(&key).unwrap(), c.new.verify(&key).unwrap());
    let path: Vec<[u8; 32]> = c.proof.iter().map(|h| hex32(h)).collect();
    medsec_audit::verify_consistency(
        old.tree_size,
        new.tree_size,
        &hex32(&old.root_hash),
        &hex32(&new.root_hash),
        &path,
    )
    .unwrap();
    let r = s.curl(&[
        "-H",
        &auth,
        &s.operator_url("/api/v1/audit/proof/consistency?from=999999"),
    ]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("no signed tree head has size 999999"),
        "{r:?}"
    );
}

#[test]
fn limits_refuse_bursts_stalled_handshakes_and_oversized_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "1"),
            ("MEDSEC_LIMITS__REQUEST_BURST", "5"),
            ("MEDSEC_LIMITS__HANDSHAKE_TIMEOUT_MS", "1000"),
        ],
        &[],
    );
    // A client that connects and never starts TLS is cut off after the handshake timeout.
    let mut idle = std::net::TcpStream::connect(&s.device).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes a stalled handshake");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Headers beyond max_header_bytes (16 KiB by default) are refused before any handler runs.
    let pad = format!("X-Pad: {}", "a".repeat(20 * 1024));
    let r = s.curl(&["-H", &pad, &s.device_url("/.well-known/est/cacerts")]);
    assert_eq!(r.status, 431, "{r:?}");

    let viewer = s.operator_token("vera", "viewer", "1h");
    let auth = format!("Authorization: Bearer {viewer}");
    let list = s.operator_url("/api/v1/devices");
    let statuses: Vec<u16> = (0..12)
        .map(|_| s.curl(&["-H", &auth, &list]).status)
        .collect();
    assert!(
        statuses.iter().filter(|&&c| c == 200).count() <= 7,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    // The limit is per principal: another operator is not held back by vera's burst (audited()
    // fails unless alice's request is answered).
    let admin = s.operator_token("alice", "admin", "1h");
    let e = s.audited(&admin, "the rate-limited burst", |e| {
        field(e, "kind") == "limit" && has(e, "detail", "rate limit")
    });
    assert!(field(&e["event"], "principal").starts_with("token:"), "{e}");
}

/// Runs the server on `database_url` (or SQLite), makes some history, then edits, deletes and
/// reorders audit rows with `tamper` and checks what `medsec audit verify` says.
fn audit_tampering_is_named(database_url: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<&str> = database_url
        .map(|u| vec!["--database-url", u])
        .unwrap_or_default();
    let s = start(tmp.path(), &[], &args);
    let mut location: Vec<String> = s.location().to_vec();
    if let Some(u) = database_url {
        location.extend(["--database-url".into(), u.into()]);
    }
    let with_db = |cmd: &mut Command| {
        cmd.args(&location);
    };
    let mut cmd = medsec();
    cmd.args([
        "operator", "token", "create", "--name", "alice", "--role", "admin",
    ]);
    with_db(&mut cmd);
    let admin = ok(&mut cmd).trim().to_owned();
    let auth = format!("Authorization: Bearer {admin}");
    for _ in 0..12 {
        let r = s.curl(&["-H", &auth, &s.operator_url("/api/v1/devices")]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    drop(s);

    let verify = || {
        let mut cmd = medsec();
        cmd.args(["audit", "verify"]);
        with_db(&mut cmd);
        cmd.output().unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("data/medsec.db").display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: &str| {
        rt.block_on(async {
            let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
            match &store {
                medsec_store::AnyStore::Sqlite(s) => {
                    sqlx::query(sql).execute(s.pool()).await.unwrap();
                }
                medsec_store::AnyStore::Postgres(p) => {
                    sqlx::query(sql).execute(p.pool()).await.unwrap();
                }
            }
            store.close().await;
        });
    };
    let says = |expected: &str| {
        let out = verify();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "verify must fail: {stdout}");
        assert!(
            stdout.contains(expected),
            "expected {expected:?} in:\n{stdout}"
        );
    };

    // Edit: an authorisation decision flipped from allow to deny.
    exec("UPDATE audit_entries SET entry = replace(entry, '\"allow\"', '\"deny\"') WHERE seq = 4");
    says("entry 4 was altered");
    exec("UPDATE audit_entries SET entry = replace(entry, '\"deny\"', '\"allow\"') WHERE seq = 4");
    assert!(
        verify().status.success(),
        "undoing the edit restores the log"
    );

    // Reorder: rows 6 and 7 swap places.
    exec(
        "UPDATE audit_entries SET entry = CASE seq \
         WHEN 6 THEN (SELECT entry FROM audit_entries WHERE seq = 7) \
         ELSE (SELECT entry FROM audit_entries WHERE seq = 6) END WHERE seq IN (6, 7)",
    );
    says("entry 6 was reordered");

    // Delete: row 9 disappears.
    exec("DELETE FROM audit_entries WHERE seq = 9");
    says("entry 9 was removed");
}

#[test]
fn audit_tampering_on_sqlite_is_named() {
    audit_tampering_is_named(None);
}

#[test]
fn audit_tampering_on_postgres_is_named() {
    let url = std::env::var("MEDSEC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let addr = url
        .split_once('@')
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    if std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not reachable at {addr} and CI=true: the PostgreSQL tamper test must run in CI"
        );
        eprintln!("SKIPPED: PostgreSQL audit tamper test (nothing listening at {addr})");
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let schema = format!("medsec_tamper_{}", std::process::id());
    audit_tampering_is_named(Some(&format!("{url}{sep}search_path={schema}")));
}

#[test]
fn a_manufacturer_certificate_enrols_its_device_and_nothing_more() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // The manufacturer's IDevID CA and a device certificate whose subject serialNumber is the
    // hardware serial, as IEEE 802.1AR suggests.
    let ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    for name in ["acme", "other"] {
        let (key, pem, subject) = (
            format!("{name}-ca.key"),
            format!("{name}-ca.pem"),
            format!("/O={name}/CN={name} IDevID CA"),
        );
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &subject,
            "-days",
            "3650",
        ];
        args.extend(ca_ext);
        openssl(work, &args);
    }
    std::fs::write(
        work.join("idevid.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for (name, ca) in [("idevid", "acme"), ("forged", "other")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            work,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/O=acme/CN=IP200/serialNumber=pump-9",
            ],
        );
        openssl(
            work,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}-ca.pem"),
                "-CAkey",
                &format!("{ca}-ca.key"),
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "idevid.ext",
                "-out",
                &pem,
            ],
        );
    }
    std::fs::write(
        work.join("medsec.toml"),
        format!(
            "manufacturer_cas = [{:?}]\n",
            work.join("acme-ca.pem").display().to_string()
        ),
    )
    .unwrap();
    let config = work.join("medsec.toml").display().to_string();
    let s = start(work, &[], &["--config", &config]);
    let admin = s.operator_token("alice", "admin", "1h");

    // The device's operational key is new; the IDevID only vouches for it.
    s.key_and_request("pump-9", "pump-9");
    let r = s.est(
        "simpleenroll",
        "pump-9",
        &["--cert", "idevid.pem", "--key", "idevid.key"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let text = openssl(
        &s.work,
        &["x509", "-in", "pump-9.leaf.pem", "-noout", "-text"],
    );
    assert!(text.contains("URI:urn:medsec:device:pump-9"), "{text}");
    let e = s.audited(&admin, "the IDevID enrolment's decision", |e| {
        field(e, "action") == "est.enroll" && field(e, "decision") == "allow"
    });
    assert_eq!(
        e["event"]["policies"],
        serde_json::json!(["enrol-with-token-or-manufacturer-certificate"])
    );
    // The new fleet certificate works on the device API.
    let own = s.device_url("/api/v1/devices/pump-9");
    let r = s.curl(&["--cert", "pump-9.pem", "--key", "pump-9.key", &own]);
    assert_eq!(r.status, 200, "{r:?}");

    // The manufacturer certificate itself only enrols.
    let r = s.curl(&["--cert", "idevid.pem", "--key", "idevid.key", &own]);
    assert_eq!(r.status, 401, "{r:?}");
    s.audited(&admin, "the IDevID on the device API", |e| {
        field(e, "kind") == "authn" && has(e, "detail", "a manufacturer certificate only enrols")
    });

    // The same serial from a CA the server does not trust: refused in the handshake.
    s.key_and_request("pump-9-forged", "pump-9");
    let r = s.est(
        "simpleenroll",
        "pump-9-forged",
        &["--cert", "forged.pem", "--key", "forged.key"],
    );
    assert_eq!(r.status, 0, "{r:?}");
    s.audited(&admin, "the forged IDevID", |e| {
        field(e, "kind") == "tls" && field(e, "decision") == "deny"
    });
}

#[test]
fn inventory_is_kept_through_the_operator_api_and_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    let enroller = s.operator_token("erin", "enroller", "1h");
    let viewer = s.operator_token("victor", "viewer", "1h");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let json = |r: &Reply| -> Value { serde_json::from_str(&r.body).unwrap() };
    let post_token = |token: &str, body: &str| {
        s.curl(&[
            "-H",
            &bearer(token),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url("/api/v1/enrolment-tokens"),
        ])
    };
    let patch = |token: &str, id: &str, body: &str| {
        s.curl(&[
            "-X",
            "PATCH",
            "-H",
            &bearer(token),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url(&format!("/api/v1/devices/{id}")),
        ])
    };
    let list = |query: &str| -> Vec<String> {
        let r = s.curl(&[
            "-H",
            &bearer(&viewer),
            &s.operator_url(&format!("/api/v1/devices?{query}")),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        json(&r)
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Registration with inventory, over the API (an enroller) and on the command line.
    for (id, model, site, groups) in [
        ("pump-n1", "infusion-pump", "north", r#"["icu","canary"]"#),
        ("pump-s1", "infusion-pump", "south", r#"["icu"]"#),
    ] {
        let body = format!(
            r#"{{"device":"{id}","model":"{model}","hardware_id":"acme-pump-r2","site":"{site}","groups":{groups}}}"#
        );
        let r = post_token(&enroller, &body);
        assert_eq!(r.status, 201, "{r:?}");
    }
    ok(medsec()
        .args(["fleet", "token", "create", "--device", "mon-n1"])
        .args(["--model", "patient-monitor", "--hardware-id", "acme-mon-r1"])
        .args(["--site", "north", "--group", "ward-3"])
        .args(s.location()));
    let mon = s.curl(&[
        "-H",
        &bearer(&viewer),
        &s.operator_url("/api/v1/devices/mon-n1"),
    ]);
    let mon = json(&mon);
    assert_eq!(
        (
            &mon["model"],
            &mon["hardware_id"],
            &mon["site"],
            &mon["groups"]
        ),
        (
            &Value::from("patient-monitor"),
            &Value::from("acme-mon-r1"),
            &Value::from("north"),
            &serde_json::json!(["ward-3"])
        )
    );

    // Filters combine.
    assert_eq!(list("model=infusion-pump"), ["pump-n1", "pump-s1"]);
    assert_eq!(list("site=north"), ["mon-n1", "pump-n1"]);
    assert_eq!(list("group=icu&site=south"), ["pump-s1"]);
    assert_eq!(list("group=canary"), ["pump-n1"]);
    assert!(list("model=infusion-pump&group=ward-3").is_empty());
    let r = s.curl(&[
        "-H",
        &bearer(&viewer),
        &s.operator_url("/api/v1/devices?colour=red"),
    ]);
    assert_eq!(
        r.status, 400,
        "an unknown filter is refused, not ignored: {r:?}"
    );

    // A patch changes only the fields it names.
    let r = patch(&enroller, "pump-s1", r#"{"site":"north","groups":[]}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let d = json(&r);
    assert_eq!(
        (&d["model"], &d["hardware_id"], &d["site"], &d["groups"]),
        (
            &Value::from("infusion-pump"),
            &Value::from("acme-pump-r2"),
            &Value::from("north"),
            &serde_json::json!([])
        )
    );
    assert_eq!(list("site=north"), ["mon-n1", "pump-n1", "pump-s1"]);
    assert_eq!(list("group=icu"), ["pump-n1"]);

    // Refusals: bad values (named, nothing stored), unknown fields, unknown devices, a viewer.
    let r = patch(&admin, "pump-n1", r#"{"site":"a\nb"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("control character"), "{r:?}");
    let r = patch(&admin, "pump-n1", r#"{"colour":"red"}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("colour"), "{r:?}");
    let r = post_token(&admin, r#"{"device":"pump-x","groups":[""]}"#);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("group \\\"\\\" is empty"), "{r:?}");
    assert_eq!(
        s.curl(&[
            "-H",
            &bearer(&viewer),
            &s.operator_url("/api/v1/devices/pump-x")
        ])
        .status,
        404,
        "a refused registration stores nothing"
    );
    assert_eq!(patch(&admin, "ghost", r#"{"site":"x"}"#).status, 404);
    assert_eq!(patch(&viewer, "pump-n1", r#"{"site":"x"}"#).status, 403);
    assert_eq!(list("site=x").len(), 0);
    // A device cannot change its own inventory: the action does not apply to devices.
    let out = medsec()
        .args([
            "policy",
            "check",
            "--device",
            "pump-n1",
            "--action",
            "device.update",
        ])
        .args(["--resource", "device:pump-n1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.starts_with("DENY"), "{said}");

    // The command line sees and changes the same inventory.
    let table = ok(medsec()
        .args(["fleet", "device", "list", "--group", "canary"])
        .args(s.location()));
    assert!(
        table.contains("pump-n1") && !table.contains("pump-s1"),
        "{table}"
    );
    ok(medsec()
        .args(["fleet", "device", "update", "pump-n1", "--no-groups"])
        .args(s.location()));
    assert!(list("group=canary").is_empty());
    let out = medsec()
        .args(["fleet", "device", "update", "ghost", "--site", "x"])
        .args(s.location())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no device \"ghost\""));

    // Every change is in the audit log with what changed and who changed it.
    let e = s.audited(&admin, "the API patch", |e| {
        field(e, "action") == "device.update" && has(e, "detail", "site=\"north\"")
    });
    assert!(field(&e["event"], "principal").contains("erin"), "{e}");
    s.audited(&admin, "the CLI patch", |e| {
        field(e, "action") == "device.update" && has(e, "detail", "groups=[]")
    });
    s.audited(&admin, "the viewer's refusal", |e| {
        field(e, "action") == "device.update"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("victor")
    });
    s.audited(&admin, "inventory given with a token", |e| {
        field(e, "action") == "token.create" && has(e, "detail", "hardware_id=\"acme-pump-r2\"")
    });
}

#[test]
fn signed_version_reports_set_the_installed_version_and_refuse_forgery_and_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    let bearer = format!("Authorization: Bearer {admin}");
    s.enrol("pump-a");
    s.enrol("pump-b");
    let nonce = |as_device: &str, for_device: &str| -> String {
        let r = s.report_nonce(as_device, for_device);
        assert_eq!(r.status, 201, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["nonce"].as_str().unwrap().to_owned()
    };
    let payload = |device: &str, nonce: &str, version: &str, counter: i64| {
        format!(
            r#"{{"device":"{device}","nonce":"{nonce}","version":"{version}","release_counter":{counter}}}"#
        )
    };
    let device = |id: &str| -> Value {
        let r = s.curl(&[
            "-H",
            &bearer,
            &s.operator_url(&format!("/api/v1/devices/{id}")),
        ]);
        serde_json::from_str(&r.body).unwrap()
    };

    // The device signs with the key only it holds (openssl here), over its own mTLS connection.
    let n = nonce("pump-a", "pump-a");
    let good = s.sign_report("pump-a", &payload("pump-a", &n, "1.1.0", 11));
    let r = s.put_version("pump-a", "pump-a", &good);
    assert_eq!(r.status, 204, "{r:?}");
    let a = device("pump-a");
    assert_eq!(
        (
            a["installed_version"].as_str(),
            a["release_counter"].as_i64()
        ),
        (Some("1.1.0"), Some(11))
    );

    // Replaying the very same signed report is refused, and changes nothing.
    let r = s.put_version("pump-a", "pump-a", &good);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("replayed report"), "{r:?}");

    // pump-b presents pump-a's signed report as its own: the signature is not by pump-b's key.
    let nb = nonce("pump-b", "pump-b");
    let stolen = s.sign_report("pump-a", &payload("pump-b", &nb, "9.9.9", 99));
    let r = s.put_version("pump-b", "pump-b", &stolen);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("does not verify"), "{r:?}");
    // pump-b signs a report naming pump-a: refused by the device check.
    let misnamed = s.sign_report("pump-b", &payload("pump-a", &nb, "9.9.9", 99));
    let r = s.put_version("pump-b", "pump-b", &misnamed);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains(r#"signed for device \"pump-a\""#), "{r:?}");
    // pump-b reports on pump-a's resource, or asks for its nonce: Cedar says no.
    assert_eq!(s.put_version("pump-b", "pump-a", &misnamed).status, 403);
    assert_eq!(s.report_nonce("pump-b", "pump-a").status, 403);
    // pump-b uses a nonce issued to pump-a.
    let na = nonce("pump-a", "pump-a");
    let borrowed = s.sign_report("pump-b", &payload("pump-b", &na, "9.9.9", 99));
    let r = s.put_version("pump-b", "pump-b", &borrowed);
    assert_eq!(r.status, 409, "{r:?}");
    // The payload altered after signing.
    let mut tampered: Value =
        serde_json::from_str(&s.sign_report("pump-b", &payload("pump-b", &nb, "2.0.0", 20)))
            .unwrap();
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        tampered["payload"] = Value::from(b64.encode(payload("pump-b", &nb, "2.0.1", 20)));
    }
    let r = s.put_version("pump-b", "pump-b", &tampered.to_string());
    assert_eq!(r.status, 400, "{r:?}");
    // None of that moved pump-b.
    let b = device("pump-b");
    assert_eq!(b["installed_version"], "");
    // Its honest report with the still-unused nonce goes through.
    let r = s.put_version(
        "pump-b",
        "pump-b",
        &s.sign_report("pump-b", &payload("pump-b", &nb, "2.0.0", 20)),
    );
    assert_eq!(r.status, 204, "{r:?}");

    // A report with a lower release counter is kept (it is what runs) and flagged.
    let r = s.put_version(
        "pump-a",
        "pump-a",
        &s.sign_report("pump-a", &payload("pump-a", &na, "1.0.0", 10)),
    );
    assert_eq!(r.status, 204, "{r:?}");
    s.audited(&admin, "the rollback flag", |e| {
        field(e, "kind") == "version-report" && has(e, "detail", "went DOWN from 11")
    });

    // Operators see the history, and anyone can re-check a report with openssl alone.
    let r = s.curl(&[
        "-H",
        &bearer,
        &s.operator_url("/api/v1/devices/pump-a/versions"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let history: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| h["version"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1.0.0", "1.1.0"]
    );
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let first = &history[1];
        let mut message = b"medsec version report v1\n".to_vec();
        message.extend(b64.decode(first["payload"].as_str().unwrap()).unwrap());
        std::fs::write(s.work.join("kept.msg"), message).unwrap();
        std::fs::write(
            s.work.join("kept.sig"),
            b64.decode(first["signature"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        std::fs::write(
            s.work.join("kept.der"),
            b64.decode(first["certificate"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        openssl(
            &s.work,
            &[
                "x509", "-inform", "DER", "-in", "kept.der", "-pubkey", "-noout", "-out",
                "kept.pub",
            ],
        );
        let ok = openssl(
            &s.work,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "kept.pub",
                "-signature",
                "kept.sig",
                "kept.msg",
            ],
        );
        assert!(ok.contains("Verified OK"), "{ok}");
    }

    // Every refusal is in the audit log, with its reason.
    for (what, text) in [
        ("the replay", "replayed report"),
        ("the stolen signature", "does not verify"),
        ("the misnamed report", "signed for device"),
    ] {
        s.audited(&admin, what, |e| {
            field(e, "kind") == "version-report"
                && field(e, "decision") == "deny"
                && has(e, "detail", text)
        });
    }
    s.audited(&admin, "pump-b reaching for pump-a", |e| {
        field(e, "action") == "device.report"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("pump-b")
            && field(e, "resource").contains("pump-a")
    });
}

#[test]
fn campaigns_are_planned_from_the_inventory_and_controlled_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    publish_image_repository(tmp.path());
    let s = start(
        tmp.path(),
        &[],
        &[
            "--config",
            &tmp.path().join("medsec.toml").display().to_string(),
        ],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    let release = s.operator_token("rick", "release", "1h");
    let security = s.operator_token("sam", "security", "1h");
    let viewer = s.operator_token("victor", "viewer", "1h");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    // 40 pumps on two sites and 10 monitors, registered with their inventory.
    for i in 0..50 {
        let (id, model, site, hardware_id) = if i < 40 {
            (
                format!("pump-{i:02}"),
                "infusion-pump",
                if i % 2 == 0 { "north" } else { "south" },
                "pump-rev-b",
            )
        } else {
            (format!("mon-{i:02}"), "patient-monitor", "north", "mon-x")
        };
        ok(medsec()
            .args([
                "fleet", "token", "create", "--device", &id, "--model", model, "--site", site,
            ])
            .args(["--hardware-id", hardware_id])
            .args(s.location()));
    }
    let post = |token: &str, path: &str, body: &str| {
        s.curl(&[
            "-H",
            &bearer(token),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url(path),
        ])
    };
    let get = |token: &str, path: &str| s.curl(&["-H", &bearer(token), &s.operator_url(path)]);
    let body = r#"{
        "spec": {
            "name": "pump-fw-1.1",
            "release": {"version": "1.1.0", "release_counter": 11, "target": "pump-1.1.0.img"},
            "canary": {"count": 4},
            "growth": 3,
            "max_failure_rate": 0.25,
            "windows": {"north": {"cron": "0 2 * * *", "duration_minutes": 180, "time_zone": "Europe/Berlin"}}
        },
        "selection": {"model": "infusion-pump"}
    }"#;

    // Who may plan: a release manager, not a viewer or a security officer.
    assert_eq!(post(&viewer, "/api/v1/campaigns", body).status, 403);
    assert_eq!(post(&security, "/api/v1/campaigns", body).status, 403);
    let r = post(&release, "/api/v1/campaigns", body);
    assert_eq!(r.status, 201, "{r:?}");
    let c: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(c["status"]["status"], "created");
    let sizes: Vec<u64> = c["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["size"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        [4, 12, 24],
        "40 pumps: a canary of 4, then waves growing threefold"
    );
    // The same name again is a conflict; bad specs and selections name the problem.
    let r = post(&release, "/api/v1/campaigns", body);
    assert_eq!(r.status, 409, "{r:?}");
    for (bad, want) in [
        (body.replace("0.25", "2.5"), "max_failure_rate"),
        (
            body.replace("Europe/Berlin", "Mars/Olympus"),
            "unknown time zone",
        ),
        (body.replace("0 2 * * *", "0 25 * * *"), "cron"),
        (body.replace("pump-fw-1.1", "pump fw"), "campaign name"),
        (
            body.replace(
                r#"{"model": "infusion-pump"}"#,
                r#"{"model": "ventilator"}"#,
            ),
            "matched no device",
        ),
        (
            body.replace(r#"{"model": "infusion-pump"}"#, r#"{}"#),
            "selection is empty",
        ),
        (
            body.replace(r#"{"model": "infusion-pump"}"#, r#"{"devices": ["ghost"]}"#),
            "\\\"ghost\\\" in the selection does not exist",
        ),
        (
            body.replace(r#""growth": 3"#, r#""colour": 3"#),
            "unknown field",
        ),
    ] {
        let r = post(&release, "/api/v1/campaigns", &bad);
        assert_eq!(r.status, 400, "{want}: {r:?}");
        assert!(r.body.contains(want), "{want}: {r:?}");
    }

    // Control: start needs campaign.start; security may stop but not start.
    assert_eq!(
        post(&security, "/api/v1/campaigns/pump-fw-1.1/start", "").status,
        403
    );
    let r = post(&release, "/api/v1/campaigns/pump-fw-1.1/start", "");
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&security, "/api/v1/campaigns/pump-fw-1.1/pause", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        post(&security, "/api/v1/campaigns/pump-fw-1.1/resume", "").status,
        403
    );
    let r = post(&release, "/api/v1/campaigns/pump-fw-1.1/start", "");
    assert_eq!(
        r.status, 409,
        "a started campaign does not start again: {r:?}"
    );
    assert!(r.body.contains("campaign is paused: cannot start"), "{r:?}");
    assert_eq!(
        post(&release, "/api/v1/campaigns/pump-fw-1.1/resume", "").status,
        200
    );
    assert_eq!(
        post(&release, "/api/v1/campaigns/pump-fw-1.1/explode", "").status,
        404
    );
    assert_eq!(
        post(&release, "/api/v1/campaigns/nope/start", "").status,
        404
    );

    // Anyone with campaign.read sees progress per wave and per device.
    let r = get(&viewer, "/api/v1/campaigns/pump-fw-1.1?devices=true");
    assert_eq!(r.status, 200, "{r:?}");
    let c: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(c["status"]["status"], "running");
    assert_eq!(c["waves"][0]["open"], true);
    assert_eq!(c["waves"][1]["open"], false);
    let devices = c["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 40);
    assert!(
        devices
            .iter()
            .all(|d| d["device"].as_str().unwrap().starts_with("pump-"))
    );
    assert!(devices.iter().all(|d| d["progress"]["state"] == "waiting"));
    let list = get(&viewer, "/api/v1/campaigns");
    assert!(list.body.contains("pump-fw-1.1"), "{list:?}");

    // The command line plans and controls too, on the same store.
    let out = ok(medsec()
        .args([
            "campaign",
            "create",
            "--name",
            "mon-fw-2.0",
            "--version",
            "2.0.0",
        ])
        .args([
            "--release-counter",
            "20",
            "--target",
            "mon-2.0.0.img",
            "--site",
            "north",
        ])
        .args(["--model", "patient-monitor", "--canary", "20%"])
        .args(["--window", "north|0 1 * * SAT,SUN|120|Europe/Berlin"])
        .args(s.location()));
    assert!(out.contains("10 device(s), waves of 2, 4, 4"), "{out}");
    ok(medsec()
        .args(["campaign", "start", "mon-fw-2.0"])
        .args(s.location()));
    let status = ok(medsec()
        .args(["campaign", "status", "mon-fw-2.0"])
        .args(s.location()));
    assert!(status.contains("campaign mon-fw-2.0: running"), "{status}");
    assert!(status.contains("wave 1"), "{status}");
    ok(medsec()
        .args(["campaign", "abort", "mon-fw-2.0"])
        .args(s.location()));
    let out = medsec()
        .args(["campaign", "resume", "mon-fw-2.0"])
        .args(s.location())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("campaign is aborted: cannot resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ok(medsec().args(["campaign", "list"]).args(s.location()));
    assert!(
        listed.contains("mon-fw-2.0") && listed.contains("aborted"),
        "{listed}"
    );
    let r = get(&viewer, "/api/v1/campaigns/mon-fw-2.0");
    assert!(r.body.contains(r#""status":"aborted""#), "{r:?}");

    // Every change and refusal is audited.
    s.audited(&admin, "the plan", |e| {
        field(e, "action") == "campaign.create"
            && has(e, "detail", "40 device(s) in 3 wave(s)")
            && field(e, "principal").contains("rick")
    });
    s.audited(&admin, "the security officer's pause", |e| {
        field(e, "action") == "campaign.pause" && field(e, "principal").contains("sam")
    });
    s.audited(&admin, "the refused start", |e| {
        field(e, "action") == "campaign.start"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("sam")
    });
    s.audited(&admin, "the CLI abort", |e| {
        field(e, "action") == "campaign.abort" && has(e, "detail", "on the command line")
    });
}

/// A device's view of the two repositories, through medsec's TUF client over mutual TLS.
struct DeviceClient<'s> {
    server: &'s Running,
    name: String,
}

impl DeviceClient<'_> {
    fn transport(&self) -> Box<dyn medsec_tuf_client::Transport> {
        let read = |f: &str| std::fs::read(self.server.work.join(f)).unwrap();
        Box::new(
            medsec_tuf_client::HttpTransport::with_identity(
                &std::fs::read(self.server.ca("chain.pem")).unwrap(),
                &read(&format!("{}.pem", self.name)),
                &read(&format!("{}.key", self.name)),
                Duration::from_secs(20),
            )
            .unwrap(),
        )
    }

    fn dir(&self, which: &str) -> PathBuf {
        self.server.work.join(format!("{}-{which}", self.name))
    }

    /// Refreshes the device's director metadata (trusting the director root on first use over
    /// the authenticated channel) and returns what it names.
    fn director_targets(&self) -> std::collections::BTreeMap<String, medsec_tuf::TargetFile> {
        let dir = self.dir("director");
        if !dir.join("root.json").exists() {
            let r = self.server.curl(&[
                "--cert",
                &format!("{}.pem", self.name),
                "--key",
                &format!("{}.key", self.name),
                &self
                    .server
                    .device_url(&format!("/director/{}/root.json", self.name)),
            ]);
            assert_eq!(r.status, 200, "{r:?}");
            medsec_tuf_client::Updater::init(&dir, r.body.as_bytes()).unwrap();
        }
        let mut u = medsec_tuf_client::Updater::new(
            &dir,
            &self.server.device_url(&format!("/director/{}/", self.name)),
            None,
            self.transport(),
            medsec_tuf_client::UpdaterConfig::default(),
        )
        .unwrap();
        u.refresh().unwrap();
        u.trusted().targets("targets").unwrap().targets.clone()
    }

    /// The image repository's updater (root from the published repository, as at the factory).
    fn image(&self) -> medsec_tuf_client::Updater {
        let dir = self.dir("image");
        if !dir.join("root.json").exists() {
            let root = std::fs::read(self.server.work.join("www/metadata/1.root.json")).unwrap();
            medsec_tuf_client::Updater::init(&dir, &root).unwrap();
        }
        medsec_tuf_client::Updater::new(
            &dir,
            &self.server.device_url("/repo/metadata/"),
            Some(&self.server.device_url("/repo/targets/")),
            self.transport(),
            medsec_tuf_client::UpdaterConfig::default(),
        )
        .unwrap()
    }

    /// Reports what it runs, with the outcome of an install, as a signed version report.
    fn report(&self, version: &str, counter: i64, install: Option<Value>) -> Reply {
        let r = self.server.report_nonce(&self.name, &self.name);
        assert_eq!(r.status, 201, "{r:?}");
        let nonce: Value = serde_json::from_str(&r.body).unwrap();
        let mut payload = serde_json::json!({
            "device": self.name, "nonce": nonce["nonce"], "version": version,
            "release_counter": counter,
        });
        if let Some(i) = install {
            payload["install"] = i;
        }
        let envelope = self.server.sign_report(&self.name, &payload.to_string());
        self.server.put_version(&self.name, &self.name, &envelope)
    }
}

/// A kept-alive TLS connection to `addr`, presenting `name`'s certificate when given.
fn keep_alive(
    server: &Running,
    addr: &str,
    name: Option<&str>,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server.ca("root.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match name {
        Some(name) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(server.work.join(format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
            let key =
                PrivateKeyDer::from_pem_file(server.work.join(format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Sends one request on a kept-alive connection and reads its answer by Content-Length; the
/// status, or an error when the server closed the connection.
fn request_on(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    head: &str,
) -> std::io::Result<u16> {
    tls.write_all(head.as_bytes())?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body)?;
    Ok(text[9..12].parse().unwrap())
}

#[test]
fn enrolled_devices_keep_idle_connections_that_the_header_timeout_closes_for_others() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__HEADER_TIMEOUT_MS", "300"),
            ("MEDSEC_LIMITS__DEVICE_IDLE_TIMEOUT_MS", "20000"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-1");
    let poll = format!(
        "GET /director/pump-1/timestamp.json HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.device
    );
    let mut device = keep_alive(&s, &s.device, Some("pump-1"));
    assert_eq!(request_on(&mut device, &poll).unwrap(), 200);
    let list = format!(
        "GET /api/v1/devices HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin}\r\n\r\n",
        s.operator
    );
    let mut operator = keep_alive(&s, &s.operator, None);
    assert_eq!(request_on(&mut operator, &list).unwrap(), 200);
    std::thread::sleep(Duration::from_millis(1_500));
    // The device's connection outlived the header timeout; the operator's did not.
    assert_eq!(request_on(&mut device, &poll).unwrap(), 200);
    assert!(request_on(&mut operator, &list).is_err());
}

#[test]
fn a_no_change_poll_is_one_request_and_repeated_polls_are_summarised_in_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[("MEDSEC_LIMITS__AUDIT_REPEAT_WINDOW_SECS", "2")],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-1");
    let poll = || {
        let r = s.curl(&[
            "-i",
            "--cert",
            "pump-1.pem",
            "--key",
            "pump-1.key",
            &s.device_url("/director/pump-1/timestamp.json"),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        // The newest director root's version rides along, so the agent needs no root probe.
        assert!(
            r.body
                .to_ascii_lowercase()
                .contains("\r\ntuf-root-version: 1\r\n"),
            "{}",
            r.body
        );
    };
    for _ in 0..4 {
        poll();
    }
    let polls = |s: &Running| -> Vec<Value> {
        s.audit(&admin)
            .into_iter()
            .map(|e| e["event"].clone())
            .filter(|e| field(e, "action") == "update.fetch" && field(e, "decision") == "allow")
            .collect()
    };
    assert_eq!(polls(&s).len(), 1, "{:?}", polls(&s));
    // After the window the next poll is logged with the count of those in between.
    std::thread::sleep(Duration::from_millis(2_100));
    poll();
    let logged = polls(&s);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        field(&logged[1], "detail").starts_with("3 identical allowed request(s) since "),
        "{logged:?}"
    );
    // A refusal is never summarised: each one is logged.
    s.enrol("pump-2");
    for _ in 0..3 {
        let r = s.curl(&[
            "--cert",
            "pump-2.pem",
            "--key",
            "pump-2.key",
            &s.device_url("/director/pump-1/timestamp.json"),
        ]);
        assert_eq!(r.status, 403, "{r:?}");
    }
    let denied = s
        .audit(&admin)
        .into_iter()
        .filter(|e| {
            field(&e["event"], "action") == "update.fetch"
                && field(&e["event"], "decision") == "deny"
        })
        .count();
    assert_eq!(denied, 3);
}

#[test]
fn the_director_offers_campaign_releases_that_devices_verify_against_the_image_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let www = publish_image_repository(tmp.path());
    // Campaigns of at most two devices, so that the size limit can be crossed with three.
    let s = start(
        tmp.path(),
        &[("MEDSEC_LIMITS__MAX_CAMPAIGN_DEVICES", "2")],
        &[
            "--config",
            &tmp.path().join("medsec.toml").display().to_string(),
        ],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    let bearer = format!("Authorization: Bearer {admin}");
    for (device, hardware_id) in [
        ("pump-a", "pump-rev-b"),
        ("pump-b", "pump-rev-b"),
        ("mon-a", "mon-x"),
    ] {
        s.enrol(device);
        ok(medsec()
            .args([
                "fleet",
                "device",
                "update",
                device,
                "--hardware-id",
                hardware_id,
            ])
            .args(s.location()));
    }
    let create = |body: &str| {
        s.curl(&[
            "-H",
            &bearer,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &s.operator_url("/api/v1/campaigns"),
        ])
    };
    let control = |name: &str, what: &str| {
        let r = s.curl(&[
            "-X",
            "POST",
            "-H",
            &bearer,
            &s.operator_url(&format!("/api/v1/campaigns/{name}/{what}")),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
    };
    let campaign = |name: &str| -> Value {
        let r = s.curl(&[
            "-H",
            &bearer,
            &s.operator_url(&format!("/api/v1/campaigns/{name}?devices=true")),
        ]);
        serde_json::from_str(&r.body).unwrap()
    };
    let spec = |name: &str, version: &str, counter: u32, target: &str, devices: &str| {
        format!(
            r#"{{"spec": {{"name": "{name}", "release": {{"version": "{version}", "release_counter": {counter}, "target": "{target}"}},
                "canary": {{"count": 1}}, "max_failure_rate": 0, "advance_when_finished": 1}},
               "selection": {{"devices": {devices}}}}}"#
        )
    };

    // A campaign must name a release the image repository signs, as it signs it, for the
    // hardware of every selected device.
    for (body, want) in [
        (
            spec("x", "9.9.9", 99, "pump-9.9.9.img", r#"["pump-a"]"#),
            "is not in the image repository",
        ),
        (
            spec("x", "1.1.0", 12, "pump-1.1.0.img", r#"["pump-a"]"#),
            "release counter 11, not 12",
        ),
        (
            spec("x", "1.1.0", 11, "pump-1.1.0.img", r#"["pump-a", "mon-a"]"#),
            "hardware id \"mon-x\"",
        ),
        // More devices than limits.max_campaign_devices, listed or selected by a filter.
        (
            spec(
                "x",
                "1.1.0",
                11,
                "pump-1.1.0.img",
                r#"["pump-a", "pump-b", "mon-a"]"#,
            ),
            "more than 2 devices (limits.max_campaign_devices)",
        ),
        (
            spec("x", "1.1.0", 11, "pump-1.1.0.img", "[]")
                .replace(r#""devices": []"#, r#""all": true"#),
            "more than 2 devices (limits.max_campaign_devices)",
        ),
    ] {
        let r = create(&body);
        assert_eq!(r.status, 400, "{want}: {r:?}");
        assert!(r.body.contains(&want.replace('"', "\\\"")), "{want}: {r:?}");
    }
    // Without an image repository there is nothing to deliver: refused, not planned.
    let out = medsec()
        .args(["campaign", "create", "--name", "x", "--version", "1.1.0"])
        .args([
            "--release-counter",
            "11",
            "--target",
            "pump-1.1.0.img",
            "--device",
            "pump-a",
        ])
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no image_repository is configured"), "{err}");
    let r = create(&spec(
        "fw-1.1",
        "1.1.0",
        11,
        "pump-1.1.0.img",
        r#"["pump-a", "pump-b"]"#,
    ));
    assert_eq!(r.status, 201, "{r:?}");

    let a = DeviceClient {
        server: &s,
        name: "pump-a".into(),
    };
    let b = DeviceClient {
        server: &s,
        name: "pump-b".into(),
    };
    // Not started: the director names nothing.
    assert!(a.director_targets().is_empty());
    assert!(b.director_targets().is_empty());

    // Started: the canary, and only the canary, is told to install 1.1.0.
    control("fw-1.1", "start");
    let c = campaign("fw-1.1");
    let canary_id = canary_of(&c);
    let (canary, other) = if canary_id == "pump-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let told = canary.director_targets();
    let entry = &told["pump-1.1.0.img"];
    assert_eq!(
        entry.custom.as_ref().unwrap()["medsec"]["hardware_id"],
        "pump-rev-b"
    );
    assert_eq!(
        entry.custom.as_ref().unwrap()["medsec"]["release_counter"],
        11
    );
    assert_eq!(
        entry.custom.as_ref().unwrap()["medsec"]["campaign"],
        "fw-1.1"
    );
    assert!(other.director_targets().is_empty(), "wave 1 is not open");
    let c = campaign("fw-1.1");
    assert_eq!(progress_of(&c, &canary.name), "offered");
    s.audited(&admin, "the offer", |e| {
        field(e, "action") == "campaign.offer" && has(e, "detail", "offered pump-1.1.0.img")
    });

    // The device checks the director against the image repository, then downloads.
    let mut image = canary.image();
    let signed = image.get_target_info("pump-1.1.0.img").unwrap();
    let ok_ = medsec_tuf::uptane::agree("pump-1.1.0.img", entry, Some(&signed), "pump-rev-b", 10)
        .unwrap();
    assert_eq!((ok_.version.as_str(), ok_.release_counter), ("1.1.0", 11));
    std::fs::create_dir_all(canary.dir("download")).unwrap();
    let got = image
        .download_target(&signed, "pump-1.1.0.img", &canary.dir("download"), None)
        .unwrap();
    assert_eq!(std::fs::read(got).unwrap(), vec![1u8; 70_000]);
    // Ranges: an interrupted download resumes where it stopped.
    let hashed = format!("{}.pump-1.1.0.img", signed.hashes["sha256"]);
    let r = s.curl(&[
        "--cert",
        &format!("{}.pem", canary.name),
        "--key",
        &format!("{}.key", canary.name),
        "-r",
        "69990-",
        &s.device_url(&format!("/repo/targets/{hashed}")),
    ]);
    assert_eq!((r.status, r.body.len()), (206, 10), "{r:?}");
    assert!(www.join("targets").join(&hashed).exists());

    // A no-change poll fetches the timestamp: small, since only targets carries the hybrid
    // signature.
    let ts = s.curl(&[
        "--cert",
        &format!("{}.pem", canary.name),
        "--key",
        &format!("{}.key", canary.name),
        &s.device_url(&format!("/director/{}/timestamp.json", canary.name)),
    ]);
    assert_eq!(ts.status, 200, "{ts:?}");
    assert!(ts.body.len() < 1024, "{} bytes: {}", ts.body.len(), ts.body);
    // A device reads only its own director metadata; nothing outside the repository is served.
    let peek = s.curl(&[
        "--cert",
        &format!("{}.pem", other.name),
        "--key",
        &format!("{}.key", other.name),
        &s.device_url(&format!("/director/{}/targets.json", canary.name)),
    ]);
    assert_eq!(peek.status, 403, "{peek:?}");
    s.audited(&admin, "the refused peek", |e| {
        field(e, "action") == "update.fetch"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains(&other.name)
    });
    for path in [
        "/repo/../medsec.toml",
        "/repo/targets/../../medsec.toml",
        "/repo/keys/x",
    ] {
        let r = s.curl(&[
            "--path-as-is",
            "--cert",
            &format!("{}.pem", other.name),
            "--key",
            &format!("{}.key", other.name),
            &s.device_url(path),
        ]);
        assert!(matches!(r.status, 400 | 404), "{path}: {r:?}");
    }

    // A stolen director key alone installs nothing: metadata it signs verifies as director
    // metadata, but an image the image repository does not sign, or an older release, is refused.
    let stolen = |name: &str| {
        let pem = std::fs::read_to_string(s.data.join("director").join(name)).unwrap();
        medsec_crypto::keyfile::decode_private(&pem, || None).unwrap()
    };
    let (online, timestamp_key) = (stolen("online.key"), stolen("timestamp.key"));
    let forge = |name: &str, info: medsec_tuf::TargetFile| {
        let now = time::OffsetDateTime::now_utc();
        let exp = medsec_tuf::Expires::from_datetime(now + time::Duration::days(1));
        let mut t = medsec_tuf::Targets::new(1000, exp);
        t.targets.insert(name.into(), info);
        let targets = medsec_tuf::sign(&t, &[&online]).unwrap();
        let mut snap = medsec_tuf::Snapshot::new(1000, exp);
        snap.meta.insert(
            "targets.json".into(),
            medsec_tuf::MetaFile {
                version: 1000,
                length: None,
                hashes: None,
            },
        );
        let snapshot = medsec_tuf::sign(&snap, &[&timestamp_key]).unwrap();
        let ts = medsec_tuf::Timestamp::new(
            1000,
            exp,
            medsec_tuf::MetaFile {
                version: 1000,
                length: None,
                hashes: None,
            },
        );
        let timestamp = medsec_tuf::sign(&ts, &[&timestamp_key]).unwrap();
        let root = std::fs::read(s.data.join("director/1.root.json")).unwrap();
        let mut trusted = medsec_tuf::TrustedSet::new(&root, now).unwrap();
        trusted.update_timestamp(&timestamp).unwrap();
        trusted.update_snapshot(&snapshot, false).unwrap();
        trusted.update_targets(&targets).unwrap().targets[name].clone()
    };
    let evil = medsec_tuf::TargetFile {
        length: 5,
        hashes: [("sha256".to_owned(), "00".repeat(32))].into(),
        custom: Some(
            serde_json::json!({"medsec": {"hardware_id": "pump-rev-b", "release_counter": 99}}),
        ),
    };
    let forged = forge("evil.img", evil);
    let e = medsec_tuf::uptane::agree("evil.img", &forged, None, "pump-rev-b", 11).unwrap_err();
    assert!(e.to_string().contains("does not sign"), "{e}");
    let old = image.get_target_info("pump-1.0.0.img").unwrap();
    let mut rollback = old.clone();
    rollback.custom =
        Some(serde_json::json!({"medsec": {"hardware_id": "pump-rev-b", "release_counter": 10}}));
    let forged = forge("pump-1.0.0.img", rollback);
    let e = medsec_tuf::uptane::agree("pump-1.0.0.img", &forged, Some(&old), "pump-rev-b", 11)
        .unwrap_err();
    assert!(e.to_string().contains("rollback"), "{e}");
    // The same stolen key cannot make a device believe it is another board either.
    let e =
        medsec_tuf::uptane::agree("pump-1.1.0.img", entry, Some(&signed), "mon-x", 10).unwrap_err();
    assert!(e.to_string().contains("hardware id"), "{e}");

    // The canary's health check fails: it rolls back, says so, and the campaign halts.
    let r = canary.report(
        "1.0.0",
        10,
        Some(
            serde_json::json!({"campaign": "fw-1.1", "target": "pump-1.1.0.img",
            "outcome": "failed", "reason": "health check failed: rolled back"}),
        ),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let c = campaign("fw-1.1");
    assert_eq!(c["status"]["status"], "halted", "{c}");
    assert_eq!(progress_of(&c, &canary.name), "failed");
    assert!(
        canary.director_targets().is_empty(),
        "a halted campaign offers nothing"
    );
    assert!(other.director_targets().is_empty());
    s.audited(&admin, "the halt", |e| {
        field(e, "action") == "campaign.status" && has(e, "detail", "halted")
    });

    // 1.2.0: the canary succeeds, the next wave opens, the other pump defers while in clinical
    // use and installs when idle; the campaign completes.
    let r = create(&spec(
        "fw-1.2",
        "1.2.0",
        12,
        "pump-1.2.0.img",
        r#"["pump-a", "pump-b"]"#,
    ));
    assert_eq!(r.status, 201, "{r:?}");
    control("fw-1.2", "start");
    let install = |outcome: &str| {
        serde_json::json!({"campaign": "fw-1.2", "target": "pump-1.2.0.img", "outcome": outcome,
            "reason": if outcome == "deferred" { "therapy running" } else { "" }})
    };
    let c = campaign("fw-1.2");
    let first = canary_of(&c);
    let (first, second) = if first == "pump-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(first.director_targets().contains_key("pump-1.2.0.img"));
    // A success claimed while still running the old release counts as a failure... of a
    // campaign that is not asking this device yet: ignored, the campaign is unchanged.
    assert_eq!(
        second
            .report("1.0.0", 10, Some(install("succeeded")))
            .status,
        204
    );
    assert_eq!(progress_of(&campaign("fw-1.2"), &second.name), "waiting");
    assert_eq!(
        first.report("1.2.0", 12, Some(install("succeeded"))).status,
        204
    );
    // Repeated after a crash: changes nothing.
    assert_eq!(
        first.report("1.2.0", 12, Some(install("succeeded"))).status,
        204
    );
    assert!(
        first.director_targets().is_empty(),
        "done: nothing more to install"
    );
    assert!(second.director_targets().contains_key("pump-1.2.0.img"));
    assert_eq!(
        second.report("1.0.0", 10, Some(install("deferred"))).status,
        204
    );
    let c = campaign("fw-1.2");
    assert_eq!(progress_of(&c, &second.name), "deferred");
    assert_eq!(c["status"]["status"], "running");
    // Deferred devices keep their target (they install when idle) and stay deferred.
    assert!(second.director_targets().contains_key("pump-1.2.0.img"));
    assert_eq!(progress_of(&campaign("fw-1.2"), &second.name), "deferred");
    assert_eq!(
        second
            .report("1.2.0", 12, Some(install("succeeded")))
            .status,
        204
    );
    let c = campaign("fw-1.2");
    assert_eq!(c["status"]["status"], "completed", "{c}");
    // What they run is what they signed.
    let r = s.curl(&["-H", &bearer, &s.operator_url("/api/v1/devices/pump-a")]);
    let d: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (
            d["installed_version"].as_str(),
            d["release_counter"].as_i64()
        ),
        (Some("1.2.0"), Some(12))
    );
}

#[test]
fn the_audit_checks_run_on_their_own_schedule_and_log_each_new_finding_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Device certificates of 3 days: inside the 7-day warning of the expiry check.
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_DEFENDER_AUDIT_INTERVAL_SECS", "1"),
            ("MEDSEC_DEVICE_CERT_DAYS", "3"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-x");
    let expiring = |e: &Value| {
        field(e, "action") == "defender.audit"
            && field(e, "resource").contains("pump-x")
            && has(e, "detail", "device-certificate-expiring")
    };
    s.audited(&admin, "the scheduled finding", expiring);
    // Later runs summarise, and do not log the unchanged finding again.
    let runs = |log: &[Value]| {
        log.iter()
            .filter(|e| {
                field(&e["event"], "action") == "defender.audit"
                    && has(&e["event"], "detail", "scheduled audit checks")
            })
            .count()
    };
    let before = runs(&s.audit(&admin));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while runs(&s.audit(&admin)) < before + 2 {
        assert!(std::time::Instant::now() < deadline, "the schedule stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.audit(&admin);
    assert_eq!(log.iter().filter(|e| expiring(&e["event"])).count(), 1);
}

#[test]
fn a_window_rule_adds_up_failed_logins_across_batches_and_fires_once() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"login_failure_burst": 0, "windows": [
          {"count": {"kind": "security", "name": "login_failed"}, "window_secs": 600, "above": 3, "severity": "high"}]}}}"#,
    )
    .unwrap();
    let policy_env = policy.display().to_string();
    let s = start(tmp.path(), &[("MEDSEC_DEFENDER_POLICY", &policy_env)], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-w2");
    let send = |sequence: i64| {
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [
              {{"kind": "security", "at_ms": 1764748900000, "event": "login_failed"}},
              {{"kind": "security", "at_ms": 1764748901000, "event": "login_failed"}}]}}"#
        );
        let r = s.telemetry(&s.as_device("pump-w2"), "pump-w2", &body, &[]);
        assert_eq!(r.status, 200, "{r:?}");
    };
    let rules = || -> Vec<String> {
        let r = s.curl(&[
            "-H",
            &format!("Authorization: Bearer {admin}"),
            &s.operator_url("/api/v1/devices/pump-w2/alerts"),
        ]);
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["rule"].as_str().unwrap().to_owned())
            .collect()
    };
    send(1);
    assert!(rules().is_empty(), "2 failed logins are not above 3");
    send(2);
    assert_eq!(rules(), vec!["window:login_failed"]);
    send(3);
    assert_eq!(
        rules(),
        vec!["window:login_failed"],
        "fires once per crossing"
    );
}

#[test]
fn sigma_rules_from_a_directory_run_on_every_batch_and_a_bad_rule_stops_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("sigma");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("service-login.yml"),
        r#"title: Service console login on a pump
id: medsec-0001
description: The service console is for the manufacturer's engineers only
logsource:
    product: medsec
    category: device_telemetry
detection:
    selection:
        kind: security
        event: login_succeeded
        detail|contains: service console
    condition: selection
level: high
tags:
    - attack.t0859
"#,
    )
    .unwrap();
    std::fs::write(rules.join("README.txt"), "not a rule").unwrap();
    let dir = rules.display().to_string();
    let s = start(tmp.path(), &[("MEDSEC_DEFENDER_SIGMA_DIR", &dir)], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-s");
    let body = r#"{"sequence": 1, "events": [
        {"kind": "security", "at_ms": 1764748900000, "event": "login_succeeded", "detail": "clinician badge"},
        {"kind": "security", "at_ms": 1764748901000, "event": "login_succeeded", "detail": "service console"}]}"#;
    let r = s.telemetry(&s.as_device("pump-s"), "pump-s", body, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &s.operator_url("/api/v1/devices/pump-s/alerts"),
    ]);
    let alerts: Value = serde_json::from_str(&r.body).unwrap();
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["rule"], "sigma:medsec-0001");
    assert_eq!(alerts[0]["severity"], "high");
    assert_eq!(alerts[0]["technique"]["id"], "T0859");
    assert!(
        alerts[0]["evidence"][0]["observed"]
            .as_str()
            .unwrap()
            .contains("service console")
    );
    drop(s);

    // A rule that does not parse stops the server, naming the file.
    std::fs::write(rules.join("broken.yaml"), "title: [unclosed").unwrap();
    let out = medsec()
        .args(["server", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.1:0",
        ])
        .env("MEDSEC_DEFENDER_SIGMA_DIR", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml"), "{err}");
}

#[test]
fn a_cloned_identity_is_caught_by_its_alternating_address_and_its_changed_mac() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-i");
    s.enrol("pump-j");
    // `from` is the source address (any 127.x reaches the server on loopback).
    let send = |device: &str, sequence: i64, from: &str, mac: &str| {
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [
              {{"kind": "identity", "at_ms": 1764748900000, "mac": "{mac}"}},
              {{"kind": "metric", "at_ms": 1764748900000, "name": "bytes_out", "value": 100}}]}}"#
        );
        let r = s.telemetry(&s.as_device(device), device, &body, &["--interface", from]);
        assert_eq!(
            r.status,
            200,
            "{r:?}\n{}",
            std::fs::read_to_string(s.work.join("server.log")).unwrap_or_default()
        );
    };
    let rules = |device: &str| -> Vec<String> {
        let r = s.curl(&[
            "-H",
            &format!("Authorization: Bearer {admin}"),
            &s.operator_url(&format!("/api/v1/devices/{device}/alerts")),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        let list: Value = serde_json::from_str(&r.body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| a["rule"].as_str().unwrap().to_owned())
            .collect()
    };
    // Normal: one address, one MAC; then a move to a new address (a new lease). No alert.
    send("pump-j", 1, "127.0.0.1", "02:00:00:00:00:0a");
    send("pump-j", 2, "127.0.0.1", "02:00:00:00:00:0A");
    send("pump-i", 1, "127.0.0.1", "02:00:00:00:00:01");
    send("pump-i", 2, "127.0.0.2", "02:00:00:00:00:01");
    assert_eq!(rules("pump-i"), Vec::<String>::new());
    assert_eq!(rules("pump-j"), Vec::<String>::new());
    // Back to the first address while the second is in use: two holders of one certificate.
    send("pump-i", 3, "127.0.0.1", "02:00:00:00:00:01");
    assert_eq!(rules("pump-i"), vec!["identity-address-conflict"]);
    // The clone reports its own MAC.
    send("pump-i", 4, "127.0.0.1", "02:00:00:00:00:99");
    assert_eq!(
        rules("pump-i"),
        vec!["identity-mac-changed", "identity-address-conflict"]
    );
    let r = s.curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &s.operator_url("/api/v1/devices/pump-i/alerts"),
    ]);
    assert!(
        r.body.contains("02:00:00:00:00:99") && r.body.contains("T0849"),
        "{r:?}"
    );
    assert_eq!(rules("pump-j"), Vec::<String>::new());

    // pump-j's network card is replaced. Only a security officer (or an admin) may re-bind it,
    // naming the new MAC and a reason; after that the new MAC is silent and the old one is not.
    let security = s.operator_token("sam", "security", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    let rebind = |token: &str, body: &str| {
        s.operator(
            token,
            "POST",
            "/api/v1/devices/pump-j/identity/rebind",
            Some(body),
        )
    };
    let good = r#"{"mac": "02:00:00:00:00:0B", "reason": "work order 4711: NIC replaced"}"#;
    let r = rebind(&viewer, good);
    assert_eq!(r.status, 403, "{r:?}");
    for (bad, named) in [
        (
            r#"{"mac": "02:00:00:00:00", "reason": "x"}"#,
            "not a MAC address",
        ),
        (
            r#"{"mac": "02:00:00:00:00:0b", "reason": " "}"#,
            "reason must be",
        ),
        (r#"{"mac": "02:00:00:00:00:0b"}"#, "missing field `reason`"),
        (
            r#"{"mac": "02:00:00:00:00:0b", "reason": "x", "by": "me"}"#,
            "unknown field",
        ),
    ] {
        let r = rebind(&security, bad);
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.body.contains(named), "{bad}: {r:?}");
    }
    let r = s.operator(
        &security,
        "POST",
        "/api/v1/devices/pump-none/identity/rebind",
        Some(good),
    );
    assert_eq!(r.status, 404, "{r:?}");
    let r = rebind(&security, good);
    assert_eq!(r.status, 200, "{r:?}");
    let answer: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["value"], "02:00:00:00:00:0b");
    assert_eq!(answer["previous"], "02:00:00:00:00:0a");
    let r = s.operator(&viewer, "GET", "/api/v1/devices/pump-j/identity", None);
    let shown: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        shown["bindings"][0]["value"], "02:00:00:00:00:0b",
        "{shown}"
    );
    send("pump-j", 3, "127.0.0.1", "02:00:00:00:00:0b");
    assert_eq!(rules("pump-j"), Vec::<String>::new());
    send("pump-j", 4, "127.0.0.1", "02:00:00:00:00:0a");
    assert_eq!(rules("pump-j"), vec!["identity-mac-changed"]);
    s.audited(&security, "the re-bind", |e| {
        field(e, "action") == "device.rebind"
            && has(
                e,
                "detail",
                "02:00:00:00:00:0a -> 02:00:00:00:00:0b: work order 4711",
            )
    });
}

#[test]
fn a_baseline_learned_from_stored_telemetry_is_signed_and_explains_what_departs_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    // The server looks for a newer baseline version every second.
    let s = start(
        tmp.path(),
        &[("MEDSEC_DEFENDER_BASELINE_RELOAD_SECS", "1")],
        &[],
    );
    let security = s.operator_token("sam", "security", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    // Two pumps send about 500 bytes a flow and two about 5,000: the class spans both.
    let pumps = ["pump-b0", "pump-b1", "pump-b2", "pump-b3"];
    for p in pumps {
        s.enrol(p);
    }
    // `flows` as (bytes out, duration ms); every pump talks to the same gateway.
    let send = |device: &str, sequence: i64, flows: &[(u64, f64)]| {
        let events: Vec<String> = flows
            .iter()
            .map(|(bytes, ms)| {
                format!(
                    r#"{{"kind": "flow", "at_ms": 1764748900000, "remote": "10.0.1.150",
                      "remote_port": 1111, "protocol": "tcp", "bytes_out": {bytes},
                      "bytes_in": 186, "packets_out": 4, "packets_in": 3, "duration_ms": {ms}}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [{}]}}"#,
            events.join(",")
        );
        let r = s.telemetry(&s.as_device(device), device, &body, &[]);
        assert_eq!(r.status, 200, "{r:?}");
    };
    let normal = |k: u64, factor: u64| -> Vec<(u64, f64)> {
        (0..20)
            .map(|i| {
                (
                    (450 + (i * 37 + k * 11) % 100) * factor,
                    10.0 + ((i + k) % 5) as f64,
                )
            })
            .collect()
    };
    let factor = |i: usize| if i < 2 { 1 } else { 10 };
    let op = |token: &str, method: &str, path: &str, body: &str| {
        s.operator(token, method, path, Some(body).filter(|b| !b.is_empty()))
    };
    let alerts = |device: &str| -> Vec<Value> {
        let r = s.curl(&[
            "-H",
            &format!("Authorization: Bearer {security}"),
            &s.operator_url(&format!("/api/v1/devices/{device}/alerts")),
        ]);
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    // Too little data is named; a viewer may not train.
    let r = op(&security, "POST", "/api/v1/defender/baselines/pump", "");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("not enough telemetry"), "{r:?}");
    for (i, p) in pumps.iter().enumerate() {
        send(p, 1, &normal(i as u64, factor(i)));
        send(p, 2, &normal(i as u64 + 7, factor(i)));
    }
    let r = op(&viewer, "POST", "/api/v1/defender/baselines/pump", "");
    assert_eq!(r.status, 403, "{r:?}");
    let r = op(
        &security,
        "POST",
        "/api/v1/defender/baselines/pump",
        r#"{"forest_trees": 501}"#,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("forest_trees 501"), "{r:?}");
    let r = op(&security, "POST", "/api/v1/defender/baselines/pump", "{}");
    assert_eq!(r.status, 201, "{r:?}");
    let trained: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(trained["version"], 1);
    assert_eq!(trained["devices"], 4);
    assert_eq!(trained["flow_rows"], 160);
    assert_eq!(trained["devices_with_own_baseline"], 4, "{trained}");
    assert_eq!(trained["forest"]["trees"], 100, "{trained}");
    let r = op(&viewer, "GET", "/api/v1/defender/baselines/pump", "");
    let shown: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(shown["verified"], true, "{shown}");

    // Normal traffic stays silent.
    send("pump-b0", 3, &normal(3, 1));
    send("pump-b2", 3, &normal(3, 10));
    assert!(alerts("pump-b0").is_empty());
    assert!(alerts("pump-b2").is_empty());
    // Sending tenfold to the usual gateway (no allowlist rule can see it) is normal for the
    // class, and for pump-b2, but not for pump-b0: its own baseline explains it.
    send("pump-b2", 4, &normal(4, 10));
    assert!(alerts("pump-b2").is_empty());
    send("pump-b0", 4, &normal(4, 10));
    let raised = alerts("pump-b0");
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["rule"], "baseline:device:flow@v1");
    assert_eq!(raised[0]["technique"]["id"], "T0882");
    assert_eq!(raised[0]["evidence"][0]["feature"], "bytes_out");
    // A flow slowed by an interceptor departs from the whole class.
    let mut slowed = normal(5, 1);
    slowed.push((500, 900.0));
    send("pump-b1", 4, &slowed);
    let raised = alerts("pump-b1");
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["rule"], "baseline:flow@v1");
    assert_eq!(raised[0]["technique"]["id"], "T0830");
    assert_eq!(raised[0]["evidence"][0]["feature"], "duration_ms");
    assert_eq!(raised[0]["evidence"][0]["observed"], "900");

    // Version 2 leaves the alerted batch out of its training.
    let r = op(&security, "POST", "/api/v1/defender/baselines/pump", "");
    assert_eq!(r.status, 201, "{r:?}");
    let v2: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["alerted_batches_left_out"], 2, "{v2}");
    let baseline_rules = |device: &str| -> Vec<String> {
        alerts(device)
            .iter()
            .filter_map(|a| a["rule"].as_str())
            .filter(|r| r.starts_with("baseline:"))
            .map(str::to_owned)
            .collect()
    };
    // v2 is loaded (and verified) by the next batch.
    send("pump-b1", 5, &slowed);
    assert_eq!(
        baseline_rules("pump-b1"),
        ["baseline:flow@v2", "baseline:flow@v1"]
    );

    // A baseline edited in the database no longer verifies.
    let url = format!("sqlite://{}", s.data.join("medsec.db").display());
    let tamper = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
            let medsec_store::AnyStore::Sqlite(db) = &store else {
                panic!("the test server uses SQLite")
            };
            sqlx::query(
                "UPDATE defender_baselines SET body = replace(body, '\"devices\":4', '\"devices\":5')",
            )
            .execute(db.pool())
            .await
            .unwrap();
            store.close().await;
        });
    };
    tamper();
    let r = op(&viewer, "GET", "/api/v1/defender/baselines/pump", "");
    let shown: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(shown["verified"], false, "{shown}");
    assert!(
        shown["problem"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{shown}"
    );
    // The replica keeps the v2 it verified: after the reload interval it reads only the
    // version number, which has not changed, so the edited body is never used.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    send("pump-b1", 6, &slowed);
    assert_eq!(baseline_rules("pump-b1").len(), 3);
    assert_eq!(baseline_rules("pump-b1")[0], "baseline:flow@v2");
    // A new version edited before any replica loaded it is refused: not scored at all.
    let r = op(&security, "POST", "/api/v1/defender/baselines/pump", "");
    assert_eq!(r.status, 201, "{r:?}");
    tamper();
    send("pump-b1", 7, &slowed);
    assert_eq!(
        baseline_rules("pump-b1").len(),
        3,
        "{:?}",
        baseline_rules("pump-b1")
    );
    let log = std::fs::read_to_string(s.work.join("server.log")).unwrap();
    assert!(log.contains("stored baseline refused"), "{log}");
    s.audited(&security, "the training", |e| {
        field(e, "action") == "baseline.train" && has(e, "detail", "v2: ")
    });
}

#[test]
fn telemetry_batches_are_stored_once_in_sequence_and_only_about_the_sender() {
    let tmp = tempfile::tempdir().unwrap();
    // Pumps talk to their gateway subnet on port 1111 and nothing else.
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let policy_env = policy.display().to_string();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__TELEMETRY_MAX_BATCH_BYTES", "4096"),
            ("MEDSEC_DEFENDER_POLICY", &policy_env),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-t");
    s.enrol("pump-u");
    let batch = |sequence: i64| {
        format!(
            r#"{{"sequence": {sequence}, "events": [
              {{"kind": "metric", "at_ms": 1764748800000, "name": "bytes_out", "value": 18230}},
              {{"kind": "flow", "at_ms": 1764748802000, "remote": "10.0.1.150", "remote_port": 1111,
                "protocol": "tcp", "bytes_out": 496, "bytes_in": 186, "packets_out": 4,
                "packets_in": 3, "duration_ms": 12.3}}]}}"#
        )
    };
    let send = |as_device: &str, for_device: &str, extra: &[&str]| {
        let mut args: Vec<String> = s.as_device(as_device).into();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            s.device_url(&format!("/api/v1/devices/{for_device}/telemetry")),
        ]);
        s.curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let b1 = batch(1);
    let r = send("pump-t", "pump-t", &["--data-binary", &b1]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        serde_json::json!({"accepted": 1, "events": 2})
    );
    // The same batch again is a replay: refused, named, nothing stored twice.
    let r = send("pump-t", "pump-t", &["--data-binary", &b1]);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body
            .contains("batch 1 is not after the last accepted batch, 1"),
        "{r:?}"
    );
    assert!(r.body.contains("send 2 next"), "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["last_sequence"],
        1
    );
    // Compressed: gzip, as a device on a slow link sends it.
    let gz = tmp.path().join("b2.json.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, batch(2).as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let at_gz = format!("@{}", gz.display());
    let r = send(
        "pump-t",
        "pump-t",
        &["-H", "Content-Encoding: gzip", "--data-binary", &at_gz],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Another device may not send about pump-t, even with a well-formed batch.
    let r = send("pump-u", "pump-t", &["--data-binary", &batch(3)]);
    assert_eq!(r.status, 403, "{r:?}");
    // A patient identifier has no place in a batch; neither does a device id.
    let with_patient = r#"{"sequence": 3, "events": [{"kind": "clinical", "at_ms": 1, "signal": "spo2", "value": 97, "patient": "Jane Doe"}]}"#;
    let r = send("pump-t", "pump-t", &["--data-binary", with_patient]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("unknown field `patient`"), "{r:?}");
    // A gzip bomb stops at limits.telemetry_max_batch_bytes; unknown encodings are named.
    let bomb = tmp.path().join("bomb.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &vec![b' '; 1 << 20]).unwrap();
    std::fs::write(&bomb, enc.finish().unwrap()).unwrap();
    let at_bomb = format!("@{}", bomb.display());
    let r = send(
        "pump-t",
        "pump-t",
        &["-H", "Content-Encoding: gzip", "--data-binary", &at_bomb],
    );
    assert_eq!(r.status, 413, "{r:?}");
    let r = send(
        "pump-t",
        "pump-t",
        &["-H", "Content-Encoding: br", "--data-binary", &batch(3)],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("\\\"br\\\" is not accepted"), "{r:?}");

    // Operators read what was stored, newest first; the batch is kept as sent.
    let bearer = format!("Authorization: Bearer {admin}");
    let r = s.curl(&[
        "-H",
        &bearer,
        &s.operator_url("/api/v1/devices/pump-t/telemetry"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let stored: Value = serde_json::from_str(&r.body).unwrap();
    let sequences: Vec<i64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, vec![2, 1]);
    assert_eq!(stored[0]["batch"]["events"][1]["remote"], "10.0.1.150");
    // Every refusal is in the audit log, with its reason.
    s.audited(&admin, "the replay", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && has(e, "detail", "replayed or reordered")
    });
    s.audited(&admin, "the cross-device batch", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("pump-u")
    });
    s.audited(&admin, "the patient field", |e| {
        field(e, "action") == "telemetry.send" && has(e, "detail", "unknown field `patient`")
    });

    // So far everything was within the pump policy: no alert.
    let alerts = |path: &str, token: &str| {
        let r = s.curl(&[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &s.operator_url(path),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    assert_eq!(
        alerts("/api/v1/devices/pump-t/alerts", &admin),
        serde_json::json!([])
    );
    // A pump sends 90 kB to an outside address, and a reading no patient can have: each raises
    // an explained alert, and the pump is told nothing about it.
    let attack = r#"{"sequence": 3, "events": [
        {"kind": "flow", "at_ms": 1764748900000, "remote": "203.0.113.9", "remote_port": 443,
         "protocol": "tcp", "bytes_out": 90000, "bytes_in": 300, "packets_out": 70,
         "packets_in": 5, "duration_ms": 800},
        {"kind": "clinical", "at_ms": 1764748901000, "signal": "spo2", "value": 140}]}"#;
    let r = send("pump-t", "pump-t", &["--data-binary", attack]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body.contains("alert"), "{r:?}");
    let viewer = s.operator_token("vic", "viewer", "1h");
    let fleet = alerts("/api/v1/alerts", &viewer);
    let by_rule = |rule: &str| {
        fleet
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} in {fleet}"))
            .clone()
    };
    let exfil = by_rule("destination-not-allowed");
    assert_eq!(exfil["device"], "pump-t");
    assert_eq!(exfil["sequence"], 3);
    assert_eq!(exfil["severity"], "high");
    assert_eq!(exfil["technique"]["id"], "T0882");
    assert_eq!(exfil["evidence"][0]["observed"], "203.0.113.9");
    assert_eq!(exfil["evidence"][0]["expected"], "10.0.1.0/24");
    assert_eq!(exfil["evidence"][1]["feature"], "remote_port");
    let reading = by_rule("clinical-implausible");
    assert_eq!(reading["severity"], "critical");
    assert_eq!(reading["technique"]["id"], "T0832");
    assert_eq!(fleet.as_array().unwrap().len(), 2, "{fleet}");
    assert_eq!(
        alerts("/api/v1/devices/pump-u/alerts", &admin),
        serde_json::json!([])
    );
    // On this ordinary server the audit checks find nothing.
    assert_eq!(
        alerts("/api/v1/defender/audit", &admin),
        serde_json::json!([])
    );
}

#[test]
fn a_defender_policy_that_does_not_parse_stops_the_server_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/40"]}}}"#,
    )
    .unwrap();
    let err = fails(
        medsec()
            .args([
                "server",
                "--device-listen",
                "127.0.0.1:0",
                "--operator-listen",
            ])
            .args(["127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .env("MEDSEC_DEFENDER_POLICY", &policy),
    );
    assert!(
        err.contains("defender_policy") && err.contains("class pump") && err.contains("0 to 32"),
        "{err}"
    );
}

#[test]
fn alerts_open_an_incident_whose_quarantine_is_reversible_and_whose_clocks_start_on_confirmation() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let policy_env = policy.display().to_string();
    let s = start(tmp.path(), &[("MEDSEC_DEFENDER_POLICY", &policy_env)], &[]);
    let security = s.operator_token("sam", "security", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    s.enrol("pump-q");
    let as_pump = |extra: &[&str], path: &str| {
        let mut args: Vec<String> = s.as_device("pump-q").into();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push(s.device_url(path));
        s.curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let telemetry = |sequence: i64, remote: &str| {
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
              "remote": "{remote}", "remote_port": 443, "protocol": "tcp", "bytes_out": 90000,
              "bytes_in": 300, "packets_out": 70, "packets_in": 5, "duration_ms": 800}}]}}"#
        );
        as_pump(
            &[
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
            ],
            "/api/v1/devices/pump-q/telemetry",
        )
    };
    let write_status = || {
        as_pump(
            &[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                r#"{"battery": 80}"#,
            ],
            "/api/v1/devices/pump-q/status",
        )
    };
    let op = |token: &str, method: &str, path: &str, body: Option<&str>| {
        s.operator(token, method, path, body)
    };
    assert_eq!(write_status().status, 204);

    // Two exfiltration batches: one incident, two alerts.
    assert_eq!(telemetry(1, "203.0.113.9").status, 200);
    assert_eq!(telemetry(2, "203.0.113.10").status, 200);
    let r = op(&viewer, "GET", "/api/v1/incidents?open=true", None);
    assert_eq!(r.status, 200, "{r:?}");
    let list: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let incident = &list[0];
    let id = incident["id"].as_str().unwrap().to_owned();
    assert_eq!(incident["phase"], "detected");
    assert_eq!(incident["devices"], serde_json::json!(["pump-q"]));
    assert_eq!(incident["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(
        incident["clocks"],
        serde_json::json!([]),
        "no clock before confirmation"
    );
    let path = format!("/api/v1/incidents/{id}");

    // A viewer may read but not act.
    let quarantine = r#"{"action": "playbook", "playbook": "quarantine", "device": "pump-q"}"#;
    assert_eq!(op(&viewer, "POST", &path, Some(quarantine)).status, 403);

    // Confirmed as a severe incident touching patient data: CRA and HIPAA clocks start.
    let before = now_ms();
    let r = op(
        &security,
        "POST",
        &path,
        Some(r#"{"action": "confirm", "cra": "severe_incident", "personal_data": true}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let confirmed: Value = serde_json::from_str(&r.body).unwrap();
    let clocks = confirmed["clocks"].as_array().unwrap();
    let reports: Vec<&str> = clocks
        .iter()
        .map(|c| c["report"].as_str().unwrap())
        .collect();
    assert_eq!(
        reports,
        [
            "early warning",
            "notification",
            "final report",
            "breach notification to individuals"
        ]
    );
    let due = |i: usize| clocks[i]["due_at_ms"].as_i64().unwrap();
    assert!((before + 24 * 3_600_000..=now_ms() + 24 * 3_600_000).contains(&due(0)));
    assert_eq!(due(1) - due(0), 48 * 3_600_000);
    assert_eq!(due(3) - due(0), 59 * 24 * 3_600_000);

    // Quarantine: the pump keeps telemetry and version reports, loses every other write.
    let r = op(&security, "POST", &path, Some(quarantine));
    assert_eq!(r.status, 200, "{r:?}");
    let contained: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(contained["phase"], "contained");
    let d: Value =
        serde_json::from_str(&op(&viewer, "GET", "/api/v1/devices/pump-q", None).body).unwrap();
    assert_eq!(d["quarantined"], true, "{d}");
    assert_eq!(telemetry(3, "10.0.1.150").status, 200);
    assert_eq!(s.report_nonce("pump-q", "pump-q").status, 201);
    assert_eq!(write_status().status, 403);
    // Phases only move forward.
    let r = op(
        &security,
        "POST",
        &path,
        Some(r#"{"action": "phase", "phase": "detected"}"#),
    );
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("cannot move back"), "{r:?}");
    // Release undoes it.
    let release = r#"{"action": "playbook", "playbook": "release", "device": "pump-q"}"#;
    assert_eq!(op(&security, "POST", &path, Some(release)).status, 200);
    assert_eq!(write_status().status, 204);
    assert_eq!(op(&security, "POST", &path, Some(release)).status, 409);
    // A device outside the incident, and an unknown playbook, are named.
    let r = op(
        &security,
        "POST",
        &path,
        Some(r#"{"action": "playbook", "playbook": "quarantine", "device": "pump-zz"}"#),
    );
    assert!(
        r.status == 400 && r.body.contains("not part of incident"),
        "{r:?}"
    );
    let r = op(
        &security,
        "POST",
        &path,
        Some(r#"{"action": "playbook", "playbook": "wipe", "device": "pump-q"}"#),
    );
    assert!(
        r.status == 400 && r.body.contains("unknown playbook"),
        "{r:?}"
    );
    // Revoke: the pump's certificate no longer opens a connection.
    let r = op(
        &security,
        "POST",
        &path,
        Some(r#"{"action": "playbook", "playbook": "revoke", "device": "pump-q"}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_ne!(telemetry(4, "10.0.1.150").status, 200);
    let done: Value = serde_json::from_str(&op(&viewer, "GET", &path, None).body).unwrap();
    let playbooks: Vec<&str> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["playbook"].as_str().unwrap())
        .collect();
    assert_eq!(playbooks, ["quarantine", "release", "revoke"]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.audited(&admin, "the quarantine", |e| {
        field(e, "action") == "incident.manage" && has(e, "detail", "quarantine pump-q")
    });
    s.audited(&admin, "the incident opening", |e| {
        field(e, "action") == "incident.open" && has(e, "detail", "pump-q")
    });

    // Investigator: one timeline, in time order, over every source.
    let r = op(&security, "GET", "/api/v1/devices/pump-q/timeline", None);
    assert_eq!(r.status, 200, "{r:?}");
    let timeline: Value = serde_json::from_str(&r.body).unwrap();
    let entries = timeline.as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["telemetry", "alert", "incident", "certificate", "decision"] {
        assert!(kinds.contains(k), "no {k} in {timeline}");
    }
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    let summaries: Vec<&str> = entries
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("destination-not-allowed (T0882)")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("quarantine by Operator::\"sam\"")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.starts_with("deny device.write Device::\"pump-q\"")),
        "{summaries:?}"
    );
    // Filters and CSV.
    let r = op(
        &security,
        "GET",
        "/api/v1/devices/pump-q/timeline?kind=alert&format=csv",
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut lines = r.body.lines();
    assert_eq!(lines.next(), Some("at_ms,time_utc,kind,summary"));
    let rows: Vec<&str> = lines.collect();
    // Three alerts: the two exfiltration flows, and the quarantined pump's flow to its gateway
    // on a port its class does not use.
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|l| l.contains(",alert,")), "{rows:?}");
    let r = op(
        &security,
        "GET",
        "/api/v1/devices/pump-q/timeline?kind=gossip",
        None,
    );
    assert!(r.status == 400 && r.body.contains("unknown kind"), "{r:?}");
    // The timeline holds audit decisions: a viewer, who may not read the audit log, may not.
    assert_eq!(
        op(&viewer, "GET", "/api/v1/devices/pump-q/timeline", None).status,
        403
    );
    // The same from the command line, and the read is audited.
    let out = ok(medsec()
        .args([
            "investigate",
            "pump-q",
            "--kind",
            "incident",
            "--format",
            "json",
        ])
        .args(s.location()));
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli.as_array().unwrap().len(), 4, "{cli}");
    let out = ok(medsec()
        .args(["investigate", "pump-q", "--since", "1h"])
        .args(s.location()));
    assert!(out.contains("alert") && out.contains("incident"), "{out}");
    s.audited(&admin, "the command-line read", |e| {
        field(e, "kind") == "investigate" && has(e, "detail", "timeline read")
    });
}

#[test]
fn each_audit_check_fires_on_its_crafted_case() {
    let tmp = tempfile::tempdir().unwrap();
    // The shipped policies plus one that lets any operator or device read every device.
    let policies = tmp.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for f in ["medsec.cedarschema", "default.cedar"] {
        std::fs::copy(shipped.join(f), policies.join(f)).unwrap();
    }
    std::fs::write(
        policies.join("extra.cedar"),
        "@id(\"too-open\")\npermit (principal, action == Medsec::Action::\"device.read\", resource);\n",
    )
    .unwrap();
    let defender = tmp.path().join("defender.json");
    std::fs::write(
        &defender,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"]}}}"#,
    )
    .unwrap();
    let env = [
        ("MEDSEC_POLICY_DIR", policies.display().to_string()),
        ("MEDSEC_DEFENDER_POLICY", defender.display().to_string()),
        // One-day certificates: inside the 7-day renewal check from the start.
        ("MEDSEC_DEVICE_CERT_DAYS", "1".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-w");
    let send = |body: &str| {
        let mut args: Vec<String> = s.as_device("pump-w").into();
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            body.into(),
            s.device_url("/api/v1/devices/pump-w/telemetry"),
        ]);
        let r = s.curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.status, 200, "{r:?}");
    };
    let op = |method: &str, path: &str, body: Option<&str>| {
        let r = s.operator(&admin, method, path, body);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    // An exfiltration flow opens an incident; the pump is quarantined; the incident is closed
    // with the quarantine left on. Then the pump reports its logging turned off.
    send(
        r#"{"sequence": 1, "events": [{"kind": "flow", "at_ms": 1, "remote": "203.0.113.9",
            "remote_port": 443, "protocol": "tcp", "bytes_out": 1, "bytes_in": 1,
            "packets_out": 1, "packets_in": 1, "duration_ms": 1}]}"#,
    );
    let incidents = op("GET", "/api/v1/incidents", None);
    let path = format!("/api/v1/incidents/{}", incidents[0]["id"].as_str().unwrap());
    op(
        "POST",
        &path,
        Some(r#"{"action": "playbook", "playbook": "quarantine", "device": "pump-w"}"#),
    );
    op(
        "POST",
        &path,
        Some(r#"{"action": "phase", "phase": "closed"}"#),
    );
    send(
        r#"{"sequence": 2, "events": [{"kind": "security", "at_ms": 2, "event": "logging_disabled"}]}"#,
    );

    let findings = op("GET", "/api/v1/defender/audit?cert_days=7", None);
    let checks: std::collections::BTreeSet<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["resource"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pump = "Device::\"pump-w\"".to_owned();
    for expected in [
        ("device-certificate-expiring".to_owned(), pump.clone()),
        ("quarantine-without-incident".to_owned(), pump.clone()),
        ("logging-disabled".to_owned(), pump.clone()),
        (
            "overly-permissive-policy".to_owned(),
            "policy too-open".to_owned(),
        ),
    ] {
        assert!(checks.contains(&expected), "{expected:?} not in {findings}");
    }
    assert!(
        !checks
            .iter()
            .any(|(c, _)| c == "audit-log-integrity" || c == "device-silent"),
        "{findings}"
    );
    let silent = op("GET", "/api/v1/defender/audit?silent_hours=1", None);
    assert!(
        !silent
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "device-silent"),
        "the pump was just seen: {silent}"
    );
    // The command line: the same findings, and a non-zero exit at the chosen severity.
    let cli = |fail_on: &str| {
        let mut c = medsec();
        c.args(["defender", "audit", "--fail-on", fail_on])
            .args(s.location())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let err = fails(&mut cli("high"));
    assert!(
        err.contains("overly-permissive-policy") && err.contains("at or above High"),
        "{err}"
    );
    let out = ok(&mut cli("critical"));
    assert!(out.contains("quarantine-without-incident"), "{out}");

    // The remaining checks, on crafted state read by the command line.
    // A manufacturer CA that expires tomorrow is still trusted.
    openssl(
        &s.work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "mca.key",
            "-out",
            "mca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=Acme IDevID CA",
        ],
    );
    // And one that expired last year.
    let mut old_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    old_ca
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Retired IDevID CA");
    old_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    old_ca.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(800);
    old_ca.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(
        s.work.join("old-ca.pem"),
        old_ca.self_signed(&key).unwrap().pem(),
    )
    .unwrap();
    let config = s.work.join("audit.toml");
    std::fs::write(
        &config,
        format!(
            "manufacturer_cas = [{:?}, {:?}]\n",
            s.work.join("mca.pem").display().to_string(),
            s.work.join("old-ca.pem").display().to_string()
        ),
    )
    .unwrap();
    // The pump has not been seen for a long time, and an audit entry was edited.
    let url = format!("sqlite://{}", s.data.join("medsec.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
        let medsec_store::AnyStore::Sqlite(db) = &store else {
            panic!("the test server uses SQLite")
        };
        for sql in [
            "UPDATE devices SET last_seen_ms = 1000 WHERE id = 'pump-w'",
            "UPDATE audit_entries SET entry = entry || ' ' WHERE seq = 4",
        ] {
            sqlx::query(sql).execute(db.pool()).await.unwrap();
        }
        store.close().await;
    });
    let mut c = cli("critical");
    c.arg("--config").arg(&config).arg("--json");
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a critical finding fails the run"
    );
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "ca-certificate-expiring",
        "expired-ca-still-trusted",
        "device-silent",
        "audit-log-integrity",
    ] {
        assert!(found.contains(&check), "{check} not in {findings}");
    }
    assert_eq!(
        found[0], "audit-log-integrity",
        "the most severe comes first"
    );
}

/// Publishes an image repository with two releases of the ip200 pump (hardware id
/// `pump-rev-b`), each with its SBOM's digest signed in, and writes `WORK/medsec.toml`.
fn publish_pump_releases(work: &Path) -> (PathBuf, PathBuf) {
    let sbom = |version: &str, openssl: &str, busybox: &str| {
        let path = work.join(format!("ip200-{version}.cdx.json"));
        let text = common::risk::firmware_sbom("acme-ip200", version, openssl, busybox);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (old, new) = (
        sbom("1.2.0", "3.0.2", "1.35.0"),
        sbom("1.3.0", "3.0.7", "1.36.0"),
    );
    publish_releases(
        work,
        &[
            (
                "pump-1.2.0.img",
                "1.2.0",
                "12",
                2,
                "pump-rev-b",
                Some(old.as_path()),
            ),
            (
                "pump-1.3.0.img",
                "1.3.0",
                "13",
                3,
                "pump-rev-b",
                Some(new.as_path()),
            ),
        ],
        "[limits]\nmax_document_bytes = 65536\n",
    );
    (old, new)
}

#[test]
fn each_device_gets_the_findings_of_the_release_it_reports_and_they_close_after_the_update() {
    let tmp = tempfile::tempdir().unwrap();
    let (sbom120, sbom130) = publish_pump_releases(tmp.path());
    let json = |r: &Reply| -> Value { serde_json::from_str(&r.body).unwrap() };
    let error = |r: &Reply| json(r)["error"].as_str().unwrap_or_default().to_owned();
    let s = start(
        tmp.path(),
        &[],
        &[
            "--config",
            &tmp.path().join("medsec.toml").display().to_string(),
        ],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    let release = s.operator_token("rita", "release", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    let report = |device: &str, version: &str, counter: i64| {
        let r = s.report_nonce(device, device);
        assert_eq!(r.status, 201, "{r:?}");
        let nonce = json(&r)["nonce"].as_str().unwrap().to_owned();
        let payload = format!(
            r#"{{"device":"{device}","nonce":"{nonce}","version":"{version}","release_counter":{counter}}}"#
        );
        let r = s.put_version(device, device, &s.sign_report(device, &payload));
        assert_eq!(r.status, 204, "{r:?}");
    };
    for (device, version, counter) in [
        ("pump-a", "1.2.0", 12),
        ("pump-b", "1.2.0", 12),
        ("pump-c", "1.3.0", 13),
    ] {
        s.enrol(device);
        let r = s.operator(
            &admin,
            "PATCH",
            &format!("/api/v1/devices/{device}"),
            Some(r#"{"hardware_id":"pump-rev-b"}"#),
        );
        assert_eq!(r.status, 200, "{r:?}");
        report(device, version, counter);
    }
    let upload = |token: &str, path: &str, body: &str| {
        let file = tmp.path().join("upload.json");
        std::fs::write(&file, body).unwrap();
        let url = s.operator_url(path);
        let auth = format!("Authorization: Bearer {token}");
        let data = format!("@{}", file.display());
        let method = if path.contains("/sboms/") {
            "PUT"
        } else {
            "POST"
        };
        s.curl(&[
            "-X",
            method,
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            // Refusals on the announced length come before the body (see the body-limit test).
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &data,
            &url,
        ])
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();

    // SBOMs: only the one signed into the target is accepted, by a role allowed to.
    let r = upload(
        &release,
        "/api/v1/risk/sboms/pump-1.2.0.img",
        &read(&sbom130),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        error(&r).contains("but the one signed into \"pump-1.2.0.img\" is"),
        "{r:?}"
    );
    let r = upload(&release, "/api/v1/risk/sboms/pump-9.img", &read(&sbom120));
    assert!(
        r.status == 400 && error(&r).contains("is not a target of the image repository"),
        "{r:?}"
    );
    let r = upload(
        &viewer,
        "/api/v1/risk/sboms/pump-1.2.0.img",
        &read(&sbom120),
    );
    assert_eq!(r.status, 403, "{r:?}");
    for (target, sbom) in [("pump-1.2.0.img", &sbom120), ("pump-1.3.0.img", &sbom130)] {
        let r = upload(
            &release,
            &format!("/api/v1/risk/sboms/{target}"),
            &read(sbom),
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(json(&r)["hardware_ids"], serde_json::json!(["pump-rev-b"]));
    }

    // Advisories and VEX, as the CLI reads them.
    let feed = tmp.path().join("feed");
    common::risk::firmware_advisories(&feed);
    for f in ["osv/CVE-2022-3602.json", "bb-2022-0001.json", "kev.json"] {
        let r = upload(&admin, "/api/v1/risk/advisories", &read(&feed.join(f)));
        assert_eq!(r.status, 201, "{f}: {r:?}");
    }
    let r = upload(
        &admin,
        "/api/v1/risk/advisories",
        &read(&feed.join("kev.json")),
    );
    assert_eq!(
        (r.status, json(&r)["changed"].as_bool()),
        (200, Some(false)),
        "re-import: {r:?}"
    );
    let r = upload(&admin, "/api/v1/risk/advisories", r#"{"id": "nope"}"#);
    assert!(
        r.status == 400 && error(&r).contains("neither OSV"),
        "{r:?}"
    );
    let r = upload(
        &admin,
        "/api/v1/risk/advisories",
        &format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)),
    );
    assert_eq!(r.status, 413, "over max_document_bytes: {r:?}");
    // The same feed as one zip archive (as OSV publishes it), with a broken file in it.
    // A record the single uploads did not send (about a package the pump does not carry).
    std::fs::write(feed.join("broken.json"), r#"{"id": "nope"}"#).unwrap();
    let mut other: Value =
        serde_json::from_str(&read(&feed.join("osv/CVE-2022-3602.json"))).unwrap();
    other["id"] = "CVE-2099-0001".into();
    other["affected"][0]["package"] = serde_json::json!({"ecosystem": "npm", "name": "left-pad"});
    std::fs::write(feed.join("osv/CVE-2099-0001.json"), other.to_string()).unwrap();
    let zip_of = |name: &str, bomb: bool| {
        let zip = tmp.path().join(name);
        let script = "import sys, zipfile, pathlib\n\
                      root = pathlib.Path(sys.argv[1])\n\
                      with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
                      [z.write(p, p.relative_to(root)) for p in sorted(root.rglob('*.json'))]\n    \
                      if len(sys.argv) > 3: z.writestr('huge.json', ' ' * (3 << 20))";
        let mut c = std::process::Command::new("python3");
        c.args(["-c", script]).arg(&feed).arg(&zip);
        if bomb {
            c.arg("bomb");
        }
        assert!(c.status().unwrap().success());
        zip
    };
    let post_zip = |zip: &Path, query: &str| {
        let url = s.operator_url(&format!("/api/v1/risk/advisories{query}"));
        let auth = format!("Authorization: Bearer {admin}");
        let data = format!("@{}", zip.display());
        s.curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/zip",
            "--data-binary",
            &data,
            &url,
        ])
    };
    let feed_zip = zip_of("feed.zip", false);
    let r = post_zip(&feed_zip, "");
    assert_eq!(r.status, 201, "{r:?}");
    let z = json(&r);
    assert_eq!(
        (
            z["files"].as_u64(),
            z["documents"].as_u64(),
            z["changed"].as_u64(),
            z["refused"].as_u64()
        ),
        (Some(5), Some(4), Some(1), Some(1)),
        "only the new record changes anything: {z}"
    );
    let r = post_zip(&feed_zip, "");
    assert_eq!(
        (r.status, json(&r)["changed"].as_u64()),
        (200, Some(0)),
        "{r:?}"
    );
    assert_eq!(z["refused_files"][0]["file"], "broken.json", "{z}");
    let r = post_zip(&feed_zip, "?strict=true");
    assert!(
        r.status == 400
            && error(&r)
                .contains("1 of 5 files refused (strict); nothing stored; first: broken.json"),
        "{r:?}"
    );
    let r = post_zip(&zip_of("bomb.zip", true), "");
    assert!(
        r.status == 400
            && error(&r).contains("huge.json unpacks to over 65536 bytes (the limit per file)"),
        "{r:?}"
    );
    let r = upload(&admin, "/api/v1/risk/vex", &common::risk::firmware_vex());
    assert_eq!(r.status, 201, "{r:?}");

    // pump-a runs 1.2.0: OpenSSL is open and leads; BusyBox is resolved by the VEX.
    let findings = |device: &str, query: &str| {
        let r = s.operator(
            &viewer,
            "GET",
            &format!("/api/v1/devices/{device}/findings{query}"),
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        json(&r)
    };
    let a = findings("pump-a", "?clinical=therapy&segmented=true");
    assert_eq!(a["release"]["target"], "pump-1.2.0.img", "{a}");
    assert_eq!(
        a["summary"],
        serde_json::json!({"matched": 2, "clean": 0, "unidentifiable": 1,
        "findings": 2, "open": 1, "undetermined": 0}),
        "{a}"
    );
    let openssl = &a["components"][0]["findings"][0];
    assert_eq!(
        (
            openssl["advisory"].as_str(),
            openssl["risk"]["score"].as_f64()
        ),
        (Some("CVE-2022-3602"), Some(93.6)),
        "{a}"
    );
    assert_eq!(openssl["risk"]["priority"], "critical");
    let busybox = &a["components"][1]["findings"][0];
    assert_eq!(busybox["vex"]["status"], "not_affected", "{a}");
    assert_eq!(busybox["risk"]["score"], 0.0);
    let r = s.operator(
        &viewer,
        "GET",
        "/api/v1/devices/pump-a/findings?clinical=surgery",
        None,
    );
    assert!(
        r.status == 400 && error(&r).contains("\"surgery\" is not therapy"),
        "{r:?}"
    );

    // The model's profile gives the context the query gave: the same score without a query.
    let put = |token: &str, path: &str, body: &str| {
        let r = s.operator(token, "PUT", path, Some(body));
        (r.status, r)
    };
    let profile = |status: &str, end: &str| {
        format!(
            r#"{{"vendor":"Acme Infusion","clinical":"therapy","exposure":"network","segmented":true,
            "support":{{"status":"{status}","end_of_support":"{end}","level":"security patches within 30 days"}},
            "mds2":{{"SBOM":{{"answer":"yes"}},"RMOT":{{"answer":"no","note":"no remote service"}}}}}}"#
        )
    };
    let (status, r) = put(
        &viewer,
        "/api/v1/inventory/models/pump",
        &profile("supported", "2030-12-31"),
    );
    assert_eq!(status, 403, "{r:?}");
    let (status, r) = put(
        &admin,
        "/api/v1/inventory/models/pump",
        &profile("supported", "2030-02-30"),
    );
    assert!(
        status == 400 && error(&r).contains("support.end_of_support \"2030-02-30\" is not a date"),
        "{r:?}"
    );
    let (status, r) = put(
        &admin,
        "/api/v1/inventory/models/pump",
        &profile("eternal", "2030-12-31"),
    );
    assert!(status == 400 && error(&r).contains("eternal"), "{r:?}");
    let (status, r) = put(
        &admin,
        "/api/v1/inventory/models/pump",
        &profile("supported", "2030-12-31"),
    );
    assert_eq!(status, 200, "{r:?}");
    let a = findings("pump-a", "");
    assert_eq!(a["context"]["clinical"], "therapy", "{a}");
    assert_eq!(a["context"]["controls"]["segmented"], true, "{a}");
    assert_eq!(
        a["components"][0]["findings"][0]["risk"]["score"], 93.6,
        "{a}"
    );
    assert_eq!(a["support"]["ships_updates"], true, "{a}");
    assert_eq!(
        a["risk"]["score"], 93.6,
        "the device's risk is its worst open finding: {a}"
    );
    // The fleet in risk order: both devices on 1.2.0 carry the exploited flaw, pump-c none.
    let r = s.operator(&viewer, "GET", "/api/v1/risk/devices", None);
    assert_eq!(r.status, 200, "{r:?}");
    let ranked = json(&r);
    let order: Vec<(String, f64, String)> = ranked["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap().to_owned(),
                d["risk"]["score"].as_f64().unwrap(),
                d["risk"]["advisory"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("pump-a".to_owned(), 93.6, "CVE-2022-3602".to_owned()),
            ("pump-b".to_owned(), 93.6, "CVE-2022-3602".to_owned()),
            ("pump-c".to_owned(), 0.0, "-".to_owned())
        ],
        "{ranked}"
    );
    let r = s.operator(&viewer, "GET", "/api/v1/risk/devices?limit=0", None);
    assert!(
        r.status == 400 && error(&r).contains("limit 0 is not between"),
        "{r:?}"
    );
    // The query still overrides the profile.
    let a = findings("pump-a", "?clinical=non-clinical");
    assert!(
        a["components"][0]["findings"][0]["risk"]["score"]
            .as_f64()
            .unwrap()
            < 93.6,
        "{a}"
    );
    let (status, r) = put(
        &admin,
        "/api/v1/inventory/vendors/Acme%20Infusion",
        r#"{"security_contact":"psirt@acme.example","documents":[{"kind":"sbom","received":"2026-11-02","model":"pump"}],
            "contract":{"critical_patch_days":30,"vulnerability_notice_days":7,"sbom_per_release":true}}"#,
    );
    assert_eq!(status, 200, "{r:?}");
    let r = s.operator(&viewer, "GET", "/api/v1/inventory/vendors", None);
    assert_eq!(
        json(&r)["vendors"][0]["missing_documents"]["pump"],
        serde_json::json!(["mds2", "disclosure-policy"]),
        "{r:?}"
    );
    // The vendor stops shipping updates: the device is flagged for replacement, and its
    // findings score as unfixable although a fixed version exists upstream.
    let (status, r) = put(
        &admin,
        "/api/v1/inventory/models/pump",
        &profile("supported", "2026-01-31"),
    );
    assert_eq!(status, 200, "{r:?}");
    let a = findings("pump-a", "");
    assert_eq!(a["support"]["replace"], true, "{a}");
    assert!(
        a["support"]["why"]
            .as_str()
            .unwrap()
            .contains("2026-01-31, has passed"),
        "{a}"
    );
    let factors = &a["components"][0]["findings"][0]["risk"]["factors"];
    assert!(
        factors
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["weight"] == 1.2
                && f["why"]
                    .as_str()
                    .unwrap()
                    .contains("no longer ships updates")),
        "{a}"
    );
    let r = s.operator(&viewer, "GET", "/api/v1/inventory/support", None);
    let support = json(&r);
    assert_eq!(
        support["replace"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["pump-a", "pump-b", "pump-c"],
        "{support}"
    );
    let out = ok(medsec()
        .args(["fleet", "support", "--json"])
        .args(s.location()));
    assert!(out.contains("\"pump-a\""), "{out}");
    // The same records through the CLI: a bad one is refused by name, a good one listed.
    let file = tmp.path().join("monitor.json");
    std::fs::write(
        &file,
        r#"{"vendor":"Acme Infusion","clinical":"monitoring","exposure":"adjacent","support":{"status":"security-only"},"mds2":{"NOPE":{"answer":"yes"}}}"#,
    )
    .unwrap();
    let bad = medsec()
        .args(["fleet", "model", "set", "monitor"])
        .arg(&file)
        .args(s.location())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success()
            && stderr.contains("model profile is not valid")
            && stderr.contains("NOPE"),
        "{stderr}"
    );
    std::fs::write(
        &file,
        r#"{"vendor":"Acme Infusion","clinical":"monitoring","exposure":"adjacent","support":{"status":"security-only"}}"#,
    )
    .unwrap();
    ok(medsec()
        .args(["fleet", "model", "set", "monitor"])
        .arg(&file)
        .args(s.location()));
    let listed: Value = serde_json::from_str(&ok(medsec()
        .args(["fleet", "model", "list"])
        .args(s.location())))
    .unwrap();
    assert_eq!(listed[0]["model"], "monitor", "{listed}");
    assert_eq!(
        listed[0]["support"]["why"], "security updates only",
        "{listed}"
    );
    assert_eq!(listed[1]["support"]["replace"], true, "{listed}");

    // pump-c already runs the fixed 1.3.0.
    let c = findings("pump-c", "");
    assert_eq!(c["summary"]["findings"], 0, "{c}");
    assert_eq!(c["summary"]["clean"], 2, "{c}");

    // The devices one advisory affects: the two on 1.2.0.
    let affected = |name: &str| {
        let r = s.operator(
            &viewer,
            "GET",
            &format!("/api/v1/risk/advisories/{name}/devices"),
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        json(&r)
    };
    let v = affected("CVE-2022-3602");
    assert_eq!(v["devices"], 2, "{v}");
    assert_eq!(
        v["releases"][0]["devices"],
        serde_json::json!(["pump-a", "pump-b"]),
        "{v}"
    );
    assert_eq!(
        v["releases"][0]["components"],
        serde_json::json!(["openssl"]),
        "{v}"
    );
    assert_eq!(
        s.operator(
            &viewer,
            "GET",
            "/api/v1/risk/advisories/CVE-1999-0001/devices",
            None
        )
        .status,
        404
    );

    // pump-b is updated to 1.3.0: its findings close, and it leaves the affected list.
    report("pump-b", "1.3.0", 13);
    let b = findings("pump-b", "");
    assert_eq!(
        (
            b["release"]["target"].as_str(),
            b["summary"]["findings"].as_u64()
        ),
        (Some("pump-1.3.0.img"), Some(0)),
        "{b}"
    );
    let v = affected("CVE-2022-3602");
    assert_eq!(
        v["releases"][0]["devices"],
        serde_json::json!(["pump-a"]),
        "{v}"
    );

    // Every write is in the audit log.
    s.audited(&admin, "the SBOM upload", |e| {
        field(e, "action") == "risk.write"
            && field(e, "detail").contains("SBOM")
            && field(e, "resource").contains("pump-1.2.0.img")
    });
    s.audited(&admin, "the model profile", |e| {
        field(e, "action") == "risk.write" && field(e, "resource") == "Model::\"pump\""
    });

    // The evidence report, from the same live data; twice, byte for byte the same.
    let compliance = |out: &Path| {
        ok(medsec()
            .args(["report", "compliance", "--out"])
            .arg(out)
            .args(s.location()))
    };
    let (one, two) = (tmp.path().join("report-1"), tmp.path().join("report-2"));
    let printed = compliance(&one);
    assert!(printed.contains("controls evidenced"), "{printed}");
    compliance(&two);
    let mut files = Vec::new();
    for dir in ["", "bundle"] {
        for e in std::fs::read_dir(one.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let rel = p.strip_prefix(&one).unwrap().to_owned();
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(two.join(&rel)).unwrap(),
                    "{} differs between runs",
                    rel.display()
                );
                files.push(rel.display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            "bundle/index.json",
            "bundle/pump-1.2.0.img@pump-rev-b.sbom.json",
            "bundle/pump-1.2.0.img@pump-rev-b.vex.cdx.json",
            "bundle/pump-1.3.0.img@pump-rev-b.sbom.json",
            "bundle/pump-1.3.0.img@pump-rev-b.vex.cdx.json",
            "compliance.html",
            "compliance.json"
        ]
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("compliance.json")).unwrap())
            .unwrap();
    let control = |id: &str| {
        report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no control {id}"))["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let assessment = |kind: &str, list: &str| report["assessments"][kind][list].to_string();
    // pump-a still runs 1.2.0 with the OpenSSL flaw in CISA KEV: §524B(b)(2) and CRA (2)(a)
    // have a gap; BusyBox is resolved by VEX and named nowhere as open.
    assert_eq!(control("fda-524b-b2"), "gap");
    assert_eq!(control("cra-i-1-2a"), "gap");
    let gaps = assessment("vulnerabilities", "gaps");
    assert!(
        gaps.contains(
            "pump-1.2.0.img: 1 known exploited (CISA KEV) open finding(s): CVE-2022-3602 in pkg:"
        ),
        "{gaps}"
    );
    assert!(!gaps.contains("BB-"), "{gaps}");
    // The SBOMs are held for both releases the devices run; the audit log verifies.
    assert!(
        assessment("sbom", "gaps") == "[]",
        "{}",
        assessment("sbom", "gaps")
    );
    assert_eq!(control("hipaa-b"), "evidenced");
    assert!(
        assessment("audit_log", "facts")
            .contains("every entry and every signed tree head verifies")
    );
    // Vendor support ended: replacement is escalated; missing vendor documents are named.
    assert!(
        assessment("support", "gaps")
            .contains("pump-a (pump: the vendor's end-of-support date, 2026-01-31, has passed)")
    );
    assert!(
        assessment("vendors", "warnings")
            .contains("Acme Infusion pump: not received: mds2, disclosure-policy")
    );
    assert_eq!(report["open_by_release"]["pump-1.2.0.img"]["high"], 1);
    assert_eq!(report["open_by_release"]["pump-1.3.0.img"]["high"], 0);
    let html = std::fs::read_to_string(one.join("compliance.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("§524B"),
        "no chart or catalogue"
    );
    // The bundle's VEX reads as CycloneDX VEX, states the open flaw affected and keeps the
    // manufacturer's not_affected.
    let out = ok(medsec()
        .args([
            "risk",
            "vex",
            "--to",
            "openvex",
            "--author",
            "t",
            "--id",
            "t",
            "--timestamp",
            "2026-12-03T00:00:00Z",
        ])
        .arg(one.join("bundle/pump-1.2.0.img@pump-rev-b.vex.cdx.json")));
    let openvex: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<(String, String)> = openvex["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["vulnerability"]["name"].as_str().unwrap().to_owned(),
                st["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("CVE-2022-3602".into(), "affected".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|(_, st)| st == "not_affected"),
        "{statuses:?}"
    );
    // A bad --as-of is named.
    let bad = medsec()
        .args(["report", "compliance", "--as-of", "yesterday", "--out"])
        .arg(tmp.path().join("report-3"))
        .args(s.location())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--as-of \"yesterday\" is not an RFC 3339 time")
    );
}
