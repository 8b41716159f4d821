//! `medsec agent` end to end against a real `medsec server`: EST enrolment, the director and the
//! image repository over mutual TLS, A/B install with health check, rollback, clinical-use
//! deferral, signed reports driving campaigns; then SIGKILL at every step of the install cycle
//! and a randomised run of kills with torn writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use medsec_testkit::*;
use serde_json::Value;

/// Healthy unless it is version 1.1.0: the broken build of these tests.
const HEALTH: &str = r#"test "$MEDSEC_VERSION" != 1.1.0"#;

struct Fleet {
    s: Running,
    admin: String,
}

impl Fleet {
    fn new(work: &Path) -> Self {
        publish_image_repository(work);
        let config = work.join("medsec.toml").display().to_string();
        // Tests poll the operator API quickly; the default per-principal rate is for production.
        let s = start(
            work,
            &[
                ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "10000"),
                ("MEDSEC_LIMITS__REQUEST_BURST", "10000"),
            ],
            &["--config", &config],
        );
        let admin = s.operator_token("alice", "admin", "1h");
        Self { s, admin }
    }

    fn dir(&self, device: &str) -> PathBuf {
        self.s.work.join(format!("agent-{device}"))
    }

    /// Enrols a simulated pump running factory firmware 1.0.0 (the signed pump-1.0.0.img).
    fn enrol(&self, device: &str) {
        ok(&mut self.enrol_command(device));
    }

    fn enrol_command(&self, device: &str) -> Command {
        let token = ok(medsec()
            .args(["fleet", "token", "create", "--device", device])
            .args(["--model", "infusion-pump", "--hardware-id", "pump-rev-b"])
            .args(self.s.location()))
        .trim()
        .to_owned();
        self.enrol_with(device, &token, &self.s.work.join("pump-1.0.0.img"))
    }

    fn enrol_with(&self, device: &str, token: &str, factory: &Path) -> Command {
        self.enrol_as(device, token, factory, "pump-rev-b")
    }

    fn enrol_as(&self, device: &str, token: &str, factory: &Path, hardware_id: &str) -> Command {
        let mut c = medsec();
        c.args(["agent", "enrol", "--dir"])
            .arg(self.dir(device))
            .args(["--server", &self.s.device_url(""), "--ca"])
            .arg(self.s.ca("chain.pem"))
            .args(["--device", device, "--hardware-id", hardware_id])
            .args(["--token", token, "--factory-image"])
            .arg(factory)
            .args([
                "--factory-version",
                "1.0.0",
                "--factory-release-counter",
                "10",
            ]);
        c
    }

    fn agent(&self, device: &str, extra: &[&str]) -> Command {
        let mut c = medsec();
        c.args(["agent", "run", "--once", "--dir"])
            .arg(self.dir(device))
            .args(["--health-command", HEALTH])
            .args(extra);
        c
    }

    fn run(&self, device: &str, extra: &[&str]) -> String {
        ok(&mut self.agent(device, extra))
    }

    fn api(&self, path: &str) -> Value {
        let r = self.s.curl(&[
            "-H",
            &format!("Authorization: Bearer {}", self.admin),
            &self.s.operator_url(path),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str(&r.body).unwrap()
    }

    fn post(&self, path: &str, body: &str) {
        let r = self.s.curl(&[
            "-H",
            &format!("Authorization: Bearer {}", self.admin),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &self.s.operator_url(path),
        ]);
        assert!(matches!(r.status, 200 | 201), "{path}: {r:?}");
    }

    /// Creates and starts a campaign of `target` over `devices`.
    fn campaign(&self, name: &str, version: &str, counter: u32, devices: &[&str], canary: usize) {
        let body = format!(
            r#"{{"spec": {{"name": "{name}", "release": {{"version": "{version}", "release_counter": {counter},
                "target": "pump-{version}.img"}}, "canary": {{"count": {canary}}}, "max_failure_rate": 0,
                "advance_when_finished": 1}}, "selection": {{"devices": {}}}}}"#,
            serde_json::to_string(devices).unwrap()
        );
        self.post("/api/v1/campaigns", &body);
        self.post(&format!("/api/v1/campaigns/{name}/start"), "");
    }

    fn device_state(&self, campaign: &str, device: &str) -> String {
        progress_of(
            &self.api(&format!("/api/v1/campaigns/{campaign}?devices=true")),
            device,
        )
    }

    fn installed(&self, device: &str) -> (String, i64) {
        let d = self.api(&format!("/api/v1/devices/{device}"));
        (
            d["installed_version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            d["release_counter"].as_i64().unwrap(),
        )
    }

    /// Every telemetry event the server stored for `device`, oldest batch first.
    fn telemetry_events(&self, device: &str) -> Vec<Value> {
        let batches = self.api(&format!("/api/v1/devices/{device}/telemetry?limit=1000"));
        let mut batches = batches.as_array().unwrap().clone();
        batches.reverse();
        batches
            .iter()
            .flat_map(|b| b["batch"]["events"].as_array().unwrap().clone())
            .collect()
    }

    fn status(&self, device: &str) -> String {
        ok(medsec()
            .args(["agent", "status", "--dir"])
            .arg(self.dir(device)))
    }

    /// Every image the device ever booted was one the image repository signed (the boot log
    /// records the SHA-256 of the bytes booted, hashed independently of the boot check).
    fn only_signed_images_booted(&self, device: &str) {
        let signed: Vec<String> = ["pump-1.0.0.img", "pump-1.1.0.img", "pump-1.2.0.img"]
            .iter()
            .map(|f| {
                hex::encode(medsec_crypto::digest::sha256(
                    &std::fs::read(self.s.work.join(f)).unwrap(),
                ))
            })
            .collect();
        let log = std::fs::read_to_string(self.dir(device).join("boots.log")).unwrap();
        assert!(!log.is_empty());
        for line in log.lines() {
            let sha = line.rsplit_once("sha256=").unwrap().1;
            assert!(signed.iter().any(|s| s == sha), "{device} booted {line}");
        }
    }
}

