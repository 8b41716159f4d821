//! The evidence report (`medsec report compliance`): each control of the catalogue
//! (`catalogue/controls.json`, listed in docs/compliance.md) with the evidence medsec holds for
//! it, assessed from facts the caller gathers from live data ([`Evidence`]).
//!
//! No IO and no clock: the report is a function of the evidence, `as_of_ms` included, and is
//! written the same bytes for the same evidence (sorted maps and lists, fixed number formats),
//! so two runs over the same data can be compared with `cmp`.
//!
//! Each evidence kind is assessed once into facts, warnings (shortcomings) and gaps (what a
//! regulator or auditor would refuse); a control is `gap` if any of its kinds has a gap,
//! `partial` if any has a warning, else `evidenced`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::inventory::SupportState;

mod assess;
mod html;

pub use assess::rfc3339;
use assess::{
    access, audit_log, certificates, incidents, sbom, support, updates, vendors, vulnerabilities,
};

/// The control catalogue as bundled.
pub const CATALOGUE: &str = include_str!("../../catalogue/controls.json");

/// Certificates expiring within this many days are warned about.
pub const CERT_WARN_DAYS: i64 = 7;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// What each evidence kind is.
    pub evidence: BTreeMap<String, String>,
    /// The controls, in report order.
    pub controls: Vec<Control>,
}

/// One control.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// medsec's id for it.
    pub id: String,
    /// The regulation, standard or guidance.
    pub framework: String,
    /// Its clause.
    pub clause: String,
    /// Its title.
    pub title: String,
    /// What it requires, in short.
    pub requirement: String,
    /// Whom it binds: `device` (the manufacturer's device), `organisation` (the hospital or
    /// manufacturer running the fleet) or `fleet-software` (medsec itself as a product: the
    /// CRA exempts devices under the MDR, not separately sold fleet software).
    pub scope: String,
    /// The evidence kinds that bear on it.
    pub evidence: Vec<String>,
}

/// Reads the bundled catalogue.
pub fn catalogue() -> Result<Catalogue, serde_json::Error> {
    serde_json::from_str(CATALOGUE)
}

/// What a device is, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceFacts {
    /// Its id.
    pub id: String,
    /// Model.
    pub model: String,
    /// `registered`, `enrolled` or `revoked`.
    pub state: String,
    /// Hardware id.
    pub hardware_id: String,
    /// The version its last signed report named (empty: none).
    pub version: String,
    /// Whether it is quarantined.
    pub quarantined: bool,
    /// Signed version reports held.
    pub signed_reports: usize,
    /// Its newest certificate's expiry, if it has one.
    pub certificate_not_after_ms: Option<i64>,
    /// Its model's support (none: no profile).
    pub support: Option<SupportState>,
}

/// One finding of a release, reduced.
#[derive(Debug, Clone, Serialize)]
pub struct FindingFacts {
    /// Advisory id.
    pub advisory: String,
    /// The component (purl or name).
    pub component: String,
    /// CVSS severity name, or `unscored`.
    pub severity: String,
    /// Still open (no VEX resolves it).
    pub open: bool,
    /// The match is certain (false: undetermined).
    pub certain: bool,
    /// Known exploited: in CISA KEV, or the advisory reports exploitation
    /// ([`crate::matching::Finding::exploited`]).
    pub known_exploited: bool,
    /// The VEX status applied, if any.
    pub vex: Option<String>,
}

/// One release with its SBOM.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseFacts {
    /// The signed target.
    pub target: String,
    /// Hardware id.
    pub hardware_id: String,
    /// Version.
    pub version: String,
    /// The SBOM's SHA-256, as signed into the target.
    pub sbom_sha256: String,
    /// CycloneDX or SPDX.
    pub format: String,
    /// Components.
    pub components: usize,
    /// Completeness score, 0–100.
    pub completeness: f64,
    /// Components unidentifiable (no purl or CPE).
    pub unidentifiable: usize,
    /// Its findings.
    pub findings: Vec<FindingFacts>,
}

/// One update campaign.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignFacts {
    /// Its id.
    pub id: String,
    /// The target it installs.
    pub target: String,
    /// The version.
    pub version: String,
    /// Its status name.
    pub status: String,
    /// When it was created.
    pub created_at_ms: i64,
    /// Devices in it.
    pub devices: usize,
    /// Per succeeded device, the time from creation to its signed success report.
    pub latencies_ms: Vec<i64>,
    /// Devices failed.
    pub failed: usize,
}

