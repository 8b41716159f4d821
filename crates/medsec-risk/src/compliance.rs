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

use crate::assets::SupportState;

/// The control catalogue as bundled.
pub const CATALOGUE: &str = include_str!("../catalogue/controls.json");

/// Certificates expiring within this many days are warned about.
pub const CERT_WARN_DAYS: i64 = 30;

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
    /// In CISA KEV.
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

/// Writes `ms` as an RFC 3339 UTC time to the second.
pub fn rfc3339(ms: i64) -> String {
    let day = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        crate::assets::format_date(day),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn hours(ms: i64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "durations are far below 2^52 ms"
    )]
    let h = ms as f64 / HOUR_MS as f64;
    format!("{h:.1} h")
}

/// The value at quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within the list"
    )]
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

fn sbom(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} release SBOMs, each with its SHA-256 signed into the release's TUF target",
        e.releases.len()
    ));
    for r in &e.releases {
        a.facts.push(format!(
            "{} ({} {}): {} SBOM {}, {} components, {:.0}% complete",
            r.target,
            r.hardware_id,
            r.version,
            r.format,
            r.sbom_sha256,
            r.components,
            r.completeness
        ));
        if r.completeness < 100.0 {
            a.warnings.push(format!(
                "{}: the SBOM is {:.0}% complete (supplier, version, identifier, hash, support level, end of support)",
                r.target, r.completeness
            ));
        }
        if r.unidentifiable > 0 {
            a.warnings.push(format!(
                "{}: {} components have neither purl nor CPE and cannot be matched to advisories",
                r.target, r.unidentifiable
            ));
        }
    }
    let mut unknown: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for d in &e.devices {
        if d.version.is_empty() {
            continue;
        }
        if !e
            .releases
            .iter()
            .any(|r| r.hardware_id == d.hardware_id && r.version == d.version)
        {
            *unknown.entry((&d.hardware_id, &d.version)).or_default() += 1;
        }
    }
    for ((hw, v), n) in unknown {
        a.gaps.push(format!(
            "{n} device(s) run {hw} {v}, for which no SBOM is held"
        ));
    }
    if e.releases.is_empty() {
        a.gaps.push("no release SBOM is held".into());
    }
    a
}

fn devices_on(e: &Evidence, r: &ReleaseFacts) -> usize {
    e.devices
        .iter()
        .filter(|d| d.hardware_id == r.hardware_id && d.version == r.version)
        .count()
}

fn vulnerabilities(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    for r in &e.releases {
        let open: Vec<&FindingFacts> = r.findings.iter().filter(|f| f.open).collect();
        let resolved = r.findings.len() - open.len();
        let running = devices_on(e, r);
        a.facts.push(format!(
            "{}: {} findings, {} open, {} resolved by VEX; {} device(s) run it",
            r.target,
            r.findings.len(),
            open.len(),
            resolved,
            running
        ));
        let names = |fs: &[&&FindingFacts]| {
            fs.iter()
                .map(|f| format!("{} in {}", f.advisory, f.component))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let critical: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| f.certain && f.severity == "critical")
            .collect();
        if !critical.is_empty() {
            a.gaps.push(format!(
                "{}: {} open critical finding(s) without VEX: {}",
                r.target,
                critical.len(),
                names(&critical)
            ));
        }
        let exploited: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| f.certain && f.known_exploited)
            .collect();
        if !exploited.is_empty() {
            a.gaps.push(format!(
                "{}: {} known exploited (CISA KEV) open finding(s): {}",
                r.target,
                exploited.len(),
                names(&exploited)
            ));
        }
        let undetermined: Vec<&&FindingFacts> = open.iter().filter(|f| !f.certain).collect();
        if !undetermined.is_empty() {
            a.warnings.push(format!(
                "{}: {} undetermined match(es) to assess: {}",
                r.target,
                undetermined.len(),
                names(&undetermined)
            ));
        }
        let high: Vec<&&FindingFacts> = open
            .iter()
            .filter(|f| f.certain && f.severity == "high")
            .collect();
        if !high.is_empty() {
            a.warnings.push(format!(
                "{}: {} open high finding(s): {}",
                r.target,
                high.len(),
                names(&high)
            ));
        }
    }
    if e.releases.is_empty() {
        a.gaps
            .push("no release SBOM is held, so no vulnerability status can be shown".into());
    }
    a
}