#[test]
fn the_agent_installs_rolls_back_defers_and_reports_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    f.enrol("pump-a");
    f.enrol("pump-b");
    // First run: the device says what it runs, signed with its EST-issued key.
    f.run("pump-a", &[]);
    f.run("pump-b", &[]);
    assert_eq!(f.installed("pump-a"), ("1.0.0".into(), 10));

    // 1.1.0 is broken: the canary installs it into slot B, the health check fails, the
    // bootloader goes back to slot A, the device reports the failure, the campaign halts.
    f.campaign("fw-1.1", "1.1.0", 11, &["pump-a", "pump-b"], 1);
    f.run("pump-a", &[]);
    f.run("pump-b", &[]);
    let c = f.api("/api/v1/campaigns/fw-1.1?devices=true");
    assert_eq!(c["status"]["status"], "halted", "{c}");
    let states: Vec<String> = ["pump-a", "pump-b"]
        .iter()
        .map(|d| f.device_state("fw-1.1", d))
        .collect();
    assert!(
        states.contains(&"failed".to_owned()) && states.contains(&"waiting".to_owned()),
        "{states:?}"
    );
    let canary = if states[0] == "failed" {
        "pump-a"
    } else {
        "pump-b"
    };
    let other = if canary == "pump-a" {
        "pump-b"
    } else {
        "pump-a"
    };
    assert_eq!(f.installed(canary), ("1.0.0".into(), 10));
    let st = f.status(canary);
    assert!(
        st.contains("slot A: pump-1.0.0.img 1.0.0 (release counter 10) active"),
        "{st}"
    );
    assert!(st.contains("slot B: pump-1.1.0.img 1.1.0"), "{st}");
    assert!(!st.contains("pending"), "{st}");
    let boots = std::fs::read_to_string(f.dir(canary).join("boots.log")).unwrap();
    assert!(boots.contains("slot=B target=pump-1.1.0.img"), "{boots}");
    assert!(boots.lines().last().unwrap().contains("slot=A"), "{boots}");
    let reports = f.api(&format!("/api/v1/devices/{canary}/versions?limit=5"));
    use base64::Engine as _;
    let signed: Vec<String> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(r["payload"].as_str().unwrap())
                .unwrap();
            String::from_utf8(b).unwrap()
        })
        .collect();
    assert!(
        signed
            .iter()
            .any(|p| p.contains(r#""outcome":"failed","reason":"health check failed"#)),
        "{signed:?}"
    );
    // Running again changes nothing: the failed target is not tried again.
    f.run(canary, &[]);
    assert_eq!(f.installed(canary), ("1.0.0".into(), 10));

    // 1.2.0: the canary installs and commits; the other pump is in clinical use and defers,
    // then installs once idle; the campaign completes.
    f.campaign("fw-1.2", "1.2.0", 12, &["pump-a", "pump-b"], 1);
    let first = canary_of(&f.api("/api/v1/campaigns/fw-1.2?devices=true"));
    let second = if first == "pump-a" {
        "pump-b"
    } else {
        "pump-a"
    };
    f.run(&first, &[]);
    assert_eq!(f.device_state("fw-1.2", &first), "succeeded");
    assert_eq!(f.installed(&first), ("1.2.0".into(), 12));
    let therapy = tmp.path().join("therapy-running");
    std::fs::write(&therapy, "").unwrap();
    let flag = therapy.display().to_string();
    f.run(second, &["--clinical-use-file", &flag]);
    assert_eq!(f.device_state("fw-1.2", second), "deferred");
    assert_eq!(f.installed(second), ("1.0.0".into(), 10));
    f.run(second, &["--clinical-use-file", &flag]);
    assert_eq!(f.device_state("fw-1.2", second), "deferred");
    std::fs::remove_file(&therapy).unwrap();
    f.run(
        second,
        &[
            "--clinical-use-file",
            &flag,
            "--max-download-rate",
            "1000000",
        ],
    );
    assert_eq!(f.device_state("fw-1.2", second), "succeeded");
    assert_eq!(f.installed(second), ("1.2.0".into(), 12));
    let c = f.api("/api/v1/campaigns/fw-1.2");
    assert_eq!(c["status"]["status"], "completed", "{c}");
    let st = f.status(second);
    assert!(
        st.contains("pump-1.2.0.img 1.2.0 (release counter 12) active"),
        "{st}"
    );
    for d in ["pump-a", "pump-b"] {
        f.only_signed_images_booted(d);
    }
    let _ = other;

    // Telemetry came along: every boot, the canary's failed 1.1.0 and its installed 1.2.0, in
    // batches numbered 1, 2, … with the kernel's network metrics.
    let events = f.telemetry_events(canary);
    let security: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "security")
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        security
            .iter()
            .any(|e| e.starts_with("boot slot B: pump-1.1.0.img 1.1.0 (on trial)")),
        "{security:?}"
    );
    assert!(
        security
            .iter()
            .any(|e| e.starts_with("update_failed pump-1.1.0.img: health check failed")),
        "{security:?}"
    );
    assert!(
        security
            .iter()
            .any(|e| e == "update_installed pump-1.2.0.img"),
        "{security:?}"
    );
    assert!(
        events.iter().any(|e| e["name"] == "listening_tcp_ports"),
        "{events:?}"
    );
}

