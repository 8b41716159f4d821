//! Matching on real advisories as CISA publishes them (CSAF 2.0, products named only by
//! vendor → product → version; `tests/data/cisa-icsa/PROVENANCE.md`) against SBOMs written
//! the way a hospital describes its devices: manufacturer, model name and firmware version,
//! no purl and no CPE. For each of twelve vendors: the affected version is matched by name,
//! the fixed one is clean, and a close but different product name is a possible match, never
//! clean. Then the other forms: a wildcard, a range in words, a model number, a file that
//! breaks CSAF test 6.1.31, and an unread file, which makes every clean component incomplete.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::path::Path;

use medsec_risk::advisory;
use medsec_risk::matching::{ComponentMatch, Database, MatchedBy, Status};
use medsec_risk::sbom::Sbom;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cisa-icsa")
}

/// Every fixture, read leniently as `medsec risk match` reads them.
fn database() -> Database {
    let mut db = Database::new();
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 15);
    for f in files {
        let read = advisory::read(&std::fs::read(&f).unwrap(), false)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        db.import_read(read);
    }
    db
}

/// A CycloneDX 1.6 SBOM as a hospital writes one: each device component with its
/// manufacturer, name and version only.
fn sbom(components: &[(&str, &str, &str)]) -> Sbom {
    let list: Vec<serde_json::Value> = components
        .iter()
        .enumerate()
        .map(|(i, (maker, name, version))| {
            serde_json::json!({
                "type": "device", "bom-ref": format!("c{i}"), "name": name,
                "version": version, "manufacturer": {"name": maker},
            })
        })
        .collect();
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"component": {"type": "device", "name": "Ward 4 inventory", "bom-ref": "ward"}},
        "components": list,
    });
    Sbom::parse(doc.to_string().as_bytes()).unwrap()
}

struct Case {
    /// The manufacturer as the hospital's inventory writes it.
    maker: &'static str,
    product: &'static str,
    affected: &'static str,
    fixed: &'static str,
    /// A close but different product name of the same vendor.
    near: &'static str,
    /// A CVE the affected version must be found with.
    cve: &'static str,
}

const CASES: [Case; 12] = [
    Case {
        maker: "Johnson Controls, Inc.",
        product: "Metasys ADS/ADX/OAS Servers",
        affected: "10.1.5",
        fixed: "11.0.3",
        near: "Metasys ADS/ADX Servers",
        cve: "CVE-2021-36204",
    },
    Case {
        maker: "Delta Electronics, Inc.",
        product: "CNCSoft",
        affected: "1.01.33",
        fixed: "1.01.34",
        near: "CNCSoft Builder",
        cve: "CVE-2022-4634",
    },
    Case {
        maker: "Weintek",
        product: "EasyBuilder Pro",
        affected: "6.07.01",
        fixed: "6.08.01.350",
        near: "EasyBuilder Pro Simulator",
        cve: "CVE-2023-0104",
    },
    Case {
        maker: "Siemens AG",
        product: "SCALANCE X200-4P IRT",
        affected: "V5.4.2",
        fixed: "V5.5.0",
        near: "SCALANCE X200-4P",
        cve: "CVE-2007-5846",
    },
    Case {
        maker: "Advantech Co., Ltd.",
        product: "WebAccess/SCADA",
        affected: "9.1.3",
        fixed: "9.1.4",
        near: "WebAccess SCADA Node",
        cve: "CVE-2023-32540",
    },
    Case {
        // An alias: Allen-Bradley is Rockwell Automation's brand (data/vendor-aliases.txt).
        maker: "Allen-Bradley",
        product: "FactoryTalk Transaction Manager",
        affected: "13.10",
        fixed: "14.0",
        near: "FactoryTalk Transaction Manager Client",
        cve: "CVE-2023-2778",
    },
    Case {
        maker: "Schneider Electric SE",
        product: "EcoStruxure Control Expert",
        affected: "15.2",
        fixed: "15.3",
        near: "EcoStruxure Control",
        cve: "CVE-2022-45788",
    },
    Case {
        maker: "CODESYS",
        product: "CODESYS Development System",
        affected: "3.5.19.10",
        fixed: "3.5.19.20",
        near: "CODESYS Development",
        cve: "CVE-2023-3669",
    },
    Case {
        maker: "OMRON Corporation",
        product: "Sysmac Studio",
        affected: "1.54",
        fixed: "1.55",
        near: "Sysmac Studio Team Edition",
        cve: "CVE-2018-1002205",
    },
    Case {
        // The advisory writes `<V4.0.19.0`; the inventory has no V.
        maker: "Fuji Electric Co., Ltd.",
        product: "Tellus Lite V-Simulator",
        affected: "4.0.18.0",
        fixed: "V4.0.19.0",
        near: "Tellus Lite",
        cve: "CVE-2023-35127",
    },
    Case {
        maker: "Emerson",
        product: "GC370XA",
        affected: "4.1.5",
        fixed: "4.1.6",
        near: "GC370X",
        cve: "CVE-2023-46687",
    },
    Case {
        maker: "Red Lion Controls",
        product: "Crimson",
        affected: "3.2.0053.18",
        fixed: "3.2.0063",
        near: "Crimson 3",
        cve: "CVE-2023-5719",
    },
];