/// The audit log's verification.
#[derive(Debug, Clone, Serialize)]
pub struct AuditFacts {
    /// Entries.
    pub entries: u64,
    /// Signed tree heads.
    pub heads: u64,
    /// Root hash over all entries.
    pub root_hash: String,
    /// What did not verify (empty: all did).
    pub findings: Vec<String>,
}

/// A reporting clock.
#[derive(Debug, Clone, Serialize)]
pub struct ClockFacts {
    /// What must be sent.
    pub report: String,
    /// Under which rule.
    pub basis: String,
    /// Due (none: not computable yet).
    pub due_at_ms: Option<i64>,
}

/// An incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentFacts {
    /// Its id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Severity.
    pub severity: String,
    /// Phase (`closed` ones are done).
    pub phase: String,
    /// Opened.
    pub opened_at_ms: i64,
    /// Time from opening to the first quarantine, if any.
    pub contained_after_ms: Option<i64>,
    /// Its reporting clocks.
    pub clocks: Vec<ClockFacts>,
}

/// A vendor.
#[derive(Debug, Clone, Serialize)]
pub struct VendorFacts {
    /// Its name.
    pub vendor: String,
    /// Whether the registry has a record.
    pub has_record: bool,
    /// Whether a security contact is recorded.
    pub security_contact: bool,
    /// Per model, the expected documents not received.
    pub missing_documents: BTreeMap<String, Vec<String>>,
    /// Contracted days to a critical fix.
    pub critical_patch_days: Option<u32>,
    /// Contracted days to notice of a vulnerability.
    pub vulnerability_notice_days: Option<u32>,
}

/// Authorisation.
#[derive(Debug, Clone, Serialize)]
pub struct AccessFacts {
    /// Cedar policy ids in force.
    pub policies: Vec<String>,
    /// Entries in the audit log (every decision and refusal is one).
    pub audit_entries: u64,
}

/// Everything the report is computed from.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The moment the report is about.
    pub as_of_ms: i64,
    /// Devices, by id.
    pub devices: Vec<DeviceFacts>,
    /// Releases with SBOMs, by target and hardware id.
    pub releases: Vec<ReleaseFacts>,
    /// Campaigns, by id.
    pub campaigns: Vec<CampaignFacts>,
    /// The audit log.
    pub audit: AuditFacts,
    /// Incidents, by id.
    pub incidents: Vec<IncidentFacts>,
    /// Vendors, by name.
    pub vendors: Vec<VendorFacts>,
    /// Authorisation.
    pub access: AccessFacts,
}

/// One evidence kind, assessed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Assessment {
    /// What the evidence shows.
    pub facts: Vec<String>,
    /// Shortcomings.
    pub warnings: Vec<String>,
    /// What is missing or failing.
    pub gaps: Vec<String>,
}

/// A control with its status.
#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    /// The control.
    #[serde(flatten)]
    pub control: Control,
    /// `evidenced`, `partial` or `gap`.
    pub status: &'static str,
}

/// Counts by severity, for charts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeverityCounts {
    /// Critical.
    pub critical: usize,
    /// High.
    pub high: usize,
    /// Medium.
    pub medium: usize,
    /// Low.
    pub low: usize,
    /// No CVSS.
    pub unscored: usize,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Format version of this JSON.
    pub report_version: u32,
    /// `YYYY-MM-DDTHH:MM:SSZ` of `as_of_ms`.
    pub as_of: String,
    /// Totals by status.
    pub summary: BTreeMap<&'static str, usize>,
    /// Each control.
    pub controls: Vec<ControlResult>,
    /// Each evidence kind, assessed, by kind.
    pub assessments: BTreeMap<String, Assessment>,
    /// What each evidence kind is.
    pub evidence_kinds: BTreeMap<String, String>,
    /// Open findings by severity per release target, for the chart.
    pub open_by_release: BTreeMap<String, SeverityCounts>,
    /// The evidence itself.
    pub evidence: Evidence,
}

