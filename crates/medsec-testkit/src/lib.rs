//! Shared by the end-to-end tests (`crates/medsec/tests/e2e`) and the server benchmark: a `medsec server` child process on ephemeral ports, curl and
//! openssl as the device's and operator's tools, audit-log lookups, and a published image
//! repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    reason = "test support: a panic is a failed test, with the command and its output"
)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod risk;

/// The `medsec` binary of this build: `MEDSEC_BIN` if set, else the one cargo built beside the
/// running test or bench executable (`target/<profile>/deps/NAME-HASH` → `target/<profile>/medsec`;
/// cargo builds a package's binaries before its integration tests and benches).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MEDSEC_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let dir = exe.parent().expect("the test executable's folder");
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let bin = dir.join(format!("medsec{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is not built: run the tests with cargo test -p medsec, or set MEDSEC_BIN",
        bin.display()
    );
    bin
}

/// `medsec`, with no passphrase in its environment, warnings-only logs, and the audit log key
/// allowed in plaintext (`MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY`: the tests' servers have no
/// passphrase; `identity::the_audit_log_key_is_encrypted_and_a_plaintext_one_refused` checks
/// the default without it).
pub fn medsec() -> Command {
    let mut c = Command::new(binary());
    c.env_remove("MEDSEC_PASSPHRASE")
        .env("MEDSEC_LOG", "warn")
        .env("MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY", "true");
    c
}

#[track_caller]
/// Runs `cmd`, which must succeed; returns its standard output.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, which must fail; returns what it printed (stderr, then stdout).
#[track_caller]
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Runs `openssl ARGS` in `dir`, which must succeed; returns its standard output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("openssl").current_dir(dir).args(args))
}

/// A `medsec server` child process on two ephemeral ports.
pub struct Running {
    /// The server process (killed when this is dropped).
    pub child: Child,
    /// Its standard output, kept open so the server never writes into a closed pipe.
    pub _stdout: BufReader<ChildStdout>,
    /// The device port's address (`127.0.0.1:PORT`).
    pub device: String,
    /// The operator port's address.
    pub operator: String,
    /// The server's data directory (`WORK/data`).
    pub data: PathBuf,
    /// The test's folder, where keys, requests and `server.log` are written.
    pub work: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL of a fresh schema (`medsec_<label>_<pid>`, made by the store on first use) on the
/// PostgreSQL at `MEDSEC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`), or
/// `None` when nothing listens there: then `what` is said to be skipped, and under `CI=true`
/// the test fails instead.
pub fn postgres_schema_url(label: &str, what: &str) -> Option<String> {
    let url = std::env::var("MEDSEC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let addr = url
        .split_once('@')
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    if std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not reachable at {addr} and CI=true: {what} must run in CI"
        );
        eprintln!("SKIPPED: {what} (nothing listening at {addr})");
        return None;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{sep}search_path=medsec_{label}_{}",
        std::process::id()
    ))
}

/// Starts `medsec server` with its data in `WORK/data`, both ports on ephemeral ports, `env`
/// added to its environment and `args` to its command line; its log goes to `WORK/server.log`.
pub fn start(work: &Path, env: &[(&str, &str)], args: &[&str]) -> Running {
    start_under(work, env, args, &[])
}

/// [`start`], the server started through `wrapper` (a command that runs its arguments, as
/// `sh -c 'ulimit -n 1024 && exec "$0" "$@"'` does) when it is not empty.
pub fn start_under(work: &Path, env: &[(&str, &str)], args: &[&str], wrapper: &[&str]) -> Running {
    let mut child = server_command(work, env, args, wrapper)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let data = work.join("data");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = |label: &str| {
        let rest = line
            .split(label)
            .nth(1)
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(work.join("server.log")).unwrap_or_default();
                panic!("the server did not say where it listens: {line:?}\n{log}")
            })
            .trim_start_matches("https://");
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
            .to_owned()
    };
    let (device, operator) = (addr("device port "), addr("operator port "));
    Running {
        child,
        _stdout: stdout,
        device,
        operator,
        data,
        work: work.to_owned(),
    }
}