fn matches(db: &Database, components: &[(&str, &str, &str)]) -> Vec<ComponentMatch> {
    db.index().components(&sbom(components).components)
}

#[test]
fn twelve_vendors_affected_fixed_and_close_names() {
    let db = database();
    let mut vendors = std::collections::BTreeSet::new();
    for c in &CASES {
        let got = matches(
            &db,
            &[
                (c.maker, c.product, c.affected),
                (c.maker, c.product, c.fixed),
                (c.maker, c.near, c.affected),
            ],
        );
        let [affected, fixed, near] = got.as_slice() else {
            panic!()
        };
        assert_eq!(
            affected.status,
            Status::Matched,
            "{}: {affected:#?}",
            c.product
        );
        let f = affected
            .findings
            .iter()
            .find(|f| f.advisory == c.cve)
            .unwrap_or_else(|| panic!("{}: no {}: {affected:#?}", c.product, c.cve));
        assert_eq!(f.matched_by, MatchedBy::Name, "{}", c.product);
        assert!(f.certain, "{}: {}", c.product, f.reason);
        let compared = f.compared.as_ref().unwrap();
        assert_eq!(compared.component, format!("{} / {}", c.maker, c.product));
        vendors.insert(
            compared
                .advisory
                .split(" / ")
                .next()
                .unwrap()
                .trim()
                .to_owned(),
        );
        assert_eq!(
            fixed.status,
            Status::Clean,
            "{} {}: {fixed:#?}",
            c.product,
            c.fixed
        );
        assert!(
            fixed
                .compared_on
                .iter()
                .any(|o| o.on == "name" && o.advisories > 0),
            "{}: {:?}",
            c.product,
            fixed.compared_on
        );
        assert_eq!(near.status, Status::Possible, "{}: {near:#?}", c.near);
        assert!(near.findings.iter().all(|f| f.possible() && !f.certain));
        let p = &near.findings[0];
        assert_eq!(p.confidence, "low");
        assert!(p.compared.as_ref().unwrap().similarity.unwrap() >= 0.5);
        assert!(
            p.reason.starts_with("possible match, for review"),
            "{}",
            p.reason
        );
    }
    assert_eq!(vendors.len(), 12, "{vendors:?}");
}

#[test]
fn a_wildcard_a_range_in_words_and_a_model_number() {
    let db = database();
    let got = matches(
        &db,
        &[
            // `V7.6x`
            ("PTC", "GE IGS", "7.61"),
            ("PTC", "GE IGS", "7.5"),
            // `All versions < CPCI85 V05.20`
            ("Siemens", "CP-8031 MASTER MODULE", "CPCI85 V05.10"),
            ("Siemens", "CP-8031 MASTER MODULE", "CPCI85 V05.20"),
            // The order number the advisory gives as a model number, in the inventory's name.
            ("Siemens", "Master module 6MF2805-0AA00", "CPCI85 V05.10"),
        ],
    );
    assert_eq!(got[0].status, Status::Matched);
    assert!(
        got[0].findings[0].reason.contains("7.61 is one of V7.6x"),
        "{}",
        got[0].findings[0].reason
    );
    assert_eq!(got[1].status, Status::Clean, "{:#?}", got[1]);
    assert_eq!(got[2].status, Status::Matched, "{:#?}", got[2]);
    assert_eq!(got[2].findings[0].advisory, "CVE-2023-42797");
    assert!(got[2].findings[0].certain, "{}", got[2].findings[0].reason);
    assert_eq!(got[3].status, Status::Clean, "{:#?}", got[3]);
    assert_eq!(got[4].findings[0].matched_by, MatchedBy::ModelNumber);
    assert!(got[4].findings[0].certain);
    assert_eq!(got[4].findings[0].confidence, "high");
}

#[test]
fn a_file_breaking_test_6_1_31_is_read_with_a_warning_and_strict_refuses_it() {
    let bytes = std::fs::read(dir().join("icsa-23-026-07.json")).unwrap();
    let read = advisory::read(&bytes, false).unwrap();
    assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
    assert!(
        read.warnings[0].contains("mandatory test 6.1.31")
            && read.warnings[0].contains("read anyway"),
        "{:?}",
        read.warnings
    );
    let e = advisory::read(&bytes, true).unwrap_err().to_string();
    assert!(e.contains("mandatory test 6.1.31"), "{e}");
    let db = database();
    let got = matches(&db, &[("Landis+Gyr", "E850", "3.1")]);
    // `E850 (ZMQ200)` without its parenthesised part: a name match of medium confidence;
    // `vers:all/*` read as every version.
    let f = &got[0].findings[0];
    assert_eq!(
        (f.advisory.as_str(), f.confidence, f.certain),
        ("CVE-2022-3083", "medium", true)
    );
    assert_eq!(f.reason, "every version is affected");
}

