//! VEX in three formats: every official example reads, and every statement survives export
//! to each format and back (and a chain through all three) with its product, component,
//! status, justification, impact and action statements, and CycloneDX's own analysis where
//! it had one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::path::PathBuf;

use medsec_risk::vex::{self, Format, Meta, Statement};

fn examples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in [
        "cyclonedx/bom-examples/VEX",
        "openvex/vexctl",
        "csaf/2.0/examples/csaf_vex",
        "crossformat/vexctl-spdx-csaf-openvex",
    ] {
        let dir = common::fixture(sub);
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json")
                    && !p.ends_with("sbom.spdx.json")
                {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn meta() -> Meta {
    Meta {
        author: "Acme Medical PSIRT".into(),
        timestamp: "2026-12-03T00:00:00Z".into(),
        id: "ACME-VEX-2026-0001".into(),
        namespace: "https://psirt.acme.example".into(),
    }
}

/// What must survive; CycloneDX's analysis only where the statement had one (a statement
/// first written in CycloneDX gains one on the way, from its status).
fn same(original: &[Statement], back: &[Statement]) -> bool {
    let norm = |list: &[Statement], keep: bool| {
        let mut v: Vec<Statement> = list
            .iter()
            .cloned()
            .map(|mut s| {
                if !keep {
                    s.cyclonedx = None;
                }
                s
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let keep = original.iter().all(|s| s.cyclonedx.is_some());
    norm(original, keep) == norm(back, keep)
}

#[test]
fn every_example_reads_and_round_trips_through_every_format() {
    let files = examples();
    if files.is_empty() {
        return;
    }
    let mut statements = 0;
    let mut docs = 0;
    let mut refused = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let (_, mut list) =
            vex::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A document may say the same thing twice; an export says it once.
        list.sort();
        list.dedup();
        if list.is_empty() {
            continue;
        }
        docs += 1;
        statements += list.len();
        let mut keys: Vec<_> = list
            .iter()
            .map(|s| (&s.vulnerability, &s.product, &s.component))
            .collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        let duplicates = keys.len() < n;
        for format in [Format::CycloneDx, Format::OpenVex, Format::Csaf] {
            if duplicates && format == Format::Csaf {
                // Two statements about one product and vulnerability (CISA's case 8 has
                // them): CSAF cannot hold both, and the export says so.
                let e = vex::export(&list, format, &meta()).unwrap_err().to_string();
                assert!(e.contains("CSAF holds one per product"), "{e}");
                refused += 1;
                continue;
            }
            let text = vex::export(&list, format, &meta()).unwrap();
            let (read, back) = vex::parse(text.as_bytes())
                .unwrap_or_else(|e| panic!("{} as {format:?}: {e}\n{text}", path.display()));
            assert_eq!(read, format);
            assert!(
                same(&list, &back),
                "{} through {format:?} lost something:\n{list:#?}\n{back:#?}",
                path.display()
            );
            // Deterministic: the same statements give the same bytes.
            assert_eq!(text, vex::export(&list, format, &meta()).unwrap());
        }
        if duplicates {
            continue;
        }
        // A chain through all three and back to where it started.
        let mut current = list.clone();
        for format in [
            Format::OpenVex,
            Format::Csaf,
            Format::CycloneDx,
            Format::OpenVex,
        ] {
            let text = vex::export(&current, format, &meta()).unwrap();
            current = vex::parse(text.as_bytes()).unwrap().1;
        }
        assert!(
            same(&list, &current),
            "{}: the chain lost something",
            path.display()
        );
    }
    eprintln!("{docs} documents, {statements} statements; {refused} refused by CSAF");
    assert!(
        docs >= 20 && statements >= 60,
        "{docs} documents, {statements} statements"
    );
    assert!(
        refused <= 3,
        "{refused} documents could not be written as CSAF"
    );
}
