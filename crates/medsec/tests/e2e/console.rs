//! The web console in a real browser: `medsec demo` makes a fleet, `medsec server` serves it
//! with single sign-on through a real OpenID provider (panva's `oidc-provider` on Node.js, over
//! HTTPS with a certificate made here), and `tests/console/console.test.mjs` drives Debian's
//! Chromium through Playwright: sign-in, the dashboard's counts and its live update, devices,
//! a device's timeline and its CSV, an incident confirmed, a device quarantined and released,
//! an alert acknowledged, a campaign planned in the form with its live preview, a broken
//! build's campaign halting and its fix's completing (the demo's pumps run their agents beside
//! the test, pointed at this server), watched live, risk, the compliance bundle, an audit entry's inclusion
//! proof and the whole log verified, CSRF refusals, sign-out, a viewer refused, a person
//! without a role refused, and axe-core on every view. Screenshots go to
//! `target/console-screenshots/`. Then the audit log is read here: every step is in it, under
//! the person's name.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use medsec_testkit::{field, has, medsec, ok, openssl, start};
use serde_json::Value;

/// The browser tests' folder with its npm packages installed, and the browser; `None` (the
/// test skipped, said on stderr) when either is missing outside CI.
fn browser_tests() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (
            "npm packages (npm ci in tests/console)",
            dir.join("node_modules/playwright-core").exists()
                && dir.join("node_modules/oidc-provider").exists()
                && dir.join("node_modules/axe-core").exists(),
        ),
        ("Chromium", Path::new(&chromium).exists()),
        (
            "Node.js",
            Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
        ),
    ]
    .into_iter()
    .filter(|(_, there)| !there)
    .map(|(what, _)| what)
    .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the console's browser tests must run in CI, and {} missing: scripts/install-test-deps.sh installs them",
        missing.join(", ")
    );
    eprintln!(
        "SKIPPED: the console's browser tests ({} missing; scripts/install-test-deps.sh installs them)",
        missing.join(", ")
    );
    None
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA and a server certificate for 127.0.0.1 under it, in `dir`.
fn provider_certificate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=idp test CA",
    ]);
    openssl(dir, &ca);
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend([
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &req);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
}