impl Report {
    /// Assesses `evidence` against `catalogue`.
    pub fn build(catalogue: &Catalogue, evidence: Evidence) -> Self {
        type Assess = fn(&Evidence) -> Assessment;
        let assess: [(&str, Assess); 9] = [
            ("sbom", sbom),
            ("vulnerabilities", vulnerabilities),
            ("updates", updates),
            ("certificates", certificates),
            ("audit_log", audit_log),
            ("incidents", incidents),
            ("support", support),
            ("vendors", vendors),
            ("access", access),
        ];
        let assessments: BTreeMap<String, Assessment> = assess
            .iter()
            .map(|(k, f)| ((*k).to_owned(), f(&evidence)))
            .collect();
        let controls: Vec<ControlResult> = catalogue
            .controls
            .iter()
            .map(|c| {
                let of = |pick: fn(&Assessment) -> bool| {
                    c.evidence
                        .iter()
                        .any(|k| assessments.get(k).is_none_or(pick))
                };
                let status = if of(|a| !a.gaps.is_empty()) {
                    "gap"
                } else if of(|a| !a.warnings.is_empty()) {
                    "partial"
                } else {
                    "evidenced"
                };
                ControlResult {
                    control: c.clone(),
                    status,
                }
            })
            .collect();
        let mut summary = BTreeMap::from([("evidenced", 0), ("partial", 0), ("gap", 0)]);
        for c in &controls {
            *summary.entry(c.status).or_default() += 1;
        }
        let mut open_by_release = BTreeMap::new();
        for r in &evidence.releases {
            let mut s = SeverityCounts::default();
            for f in r.findings.iter().filter(|f| f.open) {
                match f.severity.as_str() {
                    "critical" => s.critical += 1,
                    "high" => s.high += 1,
                    "medium" => s.medium += 1,
                    "low" => s.low += 1,
                    _ => s.unscored += 1,
                }
            }
            open_by_release.insert(r.target.clone(), s);
        }
        Self {
            report_version: 1,
            as_of: rfc3339(evidence.as_of_ms),
            summary,
            controls,
            assessments,
            evidence_kinds: catalogue.evidence.clone(),
            open_by_release,
            evidence,
        }
    }

    /// The report as JSON (pretty, sorted, ending in a newline).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::assess::quantile;
    use super::*;

    fn evidence() -> Evidence {
        let device = |id: &str, version: &str, not_after: Option<i64>| DeviceFacts {
            id: id.into(),
            model: "ip200".into(),
            state: "enrolled".into(),
            hardware_id: "ip200-hw".into(),
            version: version.into(),
            quarantined: false,
            signed_reports: usize::from(!version.is_empty()),
            certificate_not_after_ms: not_after,
            support: None,
        };
        let day = 86_400_000;
        Evidence {
            as_of_ms: 1_796_256_000_000,
            devices: vec![
                device("a", "1.2.0", Some(1_796_256_000_000 + 400 * day)),
                device("b", "1.1.0", Some(1_796_256_000_000 + 5 * day)),
                device("c", "", None),
            ],
            releases: vec![ReleaseFacts {
                target: "ip200-1.2.0.img".into(),
                hardware_id: "ip200-hw".into(),
                version: "1.2.0".into(),
                sbom_sha256: "ab".into(),
                format: "CycloneDX".into(),
                components: 3,
                completeness: 100.0,
                unidentifiable: 0,
                findings: vec![FindingFacts {
                    advisory: "CVE-2026-1".into(),
                    component: "pkg:generic/openssl@3.0.1".into(),
                    severity: "critical".into(),
                    open: true,
                    certain: true,
                    known_exploited: false,
                    vex: None,
                }],
            }],
            campaigns: Vec::new(),
            audit: AuditFacts {
                entries: 10,
                heads: 2,
                root_hash: "00".into(),
                findings: Vec::new(),
            },
            incidents: Vec::new(),
            vendors: Vec::new(),
            access: AccessFacts {
                policies: vec!["operator-admin".into()],
                audit_entries: 10,
            },
        }
    }

    #[test]
    fn the_catalogue_reads_and_names_only_known_evidence() {
        let c = catalogue().unwrap();
        assert!(c.controls.len() >= 30);
        let mut ids = std::collections::BTreeSet::new();
        for control in &c.controls {
            assert!(ids.insert(&control.id), "duplicate {}", control.id);
            assert!(!control.evidence.is_empty(), "{}", control.id);
            for k in &control.evidence {
                assert!(c.evidence.contains_key(k), "{} names {k}", control.id);
            }
            assert!(
                ["device", "organisation", "fleet-software"].contains(&control.scope.as_str()),
                "{}",
                control.id
            );
        }
    }

