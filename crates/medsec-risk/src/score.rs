//! A finding's risk on a device, 0 to 100, with the explanation shown.
//!
//! CVSS rates a vulnerability in the abstract; a hospital has to rank findings on devices
//! that treat patients. The score starts from the finding's CVSS score (×10) and multiplies
//! in, one factor at a time, what the issue names: known exploitation, the device's network
//! reach, its clinical impact class, compensating controls, and whether a fix exists. Every
//! factor applied is listed with its weight and why, so the number can be argued with. The
//! weights are medsec's defaults, stated in docs/risk.md; they order findings, they are not a
//! probability.

use serde::{Deserialize, Serialize};

use crate::matching::Finding;
use crate::vex::Status;

/// What the device does for patients (FDA and IEC 80001 practice: harm follows function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clinical {
    /// Delivers therapy (infusion and insulin pumps, ventilators): a compromise can injure.
    Therapy,
    /// Informs diagnosis (imaging, laboratory): a compromise can mislead care.
    Diagnostic,
    /// Watches patients (monitors, telemetry): a compromise can hide a deterioration.
    Monitoring,
    /// No clinical function (gateways, kiosks).
    NonClinical,
}

/// How far the network reaches the device, per policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exposure {
    /// Reachable from the internet.
    Internet,
    /// Reachable from the hospital network.
    Network,
    /// Reachable only from its own segment.
    Adjacent,
    /// Reachable only locally (no network service).
    Local,
}

/// Compensating controls in force on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Controls {
    /// The device is quarantined (its network access is cut to what it needs).
    pub quarantined: bool,
    /// The device is on a segment that filters traffic to it.
    pub segmented: bool,
}

/// The device's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Its clinical impact class.
    pub clinical: Clinical,
    /// Its network reach.
    pub exposure: Exposure,
    /// Controls in force.
    pub controls: Controls,
    /// The vendor no longer ships updates for the device's model: no fix will reach it.
    pub unsupported: bool,
}

/// One factor of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// What it is.
    pub name: &'static str,
    /// The multiplier.
    pub weight: f64,
    /// Why it applies.
    pub why: String,
}

/// A finding's risk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    /// 0 to 100: the product of the factors, capped.
    pub score: f64,
    /// The product before the cap, which orders findings that both reach 100.
    pub raw: f64,
    /// `critical` (≥ 90), `high` (≥ 70), `medium` (≥ 40), `low`, or `none` (VEX).
    pub priority: &'static str,
    /// Each factor, in order; the score is their product, capped at 100.
    pub factors: Vec<Factor>,
}

/// CVSS assumed for a finding with no score: the middle of the scale, said so.
const UNSCORED: f64 = 5.0;

fn priority(score: f64) -> &'static str {
    if score >= 90.0 {
        "critical"
    } else if score >= 70.0 {
        "high"
    } else if score >= 40.0 {
        "medium"
    } else if score > 0.0 {
        "low"
    } else {
        "none"
    }
}

/// The attack vector of a CVSS vector (`N`, `A`, `L`, `P`).
fn attack_vector(vector: &str) -> Option<char> {
    vector
        .split('/')
        .find_map(|m| m.strip_prefix("AV:"))
        .and_then(|v| v.chars().next())
}

