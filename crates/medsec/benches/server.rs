//! `cargo bench -p medsec --bench server`: the device port beside nginx, both with mutual TLS 1.3
//! and the same certificates, CA and CRL; then Cedar decision latency and durable audit appends;
//! then 10,000 devices (`BENCH_DEVICES`), each with its own certificate and kept-alive
//! connection, making no-change director polls at the rates in `BENCH_RATES`; then what one
//! campaign change costs at the sizes in `BENCH_CAMPAIGN_SIZES` (default 1,000, 10,000, 100,000).
//!
//! Needs `openssl`, `curl` and nginx (`apt-get install nginx-light`; without it the nginx rows say
//! so). The load generator is in this file: tokio + rustls (aws-lc-rs) on the same 2 cores as the
//! servers, so every row pays the same client cost. `BENCH_SECONDS` (default 10) sets each run's
//! length; `BENCH_ONLY` picks rows by part of their workload text, comma-separated (e.g.
//! `BENCH_ONLY="EST cacerts,cedar,audit appends"`). Results go in docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark program: a panic is a failed run"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    // The bench's server keeps its audit key in plaintext (no passphrase), as the tests' do;
    // the CLI appending to its log must be allowed the same.
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("MEDSEC_INSECURE_PLAINTEXT_AUDIT_KEY", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SIGTERM, so nginx's master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Starts `medsec server` with limits raised out of the way and returns (device addr, process).
fn start_medsec(work: &Path) -> (String, medsec_testkit::Running) {
    let (device, _, server) = start_medsec_with(work, &[]);
    (device, server)
}

/// As [`start_medsec`], with more environment; returns (device addr, operator addr, process).
fn start_medsec_with(
    work: &Path,
    env: &[(&str, String)],
) -> (String, String, medsec_testkit::Running) {
    std::fs::write(
        work.join("defender.json"),
        r#"{"classes": {"infusion-pump": {"destinations": ["10.20.0.0/16"], "remote_ports": [1111, 8443]}}}"#,
    )
    .unwrap();
    let policy = work.join("defender.json").display().to_string();
    let connections = std::env::var("BENCH_SERVER_DB_CONNECTIONS").ok();
    let mut all: Vec<(&str, &str)> = vec![
        ("MEDSEC_LOG", "error"),
        ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "1000000000"),
        ("MEDSEC_LIMITS__REQUEST_BURST", "1000000000"),
        // Every simulated device connects from 127.0.0.1, as a whole site behind one NAT
        // would: the per-address connection cap is raised like such a site's.
        ("MEDSEC_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
        // The keep-alive rows open many connections with one device's certificate, which a
        // real device never does.
        ("MEDSEC_LIMITS__MAX_CONNECTIONS_PER_DEVICE", "1000000"),
        // The telemetry row's devices are pumps on a profiled network: every flow is checked
        // against the allowlist.
        ("MEDSEC_DEFENDER_POLICY", &policy),
    ];
    if let Some(n) = &connections {
        all.push(("MEDSEC_DATABASE_CONNECTIONS", n));
    }
    all.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    let server = medsec_testkit::start(work, &all, &[]);
    (server.device.clone(), server.operator.clone(), server)
}

/// Enrols `pump-1` with openssl + curl, leaving `pump-1.key` and `pump-1.pem` in `work`.
fn enrol(work: &Path, device: &str) {
    let token = run(
        work,
        env!("CARGO_BIN_EXE_medsec"),
        &[
            "fleet",
            "token",
            "create",
            "--data-dir",
            "data",
            "--device",
            "pump-1",
        ],
    );
    run(
        work,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "pump-1.key",
            "-subj",
            "/CN=pump-1",
            "-outform",
            "DER",
            "-out",
            "pump-1.csr",
        ],
    );
    run(
        work,
        "openssl",
        &["base64", "-in", "pump-1.csr", "-out", "pump-1.b64"],
    );
    run(
        work,
        "curl",
        &[
            "-sSf",
            "--cacert",
            "data/ca/chain.pem",
            "-H",
            "Content-Type: application/pkcs10",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            "--data-binary",
            "@pump-1.b64",
            "-o",
            "pump-1.p7.b64",
            &format!("https://{device}/.well-known/est/simpleenroll"),
        ],
    );
    run(
        work,
        "openssl",
        &["base64", "-d", "-in", "pump-1.p7.b64", "-out", "pump-1.p7"],
    );
    run(
        work,
        "openssl",
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "pump-1.p7",
            "-print_certs",
            "-out",
            "pump-1.pem",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx with the medsec server's certificate, the fleet CA as client CA and the same CRL,
/// TLS 1.3 only, no session resumption, answering a small static JSON body.
fn start_nginx(work: &Path) -> Option<(String, Killed)> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = free_port();
    let data = work.join("data");
    // nginx checks CRLs for the whole chain (OpenSSL's CRL_CHECK_ALL), so it also needs a CRL
    // from the root for the issuing CA; medsec checks the device certificate against the issuing
    // CA's CRL. An empty root CRL, made with `openssl ca -gencrl`, goes in the same file.
    std::fs::write(work.join("root-index.txt"), "").unwrap();
    std::fs::write(
        work.join("root-crl.cnf"),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {w}/root-index.txt\ncertificate = {d}/ca/root.crt\n\
             private_key = {d}/ca/root.key\ndefault_md = sha256\ndefault_crl_days = 7\n",
            w = work.display(),
            d = data.display()
        ),
    )
    .unwrap();
    run(
        work,
        "openssl",
        &[
            "ca",
            "-gencrl",
            "-config",
            "root-crl.cnf",
            "-out",
            "root-crl.pem",
        ],
    );
    let crls = format!(
        "{}{}",
        std::fs::read_to_string(data.join("ca/crl.pem")).unwrap(),
        std::fs::read_to_string(work.join("root-crl.pem")).unwrap()
    );
    std::fs::write(work.join("crls.pem"), crls).unwrap();
    let conf = format!(
        "worker_processes 2;\ndaemon off;\npid {w}/nginx.pid;\nerror_log {w}/nginx-error.log;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n access_log off;\n client_body_temp_path {w};\n proxy_temp_path {w};\n\
         fastcgi_temp_path {w};\n uwsgi_temp_path {w};\n scgi_temp_path {w};\n\
         keepalive_requests 100000000;\n\
         server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_protocols TLSv1.3;\n\
           ssl_certificate {d}/server.crt;\n  ssl_certificate_key {d}/server.key;\n\
           ssl_client_certificate {d}/ca/chain.pem;\n  ssl_verify_client on;\n  ssl_verify_depth 2;\n\
           ssl_crl {w}/crls.pem;\n  ssl_session_tickets off;\n  ssl_session_cache off;\n\
           location = /.well-known/est/cacerts {{ default_type application/pkcs7-mime; alias {w}/cacerts.b64; }}\n\
           location / {{ default_type application/json; return 200 '{{\"id\":\"pump-1\"}}'; }}\n }}\n}}\n",
        w = work.display(),
        d = data.display(),
    );
    std::fs::write(work.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .args(["-p", &work.display().to_string(), "-c"])
        .arg(work.join("nginx.conf"))
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Some((addr, Killed(child)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn client_config(work: &Path, post_quantum: bool) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !post_quantum {
        provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(work.join("data/ca/root.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(work.join("pump-1.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(work.join("pump-1.key")).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    // Every connection is a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: &str, config: &Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body); returns the status.
async fn read_response(r: &mut tokio::io::BufReader<Tls>) -> std::io::Result<u16> {
    Ok(read_counted(r).await?.0)
}

struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    group: String,
}

fn summarise(
    mut latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
    group: String,
) -> Measured {
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Measured {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        group,
    }
}

/// New connection, full mTLS handshake, one request, close — `tasks` at a time.
async fn handshakes(
    addr: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
    tasks: usize,
    secs: u64,
) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut joins = Vec::new();
    for _ in 0..tasks {
        let (addr, config, request) = (addr.to_owned(), config.clone(), request.clone());
        joins.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut group) = (Vec::new(), 0u64, String::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = async {
                    let mut tls = connect(&addr, &config).await?;
                    if group.is_empty() {
                        group = tls
                            .get_ref()
                            .1
                            .negotiated_key_exchange_group()
                            .map(|g| format!("{:?}", g.name()))
                            .unwrap_or_default();
                    }
                    tls.write_all(request.as_bytes()).await?;
                    let mut r = tokio::io::BufReader::new(tls);
                    let status = read_response(&mut r).await?;
                    std::io::Result::Ok(status == 200)
                }
                .await;
                match ok {
                    Ok(true) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors, group)
        }));
    }
    let (mut all, mut errors, mut group) = (Vec::new(), 0, String::new());
    for j in joins {
        let (l, e, g) = j.await.unwrap();
        all.extend(l);
        errors += e;
        if group.is_empty() {
            group = g;
        }
    }
    summarise(all, errors, start.elapsed(), group)
}

/// `connections` keep-alive connections, each sending requests one after another.
async fn keep_alive(
    addr: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
    connections: usize,
    secs: u64,
) -> Measured {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(tokio::io::BufReader::new(
            connect(addr, &config).await.unwrap(),
        ));
    }
    let group = streams[0]
        .get_ref()
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut joins = Vec::new();
    for mut s in streams {
        let request = request.clone();
        joins.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                if s.get_mut().write_all(request.as_bytes()).await.is_err() {
                    errors += 1;
                    break;
                }
                match read_response(&mut s).await {
                    Ok(200) => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for j in joins {
        let (l, e) = j.await.unwrap();
        all.extend(l);
        errors += e;
    }
    summarise(all, errors, start.elapsed(), group)
}

/// Reads one HTTP/1.1 response; returns (status, bytes of head and body).
async fn read_counted(r: &mut tokio::io::BufReader<Tls>) -> std::io::Result<(u16, usize)> {
    let mut line = String::new();
    let mut bytes = r.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        let n = r.read_line(&mut line).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes += n;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).await?;
    Ok((status, bytes + length))
}

/// `devices` fleet devices, each with its own certificate from the fleet CA, registered in the
/// store (the server's own data directory), with a client configuration each.
async fn fleet(work: &Path, devices: usize) -> Vec<(String, Arc<rustls::ClientConfig>)> {
    let data = work.join("data");
    use medsec_store::prelude::*;
    let mut ca = medsec_pki::FleetCa::open(&data.join("ca"), || None).unwrap();
    let store =
        medsec_store::AnyStore::open(&format!("sqlite://{}", data.join("medsec.db").display()), 2)
            .await
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data.join("ca/root.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut out = Vec::with_capacity(devices);
    for i in 0..devices {
        let id = format!("poll-{i:05}");
        let (key_pem, csr_b64) = medsec_agent::net::key_and_request(&id).unwrap();
        let mut csr_pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
        for chunk in csr_b64.as_bytes().chunks(64) {
            csr_pem.push_str(std::str::from_utf8(chunk).unwrap());
            csr_pem.push('\n');
        }
        csr_pem.push_str("-----END CERTIFICATE REQUEST-----\n");
        let (_, chain) = ca
            .issue(&csr_pem, &medsec_pki::DeviceId::new(&id).unwrap(), 30)
            .unwrap();
        store
            .register_device(&id, "infusion-pump", 0)
            .await
            .unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain, key)
            .unwrap();
        out.push((id, Arc::new(config)));
    }
    out
}

/// What a device's no-change poll costs: the director's `timestamp.json` (which announces the
/// newest root version, so the agent sends no root probe), on its own kept-alive connection, at `rate` polls per second spread
/// evenly over the fleet (open loop: a slow answer does not slow the schedule down).
async fn director_polls(
    addr: &str,
    fleet: &[(String, Arc<rustls::ClientConfig>)],
    rates: &[f64],
    secs: u64,
) {
    // Connect everyone first, 64 handshakes at a time.
    let started = Instant::now();
    let mut streams = Vec::with_capacity(fleet.len());
    for chunk in fleet.chunks(64) {
        let mut joins = Vec::new();
        for (id, config) in chunk {
            let (addr, config, id) = (addr.to_owned(), config.clone(), id.clone());
            joins.push(tokio::spawn(async move {
                (
                    id,
                    tokio::io::BufReader::new(connect(&addr, &config).await.unwrap()),
                )
            }));
        }
        for j in joins {
            streams.push(j.await.unwrap());
        }
    }
    println!(
        "| medsec | {} devices connected (mTLS, X25519MLKEM768) in {:.1} s | | | | | |",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    for &rate in rates {
        let n = streams.len();
        let interval = Duration::from_secs_f64(n as f64 / rate);
        let begin = tokio::time::Instant::now() + Duration::from_millis(200);
        let deadline = begin + Duration::from_secs(secs);
        let mut joins = Vec::new();
        for (i, (id, mut s)) in streams.drain(..).enumerate() {
            let request =
                format!("GET /director/{id}/timestamp.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            let offset = interval.mul_f64(i as f64 / n as f64);
            joins.push(tokio::spawn(async move {
                let (mut lat, mut errors, mut bytes) = (Vec::new(), 0u64, 0usize);
                let mut next = begin + offset;
                while next < deadline {
                    tokio::time::sleep_until(next).await;
                    let t = Instant::now();
                    let poll = async {
                        s.get_mut().write_all(request.as_bytes()).await?;
                        let (status, n) = read_counted(&mut s).await?;
                        if status != 200 {
                            eprintln!("{id}: status {status}");
                        }
                        std::io::Result::Ok((status == 200, n))
                    }
                    .await;
                    match poll {
                        Ok((true, n)) => {
                            lat.push(t.elapsed());
                            bytes = n + request.len();
                        }
                        Ok((false, _)) => errors += 1,
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("{id}: {e}");
                            }
                        }
                    }
                    next += interval;
                }
                (id, s, lat, errors, bytes)
            }));
        }
        let (mut all, mut errors, mut bytes) = (Vec::new(), 0, 0);
        for j in joins {
            let (id, s, l, e, b) = j.await.unwrap();
            streams.push((id, s));
            all.extend(l);
            errors += e;
            bytes = bytes.max(b);
        }
        let m = summarise(
            all,
            errors,
            Duration::from_secs(secs),
            "X25519MLKEM768".into(),
        );
        row(
            "medsec",
            &format!(
                "no-change director poll (one request: timestamp.json; {bytes} HTTP bytes), \
                 {} devices, offered {rate:.0}/s",
                fleet.len()
            ),
            &m,
        );
    }
}

/// One gzip telemetry batch of `per_batch` events: flows to the pumps' profiled network (each
/// checked against the allowlist) and a metric in ten.
fn gzip_batch(seq: usize, per_batch: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut events = Vec::with_capacity(per_batch);
    for e in 0..per_batch {
        let at = 1_764_748_800_000i64 + (seq * per_batch + e) as i64;
        events.push(if e % 10 == 9 {
            format!(r#"{{"kind":"metric","at_ms":{at},"name":"bytes_out","value":{}}}"#, 4000 + e)
        } else {
            format!(
                r#"{{"kind":"flow","at_ms":{at},"remote":"10.20.{}.{}","remote_port":1111,"protocol":"tcp","bytes_out":{},"bytes_in":186,"packets_out":4,"packets_in":3,"duration_ms":12.5}}"#,
                e % 7,
                e % 250,
                400 + e % 300
            )
        });
    }
    let json = format!(r#"{{"sequence":{seq},"events":[{}]}}"#, events.join(","));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Telemetry through Mosquitto: a second medsec server (its own data directory) behind a
/// broker configured by `medsec mqtt broker-config`; each device of a new fleet publishes its
/// prepared gzip batches with QoS 1 over its own TLS connection (rumqttc), and the clock runs
/// from the first publish until the store holds every batch (parsed, rule-checked, committed,
/// then acknowledged to the broker). Needs `mosquitto`.
fn mqtt_ingest(runtime: &tokio::runtime::Runtime, work: &Path, devices: usize, per_batch: usize) {
    if Command::new("mosquitto").arg("-h").output().is_err() {
        println!(
            "| medsec | telemetry via MQTT: mosquitto is not installed (apt-get install mosquitto) | | | | | |"
        );
        return;
    }
    let dir = work.join("mqtt");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = run(&dir, "id", &["-un"]).trim().to_owned();
    let listen = format!("127.0.0.1:{port}");
    run(
        &dir,
        env!("CARGO_BIN_EXE_medsec"),
        &[
            "mqtt",
            "broker-config",
            "--data-dir",
            "data",
            "--dir",
            "broker",
            "--listen",
            &listen,
            "--run-as",
            &user,
        ],
    );
    let _broker = Killed(
        Command::new("mosquitto")
            .args(["-c", "broker/mosquitto.conf"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (_, operator, _server) = start_medsec_with(
        &dir,
        &[
            ("MEDSEC_MQTT__BROKER", listen.clone()),
            ("MEDSEC_LOG", "error,medsec_server::mqtt=info".into()),
            ("MEDSEC_DEFENDER_BASELINE_RELOAD_SECS", "1".into()),
        ],
    );
    let fleet = runtime.block_on(fleet(&dir, devices));
    let batches: usize = std::env::var("BENCH_MQTT_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    // Let the ingestion connections subscribe before anyone publishes.
    std::thread::sleep(Duration::from_secs(2));
    let first = mqtt_timed(runtime, &dir, port, &fleet, 1, batches, per_batch);
    println!(
        "| medsec | telemetry via MQTT (Mosquitto 2.0, TLS 1.3, QoS 1): {devices} devices x \
         {batches} gzip batches of {per_batch} events (~{} bytes), parsed, rule-checked, \
         identity-checked, stored, then acknowledged to the broker; 2 shared-subscription \
         connections; no baseline yet | X25519 | {:.0} events/s | | | 0 |",
        first.0, first.1
    );
    // Train the pumps' baseline from what was just stored, then the same again, scored.
    let token = run(
        &dir,
        env!("CARGO_BIN_EXE_medsec"),
        &[
            "operator",
            "token",
            "create",
            "--data-dir",
            "data",
            "--name",
            "bench",
            "--role",
            "admin",
        ],
    );
    let trained = run(
        &dir,
        "curl",
        &[
            "-sSf",
            "--cacert",
            "data/ca/chain.pem",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!("https://{operator}/api/v1/defender/baselines/infusion-pump"),
        ],
    );
    assert!(trained.contains("\"version\":1"), "{trained}");
    // The server looks for a newer baseline every second here: wait until it is in force.
    std::thread::sleep(Duration::from_secs(2));
    let second = mqtt_timed(runtime, &dir, port, &fleet, batches + 1, batches, per_batch);
    println!(
        "| medsec | the same, each flow and metric also scored against the class's learned \
         baseline (v1) | X25519 | {:.0} events/s | | | 0 |",
        second.1
    );
}

/// Publishes batches `first..first + batches` of every device of `fleet` (QoS 1, one TLS
/// connection each) and waits until the store holds them all; returns (bytes per batch,
/// events per second).
fn mqtt_timed(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    port: u16,
    fleet: &[(String, Arc<rustls::ClientConfig>)],
    first: usize,
    batches: usize,
    per_batch: usize,
) -> (usize, f64) {
    let payloads: Vec<Vec<u8>> = (first..first + batches)
        .map(|seq| gzip_batch(seq, per_batch))
        .collect();
    let wire = payloads.first().map_or(0, Vec::len);
    runtime.block_on(async {
        // A read-only connection of its own: the bench only counts, and must neither run
        // migrations on nor write to the server's database.
        let db = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.join("data/medsec.db"))
                    .read_only(true),
            )
            .await
            .unwrap();
        let begin = Instant::now();
        let mut clients = Vec::new();
        // Set once every batch is stored: the publishers' connections then close quietly.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for (id, config) in fleet {
            let mut o = rumqttc::MqttOptions::new(id.clone(), "127.0.0.1", port);
            o.set_max_packet_size(1 << 20, 1 << 20).set_transport(
                rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
                    config.clone(),
                )),
            );
            let (client, mut events) = rumqttc::AsyncClient::new(o, batches + 8);
            let topic = format!("medsec/devices/{id}/telemetry");
            for p in &payloads {
                client
                    .publish(topic.clone(), rumqttc::QoS::AtLeastOnce, false, p.clone())
                    .await
                    .unwrap();
            }
            clients.push(client);
            let (id, done) = (id.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = events.poll().await {
                        if done.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        eprintln!("{id}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            });
        }
        let total = fleet.len() * (first - 1 + batches);
        let deadline = begin + Duration::from_secs(300);
        loop {
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry_batches")
                .fetch_one(&db)
                .await
                .unwrap();
            if stored as usize >= total {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {stored} of {total} batches stored after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = begin.elapsed().as_secs_f64();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in &clients {
            let _ = c.disconnect().await;
        }
        (wire, (fleet.len() * batches * per_batch) as f64 / elapsed)
    })
}

/// Telemetry ingestion: each device of `fleet` sends gzip batches of `per_batch` events (flows
/// to its profiled network and metrics, each checked by the rules) on its own kept-alive
/// connection, one batch at a time (closed loop), until `secs` pass or its prepared batches run
/// out. Batches are compressed before the clock starts, so the client's gzip does not compete
/// with the server for the 2 cores.
async fn telemetry_ingest(
    addr: &str,
    fleet: &[(String, Arc<rustls::ClientConfig>)],
    per_batch: usize,
    batches: usize,
    secs: u64,
) {
    let mut prepared = Vec::new();
    let mut wire_bytes = 0usize;
    for (id, _) in fleet {
        let mut mine = Vec::with_capacity(batches);
        for seq in 1..=batches {
            let body = gzip_batch(seq, per_batch);
            wire_bytes = body.len();
            let mut request = format!(
                "POST /api/v1/devices/{id}/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            mine.push(request);
        }
        prepared.push(mine);
    }
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs(secs);
    let mut joins = Vec::new();
    for ((id, config), mine) in fleet.iter().zip(prepared) {
        let (addr, config, id) = (addr.to_owned(), config.clone(), id.clone());
        joins.push(tokio::spawn(async move {
            let mut s = tokio::io::BufReader::new(connect(&addr, &config).await.unwrap());
            let (mut lat, mut errors, mut sent) = (Vec::new(), 0u64, 0usize);
            for request in mine {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                s.get_mut().write_all(&request).await.unwrap();
                match read_response(&mut s).await {
                    Ok(200) => {
                        lat.push(t.elapsed());
                        sent += 1;
                    }
                    Ok(status) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("{id}: telemetry status {status}");
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        eprintln!("{id}: {e}");
                        break;
                    }
                }
            }
            (lat, errors, sent)
        }));
    }
    let (mut all, mut errors, mut sent) = (Vec::new(), 0, 0);
    for j in joins {
        let (l, e, n) = j.await.unwrap();
        all.extend(l);
        errors += e;
        sent += n;
    }
    let elapsed = begin.elapsed().min(Duration::from_secs(secs));
    let m = summarise(all, errors, elapsed, "X25519MLKEM768".into());
    row(
        "medsec",
        &format!(
            "telemetry ingest: gzip batches of {per_batch} events (~{wire_bytes} bytes), parsed, \
             rule-checked and stored before the answer; {} devices; {:.0} events/s",
            fleet.len(),
            (sent * per_batch) as f64 / elapsed.as_secs_f64()
        ),
        &m,
    );
}

fn row(server: &str, what: &str, m: &Measured) {
    println!(
        "| {server} | {what} | {} | {:.0} | {:.2} | {:.2} | {} |",
        m.group, m.per_second, m.p50_ms, m.p99_ms, m.errors
    );
}

/// Cedar: one decision of each kind the server makes, timed one by one.
fn cedar() {
    use medsec_server::authz::{Policies, RequestContext, Subject, Target};
    let policies = Policies::shipped().unwrap();
    let device = Subject::Device {
        id: "pump-1".into(),
        model: "pump".into(),
        state: "enrolled".into(),
        quarantined: false,
    };
    let operator = Subject::Operator {
        name: "alice".into(),
        roles: vec!["viewer".into()],
    };
    let cases: [(&str, &Subject, &str, Target, &str); 3] = [
        (
            "device reads its own record (allow)",
            &device,
            "device.read",
            Target::Device("pump-1".into()),
            "fleet-certificate",
        ),
        (
            "device writes another's record (deny)",
            &device,
            "device.write",
            Target::Device("pump-2".into()),
            "fleet-certificate",
        ),
        (
            "viewer revokes a device (deny)",
            &operator,
            "device.revoke",
            Target::Device("pump-1".into()),
            "operator-token",
        ),
    ];
    println!(
        "\n| Cedar decision | p50 µs | p99 µs | decisions/s (one core) |\n|---|---:|---:|---:|"
    );
    for (label, subject, action, target, credential) in cases {
        let context = RequestContext {
            time: 1_800_000_000,
            source: "127.0.0.1".parse().unwrap(),
            credential,
        };
        let mut lat = Vec::with_capacity(20_000);
        let start = Instant::now();
        for _ in 0..20_000 {
            let t = Instant::now();
            let d = policies.decide(subject, action, &target, &context).unwrap();
            std::hint::black_box(d);
            lat.push(t.elapsed());
        }
        let total = start.elapsed();
        lat.sort_unstable();
        println!(
            "| {label} | {:.1} | {:.1} | {:.0} |",
            lat[lat.len() / 2].as_secs_f64() * 1e6,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1e6,
            lat.len() as f64 / total.as_secs_f64()
        );
    }
}

/// Durable audit appends: `producers` tasks each recording events and waiting for each to be
/// durable (as request handlers do), against SQLite and, if reachable, PostgreSQL.
async fn audit_appends() {
    use medsec_server::audit_log::{AuditLog, event};
    println!(
        "\n| audit store | producers | events | appends/s (durable, group-committed) |\n|---|---:|---:|---:|"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        "SQLite (WAL, synchronous=FULL)".to_owned(),
        medsec_store::AnyStore::open(
            &format!("sqlite://{}", dir.path().join("a.db").display()),
            4,
        )
        .await
        .unwrap(),
    )];
    let pg = std::env::var("MEDSEC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if std::net::TcpStream::connect("127.0.0.1:5432").is_ok() {
        let schema = format!("medsec_bench_{}", std::process::id());
        let sep = if pg.contains('?') { '&' } else { '?' };
        if let Ok(s) =
            medsec_store::AnyStore::open(&format!("{pg}{sep}search_path={schema}"), 4).await
        {
            stores.push(("PostgreSQL 15 (local, synchronous_commit on)".to_owned(), s));
        }
    }
    for (label, store) in stores {
        let key = medsec_crypto::SigningKey::generate(medsec_crypto::Scheme::Ed25519).unwrap();
        let log = Arc::new(
            AuditLog::start(store.clone(), Arc::new(key), 65_536, 8_192)
                .await
                .unwrap(),
        );
        let (producers, per) = (2_000usize, 100usize);
        let start = Instant::now();
        let mut joins = Vec::new();
        for p in 0..producers {
            let log = log.clone();
            joins.push(tokio::spawn(async move {
                for i in 0..per {
                    let mut e = event(
                        "authz",
                        &format!("Device::\"pump-{p}\""),
                        "device.read",
                        "Device::\"pump-1\"",
                        "allow",
                    );
                    e.policies = vec!["device-own-record".into()];
                    e.source = format!("10.0.{}.{}:443", p % 250, i % 250);
                    log.record(e).await.unwrap();
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "| {label} | {producers} | {} | {:.0} |",
            producers * per,
            (producers * per) as f64 / elapsed.as_secs_f64()
        );
        store.close().await;
    }
}

/// What one campaign change (a device's first offer) costs as campaigns grow: the campaign is one
/// stored document, read, parsed, changed, serialised and written durably on every change.
async fn campaign_changes() {
    use medsec_store::prelude::*;
    println!(
        "\n| campaign devices | stored document | change (one offer), p50 ms | p99 ms | changes measured |\n|---:|---:|---:|---:|---:|"
    );
    let sizes: Vec<usize> = std::env::var("BENCH_CAMPAIGN_SIZES")
        .ok()
        .map(|r| r.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let store = medsec_store::SqliteStore::open(&dir.path().join("c.db"), 2)
            .await
            .unwrap();
        // The devices in one transaction (registering them one by one would time fsyncs).
        let ids: Vec<String> = (0..n).map(|i| format!("dev-{i:06}")).collect();
        let mut tx = store.pool().begin().await.unwrap();
        for id in &ids {
            sqlx::query(
                "INSERT INTO devices (id, model, state, created_at_ms) VALUES ($1, 'pump', 'enrolled', 0)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let members: Vec<medsec_campaign::Member> = ids
            .iter()
            .map(|id| medsec_campaign::Member {
                device: id.clone(),
                site: "north".into(),
            })
            .collect();
        let release = medsec_campaign::Release {
            version: "1.1".into(),
            release_counter: 2,
            target: "fw-1.1.bin".into(),
        };
        let mut spec = medsec_campaign::Spec::new("bench", release);
        spec.canary = medsec_campaign::WaveSize::Percent(100.0);
        let mut c = medsec_campaign::Campaign::plan(spec, &members).unwrap();
        c.start(1).unwrap();
        let state = serde_json::to_string(&c).unwrap();
        let row = medsec_store::CampaignRow {
            id: "bench".into(),
            status: c.status().name().into(),
            state: state.clone(),
            version: 1,
            created_by: "bench".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        store.create_campaign(&row, &ids).await.unwrap();
        let mut times = Vec::new();
        let t = Instant::now();
        for id in ids.iter().take(200) {
            if t.elapsed() > Duration::from_secs(20) && times.len() >= 20 {
                break;
            }
            let started = Instant::now();
            let device = id.clone();
            medsec_server::campaigns::change(&store, "bench", 2, move |c| {
                c.offer(&device, false, 2).map(|_| ())
            })
            .await
            .unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        let at = |q: f64| {
            let i = ((times.len() as f64) * q) as usize;
            times[i.min(times.len() - 1)].as_secs_f64() * 1e3
        };
        println!(
            "| {n} | {:.1} MiB | {:.1} | {:.1} | {} |",
            state.len() as f64 / (1024.0 * 1024.0),
            at(0.5),
            at(0.99),
            times.len()
        );
        store.close().await;
    }
}

fn main() {
    // `cargo bench` passes --bench; anything else is ignored.
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let work = tempfile::tempdir().unwrap();
    let work: PathBuf = work.path().to_owned();
    let (medsec_addr, _medsec) = start_medsec(&work);
    enrol(&work, &medsec_addr);
    // nginx serves medsec's own EST cacerts answer as a static file: the same bytes both ways.
    run(
        &work,
        "curl",
        &[
            "-sSf",
            "--cacert",
            "data/ca/chain.pem",
            "-o",
            "cacerts.b64",
            &format!("https://{medsec_addr}/.well-known/est/cacerts"),
        ],
    );
    let nginx = start_nginx(&work);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pq = client_config(&work, true);
    let classic = client_config(&work, false);
    println!("each run {secs} s; client and servers share the machine's 2 cores\n");
    println!(
        "| server | workload | key exchange | per second | p50 ms | p99 ms | errors |\n|---|---|---|---:|---:|---:|---:|"
    );
    // BENCH_ONLY=handshake,keep-alive,cedar,audit (any part of a row's workload) picks rows.
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |label: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|part| label.contains(part)))
    };
    runtime.block_on(async {
        let api = "/api/v1/devices/pump-1";
        let cacerts = "/.well-known/est/cacerts";
        let nginx_addr = nginx.as_ref().map(|(a, _)| a.as_str());
        if nginx_addr.is_none() {
            println!("| nginx | not installed (apt-get install nginx-light) | | | | | |");
        }
        let label = "new mTLS connection + 1 request (16 at a time)";
        if let Some(addr) = nginx_addr.filter(|_| wanted(label)) {
            row(NGINX, label, &handshakes(addr, "/", classic.clone(), 16, secs).await);
        }
        let label = "new mTLS connection + GET device record (16 at a time)";
        if wanted(label) {
            for config in [&classic, &pq] {
                row("medsec", label, &handshakes(&medsec_addr, api, config.clone(), 16, secs).await);
            }
        }
        let label = "keep-alive, static 15-byte JSON (64 connections)";
        if let Some(addr) = nginx_addr.filter(|_| wanted(label)) {
            row(NGINX, label, &keep_alive(addr, "/", classic.clone(), 64, secs).await);
        }
        let label = "keep-alive, the same EST cacerts bytes as a static file (64 connections)";
        if let Some(addr) = nginx_addr.filter(|_| wanted(label)) {
            row(NGINX, label, &keep_alive(addr, cacerts, classic.clone(), 64, secs).await);
        }
        let label = "keep-alive, EST cacerts (public, no audit; 64 connections)";
        if wanted(label) {
            row("medsec", label, &keep_alive(&medsec_addr, cacerts, pq.clone(), 64, secs).await);
        }
        for connections in [64, 512] {
            let label = format!(
                "keep-alive, GET device record: Cedar + durable audit + SQLite read ({connections} connections)"
            );
            if wanted(&label) {
                row("medsec", &label, &keep_alive(&medsec_addr, api, pq.clone(), connections, secs).await);
            }
        }
    });
    let label = "no-change director poll";
    if wanted(label) {
        let devices: usize = std::env::var("BENCH_DEVICES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        let t = Instant::now();
        let fleet = runtime.block_on(fleet(&work, devices));
        println!(
            "| medsec | {devices} device certificates issued and registered in {:.1} s | | | | | |",
            t.elapsed().as_secs_f64()
        );
        // The first round signs every device's director metadata once (a first poll); the
        // later rounds are no-change polls. BENCH_RATES overrides the offered rates.
        let rates: Vec<f64> = std::env::var("BENCH_RATES")
            .ok()
            .map(|r| r.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1_000.0, 2_000.0, 3_300.0]);
        runtime.block_on(director_polls(&medsec_addr, &fleet, &rates, secs));
    }
    let label = "telemetry ingest";
    if wanted(label) {
        let devices: usize = std::env::var("BENCH_TELEMETRY_DEVICES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(16);
        let per_batch: usize = std::env::var("BENCH_TELEMETRY_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000);
        let fleet = runtime.block_on(fleet(&work, devices));
        runtime.block_on(telemetry_ingest(&medsec_addr, &fleet, per_batch, 400, secs));
    }
    if wanted("telemetry via MQTT") {
        let per_batch: usize = std::env::var("BENCH_TELEMETRY_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000);
        mqtt_ingest(&runtime, &work, 16, per_batch);
    }
    if wanted("cedar") {
        cedar();
    }
    if wanted("audit appends") {
        runtime.block_on(audit_appends());
    }
    if wanted("campaign change") {
        runtime.block_on(campaign_changes());
    }
}

const NGINX: &str = "nginx 1.22 (OpenSSL 3.0)";