    /// The report's vulnerability gaps name exactly the findings the release gate blocks at
    /// its default threshold (`crate::gate`): the two can never disagree on a release.
    #[test]
    fn the_vulnerability_gaps_are_what_the_release_gate_blocks() {
        let severities = ["critical", "high", "medium", "low", "unscored"];
        let mut findings = Vec::new();
        for (i, severity) in severities.iter().enumerate() {
            for open in [true, false] {
                for certain in [true, false] {
                    for known_exploited in [true, false] {
                        findings.push(FindingFacts {
                            advisory: format!(
                                "CVE-2026-{i}{}{}{}",
                                u8::from(open),
                                u8::from(certain),
                                u8::from(known_exploited)
                            ),
                            component: "pkg:generic/x@1".into(),
                            severity: (*severity).into(),
                            open,
                            certain,
                            known_exploited,
                            vex: None,
                        });
                    }
                }
            }
        }
        let mut e = evidence();
        e.releases[0].findings = findings.clone();
        let gaps = assess::vulnerabilities(&e).gaps.join("\n");
        for f in &findings {
            let blocked = crate::gate::blocks(
                f.open,
                Some(&f.severity),
                f.known_exploited,
                crate::gate::Threshold::DEFAULT,
            )
            .is_some();
            // The name followed by a space: CVE-2026-0111 must not match CVE-2026-01110.
            let named = gaps.contains(&format!("{} in", f.advisory));
            assert_eq!(named, blocked, "{f:?} in gaps {gaps}");
        }
        // A known exploited medium finding blocks: the gate and the report both say so.
        assert!(gaps.contains("CVE-2026-2111 in"), "{gaps}");
    }

    #[test]
    fn gaps_follow_from_the_evidence() {
        let c = catalogue().unwrap();
        let r = Report::build(&c, evidence());
        let status = |id: &str| {
            r.controls
                .iter()
                .find(|x| x.control.id == id)
                .map(|x| x.status)
                .unwrap()
        };
        // An open critical finding without VEX is a gap of §524B(b)(2) (vulnerabilities).
        assert_eq!(status("fda-524b-b2"), "gap");
        let v = &r.assessments["vulnerabilities"];
        assert!(
            v.gaps[0].contains("CVE-2026-1 in pkg:generic/openssl@3.0.1"),
            "{v:?}"
        );
        // Device b runs a release with no SBOM: an SBOM gap; device c never reported.
        assert!(r.assessments["sbom"].gaps[0].contains("1 device(s) run ip200-hw 1.1.0"));
        assert!(r.assessments["updates"].gaps[0].contains(": c"));
        // c has no certificate; b's expires in 5 days (inside the 7-day warning).
        assert!(r.assessments["certificates"].gaps[0].contains("c (no certificate)"));
        assert!(r.assessments["certificates"].warnings[0].contains("b ("));
        // The audit log verified: HIPAA audit controls are evidenced.
        assert_eq!(status("hipaa-b"), "evidenced");

        let mut e = evidence();
        e.audit.findings.push("entry 3 was altered".into());
        let r = Report::build(&c, e);
        assert!(
            r.controls
                .iter()
                .find(|x| x.control.id == "hipaa-b")
                .is_some_and(|x| x.status == "gap")
        );
    }

    #[test]
    fn the_same_evidence_gives_the_same_bytes_and_text_is_escaped() {
        let c = catalogue().unwrap();
        let mut e = evidence();
        e.releases[0].target = "<script>alert(1)</script>".into();
        let a = Report::build(&c, e.clone());
        let b = Report::build(&c, e);
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        let html = a.to_html();
        assert_eq!(html, b.to_html());
        assert!(!html.contains("<script>"), "unescaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<svg"));
    }

    #[test]
    fn quantiles_and_times() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(quantile(&[1, 2, 3, 4], 0.9), Some(4));
        assert_eq!(
            rfc3339(1_796_256_000_000 + 3_723_000),
            "2026-12-03T01:02:03Z"
        );
    }
}