/// The command [`start_under`] runs: `medsec server` on ephemeral ports with its data in
/// `WORK/data`, through `wrapper` when it is not empty.
pub fn server_command(
    work: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    wrapper: &[&str],
) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest)
                .arg(binary())
                .env_remove("MEDSEC_PASSPHRASE")
                .env("MEDSEC_LOG", "warn")
                .env("MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY", "true");
            c
        }
        None => medsec(),
    };
    cmd.args(["server", "--data-dir"])
        .arg(work.join("data"))
        .args([
            "--device-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .envs(env.iter().copied());
    cmd
}

/// What curl got: the HTTP status (0 when no HTTP answer came) and the body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status (0 when no HTTP answer came).
    pub status: u16,
    /// The body.
    pub body: String,
    /// What curl said on standard error.
    pub stderr: String,
}

impl Running {
    /// A file of the fleet CA (`chain.pem`, `crl.pem`, …).
    pub fn ca(&self, file: &str) -> PathBuf {
        self.data.join("ca").join(file)
    }

    /// Runs curl in the test's folder, trusting the fleet chain, and returns status and body.
    pub fn curl(&self, args: &[&str]) -> Reply {
        let out = Command::new("curl")
            .current_dir(&self.work)
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(self.ca("chain.pem"))
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `https://DEVICE-PORT/PATH`.
    pub fn device_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.device)
    }

    /// `https://OPERATOR-PORT/PATH`.
    pub fn operator_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.operator)
    }

    /// `--data-dir`, and `--config` when the test wrote `medsec.toml` (an image repository).
    pub fn location(&self) -> Vec<String> {
        let mut l = vec!["--data-dir".into(), self.data.display().to_string()];
        let config = self.work.join("medsec.toml");
        if config.exists() {
            l.extend(["--config".into(), config.display().to_string()]);
        }
        l
    }

    /// A one-time enrolment token for `device` (model `pump`), from `medsec fleet token create`.
    pub fn enrolment_token(&self, device: &str) -> String {
        ok(medsec()
            .args([
                "fleet", "token", "create", "--device", device, "--model", "pump",
            ])
            .args(self.location()))
        .trim()
        .to_owned()
    }

    /// An operator token from `medsec operator token create`.
    pub fn operator_token(&self, name: &str, role: &str, ttl: &str) -> String {
        ok(medsec()
            .args([
                "operator", "token", "create", "--name", name, "--role", role,
            ])
            .args(["--ttl", ttl])
            .args(self.location()))
        .trim()
        .to_owned()
    }

    /// A new P-256 key `NAME.key` and a base64 DER request `NAME.b64` whose subject is `cn`.
    pub fn key_and_request(&self, name: &str, cn: &str) {
        self.request_for_key(name, cn, true);
    }

    /// A base64 DER request `NAME.b64` with subject `cn`, for the key `NAME.key` (new when `new_key`).
    pub fn request_for_key(&self, name: &str, cn: &str, new_key: bool) {
        let (key, csr, b64) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.b64"),
        );
        let subject = format!("/CN={cn}");
        if new_key {
            openssl(
                &self.work,
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-subj",
                    &subject,
                    "-outform",
                    "DER",
                    "-out",
                    &csr,
                ],
            );
        } else {
            openssl(
                &self.work,
                &[
                    "req", "-new", "-key", &key, "-subj", &subject, "-outform", "DER", "-out", &csr,
                ],
            );
        }
        // openssl wraps base64 at 64 columns; RFC 7030 servers must accept that.
        openssl(&self.work, &["base64", "-in", &csr, "-out", &b64]);
    }

    /// POSTs `NAME.b64` to an EST endpoint; on success writes `NAME.pem` (the returned
    /// certificates) and `NAME.leaf.pem`.
    pub fn est(&self, endpoint: &str, name: &str, auth: &[&str]) -> Reply {
        let body = format!("@{name}.b64");
        let mut args = vec![
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &body,
        ];
        args.extend_from_slice(auth);
        let url = self.device_url(&format!("/.well-known/est/{endpoint}"));
        args.push(&url);
        let reply = self.curl(&args);
        if reply.status == 200 {
            std::fs::write(self.work.join(format!("{name}.p7.b64")), &reply.body).unwrap();
            self.certificates_from_est(name);
        }
        reply
    }

    /// Turns an EST answer saved as `NAME.p7.b64` into `NAME.pem` (the certificates) and
    /// `NAME.leaf.pem` (the device's own).
    pub fn certificates_from_est(&self, name: &str) {
        {
            let (p7b64, p7, pem, leaf) = (
                format!("{name}.p7.b64"),
                format!("{name}.p7"),
                format!("{name}.pem"),
                format!("{name}.leaf.pem"),
            );
            openssl(&self.work, &["base64", "-d", "-in", &p7b64, "-out", &p7]);
            openssl(
                &self.work,
                &[
                    "pkcs7",
                    "-inform",
                    "DER",
                    "-in",
                    &p7,
                    "-print_certs",
                    "-out",
                    &pem,
                ],
            );
            openssl(&self.work, &["x509", "-in", &pem, "-out", &leaf]);
        }
    }

    /// Revokes `NAME.leaf.pem` with the offline CLI beside the running server (`medsec ca
    /// revoke` on the data directory's CA, then `medsec ca crl`), as an administrator would.
    pub fn revoke_offline(&self, name: &str) {
        let leaf = openssl(
            &self.work,
            &[
                "x509",
                "-in",
                &format!("{name}.leaf.pem"),
                "-noout",
                "-serial",
            ],
        );
        let serial = leaf
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        let ca_dir = self.data.join("ca");
        ok(medsec()
            .arg("ca")
            .arg("revoke")
            .arg(&ca_dir)
            .args(["--serial", &serial]));
        ok(medsec().arg("ca").arg("crl").arg(&ca_dir));
    }

    /// Calls the operator API as `token`: `method` on `path`, with a JSON `body` if given.
    pub fn operator(&self, token: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
        let auth = format!("Authorization: Bearer {token}");
        let url = self.operator_url(path);
        let mut args = vec![
            "-X",
            method,
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
        ];
        if let Some(b) = body {
            args.extend(["--data-binary", b]);
        }
        args.push(&url);
        self.curl(&args)
    }

    /// POSTs a telemetry batch for `device` over mutual TLS with the client-certificate
    /// arguments `cert` (`as_device(…)`, or `--cert identity.pem`) and any `extra` curl
    /// arguments.
    pub fn telemetry(&self, cert: &[String], device: &str, body: &str, extra: &[&str]) -> Reply {
        let url = self.device_url(&format!("/api/v1/devices/{device}/telemetry"));
        let mut args: Vec<&str> = cert.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &url,
        ]);
        self.curl(&args)
    }

    /// curl's arguments to connect as `name` (`NAME.pem`, `NAME.key`).
    pub fn as_device(&self, name: &str) -> [String; 4] {
        [
            "--cert".into(),
            format!("{name}.pem"),
            "--key".into(),
            format!("{name}.key"),
        ]
    }

    /// Every audit entry, read through the operator API.
    pub fn audit(&self, token: &str) -> Vec<Value> {
        let auth = format!("Authorization: Bearer {token}");
        let mut all = Vec::new();
        loop {
            let url = self.operator_url(&format!(
                "/api/v1/audit/entries?from={}&limit=1000",
                all.len()
            ));
            let r = self.curl(&["-H", &auth, &url]);
            assert_eq!(r.status, 200, "{r:?}");
            let page: Vec<Value> = serde_json::from_str(&r.body).unwrap();
            let n = page.len();
            all.extend(page);
            if n < 1000 {
                return all;
            }
        }
    }

    /// Waits (up to 10 s) for an audit event for which `pred` holds, and returns it.
    #[track_caller]
    pub fn audited(&self, token: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.audit(token).into_iter().find(|e| pred(&e["event"])) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no audit entry for {what}; the log holds:\n{}\nserver log:\n{}",
                self.audit(token)
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                std::fs::read_to_string(self.work.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The text of field `name` of an audit entry (empty when absent).
pub fn field<'v>(e: &'v Value, name: &str) -> &'v str {
    e[name].as_str().unwrap_or_default()
}

