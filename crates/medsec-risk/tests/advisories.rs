//! Advisory import (OSV, CSAF 2.0, KEV) and matching, on the official examples and test
//! cases in `testdata/risk/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::path::Path;

use medsec_risk::advisory::{self, Document};
use medsec_risk::matching::{Database, Status};
use medsec_risk::sbom::Component;

fn read(path: &Path) -> Document {
    advisory::parse(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn component(name: &str, version: &str, purl: Option<&str>, cpe: Option<&str>) -> Component {
    Component {
        reference: Some(format!("{name}@{version}")),
        name: name.into(),
        version: Some(version.into()).filter(|v: &String| !v.is_empty()),
        supplier: None,
        purl: purl.map(str::to_owned),
        cpe: cpe.map(str::to_owned),
        hashes: Vec::new(),
        licenses: Vec::new(),
        level_of_support: None,
        end_of_support: None,
    }
}

/// The CSAF mandatory tests medsec implements (csaf_rules.rs).
const IMPLEMENTED: [&str; 12] = [
    "6.1.1", "6.1.2", "6.1.3", "6.1.4", "6.1.5", "6.1.6", "6.1.8", "6.1.9", "6.1.13", "6.1.23",
    "6.1.31", "6.1.33",
];

#[test]
fn csaf_validator_test_cases_behave_as_labelled() {
    let dir = common::fixture("csaf/2.0/validator-testcases");
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("testcases.json")).unwrap()).unwrap();
    let (mut refused, mut accepted) = (0, 0);
    for t in cases["tests"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        for c in t["valid"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap();
            advisory::parse(&std::fs::read(dir.join(name)).unwrap())
                .unwrap_or_else(|e| panic!("{name} is valid (test {id}) but was refused: {e}"));
            accepted += 1;
        }
        if !IMPLEMENTED.contains(&id) {
            continue;
        }
        for c in t["failures"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap();
            let e = advisory::parse(&std::fs::read(dir.join(name)).unwrap())
                .err()
                .unwrap_or_else(|| panic!("{name} fails test {id} but was accepted"))
                .to_string();
            assert!(
                e.contains(&format!("mandatory test {id}:")) || e.contains("breaks its schema"),
                "{name}: refused for another reason than test {id}: {e}"
            );
            refused += 1;
        }
    }
    eprintln!("CSAF validator cases: {accepted} valid accepted, {refused} failures refused");
    assert!(
        refused >= 20 && accepted >= 20,
        "{refused} refused, {accepted} accepted"
    );
}

