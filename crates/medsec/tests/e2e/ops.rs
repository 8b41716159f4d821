//! The operations surface: the remote CLI with contexts (from a directory with no data), the
//! data-directory guard, health, readiness and Prometheus metrics checked by `promtool`.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use medsec_testkit::*;

/// `medsec` as an operator's laptop runs it: in `dir` (which holds no data), with its contexts
/// in `config`, and no data-directory variable.
fn laptop(dir: &Path, config: &Path) -> Command {
    let mut c = medsec();
    c.current_dir(dir)
        .env("MEDSEC_CONFIG_DIR", config)
        .env_remove("MEDSEC_DATA_DIR")
        .env_remove("MEDSEC_DATABASE_URL")
        .env_remove("MEDSEC_CONTEXT");
    c
}

fn token_file(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, token).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_laptop_runs_the_day_to_day_work_through_a_context_and_never_makes_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let (sbom, _) = crate::risk::publish_pump_releases(&server_dir);
    let policy = server_dir.join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let s = start(
        &server_dir,
        &[("MEDSEC_DEFENDER_POLICY", &policy.display().to_string())],
        &[
            "--config",
            &server_dir.join("medsec.toml").display().to_string(),
        ],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    let home = tmp.path().join("laptop");
    let config = tmp.path().join("laptop-config");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| ok(laptop(&home, &config).args(args));
    let refused = |args: &[&str]| fails(laptop(&home, &config).args(args));

    // Before any login: reads fail naming the fix, and no data directory appears.
    for args in [
        &["device", "list"][..],
        &["alerts", "list"],
        &["report", "compliance", "--out", "rep"],
        &["campaign", "list"],
        &["audit", "verify"],
        &["inventory", "model", "list"],
        &["operator", "token", "list"],
        &["investigate", "pump-a"],
        &["defender", "suppressions"],
    ] {
        let e = refused(args);
        assert!(e.contains("medsec login"), "{args:?}: {e}");
    }
    for args in [
        &["fleet", "device", "list"][..],
        &[
            "operator", "token", "create", "--name", "x", "--role", "admin",
        ],
        &["mqtt", "broker-config", "--dir", "b"],
    ] {
        let e = refused(args);
        assert!(
            e.contains("is not a medsec data directory") && e.contains("--data-dir"),
            "{args:?}: {e}"
        );
    }
    assert!(!home.join("medsec-data").exists());

    // Login: the token is checked over TLS pinned to the fleet CA; a wrong CA or token is
    // refused and saves nothing.
    let good = token_file(tmp.path(), "olga.token", &admin);
    let bad = token_file(tmp.path(), "bad.token", "medsec-op-not-a-real-token");
    let url = s.operator_url("");
    let chain = s.ca("chain.pem").display().to_string();
    openssl(
        tmp.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-subj",
            "/CN=other",
            "-days",
            "1",
        ],
    );
    let other = tmp.path().join("other.pem").display().to_string();
    let e = refused(&[
        "login",
        &url,
        "--ca",
        &other,
        "--token-file",
        &good.display().to_string(),
    ]);
    assert!(
        e.contains("did not answer"),
        "a server outside the pinned CA: {e}"
    );
    let e = refused(&[
        "login",
        &url,
        "--ca",
        &chain,
        "--token-file",
        &bad.display().to_string(),
    ]);
    assert!(e.contains("refused the token"), "{e}");
    assert!(!config.join("contexts.json").exists());
    let out = run(&[
        "login",
        &url,
        "--ca",
        &chain,
        "--token-file",
        &good.display().to_string(),
        "--name",
        "ward",
    ]);
    assert!(out.contains("as olga (admin)"), "{out}");
    let mode = std::fs::metadata(config.join("contexts.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0,
        "the contexts file holds tokens: owner-only"
    );
    assert!(run(&["context", "list"]).contains("*        ward"));

    // Devices: registered and changed remotely; listed as a table, JSON and YAML.
    let token = run(&["token", "create", "--device", "pump-a", "--model", "pump"]);
    assert!(token.trim().starts_with("medsec-enrol-"), "{token}");
    s.enrol("pump-a");
    run(&[
        "device",
        "update",
        "pump-a",
        "--hardware-id",
        "pump-rev-b",
        "--site",
        "north",
    ]);
    let table = run(&["device", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pump-a") && l.contains("north")),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&run(&["device", "list", "-o", "json"])).unwrap();
    assert_eq!(listed[0]["hardware_id"], "pump-rev-b", "{listed}");
    assert!(run(&["device", "list", "-o", "yaml"]).contains("hardware_id: pump-rev-b"));

    // The device reports 1.2.0; its SBOM and the advisories go up from the laptop.
    let nonce: Value = serde_json::from_str(&s.report_nonce("pump-a", "pump-a").body).unwrap();
    let payload = format!(
        r#"{{"device":"pump-a","nonce":"{}","version":"1.2.0","release_counter":12}}"#,
        nonce["nonce"].as_str().unwrap()
    );
    assert_eq!(
        s.put_version("pump-a", "pump-a", &s.sign_report("pump-a", &payload))
            .status,
        204
    );
    let out = run(&[
        "sbom",
        "upload",
        &sbom.display().to_string(),
        "--target",
        "pump-1.2.0.img",
    ]);
    assert!(out.contains("ip200-1.2.0.cdx.json"), "{out}");
    let advisories = tmp.path().join("advisories");
    medsec_testkit::risk::firmware_advisories(&advisories);
    run(&[
        "advisory",
        "upload",
        &advisories
            .join("osv/CVE-2022-3602.json")
            .display()
            .to_string(),
        &advisories.join("bb-2022-0001.json").display().to_string(),
    ]);
    let findings = run(&["findings", "pump-a"]);
    assert!(
        findings.contains("CVE-2022-3602") && findings.contains("CVE-2022-28391"),
        "{findings}"
    );
    let ranking = run(&["ranking", "-o", "json"]);
    assert!(ranking.contains("\"no_release_sbom\""), "{ranking}");

    // Alerts and an incident: two exfiltration batches.
    for (sequence, remote) in [(1, "203.0.113.9"), (2, "203.0.113.10")] {
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
              "remote": "{remote}", "remote_port": 443, "protocol": "tcp", "bytes_out": 90000,
              "bytes_in": 300, "packets_out": 70, "packets_in": 5, "duration_ms": 800}}]}}"#
        );
        let r = s.telemetry(&s.as_device("pump-a"), "pump-a", &body, &[]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let alerts = run(&["alerts", "list", "--since", "1h"]);
    assert!(
        alerts.lines().count() >= 2 && alerts.contains("pump-a"),
        "{alerts}"
    );
    let incidents: Value =
        serde_json::from_str(&run(&["incident", "list", "--open", "-o", "json"])).unwrap();
    let id = incidents[0]["id"].as_str().unwrap().to_owned();
    let confirmed = run(&["incident", "confirm", &id, "--cra", "severe-incident"]);
    assert!(confirmed.contains("clock:"), "{confirmed}");
    run(&[
        "incident",
        "playbook",
        &id,
        "quarantine",
        "--device",
        "pump-a",
    ]);
    let shown: Value =
        serde_json::from_str(&run(&["device", "show", "pump-a", "-o", "json"])).unwrap();
    assert_eq!(shown["quarantined"], true);
    run(&["incident", "playbook", &id, "release", "--device", "pump-a"]);
    let forced = run(&[
        "incident",
        "playbook",
        &id,
        "force-update",
        "--device",
        "pump-a",
        "--version",
        "1.3.0",
        "--release-counter",
        "13",
        "--target",
        "pump-1.3.0.img",
    ]);
    assert!(forced.contains("force_update pump-a"), "{forced}");
    run(&[
        "incident",
        "playbook",
        &id,
        "cancel-update",
        "--device",
        "pump-a",
    ]);

    // One alert, acknowledged once, under the operator's name.
    let listed: Value = serde_json::from_str(&run(&["alerts", "list", "-o", "json"])).unwrap();
    let alert = listed[0]["id"].to_string();
    assert!(listed[0]["acknowledged"].is_null());
    let shown = run(&["alerts", "show", &alert]);
    assert!(shown.contains("evidence:"), "{shown}");
    let acked: Value = serde_json::from_str(&run(&[
        "alerts",
        "ack",
        &alert,
        "--note",
        "the pump's vendor support session",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(acked["acknowledged"]["by"], "Operator::\"olga\"", "{acked}");
    let e = refused(&["alerts", "ack", &alert]);
    assert!(e.contains("acknowledged already"), "{e}");
    assert!(run(&["alerts", "list", "-o", "wide"]).contains("vendor support session"));

    // Inventory records and operator tokens, from the laptop.
    let profile = tmp.path().join("pump.json");
    std::fs::write(
        &profile,
        r#"{"vendor": "Acme Medical", "clinical": "therapy", "exposure": "network",
           "support": {"status": "supported"}, "hardware_ids": ["pump-rev-b"]}"#,
    )
    .unwrap();
    run(&[
        "inventory",
        "model",
        "set",
        "pump",
        &profile.display().to_string(),
    ]);
    let models = run(&["inventory", "model", "list", "-o", "wide"]);
    assert!(
        models.lines().any(|l| l.starts_with("pump ")
            && l.contains("Acme Medical")
            && l.contains("pump-rev-b")),
        "{models}"
    );
    let tokens = run(&["operator", "token", "list"]);
    assert!(
        tokens
            .lines()
            .any(|l| l.contains("olga") && l.contains("live")),
        "{tokens}"
    );

    // A campaign, planned, started and watched from the laptop.
    let out = run(&[
        "campaign",
        "create",
        "--name",
        "fix-1.3",
        "--version",
        "1.3.0",
        "--release-counter",
        "13",
        "--target",
        "pump-1.3.0.img",
        "--device",
        "pump-a",
    ]);
    assert!(out.contains("campaign fix-1.3 planned"), "{out}");
    assert!(run(&["campaign", "start", "fix-1.3"]).contains("is running"));
    assert!(run(&["campaign", "status", "fix-1.3"]).starts_with("campaign fix-1.3: running"));
    let listed = run(&["campaign", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("fix-1.3") && l.contains("running")),
        "{listed}"
    );
    // Its progress is in the metrics: its one device, in one state.
    let metrics = s.operator(&admin, "GET", "/metrics", None).body;
    let in_campaign: i64 = metrics
        .lines()
        .filter(|l| l.starts_with("medsec_campaign_devices{campaign=\"fix-1.3\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(in_campaign, 1, "{metrics}");

    // The audit log, checked here under a pinned copy of its key; another key is refused.
    let key = tmp.path().join("audit.pub.pinned");
    std::fs::copy(s.data.join("audit.pub"), &key).unwrap();
    let key = key.display().to_string();
    let head = run(&["audit", "head", "--key", &key]);
    assert!(
        head.contains("signature verified under the pinned key"),
        "{head}"
    );
    let proof = run(&["audit", "proof", "3", "--key", &key]);
    assert!(proof.contains("entry 3 is in the log"), "{proof}");
    assert!(run(&["audit", "verify", "--key", &key]).contains("audit log verifies"));
    let other = tmp.path().join("other-server");
    ok(medsec().args(["init", "--data-dir"]).arg(&other));
    let wrong = other.join("audit.pub").display().to_string();
    let e = refused(&["audit", "head", "--key", &wrong]);
    assert!(e.contains("NOT signed"), "{e}");
    let e = refused(&["audit", "proof", "3", "--key", &wrong]);
    assert!(e.contains("NOT signed"), "{e}");

    // The compliance report, fetched: the same files as on the server host.
    let out = run(&["report", "compliance", "--out", "rep"]);
    assert!(out.contains("controls evidenced"), "{out}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("rep/compliance.json")).unwrap())
            .unwrap();
    assert!(report["controls"].as_array().unwrap().len() > 10);
    assert!(home.join("rep/compliance.html").exists());
    assert!(home.join("rep/bundle/index.json").exists());

    // Every action is the operator's own in the audit log.
    let quarantine = s.audited(&admin, "the quarantine", |e| {
        field(e, "action") == "incident.manage" && has(e, "detail", "quarantine pump-a")
    });
    assert_eq!(
        field(&quarantine["event"], "principal"),
        "Operator::\"olga\""
    );
    s.audited(&admin, "the SBOM upload", |e| {
        field(e, "action") == "risk.write" && field(e, "principal") == "Operator::\"olga\""
    });

    // The Defender's suppressions, audit checks and the Investigator's timeline, from here.
    let out = run(&[
        "defender",
        "suppress",
        "--rule",
        "egress-not-allowed",
        "--scope",
        "device",
        "--value",
        "pump-a",
        "--reason",
        "vendor support session",
        "--for",
        "1h",
        "-o",
        "json",
    ]);
    let suppression: Value = serde_json::from_str(&out).unwrap();
    let sid = suppression["id"].to_string();
    let listed = run(&["defender", "suppressions"]);
    assert!(
        listed.contains("vendor support session") && listed.contains("true"),
        "{listed}"
    );
    assert!(run(&["defender", "lift", &sid]).contains("lifted"));
    let checks: Value = serde_json::from_str(&run(&[
        "defender",
        "audit",
        "--json",
        "--fail-on",
        "critical",
    ]))
    .unwrap();
    assert!(checks.is_array(), "{checks}");
    let timeline = run(&["investigate", "pump-a", "--since", "1h"]);
    assert!(
        timeline.lines().count() > 3 && timeline.contains("alert"),
        "{timeline}"
    );
    let csv = run(&["investigate", "pump-a", "--format", "csv"]);
    assert!(
        csv.lines().next().unwrap_or_default().contains(','),
        "{csv}"
    );

    // Decommissioned mid-campaign, the pump is withdrawn from it instead of failing it later:
    // its campaign, with no other device, completes.
    let out = run(&[
        "device",
        "decommission",
        "pump-a",
        "--reason",
        "returned",
        "-o",
        "json",
    ]);
    let gone: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        gone["withdrawn_from"],
        serde_json::json!(["fix-1.3"]),
        "{gone}"
    );
    let status = run(&["campaign", "status", "fix-1.3"]);
    assert!(
        status.starts_with("campaign fix-1.3: completed"),
        "{status}"
    );

    // A closed pipe ends a listing quietly (no panic, exit 0).
    let piped = Command::new("bash")
        .current_dir(&home)
        .env("MEDSEC_CONFIG_DIR", &config)
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' completions bash | head -c 10 >/dev/null && \
             '{}' device list -o wide | head -c 0",
            binary().display(),
            binary().display()
        ))
        .output()
        .unwrap();
    assert!(
        piped.status.success() && !String::from_utf8_lossy(&piped.stderr).contains("panicked"),
        "{piped:?}"
    );

    // Contexts are deleted by name; nothing ever made a data directory here.
    run(&["context", "delete", "ward"]);
    assert!(refused(&["device", "list"]).contains("medsec login"));
    let left: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["rep"],
        "the laptop's directory holds only the report"
    );
}

/// A TCP relay to PostgreSQL that the test can cut, connections and all.
struct Relay {
    addr: String,
    open: Arc<Mutex<Vec<TcpStream>>>,
    listener: Arc<Mutex<Option<TcpListener>>>,
}

impl Relay {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept = listener.try_clone().unwrap();
        let listener = Arc::new(Mutex::new(Some(listener)));
        let (upstream, sockets, alive) = (upstream.to_owned(), open.clone(), listener.clone());
        std::thread::spawn(move || {
            for client in accept.incoming() {
                let Ok(client) = client else { return };
                if alive.lock().unwrap().is_none() {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut list = sockets.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self {
            addr,
            open,
            listener,
        }
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&self) {
        self.listener.lock().unwrap().take();
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn metrics_pass_promtool_and_move_under_load_and_readiness_follows_the_store() {
    let Some(url) = postgres_schema_url("readyz", "the readiness test on PostgreSQL") else {
        return;
    };
    let upstream = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .unwrap()
        .to_owned();
    let relay = Relay::start(&upstream);
    let url = url.replacen(&upstream, &relay.addr, 1);
    let tmp = tempfile::tempdir().unwrap();
    // In the configuration file, so that the CLI's admin commands (tokens, enrolment) use the
    // same database as the server.
    let config = tmp.path().join("medsec.toml");
    std::fs::write(&config, format!("database_url = {url:?}\n")).unwrap();
    let s = start(
        tmp.path(),
        &[],
        &["--config", &config.display().to_string()],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    let monitor = s.operator_token("prometheus", "monitor", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");

    // Liveness and readiness need no credential (probes carry none).
    let r = s.curl(&[&s.operator_url("/healthz")]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.curl(&[&s.operator_url("/readyz")]);
    assert_eq!(r.status, 200, "{r:?}");
    let ready: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");

    // Metrics: only with metrics.read (the monitor role, or admin).
    assert_eq!(s.curl(&[&s.operator_url("/metrics")]).status, 401);
    assert_eq!(s.operator(&viewer, "GET", "/metrics", None).status, 403);
    let scrape = || {
        let r = s.operator(&monitor, "GET", "/metrics", None);
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    };
    let devices_ok = |text: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("medsec_http_requests_total{")
                    && l.contains("route=\"/api/v1/devices\"")
                    && l.contains("status=\"200\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = scrape();
    for _ in 0..25 {
        assert_eq!(
            s.operator(&admin, "GET", "/api/v1/devices", None).status,
            200
        );
    }
    s.enrol("pump-m");
    let after = scrape();
    assert!(
        devices_ok(&after) >= devices_ok(&before) + 25,
        "the request counter moved by {} of 25",
        devices_ok(&after) - devices_ok(&before)
    );
    assert!(
        after.contains(
            "medsec_devices{model=\"pump\",quarantined=\"false\",state=\"enrolled\",version=\"\"} 1"
        ),
        "{after}"
    );
    assert!(after.contains("medsec_tls_handshakes_total{outcome=\"ok\",port=\"device\"}"));
    assert!(after.contains("medsec_audit_commit_duration_seconds_bucket"));

    // promtool (Debian's prometheus package) accepts the exposition.
    let metrics = tmp.path().join("metrics.txt");
    std::fs::write(&metrics, &after).unwrap();
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap())
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing and CI=true: {e}"
            );
            eprintln!("SKIPPED: promtool check metrics (promtool: {e})");
        }
    }

    // The store becomes unreachable: /readyz says so, naming the store; /healthz still answers.
    relay.cut();
    let r = s.curl(&[&s.operator_url("/readyz")]);
    assert_eq!(r.status, 503, "{r:?}");
    let unready: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(unready["status"], "unready");
    let store = unready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "store")
        .unwrap();
    assert_eq!(store["ok"], false, "{unready}");
    assert_eq!(s.curl(&[&s.operator_url("/healthz")]).status, 200);
}

#[test]
fn a_device_leaves_service_for_good_and_a_closed_incident_never_strands_its_quarantine() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_DEFENDER_POLICY", &policy.display().to_string()),
            ("MEDSEC_LOG", "info"),
        ],
        &["--log-format", "json"],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    let viewer = s.operator_token("vic", "viewer", "1h");
    let home = tmp.path().join("laptop");
    let config = tmp.path().join("laptop-config");
    std::fs::create_dir_all(&home).unwrap();
    let login = |name: &str, token: &str| {
        let file = token_file(tmp.path(), &format!("{name}.token"), token);
        ok(laptop(&home, &config).args([
            "login",
            &s.operator_url(""),
            "--ca",
            &s.ca("chain.pem").display().to_string(),
            "--token-file",
            &file.display().to_string(),
            "--name",
            name,
        ]));
    };
    login("viewer", &viewer);
    login("admin", &admin);
    let run = |args: &[&str]| ok(laptop(&home, &config).args(args));
    let refused = |args: &[&str]| fails(laptop(&home, &config).args(args));
    s.enrol("pump-d");
    let exfiltrate = |sequence: i64| {
        let body = format!(
            r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
              "remote": "203.0.113.{sequence}", "remote_port": 443, "protocol": "tcp",
              "bytes_out": 90000, "bytes_in": 300, "packets_out": 70, "packets_in": 5,
              "duration_ms": 800}}]}}"#
        );
        s.telemetry(&s.as_device("pump-d"), "pump-d", &body, &[])
    };
    assert_eq!(exfiltrate(1).status, 200);
    let incidents: Value =
        serde_json::from_str(&run(&["incident", "list", "--open", "-o", "json"])).unwrap();
    let id = incidents[0]["id"].as_str().unwrap().to_owned();
    run(&[
        "incident",
        "playbook",
        &id,
        "quarantine",
        "--device",
        "pump-d",
    ]);
    run(&["incident", "close", &id]);
    let quarantined = |s: &str| {
        let v: Value = serde_json::from_str(&run(&[
            "device",
            "show",
            "pump-d",
            "-o",
            "json",
            "--context",
            s,
        ]))
        .unwrap();
        v["quarantined"].as_bool().unwrap()
    };
    assert!(
        quarantined("admin"),
        "closing the incident left the quarantine"
    );

    // The closed incident takes no new action, but its quarantine can always be lifted.
    let e = refused(&[
        "incident",
        "playbook",
        &id,
        "quarantine",
        "--device",
        "pump-d",
    ]);
    assert!(e.contains("closed"), "{e}");
    let e = refused(&[
        "device",
        "release",
        "pump-d",
        "--reason",
        "x",
        "--context",
        "viewer",
    ]);
    assert!(e.contains("403"), "a viewer may not release: {e}");
    let e = refused(&["device", "release", "pump-d", "--reason", " "]);
    assert!(e.contains("reason"), "{e}");
    run(&[
        "device",
        "release",
        "pump-d",
        "--reason",
        "forensic image taken; re-imaged",
    ]);
    assert!(!quarantined("admin"));
    let e = refused(&["device", "release", "pump-d", "--reason", "again"]);
    assert!(e.contains("not quarantined"), "{e}");
    let released = s.audited(&admin, "the release", |e| {
        field(e, "action") == "device.release" && has(e, "detail", "forensic image taken")
    });
    assert_eq!(field(&released["event"], "principal"), "Operator::\"olga\"");
    // The release playbook works through the closed incident too.
    let through = run(&["incident", "playbook", &id, "release", "--device", "pump-d"]);
    assert!(through.contains("closed"), "{through}");

    // Decommission: certificates revoked, every request refused, history kept, the name taken
    // until an explicit re-registration.
    let out = run(&[
        "device",
        "decommission",
        "pump-d",
        "--reason",
        "returned to the vendor",
    ]);
    assert!(
        out.contains("decommissioned; 1 certificate(s) revoked"),
        "{out}"
    );
    let shown: Value =
        serde_json::from_str(&run(&["device", "show", "pump-d", "-o", "json"])).unwrap();
    assert_eq!(shown["state"], "decommissioned");
    let r = exfiltrate(2);
    assert!(
        r.status == 401 || r.status == 0,
        "a decommissioned device is refused: {r:?}"
    );
    assert!(
        run(&["alerts", "list", "--device", "pump-d"]).contains("pump-d"),
        "history kept"
    );
    let e = refused(&["token", "create", "--device", "pump-d"]);
    assert!(
        e.contains("decommissioned") && e.contains("--re-register"),
        "{e}"
    );
    let e = refused(&["device", "decommission", "pump-d", "--reason", "twice"]);
    assert!(e.contains("already"), "{e}");
    run(&["token", "create", "--device", "pump-d", "--re-register"]);
    let shown: Value =
        serde_json::from_str(&run(&["device", "show", "pump-d", "-o", "json"])).unwrap();
    assert_eq!(shown["state"], "registered");

    // An admin command on the server host is audited under the account that ran it, even
    // without USER or LOGNAME in its environment.
    ok(medsec()
        .env_remove("USER")
        .env_remove("LOGNAME")
        .args(["fleet", "token", "create", "--device", "pump-host"])
        .args(s.location()));
    let made = s.audited(&admin, "the host's token", |e| {
        field(e, "action") == "token.create" && field(e, "resource") == "Device::\"pump-host\""
    });
    let principal = field(&made["event"], "principal").to_owned();
    assert!(
        principal.starts_with("Cli::\"") && !principal.contains("unknown"),
        "{principal}"
    );

    // The server's log: one JSON object per line, no colour codes, and a line per security
    // event (the decommissioning among them), without the tokens it saw.
    let log = std::fs::read_to_string(s.work.join("server.log")).unwrap();
    assert!(!log.contains('\u{1b}'), "no ANSI codes in a redirected log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["target"] == "medsec::security"
            && l["action"] == "device.decommission"
            && l["principal"] == "Operator::\"olga\""),
        "{log}"
    );
    assert!(
        !log.contains(&admin) && !log.contains(&viewer),
        "no token in the log"
    );
}