fn updates(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let reports: usize = e.devices.iter().map(|d| d.signed_reports).sum();
    let enrolled: Vec<&DeviceFacts> = e.devices.iter().filter(|d| d.state == "enrolled").collect();
    a.facts.push(format!(
        "{reports} signed version reports held from {} device(s); {} of {} enrolled devices have reported what they run",
        e.devices.iter().filter(|d| d.signed_reports > 0).count(),
        enrolled.iter().filter(|d| !d.version.is_empty()).count(),
        enrolled.len()
    ));
    let silent: Vec<&str> = enrolled
        .iter()
        .filter(|d| d.version.is_empty())
        .map(|d| d.id.as_str())
        .collect();
    if !silent.is_empty() {
        a.gaps.push(format!(
            "{} enrolled device(s) never sent a signed version report: {}",
            silent.len(),
            silent.join(", ")
        ));
    }
    for c in &e.campaigns {
        let mut l = c.latencies_ms.clone();
        l.sort_unstable();
        let stat = |q| quantile(&l, q).map_or_else(|| "n/a".to_owned(), hours);
        a.facts.push(format!(
            "campaign {} ({} {}): {}; {} device(s), {} succeeded, {} failed; patch latency median {}, p90 {}, max {}",
            c.id,
            c.target,
            c.version,
            c.status,
            c.devices,
            l.len(),
            c.failed,
            stat(0.5),
            stat(0.9),
            stat(1.0)
        ));
        if c.status == "halted" {
            a.warnings.push(format!(
                "campaign {} halted after failures: its release did not reach the fleet",
                c.id
            ));
        }
    }
    if e.campaigns.is_empty() {
        a.warnings.push("no update campaign has run".into());
    }
    a
}

fn certificates(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let enrolled: Vec<&DeviceFacts> = e.devices.iter().filter(|d| d.state == "enrolled").collect();
    let revoked = e.devices.iter().filter(|d| d.state == "revoked").count();
    a.facts.push(format!(
        "{} enrolled device(s) with fleet certificates (mutual TLS 1.3 on every connection); {revoked} revoked",
        enrolled.len()
    ));
    let mut expired = Vec::new();
    let mut soon = Vec::new();
    for d in &enrolled {
        match d.certificate_not_after_ms {
            None => expired.push(format!("{} (no certificate)", d.id)),
            Some(t) if t <= e.as_of_ms => {
                expired.push(format!("{} (expired {})", d.id, rfc3339(t)))
            }
            Some(t) if t - e.as_of_ms <= CERT_WARN_DAYS * DAY_MS => {
                soon.push(format!("{} ({})", d.id, rfc3339(t)));
            }
            Some(_) => {}
        }
    }
    if !expired.is_empty() {
        a.gaps.push(format!(
            "enrolled device(s) without a valid certificate: {}",
            expired.join(", ")
        ));
    }
    if !soon.is_empty() {
        a.warnings.push(format!(
            "certificate(s) expiring within {CERT_WARN_DAYS} days: {}",
            soon.join(", ")
        ));
    }
    a
}

fn audit_log(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} entries under {} signed tree heads; root {}",
        e.audit.entries, e.audit.heads, e.audit.root_hash
    ));
    if e.audit.findings.is_empty() && e.audit.entries > 0 {
        a.facts
            .push("every entry and every signed tree head verifies".into());
    }
    for f in &e.audit.findings {
        a.gaps.push(format!("the audit log does not verify: {f}"));
    }
    if e.audit.entries == 0 {
        a.gaps.push("the audit log is empty".into());
    }
    a
}

