//! Matching SBOM components against advisories. Every component ends in one of five
//! classes: matched (with its findings), possible (only possible matches, for review),
//! clean, incomplete (nothing matched, but some advisory files could not be read, so clean
//! cannot be said), or unidentifiable (no purl, no CPE, and no supplier to compare names
//! on). None is dropped, and a match that cannot be decided (no version, a version the
//! scheme cannot read, a commit range, a range written in words medsec cannot read) is
//! reported as an undetermined finding, never as clean.
//!
//! A component is compared on its identifiers (purl, CPE) and, when it names its supplier,
//! on vendor and product name with every advisory product named only that way (see
//! [`crate::names`]): an equal normalised name is a match by name, a close name of the same
//! vendor a possible match. An identifier match beats a model-number match, which beats a
//! name match, which beats a possible one; each finding says which it is and what was
//! compared.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::advisory::{Advisory, Affected, Constraint, Document, KevEntry, Named, Source};
use crate::ident::{self, Ident};
use crate::names::{self, Names, Product};
use crate::sbom::Component;
use crate::version::Version;

mod by_name;
use by_name::Vendor;

/// Advisories and the KEV catalogue, kept up to date by re-import.
#[derive(Debug, Default)]
pub struct Database {
    /// By identity (`osv:ID` or `csaf:DOCUMENT:ID`).
    advisories: BTreeMap<String, Advisory>,
    kev: BTreeMap<String, KevEntry>,
    /// Vendor normalisation and aliases for matching by name.
    names: Names,
    /// Advisory files that could not be read, with why: while any is listed no component
    /// is called clean.
    unread: Vec<(String, String)>,
    /// Products (`DOCUMENT: name`) with nothing a component can be compared on.
    unmatchable: Vec<String>,
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

    /// Uses `names` (vendor aliases) for matching by name.
    pub fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    /// The vendor names in use.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Records an advisory file that could not be read: from now on no component matched
    /// against this database is clean, only incomplete.
    pub fn note_unread(&mut self, file: impl Into<String>, why: impl Into<String>) {
        self.unread.push((file.into(), why.into()));
    }

    /// The advisory files that could not be read.
    pub fn unread(&self) -> &[(String, String)] {
        &self.unread
    }

    /// Products advisories named without anything a component could be compared on (no
    /// purl, no CPE, no vendor and product name).
    pub fn unmatchable(&self) -> &[String] {
        &self.unmatchable
    }

    /// Adds what a file read leniently holds ([`crate::advisory::read`]), noting its
    /// products that nothing can be compared with.
    pub fn import_read(&mut self, read: crate::advisory::Read) -> Imported {
        let document = match &read.document {
            Document::Advisories(list) => list
                .first()
                .and_then(|a| a.document.clone())
                .unwrap_or_default(),
            Document::Kev(_) => String::new(),
        };
        for p in read.products.iter().filter(|p| !p.matchable()) {
            self.unmatchable.push(format!("{document}: {}", p.name));
        }
        self.import(read.document)
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

    /// An index by package key and by vendor, for matching many components.
    pub fn index(&self) -> Index<'_> {
        let mut by_key: HashMap<&str, Vec<(&Advisory, &Affected)>> = HashMap::new();
        let mut not_affected: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut by_vendor: HashMap<String, Vendor<'_>> = HashMap::new();
        for a in self.advisories.values().filter(|a| !a.withdrawn) {
            for aff in &a.affected {
                match &aff.named {
                    Some(named) => by_vendor
                        .entry(self.names.vendor(&named.vendor))
                        .or_default()
                        .add(named, a, aff),
                    None => by_key.entry(aff.key.as_str()).or_default().push((a, aff)),
                }
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
            by_vendor,
        }
    }
}

/// Advisories by package key and by vendor.
pub struct Index<'a> {
    db: &'a Database,
    by_key: HashMap<&'a str, Vec<(&'a Advisory, &'a Affected)>>,
    /// Package key -> advisories whose vendor states it is not affected.
    not_affected: HashMap<&'a str, Vec<&'a str>>,
    /// Vendor key -> its products named only by name.
    by_vendor: HashMap<String, Vendor<'a>>,
}

/// A component's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one advisory applies (or may: see [`Finding::certain`]), matched by
    /// identifier, model number or name.
    Matched,
    /// Only possible matches: an advisory of the same vendor names a close but different
    /// product. For review; never clean.
    Possible,
    /// Compared, and no advisory applies.
    Clean,
    /// Compared and nothing applies, but advisory files were unread: not known to be clean.
    Incomplete,
    /// No purl, no CPE and no supplier: it cannot be compared with anything.
    Unidentifiable,
}