/// Scores one finding on a device in `context`.
pub fn score(finding: &Finding, context: &Context) -> Risk {
    let mut factors = Vec::new();
    if let Some(v) = &finding.vex
        && matches!(v.status, Status::NotAffected | Status::Fixed)
    {
        factors.push(Factor {
            name: "VEX",
            weight: 0.0,
            why: format!(
                "{} says {}{}",
                v.product,
                v.status.name(),
                v.justification
                    .as_ref()
                    .map_or(String::new(), |j| format!(" ({j})"))
            ),
        });
        return Risk {
            score: 0.0,
            raw: 0.0,
            priority: "none",
            factors,
        };
    }
    let base = finding.score.unwrap_or(UNSCORED);
    factors.push(Factor {
        name: "CVSS",
        weight: base * 10.0,
        why: match (&finding.cvss, finding.score) {
            (Some(vector), Some(s)) => format!("{s:.1} from {vector}"),
            _ => format!("no CVSS score; {UNSCORED:.1} assumed"),
        },
    });
    if let Some(k) = &finding.known_exploited {
        factors.push(Factor {
            name: "known exploitation",
            weight: 1.3,
            why: format!("in CISA KEV since {}", k.date_added),
        });
    } else if finding.exploited_per_advisory {
        factors.push(Factor {
            name: "known exploitation",
            weight: 1.3,
            why: "the advisory reports exploitation".to_owned(),
        });
    }
    let av = finding.cvss.as_deref().and_then(attack_vector);
    let (weight, why) = match (context.exposure, av) {
        (Exposure::Internet, _) => (1.2, "reachable from the internet".to_owned()),
        (Exposure::Network, _) => (1.0, "reachable from the hospital network".to_owned()),
        (Exposure::Adjacent, Some('N')) => (
            0.8,
            "reachable only from its segment; the attack needs the network".to_owned(),
        ),
        (Exposure::Local, Some('N' | 'A')) => (
            0.5,
            "no network reach; the attack needs the network".to_owned(),
        ),
        (e, _) => (
            1.0,
            format!("{e:?} reach; the attack vector does not need more"),
        ),
    };
    factors.push(Factor {
        name: "exposure",
        weight,
        why,
    });
    let (weight, why) = match context.clinical {
        Clinical::Therapy => (1.2, "delivers therapy: a compromise can injure"),
        Clinical::Diagnostic => (1.1, "informs diagnosis: a compromise can mislead care"),
        Clinical::Monitoring => (
            1.0,
            "monitors patients: a compromise can hide a deterioration",
        ),
        Clinical::NonClinical => (0.7, "no clinical function"),
    };
    factors.push(Factor {
        name: "clinical impact",
        weight,
        why: why.to_owned(),
    });
    if context.controls.quarantined {
        factors.push(Factor {
            name: "compensating control",
            weight: 0.5,
            why: "quarantined".to_owned(),
        });
    } else if context.controls.segmented && context.exposure != Exposure::Local {
        factors.push(Factor {
            name: "compensating control",
            weight: 0.8,
            why: "on a filtering segment".to_owned(),
        });
    }
    factors.push(match &finding.fixed_in {
        _ if context.unsupported => Factor {
            name: "fix availability",
            weight: 1.2,
            why: "the vendor no longer ships updates for this model: no fix will reach it; \
                  replace it or isolate it"
                .to_owned(),
        },
        Some(v) => Factor {
            name: "fix availability",
            weight: 1.0,
            why: format!("fixed in {v}"),
        },
        None => Factor {
            name: "fix availability",
            weight: 1.1,
            why: "no fixed version known: only controls can lower it".to_owned(),
        },
    });
    let raw: f64 = factors.iter().map(|f| f.weight).product();
    let raw = (raw * 10.0).round() / 10.0;
    let score = raw.min(100.0);
    Risk {
        score,
        raw,
        priority: priority(score),
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisory::{KevEntry, Source};

    fn finding(cvss: Option<&str>, kev: bool, fixed: Option<&str>) -> Finding {
        let scores = cvss.map(|v| crate::cvss::score(v).unwrap());
        Finding {
            advisory: "CVE-2026-1".into(),
            aliases: Vec::new(),
            source: Source::Osv,
            document: None,
            summary: String::new(),
            via: "pkg:generic/x".into(),
            matched_by: crate::matching::MatchedBy::Purl,
            confidence: "high",
            compared: None,
            certain: true,
            reason: String::new(),
            fixed_in: fixed.map(str::to_owned),
            cvss: cvss.map(str::to_owned),
            score: scores.as_ref().map(crate::cvss::Scores::effective),
            severity: scores.as_ref().map(|s| s.severity),
            known_exploited: kev.then(|| KevEntry {
                cve: "CVE-2026-1".into(),
                date_added: "2026-11-30".into(),
                due_date: None,
                ransomware: None,
            }),
            exploit_status: None,
            exploited_per_advisory: false,
            vex: None,
            risk: None,
        }
    }

    const NET: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"; // 7.5

    fn ctx(clinical: Clinical, exposure: Exposure, controls: Controls) -> Context {
        Context {
            clinical,
            exposure,
            controls,
            unsupported: false,
        }
    }

    #[test]
    fn a_model_without_vendor_support_scores_as_unfixable_even_with_a_fix_upstream() {
        let mut c = ctx(Clinical::Therapy, Exposure::Network, Controls::default());
        let supported = score(&finding(Some(NET), false, Some("2.0")), &c);
        c.unsupported = true;
        let r = score(&finding(Some(NET), false, Some("2.0")), &c);
        assert!(r.score > supported.score, "{r:?} vs {supported:?}");
        let f = r.factors.last().unwrap();
        assert_eq!(f.weight, 1.2);
        assert!(f.why.contains("no longer ships updates"), "{}", f.why);
    }

    #[test]
    fn each_factor_moves_the_score_and_is_explained() {
        let plain = ctx(Clinical::Monitoring, Exposure::Network, Controls::default());
        let r = score(&finding(Some(NET), false, Some("2.0")), &plain);
        assert_eq!((r.score, r.priority), (75.0, "high"));
        assert_eq!(r.factors.len(), 4, "{r:?}");
        let kev = score(&finding(Some(NET), true, Some("2.0")), &plain);
        assert_eq!(kev.score, 97.5);
        assert!(
            kev.factors
                .iter()
                .any(|f| f.why.contains("KEV since 2026-11-30"))
        );
        let pump = ctx(Clinical::Therapy, Exposure::Network, Controls::default());
        assert_eq!(
            score(&finding(Some(NET), false, Some("2.0")), &pump).score,
            90.0
        );
        // Capped at 100; the raw product still orders.
        let worst = ctx(Clinical::Therapy, Exposure::Internet, Controls::default());
        let r = score(&finding(Some(NET), true, None), &worst);
        assert_eq!((r.score, r.priority), (100.0, "critical"));
        assert!(r.raw > 100.0);
        // Controls and reach lower it; a network attack on a device with no network reach
        // counts for half.
        let quarantined = Controls {
            quarantined: true,
            segmented: true,
        };
        let q = score(
            &finding(Some(NET), false, Some("2.0")),
            &ctx(Clinical::Therapy, Exposure::Network, quarantined),
        );
        assert_eq!(q.score, 45.0);
        let local = score(
            &finding(Some(NET), false, Some("2.0")),
            &ctx(Clinical::Monitoring, Exposure::Local, Controls::default()),
        );
        assert_eq!(local.score, 37.5);
        let physical = "CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
        let p = score(
            &finding(Some(physical), false, Some("2.0")),
            &ctx(Clinical::Monitoring, Exposure::Local, Controls::default()),
        );
        assert_eq!(p.score, 68.0, "{p:?}");
        // No score: the middle is assumed, and said; no fix raises it.
        let none = score(&finding(None, false, None), &plain);
        assert_eq!(none.score, 55.0);
        assert!(none.factors[0].why.contains("no CVSS score"));
    }

    #[test]
    fn vex_not_affected_or_fixed_scores_nothing() {
        let plain = ctx(Clinical::Therapy, Exposure::Internet, Controls::default());
        for (status, zero) in [
            (Status::NotAffected, true),
            (Status::Fixed, true),
            (Status::Affected, false),
            (Status::UnderInvestigation, false),
        ] {
            let mut f = finding(Some(NET), true, None);
            f.vex = Some(crate::vex::Statement {
                vulnerability: "CVE-2026-1".into(),
                product: "pkg:generic/pump@1".into(),
                component: None,
                status,
                justification: None,
                impact_statement: None,
                action_statement: None,
                cyclonedx: None,
            });
            let r = score(&f, &plain);
            assert_eq!(r.score == 0.0, zero, "{status:?}: {r:?}");
        }
    }
}
