//! Telemetry through a real Mosquitto broker: bound to the device certificate the broker
//! verified, and stored before the broker gets its acknowledgement.

use std::path::PathBuf;

use medsec_testkit::*;
use serde_json::Value;

/// A Mosquitto broker started for the test on a free port with the configuration `medsec mqtt
/// broker-config` wrote; killed on drop.
struct Broker {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `mosquitto` and `mosquitto_pub` are here (required under `CI=true`).
fn mosquitto_present() -> bool {
    let present = ["mosquitto", "mosquitto_pub"].iter().all(|tool| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mosquitto and mosquitto_pub are missing and CI=true: install mosquitto and mosquitto-clients"
        );
        eprintln!("SKIPPED: mosquitto or mosquitto_pub is not installed");
    }
    present
}

fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn start_broker(work: &std::path::Path) -> Broker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = work.join("broker");
    let data = work.join("data");
    let out = ok(medsec()
        .args(["mqtt", "broker-config", "--data-dir"])
        .arg(&data)
        .arg("--dir")
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--hostname", "localhost", "--run-as", &whoami()]));
    assert!(out.contains("mosquitto -c"), "{out}");
    let log = std::fs::File::create(work.join("mosquitto.log")).unwrap();
    let child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not listen: {}",
            std::fs::read_to_string(work.join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Broker { child, port, dir }
}

impl Broker {
    /// `mosquitto_pub` as `device` (its fleet certificate) to `topic_device`'s telemetry topic,
    /// QoS 1; returns whether the client reported success.
    fn publish(
        &self,
        work: &std::path::Path,
        device: &str,
        topic_device: &str,
        file: &str,
    ) -> bool {
        std::process::Command::new("mosquitto_pub")
            .current_dir(work)
            .args(["-h", "localhost", "-p", &self.port.to_string(), "-q", "1"])
            .arg("--cafile")
            .arg(self.dir.join("fleet-chain.pem"))
            .args([
                "--cert",
                &format!("{device}.pem"),
                "--key",
                &format!("{device}.key"),
            ])
            .args(["-t", &format!("medsec/devices/{topic_device}/telemetry")])
            .args(["-f", file])
            .output()
            .unwrap()
            .status
            .success()
    }
}

fn write_batch(work: &std::path::Path, file: &str, sequence: i64, remote: &str) {
    std::fs::write(
        work.join(file),
        format!(
            r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
              "remote": "{remote}", "remote_port": 1111, "protocol": "tcp", "bytes_out": 900,
              "bytes_in": 300, "packets_out": 7, "packets_in": 5, "duration_ms": 80}}]}}"#
        ),
    )
    .unwrap();
}

