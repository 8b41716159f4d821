//! What an attacker probing the server tries (issue 20): credentials taken back (operator and
//! enrolment tokens, revoked devices on connections opened before), slow request heads,
//! connection caps and the file-descriptor budget. Each refusal is looked up in the audit log.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use medsec_testkit::*;

use crate::identity::{keep_alive, request_on};

/// The list of operator tokens, from the CLI, as JSON.
fn operator_tokens(s: &Running) -> Vec<Value> {
    let out = ok(medsec()
        .args(["operator", "token", "list", "--json"])
        .args(s.location()));
    serde_json::from_str(&out).unwrap()
}

/// The id of `name`'s token in a token list.
fn id_of(list: &[Value], key: &str, value: &str) -> String {
    list.iter()
        .find(|t| t[key] == value)
        .unwrap_or_else(|| panic!("no token with {key} {value} in {list:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn operator_and_enrolment_tokens_are_revoked_from_their_next_use_on() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let alice = s.operator_token("alice", "admin", "1h");
    let bob = s.operator_token("bob", "security", "1h");
    let carol = s.operator_token("carol", "viewer", "1h");

    // The list names every token by id, never by its secret.
    let list = operator_tokens(&s);
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|t| t["state"] == "live"), "{list:?}");
    let text = serde_json::to_string(&list).unwrap();
    for secret in [&alice, &bob, &carol] {
        assert!(!text.contains(secret.as_str()), "a list shows a secret");
    }
    let bob_id = id_of(&list, "name", "bob");

    // Bob keeps a connection open; a viewer may not revoke him, Alice may.
    let list_devices = format!(
        "GET /api/v1/devices HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {bob}\r\n\r\n",
        s.operator
    );
    let mut bobs = keep_alive(&s, &s.operator, None);
    assert_eq!(request_on(&mut bobs, &list_devices).unwrap(), 200);
    let revoke = format!("/api/v1/operators/tokens/{bob_id}/revoke");
    let r = s.operator(&carol, "POST", &revoke, None);
    assert_eq!(r.status, 403, "a viewer revokes no one: {r:?}");
    let r = s.operator(&alice, "POST", &revoke, None);
    assert_eq!(r.status, 200, "{r:?}");
    let revoked: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["name"], "bob");

    // Bob's very next request, on the connection he already had, is refused.
    assert_eq!(request_on(&mut bobs, &list_devices).unwrap(), 401);
    let r = s.operator(&bob, "GET", "/api/v1/devices", None);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("operator token revoked"), "{r:?}");
    s.audited(&alice, "the revocation", |e| {
        field(e, "action") == "operator.token.revoke"
            && field(e, "resource") == "Operator::\"bob\""
            && has(e, "detail", &bob_id)
    });
    s.audited(&alice, "bob's refused request", |e| {
        field(e, "principal") == "Operator::\"bob\""
            && field(e, "decision") == "deny"
            && has(e, "detail", "operator token revoked")
    });

    // Twice is a conflict; an id that is not one is a 400, an unknown one a 404.
    assert_eq!(s.operator(&alice, "POST", &revoke, None).status, 409);
    let r = s.operator(
        &alice,
        "POST",
        "/api/v1/operators/tokens/nothex/revoke",
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = s.operator(
        &alice,
        "POST",
        "/api/v1/operators/tokens/0123456789abcdef/revoke",
        None,
    );
    assert_eq!(r.status, 404, "{r:?}");

    // The CLI revokes too (beside the running server): Carol is refused next.
    let carol_id = id_of(&operator_tokens(&s), "name", "carol");
    let out = String::from_utf8(
        medsec()
            .args(["operator", "token", "revoke", &carol_id])
            .args(s.location())
            .output()
            .unwrap()
            .stderr,
    )
    .unwrap();
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        s.operator(&carol, "GET", "/api/v1/devices", None).status,
        401
    );
    let states: Vec<(String, String)> = operator_tokens(&s)
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("alice".to_owned(), "live".to_owned()),
            ("bob".to_owned(), "revoked".to_owned()),
            ("carol".to_owned(), "revoked".to_owned()),
        ]
    );

    // Enrolment tokens: made through the API, listed, revoked with the CLI, refused at EST.
    let r = s.operator(
        &alice,
        "POST",
        "/api/v1/enrolment-tokens",
        Some(r#"{"device":"pump-7","model":"pump"}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let token = serde_json::from_str::<Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s.operator(
        &alice,
        "GET",
        "/api/v1/enrolment-tokens?device=pump-7",
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let list: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "live");
    assert!(!r.body.contains(&token), "a list shows a secret");
    let id = id_of(&list, "device", "pump-7");
    ok(medsec()
        .args(["fleet", "token", "revoke", &id])
        .args(s.location()));
    s.key_and_request("pump-7", "pump-7");
    let bearer = format!("Authorization: Bearer {token}");
    let r = s.est("simpleenroll", "pump-7", &["-H", &bearer]);
    assert_eq!(
        r.status, 401,
        "a revoked enrolment token enrols nothing: {r:?}"
    );
    s.audited(&alice, "the refused enrolment", |e| {
        field(e, "action") == "est.enroll"
            && field(e, "decision") == "deny"
            && has(e, "detail", "token revoked")
    });
    let out = ok(medsec()
        .args(["fleet", "token", "list", "--device", "pump-7", "--json"])
        .args(s.location()));
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["state"], "revoked", "{list:?}");
    // A used or revoked token cannot be revoked again.
    let r = s.operator(
        &alice,
        "POST",
        &format!("/api/v1/enrolment-tokens/{id}/revoke"),
        None,
    );
    assert_eq!(r.status, 409, "{r:?}");
}

