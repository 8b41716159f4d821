//! Matching SBOM components against advisories. Every component ends in one of three
//! classes: matched (with its findings), clean, or unidentifiable (no purl and no CPE, so
//! nothing can be said of it). None is dropped, and a match that cannot be decided (no
//! version, a version the scheme cannot read, a commit range) is reported as an
//! undetermined finding, never as clean.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::advisory::{Advisory, Affected, Constraint, Document, KevEntry, Source};
use crate::ident::{self, Ident};
use crate::sbom::Component;
use crate::version::Version;

/// Advisories and the KEV catalogue, kept up to date by re-import.
#[derive(Debug, Default)]
pub struct Database {
    /// By identity (`osv:ID` or `csaf:DOCUMENT:ID`).
    advisories: BTreeMap<String, Advisory>,
    kev: BTreeMap<String, KevEntry>,
}

/// What an import changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// New advisories.
    pub added: usize,
    /// Advisories replaced by a version with another `modified` date.
    pub updated: usize,
    /// Advisories read again unchanged.
    pub unchanged: usize,
    /// Advisories (new or updated) that are withdrawn.
    pub withdrawn: usize,
    /// KEV entries read.
    pub kev: usize,
}

fn identity(a: &Advisory) -> String {
    match (&a.source, &a.document) {
        (Source::Csaf, Some(d)) => format!("csaf:{d}:{}", a.id),
        _ => format!("osv:{}", a.id),
    }
}

impl Database {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what a document holds; an advisory already held is replaced when its
    /// `modified` date differs.
    pub fn import(&mut self, doc: Document) -> Imported {
        let mut n = Imported::default();
        match doc {
            Document::Kev(list) => {
                n.kev = list.len();
                for e in list {
                    self.kev.insert(e.cve.clone(), e);
                }
            }
            Document::Advisories(list) => {
                for a in list {
                    let key = identity(&a);
                    match self.advisories.get(&key) {
                        Some(old) if old.modified == a.modified => {
                            n.unchanged += 1;
                            continue;
                        }
                        Some(_) => n.updated += 1,
                        None => n.added += 1,
                    }
                    if a.withdrawn {
                        n.withdrawn += 1;
                    }
                    self.advisories.insert(key, a);
                }
            }
        }
        n
    }

    /// How many advisories are held.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisories.
    pub fn advisories(&self) -> impl Iterator<Item = &Advisory> {
        self.advisories.values()
    }

    /// The KEV entry for any of the advisory's names.
    pub fn known_exploited(&self, a: &Advisory) -> Option<&KevEntry> {
        a.names().find_map(|n| self.kev.get(n))
    }

    /// An index by package key, for matching many components.
    pub fn index(&self) -> Index<'_> {
        let mut by_key: HashMap<&str, Vec<(&Advisory, &Affected)>> = HashMap::new();
        let mut not_affected: HashMap<&str, Vec<&str>> = HashMap::new();
        for a in self.advisories.values().filter(|a| !a.withdrawn) {
            for aff in &a.affected {
                by_key.entry(aff.key.as_str()).or_default().push((a, aff));
            }
            for key in &a.not_affected {
                not_affected
                    .entry(key.as_str())
                    .or_default()
                    .push(a.id.as_str());
            }
        }
        Index {
            db: self,
            by_key,
            not_affected,
        }
    }
}

/// Advisories by package key.
pub struct Index<'a> {
    db: &'a Database,
    by_key: HashMap<&'a str, Vec<(&'a Advisory, &'a Affected)>>,
    /// Package key -> advisories whose vendor states it is not affected.
    not_affected: HashMap<&'a str, Vec<&'a str>>,
}

/// A component's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one advisory applies (or may: see [`Finding::certain`]).
    Matched,
    /// Identified, and no advisory applies.
    Clean,
    /// No purl or CPE: it cannot be matched.
    Unidentifiable,
}

/// One advisory that applies to one component.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The advisory's id.
    pub advisory: String,
    /// Its other names.
    pub aliases: Vec<String>,
    /// OSV or CSAF.
    pub source: Source,
    /// For CSAF, the document.
    pub document: Option<String>,
    /// One line.
    pub summary: String,
    /// The package key it matched on (a purl or CPE key).
    pub via: String,
    /// False when medsec could not decide and reports it to be safe.
    pub certain: bool,
    /// Why it applies (the range or listed version that holds the component's version), or
    /// why it could not be decided.
    pub reason: String,
    /// The lowest fixed version above the component's, when the advisory gives one.
    pub fixed_in: Option<String>,
    /// The highest-scoring CVSS vector, its score and severity.
    pub cvss: Option<String>,
    /// That vector's score (environmental where given).
    pub score: Option<f64>,
    /// That score's severity.
    pub severity: Option<&'static str>,
    /// CISA KEV entry, when the vulnerability is known to be exploited.
    pub known_exploited: Option<KevEntry>,
    /// CSAF's exploit status text.
    pub exploit_status: Option<String>,
    /// The VEX statement that applies to this product and component, if any.
    pub vex: Option<crate::vex::Statement>,
    /// Its risk on a device, once [`score_findings`] has been given the device's context.
    pub risk: Option<crate::score::Risk>,
}