#[test]
fn every_official_example_reads() {
    for sub in [
        "osv/linter-testdata",
        "osv/ghsa-to-osv-pairs",
        "csaf/2.0/examples",
        "csaf/2.0/examples/csaf_vex",
        "crossformat/redhat-csaf-osv",
    ] {
        let dir = common::fixture(sub);
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // The GHSA side of the GHSA->OSV pairs is GitHub's own format, not OSV.
            let ghsa = sub.ends_with("pairs") && !name.ends_with(".osv.json");
            if !name.ends_with(".json") || ghsa {
                continue;
            }
            let result = advisory::parse(&std::fs::read(&path).unwrap());
            if name.starts_with("nointroduced") {
                // The OSV linter's negative case: events with no introduced.
                let e = result.unwrap_err().to_string();
                assert!(e.contains("breaks its schema"), "{e}");
            } else {
                result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}

#[test]
fn components_match_by_purl_range_and_by_cpe() {
    let osv = common::fixture("osv");
    let csaf = common::fixture("csaf/2.0/examples");
    let mut db = Database::new();
    for f in [
        "linter-testdata/CVE-2018-5407.json",
        "linter-testdata/PYSEC-2023-74.json",
        "linter-testdata/GO-2020-0001.json",
        "linter-testdata/CVE-2023-41045.json",
        "ghsa-to-osv-pairs/equals_with_patch.osv.json",
        "ghsa-to-osv-pairs/withdrawn.osv.json",
    ] {
        db.import(read(&osv.join(f)));
    }
    db.import(read(&csaf.join("bsi-2022-0001.json")));
    let index = db.index();
    let check = |c: Component, status: Status, advisory: Option<&str>, fixed: Option<&str>| {
        let m = index.component(&c);
        assert_eq!(m.status, status, "{} {:?}: {m:#?}", c.name, c.version);
        if let Some(a) = advisory {
            let f = m.findings.iter().find(|f| f.advisory == a).unwrap();
            assert!(f.certain, "{f:?}");
            assert_eq!(f.fixed_in.as_deref(), fixed, "{f:?}");
        }
        m
    };
    // Alpine ECOSYSTEM range, apk versions, with an -rN release.
    let alpine = |v: &str| {
        component(
            "openssl",
            v,
            Some(&format!("pkg:apk/alpine/openssl@{v}?arch=x86_64")),
            None,
        )
    };
    let m = check(
        alpine("1.0.2p-r0"),
        Status::Matched,
        Some("CVE-2018-5407"),
        Some("1.0.2q-r0"),
    );
    assert_eq!(m.findings[0].severity, Some("medium"));
    assert!(
        m.findings[0]
            .reason
            .contains("introduced 0, fixed 1.0.2q-r0")
    );
    check(alpine("1.0.2q-r0"), Status::Clean, None, None);
    // PyPI: an ECOSYSTEM range and a listed version, the purl name normalised.
    let py = |v: &str| component("requests", v, Some(&format!("pkg:pypi/Requests@{v}")), None);
    check(
        py("2.30.0"),
        Status::Matched,
        Some("PYSEC-2023-74"),
        Some("2.31.0"),
    );
    check(py("2.31.0"), Status::Clean, None, None);
    // Go SEMVER, purl golang/namespace/name.
    let gin = |v: &str| {
        component(
            "gin",
            v,
            Some(&format!("pkg:golang/github.com/gin-gonic/gin@v{v}")),
            None,
        )
    };
    check(
        gin("1.5.0"),
        Status::Matched,
        Some("GO-2020-0001"),
        Some("1.6.0"),
    );
    check(gin("1.6.0"), Status::Clean, None, None);
    // Events listed out of order in the record (two branches, two fixes).
    let mixin = |v: &str| {
        component(
            "mixin-deep",
            v,
            Some(&format!("pkg:npm/mixin-deep@{v}")),
            None,
        )
    };
    check(
        mixin("1.3.1"),
        Status::Matched,
        Some("GHSA-fhjf-83wg-r2j9"),
        Some("1.3.2"),
    );
    check(mixin("1.3.2"), Status::Clean, None, None);
    check(
        mixin("2.0.0"),
        Status::Matched,
        Some("GHSA-fhjf-83wg-r2j9"),
        Some("2.0.1"),
    );
    // A withdrawn advisory matches nothing.
    let rails = component(
        "activesupport",
        "3.2.1",
        Some("pkg:gem/activesupport@3.2.1"),
        None,
    );
    check(rails, Status::Clean, None, None);
    // A firmware component with only a CPE, against a CSAF product's CPE 2.2 URI.
    let conv = |v: &str| {
        component(
            "cvrf-csaf-converter",
            v,
            None,
            Some(&format!(
                "cpe:2.3:a:csaf-tools:cvrf-csaf-converter:{v}:*:*:*:*:*:*:*"
            )),
        )
    };
    check(
        conv("1.0.0-rc1"),
        Status::Matched,
        Some("CVE-2022-27193"),
        Some("1.0.0-rc2"),
    );
    check(conv("1.0.0-rc2"), Status::Clean, None, None);
    // No purl and no CPE: unidentifiable, not dropped and not clean.
    check(
        component("blob", "1", None, None),
        Status::Unidentifiable,
        None,
        None,
    );
    // No version: reported, but as undetermined.
    let m = index.component(&component("requests", "", Some("pkg:pypi/requests"), None));
    assert_eq!(m.status, Status::Matched);
    assert!(!m.findings[0].certain);
    assert!(
        m.findings[0].reason.contains("no version"),
        "{:?}",
        m.findings[0]
    );
}

#[test]
fn re_import_updates_and_kev_flags() {
    let osv = common::fixture("osv/linter-testdata");
    let bytes = std::fs::read(osv.join("CVE-2018-5407.json")).unwrap();
    let mut db = Database::new();
    let first = db.import(advisory::parse(&bytes).unwrap());
    assert_eq!((first.added, first.updated, first.unchanged), (1, 0, 0));
    let again = db.import(advisory::parse(&bytes).unwrap());
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 1));
    // The same record, now withdrawn: it replaces the old one and stops matching.
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["modified"] = "2026-12-01T00:00:00Z".into();
    doc["withdrawn"] = "2026-12-01T00:00:00Z".into();
    let n = db.import(advisory::parse(doc.to_string().as_bytes()).unwrap());
    assert_eq!((n.updated, n.withdrawn), (1, 1));
    let c = component(
        "openssl",
        "1.0.2p-r0",
        Some("pkg:apk/alpine/openssl@1.0.2p-r0"),
        None,
    );
    assert_eq!(db.index().component(&c).status, Status::Clean);
    // KEV: the flag follows the CVE, whichever name the advisory has.
    let mut db = Database::new();
    db.import(advisory::parse(&bytes).unwrap());
    let kev = serde_json::json!({
        "catalogVersion": "2026.12.01", "count": 1,
        "vulnerabilities": [{"cveID": "CVE-2018-5407", "dateAdded": "2026-11-30",
                             "dueDate": "2026-12-21", "knownRansomwareCampaignUse": "Unknown"}]
    });
    assert_eq!(
        db.import(advisory::parse(kev.to_string().as_bytes()).unwrap())
            .kev,
        1
    );
    let m = db.index().component(&c);
    let f = &m.findings[0];
    assert_eq!(f.known_exploited.as_ref().unwrap().date_added, "2026-11-30");
    let bad = serde_json::json!({"catalogVersion": "x", "vulnerabilities": [{"cveID": "nope"}]});
    let e = advisory::parse(bad.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("KEV entry 0"), "{e}");
}