/// A poll of `device`'s director timestamp, as an agent sends it on its kept-alive connection.
fn poll(s: &Running, device: &str) -> String {
    format!(
        "GET /director/{device}/timestamp.json HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.device
    )
}

/// Whether a request on an open connection is refused: a 401, or the connection closed.
fn refused_on(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    head: &str,
) -> bool {
    match request_on(tls, head) {
        Ok(status) => status == 401,
        Err(_) => true,
    }
}

#[test]
fn revocation_reaches_connections_that_are_already_open() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[("MEDSEC_CRL_RELOAD_MS", "200")], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-1");
    s.enrol("pump-2");

    // Revoked through the API: pump-1's open connection is refused on its next request, reads
    // of its own record included, without a new handshake.
    let mut pump1 = keep_alive(&s, &s.device, Some("pump-1"));
    assert_eq!(request_on(&mut pump1, &poll(&s, "pump-1")).unwrap(), 200);
    let own = format!(
        "GET /api/v1/devices/pump-1 HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.device
    );
    assert_eq!(request_on(&mut pump1, &own).unwrap(), 200);
    let r = s.operator(&admin, "POST", "/api/v1/devices/pump-1/revoke", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        refused_on(&mut pump1, &own),
        "a revoked device read its record"
    );
    s.audited(&admin, "pump-1's open connection closed", |e| {
        field(e, "action") == "connection.close"
            && field(e, "principal") == "Device::\"pump-1\""
            && field(e, "decision") == "deny"
    });

    // Revoked offline (`ca revoke` + `ca crl` beside the running server): pump-2's open
    // connection is closed when the server loads the new CRL.
    let mut pump2 = keep_alive(&s, &s.device, Some("pump-2"));
    assert_eq!(request_on(&mut pump2, &poll(&s, "pump-2")).unwrap(), 200);
    s.revoke_offline("pump-2");
    s.audited(&admin, "pump-2's open connection closed", |e| {
        field(e, "action") == "connection.close" && field(e, "principal") == "Device::\"pump-2\""
    });
    assert!(refused_on(&mut pump2, &poll(&s, "pump-2")));
}

