//! `cargo bench -p medsec --bench console`: the web console at fleet scale. For SQLite and then
//! PostgreSQL (when one answers at `MEDSEC_TEST_POSTGRES`, default 127.0.0.1:5432), a server
//! gets `BENCH_CONSOLE_DEVICES` devices (default 100,000; four models, a certificate each, a
//! third of them heard from recently, a hundredth quarantined), and then:
//!
//! - **server time**: each page `BENCH_RUNS` times (default 40) after a warm-up, on one
//!   kept-alive TLS connection, as the page's `Server-Timing` header says (every API call the
//!   page makes, and its rendering), with the wall time the client saw; beside it, the peer: the
//!   operator API's JSON for the same device page, which the CLI reads;
//! - **first render in Chromium** (`tests/console/render-bench.mjs`, Debian's Chromium driven by
//!   Playwright, when installed): navigation to first contentful paint and to the load event,
//!   `BENCH_RENDERS` times (default 10), in a fresh tab each time.
//!
//! `BENCH_BACKENDS=sqlite` (or `postgresql`) runs one store only; `BENCH_KEEP=1` keeps the data
//! directory. The table goes in docs/benchmarks.md with the machine it ran on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark program: a panic is a failed run"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use medsec_server::sessions::{self, Person};
use medsec_store::AnyStore;
use medsec_store::prelude::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Fills the store with `n` devices: ids `device-000000`…, four models, ten sites.
async fn fill(store: &AnyStore, n: usize, now: i64) {
    let models = [
        "infusion-pump",
        "patient-monitor",
        "insulin-pump",
        "imaging-gateway",
    ];
    let chunk = n.div_ceil(4);
    let mut tasks = Vec::new();
    for part in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in part * chunk..((part + 1) * chunk).min(n) {
                let id = format!("device-{i:06}");
                store
                    .register_device(&id, models[i % 4], now)
                    .await
                    .unwrap();
                store.set_device_state(&id, "enrolled").await.unwrap();
                if i % 3 == 0 {
                    store.set_device_status(&id, "{}", now).await.unwrap();
                }
                // Each device's certificate: 30 days, renewed at a third left; one in fifty
                // within the dashboard's seven days.
                let days = if i % 50 == 0 { 5 } else { 10 + (i % 20) as i64 };
                store
                    .add_device_key(&medsec_store::DeviceKey {
                        spki_sha256: medsec_crypto::digest::sha256(id.as_bytes()).to_vec(),
                        device_id: id.clone(),
                        serial: format!("{i:016x}"),
                        not_after_ms: now + days * 86_400_000,
                        created_at_ms: now,
                    })
                    .await
                    .unwrap();
                if i % 100 == 7 {
                    store.set_device_quarantined(&id, true).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

struct Row {
    backend: &'static str,
    page: String,
    server: (f64, f64),
    wall: (f64, f64),
    bytes: usize,
}

/// Times `path` `runs` times after three warm-up requests: (server p50, p95), (wall p50, p95),
/// body size. The server time is the page's `Server-Timing`, or the wall time when absent.
fn time_page(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    header: (&str, &str),
    runs: usize,
) -> ((f64, f64), (f64, f64), usize) {
    let mut server = Vec::new();
    let mut wall = Vec::new();
    let mut bytes = 0;
    for i in 0..runs + 3 {
        let started = Instant::now();
        let mut response = agent
            .get(&format!("{base}{path}"))
            .header(header.0, header.1)
            .call()
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("dur=").nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        let body = response.body_mut().read_to_string().unwrap();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if i >= 3 {
            server.push(timing.unwrap_or(elapsed));
            wall.push(elapsed);
            bytes = body.len();
        }
    }
    server.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    (
        (percentile(&server, 0.5), percentile(&server, 0.95)),
        (percentile(&wall, 0.5), percentile(&wall, 0.95)),
        bytes,
    )
}

/// First render in Chromium: (page, fcp p50, fcp p95, load p50, load p95), or why not.
fn render(base: &str, cookie: &str, pages: &[&str]) -> Result<Vec<(String, [f64; 4])>, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    if !dir.join("node_modules/playwright-core").exists()
        || !Path::new("/usr/bin/chromium").exists()
    {
        return Err(
            "Chromium or the npm packages are not installed (scripts/install-test-deps.sh)".into(),
        );
    }
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("render-bench.mjs")
        .env("MEDSEC_URL", base)
        .env("COOKIE", cookie)
        .env("PAGES", pages.join(","))
        .env("RUNS", env_or("BENCH_RENDERS", 10).to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            (
                r["page"].as_str().unwrap().to_owned(),
                [n("fcp_p50"), n("fcp_p95"), n("load_p50"), n("load_p95")],
            )
        })
        .collect())
}

