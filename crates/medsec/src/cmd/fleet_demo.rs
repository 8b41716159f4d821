//! `medsec demo`: the whole update story on embedded defaults, with nothing else installed. A
//! release engineer signs firmware, `medsec server` starts in a temporary directory, a simulated
//! fleet of infusion pumps and patient monitors on two sites enrols with the real agent, a
//! broken 1.1.0 is caught by its canaries (health check fails, they roll back, the campaign
//! halts), and 1.2.0 completes while pumps in clinical use defer until therapy ends. Then one
//! pump starts exfiltrating and one monitor's readings are altered: the Defender's rules raise
//! explained alerts, incidents open, and the pump is quarantined.
//!
//! Everything goes through the public interfaces: the operator API over TLS with a token, the
//! device port over mutual TLS with EST-issued certificates, the agent library that `medsec
//! agent` runs. Each simulated device keeps its own directory (keys, slots, state) and boots
//! again in-process when it "reboots".

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use medsec_agent::agent::{Agent, Credential, Enrolment, Options};
use serde_json::{Value, json};

use crate::editor::TargetCustom;
use crate::keys::Passphrase;

/// Healthy unless the image is 1.1.0: its watchdog does not come up on this hardware.
const HEALTH: &str = r#"test "$MEDSEC_VERSION" != 1.1.0"#;
const PUMP_HW: &str = "pump-rev-b";
const MONITOR_HW: &str = "monitor-m2";
/// Firmware image size (small: the demo is about the rollout, not throughput).
const IMAGE_BYTES: usize = 256 * 1024;

fn step(n: u32, text: &str) {
    println!("\n[{n}/7] {text}");
}

