//! Advisories: OSV records and CSAF 2.0 documents, validated against their official schemas
//! and reduced to one model (which package keys, which versions), plus CISA's Known
//! Exploited Vulnerabilities catalogue for the known-exploited flag.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::ident;
use crate::range::{Events, Vers};
use crate::schema::{Doc, array, text, validate};
use crate::version::Scheme;

/// Where an advisory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An OSV record.
    Osv,
    /// A CSAF 2.0 document (one advisory per vulnerability in it).
    Csaf,
}

/// Which versions of a package an advisory says are affected.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// An OSV `SEMVER` or `ECOSYSTEM` range.
    Events(Events),
    /// An OSV `GIT` range: commits, which a version number cannot be placed among. It
    /// decides nothing alone: a record's `versions` list (which OSV fills from the commits)
    /// does, and without one a match is reported as undetermined.
    Git(String),
    /// A `vers` range (CSAF `product_version_range`).
    Vers(Vers),
    /// Exactly this version (a CSAF `product_version`, or the version in a purl or CPE).
    Exact(String),
    /// Every version (a CSAF product named without a version, or an OSV package with no
    /// ranges and no versions).
    Any,
    /// A version with a wildcard (`2.X`, `5.x.x`).
    Wildcard(crate::forms::Wildcard),
    /// A range medsec cannot read (a CSAF free-text range): matches are undetermined, with
    /// this text.
    Unreadable(String),
}

/// A product an advisory names only by vendor and product name (a CSAF branch path with
/// no purl or CPE), the way hospitals know their devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The vendor branch, as written.
    pub vendor: String,
    /// The product name (a product family's name before it, when there is one), as written.
    pub product: String,
    /// The model numbers of `product_identification_helper`, if any.
    pub models: Vec<String>,
}

/// One affected package of an advisory.
#[derive(Debug, Clone)]
pub struct Affected {
    /// The package key ([`ident::Ident::key`]); for a product named only by vendor and name,
    /// `name:VENDOR/PRODUCT` as written (matching compares [`Affected::named`]).
    pub key: String,
    /// Set for a product named only by vendor and name.
    pub named: Option<Named>,
    /// The scheme its versions are compared in.
    pub scheme: Scheme,
    /// Versions listed one by one (OSV `versions`).
    pub versions: Vec<String>,
    /// Ranges; a version in any of them (or in `versions`) is affected.
    pub constraints: Vec<Constraint>,
    /// Versions the advisory says fix it (CSAF `fixed`; OSV's come from its ranges).
    pub fixed: Vec<String>,
}

/// A vulnerability advisory.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// OSV `id`, or for CSAF the CVE (else the document's tracking id and the vulnerability's
    /// position).
    pub id: String,
    /// Other names (CVE, GHSA, ...): VEX statements and the KEV catalogue may use any.
    pub aliases: Vec<String>,
    /// OSV or CSAF.
    pub source: Source,
    /// For CSAF: the document's tracking id.
    pub document: Option<String>,
    /// One line.
    pub summary: String,
    /// When last modified (RFC 3339), as the source says.
    pub modified: String,
    /// Withdrawn advisories are kept but match nothing.
    pub withdrawn: bool,
    /// CVSS vectors (v2, v3.x, v4.0).
    pub cvss: Vec<String>,
    /// CSAF `exploit_status` threat details.
    pub exploit_status: Option<String>,
    /// The advisory itself says the vulnerability is exploited (a CSAF `exploit_status`
    /// threat reporting exploitation, not its absence).
    pub exploited: bool,
    /// The affected packages.
    pub affected: Vec<Affected>,
    /// Package keys the vendor states are not affected (CSAF `known_not_affected`).
    pub not_affected: Vec<String>,
    /// CSAF remediations: category and text.
    pub remediations: Vec<String>,
}

impl Advisory {
    /// Every name the advisory goes by: its id and aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// What one input file holds.
#[derive(Debug)]
pub enum Document {
    /// Advisories (one for OSV, one per vulnerability for CSAF).
    Advisories(Vec<Advisory>),
    /// CISA's Known Exploited Vulnerabilities catalogue.
    Kev(Vec<KevEntry>),
}

/// One entry of CISA's KEV catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct KevEntry {
    /// The CVE.
    pub cve: String,
    /// When CISA added it.
    pub date_added: String,
    /// CISA's due date for US federal agencies.
    pub due_date: Option<String>,
    /// `Known` when used in ransomware campaigns.
    pub ransomware: Option<String>,
}

