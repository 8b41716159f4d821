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
    // The broker's configuration is written from an existing data directory (its fleet CA):
    // `medsec init` makes one before the server's first start.
    ok(medsec().args(["init", "--data-dir"]).arg(&data));
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

    // The same batch again is a duplicate: acknowledged, not stored twice, counted. Other
    // content under a stored number is a replay: refused, audited, and raised as an alert.
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "b1.json"));
    write_batch(&s.work, "forged1.json", 1, "10.0.1.199");
    assert!(broker.publish(&s.work, "pump-m", "pump-m", "forged1.json"));
    s.audited(&admin, "the replayed MQTT batch", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "kind") == "telemetry-replay"
            && field(e, "resource").contains("pump-m")
            && has(e, "detail", "other content")
    });
    s.audited(&admin, "the duplicate MQTT batch", |e| {
        field(e, "kind") == "telemetry-duplicate" && has(e, "detail", "batch 1 was stored already")
    });
    assert_eq!(stored(&s, &admin, "pump-m", 2).len(), 2);

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
        "batches taken out of order by the two connections are all stored: {o:?}"
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

/// A device's own MQTT connection (rumqttc, TLS 1.3 with its fleet certificate `DEVICE.pem`,
/// `DEVICE.key`), publishing QoS 1 and counting the broker's acknowledgements.
struct Device {
    client: rumqttc::AsyncClient,
    topic: String,
    acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Set when the broker closed the connection or refused it.
    refused: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Device {
    async fn connect(broker: &Broker, work: &std::path::Path, id: &str) -> Self {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(broker.dir.join("fleet-chain.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(work.join(format!("{id}.pem")))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(work.join(format!("{id}.key"))).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        let mut o = rumqttc::MqttOptions::new(format!("{id}-test"), "localhost", broker.port);
        o.set_max_packet_size(1 << 20, 1 << 20)
            .set_keep_alive(std::time::Duration::from_secs(30))
            .set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
            ));
        let (client, mut events) = rumqttc::AsyncClient::new(o, 64);
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (count, why) = (acked.clone(), refused.clone());
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        *why.lock().unwrap() = Some(e.to_string());
                        return;
                    }
                }
            }
        });
        Self {
            client,
            topic: format!("medsec/devices/{id}/telemetry"),
            acked,
            refused,
        }
    }

    async fn publish(&self, payload: Vec<u8>) {
        self.client
            .publish(&self.topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    fn acked(&self) -> usize {
        self.acked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the broker acknowledged `n` messages, or the connection ended (false).
    async fn wait_acked(&self, n: usize, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while self.acked() < n {
            if self.refused.lock().unwrap().is_some() || std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }
}

fn batch_json(sequence: usize, remote: &str) -> Vec<u8> {
    format!(
        r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
          "remote": "{remote}", "remote_port": 1111, "protocol": "tcp", "bytes_out": 900,
          "bytes_in": 300, "packets_out": 7, "packets_in": 5, "duration_ms": 80}}]}}"#
    )
    .into_bytes()
}

/// 1..=n in a forced order: blocks of 97 reversed, then every pair of blocks swapped, so
/// batches run hundreds of numbers late (further than any reorder window).
fn shuffled(n: usize) -> Vec<usize> {
    let mut blocks: Vec<Vec<usize>> = (1..=n)
        .collect::<Vec<_>>()
        .chunks(97)
        .map(|c| c.iter().rev().copied().collect())
        .collect();
    for pair in blocks.chunks_mut(2) {
        pair.reverse();
    }
    blocks.concat()
}

/// The server's store, read beside it.
fn store_url(work: &std::path::Path, database_url: Option<&str>) -> String {
    database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", work.join("data/medsec.db").display()))
}

