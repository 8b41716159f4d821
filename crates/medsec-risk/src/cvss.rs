//! CVSS scores through the RustSec `cvss` crate: v2.0, v3.0 and v3.1 (base, temporal,
//! environmental) and v4.0 (one score, whichever of CVSS-B, -BT, -BE or -BTE the vector's
//! metrics make it).

use std::str::FromStr as _;

use serde::Serialize;

use crate::Error;

/// The scores of one vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// `2.0`, `3.0`, `3.1` or `4.0`.
    pub version: &'static str,
    /// The base score (for v4.0, the vector's one score).
    pub base: f64,
    /// v2 and v3: the temporal score.
    pub temporal: Option<f64>,
    /// v2 and v3: the environmental score.
    pub environmental: Option<f64>,
    /// The severity of the score that counts (v3: environmental; v4: its score; v2 has no
    /// official severity, so NVD's bands are used: low < 4, medium < 7, high).
    pub severity: &'static str,
}

impl Scores {
    /// The score that counts: environmental where there is one, else the base (v4: its one
    /// score, which already takes threat and environmental metrics in).
    pub fn effective(&self) -> f64 {
        self.environmental.unwrap_or(self.base)
    }
}

fn severity_name(s: cvss::Severity) -> &'static str {
    match s {
        cvss::Severity::None => "none",
        cvss::Severity::Low => "low",
        cvss::Severity::Medium => "medium",
        cvss::Severity::High => "high",
        cvss::Severity::Critical => "critical",
    }
}

/// The v3 temporal score, `Roundup(Base × E × RL × RC)` (v3.1 specification 7.2), which the
/// crate does not compute; from its base score and metric weights.
fn v3_temporal(v: &cvss::v3::Vector) -> f64 {
    use cvss::v3::Metric as _;
    let weight = v.e.map_or(1.0, |m| m.score())
        * v.rl.map_or(1.0, |m| m.score())
        * v.rc.map_or(1.0, |m| m.score());
    cvss::v3::Score::new(v.base_score().value() * weight)
        .roundup_for_version(v.minor_version)
        .value()
}

/// The base metrics each version requires.
fn required(vector: &str) -> &'static [&'static str] {
    if vector.starts_with("CVSS:4.0/") {
        &[
            "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
        ]
    } else if vector.starts_with("CVSS:3.") {
        &["AV", "AC", "PR", "UI", "S", "C", "I", "A"]
    } else {
        &["AV", "AC", "Au", "C", "I", "A"]
    }
}

/// Parses and scores `vector` (`CVSS:3.1/AV:N/…`, `CVSS:4.0/…`, or a bare v2 vector).
///
/// Every base metric must be given: the crate would score a vector missing some of them as
/// if they were the least severe, and a score of 0 for a half-written vector is a finding
/// silently lost.
pub fn score(vector: &str) -> Result<Scores, Error> {
    let vector = vector.trim();
    let given: Vec<&str> = vector
        .split('/')
        .filter_map(|part| part.split_once(':').map(|(k, _)| k))
        .collect();
    let missing: Vec<&str> = required(vector)
        .iter()
        .filter(|m| !given.contains(m))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(Error::Cvss {
            vector: vector.to_owned(),
            reason: format!("base metric(s) missing: {}", missing.join(", ")),
        });
    }
    let parsed = cvss::Cvss::from_str(vector).map_err(|e| Error::Cvss {
        vector: vector.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(match parsed {
        cvss::Cvss::CvssV20(v) => {
            let environmental = v.environmental_score().value();
            Scores {
                version: "2.0",
                base: v.score().value(),
                temporal: Some(v.temporal_score().value()),
                environmental: Some(environmental),
                severity: match environmental {
                    s if s >= 7.0 => "high",
                    s if s >= 4.0 => "medium",
                    _ => "low",
                },
            }
        }
        cvss::Cvss::CvssV30(v) | cvss::Cvss::CvssV31(v) => {
            let environmental = v.environmental_score();
            Scores {
                version: if vector.starts_with("CVSS:3.0/") {
                    "3.0"
                } else {
                    "3.1"
                },
                base: v.base_score().value(),
                temporal: Some(v3_temporal(&v)),
                environmental: Some(environmental.value()),
                severity: severity_name(environmental.severity()),
            }
        }
        cvss::Cvss::CvssV40(v) => {
            let severity = severity_name(v.score().severity());
            Scores {
                version: "4.0",
                base: v.score().value(),
                temporal: None,
                environmental: None,
                severity,
            }
        }
        _ => {
            return Err(Error::Cvss {
                vector: vector.to_owned(),
                reason: "unsupported CVSS version".into(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_score_as_first_org_calculators_say() {
        let s = score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N/E:P/RL:W/RC:C").unwrap();
        assert_eq!(
            (s.base, s.temporal, s.environmental),
            (6.1, Some(5.6), Some(5.6))
        );
        assert_eq!(s.severity, "medium");
        let s = score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!((s.version, s.base, s.severity), ("4.0", 9.3, "critical"));
        assert_eq!(s.effective(), 9.3);
    }

    #[test]
    fn a_bad_vector_is_named() {
        for bad in ["", "CVSS:3.1/AV:X", "CVSS:9.9/AV:N", "CVSS:3.1/AV:N/AC:L"] {
            let e = score(bad).unwrap_err().to_string();
            assert!(e.contains("CVSS vector"), "{bad}: {e}");
        }
    }
}