/// Reads an OSV record, a CSAF 2.0 document or the KEV catalogue (told apart by their
/// fields), validated against its schema (KEV has none published; its fields are checked),
/// refusing any CSAF document that breaks a mandatory test medsec checks ([`read`] with
/// `strict`).
pub fn parse(bytes: &[u8]) -> Result<Document, Error> {
    read(bytes, true).map(|r| r.document)
}

fn osv(doc: &Value) -> Result<Advisory, Error> {
    validate(Doc::Osv, "OSV", doc)?;
    let id = text(doc, "id").unwrap_or_default();
    let bad = |why: String| Error::Consistency {
        format: "OSV".into(),
        reason: format!("{id}: {why}"),
    };
    let severity = |v: &Value| -> Vec<String> {
        array(v, "severity")
            .iter()
            .filter(|s| text(s, "type").is_some_and(|t| t.starts_with("CVSS_")))
            .filter_map(|s| text(s, "score"))
            .collect()
    };
    let mut cvss = severity(doc);
    let mut affected = Vec::new();
    for a in array(doc, "affected") {
        for v in severity(a) {
            if !cvss.contains(&v) {
                cvss.push(v);
            }
        }
        let package = a.get("package");
        let purl_key = package
            .and_then(|p| text(p, "purl"))
            .and_then(|p| ident::purl(&p));
        let ecosystem = package
            .and_then(|p| text(p, "ecosystem"))
            .unwrap_or_default();
        let name = package.and_then(|p| text(p, "name")).unwrap_or_default();
        let key = purl_key
            .as_ref()
            .map(|p| p.key.clone())
            .or_else(|| ident::osv_package(&ecosystem, &name));
        // A record for a repository only (GIT ranges, no package) names nothing an SBOM
        // component is keyed on; it is kept out of matching, and counted by the caller.
        let Some(key) = key else { continue };
        let scheme = if ecosystem.is_empty() {
            purl_key.map_or(Scheme::Generic, |p| p.scheme)
        } else {
            Scheme::of_ecosystem(&ecosystem)
        };
        let mut constraints = Vec::new();
        for r in array(a, "ranges") {
            let kind = text(r, "type").unwrap_or_default();
            let events = array(r, "events").iter().filter_map(|e| {
                e.as_object()
                    .and_then(|o| o.iter().next())
                    .and_then(|(k, v)| Some((k.as_str(), v.as_str()?)))
            });
            match kind.as_str() {
                "GIT" => constraints.push(Constraint::Git(text(r, "repo").unwrap_or_default())),
                "SEMVER" => constraints.push(Constraint::Events(
                    Events::parse(Scheme::Semver, events).map_err(|e| bad(e.to_string()))?,
                )),
                _ => constraints.push(Constraint::Events(
                    Events::parse(scheme, events).map_err(|e| bad(e.to_string()))?,
                )),
            }
        }
        let versions: Vec<String> = array(a, "versions")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if constraints.is_empty() && versions.is_empty() {
            constraints.push(Constraint::Any);
        }
        affected.push(Affected {
            key,
            named: None,
            scheme,
            versions,
            constraints,
            fixed: Vec::new(),
        });
    }
    Ok(Advisory {
        summary: text(doc, "summary")
            .or_else(|| text(doc, "details").map(|d| d.lines().next().unwrap_or("").to_owned()))
            .unwrap_or_default(),
        aliases: array(doc, "aliases")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        source: Source::Osv,
        document: None,
        modified: text(doc, "modified").unwrap_or_default(),
        withdrawn: doc.get("withdrawn").is_some(),
        cvss,
        exploit_status: None,
        exploited: false,
        affected,
        not_affected: Vec::new(),
        remediations: Vec::new(),
        id,
    })
}

/// What a CSAF product id stands for.
#[derive(Debug, Clone, Default)]
struct Product {
    ident: Option<ident::Ident>,
    /// The vendor branch.
    vendor: Option<String>,
    /// The product family and product name branches, outermost first.
    names: Vec<String>,
    /// The version or range branch (or the helper's version), as written.
    version: Option<String>,
    models: Vec<String>,
    /// The product's full name (for reports about products nothing can be compared on).
    full_name: String,
}