fn main() {
    let n = env_or("BENCH_CONSOLE_DEVICES", 100_000);
    let runs = env_or("BENCH_RUNS", 40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut renders = Vec::new();
    let backends: Vec<(&'static str, Option<String>)> = vec![
        ("SQLite", None),
        (
            "PostgreSQL",
            medsec_testkit::postgres_schema_url("console_bench", "the PostgreSQL rows"),
        ),
    ];
    let only = std::env::var("BENCH_BACKENDS")
        .unwrap_or_default()
        .to_lowercase();
    for (backend, pg) in backends {
        if backend == "PostgreSQL" && pg.is_none() {
            continue;
        }
        if !only.is_empty() && !only.contains(&backend.to_lowercase()) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        // BENCH_KEEP=1 keeps the data directory for a look at its queries afterwards.
        let kept;
        let work = if std::env::var("BENCH_KEEP").is_ok() {
            kept = tmp.keep();
            println!("{backend}: data kept in {}", kept.display());
            kept.as_path()
        } else {
            tmp.path()
        };
        let mut args: Vec<&str> = Vec::new();
        if let Some(url) = &pg {
            args.extend(["--database-url", url.as_str()]);
        }
        let server = medsec_testkit::start(
            work,
            &[
                ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "100000"),
                ("MEDSEC_LIMITS__REQUEST_BURST", "100000"),
            ],
            &args,
        );
        let db = pg
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", work.join("data/medsec.db").display()));
        let now = medsec_util::now_ms();
        let started = Instant::now();
        let (secret, token) = rt.block_on(async {
            let store = AnyStore::open(&db, 8).await.unwrap();
            fill(&store, n, now).await;
            let (secret, _) = sessions::start(
                &store,
                &Person {
                    principal: "bench".into(),
                    display_name: "bench".into(),
                    roles: vec!["admin".into()],
                },
                now,
                86_400,
                None,
            )
            .await
            .unwrap();
            // Made in the store itself: `medsec operator token create` would need the server's
            // database URL too.
            let token = medsec_server::tokens::create_operator_token(
                &store,
                "bench-api",
                &["admin".to_owned()],
                now,
                3600,
            )
            .await
            .unwrap();
            store.close().await;
            (secret, token)
        });
        println!(
            "{backend}: {n} devices stored in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let ca = std::fs::read(server.ca("chain.pem")).unwrap();
        let agent = medsec_tuf_client::HttpTransport::new(Some(&ca), Duration::from_secs(60))
            .unwrap()
            .agent()
            .clone();
        let base = format!("https://{}", server.operator);
        let cookie = format!("{}={secret}", sessions::COOKIE);
        let bearer = format!("Bearer {token}");
        let middle = format!("device-{:06}", n / 2);
        let pages: Vec<(String, String, (&str, &str))> = vec![
            (
                "dashboard".into(),
                "/ui/".into(),
                ("cookie", cookie.as_str()),
            ),
            (
                "device list, first page".into(),
                "/ui/devices".into(),
                ("cookie", cookie.as_str()),
            ),
            (
                format!("device list, page after {middle}"),
                format!("/ui/devices?after={middle}"),
                ("cookie", cookie.as_str()),
            ),
            (
                "device list, model and quarantine filters".into(),
                "/ui/devices?model=insulin-pump&quarantined=true".into(),
                ("cookie", cookie.as_str()),
            ),
            (
                "peer: the API's JSON of the first device page (what the CLI reads)".into(),
                "/api/v1/devices?limit=50".into(),
                ("authorization", bearer.as_str()),
            ),
        ];
        // What the dashboard asks the API, one by one (it asks them at once).
        let mut pages = pages;
        for path in [
            "/api/v1/fleet/summary",
            "/api/v1/risk/summary",
            "/api/v1/alerts?limit=1000",
            "/api/v1/incidents?open=true&limit=1000",
            "/api/v1/campaigns",
        ] {
            pages.push((
                format!("dashboard part: API {path}"),
                path.to_owned(),
                ("authorization", bearer.as_str()),
            ));
        }
        for (label, path, header) in &pages {
            let (server_ms, wall_ms, bytes) = time_page(&agent, &base, path, *header, runs);
            rows.push(Row {
                backend,
                page: label.clone(),
                server: server_ms,
                wall: wall_ms,
                bytes,
            });
        }
        match render(&base, &secret, &["/ui/", "/ui/devices"]) {
            Ok(r) => renders.extend(r.into_iter().map(|(p, v)| (backend, p, v))),
            Err(why) => println!("{backend}: first render not measured: {why}"),
        }
        drop(server);
    }
    println!(
        "\n| store | page | server p50 ms | server p95 ms | client p50 ms | client p95 ms | bytes |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.backend, r.page, r.server.0, r.server.1, r.wall.0, r.wall.1, r.bytes
        );
    }
    println!(
        "\n| store | page | first contentful paint p50 ms | p95 ms | load event p50 ms | p95 ms |"
    );
    println!("|---|---|---|---|---|---|");
    for (backend, page, v) in &renders {
        println!(
            "| {backend} | {page} | {:.0} | {:.0} | {:.0} | {:.0} |",
            v[0], v[1], v[2], v[3]
        );
    }
}