fn image(path: &Path, version: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(IMAGE_BYTES);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ version.len() as u64;
    for b in version.bytes() {
        state = state.rotate_left(7) ^ u64::from(b);
    }
    while bytes.len() < IMAGE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The JSON value at `pointer`, or null (serde_json's indexing, without the panic lint).
fn at<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// The operator's side: the operator API with a token.
struct Operator {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Operator {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let mut resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        ensure!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {text}"
        );
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

struct Device {
    id: String,
    agent: Mutex<Agent>,
    clinical_flag: Option<PathBuf>,
}

/// Runs every device once until it has nothing to do, four at a time.
fn round(devices: &[Device]) -> usize {
    let errors = Mutex::new(0usize);
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = {
                        let Ok(mut n) = next.lock() else { return };
                        *n += 1;
                        *n - 1
                    };
                    let Some(d) = devices.get(i) else { return };
                    let Ok(mut agent) = d.agent.lock() else {
                        return;
                    };
                    if let Err(e) = agent.run_until_idle() {
                        eprintln!("      {}: {e} (tried again next round)", d.id);
                        if let Ok(mut n) = errors.lock() {
                            *n += 1;
                        }
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap_or(0)
}

fn status(op: &Operator, name: &str) -> Result<Value> {
    op.call(
        "GET",
        &format!("/api/v1/campaigns/{name}?devices=true"),
        None,
    )
}

fn counts(c: &Value) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for w in at(c, "/waves").as_array().into_iter().flatten() {
        t.0 += at(w, "/succeeded").as_u64().unwrap_or(0);
        t.1 += at(w, "/failed").as_u64().unwrap_or(0);
        t.2 += at(w, "/deferred").as_u64().unwrap_or(0);
        t.3 += at(w, "/size").as_u64().unwrap_or(0);
    }
    t
}

fn bar(total: u64) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("      [{bar:30}] {pos:>3}/{len} finished  {msg}")
    {
        pb.set_style(style.progress_chars("#>."));
    }
    pb
}

/// Polls all devices round after round, with a progress bar, until the campaign is no longer
/// running. `each_round` runs before every round (therapy ends, for example).
fn roll(
    op: &Operator,
    devices: &[Device],
    name: &str,
    mut each_round: impl FnMut(usize),
) -> Result<Value> {
    let c = status(op, name)?;
    let pb = bar(counts(&c).3);
    for n in 0..40 {
        each_round(n);
        round(devices);
        let c = status(op, name)?;
        let (ok, failed, deferred, _) = counts(&c);
        pb.set_position(ok + failed);
        let state = at(&c, "/status/status").as_str().unwrap_or("?").to_owned();
        let open = at(&c, "/waves")
            .as_array()
            .map_or(0, |w| w.iter().filter(|w| at(w, "/open") == true).count());
        pb.set_message(format!(
            "{ok} succeeded, {failed} failed, {deferred} deferred — {state}, {open} wave(s) open"
        ));
        if state != "running" {
            pb.finish();
            return Ok(c);
        }
    }
    pb.finish();
    bail!("campaign {name} did not finish in 40 rounds")
}

/// `medsec demo`.
pub fn run(dir: Option<PathBuf>, fleet_size: usize, console: bool) -> Result<()> {
    ensure!(
        (4..=500).contains(&fleet_size),
        "--devices must be 4 to 500"
    );
    let keep = dir.clone();
    let (_tmp, base) = crate::cmd::demo::work_dir(dir)?;
    let started = Instant::now();
    println!("medsec demo — a fleet update, end to end, on embedded defaults");
    println!("working in {}", base.display());

    step(
        1,
        "release engineering signs firmware 1.0.0 (factory), 1.1.0 and 1.2.0 (TUF, hybrid ML-DSA-65 + Ed25519 keys, targets 2-of-2)",
    );
    let pass_file = base.join("passphrase.txt");
    medsec_util::write_atomic(
        &pass_file,
        "demo passphrase — use your own".as_bytes(),
        medsec_util::Access::Private,
    )?;
    let passphrase = Passphrase::new(Some(pass_file.clone()))?;
    let repo = crate::cmd::demo::demo_repository(&base.join("repository"), &passphrase)?;
    let targets_keys = [
        repo.keys_dir().join("targets-1.key"),
        repo.keys_dir().join("targets-2.key"),
    ];
    for (version, counter) in [("1.0.0", 10), ("1.1.0", 11), ("1.2.0", 12)] {
        let file = base.join(format!("fleet-fw-{version}.img"));
        image(&file, version)?;
        let custom = TargetCustom {
            hardware_ids: vec![PUMP_HW.into(), MONITOR_HW.into()],
            version: version.into(),
            release_counter: counter,
            sbom: None,
        };
        let name = format!("fleet-fw-{version}.img");
        repo.add_target(
            &file,
            &name,
            None,
            &custom,
            None,
            &targets_keys,
            &passphrase,
        )?;
        println!("      signed {name} (release counter {counter}) for {PUMP_HW} and {MONITOR_HW}");
    }
    repo.timestamp(None, &[], &passphrase)?;
    let www = base.join("www");
    repo.publish(&www)?;
    println!("      published to {}", www.display());

    step(
        2,
        "medsec server starts: fleet CA, EST, mutual TLS 1.3 (X25519MLKEM768), Cedar, audit log, director",
    );
    let data = base.join("server");
    // The microsegmentation profile of the two device classes: the hospital's device network.
    let defender_policy = base.join("defender.json");
    std::fs::write(
        &defender_policy,
        serde_json::to_string_pretty(&json!({"classes": {
            "infusion-pump": {"destinations": ["10.20.0.0/16", "127.0.0.0/8"], "remote_ports": [8443, 1111]},
            "patient-monitor": {"destinations": ["10.20.0.0/16", "127.0.0.0/8"], "remote_ports": [8443, 2575]},
        }}))?,
    )?;
    let config = medsec_server::Config {
        data_dir: data.clone(),
        device_listen: "127.0.0.1:0".parse()?,
        operator_listen: "127.0.0.1:0".parse()?,
        ca_passphrase_file: Some(pass_file),
        image_repository: Some(www.clone()),
        image_root: Some(repo.meta_dir().join("1.root.json")),
        defender_policy: Some(defender_policy.clone()),
        limits: medsec_server::Limits {
            // One operator polls progress for the whole fleet.
            requests_per_second: 1000,
            request_burst: 1000,
            ..medsec_server::Limits::default()
        },
        ..medsec_server::Config::default()
    };
    // The same configuration as a file, for the CLI commands suggested at the end.
    let config_file = base.join("medsec.toml");
    std::fs::write(
        &config_file,
        format!(
            "data_dir = {:?}\nca_passphrase_file = {:?}\nimage_repository = {:?}\nimage_root = {:?}\ndefender_policy = {:?}\n",
            data.display().to_string(),
            base.join("passphrase.txt").display().to_string(),
            www.display().to_string(),
            repo.meta_dir().join("1.root.json").display().to_string(),
            defender_policy.display().to_string(),
        ),
    )?;
    let rt = crate::cmd::server::runtime()?;
    let server = rt.block_on(medsec_server::Server::start(config))?;
    let device_url = format!("https://{}", server.device_addr);
    let ca_pem = std::fs::read(data.join("ca/chain.pem"))?;
    let token = rt.block_on(medsec_server::tokens::create_operator_token(
        &server.state.store,
        "demo-operator",
        &["admin".to_owned()],
        crate::cmd::server::now_ms(),
        3600,
    ))?;
    let op = Operator {
        agent: medsec_tuf_client::HttpTransport::new(Some(&ca_pem), Duration::from_secs(30))?
            .agent()
            .clone(),
        base: format!("https://{}", server.operator_addr),
        token,
    };
    println!("      device port   {device_url}");
    println!("      operator port https://{}", server.operator_addr);

    let pumps = fleet_size * 3 / 5;
    step(
        3,
        &format!(
            "{fleet_size} devices enrol with the agent: {pumps} infusion pumps and {} patient monitors on sites north and south",
            fleet_size - pumps
        ),
    );
    let factory = base.join("fleet-fw-1.0.0.img");
    let mut devices = Vec::new();
    let pb = bar(fleet_size as u64);
    for i in 0..fleet_size {
        let (id, model, hw) = if i < pumps {
            (format!("pump-{i:03}"), "infusion-pump", PUMP_HW)
        } else {
            (format!("monitor-{i:03}"), "patient-monitor", MONITOR_HW)
        };
        let site = if i % 2 == 0 { "north" } else { "south" };
        let t = op.call(
            "POST",
            "/api/v1/enrolment-tokens",
            Some(json!({"device": id, "model": model, "hardware_id": hw, "site": site})),
        )?;
        let dir = base.join("devices").join(&id);
        medsec_agent::agent::enrol(
            &dir,
            &Enrolment {
                server: device_url.clone(),
                ca_pem: ca_pem.clone(),
                device: id.clone(),
                hardware_id: hw.into(),
                credential: Credential::Token(at(&t, "/token").as_str().unwrap_or_default().into()),
                image_root: Some(std::fs::read(repo.meta_dir().join("1.root.json"))?),
                factory_image: factory.clone(),
                factory_version: "1.0.0".into(),
                factory_release_counter: 10,
                slots: None,
                key_store: medsec_agent::keys::KeyStore::File,
            },
        )
        .with_context(|| format!("enrolling {id}"))?;
        // Three pumps are delivering therapy when the rollout starts.
        let clinical_flag =
            (i < pumps && i % 7 == 3 && i < 25).then(|| dir.join("therapy-running"));
        if let Some(f) = &clinical_flag {
            std::fs::write(f, "")?;
        }
        let options = Options {
            health_command: Some(HEALTH.into()),
            clinical_use_file: clinical_flag.clone(),
            ..Options::default()
        };
        devices.push(Device {
            id,
            agent: Mutex::new(Agent::start(&dir, options)?),
            clinical_flag,
        });
        pb.inc(1);
    }
    pb.finish();
    round(&devices);
    let in_therapy: Vec<&str> = devices
        .iter()
        .filter(|d| d.clinical_flag.is_some())
        .map(|d| d.id.as_str())
        .collect();
    println!(
        "      every device holds an EST certificate and reported 1.0.0 in a signed version report"
    );
    println!(
        "      in clinical use (therapy running): {}",
        in_therapy.join(", ")
    );

    step(
        4,
        "campaign fw-1.1: canary of 5, then growing waves; halt when more than 20 % of a wave fails",
    );
    let campaign = |name: &str, version: &str, counter: u32, canary: u32, max_fail: f64| {
        json!({
            "spec": {
                "name": name,
                "release": {"version": version, "release_counter": counter,
                            "target": format!("fleet-fw-{version}.img")},
                "canary": {"count": canary}, "growth": 2, "max_failure_rate": max_fail,
                "advance_when_finished": 0.9
            },
            "selection": {"all": true}
        })
    };
    op.call(
        "POST",
        "/api/v1/campaigns",
        Some(campaign("fw-1.1", "1.1.0", 11, 5, 0.2)),
    )?;
    op.call("POST", "/api/v1/campaigns/fw-1.1/start", None)?;
    let c11 = roll(&op, &devices, "fw-1.1", |_| {})?;
    println!(
        "      fw-1.1: {} — {}",
        at(&c11, "/status/status").as_str().unwrap_or("?"),
        at(&c11, "/status/reason").as_str().unwrap_or("")
    );
    let rolled_back: Vec<String> = at(&c11, "/devices")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| at(d, "/progress/state") == "failed")
        .map(|d| at(d, "/device").as_str().unwrap_or("?").to_owned())
        .collect();
    println!(
        "      canaries that installed 1.1.0 into slot B, failed the health check and were booted\n      \
         back into slot A by the bootloader: {}",
        rolled_back.join(", ")
    );
    println!("      the other devices were never offered 1.1.0");

    step(
        5,
        "campaign fw-1.2: the fix; pumps in therapy defer and install when therapy ends",
    );
    op.call(
        "POST",
        "/api/v1/campaigns",
        Some(campaign("fw-1.2", "1.2.0", 12, 5, 0.1)),
    )?;
    op.call("POST", "/api/v1/campaigns/fw-1.2/start", None)?;
    let mut deferred_seen = 0;
    let c12 = roll(&op, &devices, "fw-1.2", |n| {
        if n == 4 {
            for d in &devices {
                if let Some(f) = &d.clinical_flag {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
        if let Ok(c) = status(&op, "fw-1.2") {
            deferred_seen = deferred_seen.max(counts(&c).2);
        }
    })?;
    println!(
        "      fw-1.2: {} — up to {} device(s) deferred at once while in therapy; all installed when it ended",
        at(&c12, "/status/status").as_str().unwrap_or("?"),
        deferred_seen
    );

    step(
        6,
        "an attack: a pump sends data to an unknown address, a monitor's readings are altered",
    );
    let (attack, incidents) = attack(&op, &devices)?;

    step(7, "summary");
    let list = op.call("GET", "/api/v1/devices?limit=1000", None)?;
    let mut versions = std::collections::BTreeMap::new();
    for d in list.as_array().into_iter().flatten() {
        *versions
            .entry(
                at(d, "/installed_version")
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
            )
            .or_insert(0) += 1;
    }
    for (v, n) in &versions {
        println!("      {n:>4} device(s) run {v} (from their own signed version reports)");
    }
    let verify = op.call("GET", "/api/v1/audit/verify", None)?;
    let intact = at(&verify, "/findings")
        .as_array()
        .is_some_and(Vec::is_empty);
    println!(
        "      audit log: {} entries under {} signed tree heads, {}",
        at(&verify, "/entries").as_u64().unwrap_or(0),
        at(&verify, "/heads").as_u64().unwrap_or(0),
        if intact {
            "verified intact"
        } else {
            "NOT INTACT"
        }
    );
    println!(
        "      defender: {} alert(s), {} incident(s); {} quarantined (it still reports, sends telemetry and fetches updates)",
        attack.alerts, incidents, attack.pump
    );
    println!("      took {:.1} s", started.elapsed().as_secs_f64());
    ensure!(
        at(&c11, "/status/status") == "halted" && at(&c12, "/status/status") == "completed",
        "the demo's campaigns did not end as expected"
    );
    ensure!(
        versions.get("1.2.0") == Some(&fleet_size),
        "not every device runs 1.2.0: {versions:?}"
    );
    let location = format!("--config {}", config_file.display());
    if keep.is_none() {
        println!(
            "\nthe demo directory is temporary and removed now; run `medsec demo --dir DIR` to keep it, then:"
        );
    } else {
        println!("\nwhere to look next:");
    }
    println!("      medsec campaign status fw-1.2 --devices {location}");
    println!("      medsec investigate {} {location}", attack.pump);
    println!("      medsec audit verify {location}");
    println!(
        "      medsec report compliance {location} --out {}",
        base.join("evidence").display()
    );
    println!(
        "      medsec agent status --dir {}",
        base.join("devices").join("pump-000").display()
    );
    println!(
        "      docs/campaigns.md, docs/agent.md, docs/updates.md, docs/defender.md, docs/compliance.md, docs/console.md"
    );
    let console_url = format!("https://{}/ui/", server.operator_addr);
    if console {
        let person = medsec_server::sessions::Person {
            principal: "demo-operator".into(),
            display_name: "demo-operator".into(),
            roles: vec!["admin".into()],
        };
        let secret = rt.block_on(medsec_server::sessions::make_link(
            &server.state.store,
            &person,
            crate::cmd::server::now_ms(),
        ))?;
        println!(
            "
the web console: {console_url}"
        );
        println!(
            "      sign in (once, within {} minutes): https://{}/ui/login/link/{secret}",
            medsec_server::sessions::LINK_SECS / 60,
            server.operator_addr
        );
        println!(
            "      its certificate comes from the demo's own fleet CA ({}): your browser will ask",
            data.join("ca/chain.pem").display()
        );
        println!("      the server runs until Ctrl-C");
        rt.block_on(tokio::signal::ctrl_c())?;
    } else {
        println!(
            "
the web console ({console_url}) stops with the demo; `medsec demo --console` keeps it running and prints a sign-in link"
        );
    }
    drop(server);
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// What the attack step did.
struct Attack {
    pump: String,
    alerts: usize,
}

/// One pump's integration reports flows to an address outside its class profile, and one
/// monitor reports readings no patient can have (its data is being altered on the way). The
/// agents send them with their next telemetry; the rules raise alerts, incidents open, and the
/// security operator confirms the pump's incident and quarantines the pump.
fn attack(op: &Operator, devices: &[Device]) -> Result<(Attack, usize)> {
    let pump = devices
        .iter()
        .find(|d| d.id.starts_with("pump-") && d.clinical_flag.is_none())
        .context("the fleet has no pump")?;
    let monitor = devices
        .iter()
        .find(|d| d.id.starts_with("monitor-"))
        .context("the fleet has no monitor")?;
    let now = crate::cmd::server::now_ms();
    {
        let mut a = pump
            .agent
            .lock()
            .map_err(|_| anyhow::anyhow!("a device thread panicked"))?;
        for (i, bytes) in [48_000u64, 260_000, 1_900_000].iter().enumerate() {
            a.queue_telemetry(json!({
                "kind": "flow", "at_ms": now + i as i64 * 1000, "remote": "203.0.113.77",
                "remote_port": 443, "protocol": "tcp", "bytes_out": bytes, "bytes_in": 900,
                "packets_out": bytes / 1200, "packets_in": 12, "duration_ms": 4000.0,
            }))?;
        }
    }
    {
        let mut a = monitor
            .agent
            .lock()
            .map_err(|_| anyhow::anyhow!("a device thread panicked"))?;
        for (i, (signal, value)) in [("spo2", 97.0), ("spo2", 12.0), ("heart_rate", 410.0)]
            .iter()
            .enumerate()
        {
            a.queue_telemetry(json!({
                "kind": "clinical", "at_ms": now + i as i64 * 1000, "signal": signal, "value": value,
            }))?;
        }
    }
    round(devices);
    let alerts = op.call("GET", "/api/v1/alerts?limit=1000", None)?;
    let alerts = alerts.as_array().cloned().unwrap_or_default();
    for a in &alerts {
        let evidence = at(a, "/evidence/0");
        let count = at(a, "/count").as_i64().unwrap_or(1);
        println!(
            "      alert {} {} on {}: {} {} — {} observed {}, allowed {}{}",
            at(a, "/severity").as_str().unwrap_or("?"),
            at(a, "/rule").as_str().unwrap_or("?"),
            at(a, "/device").as_str().unwrap_or("?"),
            at(a, "/technique/id").as_str().unwrap_or("?"),
            at(a, "/technique/name").as_str().unwrap_or("?"),
            at(evidence, "/feature").as_str().unwrap_or("?"),
            at(evidence, "/observed").as_str().unwrap_or("?"),
            at(evidence, "/expected").as_str().unwrap_or("?"),
            if count > 1 {
                format!(" (seen {count} times)")
            } else {
                String::new()
            }
        );
    }
    let incidents = op.call("GET", "/api/v1/incidents?open=true", None)?;
    let incidents = incidents.as_array().cloned().unwrap_or_default();
    let pump_incident = incidents
        .iter()
        .find(|i| {
            at(i, "/devices")
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d == pump.id.as_str()))
        })
        .context("no incident opened on the pump's alerts")?;
    let id = at(pump_incident, "/id")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    op.call(
        "POST",
        &format!("/api/v1/incidents/{id}"),
        Some(json!({"action": "confirm", "cra": "severe_incident", "personal_data": false})),
    )?;
    let contained = op.call(
        "POST",
        &format!("/api/v1/incidents/{id}"),
        Some(json!({"action": "playbook", "playbook": "quarantine", "device": pump.id})),
    )?;
    println!(
        "      incident {id} on {}: confirmed, {} — pump quarantined",
        pump.id,
        at(&contained, "/phase").as_str().unwrap_or("?")
    );
    for c in at(&contained, "/clocks").as_array().into_iter().flatten() {
        let hours = at(c, "/remaining_ms").as_i64().unwrap_or(0) as f64 / 3_600_000.0;
        let due = if hours > 72.0 {
            format!("{:.0} days", hours / 24.0)
        } else {
            format!("{hours:.0} h")
        };
        println!(
            "        {} due in {due} ({})",
            at(c, "/report").as_str().unwrap_or("?"),
            at(c, "/basis").as_str().unwrap_or("?")
        );
    }
    let device = op.call("GET", &format!("/api/v1/devices/{}", pump.id), None)?;
    ensure!(
        at(&device, "/quarantined") == true,
        "the pump is not quarantined: {device}"
    );
    let rules: Vec<&str> = alerts
        .iter()
        .filter_map(|a| at(a, "/rule").as_str())
        .collect();
    ensure!(
        rules.contains(&"destination-not-allowed") && rules.contains(&"clinical-implausible"),
        "the attack raised {rules:?}"
    );
    Ok((
        Attack {
            pump: pump.id.clone(),
            alerts: alerts.len(),
        },
        incidents.len(),
    ))
}