impl Finding {
    /// Whether it still needs action: no VEX statement says not affected or fixed.
    pub fn open(&self) -> bool {
        !self.vex.as_ref().is_some_and(|v| {
            matches!(
                v.status,
                crate::vex::Status::NotAffected | crate::vex::Status::Fixed
            )
        })
    }
}

/// Scores every finding in a device's `context` (after [`apply_vex`]) and orders each
/// component's findings by risk, highest first.
pub fn score_findings(matches: &mut [ComponentMatch], context: &crate::score::Context) {
    for m in matches {
        for f in &mut m.findings {
            f.risk = Some(crate::score::score(f, context));
        }
        m.findings.sort_by(|a, b| {
            let s = |f: &Finding| f.risk.as_ref().map_or(0.0, |r| r.raw);
            s(b).partial_cmp(&s(a))
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.advisory.cmp(&b.advisory))
        });
    }
}

/// A device's risk: the risk of its worst open finding (a device is as exposed as its
/// weakest point), with the number of open findings to order devices that tie.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRisk {
    /// The worst open finding's score, 0 to 100 (0: no open finding).
    pub score: f64,
    /// Its score before the cap.
    pub raw: f64,
    /// Its priority (`none` without open findings).
    pub priority: &'static str,
    /// That finding's advisory.
    pub advisory: Option<String>,
    /// The component it is in.
    pub component: Option<String>,
    /// Open findings.
    pub open: usize,
}

/// The device risk of scored matches ([`score_findings`] first).
pub fn device_risk(matches: &[ComponentMatch]) -> DeviceRisk {
    let mut out = DeviceRisk {
        score: 0.0,
        raw: 0.0,
        priority: "none",
        advisory: None,
        component: None,
        open: 0,
    };
    for m in matches {
        for f in m.findings.iter().filter(|f| f.open()) {
            out.open += 1;
            let Some(r) = &f.risk else { continue };
            if r.raw > out.raw || out.advisory.is_none() {
                out.score = r.score;
                out.raw = r.raw;
                out.priority = r.priority;
                out.advisory = Some(f.advisory.clone());
                out.component = Some(m.component.clone());
            }
        }
    }
    out
}

/// Attaches to each finding the VEX statement about it: same vulnerability (by the
/// advisory's id or any alias), same product (the SBOM's subject, `product_ids`, at
/// `product_version`), and the same component or the product as a whole. A statement about
/// the component wins over one about the whole product; among equals, the later one.
pub fn apply_vex(
    matches: &mut [ComponentMatch],
    statements: &[crate::vex::Statement],
    product_ids: &[String],
    product_version: Option<&str>,
) {
    let relevant: Vec<&crate::vex::Statement> = statements
        .iter()
        .filter(|s| s.about_product(product_ids, product_version))
        .collect();
    for m in matches {
        let ids: Vec<&str> = [&m.purl, &m.cpe, &m.reference]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        for f in &mut m.findings {
            let best = relevant
                .iter()
                .filter(|s| {
                    (s.vulnerability == f.advisory || f.aliases.contains(&s.vulnerability))
                        && s.about_component(&ids)
                })
                .max_by_key(|s| s.component.is_some());
            // max_by_key keeps the last of equals: the later statement.
            f.vex = best.map(|s| (*s).clone());
        }
    }
}

/// A component and its class.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentMatch {
    /// The component's name.
    pub component: String,
    /// Its version.
    pub version: Option<String>,
    /// Its bom-ref or SPDXID.
    pub reference: Option<String>,
    /// Its purl.
    pub purl: Option<String>,
    /// Its CPE.
    pub cpe: Option<String>,
    /// Matched, clean or unidentifiable.
    pub status: Status,
    /// The advisories that apply.
    pub findings: Vec<Finding>,
    /// Advisories whose vendor states this package is not affected (CSAF
    /// `known_not_affected`).
    pub vendor_not_affected: Vec<String>,
}

/// How one affected entry judges one version.
pub(crate) enum Verdict {
    Affected(String),
    Undetermined(String),
    NotAffected,
}