#[test]
fn a_slow_request_head_is_closed_after_the_head_timeout_while_idle_devices_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__HEADER_TIMEOUT_MS", "500"),
            ("MEDSEC_LIMITS__DEVICE_IDLE_TIMEOUT_MS", "60000"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-1");
    let mut idle = keep_alive(&s, &s.device, Some("pump-1"));
    assert_eq!(request_on(&mut idle, &poll(&s, "pump-1")).unwrap(), 200);

    // An enrolled device starts a head and never finishes it: closed after the head timeout,
    // not after the device idle timeout.
    let mut slow = keep_alive(&s, &s.device, Some("pump-1"));
    assert_eq!(request_on(&mut slow, &poll(&s, "pump-1")).unwrap(), 200);
    let started = Instant::now();
    slow.write_all(b"GET /director/pump-1/timestamp.json HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.flush().unwrap();
    let mut byte = [0u8; 1];
    let end = std::io::Read::read(&mut slow, &mut byte);
    let held = started.elapsed();
    assert!(
        matches!(end, Ok(0) | Err(_)),
        "the slow head got an answer: {end:?}"
    );
    assert!(
        held >= Duration::from_millis(400) && held < Duration::from_secs(5),
        "a slow head was held {held:?}"
    );
    s.audited(&admin, "the slow head", |e| {
        field(e, "action") == "http.head" && field(e, "principal") == "Device::\"pump-1\""
    });

    // The idle connection outlived the head timeout several times over.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(request_on(&mut idle, &poll(&s, "pump-1")).unwrap(), 200);
}

/// Opens `n` TCP connections to `addr` and keeps them open (sending nothing).
fn idle_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect()
}

/// How many of `conns` the server has closed: a read sees the end (or a reset) within `wait`
/// instead of timing out.
fn closed(conns: &mut [std::net::TcpStream], wait: Duration) -> usize {
    conns
        .iter_mut()
        .filter_map(|c| {
            c.set_read_timeout(Some(wait)).unwrap();
            let mut b = [0u8; 1];
            let gone = match std::io::Read::read(c, &mut b) {
                Ok(_) => true,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            };
            gone.then_some(())
        })
        .count()
}

#[test]
fn connection_caps_fit_the_descriptor_limit_and_a_device_port_flood_leaves_operators_working() {
    let ulimit: &[&str] = &["sh", "-c", r#"ulimit -n 1024 && exec "$0" "$@""#];

    // With 1,024 descriptors, the default caps do not fit: the server says so and stops.
    let tmp = tempfile::tempdir().unwrap();
    let out = server_command(tmp.path(), &[], &[], ulimit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the server started over its budget: {err}"
    );
    assert!(
        err.contains("1024") && err.contains("16896"),
        "the refusal names both numbers: {err}"
    );

    // Caps that fit: it starts.
    let tmp = tempfile::tempdir().unwrap();
    let s = start_under(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__MAX_CONNECTIONS", "300"),
            ("MEDSEC_LIMITS__MAX_OPERATOR_CONNECTIONS", "64"),
            ("MEDSEC_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "1000"),
            ("MEDSEC_LIMITS__HANDSHAKE_TIMEOUT_MS", "60000"),
        ],
        &[],
        ulimit,
    );
    let admin = s.operator_token("alice", "admin", "1h");

    // 400 idle connections to the device port: 300 are held, the rest wait in the backlog;
    // operators keep working throughout.
    let flood = idle_connections(&s.device, 400);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let r = s.operator(&admin, "GET", "/api/v1/devices", None);
        assert_eq!(r.status, 200, "operators were locked out: {r:?}");
    }
    drop(flood);

    // Per source address: past the cap, connections are closed at once, and audited.
    let tmp = tempfile::tempdir().unwrap();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "20"),
            ("MEDSEC_LIMITS__HANDSHAKE_TIMEOUT_MS", "60000"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    let mut conns = idle_connections(&s.device, 30);
    std::thread::sleep(Duration::from_millis(300));
    let n = closed(&mut conns, Duration::from_millis(200));
    assert_eq!(n, 10, "the 10 connections past the cap of 20 are closed");
    s.audited(&admin, "the capped connections", |e| {
        field(e, "action") == "connection.open"
            && field(e, "resource") == "device-port"
            && has(e, "detail", "more than 20 open connections")
    });
}

/// A telemetry batch numbered `sequence` with one security event.
fn batch(sequence: i64) -> String {
    format!(
        r#"{{"sequence": {sequence}, "events": [
        {{"kind": "security", "at_ms": 1764748900000, "event": "login_succeeded", "detail": "badge"}}]}}"#
    )
}

