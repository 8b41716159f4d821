//! Property tests of the parsers of outside input.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

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
}