impl Status {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::Possible => "possible",
            Status::Clean => "clean",
            Status::Incomplete => "incomplete",
            Status::Unidentifiable => "unidentifiable",
        }
    }
}

/// What a finding was matched on, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// The component's purl.
    Purl,
    /// The component's CPE.
    Cpe,
    /// A model number the advisory gives, found in the component's name.
    ModelNumber,
    /// Vendor and product name, equal after normalisation.
    Name,
    /// Same vendor, a close product name: for review.
    Possible,
}

/// The strings a name-based match compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    /// The component's supplier and name, as the SBOM writes them.
    pub component: String,
    /// The advisory's vendor and product, as it writes them.
    pub advisory: String,
    /// For possible matches: how close the names are, 0 to 1 ([`crate::names::similarity`]).
    pub similarity: Option<f64>,
}

/// What a component was compared on, and with how many advisories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComparedOn {
    /// `purl`, `cpe` or `name`.
    pub on: &'static str,
    /// The key (for names: the normalised vendor and product).
    pub value: String,
    /// Advisories held under that key (for names: of that vendor).
    pub advisories: usize,
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
    /// The package key it matched on (a purl or CPE key, or `name:VENDOR/PRODUCT`).
    pub via: String,
    /// What it matched on.
    pub matched_by: MatchedBy,
    /// `high` (identifier, model number, or the exact name), `medium` (the name without its
    /// parenthesised part or the vendor's name before it), `low` (possible match).
    pub confidence: &'static str,
    /// For matches by model number or name: the strings compared.
    pub compared: Option<Compared>,
    /// False when medsec could not decide and reports it to be safe: the version could not
    /// be placed, or it is only a possible match.
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
    /// The advisory's exploit status reports exploitation.
    pub exploited_per_advisory: bool,
    /// The VEX statement that applies to this product and component, if any.
    pub vex: Option<crate::vex::Statement>,
    /// Its risk on a device, once [`score_findings`] has been given the device's context.
    pub risk: Option<crate::score::Risk>,
}

impl Finding {
    /// Whether it is only a possible match (a close product name).
    pub fn possible(&self) -> bool {
        self.matched_by == MatchedBy::Possible
    }

    /// Known exploited: listed in CISA KEV, or the advisory says so.
    pub fn exploited(&self) -> bool {
        self.known_exploited.is_some() || self.exploited_per_advisory
    }

    /// Whether it blocks a release at `threshold` ([`crate::gate::blocks`]).
    pub fn blocks(&self, threshold: crate::gate::Threshold) -> Option<crate::gate::Block> {
        crate::gate::blocks(self.open(), self.severity, self.exploited(), threshold)
    }

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

/// A VEX statement that applied to no finding, and why: a statement that silently does
/// nothing is one the user believes is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unapplied {
    /// The vulnerability it is about.
    pub vulnerability: String,
    /// The product it names.
    pub product: String,
    /// The component it names, if any.
    pub component: Option<String>,
    /// It names this SBOM's product (so it was meant for it, and matched no finding); false
    /// for a statement about another product.
    pub this_product: bool,
    /// Why it applied to nothing.
    pub why: String,
}

/// Attaches to each finding the VEX statement about it: same vulnerability (by the
/// advisory's id or any alias), same product (the SBOM's subject, `product_ids`, at
/// `product_version`), and the same component or the product as a whole. A statement about
/// the component wins over one about the whole product; among equals, the later one.
/// Returns the statements that applied to no finding.
pub fn apply_vex(
    matches: &mut [ComponentMatch],
    statements: &[crate::vex::Statement],
    product_ids: &[String],
    product_version: Option<&str>,
) -> Vec<Unapplied> {
    let relevant: Vec<(usize, &crate::vex::Statement)> = statements
        .iter()
        .enumerate()
        .filter(|(_, s)| s.about_product(product_ids, product_version))
        .collect();
    let mut used = vec![false; statements.len()];
    for m in matches.iter_mut() {
        let ids: Vec<&str> = [&m.purl, &m.cpe, &m.reference]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        for f in &mut m.findings {
            let best = relevant
                .iter()
                .filter(|(_, s)| {
                    (s.vulnerability == f.advisory || f.aliases.contains(&s.vulnerability))
                        && s.about_component(&ids)
                })
                .max_by_key(|(_, s)| s.component.is_some());
            // max_by_key keeps the last of equals: the later statement.
            if let Some((i, _)) = best
                && let Some(u) = used.get_mut(*i)
            {
                *u = true;
            }
            f.vex = best.map(|(_, s)| (*s).clone());
        }
    }
    statements
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(s, _)| Unapplied {
            vulnerability: s.vulnerability.clone(),
            product: s.product.clone(),
            component: s.component.clone(),
            this_product: s.about_product(product_ids, product_version),
            why: if s.about_product(product_ids, product_version) {
                format!(
                    "no finding of this SBOM is about {}{}",
                    s.vulnerability,
                    s.component
                        .as_ref()
                        .map_or_else(String::new, |c| format!(" in component {c}"))
                )
            } else {
                format!(
                    "its product {} is not this SBOM's ({}{})",
                    s.product,
                    product_ids.join(", "),
                    product_version.map_or_else(String::new, |v| format!(" at {v}"))
                )
            },
        })
        .collect()
}

