//! Event export to real receivers: a webhook receiver that checks every signature with
//! `openssl dgst -hmac` (down for a while, the server SIGKILLed once: every event arrives), and
//! rsyslog receiving CEF over TLS.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use medsec_testkit::*;

const SECRET: &str = "whsec-3b1f0c6a9e2d4b7f8a5c1e0d9b2f4a6c";

/// A webhook receiver on a fixed port that can be taken down and brought back.
struct Receiver {
    port: u16,
    /// Every event id received with a valid signature, in arrival order (duplicates kept).
    received: Arc<Mutex<Vec<String>>>,
    /// Requests whose signature or id did not check out.
    bad: Arc<Mutex<Vec<String>>>,
    up: Arc<AtomicBool>,
}

fn hmac_by_openssl(message: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.rsplit("= ").next().unwrap().trim().to_owned()
}

impl Receiver {
    fn new() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Self {
            port,
            received: Arc::default(),
            bad: Arc::default(),
            up: Arc::new(AtomicBool::new(false)),
        };
        r.start();
        r
    }

    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, received, bad) = (self.up.clone(), self.received.clone(), self.bad.clone());
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    headers.push(line.trim_end().to_owned());
                }
                let header = |name: &str| {
                    headers
                        .iter()
                        .find_map(|h| {
                            let (k, v) = h.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                // Medsec-Signature: t=SECONDS,v1=HEX over "t.body", checked by openssl.
                let signature = header("medsec-signature");
                let t = signature
                    .split(',')
                    .find_map(|p| p.strip_prefix("t="))
                    .unwrap_or_default()
                    .to_owned();
                let v1 = signature
                    .split(',')
                    .find_map(|p| p.strip_prefix("v1="))
                    .unwrap_or_default();
                let mut signed = format!("{t}.").into_bytes();
                signed.extend_from_slice(&body);
                let fresh = t
                    .parse::<i64>()
                    .is_ok_and(|t| (now_ms() / 1000 - t).abs() < 300);
                let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = event["id"].as_str().unwrap_or_default().to_owned();
                let status =
                    if hmac_by_openssl(&signed) == v1 && fresh && id == header("medsec-event-id") {
                        received.lock().unwrap().push(id);
                        "200 OK"
                    } else {
                        bad.lock().unwrap().push(format!("{signature} {id}"));
                        "401 Unauthorized"
                    };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
    }

    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
    }

    fn ids(&self) -> BTreeSet<String> {
        self.received.lock().unwrap().iter().cloned().collect()
    }
}

/// The events of the audit log and the alerts a sink with every default kind and
/// `min_severity = "info"` must deliver, by id.
fn expected(s: &Running, admin: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for e in s.audit(admin) {
        let ev = &e["event"];
        let (kind, action, decision) = (
            field(ev, "kind"),
            field(ev, "action"),
            field(ev, "decision"),
        );
        let taken = decision != "deny"
            && (matches!(kind, "incident" | "revocation" | "lifecycle")
                || (kind == "campaign" && action == "campaign.status")
                || (kind == "defender"
                    && action == "defender.audit"
                    && ["info", "low", "medium", "high", "critical"].contains(&decision)));
        if taken {
            ids.insert(format!("audit-{}", e["seq"]));
        }
    }
    let r = s.operator(admin, "GET", "/api/v1/alerts?limit=1000", None);
    for a in serde_json::from_str::<Vec<Value>>(&r.body).unwrap() {
        if a["suppressed_by"].is_null() {
            ids.insert(format!("alert-{}", a["id"]));
        }
    }
    ids
}

