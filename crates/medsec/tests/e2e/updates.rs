//! Signed updates through the server: signed version reports (forgery and replay refused),
//! campaigns planned from the inventory and controlled by role, the director's polls and offers
//! verified against the image repository.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use medsec_testkit::*;

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