#[test]
fn a_mistyped_factory_image_leaves_the_enrolment_token_unspent() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    let token = ok(medsec()
        .args(["fleet", "token", "create", "--device", "pump-typo"])
        .args(["--model", "infusion-pump", "--hardware-id", "pump-rev-b"])
        .args(f.s.location()))
    .trim()
    .to_owned();
    let typo = f.s.work.join("pump-1.0.0.imgg");
    let e = fails(&mut f.enrol_with("pump-typo", &token, &typo));
    assert!(
        e.contains("pump-1.0.0.imgg") && e.contains("the enrolment token is still valid"),
        "{e}"
    );
    let empty = f.s.work.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let e = fails(&mut f.enrol_with("pump-typo", &token, &empty));
    assert!(e.contains("is empty"), "{e}");
    // The same token enrols once the file is right: nothing reached the server before.
    ok(&mut f.enrol_with("pump-typo", &token, &f.s.work.join("pump-1.0.0.img")));
    assert_eq!(f.api("/api/v1/devices/pump-typo")["state"], "enrolled");
}

#[test]
fn a_hardware_id_the_record_or_the_model_does_not_declare_is_refused_before_the_token_is_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    let factory = f.s.work.join("pump-1.0.0.img");
    let r = f.s.operator(
        &f.admin,
        "PUT",
        "/api/v1/inventory/models/infusion-pump",
        Some(
            r#"{"vendor": "Acme Medical", "clinical": "therapy", "exposure": "network",
               "support": {"status": "supported"}, "hardware_ids": ["pump-rev-b"]}"#,
        ),
    );
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    let token = |device: &str, extra: &[&str]| {
        ok(medsec()
            .args(["fleet", "token", "create", "--device", device])
            .args(["--model", "infusion-pump"])
            .args(extra)
            .args(f.s.location()))
        .trim()
        .to_owned()
    };

    // The model declares pump-rev-b: a device saying pump-rev-c is refused, the ids named.
    let t = token("pump-hw", &[]);
    let e = fails(&mut f.enrol_as("pump-hw", &t, &factory, "pump-rev-c"));
    assert!(
        e.contains("declares hardware ids [\"pump-rev-b\"]") && e.contains("was not used"),
        "{e}"
    );
    assert_eq!(f.api("/api/v1/devices/pump-hw")["state"], "registered");
    // The same token then enrols the right board, and the record keeps what it stated.
    ok(&mut f.enrol_as("pump-hw", &t, &factory, "pump-rev-b"));
    // Spent, it says so, and no longer tells what the model declares.
    let e = fails(&mut f.enrol_as("pump-hw", &t, &factory, "pump-rev-c"));
    assert!(
        e.contains("token already used") && !e.contains("declares"),
        "{e}"
    );
    let d = f.api("/api/v1/devices/pump-hw");
    assert_eq!(
        (d["state"].as_str(), d["hardware_id"].as_str()),
        (Some("enrolled"), Some("pump-rev-b"))
    );

    // The record names pump-rev-b (the operator set it): another id is refused, named.
    let t = token("pump-hw2", &["--hardware-id", "pump-rev-b"]);
    let e = fails(&mut f.enrol_as("pump-hw2", &t, &factory, "pump-rev-x"));
    assert!(
        e.contains("registered for hardware id \"pump-rev-b\""),
        "{e}"
    );
    f.s.audited(&f.admin, "the refusal", |e| {
        field(e, "action") == "est.enroll"
            && field(e, "decision") == "deny"
            && has(e, "detail", "pump-rev-x")
    });
}