#[test]
fn bad_advisories_are_refused_by_name() {
    let e = advisory::parse(b"{").unwrap_err().to_string();
    assert!(e.contains("not JSON"), "{e}");
    let e = advisory::parse(b"{\"hello\": 1}").unwrap_err().to_string();
    assert!(e.contains("neither OSV"), "{e}");
    let osv = serde_json::json!({
        "id": "OSV-2026-1", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "a"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "not.a.version"}]}]}]
    });
    let e = advisory::parse(osv.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OSV-2026-1") && e.contains("not.a.version"),
        "{e}"
    );
}

#[test]
fn the_release_index_finds_what_matching_finds() {
    let osv = common::fixture("osv/linter-testdata");
    let csaf = common::fixture("csaf/2.0/examples");
    let Document::Advisories(mut alpine) = read(&osv.join("CVE-2018-5407.json")) else {
        panic!("an advisory")
    };
    let Document::Advisories(mut conv) = read(&csaf.join("bsi-2022-0001.json")) else {
        panic!("an advisory")
    };
    let (alpine, conv) = (alpine.remove(0), conv.remove(0));
    let openssl = |v: &str| {
        component(
            "openssl",
            v,
            Some(&format!("pkg:apk/alpine/openssl@{v}")),
            // Both identifiers on one key each: counted once per advisory.
            Some(&format!("cpe:2.3:a:openssl:openssl:{v}:*:*:*:*:*:*:*")),
        )
    };
    let converter = |v: &str| {
        component(
            "cvrf-csaf-converter",
            v,
            None,
            Some(&format!(
                "cpe:2.3:a:csaf-tools:cvrf-csaf-converter:{v}:*:*:*:*:*:*:*"
            )),
        )
    };
    let releases = [
        ("1.0", vec![openssl("1.0.2p-r0"), converter("1.0.0-rc1")]),
        ("2.0", vec![openssl("1.0.2q-r0"), converter("1.0.0-rc2")]),
        (
            "3.0",
            vec![component("requests", "", Some("pkg:pypi/requests"), None)],
        ),
    ];
    let mut inventory = medsec_risk::fleet::Inventory::new();
    for (name, comps) in &releases {
        inventory.add_release(name, comps);
    }
    assert_eq!(inventory.releases(), 3);
    for advisory in [&alpine, &conv] {
        let hits = inventory.affected(advisory);
        let mut db = Database::new();
        db.import(Document::Advisories(vec![(*advisory).clone()]));
        let index = db.index();
        let mut expected = Vec::new();
        for (name, comps) in &releases {
            for (i, c) in comps.iter().enumerate() {
                if !index.component(c).findings.is_empty() {
                    expected.push(((*name).to_owned(), i));
                }
            }
        }
        let got: Vec<_> = hits
            .iter()
            .map(|h| (h.release.clone(), h.component))
            .collect();
        assert_eq!(got, expected, "{}", advisory.id);
        assert_eq!(
            got.len(),
            1,
            "{}: only release 1.0 is affected",
            advisory.id
        );
        assert!(hits.iter().all(|h| h.certain));
    }
    let mut withdrawn = alpine.clone();
    withdrawn.withdrawn = true;
    assert!(inventory.affected(&withdrawn).is_empty());
}