/// Judges one version against one affected entry; also the lowest fix above it.
pub(crate) fn judge(aff: &Affected, version: Option<&str>) -> (Verdict, Option<String>) {
    let Some(text) = version else {
        return (
            Verdict::Undetermined("the component has no version".into()),
            None,
        );
    };
    // The version in the package's own scheme; a range in another scheme reads it in its own
    // (`parse_in`), so failing here decides nothing yet.
    let own = aff.scheme.parse(text);
    let same = |x: &str| {
        x == text
            || own.as_ref().is_ok_and(|v| {
                aff.scheme
                    .parse(x)
                    .ok()
                    .and_then(|x| x.compare(v))
                    .is_some_and(Ordering::is_eq)
            })
    };
    let fixed_in = own.as_ref().ok().and_then(|v| lowest_fix(aff, text, v));
    if aff.versions.iter().any(|x| same(x)) {
        return (
            Verdict::Affected(format!("{text} is listed as affected")),
            fixed_in,
        );
    }
    let mut undetermined = None;
    if let Err(e) = &own
        && !aff.versions.is_empty()
    {
        // A listed version cannot be compared with one the scheme cannot read.
        note(&mut undetermined, e.to_string());
    }
    // A range's versions may be in another scheme than the package's (an OSV `SEMVER` range
    // of any ecosystem, a `vers:generic` range on a purl): the version is read in the range's
    // own scheme, and one it cannot read there is undetermined, never silently clean.
    let undecidable = |scheme: crate::version::Scheme, e: crate::Error| {
        format!(
            "{text} cannot be compared in the range's {} scheme: {e}",
            scheme.name()
        )
    };
    for c in &aff.constraints {
        match c {
            Constraint::Events(r) => match parse_in(r.scheme(), text, aff.scheme, &own) {
                Ok(w) if r.contains(&w) => {
                    return (
                        Verdict::Affected(format!(
                            "{text} is in the {} range [{}]",
                            r.scheme().name(),
                            r.text()
                        )),
                        fixed_in,
                    );
                }
                Ok(_) => {}
                Err(e) => note(&mut undetermined, undecidable(r.scheme(), e)),
            },
            Constraint::Vers(r) => match parse_in(r.scheme(), text, aff.scheme, &own) {
                Ok(w) if r.contains(&w) => {
                    return (
                        Verdict::Affected(format!("{text} is in {}", r.text())),
                        fixed_in,
                    );
                }
                Ok(_) => {}
                Err(e) => note(&mut undetermined, undecidable(r.scheme(), e)),
            },
            Constraint::Exact(x) if same(x) => {
                return (
                    Verdict::Affected(format!("{text} is the affected version")),
                    fixed_in,
                );
            }
            Constraint::Exact(_) => {
                if let Err(e) = &own {
                    note(&mut undetermined, e.to_string());
                }
            }
            Constraint::Any => {
                return (
                    Verdict::Affected("every version is affected".into()),
                    fixed_in,
                );
            }
            Constraint::Git(repo) if aff.versions.is_empty() => note(
                &mut undetermined,
                format!(
                    "the advisory gives only a commit range in {repo}, which a version number \
                     cannot be placed in"
                ),
            ),
            Constraint::Unreadable(range) => note(
                &mut undetermined,
                format!("the advisory's range {range:?} is not a vers range"),
            ),
            _ => {}
        }
    }
    match undetermined {
        Some(why) => (Verdict::Undetermined(why), fixed_in),
        None => (Verdict::NotAffected, None),
    }
}

/// Keeps the first reason a match could not be decided.
fn note(slot: &mut Option<String>, why: String) {
    slot.get_or_insert(why);
}

/// `text` as a version of `scheme`: `parsed` when that is the package's own scheme.
fn parse_in(
    scheme: crate::version::Scheme,
    text: &str,
    own: crate::version::Scheme,
    parsed: &Result<Version, crate::Error>,
) -> Result<Version, crate::Error> {
    match parsed {
        Ok(v) if scheme == own => Ok(v.clone()),
        _ => scheme.parse(text),
    }
}

fn lowest_fix(aff: &Affected, text: &str, v: &Version) -> Option<String> {
    let mut candidates: Vec<(Version, String)> = Vec::new();
    for c in &aff.constraints {
        if let Constraint::Events(r) = c
            && let Ok(w) = parse_in(r.scheme(), text, aff.scheme, &Ok(v.clone()))
            && let Some(x) = r.fixed_after(&w)
        {
            candidates.push((x.clone(), display(x)));
        }
    }
    for f in &aff.fixed {
        if let Ok(x) = aff.scheme.parse(f)
            && v.compare(&x) == Some(Ordering::Less)
        {
            candidates.push((x, f.clone()));
        }
    }
    candidates
        .into_iter()
        .min_by(|a, b| a.0.compare(&b.0).unwrap_or(Ordering::Equal))
        .map(|(_, text)| text)
}