#[test]
fn the_console_signs_in_through_openid_connect_and_runs_the_day_in_chromium() {
    let Some(tests) = browser_tests() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // The demo's fleet: 8 devices, two campaigns (one halted), alerts, two incidents, one
    // pump quarantined.
    ok(medsec()
        .args(["demo", "--devices", "8", "--dir"])
        .arg(work.join("demo")));
    std::fs::rename(work.join("demo/server"), work.join("data")).unwrap();
    let idp = work.join("idp");
    provider_certificate(&idp);
    std::fs::write(idp.join("secret"), "client secret of the test\n").unwrap();
    let idp_port = free_port();
    let issuer = format!("https://127.0.0.1:{idp_port}");
    let demo_config = std::fs::read_to_string(work.join("demo/medsec.toml")).unwrap();
    let config = format!(
        "{demo_config}\n[console.oidc]\nissuer = {issuer:?}\nprovider_name = \"Hospital SSO\"\n\
         client_id = \"medsec\"\nclient_secret_file = {:?}\nca_file = {:?}\n\
         [console.oidc.roles]\nmedsec-security = [\"security\"]\nmedsec-release = [\"release\"]\n\
         medsec-viewers = [\"viewer\"]\n",
        idp.join("secret").display().to_string(),
        idp.join("ca.pem").display().to_string(),
    );
    std::fs::write(work.join("medsec.toml"), config).unwrap();
    let config_path = work.join("medsec.toml").display().to_string();
    let server = start(work, &[], &["--config", &config_path]);
    let base = format!("https://{}", server.operator);

    // The OpenID provider, now that medsec's redirect URI is known.
    let mut provider = Command::new("node")
        .current_dir(&tests)
        .arg("oidc-provider.mjs")
        .arg(idp_port.to_string())
        .arg(idp.join("key.pem"))
        .arg(idp.join("cert.pem"))
        .arg("client secret of the test")
        .arg(format!("{base}/ui/login/callback"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("provider.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open: the provider logs to it, and a closed pipe would end it.
    let mut provider_out = BufReader::new(provider.stdout.take().unwrap());
    provider_out.read_line(&mut line).unwrap();
    let _provider = Killed(provider);
    assert!(
        line.contains("listening"),
        "the OpenID provider did not start: {line}{}",
        std::fs::read_to_string(work.join("provider.log")).unwrap_or_default()
    );

    // Two new releases in the demo's image repository, signed with its keys: a broken build
    // (the pumps' health check fails on it) and its fix.
    let demo = work.join("demo");
    let repo = demo.join("repository");
    let pass = demo.join("passphrase.txt");
    for (version, counter, fill) in [("1.3.0", "13", 0x13u8), ("1.3.1", "14", 0x14)] {
        let file = demo.join(format!("fleet-fw-{version}.img"));
        std::fs::write(&file, vec![fill; 64 * 1024]).unwrap();
        ok(medsec()
            .args(["repo", "add-target"])
            .arg(&repo)
            .arg(&file)
            .args(["--hardware-id", "pump-rev-b", "--hardware-id", "monitor-m2"])
            .args(["--version", version, "--release-counter", counter])
            .arg("--passphrase-file")
            .arg(&pass));
    }
    ok(medsec()
        .args(["repo", "timestamp"])
        .arg(&repo)
        .arg("--passphrase-file")
        .arg(&pass));
    ok(medsec()
        .args(["repo", "publish"])
        .arg(&repo)
        .arg("--out")
        .arg(demo.join("www")));
    // The demo's pumps, each with its agent, now pointed at this server.
    let mut agents = Vec::new();
    for i in 0..4 {
        let dir = demo.join(format!("devices/pump-{i:03}"));
        let path = dir.join("device.json");
        let mut device: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        device["server"] = Value::String(format!("https://{}", server.device));
        std::fs::write(&path, serde_json::to_vec_pretty(&device).unwrap()).unwrap();
        let _ = std::fs::remove_file(dir.join("therapy-running"));
        let child = medsec()
            .args([
                "agent",
                "run",
                "--poll-secs",
                "1",
                "--no-telemetry",
                "--dir",
            ])
            .arg(&dir)
            .args(["--health-command", r#"test "$MEDSEC_VERSION" != 1.3.0"#])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join(format!("agent-{i}.log"))).unwrap())
            .spawn()
            .unwrap();
        agents.push(Killed(child));
    }

    let token = server.operator_token("console-test", "admin", "1h");
    let incidents: Value = serde_json::from_str(
        &server
            .operator(&token, "GET", "/api/v1/incidents", None)
            .body,
    )
    .unwrap();
    let list = incidents.as_array().unwrap();
    let contained = list
        .iter()
        .find(|i| i["phase"] == "contained")
        .expect("the demo's contained incident");
    let detected = list
        .iter()
        .find(|i| i["phase"] == "detected")
        .expect("the demo's unconfirmed incident");
    let quarantined = contained["devices"][0].as_str().unwrap();
    let device = detected["devices"][0].as_str().unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");

    let out = Command::new("node")
        .current_dir(&tests)
        .arg("console.test.mjs")
        .env("MEDSEC_URL", &base)
        .env("MEDSEC_TOKEN", &token)
        .env("MEDSEC_CA", server.ca("chain.pem"))
        .env("EXPECT_DEVICES", "8")
        .env("DEVICE", device)
        .env("INCIDENT", detected["id"].as_str().unwrap())
        .env("OTHER_INCIDENT", contained["id"].as_str().unwrap())
        .env("QUARANTINED", quarantined)
        .env("SCREENSHOTS", &shots)
        .env(
            "CAMPAIGN_RELEASES",
            "fleet-fw-1.3.0.img:1.3.0:13,fleet-fw-1.3.1.img:1.3.1:14",
        )
        .env("CAMPAIGN_MODEL", "infusion-pump")
        .env(
            "ADVISORY_FILE",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/risk/crossformat/redhat-csaf-osv/RHSA-2024_4546.osv.json"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\nserver log:\n{}\nprovider log:\n{}\nan agent's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.join("server.log")).unwrap_or_default(),
        std::fs::read_to_string(work.join("provider.log")).unwrap_or_default(),
        std::fs::read_to_string(work.join("agent-1.log")).unwrap_or_default(),
    );
    drop(agents);

    // The audit log, read here: each step under the person's name (issuer and subject).
    let alice = format!("Operator::\"{issuer}#alice\"");
    let victor = format!("Operator::\"{issuer}#victor\"");
    let entries = server.audit(&token);
    let find = |what: &str, pred: &dyn Fn(&Value) -> bool| {
        entries
            .iter()
            .map(|e| &e["event"])
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no audit entry of {what}"))
            .clone()
    };
    let signed_in = find("alice's sign-in", &|e| {
        field(e, "action") == "console.sign_in" && field(e, "principal") == alice
    });
    assert_eq!(field(&signed_in, "decision"), "allow");
    assert!(has(&signed_in, "detail", "single sign-on"));
    find("alice's confirmation, decided by Cedar", &|e| {
        field(e, "action") == "incident.manage"
            && field(e, "principal") == alice
            && field(e, "decision") == "allow"
    });
    find("the quarantine under alice's name", &|e| {
        field(e, "principal") == alice && has(e, "detail", "quarantined")
    });
    find("victor's refused quarantine", &|e| {
        field(e, "action") == "incident.manage"
            && field(e, "principal") == victor
            && field(e, "decision") == "deny"
    });
    find("the CSRF refusal", &|e| {
        field(e, "principal") == alice && field(e, "decision") == "deny" && has(e, "detail", "CSRF")
    });
    find("the refused sign-in of a person without a role", &|e| {
        field(e, "action") == "console.sign_in"
            && field(e, "decision") == "deny"
            && has(e, "detail", "no medsec role")
    });
    for name in ["01-dashboard", "03-device", "09-audit", "11-viewer-refused"] {
        assert!(
            shots.join(format!("{name}.png")).exists(),
            "no screenshot {name}"
        );
    }
}
