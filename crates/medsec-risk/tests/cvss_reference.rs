//! Every reference vector in `testdata/risk/cvss/redhat-vectors/` (Red Hat's cvss
//! library test data: 7,667 vectors of v2, v3.0, v3.1 and v4.0 with their expected scores)
//! scores as expected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

mod common;

/// `None` / `-0.0` / `5` / `5.0` as an expected score.
fn expected(s: &str) -> Option<f64> {
    let s = s.trim();
    (s != "None").then(|| s.parse::<f64>().unwrap().abs())
}

#[test]
fn all_reference_vectors_agree() {
    let dir = common::fixture("cvss/redhat-vectors");
    let (mut checked, mut wrong) = (0usize, Vec::new());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let Some((vector, scores)) = line.split_once(" - ") else {
                continue;
            };
            let s = medsec_risk::cvss::score(vector)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let scores = scores.trim().trim_start_matches('(').trim_end_matches(')');
            let want: Vec<Option<f64>> = scores
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(expected)
                .collect();
            let got: Vec<Option<f64>> = match want.len() {
                1 => vec![Some(s.base)],
                _ => vec![Some(s.base), s.temporal, s.environmental],
            };
            // v2 lines give None where a group is not in the vector: only the given compare.
            let agrees = want.iter().zip(&got).all(|(w, g)| w.is_none() || w == g);
            if !agrees {
                wrong.push(format!("{vector}: expected {want:?}, got {got:?}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 7_667, "every reference vector is read");
    assert!(
        wrong.is_empty(),
        "{} of {checked} disagree:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