impl Product {
    fn named(&self) -> Option<Named> {
        let vendor = self.vendor.as_ref().filter(|v| !v.trim().is_empty())?;
        let product = self.names.join(" ");
        (!product.trim().is_empty()).then(|| Named {
            vendor: vendor.trim().to_owned(),
            product: product.trim().to_owned(),
            models: self.models.clone(),
        })
    }

    fn scheme(&self) -> Scheme {
        self.ident.as_ref().map_or(Scheme::Generic, |i| i.scheme)
    }

    fn reading(&self) -> crate::forms::Reading {
        crate::forms::read(self.version.as_deref(), self.scheme())
    }
}

/// How one CSAF product can be compared with an SBOM component, for the counts in reports
/// and benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct ProductInfo {
    /// Its product id.
    pub id: String,
    /// Its full name.
    pub name: String,
    /// It carries a purl, a CPE or model numbers.
    pub identifier: bool,
    /// It has a vendor and a product name in its branch path.
    pub named: bool,
    /// How its version was written.
    pub form: crate::forms::Form,
}

impl ProductInfo {
    /// Something an SBOM component can be compared on: an identifier, or vendor and name.
    pub fn matchable(&self) -> bool {
        self.identifier || self.named
    }
}

fn csaf_products(tree: &Value) -> BTreeMap<String, Product> {
    let mut out = BTreeMap::new();
    fn helper(p: &Value, base: Product) -> (String, Product) {
        let id = text(p, "product_id").unwrap_or_default();
        let mut product = base;
        product.full_name = text(p, "name").unwrap_or_default();
        if let Some(h) = p.get("product_identification_helper") {
            // A purl names the package exactly; a CPE is the fallback.
            let found = text(h, "purl")
                .and_then(|x| ident::purl(&x))
                .or_else(|| text(h, "cpe").and_then(|x| ident::cpe(&x)));
            if let Some(found) = found {
                if found.version.is_some() {
                    product.version.clone_from(&found.version);
                }
                product.ident = Some(found);
            }
            product.models = array(h, "model_numbers")
                .iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect();
        }
        (id, product)
    }
    fn walk(branches: &[Value], base: &Product, out: &mut BTreeMap<String, Product>) {
        for b in branches {
            let mut here = base.clone();
            let name = text(b, "name").unwrap_or_default();
            match text(b, "category").as_deref() {
                Some("product_version" | "product_version_range") => here.version = Some(name),
                Some("vendor") => here.vendor = Some(name),
                Some("product_family" | "product_name") => here.names.push(name),
                _ => {}
            }
            if let Some(p) = b.get("product") {
                let (id, product) = helper(p, here.clone());
                out.insert(id, product);
            }
            walk(array(b, "branches"), &here, out);
        }
    }
    walk(array(tree, "branches"), &Product::default(), &mut out);
    for p in array(tree, "full_product_names") {
        let (id, product) = helper(p, Product::default());
        out.insert(id, product);
    }
    // "component X default_component_of platform Y": the affected thing is X.
    for r in array(tree, "relationships") {
        if let (Some(component), Some(full)) = (
            text(r, "product_reference").and_then(|c| out.get(&c).cloned()),
            r.get("full_product_name")
                .and_then(|f| text(f, "product_id")),
        ) {
            out.insert(full, component);
        }
    }
    out
}

fn ids<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = String> + 'a {
    array(v, key)
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
}

/// Whether an `exploit_status` threat reports exploitation (and not its absence: "No known
/// public exploitation").
fn says_exploited(details: &str) -> bool {
    let d = details.to_lowercase();
    let reported = [
        "exploited",
        "active exploitation",
        "exploitation in the wild",
    ]
    .iter()
    .any(|w| d.contains(w));
    let denied = [
        "no known",
        "not known",
        "not been exploited",
        "not exploited",
        "no public",
        "no evidence",
        "none known",
        "not aware",
    ]
    .iter()
    .any(|w| d.contains(w));
    reported && !denied
}

/// What one file read leniently holds, and what was forgiven on the way.
#[derive(Debug)]
pub struct Read {
    /// The advisories or the KEV catalogue.
    pub document: Document,
    /// Each departure from the format that was read anyway, and how.
    pub warnings: Vec<String>,
    /// For CSAF: every product of the product tree and what it can be compared on.
    pub products: Vec<ProductInfo>,
}