#[test]
fn an_unread_file_makes_the_run_incomplete_never_clean() {
    let mut db = database();
    let fixed = [("Omron", "Sysmac Studio", "1.55")];
    assert_eq!(matches(&db, &fixed)[0].status, Status::Clean);
    db.note_unread("broken.json", "not JSON");
    let got = matches(&db, &fixed);
    assert_eq!(got[0].status, Status::Incomplete);
    let s = medsec_risk::matching::summarise(&got, &db, 0);
    assert_eq!((s.clean, s.incomplete, s.unread_advisory_files), (0, 1, 1));
}

#[test]
fn siemens_healthineers_is_not_siemens_unless_configured() {
    let mut db = database();
    let c = [
        ("Siemens Healthineers", "SCALANCE X200-4P IRT", "V5.4.2"),
        ("Siemens Healthineers", "MAGNETOM Vida", "XA50"),
    ];
    let got = matches(&db, &c);
    // Not Siemens: at most a possible match for review, when the product is Siemens' own.
    assert_eq!(got[0].status, Status::Possible, "{:#?}", got[0]);
    let p = &got[0].findings[0];
    assert!(!p.certain && p.possible());
    assert!(
        p.reason.contains(
            "the supplier \"Siemens Healthineers\" is not the advisory's vendor \"Siemens\""
        ),
        "{}",
        p.reason
    );
    assert_eq!(got[1].status, Status::Clean, "{:#?}", got[1]);
    let mut names = medsec_risk::names::Names::builtin();
    names.extend("Siemens: Siemens Healthineers").unwrap();
    db.set_names(names);
    assert_eq!(matches(&db, &c)[0].status, Status::Matched);
}

#[test]
fn an_spdx_inventory_matches_by_supplier_and_name_too() {
    let db = database();
    let doc = serde_json::json!({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "ward-4", "documentNamespace": "https://hospital.example/spdx/ward-4",
        "creationInfo": {"created": "2026-12-07T00:00:00Z", "creators": ["Organization: Biomed"]},
        "packages": [
            {"SPDXID": "SPDXRef-weintek", "name": "EasyBuilder Pro", "versionInfo": "6.07.01",
             "supplier": "Organization: Weintek Labs., Inc.", "downloadLocation": "NOASSERTION"},
            {"SPDXID": "SPDXRef-emerson", "name": "GC370XA", "versionInfo": "4.1.6",
             "supplier": "Organization: Emerson", "downloadLocation": "NOASSERTION"}
        ]
    });
    let sbom = Sbom::parse(doc.to_string().as_bytes()).unwrap();
    let got = db.index().components(&sbom.components);
    // "Weintek Labs., Inc." is not "Weintek": no alias says so, so its product named as
    // Weintek's is a possible match for review; an alias line makes it a match.
    assert_eq!(got[0].status, Status::Possible, "{:#?}", got[0]);
    assert_eq!(
        got[0].findings[0].compared.as_ref().unwrap().similarity,
        Some(1.0)
    );
    assert_eq!(got[1].status, Status::Clean, "{:#?}", got[1]);
    let mut db = db;
    let mut names = medsec_risk::names::Names::builtin();
    names.extend("Weintek: Weintek Labs").unwrap();
    db.set_names(names);
    let got = db.index().components(&sbom.components);
    assert_eq!(got[0].status, Status::Matched, "{:#?}", got[0]);
    assert_eq!(got[0].findings[0].advisory, "CVE-2023-0104");
}

#[test]
fn an_advisory_reporting_exploitation_blocks_the_gate_whatever_its_cvss() {
    use medsec_risk::gate::{Block, Threshold};
    // Omron's advisory (CVSS medium), with the threat CSAF uses for exploitation added.
    let with = |details: &str| {
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir().join("icsa-23-262-03.json")).unwrap())
                .unwrap();
        doc["vulnerabilities"][0]["threats"] =
            serde_json::json!([{"category": "exploit_status", "details": details}]);
        let mut db = Database::new();
        db.import_read(advisory::read(doc.to_string().as_bytes(), false).unwrap());
        let m = db
            .index()
            .components(&sbom(&[("Omron", "Sysmac Studio", "1.54")]).components);
        m[0].findings[0].clone()
    };
    let f = with("CISA is aware of active exploitation of this vulnerability.");
    assert_eq!(f.severity, Some("medium"));
    assert!(f.exploited() && f.known_exploited.is_none());
    assert_eq!(f.blocks(Threshold::Critical), Some(Block::Exploited));
    let f = with("No known public exploitation specifically targets this vulnerability.");
    assert!(!f.exploited());
    assert_eq!(f.blocks(Threshold::Critical), None);
    assert_eq!(f.blocks(Threshold::Medium), Some(Block::Severity));
}
