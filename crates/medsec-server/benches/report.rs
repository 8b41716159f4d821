//! The compliance report gathered from a real store, end to end, at fleet scale.
//!
//!   cargo bench -p medsec-server --bench report            # 10,000 devices
//!   MEDSEC_BENCH_DEVICES=100000 cargo bench -p medsec-server --bench report
//!
//! A SQLite store is filled through the `Store` API: the devices with inventory, a
//! certificate and two signed version reports each; 20 releases whose CycloneDX SBOMs list 500
//! components each; 1,000 OSV advisories against those components; one audit entry per
//! device, written by the audit log's own writer with signed tree heads. Then
//! `compliance::gather` (the whole of `medsec report compliance` but writing the files) runs
//! twice, and `audit_log::verify` alone is timed beside it, being the part of the pass that
//! every verifier of the log pays anyway.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "a benchmark: its output is the point, and a panic is a failed run"
)]

use std::time::Instant;

use medsec_crypto::KeySource as _;
use medsec_server::audit_log;
use medsec_store::prelude::*;
use medsec_store::{AdvisoryDoc, AnyStore, DeviceKey, Inventory, ReleaseSbomRow, VersionReport};

const RELEASES: usize = 20;
const COMPONENTS: usize = 500;
const ADVISORIES: usize = 1_000;
const NOW: i64 = 1_796_256_000_000;

fn sbom(release: usize) -> String {
    let components: Vec<serde_json::Value> = (0..COMPONENTS)
        .map(|c| {
            serde_json::json!({
                "type": "library", "bom-ref": format!("c{c}"), "name": format!("lib{c}"),
                "version": format!("1.{}.0", (c + release) % 10),
                "purl": format!("pkg:generic/lib{c}@1.{}.0", (c + release) % 10),
                "supplier": {"name": "Acme"},
            })
        })
        .collect();
    serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "firmware", "name": "fw", "version": format!("1.{release}.0")}},
        "components": components,
    })
    .to_string()
}

fn advisory(i: usize) -> String {
    serde_json::json!({
        "schema_version": "1.6.0", "id": format!("CVE-2026-{:05}", i), "modified": "2026-11-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [{"package": {"ecosystem": "OSS-Fuzz", "name": format!("lib{}", i % COMPONENTS),
                                  "purl": format!("pkg:generic/lib{}", i % COMPONENTS)},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0.0"}, {"fixed": format!("1.{}.0", 3 + i % 7)}]}]}]
    })
    .to_string()
}

fn main() {
    let devices: usize = std::env::var("MEDSEC_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", tmp.path().join("bench.db").display());
        let store = AnyStore::open(&url, 4).await.unwrap();
        let t = Instant::now();
        let rows: Vec<ReleaseSbomRow> = (0..RELEASES)
            .map(|r| ReleaseSbomRow {
                target: format!("fw-{r}.img"),
                hardware_id: "hw".into(),
                version: format!("1.{r}.0"),
                sha256: format!("{r:064x}"),
                body: sbom(r),
                uploaded_at_ms: NOW,
            })
            .collect();
        store.put_release_sbom(&rows).await.unwrap();
        let docs: Vec<AdvisoryDoc> = (0..ADVISORIES)
            .map(|i| AdvisoryDoc {
                identity: format!("osv:CVE-2026-{i:05}"),
                modified: "2026-11-01T00:00:00Z".into(),
                body: advisory(i),
            })
            .collect();
        store.put_advisory_docs(&docs, NOW).await.unwrap();
        let key = audit_log::load_or_create_key(tmp.path(), None, true).unwrap();
        let public = key.public_key().clone();
        let log = audit_log::AuditLog::start(store.clone(), std::sync::Arc::new(key), 4096, 1024)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in (0..devices).collect::<Vec<_>>().chunks(devices.div_ceil(4).max(1)) {
            let (store, log, chunk) = (store.clone(), log.clone(), chunk.to_vec());
            tasks.spawn(async move {
                for d in chunk {
                    let id = format!("dev-{d:06}");
                    store.register_device(&id, "pump", NOW).await.unwrap();
                    store
                        .set_device_inventory(
                            &id,
                            &Inventory {
                                model: "pump".into(),
                                hardware_id: "hw".into(),
                                site: format!("site-{}", d % 40),
                                groups: Vec::new(),
                            },
                        )
                        .await
                        .unwrap();
                    store.set_device_state(&id, "enrolled").await.unwrap();
                    store
                        .add_device_key(&DeviceKey {
                            spki_sha256: medsec_crypto::digest::sha256(id.as_bytes()).to_vec(),
                            device_id: id.clone(),
                            serial: format!("{d:x}"),
                            not_after_ms: NOW + 365 * 86_400_000,
                            created_at_ms: NOW,
                        })
                        .await
                        .unwrap();
                    for (n, r) in [(0, d % RELEASES), (1, (d + 1) % RELEASES)] {
                        let nonce = format!("{id}-{n}");
                        store.add_report_nonce(&id, &nonce, NOW, NOW + 60_000, 8).await.unwrap();
                        store
                            .record_version_report(&VersionReport {
                                nonce,
                                device_id: id.clone(),
                                received_at_ms: NOW + n,
                                version: format!("1.{r}.0"),
                                release_counter: i64::try_from(r).unwrap(),
                                payload: vec![0; 96],
                                signature: vec![0; 64],
                                certificate: vec![0; 400],
                            })
                            .await
                            .unwrap();
                    }
                    let mut e = audit_log::event("enrolment", &format!("Device::{id:?}"), "est.enroll", "Fleet", "allow");
                    e.detail = "bench".into();
                    log.record(e).await.unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let filled = t.elapsed();
        let catalogue = medsec_risk::compliance::catalogue().unwrap();
        let policies = medsec_server::authz::Policies::shipped().unwrap();
        let t = Instant::now();
        let verified = audit_log::verify(&store, &public).await.unwrap();
        let verify = t.elapsed();
        assert!(verified.findings.is_empty());
        let mut runs = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            let out = medsec_server::compliance::gather(&store, &catalogue, &policies, &public, None, &medsec_risk::names::Names::builtin())
                .await
                .unwrap();
            let gathered = t.elapsed();
            let t = Instant::now();
            let json = out.report.to_json().unwrap();
            let html = out.report.to_html();
            runs.push((gathered, t.elapsed(), json.len(), html.len(), out.report.evidence.releases.iter().map(|r| r.findings.len()).sum::<usize>()));
            outputs.push((json, html, out.bundle));
        }
        assert!(outputs[0] == outputs[1], "two runs gave different bytes");
        println!(
            "store: {devices} devices (2 signed reports, 1 certificate each), {RELEASES} releases × {COMPONENTS} components, {ADVISORIES} advisories, {} audit entries; filled in {filled:.1?}",
            verified.entries
        );
        println!("| step | time |");
        println!("|---|---:|");
        println!("| audit_log::verify alone (the peer: what `medsec audit verify` pays) | {verify:.2?} |");
        for (i, (g, w, js, hs, findings)) in runs.iter().enumerate() {
            println!(
                "| run {}: gather + assess ({findings} findings) | {g:.2?} |\n| run {}: write JSON ({:.1} MiB) and HTML ({:.2} MiB) | {w:.2?} |",
                i + 1,
                i + 1,
                *js as f64 / 1048576.0,
                *hs as f64 / 1048576.0
            );
        }
        println!("both runs: the same bytes");
    });
}
