//! The tamper-evident audit log: tampering on SQLite and PostgreSQL named by `medsec audit
//! verify`, and the Defender's audit checks on their schedule and on crafted cases.
//!
//! PostgreSQL: `MEDSEC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`); the
//! test fails under `CI=true` when it is unreachable and says SKIPPED elsewhere.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use medsec_testkit::*;

/// Runs the server on `database_url` (or SQLite), makes some history, then edits, deletes and
/// reorders audit rows with `tamper` and checks what `medsec audit verify` says.
fn audit_tampering_is_named(database_url: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<&str> = database_url
        .map(|u| vec!["--database-url", u])
        .unwrap_or_default();
    let s = start(tmp.path(), &[], &args);
    let mut location: Vec<String> = s.location().to_vec();
    if let Some(u) = database_url {
        location.extend(["--database-url".into(), u.into()]);
    }
    let with_db = |cmd: &mut Command| {
        cmd.args(&location);
    };
    let mut cmd = medsec();
    cmd.args([
        "operator", "token", "create", "--name", "alice", "--role", "admin",
    ]);
    with_db(&mut cmd);
    let admin = ok(&mut cmd).trim().to_owned();
    let auth = format!("Authorization: Bearer {admin}");
    for _ in 0..12 {
        let r = s.curl(&["-H", &auth, &s.operator_url("/api/v1/devices")]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    drop(s);

    let verify = || {
        let mut cmd = medsec();
        cmd.args(["audit", "verify"]);
        with_db(&mut cmd);
        cmd.output().unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let url = database_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("data/medsec.db").display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: &str| {
        rt.block_on(async {
            let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
            match &store {
                medsec_store::AnyStore::Sqlite(s) => {
                    sqlx::query(sql).execute(s.pool()).await.unwrap();
                }
                medsec_store::AnyStore::Postgres(p) => {
                    sqlx::query(sql).execute(p.pool()).await.unwrap();
                }
            }
            store.close().await;
        });
    };
    let says = |expected: &str| {
        let out = verify();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "verify must fail: {stdout}");
        assert!(
            stdout.contains(expected),
            "expected {expected:?} in:\n{stdout}"
        );
    };

    // Edit: an authorisation decision flipped from allow to deny.
    exec("UPDATE audit_entries SET entry = replace(entry, '\"allow\"', '\"deny\"') WHERE seq = 4");
    says("entry 4 was altered");
    exec("UPDATE audit_entries SET entry = replace(entry, '\"deny\"', '\"allow\"') WHERE seq = 4");
    assert!(
        verify().status.success(),
        "undoing the edit restores the log"
    );

    // Reorder: rows 6 and 7 swap places.
    exec(
        "UPDATE audit_entries SET entry = CASE seq \
         WHEN 6 THEN (SELECT entry FROM audit_entries WHERE seq = 7) \
         ELSE (SELECT entry FROM audit_entries WHERE seq = 6) END WHERE seq IN (6, 7)",
    );
    says("entry 6 was reordered");

    // Delete: row 9 disappears.
    exec("DELETE FROM audit_entries WHERE seq = 9");
    says("entry 9 was removed");
}

#[test]
fn audit_tampering_on_sqlite_is_named() {
    audit_tampering_is_named(None);
}

#[test]
fn audit_tampering_on_postgres_is_named() {
    if let Some(url) = postgres_schema_url("tamper", "the PostgreSQL tamper test") {
        audit_tampering_is_named(Some(&url));
    }
}

#[test]
fn the_audit_checks_run_on_their_own_schedule_and_log_each_new_finding_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Device certificates of 3 days: inside the 7-day warning of the expiry check.
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_DEFENDER_AUDIT_INTERVAL_SECS", "1"),
            ("MEDSEC_DEVICE_CERT_DAYS", "3"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-x");
    let expiring = |e: &Value| {
        field(e, "action") == "defender.audit"
            && field(e, "resource").contains("pump-x")
            && has(e, "detail", "device-certificate-expiring")
    };
    s.audited(&admin, "the scheduled finding", expiring);
    // Later runs summarise, and do not log the unchanged finding again.
    let runs = |log: &[Value]| {
        log.iter()
            .filter(|e| {
                field(&e["event"], "action") == "defender.audit"
                    && has(&e["event"], "detail", "scheduled audit checks")
            })
            .count()
    };
    let before = runs(&s.audit(&admin));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while runs(&s.audit(&admin)) < before + 2 {
        assert!(std::time::Instant::now() < deadline, "the schedule stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.audit(&admin);
    assert_eq!(log.iter().filter(|e| expiring(&e["event"])).count(), 1);
}

#[test]
fn each_audit_check_fires_on_its_crafted_case() {
    let tmp = tempfile::tempdir().unwrap();
    // The shipped policies plus one that lets any operator or device read every device.
    let policies = tmp.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for f in ["medsec.cedarschema", "default.cedar"] {
        std::fs::copy(shipped.join(f), policies.join(f)).unwrap();
    }
    std::fs::write(
        policies.join("extra.cedar"),
        "@id(\"too-open\")\npermit (principal, action == Medsec::Action::\"device.read\", resource);\n",
    )
    .unwrap();
    let defender = tmp.path().join("defender.json");
    std::fs::write(
        &defender,
        r#"{"classes": {"pump": {"destinations": ["10.0.1.0/24"]}}}"#,
    )
    .unwrap();
    let env = [
        ("MEDSEC_POLICY_DIR", policies.display().to_string()),
        ("MEDSEC_DEFENDER_POLICY", defender.display().to_string()),
        // One-day certificates: inside the 7-day renewal check from the start.
        ("MEDSEC_DEVICE_CERT_DAYS", "1".to_owned()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = start(tmp.path(), &env_ref, &[]);
    let admin = s.operator_token("alice", "admin", "1h");
    s.enrol("pump-w");
    let send = |body: &str| {
        let mut args: Vec<String> = s.as_device("pump-w").into();
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            body.into(),
            s.device_url("/api/v1/devices/pump-w/telemetry"),
        ]);
        let r = s.curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.status, 200, "{r:?}");
    };
    let op = |method: &str, path: &str, body: Option<&str>| {
        let r = s.operator(&admin, method, path, body);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    // An exfiltration flow opens an incident; the pump is quarantined; the incident is closed
    // with the quarantine left on. Then the pump reports its logging turned off.
    send(
        r#"{"sequence": 1, "events": [{"kind": "flow", "at_ms": 1, "remote": "203.0.113.9",
            "remote_port": 443, "protocol": "tcp", "bytes_out": 1, "bytes_in": 1,
            "packets_out": 1, "packets_in": 1, "duration_ms": 1}]}"#,
    );
    let incidents = op("GET", "/api/v1/incidents", None);
    let path = format!("/api/v1/incidents/{}", incidents[0]["id"].as_str().unwrap());
    op(
        "POST",
        &path,
        Some(r#"{"action": "playbook", "playbook": "quarantine", "device": "pump-w"}"#),
    );
    op(
        "POST",
        &path,
        Some(r#"{"action": "phase", "phase": "closed"}"#),
    );
    send(
        r#"{"sequence": 2, "events": [{"kind": "security", "at_ms": 2, "event": "logging_disabled"}]}"#,
    );

    let findings = op("GET", "/api/v1/defender/audit?cert_days=7", None);
    let checks: std::collections::BTreeSet<(String, String)> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["resource"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pump = "Device::\"pump-w\"".to_owned();
    for expected in [
        ("device-certificate-expiring".to_owned(), pump.clone()),
        ("quarantine-without-incident".to_owned(), pump.clone()),
        ("logging-disabled".to_owned(), pump.clone()),
        (
            "overly-permissive-policy".to_owned(),
            "policy too-open".to_owned(),
        ),
    ] {
        assert!(checks.contains(&expected), "{expected:?} not in {findings}");
    }
    assert!(
        !checks
            .iter()
            .any(|(c, _)| c == "audit-log-integrity" || c == "device-silent"),
        "{findings}"
    );
    let silent = op("GET", "/api/v1/defender/audit?silent_hours=1", None);
    assert!(
        !silent
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "device-silent"),
        "the pump was just seen: {silent}"
    );
    // The command line: the same findings, and a non-zero exit at the chosen severity.
    let cli = |fail_on: &str| {
        let mut c = medsec();
        c.args(["defender", "audit", "--fail-on", fail_on])
            .args(s.location())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let err = fails(&mut cli("high"));
    assert!(
        err.contains("overly-permissive-policy") && err.contains("at or above High"),
        "{err}"
    );
    let out = ok(&mut cli("critical"));
    assert!(out.contains("quarantine-without-incident"), "{out}");

    // The remaining checks, on crafted state read by the command line.
    // A manufacturer CA that expires tomorrow is still trusted.
    openssl(
        &s.work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "mca.key",
            "-out",
            "mca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=Acme IDevID CA",
        ],
    );
    // And one that expired last year.
    let mut old_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    old_ca
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Retired IDevID CA");
    old_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    old_ca.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(800);
    old_ca.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(
        s.work.join("old-ca.pem"),
        old_ca.self_signed(&key).unwrap().pem(),
    )
    .unwrap();
    let config = s.work.join("audit.toml");
    std::fs::write(
        &config,
        format!(
            "[[manufacturers]]\nname = \"acme\"\nca = {:?}\ndevice_ids = [\"*\"]\n\
             [[manufacturers]]\nname = \"retired\"\nca = {:?}\ndevice_ids = [\"*\"]\n",
            s.work.join("mca.pem").display().to_string(),
            s.work.join("old-ca.pem").display().to_string()
        ),
    )
    .unwrap();
    // The pump has not been seen for a long time, and an audit entry was edited.
    let url = format!("sqlite://{}", s.data.join("medsec.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = medsec_store::AnyStore::open(&url, 1).await.unwrap();
        let medsec_store::AnyStore::Sqlite(db) = &store else {
            panic!("the test server uses SQLite")
        };
        for sql in [
            "UPDATE devices SET last_seen_ms = 1000 WHERE id = 'pump-w'",
            "UPDATE audit_entries SET entry = entry || ' ' WHERE seq = 4",
        ] {
            sqlx::query(sql).execute(db.pool()).await.unwrap();
        }
        store.close().await;
    });
    let mut c = cli("critical");
    c.arg("--config").arg(&config).arg("--json");
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a critical finding fails the run"
    );
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "ca-certificate-expiring",
        "expired-ca-still-trusted",
        "device-silent",
        "audit-log-integrity",
    ] {
        assert!(found.contains(&check), "{check} not in {findings}");
    }
    assert_eq!(
        found[0], "audit-log-integrity",
        "the most severe comes first"
    );
}

/// What an attacker holding the data directory and the log key does: removes entry `drop`,
/// re-links and renumbers the rest, recomputes the root and re-signs a head over it with the
/// real key. The stored log then verifies on its own.
fn rewrite_with_the_real_key(data: &Path, drop: usize) {
    use medsec_audit::{Entry, TreeHead, leaf_hash};
    use medsec_store::prelude::*;
    let url = format!("sqlite://{}", data.join("medsec.db").display());
    // The tests' servers keep a plaintext key (MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY): the
    // attacker here has it, as one who also knew the passphrase would.
    let key = medsec_server::audit_log::load_or_create_key(data, None, true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = medsec_store::SqliteStore::open(Path::new(&url[9..]), 1)
            .await
            .unwrap();
        let mut entries: Vec<Entry> = store
            .audit_entries(0, 1_000_000)
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.entry).unwrap())
            .collect();
        entries.remove(drop);
        let mut rows = Vec::new();
        let mut leaves = Vec::new();
        let mut prev = String::new();
        for (i, mut e) in entries.into_iter().enumerate() {
            e.seq = i as u64;
            e.prev = std::mem::take(&mut prev);
            let text = e.to_text();
            let leaf = leaf_hash(text.as_bytes());
            prev = hex::encode(leaf);
            leaves.push(leaf);
            rows.push(medsec_store::AuditRow {
                seq: i as i64,
                entry: text,
            });
        }
        let head = TreeHead::new(leaves.len() as u64, &medsec_audit::root(&leaves), 1)
            .sign(&key)
            .unwrap();
        sqlx::query("DELETE FROM audit_entries")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_heads")
            .execute(store.pool())
            .await
            .unwrap();
        store
            .append_audit(
                &rows,
                &medsec_store::HeadRow {
                    tree_size: rows.len() as i64,
                    head: serde_json::to_string(&head).unwrap(),
                },
            )
            .await
            .unwrap();
        store.close().await;
    });
}