#[test]
fn a_telemetry_batch_numbered_to_blind_the_defender_is_refused_with_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-1");
    let me = s.as_device("pump-1");
    assert_eq!(s.telemetry(&me, "pump-1", &batch(1), &[]).status, 200);

    // 2^63 - 1: accepted, every later batch would be a "replay". Refused, with the number to
    // send next, and raised as an alert.
    let r = s.telemetry(&me, "pump-1", &batch(i64::MAX), &[]);
    assert_eq!(r.status, 409, "{r:?}");
    let answer: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["last_sequence"], 1, "{answer}");
    let r = s.operator(&admin, "GET", "/api/v1/devices/pump-1/alerts", None);
    let alerts: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    let jump = alerts
        .iter()
        .find(|a| a["rule"] == "telemetry-sequence-jump")
        .unwrap_or_else(|| panic!("no jump alert in {alerts:?}"));
    assert_eq!(jump["severity"], "high", "{jump}");
    s.audited(&admin, "the refused jump", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && has(
                e,
                "detail",
                "more than 1000000 after the last accepted batch, 1",
            )
    });
    // An incident was opened for it.
    let r = s.operator(&admin, "GET", "/api/v1/incidents", None);
    assert!(r.body.contains("telemetry-sequence-jump"), "{r:?}");

    // The device still reports, in its own numbering.
    assert_eq!(s.telemetry(&me, "pump-1", &batch(2), &[]).status, 200);
    assert_eq!(
        s.telemetry(&me, "pump-1", &batch(1_000_002), &[]).status,
        200,
        "a step of exactly the limit is accepted"
    );

    // The numbers the step skipped are a gap: the device's own next number fills it, once.
    assert_eq!(s.telemetry(&me, "pump-1", &batch(3), &[]).status, 200);
    let again = s.telemetry(&me, "pump-1", &batch(3), &[]);
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.contains(r#""duplicate":true"#), "{again:?}");
    // Other content under a stored number is a replay.
    let forged = batch(3).replace("badge", "forged");
    let r = s.telemetry(&me, "pump-1", &forged, &[]);
    assert_eq!(r.status, 409, "a forged batch under a stored number: {r:?}");
    assert!(r.body.contains("other content"), "{r:?}");
    // An operator's reset (audited) forgets the cursor and the gaps.
    let r = s.operator(
        &admin,
        "POST",
        "/api/v1/devices/pump-1/telemetry/reset",
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("1000002"), "{r:?}");
    assert_eq!(s.telemetry(&me, "pump-1", &batch(4), &[]).status, 200);
    s.audited(&admin, "the reset", |e| {
        field(e, "action") == "telemetry.reset" && has(e, "detail", "was 1000002")
    });
}

#[test]
fn the_audit_log_key_is_encrypted_and_a_plaintext_one_refused() {
    let insecure = "MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY";
    // No passphrase, no permission for a plaintext key: the server does not start, and says
    // what to do.
    let tmp = tempfile::tempdir().unwrap();
    let out = server_command(tmp.path(), &[], &[], &[])
        .env_remove(insecure)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with no way to protect its key: {err}"
    );
    assert!(
        err.contains("audit.key") && err.contains("--insecure-plaintext-audit-key"),
        "{err}"
    );

    // A plaintext key (the tests' servers keep one) is encrypted in place at the first start
    // with a passphrase, and stays usable.
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    let key = s.data.join("audit.key");
    drop(s);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    let s = start(
        tmp.path(),
        &[("MEDSEC_PASSPHRASE", "correct horse battery staple")],
        &[],
    );
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.contains("ENCRYPTED PRIVATE KEY"), "{pem}");
    let out = medsec()
        .args([
            "operator", "token", "create", "--name", "a", "--role", "admin",
        ])
        .args(s.location())
        .env("MEDSEC_PASSPHRASE", "correct horse battery staple")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        s.operator(&admin, "GET", "/api/v1/devices", None).status,
        200
    );
    // Without the passphrase, the CLI cannot sign into the log.
    let out = medsec()
        .args([
            "operator", "token", "create", "--name", "b", "--role", "admin",
        ])
        .args(s.location())
        .env_remove(insecure)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ok(medsec().args(["audit", "verify"]).args(s.location()));
    assert!(out.contains("audit log verifies"), "{out}");
}

