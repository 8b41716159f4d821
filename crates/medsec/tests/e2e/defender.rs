//! The Defender through the server: window and Sigma rules, identity binding, learned
//! baselines, telemetry batches in sequence, policy errors, and incidents with their playbooks.

use serde_json::Value;

use medsec_testkit::*;

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
    // Each occurrence of a baseline alert, newest alert first (a repeated alert of one rule is
    // one row with a count: an occurrence per count).
    let baseline_rules = |device: &str| -> Vec<String> {
        alerts(device)
            .iter()
            .filter(|a| {
                a["rule"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("baseline:"))
            })
            .flat_map(|a| {
                let n = usize::try_from(a["count"].as_i64().unwrap_or(1)).unwrap_or(1);
                std::iter::repeat_n(a["rule"].as_str().unwrap_or_default().to_owned(), n)
            })
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
    // The same batch again (an answer lost) is a duplicate: answered as stored, not stored
    // twice. Other content under its number is a replay: refused, named.
    let r = send("pump-t", "pump-t", &["--data-binary", &b1]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        serde_json::json!({"accepted": 1, "events": 0, "duplicate": true})
    );
    let forged = b1.replace("18230", "18231");
    let r = send("pump-t", "pump-t", &["--data-binary", &forged]);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body
            .contains("batch 1 is stored already with other content"),
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
            && field(e, "kind") == "telemetry-replay"
            && has(e, "detail", "replayed or forged")
    });
    s.audited(&admin, "the cross-device batch", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "principal").contains("pump-u")
    });
    s.audited(&admin, "the patient field", |e| {
        field(e, "action") == "telemetry.send" && has(e, "detail", "unknown field `patient`")
    });

    let alerts = |path: &str, token: &str| {
        let r = s.curl(&[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &s.operator_url(path),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    // So far everything was within the pump policy: the one alert is the forged replay's.
    let replay = alerts("/api/v1/devices/pump-t/alerts", &admin);
    let replay = replay.as_array().unwrap();
    assert_eq!(replay.len(), 1, "{replay:?}");
    assert_eq!(replay[0]["rule"], "telemetry-replay");
    assert_eq!(replay[0]["sequence"], 1);
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
    assert_eq!(fleet.as_array().unwrap().len(), 3, "{fleet}");
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
fn repeated_evidence_is_one_alert_with_a_count_and_a_suppression_silences_without_dropping() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111, 443]}}}"#,
    )
    .unwrap();
    let policy_env = policy.display().to_string();
    let s = start(tmp.path(), &[("MEDSEC_DEFENDER_POLICY", &policy_env)], &[]);
    let security = s.operator_token("sam", "security", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    s.enrol("pump-agg");
    let mut sequence = 0;
    let mut send = |remote: &str| {
        sequence += 1;
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
              "remote": "{remote}", "remote_port": 443, "protocol": "tcp", "bytes_out": 900,
              "bytes_in": 300, "packets_out": 7, "packets_in": 5, "duration_ms": 80}}]}}"#
        );
        let r = s.telemetry(&s.as_device("pump-agg"), "pump-agg", &body, &[]);
        assert_eq!(r.status, 200, "{r:?}");
    };
    let alerts = || -> Vec<Value> {
        let r = s.operator(&viewer, "GET", "/api/v1/devices/pump-agg/alerts", None);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let incident_alerts = || -> usize {
        let r = s.operator(&viewer, "GET", "/api/v1/incidents?open=true", None);
        let list: Value = serde_json::from_str(&r.body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i["alerts"].as_array().unwrap().len())
            .sum()
    };

    // The same exfiltration three times: one alert, counted three times, in one incident.
    for _ in 0..3 {
        send("203.0.113.9");
    }
    let list = alerts();
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(
        (a["rule"].as_str(), a["key"].as_str(), a["count"].as_i64()),
        (
            Some("destination-not-allowed"),
            Some("203.0.113.9"),
            Some(3)
        ),
        "{a}"
    );
    assert!(
        a["last_seen_ms"].as_i64() >= a["first_seen_ms"].as_i64(),
        "{a}"
    );
    assert!(a["suppressed_by"].is_null());
    assert_eq!(incident_alerts(), 1);

    // A viewer may not suppress: 403, and the refusal is audited.
    let body = r#"{"rule": "destination-not-allowed", "scope": "destination",
        "value": "198.51.100.7", "reason": "the vendor's update server (CHG-1042)",
        "duration_secs": 3600}"#;
    let r = s.operator(&viewer, "POST", "/api/v1/suppressions", Some(body));
    assert_eq!(r.status, 403, "{r:?}");
    s.audited(&security, "the refused suppression", |e| {
        e["action"] == "alert.suppress" && e["decision"] == "deny"
    });
    // Without a reason it is refused by name; with one it is stored and audited.
    let r = s.operator(
        &security,
        "POST",
        "/api/v1/suppressions",
        Some(r#"{"rule": "destination-not-allowed", "scope": "destination", "value": "198.51.100.7", "reason": "", "duration_secs": 3600}"#),
    );
    assert!(
        r.status == 400 && r.body.contains("reason is mandatory"),
        "{r:?}"
    );
    let r = s.operator(&security, "POST", "/api/v1/suppressions", Some(body));
    assert_eq!(r.status, 201, "{r:?}");
    let sup: Value = serde_json::from_str(&r.body).unwrap();
    let sup_id = sup["id"].as_i64().unwrap();
    s.audited(&security, "the suppression", |e| {
        e["action"] == "alert.suppress" && e["decision"] == "allow" && has(e, "detail", "CHG-1042")
    });

    // Suppressed alerts are stored and counted, never dropped, and open no incident.
    send("198.51.100.7");
    send("198.51.100.7");
    let list = alerts();
    let suppressed: Vec<&Value> = list.iter().filter(|a| a["key"] == "198.51.100.7").collect();
    assert_eq!(suppressed.len(), 1, "{list:?}");
    assert_eq!(suppressed[0]["suppressed_by"].as_i64(), Some(sup_id));
    assert_eq!(suppressed[0]["count"].as_i64(), Some(2));
    assert_eq!(incident_alerts(), 1, "no new incident alert");
    // Another destination is not covered.
    send("192.0.2.44");
    assert_eq!(incident_alerts(), 2);

    // A suppression that has expired stops applying by itself.
    let r = s.operator(
        &security,
        "POST",
        "/api/v1/suppressions",
        Some(r#"{"rule": "destination-not-allowed", "scope": "device", "value": "pump-agg", "reason": "maintenance window, CHG-1043", "duration_secs": 1}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    send("203.0.113.77");
    let fresh = alerts()
        .into_iter()
        .find(|a| a["key"] == "203.0.113.77")
        .unwrap();
    assert!(fresh["suppressed_by"].is_null(), "{fresh}");
    assert_eq!(incident_alerts(), 3);
    // Listed with whether each is in force; lifted before its end, it stops at once.
    let r = s.operator(&viewer, "GET", "/api/v1/suppressions", None);
    let listed: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["in_force"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![true, false]
    );
    let path = format!("/api/v1/suppressions/{sup_id}");
    assert_eq!(s.operator(&viewer, "DELETE", &path, None).status, 403);
    assert_eq!(s.operator(&security, "DELETE", &path, None).status, 204);
    assert_eq!(s.operator(&security, "DELETE", &path, None).status, 404);
    send("198.51.100.7");
    let list = alerts();
    assert!(
        list.iter()
            .any(|a| a["key"] == "198.51.100.7" && a["suppressed_by"].is_null()),
        "{list:?}"
    );
    // The timeline shows the suppressed occurrences too.
    let r = s.operator(&security, "GET", "/api/v1/devices/pump-agg/timeline", None);
    assert!(
        r.body
            .contains(&format!("suppressed by suppression {sup_id}")),
        "{r:?}"
    );
    assert!(r.body.contains("[3 times"), "{r:?}");
    // The Defender's audit checks count the suppressed occurrences.
    let r = s.operator(&security, "GET", "/api/v1/defender/audit", None);
    assert!(
        r.status == 200
            && r.body.contains("alerts-suppressed")
            && r.body
                .contains("2 occurrence(s) of destination-not-allowed"),
        "{r:?}"
    );
    // The same from the command line, on the server's data: checked, stored, audited.
    let suppress = |reason: &str| {
        let mut c = medsec();
        c.args(["defender", "suppress", "--rule", "clinical-implausible"])
            .args(["--scope", "model", "--value", "monitor", "--for", "2h"])
            .args(["--reason", reason])
            .args(s.location());
        c
    };
    let err = fails(&mut suppress("short"));
    assert!(err.contains("reason is mandatory"), "{err}");
    let out = ok(&mut suppress("sensor replaced, ticket 77"));
    assert!(
        out.contains("suppression 3: clinical-implausible for model monitor"),
        "{out}"
    );
    let table = ok(medsec()
        .args(["defender", "suppressions"])
        .args(s.location()));
    assert!(
        table.contains("| 3 | clinical-implausible | model | monitor | yes |"),
        "{table}"
    );
    ok(medsec().args(["defender", "lift", "3"]).args(s.location()));
    let table = ok(medsec()
        .args(["defender", "suppressions"])
        .args(s.location()));
    assert!(
        table.contains("| 3 | clinical-implausible | model | monitor | lifted |"),
        "{table}"
    );
    s.audited(&security, "the CLI's lifting", |e| {
        e["action"] == "alert.suppress"
            && has(e, "principal", "Cli::")
            && has(e, "detail", "lifted")
    });
}