#[test]
fn telemetry_waits_while_the_server_is_unreachable_and_then_goes_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    f.enrol("pump-o");
    let config_path = f.dir("pump-o").join("device.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    // The server moves away (a closed port): the agent fails its poll, the batch waits.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = f.s.device_url("");
    std::fs::write(
        &config_path,
        config.replace(&url, &format!("https://{closed}")),
    )
    .unwrap();
    for _ in 0..2 {
        let out = f.agent("pump-o", &[]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("telemetry") && err.contains("wait for the next poll"),
            "{err}"
        );
    }
    let status = f.status("pump-o");
    assert!(
        status.contains("telemetry: 2 batch(es) waiting"),
        "{status}"
    );
    // Back: both waiting batches go first, then the new one, in order.
    std::fs::write(&config_path, &config).unwrap();
    f.run("pump-o", &[]);
    let batches = f.api("/api/v1/devices/pump-o/telemetry");
    let sequences: Vec<i64> = batches
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, vec![3, 2, 1]);
    let boots = f
        .telemetry_events("pump-o")
        .iter()
        .filter(|e| e["event"] == "boot")
        .count();
    assert_eq!(boots, 3);
    // The agent reports the MAC of its default-route interface, read as the kernel shows it
    // here (a machine with no default route has none to report).
    let host_mac = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| medsec_agent::telemetry::parse_default_interface(&t))
        .and_then(|i| std::fs::read_to_string(format!("/sys/class/net/{i}/address")).ok())
        .map(|m| m.trim().to_ascii_lowercase());
    let macs: Vec<String> = f
        .telemetry_events("pump-o")
        .iter()
        .filter(|e| e["kind"] == "identity")
        .map(|e| e["mac"].as_str().unwrap().to_owned())
        .collect();
    match host_mac {
        Some(mac) if mac != "00:00:00:00:00:00" => {
            assert!(
                !macs.is_empty() && macs.iter().all(|m| *m == mac),
                "{macs:?} vs {mac}"
            );
        }
        _ => eprintln!("no default-route MAC on this machine: the identity event is not checked"),
    }
    let status = f.status("pump-o");
    assert!(
        status.contains("telemetry: 0 batch(es) waiting"),
        "{status}"
    );
}

