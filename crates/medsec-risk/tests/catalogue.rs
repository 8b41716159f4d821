//! docs/compliance.md lists exactly the controls of the bundled catalogue.

#![allow(clippy::unwrap_used, reason = "a test")]

use std::collections::BTreeSet;

#[test]
fn the_documented_catalogue_is_the_bundled_one() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/compliance.md"
    ))
    .unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` | "))
        .map(|(id, _)| id.to_owned())
        .collect();
    let catalogue = medsec_risk::compliance::catalogue().unwrap();
    let mut bundled: BTreeSet<String> = catalogue.controls.iter().map(|c| c.id.clone()).collect();
    bundled.extend(catalogue.evidence.keys().cloned());
    assert_eq!(
        documented, bundled,
        "docs/compliance.md and catalogue/controls.json differ"
    );
}
