//! Property tests of the parsers of outside input.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use medsec_risk::version::Scheme;
use medsec_risk::vex::{self, Format, Meta, Statement, Status};
use proptest::prelude::*;

/// A CVSS v3.1 vector from the base and temporal metric grid.
fn v31() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    let pick = |name: &'static str, values: &'static [&'static str]| {
        proptest::sample::select(values).prop_map(move |v| (name, v))
    };
    (
        (
            pick("AV", &["N", "A", "L", "P"]),
            pick("AC", &["L", "H"]),
            pick("PR", &["N", "L", "H"]),
            pick("UI", &["N", "R"]),
            pick("S", &["U", "C"]),
        ),
        (
            pick("C", &["N", "L", "H"]),
            pick("I", &["N", "L", "H"]),
            pick("A", &["N", "L", "H"]),
            pick("E", &["X", "U", "P", "F", "H"]),
            pick("RL", &["X", "O", "T", "W", "U"]),
            pick("RC", &["X", "U", "R", "C"]),
        ),
    )
        .prop_map(|((a, b, c, d, e), (f, g, h, i, j, k))| vec![a, b, c, d, e, f, g, h, i, j, k])
}

fn render(metrics: &[(&str, &str)]) -> String {
    let parts: Vec<String> = metrics.iter().map(|(m, v)| format!("{m}:{v}")).collect();
    format!("CVSS:3.1/{}", parts.join("/"))
}

proptest! {
    #[test]
    fn v31_scores_are_in_range_and_temporal_never_exceeds_base(m in v31()) {
        let s = medsec_risk::cvss::score(&render(&m)).unwrap();
        prop_assert!((0.0..=10.0).contains(&s.base));
        prop_assert!(s.temporal.unwrap() <= s.base);
    }

    #[test]
    fn a_vector_missing_any_base_metric_is_refused(m in v31(), drop in 0usize..8) {
        let mut m = m;
        let gone = m.remove(drop).0;
        let e = medsec_risk::cvss::score(&render(&m)).unwrap_err().to_string();
        prop_assert!(e.contains("missing") && e.contains(gone), "{}", e);
    }

    #[test]
    fn any_text_as_a_vector_or_an_sbom_never_panics(s in ".{0,200}") {
        let _ = medsec_risk::cvss::score(&s);
        let _ = medsec_risk::sbom::Sbom::parse(s.as_bytes());
    }

    #[test]
    fn cyclonedx_components_with_any_names_read_back(names in proptest::collection::vec("[a-z0-9._-]{1,20}", 0..20)) {
        let components: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| serde_json::json!({"type": "library", "name": n, "bom-ref": format!("c{i}")}))
            .collect();
        let doc = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components});
        let sbom = medsec_risk::sbom::Sbom::parse(doc.to_string().as_bytes()).unwrap();
        let got: Vec<&str> = sbom.components.iter().map(|c| c.name.as_str()).collect();
        prop_assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
        let c = sbom.completeness();
        prop_assert!((0.0..=100.0).contains(&c.score));
    }

    #[test]
    fn every_scheme_orders_totally(a in "[0-9a-z~^.+:-]{1,12}", b in "[0-9a-z~^.+:-]{1,12}", c in "[0-9a-z~^.+:-]{1,12}") {
        use std::cmp::Ordering;
        for s in [Scheme::Generic, Scheme::Deb, Scheme::Rpm] {
            let (Ok(x), Ok(y), Ok(z)) = (s.parse(&a), s.parse(&b), s.parse(&c)) else { continue };
            prop_assert_eq!(x.compare(&x), Some(Ordering::Equal));
            // Generic versions that begin differently (a word and a number, two words) do not
            // compare, both ways alike; everything else is a total order.
            let Some(xy) = x.compare(&y) else {
                prop_assert!(s == Scheme::Generic && y.compare(&x).is_none(), "{:?} {} {}", s, a, b);
                continue;
            };
            prop_assert_eq!(Some(xy.reverse()), y.compare(&x), "{:?} {} {}", s, a, b);
            let (Some(yz), Some(xz)) = (y.compare(&z), x.compare(&z)) else { continue };
            // rpm compares releases only when both sides have one (rpmevrCmp), so "1-2" = "1" =
            // "1-1" while "1-2" > "1-1": rpm's order is transitive only among versions that all
            // carry a release or all lack one. That is rpm's rule, kept on purpose.
            let release = |t: &str| t.rsplit_once('-').is_some_and(|(_, r)| !r.is_empty());
            let mixed = s == Scheme::Rpm
                && !(release(&a) == release(&b) && release(&b) == release(&c));
            if !mixed && xy.is_le() && yz.is_le() {
                prop_assert!(xz.is_le(), "{:?}: {} <= {} <= {} but not {} <= {}", s, a, b, c, a, c);
            }
        }
    }

    #[test]
    fn any_text_as_a_range_advisory_or_vex_never_panics(s in ".{0,200}") {
        let _ = medsec_risk::range::Vers::parse(&s);
        let _ = medsec_risk::range::Vers::parse(&format!("vers:generic/{s}"));
        let _ = medsec_risk::advisory::parse(s.as_bytes());
        let _ = medsec_risk::advisory::read(s.as_bytes(), false);
        let _ = medsec_risk::vex::parse(s.as_bytes());
        let _ = medsec_risk::forms::read(Some(&s), medsec_risk::version::Scheme::Generic);
        let _ = medsec_risk::names::Names::builtin().extend(&s);
        let _ = medsec_risk::names::normalise(&s);
    }

    #[test]
    fn any_text_as_a_model_profile_or_vendor_record_never_panics(s in ".{0,200}") {
        let today = medsec_risk::inventory::parse_date("2026-12-03").unwrap();
        if let Ok(p) = medsec_risk::inventory::ModelProfile::parse(s.as_bytes()) {
            let _ = medsec_risk::inventory::support(&p, None, today);
        }
        if let Ok(v) = medsec_risk::inventory::Vendor::parse(s.as_bytes()) {
            let _ = v.missing_documents(&s);
        }
        let _ = medsec_risk::inventory::parse_date(&s);
    }

    #[test]
    fn a_stored_profile_reads_back_the_same(
        days in 0i64..40_000,
        status in prop_oneof![Just("supported"), Just("security-only"), Just("end-of-support")],
        note in "[a-zA-Z0-9 .,]{0,40}",
    ) {
        let end = medsec_risk::inventory::format_date(days);
        let body = serde_json::json!({
            "vendor": "Acme", "clinical": "diagnostic", "exposure": "adjacent",
            "support": {"status": status, "end_of_support": end},
            "mds2": {"AUTH": {"answer": "yes", "note": note}},
        });
        let p = medsec_risk::inventory::ModelProfile::parse(body.to_string().as_bytes()).unwrap();
        let again = medsec_risk::inventory::ModelProfile::parse(serde_json::to_string(&p).unwrap().as_bytes()).unwrap();
        prop_assert_eq!(&p, &again);
        prop_assert_eq!(medsec_risk::inventory::parse_date(&end), Some(days));
        let s = medsec_risk::inventory::support(&p, None, days + 1);
        prop_assert!(s.replace, "the day after the end of support: {:?}", s);
    }

    #[test]
    fn vex_statements_survive_every_format(list in proptest::collection::vec(statement(), 1..8)) {
        let meta = Meta {
            author: "Acme PSIRT".into(),
            timestamp: "2026-12-03T00:00:00Z".into(),
            id: "ACME-1".into(),
            namespace: "https://acme.example".into(),
        };
        let mut want = list.clone();
        want.sort();
        want.dedup_by(|a, b| (&a.vulnerability, &a.product, &a.component) == (&b.vulnerability, &b.product, &b.component));
        for format in [Format::CycloneDx, Format::OpenVex, Format::Csaf] {
            let text = vex::export(&want, format, &meta).unwrap();
            let mut back = vex::parse(text.as_bytes()).unwrap().1;
            for s in &mut back {
                // Statements made here have no CycloneDX analysis; CycloneDX gives one.
                s.cyclonedx = None;
            }
            back.sort();
            prop_assert_eq!(&back, &want, "{:?}\n{}", format, text);
        }
    }
}

