//! Advisory import and the affected-devices query at fleet scale.
//!
//!   cargo bench -p medsec-risk --bench affected
//!
//! A fleet of 100,000 devices running 200 firmware releases of 500 components each (drawn
//! from 5,000 packages; one in five carries only a CPE). 10,000 synthetic OSV records are
//! parsed, schema-validated and imported. Then, for new advisories, the devices they affect
//! are found two ways: through the release index ([`Inventory`]), and by brute force over
//! every device's 500 components (keys precomputed, so the brute force is as fast as it can
//! be short of an index). Both must name the same devices.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark: its output is the point, and a panic is a failed run"
)]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

use medsec_risk::advisory::{self, Advisory, Document};
use medsec_risk::fleet::Inventory;
use medsec_risk::ident;
use medsec_risk::matching::Database;
use medsec_risk::sbom::Component;

const DEVICES: usize = 100_000;
const RELEASES: usize = 200;
const COMPONENTS: usize = 500;
const PACKAGES: usize = 5_000;
const ADVISORIES: usize = 10_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn component(package: usize, version: &str) -> Component {
    let name = format!("lib{package}");
    let (purl, cpe) = if package.is_multiple_of(5) {
        (
            None,
            Some(format!(
                "cpe:2.3:a:vendor{package}:{name}:{version}:*:*:*:*:*:*:*"
            )),
        )
    } else {
        (Some(format!("pkg:generic/{name}@{version}")), None)
    };
    Component {
        reference: Some(name.clone()),
        name,
        version: Some(version.to_owned()),
        supplier: None,
        purl,
        cpe,
        hashes: Vec::new(),
        licenses: Vec::new(),
        level_of_support: None,
        end_of_support: None,
    }
}

fn version(r: &mut Rng) -> String {
    format!("{}.{}.{}", r.below(4), r.below(10), r.below(20))
}

/// An OSV record for a purl package. OSV cannot name a CPE: packages with only a CPE are
/// queried by CSAF advisories ([`csaf`]).
fn osv(id: usize, package: usize, r: &mut Rng) -> String {
    let lo = version(r);
    let hi = format!("{}.{}.{}", r.below(4) + 1, r.below(10), r.below(20));
    serde_json::json!({
        "schema_version": "1.6.0",
        "id": format!("CVE-2026-{id:05}"),
        "modified": "2026-11-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{"package": {"ecosystem": "OSS-Fuzz", "name": format!("lib{package}"),
                                  "purl": format!("pkg:generic/lib{package}")},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": lo}, {"fixed": hi}]}]}]
    })
    .to_string()
}

fn csaf(package: usize) -> String {
    serde_json::json!({
        "document": {
            "category": "csaf_security_advisory", "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "Vendor", "namespace": "https://vendor.example"},
            "title": "t",
            "tracking": {"id": format!("V-{package}"), "status": "final", "version": "1",
                         "initial_release_date": "2026-01-01T00:00:00Z", "current_release_date": "2026-01-01T00:00:00Z",
                         "revision_history": [{"date": "2026-01-01T00:00:00Z", "number": "1", "summary": "s"}]}
        },
        "product_tree": {"branches": [{"category": "vendor", "name": "Vendor", "branches": [
            {"category": "product_name", "name": format!("lib{package}"), "branches": [
                {"category": "product_version_range", "name": "vers:generic/>=1.0.0|<2.5.0",
                 "product": {"product_id": "P1", "name": "affected",
                             "product_identification_helper": {"cpe": format!("cpe:2.3:a:vendor{package}:lib{package}:*:*:*:*:*:*:*:*")}}}]}]}]},
        "vulnerabilities": [{"cve": "CVE-2026-99999", "product_status": {"known_affected": ["P1"]}}]
    })
    .to_string()
}

fn one(doc: Document) -> Advisory {
    match doc {
        Document::Advisories(mut a) => a.remove(0),
        Document::Kev(_) => unreachable!(),
    }
}

