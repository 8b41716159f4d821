//! The Defender's false-alert budget on a simulated ward, then its detection of the demo's
//! attacks, through the real server's telemetry ingestion.
//!
//!   cargo bench -p medsec --bench ward          # WARD_PUMPS=6 WARD_MONITORS=6 WARD_HOURS=24
//!
//! Infusion pumps and patient monitors, profiled as in `medsec demo` (allowed destinations and
//! ports), send a simulated day of telemetry, one batch per device every 10 minutes of
//! simulated time (sent as fast as the server takes them). Normal variation:
//! - day and night traffic volumes, and the update server besides the clinical one;
//! - pumps that start and stop therapy (infusion rate 0 and back);
//! - monitors whose sensors are detached twice a day (half send 0s, half say `detached`),
//!   whose patients' readings drift, and whose temperature probe is on the skin;
//! - a firmware update in the afternoon (update installed, reboot);
//! - an occasional failed login.
//!
//! The peer, in the same run: every device has a twin of a "naive" model sending exactly the
//! same batches, whose class uses the rules as they were before this work (no "no reading"
//! value, the core-temperature range 25–45 °C), and whose alerts are counted per occurrence,
//! as they were raised before aggregation. Then the learned baselines are trained on that
//! day, and a second day of the same ward is judged by them as well. Then the demo's attacks
//! are injected: a pump
//! exfiltrating to an unknown address, a monitor's readings altered, a burst of failed logins,
//! a telnet port opened. The table goes in docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a panic is a failed run"
)]

use std::collections::BTreeMap;

use medsec_testkit::{Running, start};
use serde_json::{Value, json};

/// A small deterministic generator (the same ward on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const MINUTE: i64 = 60_000;

/// One batch (10 simulated minutes) of a device's normal telemetry.
fn normal_batch(rng: &mut Rng, pump: bool, index: usize, slot: usize, start_ms: i64) -> Vec<Value> {
    let t0 = start_ms + slot as i64 * 10 * MINUTE;
    let hour = (slot * 10 / 60) % 24;
    let night = !(7..22).contains(&hour);
    let mut events = Vec::new();
    for m in 0..10 {
        let at = t0 + m * MINUTE;
        let volume = if night { 0.3 } else { 1.0 } * (0.7 + rng.next() * 0.6);
        let (remote, port) = if m == 5 && rng.next() < 0.2 {
            ("10.20.0.5", 8443) // the update server
        } else if pump {
            ("10.20.0.10", 1111)
        } else {
            ("10.20.0.11", 2575)
        };
        events.push(json!({"kind": "flow", "at_ms": at, "remote": remote, "remote_port": port,
            "protocol": "tcp", "bytes_out": (600.0 * volume) as u64, "bytes_in": (200.0 * volume) as u64,
            "packets_out": 6, "packets_in": 4, "duration_ms": 40.0 + rng.next() * 20.0}));
        if pump {
            // Therapy runs 06–12 and 14–22 on even pumps, around the clock on odd ones, with a
            // stop of 20 minutes every few hours.
            let on = if index.is_multiple_of(2) {
                (6..12).contains(&hour) || (14..22).contains(&hour)
            } else {
                slot % 18 > 1
            };
            let rate = if on { 80.0 + rng.next() * 40.0 } else { 0.0 };
            events.push(
                json!({"kind": "clinical", "at_ms": at, "signal": "infusion_rate", "value": rate}),
            );
        } else {
            // Sensors detached for 20 minutes at 08:00 and 20:00 (a wash, a transfer).
            let detached = (hour == 8 || hour == 20) && slot % 6 < 2;
            let base = index as f64;
            let readings = [
                ("spo2", 96.0 + rng.next() * 3.0),
                (
                    "heart_rate",
                    70.0 + base + 15.0 * ((slot as f64) / 20.0).sin() + rng.next() * 6.0,
                ),
                ("respiration_rate", 14.0 + rng.next() * 4.0),
                ("temperature", 32.5 + rng.next() * 1.0), // a skin probe
            ];
            for (signal, value) in readings {
                let event = if !detached {
                    json!({"kind": "clinical", "at_ms": at, "signal": signal, "value": (value * 10.0).round() / 10.0})
                } else if index.is_multiple_of(2) {
                    json!({"kind": "clinical", "at_ms": at, "signal": signal, "value": 0})
                } else {
                    json!({"kind": "clinical", "at_ms": at, "signal": signal, "value": 0, "state": "detached"})
                };
                events.push(event);
            }
        }
    }
    events.push(
        json!({"kind": "metric", "at_ms": t0, "name": "listening_tcp_ports", "values": ["443"]}),
    );
    if hour == 14 && slot % 6 == index % 6 {
        events.push(json!({"kind": "security", "at_ms": t0, "event": "update_installed", "detail": "1.2.0"}));
        events.push(json!({"kind": "security", "at_ms": t0 + 1_000, "event": "boot", "detail": "slot B 1.2.0"}));
    }
    if rng.next() < 0.02 {
        events.push(json!({"kind": "security", "at_ms": t0, "event": "login_failed"}));
    }
    events
}

