//! The 70 official CycloneDX 1.6 test cases behave as labelled (`valid-*` read, `invalid-*`
//! refused), and the SPDX 2.3 example and the CycloneDX examples read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::path::PathBuf;

use medsec_risk::sbom::Sbom;

mod common;

#[test]
fn cyclonedx_test_cases_behave_as_labelled() {
    let dir = common::fixture("cyclonedx/spec/testcases-1.6");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut wrong = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let got = Sbom::parse(&std::fs::read(f).unwrap());
        match (name.starts_with("valid-"), &got) {
            (true, Ok(_)) | (false, Err(_)) => {}
            (true, Err(e)) => wrong.push(format!("{name}: refused: {e}")),
            (false, Ok(_)) => wrong.push(format!("{name}: read, but it is invalid")),
        }
    }
    assert_eq!(files.len(), 70);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_spdx_example_reads_with_its_packages_and_identifiers() {
    let f = common::fixture("spdx/2.3/examples/SPDXJSONExample-v2.3.spdx.json");
    let sbom = Sbom::parse(&std::fs::read(f).unwrap()).unwrap();
    assert_eq!(sbom.format, "SPDX 2.3");
    assert_eq!(sbom.components.len(), 4, "{:#?}", sbom.components);
    let glibc = sbom.components.iter().find(|c| c.name == "glibc").unwrap();
    assert_eq!(glibc.version.as_deref(), Some("2.11.1"));
    assert_eq!(
        glibc.supplier.as_deref(),
        Some("Jane Doe (jane.doe@example.com)")
    );
    assert!(
        glibc
            .cpe
            .as_deref()
            .unwrap()
            .starts_with("cpe:2.3:a:pivotal_software:spring")
    );
    assert!(glibc.hashes.iter().any(|h| h.starts_with("sha1:")));
    assert_eq!(
        glibc.end_of_support.as_deref(),
        Some("2014-01-29T18:30:22Z")
    );
    assert!(sbom.relationships > 0);
    let c = sbom.completeness();
    assert!(c.score > 0.0 && c.score < 100.0, "{c:?}");
}

#[test]
fn broken_documents_are_refused_by_name_and_place() {
    let e = Sbom::parse(b"{").unwrap_err().to_string();
    assert!(e.contains("not JSON"), "{e}");
    let e = Sbom::parse(br#"{"hello": 1}"#).unwrap_err().to_string();
    assert!(e.contains("neither CycloneDX"), "{e}");
    let e = Sbom::parse(br#"{"bomFormat": "CycloneDX", "specVersion": "1.2"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1.2"), "{e}");
    let e = Sbom::parse(
        br#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "x"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/components/0") && e.contains("type"), "{e}");
    let e = Sbom::parse(
        br#"{"bomFormat": "CycloneDX", "specVersion": "1.6",
             "components": [{"type": "library", "name": "a", "bom-ref": "a"}],
             "dependencies": [{"ref": "a", "dependsOn": ["b"]}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"b\" names no component"), "{e}");
}

#[test]
fn fda_fields_and_completeness_of_a_firmware_sbom() {
    // The firmware SBOM of the CLI test, as CycloneDX 1.5.
    let doc = include_str!("data/firmware-1.2.0.cdx.json")
        .replace(r#""specVersion": "1.6""#, r#""specVersion": "1.5""#);
    let sbom = Sbom::parse(doc.as_bytes()).unwrap();
    assert_eq!(sbom.format, "CycloneDX 1.5");
    assert_eq!(sbom.subject.as_deref(), Some("acme-ip200"));
    let openssl = &sbom.components[0];
    assert_eq!(
        openssl.level_of_support.as_deref(),
        Some("actively maintained")
    );
    assert_eq!(openssl.end_of_support.as_deref(), Some("2026-09-07"));
    assert!(sbom.components[1].identifiable());
    assert!(!sbom.components[2].identifiable());
    let c = sbom.completeness();
    let id = c
        .elements
        .iter()
        .find(|e| e.element.starts_with("unique"))
        .unwrap();
    assert_eq!(
        (id.have, id.of, id.missing.clone()),
        (2, 3, vec!["vendor-blob".to_owned()])
    );
    // 6 component elements at 1/3 (supplier, hash, support x2), 2/3 (version, identifier);
    // 4 document elements present: (4 x 1/3 + 2 x 2/3 + 4) / 10.
    assert!((c.score - 66.7).abs() < 0.05, "{c:?}");
}