fn incidents(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let open = e.incidents.iter().filter(|i| i.phase != "closed").count();
    a.facts
        .push(format!("{} incident(s), {open} open", e.incidents.len()));
    for i in &e.incidents {
        a.facts.push(format!(
            "{} ({}, {}): {}; opened {}{}",
            i.id,
            i.severity,
            i.phase,
            i.title,
            rfc3339(i.opened_at_ms),
            i.contained_after_ms
                .map_or_else(String::new, |c| format!(", contained after {}", hours(c)))
        ));
        for c in &i.clocks {
            let Some(due) = c.due_at_ms else {
                a.facts.push(format!(
                    "{}: {} ({}) not yet due: its clock has not started",
                    i.id, c.report, c.basis
                ));
                continue;
            };
            if i.phase == "closed" {
                a.facts
                    .push(format!("{}: {} was due {}", i.id, c.report, rfc3339(due)));
            } else if due < e.as_of_ms {
                a.gaps.push(format!(
                    "{}: {} ({}) was due {} and the incident is still open",
                    i.id,
                    c.report,
                    c.basis,
                    rfc3339(due)
                ));
            } else {
                a.warnings.push(format!(
                    "{}: {} ({}) due {}, in {}",
                    i.id,
                    c.report,
                    c.basis,
                    rfc3339(due),
                    hours(due - e.as_of_ms)
                ));
            }
        }
    }
    a
}

fn support(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    let mut replace = Vec::new();
    let mut soon = Vec::new();
    let mut unknown = Vec::new();
    for d in &e.devices {
        match &d.support {
            None => unknown.push(format!("{} ({})", d.id, d.model)),
            Some(s) if s.replace => replace.push(format!("{} ({}: {})", d.id, d.model, s.why)),
            Some(s)
                if s.days_left
                    .is_some_and(|n| n <= crate::assets::ENDING_SOON_DAYS) =>
            {
                soon.push(format!("{} ({}: {})", d.id, d.model, s.why));
            }
            Some(_) => {}
        }
    }
    a.facts.push(format!(
        "{} device(s): {} supported, {} ending within {} days, {} to replace, {} with no model profile",
        e.devices.len(),
        e.devices.len() - replace.len() - soon.len() - unknown.len(),
        soon.len(),
        crate::assets::ENDING_SOON_DAYS,
        replace.len(),
        unknown.len()
    ));
    if !replace.is_empty() {
        a.gaps.push(format!(
            "the vendor no longer ships updates; escalate replacement: {}",
            replace.join("; ")
        ));
    }
    if !soon.is_empty() {
        a.warnings
            .push(format!("support ends soon: {}", soon.join("; ")));
    }
    if !unknown.is_empty() {
        a.warnings.push(format!(
            "support unknown (no model profile): {}",
            unknown.join(", ")
        ));
    }
    a
}

fn vendors(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    for v in &e.vendors {
        let terms = match (v.critical_patch_days, v.vulnerability_notice_days) {
            (None, None) => "no contract security terms".to_owned(),
            (p, n) => format!(
                "critical fix within {} days, vulnerability notice within {} days",
                p.map_or_else(|| "?".to_owned(), |d| d.to_string()),
                n.map_or_else(|| "?".to_owned(), |d| d.to_string())
            ),
        };
        a.facts.push(format!("{}: {terms}", v.vendor));
        if !v.has_record {
            a.gaps.push(format!(
                "{}: models name this vendor but the registry has no record of it",
                v.vendor
            ));
            continue;
        }
        if v.critical_patch_days.is_none() {
            a.warnings.push(format!(
                "{}: the contract sets no time to a critical fix",
                v.vendor
            ));
        }
        if !v.security_contact {
            a.warnings
                .push(format!("{}: no security contact recorded", v.vendor));
        }
        for (model, kinds) in &v.missing_documents {
            if !kinds.is_empty() {
                a.warnings.push(format!(
                    "{} {model}: not received: {}",
                    v.vendor,
                    kinds.join(", ")
                ));
            }
        }
    }
    if e.vendors.is_empty() {
        a.warnings.push("the vendor registry is empty".into());
    }
    a
}

