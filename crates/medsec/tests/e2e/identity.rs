//! Device identity and zero trust on the wire: EST enrolment with `openssl` and `curl`, mutual TLS
//! refusing rogue, expired and revoked certificates, manufacturer certificates, the rustls key
//! exchange, the limits (bursts, stalled handshakes, oversized headers) and idle connections.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use medsec_testkit::*;

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
            && field(e, "resource") == "device-port"
            && (has(e, "detail", "BadSignature") || has(e, "detail", "UnknownIssuer"))
    });

    // --- an expired certificate from the fleet CA itself: refused in the handshake.
    expired_certificate(&s, "pump-1");
    let r = s.curl(&["--cert", "expired.pem", "--key", "expired.key", &own]);
    assert_eq!(r.status, 0, "the handshake must fail: {r:?}");
    s.audited(&admin, "the expired certificate", |e| {
        field(e, "kind") == "tls" && has(e, "detail", "certificate expired")
    });

    // --- TLS 1.2 on the operator port: refused in the handshake, and the log names that port.
    let r = s.curl(&["--tls-max", "1.2", &s.operator_url("/api/v1/devices")]);
    assert_eq!(r.status, 0, "the handshake must fail: {r:?}");
    s.audited(&admin, "a TLS 1.2 handshake on the operator port", |e| {
        field(e, "kind") == "tls" && field(e, "resource") == "operator-port"
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
    // The new certificate supersedes the old one: revoked with the issuance, refused at the
    // next handshake (no restart), and named in the issuance's audit entry.
    let mut old = me.clone();
    old.push(&own);
    let r = s.curl(&old);
    assert_eq!(
        r.status, 0,
        "the superseded certificate must be refused: {r:?}"
    );
    s.audited(&admin, "the superseding re-enrolment", |e| {
        field(e, "kind") == "issuance" && has(e, "detail", "supersedes and revokes")
    });
    // From here on pump-1 speaks with its new certificate and key.
    s.certificates_from_est("pump-1-next");
    for (from, to) in [
        ("pump-1-next.key", "pump-1.key"),
        ("pump-1-next.pem", "pump-1.pem"),
        ("pump-1-next.leaf.pem", "pump-1.leaf.pem"),
    ] {
        std::fs::copy(s.work.join(from), s.work.join(to)).unwrap();
    }
    let r = s.curl(&old);
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
    s.revoke_offline("pump-1");
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
    assert_eq!(field(&e["event"], "principal"), "operator:vera", "{e}");
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
    // IDevIDs: (file, issuing CA, the device id its subject names, its hardware type as an
    // RFC 4108 HardwareModuleName in the subject alternative name).
    let pump_type = "1.3.6.1.4.1.55555.1.1";
    for (name, ca, serial, hw_type) in [
        ("idevid", "acme", "pump-9", Some(pump_type)),
        ("forged", "other", "pump-9", Some(pump_type)),
        ("taken", "acme", "pump-000", Some(pump_type)),
        ("outside", "acme", "monitor-1", Some(pump_type)),
        ("wrong-hw", "acme", "pump-8", Some("1.3.6.1.4.1.55555.9.9")),
        ("no-hw", "acme", "pump-7", None),
        ("premodel", "acme", "pump-6", Some(pump_type)),
    ] {
        let mut ext = String::from(
            "[ext]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        if let Some(hw) = hw_type {
            ext.push_str(&format!(
                "subjectAltName=otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn\n[hmn]\nhwType=OID:{hw}\nhwSerialNum=OCTETSTRING:{serial}\n"
            ));
        }
        std::fs::write(work.join(format!("{name}.ext")), ext).unwrap();
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
                &format!("/O=acme/CN=IP200/serialNumber={serial}"),
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
                &format!("{name}.ext"),
                "-extensions",
                "ext",
                "-out",
                &pem,
            ],
        );
    }
    // The old, unscoped form is refused with what to write instead.
    std::fs::write(
        work.join("old.toml"),
        format!(
            "manufacturer_cas = [{:?}]\n",
            work.join("acme-ca.pem").display().to_string()
        ),
    )
    .unwrap();
    let err = fails(
        medsec()
            .args(["server", "--data-dir"])
            .arg(work.join("old-data"))
            .arg("--config")
            .arg(work.join("old.toml")),
    );
    assert!(err.contains("[[manufacturers]]"), "{err}");
    std::fs::write(
        work.join("medsec.toml"),
        format!(
            "[[manufacturers]]\nname = \"acme\"\nca = {:?}\ndevice_ids = [\"pump-*\"]\n\
             models = [\"infusion-pump\"]\nhardware_ids = [{pump_type:?}]\n",
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

    // It was registered as the CA's model, and bound to the IDevID that enrolled it.
    let r = s.operator(&admin, "GET", "/api/v1/devices/pump-9", None);
    assert!(r.body.contains(r#""model":"infusion-pump""#), "{r:?}");

    // Every refusal below is audited, names why, and issues nothing.
    let refused = |name: &str, key: &str, extra: &[&str], why: &str| {
        s.key_and_request(key, key);
        let mut args = vec!["--cert", name, "--key"];
        let key_file = name.replace(".pem", ".key");
        args.push(&key_file);
        args.extend(extra);
        let r = s.est("simpleenroll", key, &args);
        assert_eq!(r.status, 401, "{name}: {r:?}");
        assert!(r.body.contains(why), "{name}: {r:?}");
        s.audited(&admin, why, |e| {
            field(e, "action") == "est.enroll"
                && field(e, "decision") == "deny"
                && field(e, "principal") == r#"Manufacturer::"acme""#
                && has(e, "detail", why)
        });
    };
    // A second enrolment with the same IDevID.
    refused("idevid.pem", "pump-9-again", &[], "was enrolled before");
    // An IDevID naming a device enrolled by token: no takeover.
    s.enrol("pump-000");
    refused("taken.pem", "pump-000-taken", &[], "was enrolled before");
    let r = s.curl(&[
        "--cert",
        "pump-000.pem",
        "--key",
        "pump-000.key",
        &s.device_url("/api/v1/devices/pump-000"),
    ]);
    assert_eq!(r.status, 200, "the holder's certificate still works: {r:?}");
    // Outside the CA's device ids, hardware types.
    refused(
        "outside.pem",
        "monitor-1",
        &[],
        "outside what manufacturer CA",
    );
    refused("wrong-hw.pem", "pump-8", &[], "hardware type(s)");
    refused("no-hw.pem", "pump-7", &[], "hardware type(s)");
    // A device an operator registered as a model outside the CA's models.
    s.enrolment_token("pump-6");
    refused("premodel.pem", "pump-6", &[], "is registered as model");
    // A token for another device does not open the re-enrolment (and is spent).
    let other = s.enrolment_token("pump-5");
    let bearer = format!("Authorization: Bearer {other}");
    refused(
        "idevid.pem",
        "pump-9-b",
        &["-H", &bearer],
        "(and is now used)",
    );

    // The operator's re-enrolment: an enrolment token for pump-9 with its IDevID. The new
    // certificate supersedes the old one, which stops working.
    let token = ok(medsec()
        .args(["fleet", "token", "create", "--device", "pump-9"])
        .args(["--model", "infusion-pump"])
        .args(s.location()))
    .trim()
    .to_owned();
    std::fs::rename(s.work.join("pump-9.pem"), s.work.join("pump-9-old.pem")).unwrap();
    std::fs::rename(s.work.join("pump-9.key"), s.work.join("pump-9-old.key")).unwrap();
    s.key_and_request("pump-9", "pump-9");
    let bearer = format!("Authorization: Bearer {token}");
    let r = s.est(
        "simpleenroll",
        "pump-9",
        &["--cert", "idevid.pem", "--key", "idevid.key", "-H", &bearer],
    );
    assert_eq!(r.status, 200, "{r:?}");
    s.audited(&admin, "the re-enrolment with the IDevID", |e| {
        field(e, "action") == "est.enroll" && has(e, "detail", "supersedes the current one")
    });
    let r = s.curl(&["--cert", "pump-9.pem", "--key", "pump-9.key", &own]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.curl(&["--cert", "pump-9-old.pem", "--key", "pump-9-old.key", &own]);
    assert_ne!(
        r.status, 200,
        "the superseded certificate still works: {r:?}"
    );
}

/// A kept-alive TLS connection to `addr`, presenting `name`'s certificate when given.
pub(crate) fn keep_alive(
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
pub(crate) fn request_on(
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

/// The data directory holds clinical readings, incidents, the audit log and keys: after a fresh
/// start under the usual umask (022) it is the owner's only, and so is every database and key
/// file in it. A passphrase file others may read is refused by name, by the server and the CLI.
#[test]
fn the_data_directory_and_its_secrets_are_the_owners_only_and_a_readable_passphrase_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    // A write, so that the WAL exists too.
    s.operator_token("alice", "admin", "1h");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.data), 0o700, "{}", s.data.display());
    let mut private = vec![
        s.data.join("medsec.db"),
        s.data.join("audit.key"),
        s.data.join("server.key"),
    ];
    for extra in ["medsec.db-wal", "medsec.db-shm"] {
        if s.data.join(extra).exists() {
            private.push(s.data.join(extra));
        }
    }
    for entry in std::fs::read_dir(s.data.join("ca")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            private.push(path);
        }
    }
    assert!(private.len() >= 6, "{private:?}");
    for p in &private {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    drop(s);

    let pass = tmp.path().join("pass.txt");
    std::fs::write(&pass, "correct horse battery staple").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(
        medsec()
            .args(["server", "--data-dir"])
            .arg(tmp.path().join("other"))
            .env("MEDSEC_CA_PASSPHRASE_FILE", &pass),
    );
    assert!(
        err.contains("pass.txt") && err.contains("chmod 600"),
        "the server must refuse the passphrase file by name: {err}"
    );
    let err = fails(
        medsec()
            .args(["ca", "init", "--passphrase-file"])
            .arg(&pass)
            .arg(tmp.path().join("ca")),
    );
    assert!(
        err.contains("pass.txt") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!tmp.path().join("ca").exists(), "nothing was created");
}