/// Removes the newest entries from `keep` on, with every head that covers them: the truncated
/// log verifies on its own.
fn truncate(data: &Path, keep: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = medsec_store::SqliteStore::open(&data.join("medsec.db"), 1)
            .await
            .unwrap();
        for sql in [
            "DELETE FROM audit_entries WHERE seq >= $1",
            "DELETE FROM audit_heads WHERE tree_size > $1",
        ] {
            sqlx::query(sql)
                .bind(keep)
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.close().await;
    });
}

/// A witness on another "machine" (its own directory) watching one server.
struct Witness {
    dir: std::path::PathBuf,
    token_file: std::path::PathBuf,
}

impl Witness {
    fn new(s: &Running) -> Self {
        let dir = s.work.join("witness");
        let out = ok(medsec()
            .args([
                "witness",
                "init",
                "--name",
                "witness.hospital.example",
                "--dir",
            ])
            .arg(&dir)
            .arg("--log-key")
            .arg(s.data.join("audit.pub")));
        assert!(out.starts_with("witness.hospital.example+"), "{out}");
        let token = s.operator_token("witness", "auditor", "1h");
        let token_file = s.work.join("witness.token");
        std::fs::write(&token_file, &token).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self { dir, token_file }
    }

    /// One round against `s`: the witness's exit status and what it said.
    fn round(&self, s: &Running) -> (bool, String) {
        let out = medsec()
            .args(["witness", "run", "--once", "--dir"])
            .arg(&self.dir)
            .args(["--server", &s.operator_url("")])
            .arg("--token-file")
            .arg(&self.token_file)
            .arg("--cacert")
            .arg(s.ca("chain.pem"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// `medsec audit verify` on `s`'s data directory, the log key pinned, with extra arguments.
fn verify_with(s: &Running, pinned: &Path, extra: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = medsec()
        .args(["audit", "verify"])
        .args(s.location())
        .arg("--key")
        .arg(pinned)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_rewrite_re_signed_with_the_real_key_and_a_truncation_are_caught_by_a_saved_head_and_the_witness()
 {
    for attack in ["rewrite", "truncate"] {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        let s = start(work, &[], &[]);
        let admin = s.operator_token("alice", "admin", "1h");
        let pinned = work.join("pinned-audit.pub");
        std::fs::copy(s.data.join("audit.pub"), &pinned).unwrap();
        let witness = Witness::new(&s);
        let list = |s: &Running| {
            for _ in 0..5 {
                assert_eq!(
                    s.operator(&admin, "GET", "/api/v1/devices", None).status,
                    200
                );
            }
        };
        list(&s);
        let (fine, said) = witness.round(&s);
        assert!(fine && said.contains("co-signed"), "{said}");
        list(&s);
        let (fine, said) = witness.round(&s);
        assert!(
            fine && said.contains("co-signed"),
            "a grown log is co-signed again: {said}"
        );
        let saved = work.join("saved-head.json");
        std::fs::copy(witness.dir.join("latest.json"), &saved).unwrap();
        let vkey = witness.dir.join("witness.vkey");
        let head_args = [
            std::ffi::OsStr::new("--head"),
            saved.as_os_str(),
            std::ffi::OsStr::new("--witness-key"),
            vkey.as_os_str(),
        ];
        let (fine, said) = verify_with(&s, &pinned, &head_args);
        assert!(fine && said.contains("extends the saved head"), "{said}");
        let size: u64 = serde_json::from_str::<Value>(&std::fs::read_to_string(&saved).unwrap())
            .unwrap()["head"]["head"]["tree_size"]
            .as_u64()
            .unwrap();
        list(&s);

        // The attack, with the server stopped, on its own database and with its own key.
        drop(s);
        match attack {
            "rewrite" => rewrite_with_the_real_key(&work.join("data"), 3),
            _ => truncate(&work.join("data"), i64::try_from(size).unwrap() - 2),
        }
        let s2 = start(work, &[], &[]);
        // Alone, the log is self-consistent: the attacker re-signed or dropped the heads.
        let (fine, said) = verify_with(&s2, &pinned, &[]);
        assert!(
            fine,
            "the {attack} should pass a plain verification: {said}"
        );
        // Against the saved, co-signed head it is caught.
        let (fine, said) = verify_with(&s2, &pinned, &head_args);
        let named = if attack == "rewrite" {
            "rewritten"
        } else {
            "truncated"
        };
        assert!(!fine && said.contains(named), "{attack}: {said}");
        // And the witness refuses to co-sign what the server now offers, with evidence, after
        // the log has grown past the co-signed size again.
        list(&s2);
        list(&s2);
        let (fine, said) = witness.round(&s2);
        assert!(!fine && said.contains("REFUSED"), "{attack}: {said}");
        let evidence = std::fs::read_dir(&witness.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("evidence-")
            })
            .count();
        assert_eq!(evidence, 1, "{attack}");
        // The co-signed head the witness holds is unchanged.
        assert_eq!(
            std::fs::read(witness.dir.join("latest.json")).unwrap(),
            std::fs::read(&saved).unwrap()
        );
    }
}