fn access(e: &Evidence) -> Assessment {
    let mut a = Assessment::default();
    a.facts.push(format!(
        "{} Cedar policies decide every request (default deny): {}",
        e.access.policies.len(),
        e.access.policies.join(", ")
    ));
    a.facts.push(format!(
        "{} entries in the audit log record the decisions and refusals",
        e.access.audit_entries
    ));
    if e.access.policies.is_empty() {
        a.gaps.push("no policy is in force".into());
    }
    a
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

    /// The report as one self-contained HTML page: no script, no outside resource; charts
    /// are inline SVG.
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>medsec compliance evidence, {as_of}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <h1>Compliance evidence</h1>\n<p>As of {as_of}. Generated by medsec from live fleet data; \
             the same data gives the same bytes.</p>\n",
            as_of = esc(&self.as_of)
        );
        let _ = writeln!(
            h,
            "<p class=\"summary\"><span class=\"evidenced\">{} evidenced</span> \
             <span class=\"partial\">{} partial</span> <span class=\"gap\">{} gap</span></p>",
            self.summary.get("evidenced").unwrap_or(&0),
            self.summary.get("partial").unwrap_or(&0),
            self.summary.get("gap").unwrap_or(&0)
        );
        h.push_str("<h2>Controls</h2>\n<table>\n<tr><th>Framework</th><th>Clause</th><th>Control</th><th>Scope</th><th>Evidence</th><th>Status</th></tr>\n");
        for c in &self.controls {
            let kinds: Vec<String> = c
                .control
                .evidence
                .iter()
                .map(|k| format!("<a href=\"#{0}\">{0}</a>", esc(k)))
                .collect();
            let _ = writeln!(
                h,
                "<tr id=\"{id}\"><td>{fw}</td><td>{cl}</td><td><b>{t}</b><br><small>{req}</small></td>\
                 <td>{sc}</td><td>{ev}</td><td class=\"{st}\">{st}</td></tr>",
                id = esc(&c.control.id),
                fw = esc(&c.control.framework),
                cl = esc(&c.control.clause),
                t = esc(&c.control.title),
                req = esc(&c.control.requirement),
                sc = esc(&c.control.scope),
                ev = kinds.join(" "),
                st = c.status
            );
        }
        h.push_str("</table>\n");
        h.push_str("<h2>Open findings by release</h2>\n");
        h.push_str(&self.findings_chart());
        h.push_str("<h2>Patch latency by campaign</h2>\n");
        h.push_str(&self.latency_chart());
        h.push_str("<h2>Evidence</h2>\n");
        for (kind, a) in &self.assessments {
            let _ = writeln!(
                h,
                "<h3 id=\"{k}\">{k}</h3>\n<p><i>{what}</i></p>",
                k = esc(kind),
                what = esc(self.evidence_kinds.get(kind).map_or("", String::as_str))
            );
            for (class, list) in [
                ("gap", &a.gaps),
                ("partial", &a.warnings),
                ("fact", &a.facts),
            ] {
                if list.is_empty() {
                    continue;
                }
                let _ = writeln!(h, "<ul class=\"{class}\">");
                for line in list {
                    let _ = writeln!(h, "<li>{}</li>", esc(line));
                }
                h.push_str("</ul>\n");
            }
        }
        h.push_str("</body>\n</html>\n");
        h
    }

    fn findings_chart(&self) -> String {
        if self.open_by_release.is_empty() {
            return "<p>No release SBOM is held.</p>\n".into();
        }
        let max = self
            .open_by_release
            .values()
            .map(|s| s.critical + s.high + s.medium + s.low + s.unscored)
            .max()
            .unwrap_or(0)
            .max(1);
        let row = 22;
        let height = self.open_by_release.len() * row + 30;
        let mut s = format!(
            "<svg role=\"img\" aria-label=\"open findings by severity per release\" width=\"720\" height=\"{height}\" viewBox=\"0 0 720 {height}\">\n"
        );
        for (i, (target, c)) in self.open_by_release.iter().enumerate() {
            let y = i * row;
            let _ = writeln!(
                s,
                "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>",
                y + 15,
                esc(&truncate(target, 36))
            );
            let mut x = 260;
            for (n, colour) in [
                (c.critical, "#8b0000"),
                (c.high, "#d9480f"),
                (c.medium, "#f59f00"),
                (c.low, "#74b816"),
                (c.unscored, "#868e96"),
            ] {
                let w = n * 440 / max;
                if w > 0 {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"16\" fill=\"{colour}\"><title>{n}</title></rect>",
                        y + 3
                    );
                }
                x += w;
            }
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
                x + 4,
                y + 15,
                c.critical + c.high + c.medium + c.low + c.unscored
            );
        }
        let y = self.open_by_release.len() * row + 20;
        let mut x = 260;
        for (label, colour) in [
            ("critical", "#8b0000"),
            ("high", "#d9480f"),
            ("medium", "#f59f00"),
            ("low", "#74b816"),
            ("unscored", "#868e96"),
        ] {
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{y}\" font-size=\"11\">{label}</text>",
                y - 9,
                x + 13
            );
            x += 80;
        }
        s.push_str("</svg>\n");
        s
    }

    fn latency_chart(&self) -> String {
        let rows: Vec<(&str, Option<i64>, Option<i64>)> = self
            .evidence
            .campaigns
            .iter()
            .map(|c| {
                let mut l = c.latencies_ms.clone();
                l.sort_unstable();
                (c.id.as_str(), quantile(&l, 0.5), quantile(&l, 0.9))
            })
            .collect();
        if rows.is_empty() {
            return "<p>No update campaign has run.</p>\n".into();
        }
        let max = rows.iter().filter_map(|r| r.2).max().unwrap_or(0).max(1);
        let row = 22;
        let height = rows.len() * row + 10;
        let mut s = format!(
            "<svg role=\"img\" aria-label=\"median and p90 patch latency per campaign\" width=\"720\" height=\"{height}\" viewBox=\"0 0 720 {height}\">\n"
        );
        for (i, (id, median, p90)) in rows.iter().enumerate() {
            let y = i * row;
            let _ = writeln!(
                s,
                "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>",
                y + 15,
                esc(&truncate(id, 36))
            );
            let width = |v: i64| usize::try_from(v * 400 / max).unwrap_or(0);
            if let Some(p) = p90 {
                let _ = writeln!(
                    s,
                    "<rect x=\"260\" y=\"{}\" width=\"{}\" height=\"16\" fill=\"#a5d8ff\"><title>p90 {}</title></rect>",
                    y + 3,
                    width(*p),
                    hours(*p)
                );
            }
            if let Some(m) = median {
                let _ = writeln!(
                    s,
                    "<rect x=\"260\" y=\"{}\" width=\"{}\" height=\"16\" fill=\"#1971c2\"><title>median {}</title></rect>",
                    y + 3,
                    width(*m),
                    hours(*m)
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
                265 + p90.map_or(0, width),
                y + 15,
                median.map_or_else(
                    || "no device finished".to_owned(),
                    |m| format!(
                        "median {}, p90 {}",
                        hours(m),
                        p90.map_or_else(String::new, hours)
                    )
                )
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#212529}\n\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #dee2e6;padding:4px 6px;vertical-align:top;text-align:left}\n\
.evidenced{color:#2b8a3e;font-weight:bold}.partial{color:#e67700;font-weight:bold}.gap{color:#c92a2a;font-weight:bold}\n\
ul.gap li{color:#c92a2a}ul.partial li{color:#e67700}.summary span{margin-right:1.5em}\n";

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
                device("b", "1.1.0", Some(1_796_256_000_000 + 10 * day)),
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
        // c has no certificate; b's expires in 10 days.
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