/// The agent's own certificate and key (its `identity.pem` holds both) send a batch with curl.
fn attestation_failure(f: &Fleet, device: &str) {
    let identity = f.dir(device).join("identity.pem").display().to_string();
    let body = r#"{"sequence": 1000000, "events": [{"kind": "security", "at_ms": 1764748900000,
        "event": "attestation_failed", "detail": "PCR 7 does not match"}]}"#;
    let r =
        f.s.telemetry(&["--cert".into(), identity], device, body, &[]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn an_incident_forces_an_update_on_a_quarantined_pump_and_a_forced_update_can_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    for d in ["pump-f", "pump-g"] {
        f.enrol(d);
        f.run(d, &[]);
        attestation_failure(&f, d);
    }
    let incidents = f.api("/api/v1/incidents?open=true");
    let incident_of = |device: &str| {
        let i = incidents
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["devices"] == serde_json::json!([device]))
            .unwrap_or_else(|| panic!("no incident for {device}: {incidents}"));
        format!("/api/v1/incidents/{}", i["id"].as_str().unwrap())
    };
    let playbook = |device: &str, name: &str, release: &str| {
        format!(r#"{{"action": "playbook", "playbook": "{name}", "device": "{device}"{release}}}"#)
    };
    let fix =
        r#", "release": {"version": "1.2.0", "release_counter": 12, "target": "pump-1.2.0.img"}"#;
    let as_op = |token: &str, path: &str, body: &str| f.s.operator(token, "POST", path, Some(body));

    // Refused by name: no release, a release the repository does not sign, a viewer, and
    // cancelling what was never forced.
    let pf = incident_of("pump-f");
    let r = as_op(&f.admin, &pf, &playbook("pump-f", "force_update", ""));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("force_update needs"), "{r:?}");
    let r = as_op(
        &f.admin,
        &pf,
        &playbook(
            "pump-f",
            "force_update",
            r#", "release": {"version": "9.9.9", "release_counter": 99, "target": "pump-9.9.9.img"}"#,
        ),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("not in the image repository"), "{r:?}");
    let viewer = f.s.operator_token("vic", "viewer", "1h");
    let r = as_op(&viewer, &pf, &playbook("pump-f", "force_update", fix));
    assert_eq!(r.status, 403, "{r:?}");
    let r = as_op(&f.admin, &pf, &playbook("pump-f", "cancel_update", ""));
    assert_eq!(r.status, 409, "{r:?}");

    // pump-f is quarantined, then forced to the fixed release by a security officer: a
    // quarantined device still fetches updates, and installs it at its next poll.
    let security = f.s.operator_token("sam", "security", "1h");
    let r = as_op(&security, &pf, &playbook("pump-f", "quarantine", ""));
    assert_eq!(r.status, 200, "{r:?}");
    let r = as_op(&security, &pf, &playbook("pump-f", "force_update", fix));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("pump-1.2.0.img"), "{r:?}");
    f.run("pump-f", &[]);
    assert_eq!(f.installed("pump-f"), ("1.2.0".into(), 12));

    // pump-g: forced, then cancelled before it polled: it installs nothing.
    let pg = incident_of("pump-g");
    assert_eq!(
        as_op(&security, &pg, &playbook("pump-g", "force_update", fix)).status,
        200
    );
    let r = as_op(&security, &pg, &playbook("pump-g", "cancel_update", ""));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("aborted"), "{r:?}");
    f.run("pump-g", &[]);
    assert_eq!(f.installed("pump-g"), ("1.0.0".into(), 10));

    // Every step is in the audit log, the security officer's permission with it.
    f.s.audited(&f.admin, "the forced update's decision", |e| {
        field(e, "action") == "device.force_update"
            && field(e, "decision") == "allow"
            && field(e, "principal").contains("sam")
    });
    f.s.audited(&f.admin, "the playbook on the incident", |e| {
        field(e, "action") == "incident.manage" && has(e, "detail", "force_update pump-f")
    });
}

#[test]
fn the_agent_renews_its_certificate_with_a_new_key() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    f.enrol("pump-r");
    let identity = f.dir("pump-r").join("identity.pem");
    let before = std::fs::read_to_string(&identity).unwrap();
    // Device certificates last 30 days; renewing when less than 100 % is left renews now.
    ok(medsec()
        .args(["agent", "run", "--once", "--renew-at", "1.0", "--dir"])
        .arg(f.dir("pump-r")));
    let after = std::fs::read_to_string(&identity).unwrap();
    assert_ne!(before, after);
    let key = |pem: &str| pem[pem.find("-----BEGIN PRIVATE KEY").unwrap()..].to_owned();
    assert_ne!(
        key(&before),
        key(&after),
        "a new key, not the old one again"
    );
    // The renewed identity works: the device reports with it.
    ok(&mut f.agent("pump-r", &[]));
    assert_eq!(f.installed("pump-r"), ("1.0.0".into(), 10));
    let keys = f.api("/api/v1/devices/pump-r");
    assert_eq!(keys["state"], "enrolled", "{keys}");
}