/// A VEX statement with any status, a justification where it may have one, and free text.
fn statement() -> impl Strategy<Value = Statement> {
    let id = prop_oneof![
        "[a-z]{1,8}".prop_map(|n| format!("pkg:generic/{n}@1.{}", n.len())),
        "[a-z]{1,8}".prop_map(|n| format!("cpe:2.3:a:{n}:{n}:2.0:*:*:*:*:*:*:*")),
        "[A-Za-z0-9_#|<>-]{1,8}( [A-Za-z0-9_#|<>.-]{1,8})?",
    ];
    (
        "CVE-20[0-9]{2}-[0-9]{4,6}",
        id.clone(),
        proptest::option::of(id),
        0usize..4,
        proptest::sample::select(&vex::JUSTIFICATIONS[..]),
        proptest::option::of("[ -~]{1,40}"),
        proptest::option::of("[ -~]{1,40}"),
    )
        .prop_map(
            |(vulnerability, product, component, status, j, impact, action)| {
                let status = [
                    Status::NotAffected,
                    Status::Affected,
                    Status::Fixed,
                    Status::UnderInvestigation,
                ][status];
                Statement {
                    vulnerability,
                    product,
                    component,
                    status,
                    justification: (status == Status::NotAffected).then(|| j.to_owned()),
                    impact_statement: impact
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty()),
                    action_statement: action
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty()),
                    cyclonedx: None,
                }
            },
        )
}