fn write_secret(path: &Path) {
    std::fs::write(path, SECRET).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn exfiltrate(s: &Running, device: &str, sequence: i64) -> Reply {
    let body = format!(
        r#"{{"sequence": {sequence}, "events": [{{"kind": "flow", "at_ms": 1764748900000,
          "remote": "203.0.113.{sequence}", "remote_port": 443, "protocol": "tcp",
          "bytes_out": 90000, "bytes_in": 300, "packets_out": 70, "packets_in": 5,
          "duration_ms": 800}}]}}"#
    );
    s.telemetry(&s.as_device(device), device, &body, &[])
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_webhook_receives_every_event_through_its_downtime_and_a_server_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::new();
    let secret = tmp.path().join("hook.secret");
    write_secret(&secret);
    let policy = tmp.path().join("defender.json");
    std::fs::write(
        &policy,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"], "remote_ports": [1111]}}}"#,
    )
    .unwrap();
    let config = tmp.path().join("medsec.toml");
    std::fs::write(
        &config,
        format!(
            "defender_policy = {:?}\n\n[[export]]\nname = \"soc-hook\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{}/hook\"\nsecret_file = {:?}\nmin_severity = \"info\"\n\
             start = \"beginning\"\n",
            policy.display().to_string(),
            receiver.port,
            secret.display().to_string()
        ),
    )
    .unwrap();
    let args = ["--config".to_owned(), config.display().to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = start(tmp.path(), &[], &args);
    let admin = s.operator_token("olga", "admin", "1h");

    // Up: an exfiltration raises alerts and opens an incident; all of it arrives.
    s.enrol("pump-x1");
    assert_eq!(exfiltrate(&s, "pump-x1", 1).status, 200);
    wait_for("the first events", Duration::from_secs(30), || {
        receiver.ids().iter().any(|i| i.starts_with("alert-"))
            && expected(&s, &admin).is_subset(&receiver.ids())
    });

    // Down: more events, then the server is SIGKILLed while they wait.
    receiver.stop();
    for sequence in 2..=12 {
        assert_eq!(exfiltrate(&s, "pump-x1", sequence).status, 200);
    }
    s.enrol("pump-x2");
    let r = s.operator(&admin, "POST", "/api/v1/devices/pump-x1/revoke", Some("{}"));
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.operator(
        &admin,
        "POST",
        "/api/v1/devices/pump-x2/decommission",
        Some(r#"{"reason": "returned"}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let before_kill = expected(&s, &admin);
    assert!(
        !before_kill.is_subset(&receiver.ids()),
        "events are waiting for the receiver"
    );
    drop(s); // SIGKILL (Child::kill), then wait
    let s = start(tmp.path(), &[], &args);

    // Back up: everything arrives, each event once by id, nothing the sink should not take.
    receiver.start();
    let mut want = BTreeSet::new();
    wait_for(
        "every event after the restart",
        Duration::from_secs(60),
        || {
            want = expected(&s, &admin);
            want.is_subset(&receiver.ids())
        },
    );
    assert!(before_kill.is_subset(&want));
    // Nothing else: every id received is one the sink should take.
    let extra: Vec<String> = receiver
        .ids()
        .difference(&expected(&s, &admin))
        .cloned()
        .collect();
    assert!(
        extra.is_empty(),
        "received events the sink should not take: {extra:?}"
    );
    assert!(
        receiver.bad.lock().unwrap().is_empty(),
        "{:?}",
        receiver.bad
    );
    eprintln!(
        "webhook: {} events expected, {} received ({} deliveries, duplicates by id included)",
        want.len(),
        receiver.ids().len(),
        receiver.received.lock().unwrap().len()
    );
    for kind in ["alert-", "audit-"] {
        assert!(want.iter().any(|i| i.starts_with(kind)), "{want:?}");
    }

    // The CLI shows the sink caught up and no dead letter.
    let r = s.operator(&admin, "GET", "/api/v1/export/status", None);
    let status: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(status[0]["name"], "soc-hook", "{status}");
    assert_eq!(status[0]["dead_letters"], 0, "{status}");
}

#[test]
fn a_receiver_that_refuses_an_event_for_good_gets_a_dead_letter_and_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::new();
    // A secret the receiver does not share: every request is refused with 401.
    let secret = tmp.path().join("wrong.secret");
    std::fs::write(&secret, "not-the-shared-secret").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = tmp.path().join("medsec.toml");
    std::fs::write(
        &config,
        format!(
            "[[export]]\nname = \"bad-hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n\
             secret_file = {:?}\nmax_attempts = 2\nstart = \"beginning\"\n",
            receiver.port,
            secret.display().to_string()
        ),
    )
    .unwrap();
    let s = start(
        tmp.path(),
        &[],
        &["--config", &config.display().to_string()],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    s.enrol("pump-y");
    let r = s.operator(&admin, "POST", "/api/v1/devices/pump-y/revoke", Some("{}"));
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the dead letter", Duration::from_secs(30), || {
        let r = s.operator(&admin, "GET", "/api/v1/export/dead-letters", None);
        serde_json::from_str::<Vec<Value>>(&r.body).is_ok_and(|v| !v.is_empty())
    });
    let r = s.operator(
        &admin,
        "GET",
        "/api/v1/export/dead-letters?sink=bad-hook",
        None,
    );
    let letters: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(letters[0]["attempts"], 2);
    assert!(
        letters[0]["error"].as_str().unwrap().contains("HTTP 401"),
        "{letters:?}"
    );
    assert!(
        letters[0]["event"]
            .as_str()
            .unwrap()
            .contains("device.revoke")
    );

    // A sink whose secret cannot be read stops the start, naming it.
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let config = broken.join("medsec.toml");
    std::fs::write(
        &config,
        "[[export]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_file = \"/nonexistent\"\n",
    )
    .unwrap();
    let out = server_command(
        &broken,
        &[],
        &["--config", &config.display().to_string()],
        &[],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("export \"x\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rsyslog_receives_cef_over_tls() {
    let Ok(rsyslogd) = which("rsyslogd") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rsyslogd is missing and CI=true"
        );
        eprintln!("SKIPPED: rsyslog CEF over TLS (no rsyslogd)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A CA and the receiver's certificate for localhost.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=siem CA",
            "-days",
            "2",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "siem.key",
            "-out",
            "siem.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "siem.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "siem.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let received = dir.join("received.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}"
       DefaultNetstreamDriver="ossl"
       DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/siem.pem"
       DefaultNetstreamDriverKeyFile="{d}/siem.key")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%msg%\n")
action(type="omfile" file="{r}" template="raw")
"#,
            d = dir.display(),
            r = received.display()
        ),
    )
    .unwrap();
    let mut rsyslog = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsyslog.err")).unwrap())
        .spawn()
        .unwrap();
    wait_for("rsyslog to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let config = dir.join("medsec.toml");
    std::fs::write(
        &config,
        format!(
            "[[export]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{port}\"\n\
             server_name = \"localhost\"\nca_file = {:?}\nstart = \"beginning\"\n",
            dir.join("ca.pem").display().to_string()
        ),
    )
    .unwrap();
    let s = start(dir, &[], &["--config", &config.display().to_string()]);
    let admin = s.operator_token("olga", "admin", "1h");
    s.enrol("pump-s");
    let r = s.operator(&admin, "POST", "/api/v1/devices/pump-s/revoke", Some("{}"));
    assert_eq!(r.status, 200, "{r:?}");
    let mut text = String::new();
    let found = Instant::now() + Duration::from_secs(30);
    while !text.contains("act=device.revoke") {
        assert!(
            Instant::now() < found,
            "rsyslog received: {text:?}; its errors: {}",
            std::fs::read_to_string(dir.join("rsyslog.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
        text = std::fs::read_to_string(&received).unwrap_or_default();
    }
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
    let line = text
        .lines()
        .find(|l| l.contains("act=device.revoke"))
        .unwrap();
    assert!(line.contains("CEF:0|medsec|medsec|"), "{line}");
    assert!(
        line.contains("|device.revoke|revocation device.revoke|8|"),
        "{line}"
    );
    assert!(
        line.contains("externalId=audit-") && line.contains("cs1=pump-s"),
        "{line}"
    );
    assert!(line.contains("suser=Operator::\"olga\""), "{line}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(())
}

/// A Splunk HTTP Event Collector stand-in: checks the `Splunk` token and the envelope, keeps
/// each event, answers as HEC does.
fn hec_receiver(token: &str) -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (kept, token) = (events.clone(), token.to_owned());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut auth, mut path) = (0usize, String::new(), String::new());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            path.push_str(first.split_whitespace().nth(1).unwrap_or_default());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap_or_default();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = v.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
            let ok = auth == format!("Splunk {token}")
                && path == "/services/collector/event"
                && envelope["sourcetype"] == "medsec:event"
                && envelope["time"].as_str().is_some_and(|t| t.contains('.'))
                && envelope["event"]["id"].is_string();
            let answer = if ok {
                kept.lock().unwrap().push(envelope["event"].clone());
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"text\":\"Success\",\"code\":0}"
            } else {
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let mut stream = reader.into_inner();
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, events)
}

#[test]
fn splunk_hec_receives_events_with_its_token_and_envelope() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "5f4dcc3b-5aa7-4765-a9f0-hec-token";
    let (port, events) = hec_receiver(token);
    let secret = tmp.path().join("hec.token");
    std::fs::write(&secret, token).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = tmp.path().join("medsec.toml");
    std::fs::write(
        &config,
        format!(
            "[[export]]\nname = \"splunk\"\nkind = \"splunk-hec\"\n\
             url = \"http://127.0.0.1:{port}/services/collector/event\"\nsecret_file = {:?}\n\
             kinds = [\"revocation\", \"lifecycle\"]\nmin_severity = \"medium\"\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let s = start(
        tmp.path(),
        &[],
        &["--config", &config.display().to_string()],
    );
    let admin = s.operator_token("olga", "admin", "1h");
    s.enrol("pump-h");
    let r = s.operator(&admin, "POST", "/api/v1/devices/pump-h/revoke", Some("{}"));
    assert_eq!(r.status, 200, "{r:?}");
    wait_for("the revocation in HEC", Duration::from_secs(30), || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "device.revoke")
    });
    let got = events.lock().unwrap().clone();
    // Only what the filter takes: revocations and lifecycle at medium or above (no CRL
    // signing, which is info; no enrolment).
    assert!(
        got.iter()
            .all(|e| e["kind"] == "revocation" && e["severity"] != "info"),
        "{got:?}"
    );
}
