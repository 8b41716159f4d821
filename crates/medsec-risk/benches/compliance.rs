//! Building and writing the compliance evidence report at fleet scale.
//!
//!   cargo bench -p medsec-risk --bench compliance
//!
//! Evidence for 100,000 devices on 200 releases (500 components each, 40 findings per
//! release, a quarter of them resolved by VEX), 100 campaigns of 1,000 devices, 200 incidents
//! and 50 vendors is assessed against the bundled catalogue and written as JSON and HTML,
//! twice; the two runs must give the same bytes. Gathering the evidence from the store is
//! measured separately (docs/benchmarks.md).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "a benchmark: its output is the point, and a panic is a failed run"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use medsec_risk::compliance::{
    AccessFacts, AuditFacts, CampaignFacts, ClockFacts, DeviceFacts, Evidence, FindingFacts,
    IncidentFacts, ReleaseFacts, Report, catalogue,
};
use medsec_risk::inventory::{SupportState, SupportStatus};

const DEVICES: usize = 100_000;
const RELEASES: usize = 200;
const AS_OF: i64 = 1_796_256_000_000;
const DAY: i64 = 86_400_000;

fn evidence() -> Evidence {
    let severities = ["critical", "high", "medium", "low", "unscored"];
    let releases: Vec<ReleaseFacts> = (0..RELEASES)
        .map(|r| ReleaseFacts {
            target: format!("fw-{r}.img"),
            hardware_id: format!("hw-{}", r % 20),
            version: format!("1.{r}.0"),
            sbom_sha256: format!("{r:064x}"),
            format: "CycloneDX".into(),
            components: 500,
            completeness: 80.0 + (r % 20) as f64,
            unidentifiable: r % 7,
            findings: (0..40)
                .map(|f| FindingFacts {
                    advisory: format!("CVE-2026-{:05}", r * 40 + f),
                    component: format!("pkg:generic/lib{f}@1.{r}"),
                    severity: severities[f % 5].into(),
                    open: f % 4 != 0,
                    certain: f % 10 != 9,
                    known_exploited: f % 13 == 0,
                    vex: (f % 4 == 0).then(|| "not_affected".into()),
                })
                .collect(),
        })
        .collect();
    let devices = (0..DEVICES)
        .map(|d| {
            let r = d % RELEASES;
            let replace = d % 97 == 0;
            DeviceFacts {
                id: format!("dev-{d:06}"),
                model: format!("model-{}", d % 50),
                state: if d % 1000 == 0 { "revoked" } else { "enrolled" }.into(),
                hardware_id: format!("hw-{}", r % 20),
                version: if d % 501 == 0 {
                    String::new()
                } else {
                    format!("1.{r}.0")
                },
                quarantined: d % 333 == 0,
                signed_reports: 3,
                certificate_not_after_ms: Some(AS_OF + (d as i64 % 400) * DAY),
                support: (d % 211 != 0).then(|| SupportState {
                    vendor: format!("vendor-{}", d % 50),
                    status: if replace {
                        SupportStatus::EndOfSupport
                    } else {
                        SupportStatus::Supported
                    },
                    end_of_support: None,
                    days_left: None,
                    ships_updates: !replace,
                    replace,
                    why: if replace {
                        "vendor no longer ships updates"
                    } else {
                        "supported"
                    }
                    .into(),
                }),
            }
        })
        .collect();
    Evidence {
        as_of_ms: AS_OF,
        devices,
        releases,
        campaigns: (0..100)
            .map(|c| CampaignFacts {
                id: format!("campaign-{c:03}"),
                target: format!("fw-{c}.img"),
                version: format!("1.{c}.0"),
                status: if c % 10 == 0 { "halted" } else { "completed" }.into(),
                created_at_ms: AS_OF - 30 * DAY,
                devices: 1000,
                latencies_ms: (0..950).map(|i| i64::from(i) * 3_600_000 / 7).collect(),
                failed: 50,
            })
            .collect(),
        audit: AuditFacts {
            entries: 5_000_000,
            heads: 20_000,
            root_hash: "ab".repeat(32),
            findings: Vec::new(),
        },
        incidents: (0..200)
            .map(|i| IncidentFacts {
                id: format!("inc-{i:04}"),
                title: "beaconing to an unknown host".into(),
                severity: "high".into(),
                phase: if i % 3 == 0 { "contained" } else { "closed" }.into(),
                opened_at_ms: AS_OF - i64::from(i) * DAY,
                contained_after_ms: Some(i64::from(i) * 60_000),
                clocks: vec![ClockFacts {
                    report: "early warning".into(),
                    basis: "EU CRA Art. 14".into(),
                    due_at_ms: Some(AS_OF - i64::from(i) * DAY + DAY),
                }],
            })
            .collect(),
        vendors: (0..50)
            .map(|v| medsec_risk::compliance::VendorFacts {
                vendor: format!("vendor-{v}"),
                has_record: v % 5 != 0,
                security_contact: true,
                missing_documents: BTreeMap::from([(format!("model-{v}"), vec!["mds2".into()])]),
                critical_patch_days: Some(30),
                vulnerability_notice_days: None,
            })
            .collect(),
        access: AccessFacts {
            policies: vec!["operator-admin".into(), "device-self".into()],
            audit_entries: 5_000_000,
        },
    }
}

fn main() {
    let catalogue = catalogue().unwrap();
    let start = Instant::now();
    let e = evidence();
    let synth = start.elapsed();
    let mut outputs = Vec::new();
    let mut rows = Vec::new();
    for run in 1..=2 {
        let t = Instant::now();
        let report = Report::build(&catalogue, e.clone());
        let built = t.elapsed();
        let t = Instant::now();
        let json = report.to_json().unwrap();
        let json_time = t.elapsed();
        let t = Instant::now();
        let html = report.to_html();
        let html_time = t.elapsed();
        rows.push((run, built, json_time, html_time, json.len(), html.len()));
        outputs.push((json, html));
    }
    assert!(outputs[0] == outputs[1], "two runs gave different bytes");
    println!(
        "evidence: {DEVICES} devices, {RELEASES} releases × 40 findings, 100 campaigns, 200 incidents (synthesised in {synth:.2?})"
    );
    println!("| run | assess | JSON | HTML | JSON size | HTML size |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (run, b, j, h, js, hs) in rows {
        println!(
            "| {run} | {b:.2?} | {j:.2?} | {h:.2?} | {:.1} MiB | {:.2} MiB |",
            js as f64 / 1048576.0,
            hs as f64 / 1048576.0
        );
    }
    println!("both runs: the same bytes");
}