/// The device's stored batches (sequence, source), waiting up to 10 s for `want` of them.
fn stored(s: &Running, token: &str, device: &str, want: usize) -> Vec<(i64, String)> {
    let auth = format!("Authorization: Bearer {token}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = s.curl(&[
            "-H",
            &auth,
            &s.operator_url(&format!("/api/v1/devices/{device}/telemetry?limit=1000")),
        ]);
        assert_eq!(r.status, 200, "{r:?}");
        let list: Vec<Value> = serde_json::from_str(&r.body).unwrap();
        let got: Vec<(i64, String)> = list
            .iter()
            .map(|b| {
                (
                    b["sequence"].as_i64().unwrap(),
                    b["source"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if got.len() >= want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn telemetry_through_a_real_mosquitto_broker_is_bound_to_the_certificate_and_stored_before_it_is_acknowledged()
 {
    if !mosquitto_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_broker(tmp.path());
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let env = [
        ("MEDSEC_MQTT__BROKER", format!("localhost:{}", broker.port)),
        ("MEDSEC_DEFENDER_POLICY", policy.display().to_string()),
        ("MEDSEC_LOG", "warn,medsec_server::mqtt=info".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    for d in ["pump-m", "pump-n", "pump-o"] {
        s.enrol(d);
    }
    // Wait for the ingestion connections to subscribe (shared subscriptions get no retained
    // messages, so a batch published before that would wait in no queue).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(s.work.join("server.log"))
        .unwrap_or_default()
        .matches("subscribed")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not subscribe: {}\n{}",
            std::fs::read_to_string(s.work.join("server.log")).unwrap_or_default(),
            std::fs::read_to_string(tmp.path().join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A batch through the broker is stored under the certificate's device.
    write_batch(&s.work, "b1.json", 1, "10.0.1.150");
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "b1.json"));
    let got = stored(&s, &admin, "pump-m", 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].1.starts_with("mqtt://localhost:"), "{got:?}");

    // gzip is known by its magic number.
    write_batch(&s.work, "b2.json", 2, "10.0.1.151");
    let gz = std::process::Command::new("gzip")
        .args(["-c", "b2.json"])
        .current_dir(&s.work)
        .output()
        .unwrap();
    std::fs::write(s.work.join("b2.json.gz"), gz.stdout).unwrap();
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "b2.json.gz"));
    assert_eq!(stored(&s, &admin, "pump-m", 2).len(), 2);

    // pump-m cannot publish as pump-n: the broker's ACL binds the topic to the certificate.
    // pump-n's own batch afterwards shows the forged one never came.
    write_batch(&s.work, "forged.json", 7, "10.0.1.152");
    broker.publish(&s.work, "pump-m", "pump-n", "forged.json");
    write_batch(&s.work, "n1.json", 1, "10.0.1.153");
    assert!(broker.publish(&s.work, "pump-n", "pump-n", "n1.json"));
    let n = stored(&s, &admin, "pump-n", 1);
    assert_eq!(
        n.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![1],
        "only pump-n's own batch: {n:?}"
    );

    // A replayed batch is refused and audited.
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "b1.json"));
    s.audited(&admin, "the replayed MQTT batch", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "resource").contains("pump-m")
            && has(e, "detail", "replayed")
    });

    // The rules run on MQTT batches: exfiltration to an address outside the pump's allowlist.
    write_batch(&s.work, "exfil.json", 3, "203.0.113.77");
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "exfil.json"));
    let auth = format!("Authorization: Bearer {admin}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = s.curl(&[
            "-H",
            &auth,
            &s.operator_url("/api/v1/devices/pump-m/alerts"),
        ]);
        if r.body.contains("203.0.113.77") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alert: {r:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A revoked device still passes Mosquitto (it rereads its CRL only on restart), and the
    // server refuses its batch: a revoked principal is refused before Cedar is asked.
    let r = s.curl(&[
        "-H",
        &auth,
        "-X",
        "POST",
        "-d",
        r#"{"reason":"key-compromise"}"#,
        &s.operator_url("/api/v1/devices/pump-n/revoke"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    write_batch(&s.work, "n2.json", 2, "10.0.1.153");
    broker.publish(&s.work, "pump-n", "pump-n", "n2.json");
    s.audited(&admin, "the revoked device's MQTT batch", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "resource").contains("pump-n")
            && field(e, "kind") == "authn"
            && has(e, "detail", "the device is revoked")
    });
    assert_eq!(stored(&s, &admin, "pump-n", 1).len(), 1);

    // Both connections of the shared subscription take a share of the load.
    for seq in 1..=12 {
        write_batch(&s.work, "o.json", seq, "10.0.1.160");
        assert!(broker.publish(&s.work, "pump-o", "pump-o", "o.json"));
    }
    let o = stored(&s, &admin, "pump-o", 12);
    assert_eq!(
        o.len(),
        12,
        "reordered batches fall inside the window: {o:?}"
    );
    let sources: std::collections::BTreeSet<&str> = o.iter().map(|b| b.1.as_str()).collect();
    assert_eq!(sources.len(), 2, "both connections ingested: {sources:?}");

    // Nothing is lost while the server is down: the broker keeps the messages of the
    // ingestion sessions and delivers them when the server comes back.
    let work = s.work.clone();
    drop(s);
    write_batch(&work, "b4.json", 4, "10.0.1.150");
    assert!(broker.publish(&work, "pump-m", "pump-m", "b4.json"));
    let s = start(tmp.path(), &env_ref, &[]);
    let got = stored(&s, &admin, "pump-m", 4);
    assert_eq!(
        got.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![4, 3, 2, 1],
        "{got:?}"
    );
}