/// A SoftHSM token store of its own (`SOFTHSM2_CONF` for the commands that use it) with one
/// initialised token; `None` off CI when SoftHSM is not installed (CI installs it).
pub(crate) struct SoftHsm {
    pub(crate) module: PathBuf,
    pub(crate) conf: PathBuf,
    tokens: PathBuf,
}

impl SoftHsm {
    pub(crate) fn new(dir: &Path, label: &str) -> Option<Self> {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        let Some(module) = module else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "SoftHSM (libsofthsm2.so) is not installed and CI=true: scripts/install-test-deps.sh installs softhsm2"
            );
            eprintln!("SKIPPED: SoftHSM is not installed (apt-get install softhsm2)");
            return None;
        };
        let tokens = dir.join("softhsm-tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                tokens.display()
            ),
        )
        .unwrap();
        ok(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", "4321", "--so-pin", "87654321"]));
        Some(Self {
            module,
            conf,
            tokens,
        })
    }

    /// How many objects (keys) the token holds: SoftHSM's file store keeps one file each.
    pub(crate) fn objects(&self) -> usize {
        walk(&self.tokens)
            .iter()
            .filter(|p| is_key_object(p))
            .count()
    }
}

/// A key object of SoftHSM's file store (`token.object` is the token's own record).
fn is_key_object(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "object")
        && p.file_name().is_some_and(|n| n != "token.object")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_agent_keeps_its_key_in_a_pkcs11_token() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(hsm) = SoftHsm::new(tmp.path(), "pump-h-token") else {
        return;
    };
    let f = Fleet::new(tmp.path());
    let pin = tmp.path().join("pin");
    std::fs::write(&pin, "4321\n").unwrap();
    let token_args = |c: &mut Command, token: &str, pin: &Path| {
        c.env("SOFTHSM2_CONF", &hsm.conf)
            .arg("--pkcs11-module")
            .arg(&hsm.module)
            .args(["--pkcs11-token", token, "--pkcs11-pin-file"])
            .arg(pin);
    };

    // A wrong PIN and an unknown token are refused by name, and nothing is enrolled.
    let bad_pin = tmp.path().join("bad-pin");
    std::fs::write(&bad_pin, "0000").unwrap();
    let mut c = f.enrol_command("pump-h");
    token_args(&mut c, "pump-h-token", &bad_pin);
    let err = fails(&mut c);
    assert!(
        err.contains("wrong PIN for token \"pump-h-token\""),
        "{err}"
    );
    let mut c = f.enrol_command("pump-h");
    token_args(&mut c, "no-such-token", &pin);
    let err = fails(&mut c);
    assert!(
        err.contains("no token labelled \"no-such-token\"") && err.contains("pump-h-token"),
        "{err}"
    );
    assert!(!f.dir("pump-h").join("device.json").exists());
    assert_eq!(hsm.objects(), 0);

    let mut c = f.enrol_command("pump-h");
    token_args(&mut c, "pump-h-token", &pin);
    let out = ok(&mut c);
    assert!(
        out.contains("key in PKCS#11 token \"pump-h-token\""),
        "{out}"
    );
    // The key pair was made in the token; no private key is on disk, nor the PIN in the config.
    assert_eq!(hsm.objects(), 2);
    let dir = f.dir("pump-h");
    let identity = std::fs::read_to_string(dir.join("identity.pem")).unwrap();
    assert!(identity.contains("BEGIN CERTIFICATE"));
    assert!(!identity.contains("PRIVATE KEY"), "{identity}");
    let config = std::fs::read_to_string(dir.join("device.json")).unwrap();
    assert!(
        config.contains(r#""kind": "pkcs11""#) && !config.contains("4321"),
        "{config}"
    );

    // Mutual TLS and the signed version report both sign in the token.
    let run = |extra: &[&str]| {
        let mut c = f.agent("pump-h", extra);
        c.env("SOFTHSM2_CONF", &hsm.conf);
        c
    };
    ok(&mut run(&[]));
    assert_eq!(f.installed("pump-h"), ("1.0.0".into(), 10));

    // Renewal makes a new key in the token, and the old one goes once the new certificate is
    // stored.
    let cert_key = |pem: &str| medsec_agent::keys::certificate_key(pem.as_bytes()).unwrap();
    ok(&mut run(&["--renew-at", "1.0"]));
    let renewed = std::fs::read_to_string(dir.join("identity.pem")).unwrap();
    assert_ne!(cert_key(&identity), cert_key(&renewed), "a new key");
    assert_eq!(hsm.objects(), 2, "the old key pair was removed");
    f.campaign("fw-1.2-h", "1.2.0", 12, &["pump-h"], 1);
    ok(&mut run(&[]));
    assert_eq!(f.device_state("fw-1.2-h", "pump-h"), "succeeded");
    assert_eq!(f.installed("pump-h"), ("1.2.0".into(), 12));

    // Without its key the device cannot authenticate: a cleared token is named as the problem.
    for p in walk(&hsm.tokens) {
        if is_key_object(&p) {
            std::fs::remove_file(p).unwrap();
        }
    }
    let err = fails(&mut run(&[]));
    assert!(
        err.contains("holds no private key for this certificate"),
        "{err}"
    );
}