struct Ward {
    s: Running,
    admin: String,
    sequence: BTreeMap<String, i64>,
}

impl Ward {
    fn send(&mut self, device: &str, events: &[Value]) {
        let n = self.sequence.entry(device.to_owned()).or_insert(0);
        *n += 1;
        let body = json!({"sequence": *n, "events": events}).to_string();
        let r = self
            .s
            .telemetry(&self.s.as_device(device), device, &body, &[]);
        assert_eq!(r.status, 200, "{device}: {r:?}");
    }

    fn alerts(&self) -> Vec<Value> {
        let r = self
            .s
            .operator(&self.admin, "GET", "/api/v1/alerts?limit=1000", None);
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn main() {
    let (pumps, monitors, hours) = (
        env("WARD_PUMPS", 6),
        env("WARD_MONITORS", 6),
        env("WARD_HOURS", 24),
    );
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("defender.json");
    // The demo's profiles; the naive twins use the rules as they were before (no "no reading"
    // value, the core-temperature range).
    let profile = |port: u16, naive: bool| {
        let mut p = json!({"destinations": ["10.20.0.0/16"], "remote_ports": [8443, port],
                           "listening_tcp_ports": [443]});
        if naive {
            p["clinical"] = json!({"no_reading": [], "ranges": {"temperature": [25, 45]}});
        }
        p
    };
    std::fs::write(
        &policy,
        json!({"classes": {
            "infusion-pump": profile(1111, false), "patient-monitor": profile(2575, false),
            "naive-pump": profile(1111, true), "naive-monitor": profile(2575, true)}})
        .to_string(),
    )
    .unwrap();
    let policy_env = policy.display().to_string();
    // Generous device rates: the simulated day is sent as fast as the server takes it.
    let s = start(
        tmp.path(),
        &[
            ("MEDSEC_DEFENDER_POLICY", &policy_env),
            ("MEDSEC_LIMITS__REQUESTS_PER_SECOND", "10000"),
            ("MEDSEC_LIMITS__REQUEST_BURST", "10000"),
        ],
        &[],
    );
    let admin = s.operator_token("alice", "admin", "8h");
    let mut devices: Vec<(String, bool, usize)> = Vec::new();
    for i in 0..pumps {
        devices.push((format!("pump-{i:02}"), true, i));
    }
    for i in 0..monitors {
        devices.push((format!("monitor-{i:02}"), false, i));
    }
    for (id, pump, _) in &devices {
        for (name, model) in [
            (
                id.clone(),
                if *pump {
                    "infusion-pump"
                } else {
                    "patient-monitor"
                },
            ),
            (
                format!("naive-{id}"),
                if *pump { "naive-pump" } else { "naive-monitor" },
            ),
        ] {
            s.enrol(&name);
            let r = s.operator(
                &admin,
                "PATCH",
                &format!("/api/v1/devices/{name}"),
                Some(&json!({"model": model}).to_string()),
            );
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let mut ward = Ward {
        s,
        admin,
        sequence: BTreeMap::new(),
    };
    let start_ms = medsec_testkit::now_ms() - i64::try_from(hours).unwrap() * 60 * MINUTE;
    let started = std::time::Instant::now();
    let mut rng = Rng(0x5eed);
    let mut batches = 0;
    for slot in 0..hours * 6 {
        for (id, pump, index) in &devices {
            let events = normal_batch(&mut rng, *pump, *index, slot, start_ms);
            ward.send(id, &events);
            ward.send(&format!("naive-{id}"), &events);
            batches += 2;
        }
    }
    let elapsed = started.elapsed();
    let normal = ward.alerts();
    let device_days = devices.len() as f64 * hours as f64 / 24.0;
    // Per rule: medsec's alerts (aggregated rows) and the naive twins' occurrences.
    let mut by_rule: BTreeMap<String, (usize, i64, i64)> = BTreeMap::new();
    for a in &normal {
        let rule = a["rule"].as_str().unwrap().to_owned();
        let naive = a["device"].as_str().unwrap().starts_with("naive-");
        let count = a["count"].as_i64().unwrap_or(1);
        let e = by_rule.entry(rule).or_default();
        if naive {
            e.2 += count;
        } else {
            e.0 += 1;
            e.1 += count;
        }
    }
    println!(
        "simulated ward: {pumps} pumps and {monitors} monitors (and their naive twins), {hours} h, {batches} batches in {:.0} s\n",
        elapsed.as_secs_f64()
    );
    println!(
        "| rule | medsec alerts per device-day | medsec occurrences per device-day | naive rules, alerts per device-day (one per occurrence) |"
    );
    println!("|---|---:|---:|---:|");
    let (mut total, mut total_naive) = (0usize, 0i64);
    for (rule, (alerts, occurrences, naive)) in &by_rule {
        total += alerts;
        total_naive += naive;
        println!(
            "| {rule} | {:.3} | {:.3} | {:.3} |",
            *alerts as f64 / device_days,
            *occurrences as f64 / device_days,
            *naive as f64 / device_days
        );
    }
    println!(
        "| **all** | **{:.3}** | | **{:.3}** |",
        total as f64 / device_days,
        total_naive as f64 / device_days
    );

    // Day 2: the learned baselines, trained on day 1 (flow thresholds calibrated on each
    // device's latest flows), judge a second day of the same ward.
    let mut thresholds = Vec::new();
    for model in ["infusion-pump", "patient-monitor"] {
        let r = ward.s.operator(
            &ward.admin,
            "POST",
            &format!("/api/v1/defender/baselines/{model}"),
            Some(r#"{"since_ms": 0}"#),
        );
        assert_eq!(r.status, 201, "{r:?}");
        let shown = ward.s.operator(
            &ward.admin,
            "GET",
            &format!("/api/v1/defender/baselines/{model}"),
            None,
        );
        let v: Value = serde_json::from_str(&shown.body).unwrap_or_default();
        thresholds.push(format!(
            "{model}: {}",
            v.pointer("/baseline/flow_threshold")
                .and_then(Value::as_f64)
                .map_or("none".to_owned(), |t| format!("{t:.1} robust SD"))
        ));
    }
    let day2_start = medsec_testkit::now_ms();
    let mut rng2 = Rng(0xda72);
    for slot in 0..hours * 6 {
        for (id, pump, index) in &devices {
            let events = normal_batch(&mut rng2, *pump, *index, slot, start_ms + 24 * 60 * MINUTE);
            ward.send(id, &events);
        }
    }
    let mut learned: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    let mut day2_rules: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for a in ward.alerts() {
        let device = a["device"].as_str().unwrap_or_default();
        if device.starts_with("naive-") || a["last_seen_ms"].as_i64().unwrap_or(0) < day2_start {
            continue;
        }
        let rule = a["rule"].as_str().unwrap_or_default();
        // An alert opened on day 1 and seen again counts its day-2 occurrences only roughly:
        // rules alerts are all new on day 2 here (none fired on day 1).
        let target = if rule.starts_with("baseline:") {
            &mut learned
        } else {
            &mut day2_rules
        };
        let e = target.entry(rule.to_owned()).or_default();
        e.0 += 1;
        e.1 += a["count"].as_i64().unwrap_or(1);
    }
    let real_days = (pumps + monitors) as f64 * hours as f64 / 24.0;
    println!(
        "\nday 2, with the learned baselines trained on day 1 (calibrated flow thresholds: {})\n",
        thresholds.join(", ")
    );
    println!("| rule | alerts per device-day | occurrences per device-day |");
    println!("|---|---:|---:|");
    let mut day2_total = 0usize;
    for (rule, (alerts, occurrences)) in learned.iter().chain(day2_rules.iter()) {
        day2_total += alerts;
        println!(
            "| {rule} | {:.3} | {:.3} |",
            *alerts as f64 / real_days,
            *occurrences as f64 / real_days
        );
    }
    println!("| **all** | **{:.3}** | |", day2_total as f64 / real_days);

    // The demo's attacks, on the real devices.
    let now = medsec_testkit::now_ms();
    let flow = |remote: &str, port: u16, bytes: u64, at: i64| {
        json!({"kind": "flow", "at_ms": at, "remote": remote, "remote_port": port, "protocol": "tcp",
               "bytes_out": bytes, "bytes_in": 900, "packets_out": bytes / 1200, "packets_in": 12,
               "duration_ms": 4000.0})
    };
    let attacks: Vec<(&str, &str, Vec<Value>, &str)> = vec![
        (
            "exfiltration to an unknown address",
            "pump-00",
            [48_000u64, 260_000, 1_900_000]
                .iter()
                .enumerate()
                .map(|(i, b)| flow("203.0.113.77", 443, *b, now + i as i64 * 1000))
                .collect(),
            "destination-not-allowed",
        ),
        (
            "readings altered on the way (SpO2 12 %, heart rate 410)",
            "monitor-00",
            vec![
                json!({"kind": "clinical", "at_ms": now, "signal": "spo2", "value": 97}),
                json!({"kind": "clinical", "at_ms": now + 1000, "signal": "spo2", "value": 12}),
                json!({"kind": "clinical", "at_ms": now + 2000, "signal": "heart_rate", "value": 410}),
            ],
            "clinical-implausible",
        ),
        (
            "readings altered within the plausible range (SpO2 97 → 60 in 1 s)",
            "monitor-01",
            vec![
                json!({"kind": "clinical", "at_ms": now, "signal": "spo2", "value": 97}),
                json!({"kind": "clinical", "at_ms": now + 1000, "signal": "spo2", "value": 60}),
            ],
            "clinical-jump",
        ),
        (
            "password guessing (6 failed logins)",
            "pump-01",
            (0..6)
                .map(|i| json!({"kind": "security", "at_ms": now + i, "event": "login_failed"}))
                .collect(),
            "login-failure-burst",
        ),
        (
            "a telnet port opened",
            "monitor-02",
            vec![
                json!({"kind": "metric", "at_ms": now, "name": "listening_tcp_ports", "values": ["443", "23"]}),
            ],
            "listening-port-not-allowed",
        ),
    ];
    println!("\n| injected attack | device | expected rule | detected |");
    println!("|---|---|---|---|");
    let mut detected = 0;
    for (what, device, events, rule) in &attacks {
        ward.send(device, events);
        let found = ward.alerts().iter().any(|a| {
            a["device"] == *device
                && a["rule"] == *rule
                && a["last_seen_ms"].as_i64().unwrap_or(0) >= now - 60_000
        });
        detected += usize::from(found);
        println!(
            "| {what} | {device} | {rule} | {} |",
            if found { "yes" } else { "**no**" }
        );
    }
    println!("\n{detected} of {} attacks detected", attacks.len());
}