/// Completes a TLS handshake with the device port from a rustls client offering `groups` in
/// that order (a key share for the first only, as rustls sends), and returns the group the
/// server chose, or the handshake error.
fn negotiated(
    s: &Running,
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(s.ca("root.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = groups.to_vec();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut tcp = std::net::TcpStream::connect(&s.device).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default())
}

#[test]
fn the_device_port_chooses_the_hybrid_key_exchange_by_its_own_preference_and_can_require_it() {
    use rustls::crypto::aws_lc_rs::kx_group::{SECP256R1, X25519, X25519MLKEM768};
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[], &[]);
    // A client that prefers X25519 but lists X25519MLKEM768 gets the hybrid group (after a
    // HelloRetryRequest: its key share was for X25519).
    assert_eq!(
        negotiated(&s, &[X25519, SECP256R1, X25519MLKEM768]).unwrap(),
        "X25519MLKEM768"
    );
    assert_eq!(
        negotiated(&s, &[X25519MLKEM768, X25519]).unwrap(),
        "X25519MLKEM768"
    );
    // A client without it still connects, classically.
    assert_eq!(negotiated(&s, &[X25519]).unwrap(), "X25519");
    drop(s);

    // Required: a classical-only client is refused at the handshake, and the refusal audited.
    let tmp = tempfile::tempdir().unwrap();
    let s = start(tmp.path(), &[("MEDSEC_REQUIRE_HYBRID_KX", "true")], &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    let refused = negotiated(&s, &[X25519, SECP256R1]).unwrap_err();
    assert!(!refused.is_empty());
    assert_eq!(
        negotiated(&s, &[X25519, X25519MLKEM768]).unwrap(),
        "X25519MLKEM768"
    );
    s.audited(&admin, "the classical-only handshake", |e| {
        field(e, "action") == "tls.handshake"
            && field(e, "resource") == "device-port"
            && field(e, "decision") == "deny"
    });
}

#[test]
fn the_audit_log_key_can_live_in_a_pkcs11_token() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(hsm) = crate::agent::SoftHsm::new(tmp.path(), "medsec-audit") else {
        return;
    };
    let pin = tmp.path().join("pin");
    std::fs::write(&pin, "4321").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (module, conf, pin) = (
        hsm.module.display().to_string(),
        hsm.conf.display().to_string(),
        pin.display().to_string(),
    );
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("MEDSEC_AUDIT_KEY_PKCS11__MODULE", module.as_str()),
        ("MEDSEC_AUDIT_KEY_PKCS11__TOKEN", "medsec-audit"),
        ("MEDSEC_AUDIT_KEY_PKCS11__PIN_FILE", pin.as_str()),
    ];
    let admin_token = |s: &Running| {
        ok(medsec()
            .args([
                "operator", "token", "create", "--name", "a", "--role", "admin",
            ])
            .args(s.location())
            .envs(env))
        .trim()
        .to_owned()
    };
    let s = start(tmp.path(), &env, &[]);
    let admin = admin_token(&s);
    assert_eq!(
        s.operator(&admin, "GET", "/api/v1/devices", None).status,
        200
    );
    // The key was made in the token: no key file, a P-256 public key, one object in the token.
    assert!(
        !s.data.join("audit.key").exists(),
        "a key file beside the token"
    );
    let public = std::fs::read_to_string(s.data.join("audit.pub")).unwrap();
    assert!(public.contains("ecdsa"), "{public}");
    assert_eq!(hsm.objects(), 2, "the key pair, in the token");
    drop(s);
    // A restart finds the same key: heads of both runs verify under the one public key.
    let s = start(tmp.path(), &env, &[]);
    let admin = admin_token(&s);
    assert_eq!(
        s.operator(&admin, "GET", "/api/v1/devices", None).status,
        200
    );
    assert_eq!(hsm.objects(), 2, "no second key");
    let out = ok(medsec().args(["audit", "verify"]).args(s.location()));
    assert!(out.contains("audit log verifies"), "{out}");
    // Without the PIN's file the server does not start.
    drop(s);
    let out = server_command(
        tmp.path(),
        &[
            ("SOFTHSM2_CONF", conf.as_str()),
            ("MEDSEC_AUDIT_KEY_PKCS11__MODULE", module.as_str()),
            ("MEDSEC_AUDIT_KEY_PKCS11__TOKEN", "medsec-audit"),
            ("MEDSEC_AUDIT_KEY_PKCS11__PIN_FILE", "/nonexistent/pin"),
        ],
        &[],
        &[],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
}