/// The points of the install cycle where the agent kills itself (see `medsec_agent::fault`).
const POINTS: &[&str] = &[
    "record-write#1",
    "record-write#2",
    "record-write#3",
    "record-write#4",
    "record-write#5",
    "record-write#6",
    "download",
    "downloaded",
    "slot-cleared",
    "slot-write",
    "slot-written",
    "pending-set",
    "reboot",
    "boot-env",
    "committed",
    "health-failed",
    "reported",
];

/// Runs the agent with `MEDSEC_AGENT_KILL_AT=point`; true if it was killed (SIGKILL).
fn killed_at(f: &Fleet, device: &str, point: &str) -> bool {
    kill(f, device, point).is_some()
}

/// Runs the agent with `MEDSEC_AGENT_KILL_AT=point`; the point it was killed at, if it was.
fn kill(f: &Fleet, device: &str, point: &str) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    let out = f
        .agent(device, &[])
        .env("MEDSEC_AGENT_KILL_AT", point)
        .output()
        .unwrap();
    if out.status.signal() == Some(9) {
        let err = String::from_utf8_lossy(&out.stderr);
        let at = err.rsplit_once("fault: killed at ").unwrap().1.trim();
        return Some(at.to_owned());
    }
    assert!(
        out.status.success(),
        "{device} at {point}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    None
}

fn check_converged(f: &Fleet, device: &str, campaign: &str, version: &str, counter: i64) {
    assert_eq!(
        f.installed(device),
        (version.to_owned(), counter),
        "{device}"
    );
    let want = if version == "1.2.0" {
        "succeeded"
    } else {
        "failed"
    };
    assert_eq!(f.device_state(campaign, device), want, "{device}");
    let st = f.status(device);
    assert!(
        st.contains(&format!("{version} (release counter {counter}) active"))
            && !st.contains("pending"),
        "{device}: {st}"
    );
    f.only_signed_images_booted(device);
}