/// The counts of a match, so that no outcome is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Components.
    pub components: usize,
    /// Matched by identifier, model number or name.
    pub matched: usize,
    /// Only possible matches, for review.
    pub possible: usize,
    /// Components with at least one undetermined finding (not counting possible ones).
    pub undetermined: usize,
    /// Nothing to compare them on.
    pub unidentifiable: usize,
    /// Compared, and clean.
    pub clean: usize,
    /// Compared, nothing found, but advisories were unread.
    pub incomplete: usize,
    /// Findings, and of those matched by each key.
    pub findings: usize,
    /// Findings matched by purl, CPE, model number, name, possible.
    pub findings_by: BTreeMap<&'static str, usize>,
    /// Findings still open after VEX.
    pub open: usize,
    /// Advisory files that could not be read.
    pub unread_advisory_files: usize,
    /// Advisory products with nothing any SBOM could be compared on.
    pub unmatchable_products: usize,
    /// VEX statements that applied to nothing.
    pub vex_unapplied: usize,
}

/// Counts `matches` (against `db`, with `unapplied` VEX statements).
pub fn summarise(matches: &[ComponentMatch], db: &Database, unapplied: usize) -> Summary {
    let count = |s: Status| matches.iter().filter(|m| m.status == s).count();
    let mut findings_by = BTreeMap::new();
    for f in matches.iter().flat_map(|m| &m.findings) {
        let name = match f.matched_by {
            MatchedBy::Purl => "purl",
            MatchedBy::Cpe => "cpe",
            MatchedBy::ModelNumber => "model-number",
            MatchedBy::Name => "name",
            MatchedBy::Possible => "possible",
        };
        *findings_by.entry(name).or_insert(0) += 1;
    }
    Summary {
        components: matches.len(),
        matched: count(Status::Matched),
        possible: count(Status::Possible),
        undetermined: matches
            .iter()
            .filter(|m| m.findings.iter().any(|f| !f.certain && !f.possible()))
            .count(),
        unidentifiable: count(Status::Unidentifiable),
        clean: count(Status::Clean),
        incomplete: count(Status::Incomplete),
        findings: matches.iter().map(|m| m.findings.len()).sum(),
        findings_by,
        open: matches
            .iter()
            .flat_map(|m| &m.findings)
            .filter(|f| f.open())
            .count(),
        unread_advisory_files: db.unread.len(),
        unmatchable_products: db.unmatchable.len(),
        vex_unapplied: unapplied,
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
    /// Its supplier (manufacturer, publisher).
    pub supplier: Option<String>,
    /// Matched, possible, clean, incomplete or unidentifiable.
    pub status: Status,
    /// What it was compared on, and with how many advisories.
    pub compared_on: Vec<ComparedOn>,
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
                Ok(w) if let Some(x) = r.incomparable(&w) => note(
                    &mut undetermined,
                    format!(
                        "{text} cannot be placed in {}: it does not compare with {} (they begin differently)",
                        r.text(),
                        display(x)
                    ),
                ),
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
            Constraint::Exact(x) => {
                if let Err(e) = &own {
                    note(&mut undetermined, e.to_string());
                } else if let (Ok(v), Ok(y)) = (&own, aff.scheme.parse(x))
                    && v.compare(&y).is_none()
                {
                    note(
                        &mut undetermined,
                        format!(
                            "{text} does not compare with the affected version {x} (they begin differently)"
                        ),
                    );
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
            Constraint::Wildcard(w) if w.contains(text) => {
                return (
                    Verdict::Affected(format!("{text} is one of {}", w.text())),
                    fixed_in,
                );
            }
            Constraint::Unreadable(range) => note(
                &mut undetermined,
                format!(
                    "the advisory's version text {range:?} could not be read as a version or range"
                ),
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

/// At most this many close product names are listed as possible matches per component.
const POSSIBLE_NAMES: usize = 5;

impl Index<'_> {
    /// Classifies one component.
    pub fn component(&self, c: &Component) -> ComponentMatch {
        let idents: Vec<(MatchedBy, Ident)> = c
            .purl
            .as_deref()
            .and_then(ident::purl)
            .map(|i| (MatchedBy::Purl, i))
            .into_iter()
            .chain(
                c.cpe
                    .as_deref()
                    .and_then(ident::cpe)
                    .map(|i| (MatchedBy::Cpe, i)),
            )
            .collect();
        let mut findings: Vec<Finding> = Vec::new();
        let mut vendor_not_affected = Vec::new();
        let mut compared_on = Vec::new();
        for (by, id) in &idents {
            let version = id.version.as_deref().or(c.version.as_deref());
            let held = self.by_key.get(id.key.as_str());
            compared_on.push(ComparedOn {
                on: if *by == MatchedBy::Purl {
                    "purl"
                } else {
                    "cpe"
                },
                value: id.key.clone(),
                advisories: held.map_or(0, Vec::len),
            });
            for (a, aff) in held.into_iter().flatten() {
                let (verdict, fixed_in) = judge(aff, version);
                let (certain, reason) = match verdict {
                    Verdict::Affected(r) => (true, r),
                    Verdict::Undetermined(r) => (false, r),
                    Verdict::NotAffected => continue,
                };
                let how = How {
                    by: *by,
                    confidence: "high",
                    compared: None,
                };
                keep(
                    &mut findings,
                    self.finding(a, aff, how, certain, reason, fixed_in),
                );
            }
            for a in self.not_affected.get(id.key.as_str()).into_iter().flatten() {
                if !vendor_not_affected.iter().any(|x: &String| x == a) {
                    vendor_not_affected.push((*a).to_owned());
                }
            }
        }
        let supplier = c.supplier.as_deref().filter(|s| !s.trim().is_empty());
        if let Some(supplier) = supplier {
            self.by_name(c, supplier, &mut findings, &mut compared_on);
        }
        findings.sort_by(|a, b| {
            a.matched_by
                .cmp(&b.matched_by)
                .then_with(|| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal))
                .then_with(|| a.advisory.cmp(&b.advisory))
        });
        let status = if !findings.is_empty() {
            if findings.iter().all(Finding::possible) {
                Status::Possible
            } else {
                Status::Matched
            }
        } else if idents.is_empty() && supplier.is_none() {
            Status::Unidentifiable
        } else if self.db.unread.is_empty() {
            Status::Clean
        } else {
            Status::Incomplete
        };
        ComponentMatch {
            component: c.name.clone(),
            version: c.version.clone(),
            reference: c.reference.clone(),
            purl: c.purl.clone(),
            cpe: c.cpe.clone(),
            supplier: c.supplier.clone(),
            status,
            compared_on,
            findings,
            vendor_not_affected,
        }
    }
}

/// How a finding was matched.
struct How {
    by: MatchedBy,
    confidence: &'static str,
    compared: Option<Compared>,
}

/// Adds `new`, or, when the same advisory is already found for the component, keeps the
/// better of the two: matched on a stronger key, else the certain one.
fn keep(findings: &mut Vec<Finding>, new: Finding) {
    match findings.iter_mut().find(|f| f.advisory == new.advisory) {
        Some(old) => {
            let better = (new.matched_by, !new.certain) < (old.matched_by, !old.certain);
            if better {
                *old = new;
            }
        }
        None => findings.push(new),
    }
}

impl Index<'_> {
    fn finding(
        &self,
        a: &Advisory,
        aff: &Affected,
        how: How,
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
            matched_by: how.by,
            confidence: how.confidence,
            compared: how.compared,
            certain,
            reason,
            fixed_in,
            cvss: best.as_ref().map(|(v, _)| (*v).clone()),
            score: best.as_ref().map(|(_, s)| s.effective()),
            severity: best.as_ref().map(|(_, s)| s.severity),
            known_exploited: self.db.known_exploited(a).cloned(),
            exploit_status: a.exploit_status.clone(),
            exploited_per_advisory: a.exploited,
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
            named: None,
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