/// The device's stored sequence numbers, and its open gaps.
async fn stored_sequences(url: &str, device: &str) -> (Vec<i64>, usize) {
    use medsec_store::prelude::*;
    let store = medsec_store::AnyStore::open(url, 1).await.unwrap();
    let mut got: Vec<i64> = store
        .telemetry(device, 0, u32::MAX)
        .await
        .unwrap()
        .iter()
        .map(|b| b.sequence)
        .collect();
    let gaps = store.telemetry_gaps(device).await.unwrap().len();
    store.close().await;
    got.sort_unstable();
    (got, gaps)
}

fn wait_subscribed(s: &Running, after: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::fs::read_to_string(s.work.join("server.log"))
        .unwrap_or_default()
        .matches("subscribed")
        .count()
        < after + 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not subscribe: {}",
            std::fs::read_to_string(s.work.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Thousands of batches of one device, published in a forced order and split over the two
/// shared-subscription connections, with the server SIGKILLed mid-stream and started again:
/// every batch the broker acknowledged is stored exactly once, and no gap stays open.
fn every_acknowledged_batch_is_stored_once(database_url: Option<&str>) {
    if !mosquitto_present() {
        return;
    }
    const N: usize = 3_000;
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_broker(tmp.path());
    // The store through a configuration file, which the testkit's CLI calls pass too.
    let config = tmp.path().join("medsec.toml");
    let mut args = vec![];
    if let Some(u) = database_url {
        std::fs::write(&config, format!("database_url = {u:?}\n")).unwrap();
        args.extend(["--config", config.to_str().unwrap()]);
    }
    let env = [
        ("MEDSEC_MQTT__BROKER", format!("localhost:{}", broker.port)),
        ("MEDSEC_MQTT__CONNECTIONS", "2".to_owned()),
        // This test is about delivery, not the rate limit (tested below).
        ("MEDSEC_LIMITS__MQTT_DEVICE_BURST", "1000000".to_owned()),
        ("MEDSEC_LOG", "warn,medsec_server::mqtt=info".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &args);
    s.enrol("pump-r");
    wait_subscribed(&s, 0);
    let url = store_url(tmp.path(), database_url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let order = shuffled(N);
    let device = rt.block_on(Device::connect(&broker, &s.work, "pump-r"));
    // A third of the batches, then the server is killed (SIGKILL) while they are ingested.
    let third = N / 3;
    rt.block_on(async {
        for &seq in &order[..third] {
            device.publish(batch_json(seq, "10.0.1.150")).await;
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (got, _) = rt.block_on(stored_sequences(&url, "pump-r"));
        if got.len() >= third / 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing stored: {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(s); // Child::kill: SIGKILL
    let (at_kill, _) = rt.block_on(stored_sequences(&url, "pump-r"));
    // The rest while the server is down: the broker acknowledges and queues them.
    rt.block_on(async {
        for &seq in &order[third..] {
            device.publish(batch_json(seq, "10.0.1.150")).await;
        }
        assert!(
            device.wait_acked(N, 120).await,
            "the broker acknowledged {} of {N}: {:?}",
            device.acked(),
            device.refused.lock().unwrap()
        );
    });
    let s = start(tmp.path(), &env_ref, &args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let (got, gaps) = loop {
        let (got, gaps) = rt.block_on(stored_sequences(&url, "pump-r"));
        if got.len() >= N || std::time::Instant::now() > deadline {
            break (got, gaps);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let want: Vec<i64> = (1..=N as i64).collect();
    let missing: Vec<&i64> = want
        .iter()
        .filter(|n| got.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {N} acknowledged batches were never stored (stored at the kill: {}): first missing {:?}\n{}",
        missing.len(),
        at_kill.len(),
        &missing[..missing.len().min(20)],
        std::fs::read_to_string(s.work.join("server.log")).unwrap_or_default()
    );
    assert_eq!(got, want, "each batch once, and nothing else");
    assert_eq!(gaps, 0, "every gap filled");
    eprintln!(
        "{N} batches in a forced order, {} stored when the server was killed: {} stored once each",
        at_kill.len(),
        got.len()
    );
    drop(s);
}

#[test]
fn every_acknowledged_mqtt_batch_is_stored_once_through_reordering_and_a_sigkill_on_sqlite() {
    every_acknowledged_batch_is_stored_once(None);
}

#[test]
fn every_acknowledged_mqtt_batch_is_stored_once_through_reordering_and_a_sigkill_on_postgres() {
    if let Some(url) = postgres_schema_url("mqtt_sigkill", "the MQTT SIGKILL test") {
        every_acknowledged_batch_is_stored_once(Some(&url));
    }
}

/// A device revoked offline (`medsec ca revoke` + `medsec ca crl`) while its connection to the
/// broker stays open: the server marks it revoked in the store from the new CRL and refuses
/// its next message, audited; the broker, sent SIGHUP, refuses its next connection.
#[test]
fn a_device_revoked_offline_is_refused_on_its_next_mqtt_message_and_at_the_broker() {
    if !mosquitto_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_broker(tmp.path());
    let env = [
        ("MEDSEC_MQTT__BROKER", format!("localhost:{}", broker.port)),
        ("MEDSEC_CRL_RELOAD_MS", "200".to_owned()),
        ("MEDSEC_LOG", "warn,medsec_server::mqtt=info".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-v");
    wait_subscribed(&s, 0);
    let url = store_url(tmp.path(), None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let device = rt.block_on(Device::connect(&broker, &s.work, "pump-v"));
    rt.block_on(device.publish(batch_json(1, "10.0.1.150")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.block_on(stored_sequences(&url, "pump-v")).0.is_empty() {
        assert!(std::time::Instant::now() < deadline, "batch 1 not stored");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    openssl(
        &s.work,
        &["x509", "-in", "pump-v.pem", "-out", "pump-v.leaf.pem"],
    );
    s.revoke_offline("pump-v");
    s.audited(
        &admin,
        "the offline revocation copied into the store",
        |e| {
            field(e, "action") == "device.revoke"
                && field(e, "resource").contains("pump-v")
                && has(e, "detail", "revoked outside the server")
        },
    );
    // The same open connection: the broker still relays, the server refuses.
    rt.block_on(device.publish(batch_json(2, "10.0.1.150")));
    s.audited(&admin, "the revoked device's next MQTT message", |e| {
        field(e, "action") == "telemetry.send"
            && field(e, "decision") == "deny"
            && field(e, "kind") == "authn"
            && field(e, "resource").contains("pump-v")
            && has(e, "detail", "the device is revoked")
    });
    assert_eq!(rt.block_on(stored_sequences(&url, "pump-v")).0, vec![1]);
    let r = s.curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &s.operator_url("/api/v1/devices/pump-v"),
    ]);
    assert!(r.body.contains(r#""state":"revoked""#), "{r:?}");

    // SIGHUP: the broker rereads the CRL (what medsec-broker-crl.path does); a new connection
    // with the revoked certificate fails its handshake.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &broker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(std::time::Duration::from_millis(500));
    write_batch(&s.work, "v3.json", 3, "10.0.1.150");
    assert!(
        !broker.publish(&s.work, "pump-v", "pump-v", "v3.json"),
        "the broker accepted a revoked certificate after SIGHUP"
    );
    assert!(
        std::fs::read_to_string(broker.dir.join("medsec-broker-crl.path"))
            .unwrap()
            .contains("PathChanged="),
        "broker-config writes the CRL reload unit"
    );
}

/// One device publishing as fast as it can over MQTT is held to its rate (the burst, then
/// `requests_per_second`); the refusals are counted, not logged one by one, so the audit log
/// grows by a handful of entries; a malformed 60 KB payload is neither logged nor audited whole.
#[test]
fn one_device_flooding_over_mqtt_is_rate_limited_and_the_audit_log_stays_bounded() {
    if !mosquitto_present() {
        return;
    }
    const N: usize = 3_000;
    const BURST: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let broker = start_broker(tmp.path());
    let env = [
        ("MEDSEC_MQTT__BROKER", format!("localhost:{}", broker.port)),
        ("MEDSEC_LIMITS__MQTT_DEVICE_BURST", BURST.to_string()),
        ("MEDSEC_LOG", "info".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-f");
    wait_subscribed(&s, 0);
    let url = store_url(tmp.path(), None);
    // The audit log's entries, as stored (kind, action, decision of each).
    let audit_rows = |rt: &tokio::runtime::Runtime| -> Vec<String> {
        rt.block_on(async {
            use medsec_store::prelude::*;
            let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
            let rows = store.audit_entries(0, u32::MAX).await.unwrap();
            store.close().await;
            rows.iter()
                .map(|r| {
                    let e: Value = serde_json::from_str(&r.entry).unwrap_or_default();
                    let e = &e["event"];
                    format!(
                        "{}/{}/{}",
                        field(e, "kind"),
                        field(e, "action"),
                        field(e, "decision")
                    )
                })
                .collect()
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = audit_rows(&rt);
    let device = rt.block_on(Device::connect(&broker, &s.work, "pump-f"));
    let begin = std::time::Instant::now();
    rt.block_on(async {
        // First a malformed payload of 60 KB whose text a parser's error would quote.
        let marker = "X".repeat(60_000);
        device
            .publish(format!(r#"{{"sequence": "{marker}", "events": []}}"#).into_bytes())
            .await;
        for seq in 1..=N {
            device.publish(batch_json(seq, "10.0.1.150")).await;
        }
        assert!(device.wait_acked(N + 1, 120).await, "{}", device.acked());
    });
    let published = begin.elapsed();
    // Wait until the server has taken every message (stored or refused), with no call to the
    // operator API meanwhile (each would be an audit entry of its own).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut last = (usize::MAX, std::time::Instant::now());
    let stored_n = loop {
        let n = rt.block_on(stored_sequences(&url, "pump-f")).0.len();
        if n != last.0 {
            last = (n, std::time::Instant::now());
        } else if last.1.elapsed() > std::time::Duration::from_secs(3) {
            break n;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let elapsed = begin.elapsed().as_secs_f64();
    let allowed = BURST as f64 + 20.0 * elapsed;
    assert!(
        stored_n + 1 >= BURST && (stored_n as f64) <= allowed + 5.0,
        "{stored_n} of {N} stored in {elapsed:.1} s: the limit allows {allowed:.0}"
    );
    let after = audit_rows(&rt);
    let grown = after.len() - before.len();
    eprintln!("new audit entries: {:?}", after.get(before.len()..));
    eprintln!(
        "| MQTT flood, one device | {N} batches published in {:.1} s ({:.0}/s) | {stored_n} stored \
         (burst {BURST} + 20/s) | {} refused | audit log +{grown} entries |",
        published.as_secs_f64(),
        N as f64 / published.as_secs_f64(),
        N - stored_n
    );
    // The first allowed decision (the rest are counted), the refusals' entry, the malformed
    // payload's: a handful, not one per batch.
    assert!(
        grown <= 12,
        "the audit log grew by {grown} entries for {N} batches"
    );
    s.audited(&admin, "the rate-limit refusal", |e| {
        field(e, "kind") == "limit" && field(e, "resource").contains("pump-f")
    });
    s.audited(&admin, "the malformed payload, clipped", |e| {
        field(e, "kind") == "telemetry-malformed" && has(e, "detail", "more bytes")
    });
    let alerts = s.curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &s.operator_url("/api/v1/devices/pump-f/alerts"),
    ]);
    assert!(alerts.body.contains("telemetry-rate-limit"), "{alerts:?}");
    let log = std::fs::read_to_string(s.work.join("server.log")).unwrap();
    assert!(
        !log.contains(&"X".repeat(1_000)),
        "the server log quotes the payload"
    );
    for e in s.audit(&admin) {
        assert!(
            field(&e, "detail").len() < 1_000,
            "an audit entry quotes the payload: {}",
            &field(&e, "detail")[..200]
        );
    }
}