/// Reads an OSV record, a CSAF 2.0 document or the KEV catalogue. With `strict` this is
/// [`parse`]. Without, a CSAF document that breaks a mandatory test in a way whose meaning
/// is still clear (a range in a `product_version`, CVSS scores that do not follow from the
/// vector, one CVE in two vulnerability items, an invalid purl, a product flagged twice) is
/// read anyway, with a warning that says how; a document whose meaning is not clear
/// (undefined or twice-defined product ids, contradicting statuses, schema violations) is
/// refused either way.
pub fn read(bytes: &[u8], strict: bool) -> Result<Read, Error> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Format(format!("the advisory is not JSON: {e}")))?;
    if doc.get("document").is_some() {
        csaf(&doc, strict).map(|(list, warnings, products)| Read {
            document: Document::Advisories(list),
            warnings,
            products,
        })
    } else {
        let document = if doc.get("catalogVersion").is_some() {
            kev(&doc).map(Document::Kev)?
        } else if doc.get("id").is_some() && doc.get("modified").is_some() {
            osv(&doc).map(|a| Document::Advisories(vec![a]))?
        } else {
            return Err(Error::Format(
                "not an advisory medsec reads: neither OSV (`id`, `modified`), CSAF 2.0 \
                 (`document`) nor CISA's KEV catalogue (`catalogVersion`)"
                    .into(),
            ));
        };
        Ok(Read {
            document,
            warnings: Vec::new(),
            products: Vec::new(),
        })
    }
}

type CsafRead = (Vec<Advisory>, Vec<String>, Vec<ProductInfo>);

