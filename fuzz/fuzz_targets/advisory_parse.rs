//! Any bytes as an advisory (OSV, CSAF 2.0, KEV; strict and lenient), a VEX document, a model
//! profile or a vendor record never panic the parsers, the matcher (by identifier and by
//! vendor and name) or the VEX export; any text as a version, a `vers` range, a CSAF version
//! text in any of its forms, a vendor name or a vendor alias table never panics, and every
//! scheme's order is antisymmetric on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medsec_risk::version::Scheme;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = medsec_risk::inventory::ModelProfile::parse(data) {
        let _ = medsec_risk::inventory::support(&p, None, 20_000);
    }
    if let Ok(v) = medsec_risk::inventory::Vendor::parse(data) {
        let _ = v.missing_documents("m");
    }
    let _ = medsec_risk::advisory::parse(data);
    if let Ok(read) = medsec_risk::advisory::read(data, false) {
        let mut db = medsec_risk::matching::Database::new();
        db.import_read(read);
        let component = medsec_risk::sbom::Component {
            reference: None,
            name: "x".into(),
            version: Some("1.0.0".into()),
            supplier: Some("x".into()),
            purl: Some("pkg:npm/x@1.0.0".into()),
            cpe: Some("cpe:2.3:a:x:x:1.0.0:*:*:*:*:*:*:*".into()),
            hashes: Vec::new(),
            licenses: Vec::new(),
            level_of_support: None,
            end_of_support: None,
        };
        let _ = db.index().component(&component);
    }
    if let Ok((_, statements)) = medsec_risk::vex::parse(data) {
        let meta = medsec_risk::vex::Meta {
            author: "fuzz".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            id: "FUZZ-1".into(),
            namespace: "https://example.invalid".into(),
        };
        for f in [
            medsec_risk::vex::Format::CycloneDx,
            medsec_risk::vex::Format::OpenVex,
            medsec_risk::vex::Format::Csaf,
        ] {
            let _ = medsec_risk::vex::export(&statements, f, &meta);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = medsec_risk::range::Vers::parse(text);
        let (vendor, rest) = text.split_once('\n').unwrap_or((text, ""));
        let mut names = medsec_risk::names::Names::builtin();
        let _ = names.extend(rest);
        let _ = names.vendor(vendor);
        let p = medsec_risk::names::Product::new(vendor);
        let q = medsec_risk::names::Product::new(rest);
        let s = medsec_risk::names::similarity(&p.base, &p.words(), &q.base, &q.words());
        assert!((0.0..=1.0).contains(&s));
        let read = medsec_risk::forms::read(Some(text), Scheme::Generic);
        if let medsec_risk::advisory::Constraint::Wildcard(w) = &read.constraint {
            let _ = w.contains(rest);
        }
        let (a, b) = text.split_once('\n').unwrap_or((text, "1.0"));
        for s in [Scheme::Semver, Scheme::Pypi, Scheme::Deb, Scheme::Rpm, Scheme::Generic] {
            if let (Ok(x), Ok(y)) = (s.parse(a), s.parse(b)) {
                assert_eq!(x.compare(&y).map(std::cmp::Ordering::reverse), y.compare(&x));
            }
        }
    }
});