fn display(v: &Version) -> String {
    match v {
        Version::Semver(s) => s.to_string(),
        Version::Pypi(p) => p.to_string(),
        Version::Deb(e) | Version::Rpm(e) => e.to_string(),
        Version::Generic(g) => g.clone(),
    }
}

impl Index<'_> {
    /// Classifies one component.
    pub fn component(&self, c: &Component) -> ComponentMatch {
        let idents: Vec<Ident> = c
            .purl
            .as_deref()
            .and_then(ident::purl)
            .into_iter()
            .chain(c.cpe.as_deref().and_then(ident::cpe))
            .collect();
        let mut findings: Vec<Finding> = Vec::new();
        let mut vendor_not_affected = Vec::new();
        for id in &idents {
            let version = id.version.as_deref().or(c.version.as_deref());
            for (a, aff) in self.by_key.get(id.key.as_str()).into_iter().flatten() {
                let (verdict, fixed_in) = judge(aff, version);
                let (certain, reason) = match verdict {
                    Verdict::Affected(r) => (true, r),
                    Verdict::Undetermined(r) => (false, r),
                    Verdict::NotAffected => continue,
                };
                if let Some(old) = findings.iter_mut().find(|f| f.advisory == a.id) {
                    // The same advisory through the purl and the CPE: keep the surer one.
                    if certain && !old.certain {
                        old.certain = true;
                        old.reason = reason;
                        old.via.clone_from(&aff.key);
                    }
                    continue;
                }
                findings.push(self.finding(a, aff, certain, reason, fixed_in));
            }
            for a in self.not_affected.get(id.key.as_str()).into_iter().flatten() {
                if !vendor_not_affected.iter().any(|x: &String| x == a) {
                    vendor_not_affected.push((*a).to_owned());
                }
            }
        }
        findings.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.advisory.cmp(&b.advisory))
        });
        let status = if idents.is_empty() {
            Status::Unidentifiable
        } else if findings.is_empty() {
            Status::Clean
        } else {
            Status::Matched
        };
        ComponentMatch {
            component: c.name.clone(),
            version: c.version.clone(),
            reference: c.reference.clone(),
            purl: c.purl.clone(),
            cpe: c.cpe.clone(),
            status,
            findings,
            vendor_not_affected,
        }
    }

    fn finding(
        &self,
        a: &Advisory,
        aff: &Affected,
        certain: bool,
        reason: String,
        fixed_in: Option<String>,
    ) -> Finding {
        let best = a
            .cvss
            .iter()
            .filter_map(|v| crate::cvss::score(v).ok().map(|s| (v, s)))
            .max_by(|x, y| {
                x.1.effective()
                    .partial_cmp(&y.1.effective())
                    .unwrap_or(Ordering::Equal)
            });
        Finding {
            advisory: a.id.clone(),
            aliases: a.aliases.clone(),
            source: a.source,
            document: a.document.clone(),
            summary: a.summary.clone(),
            via: aff.key.clone(),
            certain,
            reason,
            fixed_in,
            cvss: best.as_ref().map(|(v, _)| (*v).clone()),
            score: best.as_ref().map(|(_, s)| s.effective()),
            severity: best.as_ref().map(|(_, s)| s.severity),
            known_exploited: self.db.known_exploited(a).cloned(),
            exploit_status: a.exploit_status.clone(),
            vex: None,
            risk: None,
        }
    }

    /// Classifies every component.
    pub fn components(&self, components: &[Component]) -> Vec<ComponentMatch> {
        components.iter().map(|c| self.component(c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Vers;
    use crate::version::Scheme;

    fn affected(constraint: Constraint) -> Affected {
        Affected {
            key: "pkg:npm/x".into(),
            scheme: Scheme::Semver,
            versions: Vec::new(),
            constraints: vec![constraint],
            fixed: Vec::new(),
        }
    }

    #[test]
    fn a_range_in_another_scheme_reads_the_version_in_its_own() {
        // A CSAF product with an npm purl and a vers:generic range: "1.1.1a" is no SemVer,
        // but the generic range holds it.
        let a = affected(Constraint::Vers(
            Vers::parse("vers:generic/<1.1.1k").unwrap(),
        ));
        assert!(matches!(judge(&a, Some("1.1.1a")).0, Verdict::Affected(_)));
        assert!(matches!(judge(&a, Some("1.1.1l")).0, Verdict::NotAffected));
        // A version the range's scheme cannot read is undetermined, not clean.
        let p = affected(Constraint::Vers(Vers::parse("vers:pypi/<2.0").unwrap()));
        match judge(&p, Some("1.0~beta")).0 {
            Verdict::Undetermined(why) => assert!(why.contains("pypi scheme"), "{why}"),
            _ => panic!("a version pypi cannot read must be undetermined"),
        }
        assert!(matches!(judge(&p, Some("1.5.0")).0, Verdict::Affected(_)));
    }
}
