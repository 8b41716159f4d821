//! `medsec defender evaluate` on the real WUSTL-EHMS-2020 data in `testdata/`.

use std::path::PathBuf;

use medsec_testkit::*;
use serde_json::Value;

/// The WUSTL-EHMS-2020 flows in `testdata/` (part of the repository; provenance and licence in
/// `testdata/MANIFEST.tsv`).
fn wustl() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wustl-ehms-2020/wustl-ehms-2020_with_attacks_categories.csv");
    assert!(
        path.exists(),
        "{} is missing: testdata/ is part of the repository",
        path.display()
    );
    path
}

#[test]
fn the_evaluation_uses_no_leaking_feature_and_identity_binding_catches_every_spoof() {
    let data = wustl();
    let split = tempfile::tempdir().unwrap();
    let out = ok(medsec()
        .args(["defender", "evaluate", "--seeds", "2", "--json", "--data"])
        .arg(&data)
        .arg("--export-split")
        .arg(split.path()));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"], 16318);
    // The strongest single feature stays far below the leak line (0.99).
    let strongest: f64 = v["strongest_single_feature"]
        .as_str()
        .unwrap()
        .rsplit_once(' ')
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(strongest < 0.9, "{v}");
    let model = |name: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    let mean = |a: &Value| {
        let a = a.as_array().unwrap();
        a.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / a.len() as f64
    };
    // Identity binding: every spoofed flow, no false positive.
    let binding = model("identity binding (MAC)");
    assert_eq!(binding["recall_at_fpr"]["Spoofing"], 1.0, "{binding}");
    assert_eq!(binding["fpr"], 0.0, "{binding}");
    // The learned detectors: above chance, data alteration caught within the 1 % budget.
    for name in ["robust baseline", "isolation forest"] {
        let m = model(name);
        assert!(mean(&m["roc_auc"]) > 0.7, "{m}");
        assert!(
            m["recall_at_fpr"]["Data Alteration"].as_f64().unwrap() > 0.95,
            "{m}"
        );
        assert!(m["fpr"].as_f64().unwrap() <= 0.01, "{m}");
    }
    // The split is written for the scikit-learn comparison: 70 % of the 14,272 normal rows.
    let train = std::fs::read_to_string(split.path().join("seed-1.train")).unwrap();
    assert_eq!(train.lines().count(), 9990);
}

#[test]
fn bad_data_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("flows.csv");
    std::fs::write(&csv, "Dur,Label\n0.1,0\n").unwrap();
    let err = fails(medsec().args(["defender", "evaluate", "--data"]).arg(&csv));
    assert!(err.contains("no column \"SrcBytes\""), "{err}");
    let err = fails(
        medsec()
            .args(["defender", "evaluate", "--seeds", "0", "--data"])
            .arg(&csv),
    );
    assert!(err.contains("--seeds must be at least 1"), "{err}");
}