/// Whether field `name` of an audit entry contains `text`.
pub fn has(e: &Value, name: &str, text: &str) -> bool {
    field(e, name).contains(text)
}

impl Running {
    /// Enrols `device` with a token (key `DEVICE.key`, chain `DEVICE.pem`).
    pub fn enrol(&self, device: &str) {
        let token = self.enrolment_token(device);
        self.key_and_request(device, device);
        let bearer = format!("Authorization: Bearer {token}");
        let r = self.est("simpleenroll", device, &["-H", &bearer]);
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// `as_device` connects with `DEVICE.pem`/`DEVICE.key`: asks for a version-report nonce.
    pub fn report_nonce(&self, as_device: &str, for_device: &str) -> Reply {
        let mut args: Vec<String> = self.as_device(as_device).into();
        args.extend([
            "-X".into(),
            "POST".into(),
            self.device_url(&format!("/api/v1/devices/{for_device}/report-nonce")),
        ]);
        self.curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Signs `payload` with `KEY.key` (openssl, ECDSA P-256 SHA-256) as a version report and
    /// returns the envelope.
    pub fn sign_report(&self, key: &str, payload: &str) -> String {
        let message = medsec_api::report::message(payload.as_bytes());
        std::fs::write(self.work.join("report.msg"), &message).unwrap();
        openssl(
            &self.work,
            &[
                "dgst",
                "-sha256",
                "-sign",
                &format!("{key}.key"),
                "-out",
                "report.sig",
                "report.msg",
            ],
        );
        let sig = std::fs::read(self.work.join("report.sig")).unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        serde_json::json!({ "payload": b64.encode(payload), "signature": b64.encode(sig) })
            .to_string()
    }

    /// `as_device` connects with `DEVICE.pem`/`DEVICE.key`: PUTs the version-report `envelope`.
    pub fn put_version(&self, as_device: &str, for_device: &str, envelope: &str) -> Reply {
        let mut args: Vec<String> = self.as_device(as_device).into();
        args.extend([
            "-X".into(),
            "PUT".into(),
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            envelope.into(),
            self.device_url(&format!("/api/v1/devices/{for_device}/version")),
        ]);
        self.curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Publishes an image repository (`medsec repo`, plaintext keys) with three pump releases
/// (hardware id `pump-rev-b`) and a monitor release (`mon-x`) into
/// `WORK/www` and writes `WORK/medsec.toml` pointing the server at it.
pub fn publish_image_repository(work: &Path) -> PathBuf {
    publish_releases(
        work,
        &[
            ("pump-1.1.0.img", "1.1.0", "11", 1u8, "pump-rev-b", None),
            ("pump-1.2.0.img", "1.2.0", "12", 2, "pump-rev-b", None),
            ("pump-1.0.0.img", "1.0.0", "10", 0, "pump-rev-b", None),
            ("mon-2.0.0.img", "2.0.0", "20", 3, "mon-x", None),
        ],
        "",
    )
}

/// One release: target name, version, release counter, the byte its image is filled with,
/// hardware id, and the SBOM whose digest is signed in.
pub type Release<'a> = (&'a str, &'a str, &'a str, u8, &'a str, Option<&'a Path>);

/// Publishes an image repository with `releases` into `WORK/www` and writes
/// `WORK/medsec.toml` pointing the server at it, followed by `extra_toml`.
pub fn publish_releases(work: &Path, releases: &[Release<'_>], extra_toml: &str) -> PathBuf {
    let repo = work.join("repo");
    ok(medsec()
        .args(["repo", "init", "--plaintext-keys"])
        .arg(&repo));
    for (name, version, counter, fill, hardware_id, sbom) in releases {
        let file = work.join(name);
        std::fs::write(&file, vec![*fill; 70_000]).unwrap();
        let mut c = medsec();
        c.args(["repo", "add-target"])
            .arg(&repo)
            .arg(&file)
            .args(["--path", name, "--hardware-id", hardware_id])
            .args(["--version", version, "--release-counter", counter]);
        if let Some(sbom) = sbom {
            c.arg("--sbom").arg(sbom);
        }
        ok(&mut c);
    }
    ok(medsec().args(["repo", "timestamp"]).arg(&repo));
    let www = work.join("www");
    ok(medsec()
        .args(["repo", "publish"])
        .arg(&repo)
        .arg("--out")
        .arg(&www));
    std::fs::write(
        work.join("medsec.toml"),
        format!(
            "image_repository = {:?}\n{extra_toml}",
            www.display().to_string()
        ),
    )
    .unwrap();
    www
}

/// The device in the canary wave (wave 0) of a campaign read with `?devices=true`.
pub fn canary_of(campaign: &Value) -> String {
    campaign["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["wave"] == 0)
        .unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A device's state (`waiting`, `offered`, …) in a campaign read with `?devices=true`.
pub fn progress_of(campaign: &Value, device: &str) -> String {
    campaign["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["device"] == device)
        .unwrap()["progress"]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Now, in Unix milliseconds (as the server records time).
pub fn now_ms() -> i64 {
    medsec_util::now_ms()
}