fn csaf(doc: &Value, strict: bool) -> Result<CsafRead, Error> {
    validate(Doc::Csaf, "CSAF 2.0", doc)?;
    let mut warnings = crate::csaf_rules::check(doc, strict)?;
    let document = doc.get("document").unwrap_or(&Value::Null);
    let tracking = document.get("tracking").unwrap_or(&Value::Null);
    let tracking_id = text(tracking, "id").unwrap_or_default();
    let modified = text(tracking, "current_release_date").unwrap_or_default();
    let title = text(document, "title").unwrap_or_default();
    let products = doc
        .get("product_tree")
        .map(csaf_products)
        .unwrap_or_default();
    let mut infos = Vec::new();
    // One warning per distinct text, with the products it is about.
    let mut forgiven: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, p) in &products {
        let reading = p.reading();
        if let Some(w) = reading.warning {
            forgiven.entry(w).or_default().push(id);
        }
        infos.push(ProductInfo {
            id: id.clone(),
            name: p.full_name.clone(),
            identifier: p.ident.is_some() || !p.models.is_empty(),
            named: p.named().is_some(),
            form: reading.form,
        });
    }
    for (w, ids) in forgiven {
        let listed: Vec<&str> = ids.iter().take(5).copied().collect();
        let more = ids.len().saturating_sub(listed.len());
        warnings.push(format!(
            "{w} (product{} {}{})",
            if ids.len() == 1 { "" } else { "s" },
            listed.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    let bad = |why: String| Error::Consistency {
        format: "CSAF".into(),
        reason: format!("{tracking_id}: {why}"),
    };
    let mut out: Vec<Advisory> = Vec::new();
    for (n, v) in array(doc, "vulnerabilities").iter().enumerate() {
        let status = v.get("product_status").unwrap_or(&Value::Null);
        // csaf_rules::check (test 6.1.1) made sure every product id is defined.
        let resolve = |id: &String| {
            products
                .get(id)
                .ok_or_else(|| bad(format!("product id {id:?} is not in the product tree")))
        };
        let mut by_key: BTreeMap<String, Affected> = BTreeMap::new();
        let entry = |by_key: &mut BTreeMap<String, Affected>, p: &Product, named: bool| {
            let (key, scheme, named) = match (&p.ident, named) {
                (Some(found), false) => (found.key.clone(), found.scheme, None),
                _ => {
                    let named = p.named()?;
                    (
                        format!("name:{}/{}", named.vendor, named.product),
                        p.scheme(),
                        Some(named),
                    )
                }
            };
            Some(
                by_key
                    .entry(key.clone())
                    .or_insert_with(|| Affected {
                        key,
                        named,
                        scheme,
                        versions: Vec::new(),
                        constraints: Vec::new(),
                        fixed: Vec::new(),
                    })
                    .key
                    .clone(),
            )
        };
        for id in ["known_affected", "first_affected", "last_affected"]
            .iter()
            .flat_map(|k| ids(status, k))
        {
            let p = resolve(&id)?;
            // An identified product is matched by its identifier, and by its name too: an
            // SBOM may know the component only by manufacturer and name.
            for named in [false, true] {
                if !named && p.ident.is_none() {
                    continue;
                }
                if let Some(key) = entry(&mut by_key, p, named)
                    && let Some(a) = by_key.get_mut(&key)
                {
                    a.constraints.push(p.reading().constraint);
                }
            }
        }
        let mut not_affected = BTreeSet::new();
        for id in ids(status, "known_not_affected") {
            if let Some(found) = &resolve(&id)?.ident {
                not_affected.insert(found.key.clone());
            }
        }
        for id in ["fixed", "first_fixed"].iter().flat_map(|k| ids(status, k)) {
            let p = resolve(&id)?;
            let Some(version) = &p.version else { continue };
            // Only a single version is a fix version; a range of fixed versions says nothing
            // about which upgrade fixes.
            if !crate::forms::plausible_version(version) {
                continue;
            }
            let keys = [
                p.ident.as_ref().map(|i| i.key.clone()),
                p.named()
                    .map(|n| format!("name:{}/{}", n.vendor, n.product)),
            ];
            for key in keys.into_iter().flatten() {
                if let Some(a) = by_key.get_mut(&key)
                    && !a.fixed.contains(version)
                {
                    a.fixed.push(version.clone());
                }
            }
        }
        for id in ids(status, "under_investigation").chain(ids(status, "recommended")) {
            resolve(&id)?;
        }
        let mut cvss = Vec::new();
        for s in array(v, "scores") {
            for key in ["cvss_v3", "cvss_v2"] {
                if let Some(vector) = s.get(key).and_then(|c| text(c, "vectorString"))
                    && !cvss.contains(&vector)
                {
                    cvss.push(vector);
                }
            }
        }
        let exploit_status = array(v, "threats")
            .iter()
            .filter(|t| text(t, "category").as_deref() == Some("exploit_status"))
            .filter_map(|t| text(t, "details"))
            .next();
        let remediations = array(v, "remediations")
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    text(r, "category").unwrap_or_default(),
                    text(r, "details").unwrap_or_default()
                )
            })
            .collect();
        let cve = text(v, "cve");
        let mut aliases: Vec<String> = array(v, "ids")
            .iter()
            .filter_map(|i| text(i, "text"))
            .collect();
        let id = cve.unwrap_or_else(|| format!("{tracking_id}#{}", n + 1));
        aliases.retain(|a| *a != id);
        let affected: Vec<Affected> = by_key.into_values().collect();
        // One CVE in two vulnerability items (test 6.1.23, read leniently): one advisory
        // with the products of both.
        if let Some(same) = out.iter_mut().find(|a| a.id == id) {
            same.affected.extend(affected);
            same.not_affected.extend(not_affected);
            for c in cvss {
                if !same.cvss.contains(&c) {
                    same.cvss.push(c);
                }
            }
            continue;
        }
        out.push(Advisory {
            id,
            aliases,
            source: Source::Csaf,
            document: Some(tracking_id.clone()),
            summary: text(v, "title").unwrap_or_else(|| title.clone()),
            modified: modified.clone(),
            withdrawn: false,
            cvss,
            exploited: exploit_status.as_deref().is_some_and(says_exploited),
            exploit_status,
            affected,
            not_affected: not_affected.into_iter().collect(),
            remediations,
        });
    }
    Ok((out, warnings, infos))
}

fn kev(doc: &Value) -> Result<Vec<KevEntry>, Error> {
    let list = doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Format("the KEV catalogue has no vulnerabilities array".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let cve = text(v, "cveID")
                .filter(|c| c.starts_with("CVE-"))
                .ok_or_else(|| {
                    Error::Format(format!("KEV entry {i} has no cveID of the form CVE-YYYY-N"))
                })?;
            Ok(KevEntry {
                cve,
                date_added: text(v, "dateAdded").unwrap_or_default(),
                due_date: text(v, "dueDate"),
                ransomware: text(v, "knownRansomwareCampaignUse"),
            })
        })
        .collect()
}