#[test]
fn completions_and_man_pages_are_generated_from_the_command_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let text = ok(medsec().args(["completions", shell]));
        assert!(
            text.contains("login")
                && text.contains("decommission")
                && text.contains("dead-letters"),
            "{shell}"
        );
    }
    let out = ok(medsec().args(["man", "--out"]).arg(tmp.path()));
    let pages = std::fs::read_dir(tmp.path()).unwrap().count();
    assert!(
        pages > 80 && out.contains(&format!("{pages} man pages")),
        "{out}"
    );
    let page = std::fs::read_to_string(tmp.path().join("medsec-device-decommission.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("medsec device decommission"), "{page}");
    // groff, where installed, reads every page without a warning.
    if let Ok(out) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(tmp.path().join("medsec.1"))
        .output()
    {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The workspace's `.venv` Python with Schemathesis and openapi-spec-validator (`MEDSEC_PYTHON`
/// overrides); in CI its absence fails the test, elsewhere it says it skipped.
fn schemathesis_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("MEDSEC_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
        std::path::PathBuf::from,
    );
    let works = Command::new(&python)
        .args(["-c", "import schemathesis, openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "schemathesis is required in CI: run scripts/test.sh, which creates .venv"
    );
    eprintln!(
        "SKIPPED: the OpenAPI checks (no schemathesis at {}; run scripts/test.sh)",
        python.display()
    );
    None
}

#[test]
fn the_openapi_description_is_current_valid_and_holds_against_schemathesis() {
    let tmp = tempfile::tempdir().unwrap();
    // Schemathesis sends thousands of requests from one operator: no rate limit for this test.
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "100000"),
            ("MEDSEC_LIMITS__REQUEST_BURST", "100000"),
        ],
        &[],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    s.enrol("pump-o");
    let r = s.operator(&admin, "GET", "/api/v1/openapi.json", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        s.curl(&[&s.operator_url("/api/v1/openapi.json")]).status,
        401
    );
    let served: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(served["openapi"], "3.1.0");

    // The committed copy and `medsec openapi` are the served document.
    assert_committed(
        &r.body,
        "openapi.json",
        "cargo run -- openapi --out docs/openapi.json",
    );
    let printed: Value = serde_json::from_str(&ok(medsec().arg("openapi"))).unwrap();
    assert_eq!(printed, served);
    // What Schemathesis found first: a report time far outside any calendar overflowed the
    // certificate-expiry arithmetic (a panic in debug builds, a wrong answer in release).
    let far = s.operator(
        &admin,
        "GET",
        "/api/v1/reports/compliance?as_of_ms=-9223372036854775807",
        None,
    );
    assert_eq!(far.status, 400, "{far:?}");
    assert!(far.body.contains("between 1970 and 9999"), "{far:?}");

    let Some(python) = schemathesis_python() else {
        return;
    };
    let doc = tmp.path().join("openapi.json");
    std::fs::write(&doc, &r.body).unwrap();
    assert_valid(&python, &doc);

    // Schemathesis against the live API with a valid token: a bounded number of examples per
    // operation; no 5xx, and every answer's status, media type and body as documented.
    let auth = format!("Authorization: Bearer {admin}");
    let out = schemathesis(&python, &s, None, &doc, &s.operator_url(""), &["-H", &auth]);
    expect_passed("operator port", &out);

    // The device port's description: current, valid, and held by the server when a device
    // (its fleet certificate) is fuzzed against it.
    let r = s.operator(&admin, "GET", "/api/v1/openapi/device.json", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_committed(
        &r.body,
        "openapi-device.json",
        "cargo run -- openapi --port device --out docs/openapi-device.json",
    );
    let device_doc = tmp.path().join("openapi-device.json");
    std::fs::write(&device_doc, &r.body).unwrap();
    assert_valid(&python, &device_doc);
    // The device acts on itself only: its id is fixed, so requests reach the handlers. EST's
    // PKCS#10 bodies are not something Schemathesis can generate (EST is tested with openssl
    // and curl as clients in `identity`).
    let config = tmp.path().join("schemathesis.toml");
    std::fs::write(&config, "[parameters]\n\"path.id\" = \"pump-o\"\n").unwrap();
    let out = schemathesis(
        &python,
        &s,
        Some(&config),
        &device_doc,
        &s.device_url(""),
        &[
            "--request-cert",
            "pump-o.pem",
            "--request-cert-key",
            "pump-o.key",
            "--exclude-operation-id",
            "est_simpleenroll",
            "--exclude-operation-id",
            "est_simplereenroll",
        ],
    );
    expect_passed("device port", &out);
}

/// Schemathesis run against `url` as described by `doc`, in the server's folder (where the
/// device's key files are): a bounded number of examples per operation, a fixed seed, and the
/// checks that matter here — no 5xx, and every status, media type and body as documented.
fn schemathesis(
    python: &Path,
    s: &Running,
    config: Option<&Path>,
    doc: &Path,
    url: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut c = Command::new(python);
    c.current_dir(&s.work).args(["-m", "schemathesis.cli"]);
    if let Some(config) = config {
        c.arg("--config-file").arg(config);
    }
    c.arg("run")
        .arg(doc)
        .args(["--url", url])
        .args(extra)
        .arg("--tls-verify")
        .arg(s.ca("chain.pem"))
        .args([
            "--max-examples",
            "15",
            "--seed",
            "20261207",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--no-color",
        ])
        .output()
        .unwrap()
}

/// The served description `body` equals the committed `docs/NAME`, which `regenerate` updates.
fn assert_committed(body: &str, name: &str, regenerate: &str) {
    let served: Value = serde_json::from_str(body).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == served,
        "docs/{name} is out of date: run `{regenerate}`"
    );
}

/// openapi-spec-validator accepts `doc`.
fn assert_valid(python: &Path, doc: &Path) {
    let out = Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Schemathesis's run passed; its counts are printed.
fn expect_passed(port: &str, out: &std::process::Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    let counts = text
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("schemathesis, {port}: {counts}");
    if std::env::var_os("MEDSEC_SHOW_SCHEMATHESIS").is_some() {
        eprintln!("{text}");
    }
    assert!(
        out.status.success() && counts.contains("generated"),
        "schemathesis found failures on the {port}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