fn main() {
    let mut r = Rng(7);
    // Releases: each a draw of 500 packages at some version.
    let releases: Vec<Vec<Component>> = (0..RELEASES)
        .map(|_| {
            let mut picked = BTreeSet::new();
            while picked.len() < COMPONENTS {
                picked.insert(r.below(PACKAGES));
            }
            picked
                .into_iter()
                .map(|p| component(p, &version(&mut r)))
                .collect()
        })
        .collect();
    let device_release: Vec<usize> = (0..DEVICES).map(|_| r.below(RELEASES)).collect();
    let mut devices_of = vec![Vec::new(); RELEASES];
    for (d, rel) in device_release.iter().enumerate() {
        devices_of[*rel].push(d);
    }

    println!("| step | size | time |");
    println!("|---|---|---:|");

    // Import of 10,000 OSV records: parse, schema validation, range parsing, import.
    let texts: Vec<String> = (0..ADVISORIES)
        .map(|i| osv(i, r.below(PACKAGES), &mut r))
        .collect();
    let t = Instant::now();
    let mut db = Database::new();
    for text in &texts {
        db.import(advisory::parse(text.as_bytes()).unwrap());
    }
    let import = t.elapsed();
    println!(
        "| import OSV records (parse, validate, import) | {ADVISORIES} | {:.2} s ({:.0} records/s) |",
        import.as_secs_f64(),
        ADVISORIES as f64 / import.as_secs_f64()
    );

    let t = Instant::now();
    let mut inventory = Inventory::new();
    for (i, rel) in releases.iter().enumerate() {
        inventory.add_release(&format!("r{i}"), rel);
    }
    println!(
        "| index releases | {RELEASES} × {COMPONENTS} components | {:.1} ms |",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Brute force: every device, every component, keys precomputed.
    let keyed: Vec<Vec<(String, Option<String>)>> = releases
        .iter()
        .map(|rel| {
            rel.iter()
                .map(|c| {
                    let id = c
                        .purl
                        .as_deref()
                        .and_then(ident::purl)
                        .or_else(|| c.cpe.as_deref().and_then(ident::cpe))
                        .unwrap();
                    (id.key, id.version.or_else(|| c.version.clone()))
                })
                .collect()
        })
        .collect();
    let by_device: Vec<&Vec<(String, Option<String>)>> =
        device_release.iter().map(|rel| &keyed[*rel]).collect();

    // New advisories: four OSV (purl) and four CSAF (CPE only).
    let queries: Vec<Advisory> = (0..8)
        .map(|i| {
            let package = if i < 4 { 5 * i + 1 } else { 5 * i };
            let text = if i < 4 {
                osv(90_000 + i, package, &mut r)
            } else {
                csaf(package)
            };
            one(advisory::parse(text.as_bytes()).unwrap())
        })
        .collect();
    let mut index_times = Vec::new();
    let mut brute_times = Vec::new();
    let mut affected_total = 0;
    for q in &queries {
        let t = Instant::now();
        let hits = inventory.affected(black_box(q));
        let mut devices = BTreeSet::new();
        for h in &hits {
            let rel: usize = h.release[1..].parse().unwrap();
            devices.extend(devices_of[rel].iter().copied());
        }
        index_times.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut brute = BTreeSet::new();
        let mut one_db = Database::new();
        one_db.import(Document::Advisories(vec![q.clone()]));
        for (d, comps) in by_device.iter().enumerate() {
            for (key, version) in comps.iter() {
                if q.affected.iter().any(|a| &a.key == key) {
                    let c = Component {
                        reference: None,
                        name: String::new(),
                        version: version.clone(),
                        supplier: None,
                        purl: key.starts_with("pkg:").then(|| match version {
                            Some(v) => format!("{key}@{v}"),
                            None => key.clone(),
                        }),
                        cpe: key.strip_prefix("cpe:").map(|k| {
                            format!(
                                "cpe:2.3:{k}:{}:*:*:*:*:*:*:*",
                                version.as_deref().unwrap_or("*")
                            )
                        }),
                        hashes: Vec::new(),
                        licenses: Vec::new(),
                        level_of_support: None,
                        end_of_support: None,
                    };
                    if !one_db.index().component(&c).findings.is_empty() {
                        brute.insert(d);
                    }
                }
            }
        }
        brute_times.push(t.elapsed().as_secs_f64());
        assert_eq!(
            devices, brute,
            "{}: the index and brute force disagree",
            q.id
        );
        affected_total += devices.len();
    }
    index_times.sort_by(f64::total_cmp);
    brute_times.sort_by(f64::total_cmp);
    println!(
        "| affected devices for one new advisory, release index (median of 8; max) | {DEVICES} devices × {COMPONENTS} | {:.3} ms; {:.3} ms |",
        index_times[4] * 1e3,
        index_times[7] * 1e3
    );
    println!(
        "| the same, brute force over every device's components (median; max) | {DEVICES} × {COMPONENTS} | {:.0} ms; {:.0} ms |",
        brute_times[4] * 1e3,
        brute_times[7] * 1e3
    );
    println!("| devices found (8 advisories, both ways the same) | | {affected_total} |");

    // Every release against the whole database, as after a feed update.
    let t = Instant::now();
    let index = db.index();
    let mut findings = 0;
    for rel in &releases {
        findings += index
            .components(rel)
            .iter()
            .map(|m| m.findings.len())
            .sum::<usize>();
    }
    println!(
        "| re-match every release against every advisory | {RELEASES} × {COMPONENTS} vs {ADVISORIES} | {:.2} s ({findings} findings) |",
        t.elapsed().as_secs_f64()
    );
}