#[test]
fn a_kill_at_every_step_of_the_install_cycle_ends_on_a_verified_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    // One device per kill point and outcome: a good release and a broken one.
    let good: Vec<String> = (0..POINTS.len()).map(|i| format!("good-{i:02}")).collect();
    let bad: Vec<String> = (0..POINTS.len()).map(|i| format!("bad-{i:02}")).collect();
    for d in good.iter().chain(&bad) {
        f.enrol(d);
        f.run(d, &[]);
    }
    f.campaign("good", "1.2.0", 12, &refs(&good), good.len());
    let bad_body = format!(
        r#"{{"spec": {{"name": "bad", "release": {{"version": "1.1.0", "release_counter": 11,
            "target": "pump-1.1.0.img"}}, "canary": {{"count": {}}}, "max_failure_rate": 1}},
            "selection": {{"devices": {}}}}}"#,
        bad.len(),
        serde_json::to_string(&bad).unwrap()
    );
    f.post("/api/v1/campaigns", &bad_body);
    f.post("/api/v1/campaigns/bad/start", "");
    let mut missed = Vec::new();
    for (i, point) in POINTS.iter().enumerate() {
        let mut hit = false;
        for (device, campaign, version, counter) in [
            (&good[i], "good", "1.2.0", 12),
            (&bad[i], "bad", "1.0.0", 10),
        ] {
            hit |= killed_at(&f, device, point);
            // Power back: it resumes and finishes.
            f.run(device, &[]);
            check_converged(&f, device, campaign, version, counter);
        }
        if !hit {
            missed.push(*point);
        }
    }
    // Every point is reached on at least one of the two paths.
    assert!(missed.is_empty(), "never killed at {missed:?}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A tiny deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Damages what a kill at `point` may have been writing: the copy of a record about to be
/// written (the older one), or the inactive slot.
fn tear(f: &Fleet, device: &str, point: &str, rng: &mut Rng) {
    let dir = f.dir(device);
    let garble = |path: &Path, rng: &mut Rng| {
        let Ok(mut bytes) = std::fs::read(path) else {
            return;
        };
        let cut = rng.below(bytes.len() as u64 + 1) as usize;
        bytes.truncate(cut);
        for _ in 0..rng.below(16) {
            bytes.push(rng.next() as u8);
        }
        std::fs::write(path, bytes).unwrap();
    };
    if point.starts_with("record-write") || point == "boot-env" {
        // A write in flight can only touch the copy the agent writes next: the one that is not
        // the newest valid copy of its record (state or boot environment).
        let record = if point == "boot-env" || rng.below(2) == 0 {
            "boot"
        } else {
            "state"
        };
        let valid_seq = |path: &Path| -> Option<u64> {
            let bytes = std::fs::read(path).ok()?;
            let nl = bytes.iter().position(|b| *b == b'\n')?;
            let head = std::str::from_utf8(&bytes[..nl]).ok()?;
            let parts: Vec<&str> = head.split(' ').collect();
            let body = &bytes[nl + 1..];
            (parts.len() == 4 && hex::encode(medsec_crypto::digest::sha256(body)) == parts[3])
                .then(|| parts[2].parse().ok())
                .flatten()
        };
        let copies = [0, 1].map(|i| dir.join(format!("{record}.{i}")));
        let seqs = copies.clone().map(|c| valid_seq(&c));
        let newest = if seqs[0] >= seqs[1] { 0 } else { 1 };
        garble(&copies[1 - newest], rng);
    } else if point == "slot-write" {
        let st = f.status(device);
        let inactive = if st.contains("slot A:") && st.lines().next().unwrap().contains("active") {
            "slot-b.img"
        } else {
            "slot-a.img"
        };
        garble(&dir.join(inactive), rng);
    } else if point == "download" {
        garble(&dir.join("download.part"), rng);
    }
}

#[test]
fn a_thousand_random_kills_with_torn_writes_never_brick_a_device() {
    let seed: u64 = std::env::var("MEDSEC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let target: usize = std::env::var("MEDSEC_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    eprintln!("seed {seed:#x}, {target} kills (MEDSEC_KILL_SEED / MEDSEC_KILLS to replay)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let f = Fleet::new(tmp.path());
    let mut kills = 0;
    let mut round = 0;
    while kills < target {
        // Each round: a batch of new devices, half on the good release, half on the broken one.
        let devices: Vec<String> = (0..20).map(|i| format!("r{round:02}-{i:02}")).collect();
        for d in &devices {
            f.enrol(d);
            f.run(d, &[]);
        }
        let (good, bad) = devices.split_at(10);
        f.campaign(
            &format!("good-{round}"),
            "1.2.0",
            12,
            &refs(good),
            good.len(),
        );
        let body = format!(
            r#"{{"spec": {{"name": "bad-{round}", "release": {{"version": "1.1.0", "release_counter": 11,
                "target": "pump-1.1.0.img"}}, "canary": {{"count": 10}}, "max_failure_rate": 1}},
                "selection": {{"devices": {}}}}}"#,
            serde_json::to_string(bad).unwrap()
        );
        f.post("/api/v1/campaigns", &body);
        f.post(&format!("/api/v1/campaigns/bad-{round}/start"), "");
        for (d, campaign, version, counter) in good
            .iter()
            .map(|d| (d, format!("good-{round}"), "1.2.0", 12))
            .chain(bad.iter().map(|d| (d, format!("bad-{round}"), "1.0.0", 10)))
        {
            // Kill it again and again at random points until a run finishes on its own.
            for _ in 0..40 {
                // Mostly "the n-th point of any kind", so that nearly every run is cut short
                // somewhere in what is left of its cycle; sometimes a named point.
                let point = if rng.below(4) == 0 {
                    let p = POINTS[rng.below(POINTS.len() as u64) as usize];
                    format!("{}#{}", p.split('#').next().unwrap(), 1 + rng.below(3))
                } else {
                    format!("any#{}", 1 + rng.below(6))
                };
                let Some(at) = kill(&f, d, &point) else {
                    break;
                };
                kills += 1;
                if rng.below(3) == 0 {
                    tear(&f, d, &at, &mut rng);
                }
            }
            f.run(d, &[]);
            check_converged(&f, d, &campaign, version, counter);
        }
        round += 1;
        eprintln!("round {round}: {kills} kills so far");
    }
    eprintln!("{kills} kills over {round} rounds of 20 devices: all converged");
}
