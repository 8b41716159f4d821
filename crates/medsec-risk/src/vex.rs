//! VEX: statements that a product (and a component in it) is or is not affected by a
//! vulnerability, read from and written to CycloneDX VEX, OpenVEX 0.2.0 and CSAF 2.0 VEX.
//!
//! A statement names a product and, optionally, a component in it: it applies there and
//! nowhere else, never to a CVE globally. The status (not affected, affected, fixed, under
//! investigation), the CISA justification, the impact and action statements survive any
//! conversion between the three formats. CycloneDX's finer analysis (its six states, nine
//! justifications and responses) has no field in the other two; medsec keeps it in
//! OpenVEX's `status_notes` and in a CSAF vulnerability note, in the form
//! `cyclonedx-analysis: state=...; justification=...; response=...`, so a CycloneDX
//! statement comes back from either unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::ident;
use crate::schema::{Doc, array, text, validate};

/// The status of a product or component with respect to a vulnerability (the CISA
/// minimum requirements' four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not affected.
    NotAffected,
    /// Affected.
    Affected,
    /// Fixed.
    Fixed,
    /// Under investigation.
    UnderInvestigation,
}

impl Status {
    /// The OpenVEX and CISA name.
    pub fn name(self) -> &'static str {
        match self {
            Status::NotAffected => "not_affected",
            Status::Affected => "affected",
            Status::Fixed => "fixed",
            Status::UnderInvestigation => "under_investigation",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "not_affected" => Status::NotAffected,
            "affected" => Status::Affected,
            "fixed" => Status::Fixed,
            "under_investigation" => Status::UnderInvestigation,
            _ => return None,
        })
    }
}

/// Why a product is not affected (CISA's five, also OpenVEX's and CSAF's flag labels).
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// CycloneDX's analysis, kept whole for CycloneDX round trips.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CdxAnalysis {
    /// `resolved`, `resolved_with_pedigree`, `exploitable`, `in_triage`,
    /// `false_positive`, `not_affected`.
    pub state: String,
    /// One of CycloneDX's nine justifications.
    pub justification: Option<String>,
    /// `can_not_fix`, `will_not_fix`, `update`, `rollback`, `workaround_available`.
    pub response: Vec<String>,
}

/// One VEX statement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Statement {
    /// The vulnerability (a CVE or an advisory id).
    pub vulnerability: String,
    /// The product: a purl, CPE, BOM-Link or bom-ref.
    pub product: String,
    /// The component in the product it is about (`None`: the product as a whole).
    pub component: Option<String>,
    /// The status.
    pub status: Status,
    /// For not affected: one of [`JUSTIFICATIONS`].
    pub justification: Option<String>,
    /// For not affected: why, in words.
    pub impact_statement: Option<String>,
    /// For affected: what to do.
    pub action_statement: Option<String>,
    /// CycloneDX's own analysis, when the statement came from (or went through) CycloneDX.
    pub cyclonedx: Option<CdxAnalysis>,
}

/// The formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CycloneDX 1.4–1.6 with `vulnerabilities`.
    CycloneDx,
    /// OpenVEX 0.2.0.
    OpenVex,
    /// CSAF 2.0 (profile `csaf_vex`, or any CSAF document's product status).
    Csaf,
}

const CDX_TO_CISA: [(&str, &str); 9] = [
    ("code_not_present", "vulnerable_code_not_present"),
    ("code_not_reachable", "vulnerable_code_not_in_execute_path"),
    (
        "requires_configuration",
        "vulnerable_code_cannot_be_controlled_by_adversary",
    ),
    ("requires_dependency", "component_not_present"),
    (
        "requires_environment",
        "vulnerable_code_cannot_be_controlled_by_adversary",
    ),
    ("protected_by_compiler", "inline_mitigations_already_exist"),
    ("protected_at_runtime", "inline_mitigations_already_exist"),
    ("protected_at_perimeter", "inline_mitigations_already_exist"),
    (
        "protected_by_mitigating_control",
        "inline_mitigations_already_exist",
    ),
];

fn cisa_to_cdx(j: &str) -> &'static str {
    match j {
        "component_not_present" => "requires_dependency",
        "vulnerable_code_not_present" => "code_not_present",
        "vulnerable_code_not_in_execute_path" => "code_not_reachable",
        "vulnerable_code_cannot_be_controlled_by_adversary" => "requires_environment",
        _ => "protected_by_mitigating_control",
    }
}

fn cdx_state_to_status(state: &str) -> Option<Status> {
    Some(match state {
        "not_affected" | "false_positive" => Status::NotAffected,
        "exploitable" => Status::Affected,
        "resolved" | "resolved_with_pedigree" => Status::Fixed,
        "in_triage" => Status::UnderInvestigation,
        _ => return None,
    })
}

fn status_to_cdx_state(s: Status) -> &'static str {
    match s {
        Status::NotAffected => "not_affected",
        Status::Affected => "exploitable",
        Status::Fixed => "resolved",
        Status::UnderInvestigation => "in_triage",
    }
}

const MARK: &str = "cyclonedx-analysis: ";

/// OpenVEX requires an action statement for `affected` and an impact statement or
/// justification for `not_affected`; a statement converted from a format that lets them be
/// left out gets these words, which medsec reads back as no statement.
const NO_ACTION: &str = "No action statement was given in the source VEX document.";
const NO_IMPACT: &str = "No impact statement was given in the source VEX document.";

fn encode_cdx(a: &CdxAnalysis) -> String {
    format!(
        "{MARK}state={}; justification={}; response={}",
        a.state,
        a.justification.as_deref().unwrap_or(""),
        a.response.join(",")
    )
}

fn decode_cdx(text: &str) -> Option<CdxAnalysis> {
    let rest = text.trim().strip_prefix(MARK)?;
    let mut fields = BTreeMap::new();
    for part in rest.split("; ") {
        let (k, v) = part.split_once('=')?;
        fields.insert(k.trim(), v.trim());
    }
    Some(CdxAnalysis {
        state: (*fields.get("state")?).to_owned(),
        justification: fields
            .get("justification")
            .filter(|j| !j.is_empty())
            .map(|j| (*j).to_owned()),
        response: fields
            .get("response")
            .map(|r| {
                r.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn bad(format: &str, reason: String) -> Error {
    Error::Consistency {
        format: format.into(),
        reason,
    }
}

/// Reads a VEX document, its format told by its fields.
pub fn parse(bytes: &[u8]) -> Result<(Format, Vec<Statement>), Error> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::Format(format!("the VEX document is not JSON: {e}")))?;
    if doc.get("bomFormat").is_some() {
        Ok((Format::CycloneDx, cyclonedx(&doc)?))
    } else if doc
        .get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("https://openvex.dev/ns"))
    {
        Ok((Format::OpenVex, openvex(&doc)?))
    } else if doc.get("document").is_some() {
        Ok((Format::Csaf, csaf(&doc)?))
    } else {
        Err(Error::Format(
            "not a VEX document medsec reads: neither CycloneDX (`bomFormat`), OpenVEX \
             (`@context` https://openvex.dev/ns/...) nor CSAF (`document`)"
                .into(),
        ))
    }
}

/// The identity of a CycloneDX component: its purl, else its CPE, else the identity medsec
/// wrote in its `medsec:vex:id` property (a bom-ref of the product's own SBOM, kept apart
/// from the VEX document's bom-refs, which must be unique per product), else its bom-ref.
fn cdx_identity(c: &Value) -> Option<String> {
    let own = array(c, "properties")
        .iter()
        .find(|p| text(p, "name").as_deref() == Some("medsec:vex:id"))
        .and_then(|p| text(p, "value"));
    text(c, "purl")
        .or(own)
        .or_else(|| text(c, "cpe"))
        .or_else(|| text(c, "bom-ref"))
}

fn cyclonedx(doc: &Value) -> Result<Vec<Statement>, Error> {
    validate(
        Doc::CycloneDx,
        &format!("CycloneDX {}", text(doc, "specVersion").unwrap_or_default()),
        doc,
    )?;
    let subject = doc.get("metadata").and_then(|m| m.get("component"));
    let subject_ref = subject.and_then(|c| text(c, "bom-ref"));
    let subject_id = subject.and_then(cdx_identity);
    // bom-ref -> (product, component).
    let mut refs: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    if let Some(r) = &subject_ref {
        refs.insert(r.clone(), (subject_id.clone(), None));
    }
    fn walk(
        list: &[Value],
        product: Option<&String>,
        refs: &mut BTreeMap<String, (Option<String>, Option<String>)>,
    ) {
        for c in list {
            let id = cdx_identity(c);
            if let Some(r) = text(c, "bom-ref") {
                // A top-level component of a VEX with no subject is itself a product;
                // nested ones are components of it.
                match product {
                    Some(p) => refs.insert(r, (Some(p.clone()), id.clone())),
                    None => refs.insert(r, (id.clone(), None)),
                };
            }
            let inner = product.cloned().or_else(|| id.clone());
            walk(array(c, "components"), inner.as_ref(), refs);
        }
    }
    walk(array(doc, "components"), subject_id.as_ref(), &mut refs);
    let mut out = Vec::new();
    for v in array(doc, "vulnerabilities") {
        let id =
            text(v, "id").ok_or_else(|| bad("CycloneDX", "a vulnerability has no id".into()))?;
        let Some(analysis) = v.get("analysis") else {
            continue;
        };
        let Some(state) = text(analysis, "state") else {
            continue;
        };
        let status = cdx_state_to_status(&state).ok_or_else(|| {
            bad(
                "CycloneDX",
                format!("{id}: analysis state {state:?} is unknown"),
            )
        })?;
        let cdx_just = text(analysis, "justification");
        let property = |name: &str| {
            array(v, "properties")
                .iter()
                .find(|p| text(p, "name").as_deref() == Some(name))
                .and_then(|p| text(p, "value"))
        };
        let justification = property("medsec:vex:justification").or_else(|| {
            cdx_just.as_ref().and_then(|j| {
                CDX_TO_CISA
                    .iter()
                    .find(|(c, _)| c == j)
                    .map(|(_, cisa)| (*cisa).to_owned())
            })
        });
        let detail = text(analysis, "detail");
        let response: Vec<String> = array(analysis, "response")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        for a in array(v, "affects") {
            let r = text(a, "ref").unwrap_or_default();
            let (product, component) = if let Some(link) = r.strip_prefix("urn:cdx:") {
                // A BOM-Link: urn:cdx:SERIAL/VERSION#bom-ref names a component of the
                // product that BOM describes.
                match link.split_once('#') {
                    Some((bom, c)) => (Some(format!("urn:cdx:{bom}")), Some(c.to_owned())),
                    None => (Some(r.clone()), None),
                }
            } else {
                refs.get(&r).cloned().ok_or_else(|| {
                    bad(
                        "CycloneDX",
                        format!("{id}: affects ref {r:?} names no component"),
                    )
                })?
            };
            let product = product.ok_or_else(|| {
                bad(
                    "CycloneDX",
                    format!("{id}: affects ref {r:?} is in no product (no metadata.component)"),
                )
            })?;
            // `versions` narrows the statement to versions: each becomes an identity of its
            // own, `NAME@VERSION` (a purl takes the version) or `NAME@vers:...`.
            let versions: Vec<String> = array(a, "versions")
                .iter()
                .filter_map(|x| text(x, "version").or_else(|| text(x, "range")))
                .collect();
            // It narrows what the ref names: the component, or the product itself.
            let targets: Vec<(String, Option<String>)> = if versions.is_empty() {
                vec![(product, component)]
            } else {
                versions
                    .iter()
                    .map(|ver| match &component {
                        Some(c) => (product.clone(), Some(versioned(c, ver))),
                        None => (versioned(&product, ver), None),
                    })
                    .collect()
            };
            for (product, component) in targets {
                out.push(Statement {
                    vulnerability: id.clone(),
                    product,
                    component,
                    status,
                    justification: justification.clone(),
                    impact_statement: property("medsec:vex:impact_statement").or_else(|| {
                        (status == Status::NotAffected)
                            .then(|| detail.clone())
                            .flatten()
                    }),
                    action_statement: text(v, "recommendation").or_else(|| {
                        (status != Status::NotAffected)
                            .then(|| detail.clone())
                            .flatten()
                    }),
                    cyclonedx: Some(CdxAnalysis {
                        state: state.clone(),
                        justification: cdx_just.clone(),
                        response: response.clone(),
                    }),
                });
            }
        }
    }
    Ok(out)
}

/// OpenVEX wants an IRI for `@id`; an identity that is not one (a bom-ref, a product name)
/// is written as `urn:x-medsec:id:` and its percent-encoding.
const ID_URN: &str = "urn:x-medsec:id:";

fn openvex_iri(id: &str) -> String {
    let iri_safe = !id
        .chars()
        .any(|c| c.is_whitespace() || "<>\"{}|\\^`".contains(c));
    let named = ident::purl(id).is_some()
        || ident::cpe(id).is_some()
        || id.starts_with("urn:")
        || id.starts_with("https://");
    if iri_safe && named {
        id.to_owned()
    } else {
        format!(
            "{ID_URN}{}",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        )
    }
}

/// A product narrowed to a version or a `vers` range: a purl takes the version as its own.
fn versioned(product: &str, version: &str) -> String {
    if !version.starts_with("vers:")
        && let Some(p) = ident::purl(product)
        && p.version.is_none()
    {
        let (base, rest) = product.find(['?', '#']).map_or((product, ""), |i| {
            (
                product.get(..i).unwrap_or(product),
                product.get(i..).unwrap_or(""),
            )
        });
        return format!("{base}@{version}{rest}");
    }
    format!("{product}@{version}")
}

fn openvex_id(p: &Value) -> Option<String> {
    let decode = |s: String| match s.strip_prefix(ID_URN) {
        Some(rest) => percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .map_or(s.clone(), |d| d.into_owned()),
        None => s,
    };
    text(p, "@id").map(decode).or_else(|| {
        p.get("identifiers").and_then(|i| {
            text(i, "purl")
                .or_else(|| text(i, "cpe23"))
                .or_else(|| text(i, "cpe22"))
        })
    })
}

fn openvex(doc: &Value) -> Result<Vec<Statement>, Error> {
    // The document-level `timestamp` and `version` are required by the schema but bear on no
    // statement, and vexctl's own examples leave them out: they are tolerated when missing.
    let mut checked = doc.clone();
    if let Some(o) = checked.as_object_mut() {
        o.entry("timestamp")
            .or_insert_with(|| json!("1970-01-01T00:00:00Z"));
        o.entry("version").or_insert_with(|| json!(1));
    }
    validate(Doc::OpenVex, "OpenVEX 0.2.0", &checked)?;
    let mut out = Vec::new();
    for (n, s) in array(doc, "statements").iter().enumerate() {
        let vuln = s
            .get("vulnerability")
            .and_then(|v| text(v, "name").or_else(|| text(v, "@id")))
            .ok_or_else(|| bad("OpenVEX", format!("statement {n} names no vulnerability")))?;
        let status_text = text(s, "status").unwrap_or_default();
        let status = Status::parse(&status_text)
            .ok_or_else(|| bad("OpenVEX", format!("statement {n}: status {status_text:?}")))?;
        let notes = text(s, "status_notes");
        for p in array(s, "products") {
            let product = openvex_id(p)
                .ok_or_else(|| bad("OpenVEX", format!("statement {n}: a product has no @id")))?;
            let subs: Vec<Option<String>> = if array(p, "subcomponents").is_empty() {
                vec![None]
            } else {
                array(p, "subcomponents")
                    .iter()
                    .map(|c| {
                        openvex_id(c).map(Some).ok_or_else(|| {
                            bad(
                                "OpenVEX",
                                format!("statement {n}: a subcomponent has no @id"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            for component in subs {
                out.push(Statement {
                    vulnerability: vuln.clone(),
                    product: product.clone(),
                    component,
                    status,
                    justification: text(s, "justification"),
                    impact_statement: text(s, "impact_statement").filter(|t| t != NO_IMPACT),
                    action_statement: text(s, "action_statement").filter(|t| t != NO_ACTION),
                    cyclonedx: notes.as_deref().and_then(decode_cdx),
                });
            }
        }
    }
    Ok(out)
}

fn csaf(doc: &Value) -> Result<Vec<Statement>, Error> {
    validate(Doc::Csaf, "CSAF 2.0", doc)?;
    crate::csaf_rules::check(doc)?;
    let tree = doc.get("product_tree").unwrap_or(&Value::Null);
    // product id -> (identity, for a relationship: the product and the component).
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    fn ident_of(p: &Value) -> Option<(String, String)> {
        let id = text(p, "product_id")?;
        let helper = p.get("product_identification_helper");
        let name = helper
            .and_then(|h| text(h, "purl").or_else(|| text(h, "cpe")))
            .or_else(|| text(p, "name"))?;
        Some((id, name))
    }
    fn walk(branches: &[Value], names: &mut BTreeMap<String, String>) {
        for b in branches {
            if let Some((id, name)) = b.get("product").and_then(ident_of) {
                names.insert(id, name);
            }
            walk(array(b, "branches"), names);
        }
    }
    walk(array(tree, "branches"), &mut names);
    for p in array(tree, "full_product_names") {
        if let Some((id, name)) = ident_of(p) {
            names.insert(id, name);
        }
    }
    let mut pairs: BTreeMap<String, (String, Option<String>)> = names
        .iter()
        .map(|(id, name)| (id.clone(), (name.clone(), None)))
        .collect();
    for r in array(tree, "relationships") {
        let full = r
            .get("full_product_name")
            .and_then(|f| text(f, "product_id"));
        let component = text(r, "product_reference").and_then(|c| names.get(&c).cloned());
        let product = text(r, "relates_to_product_reference").and_then(|c| names.get(&c).cloned());
        if let (Some(full), Some(component), Some(product)) = (full, component, product) {
            pairs.insert(full, (product, Some(component)));
        }
    }
    let groups: BTreeMap<&str, Vec<&str>> = array(tree, "product_groups")
        .iter()
        .filter_map(|g| {
            Some((
                g.get("group_id")?.as_str()?,
                array(g, "product_ids")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect(),
            ))
        })
        .collect();
    let expand = |v: &Value| crate::csaf_rules::expand_groups(v, &groups);
    let mut out = Vec::new();
    for (n, v) in array(doc, "vulnerabilities").iter().enumerate() {
        let vuln = text(v, "cve")
            .or_else(|| array(v, "ids").first().and_then(|i| text(i, "text")))
            .ok_or_else(|| bad("CSAF", format!("vulnerability {} has no cve or ids", n + 1)))?;
        let per_product = |list: &[Value], field: &str| -> BTreeMap<String, String> {
            let mut m = BTreeMap::new();
            for x in list {
                if let Some(t) = text(x, field) {
                    for id in expand(x) {
                        m.entry(id).or_insert_with(|| t.clone());
                    }
                }
            }
            m
        };
        let flags = per_product(array(v, "flags"), "label");
        let impacts = per_product(
            &array(v, "threats")
                .iter()
                .filter(|t| text(t, "category").as_deref() == Some("impact"))
                .cloned()
                .collect::<Vec<_>>(),
            "details",
        );
        let actions = per_product(array(v, "remediations"), "details");
        let mut cdx: BTreeMap<String, CdxAnalysis> = BTreeMap::new();
        for note in array(v, "notes") {
            if let (Some(title), Some(body)) = (text(note, "title"), text(note, "text"))
                && let Some(pid) = title.strip_prefix("medsec cyclonedx-analysis for ")
                && let Some(a) = decode_cdx(&body)
            {
                cdx.insert(pid.to_owned(), a);
            }
        }
        let status = v.get("product_status").unwrap_or(&Value::Null);
        for (keys, st) in [
            (&["known_not_affected"][..], Status::NotAffected),
            (
                &["known_affected", "first_affected", "last_affected"][..],
                Status::Affected,
            ),
            (&["fixed", "first_fixed"][..], Status::Fixed),
            (&["under_investigation"][..], Status::UnderInvestigation),
        ] {
            for pid in keys
                .iter()
                .flat_map(|k| array(status, k))
                .filter_map(Value::as_str)
            {
                let (product, component) = pairs.get(pid).cloned().ok_or_else(|| {
                    bad(
                        "CSAF",
                        format!("product id {pid:?} is not in the product tree"),
                    )
                })?;
                let statement = Statement {
                    vulnerability: vuln.clone(),
                    product,
                    component,
                    status: st,
                    justification: flags.get(pid).cloned(),
                    impact_statement: impacts.get(pid).cloned(),
                    action_statement: actions.get(pid).cloned(),
                    cyclonedx: cdx.get(pid).cloned(),
                };
                if !out.contains(&statement) {
                    out.push(statement);
                }
            }
        }
    }
    Ok(out)
}

/// Details of the document a VEX export writes.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Who states it.
    pub author: String,
    /// When (RFC 3339).
    pub timestamp: String,
    /// A document id (CSAF tracking id; part of the OpenVEX @id and CycloneDX serial).
    pub id: String,
    /// The author's web address (CSAF `publisher.namespace`).
    pub namespace: String,
}

fn uuid_of(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let h = hex::encode(digest.as_ref());
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0").to_owned();
    format!(
        "{}-{}-5{}-8{}-{}",
        part(0, 8),
        part(8, 12),
        part(13, 16),
        part(17, 20),
        part(20, 32)
    )
}

/// Writes statements in `format`. The output is deterministic: the same statements and
/// meta give the same bytes.
pub fn export(statements: &[Statement], format: Format, meta: &Meta) -> Result<String, Error> {
    let mut list = statements.to_vec();
    list.sort();
    list.dedup();
    let value = match format {
        Format::CycloneDx => export_cdx(&list, meta),
        Format::OpenVex => export_openvex(&list, meta),
        Format::Csaf => {
            // CSAF holds one status and one justification per product and vulnerability
            // (its mandatory tests 6.1.6 and 6.1.33): two statements about the same one
            // cannot both be written, and medsec does not choose between them.
            for pair in list.windows(2) {
                if let [a, b] = pair
                    && (&a.vulnerability, &a.product, &a.component)
                        == (&b.vulnerability, &b.product, &b.component)
                {
                    return Err(Error::Consistency {
                        format: "CSAF 2.0".into(),
                        reason: format!(
                            "two statements about {} in {}{} ({} and {}): CSAF holds one per product",
                            a.vulnerability,
                            a.product,
                            a.component
                                .as_ref()
                                .map_or(String::new(), |c| format!(", component {c}")),
                            a.status.name(),
                            b.status.name()
                        ),
                    });
                }
            }
            export_csaf(&list, meta)
        }
    };
    serde_json::to_string_pretty(&value).map_err(|e| Error::Format(e.to_string()))
}

fn identity_fields(id: &str) -> Value {
    if ident::purl(id).is_some() {
        json!({"purl": id})
    } else if ident::cpe(id).is_some() {
        json!({"cpe": id})
    } else {
        json!({})
    }
}

/// [`identity_fields`] for a CycloneDX component: an identity that is neither purl nor CPE
/// goes in a property.
fn cdx_identity_fields(id: &str) -> Value {
    let v = identity_fields(id);
    if v.as_object().is_some_and(serde_json::Map::is_empty) {
        json!({"properties": [{"name": "medsec:vex:id", "value": id}]})
    } else {
        v
    }
}

fn export_cdx(list: &[Statement], meta: &Meta) -> Value {
    // Products as top-level components, their components nested, each with a bom-ref
    // unique to the (product, component) pair; affects refs point at them.
    let mut products: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in list {
        let e = products.entry(s.product.as_str()).or_default();
        if let Some(c) = &s.component
            && !e.contains(&c.as_str())
        {
            e.push(c);
        }
    }
    let pref = |p: &str| format!("product:{p}");
    let cref = |p: &str, c: &str| format!("product:{p}|component:{c}");
    let components: Vec<Value> = products
        .iter()
        .map(|(p, comps)| {
            let mut v = json!({"type": "firmware", "name": p, "bom-ref": pref(p)});
            merge(&mut v, cdx_identity_fields(p));
            let nested: Vec<Value> = comps
                .iter()
                .map(|c| {
                    let mut x = json!({"type": "library", "name": c, "bom-ref": cref(p, c)});
                    merge(&mut x, cdx_identity_fields(c));
                    x
                })
                .collect();
            if !nested.is_empty() {
                set(&mut v, "components", Value::Array(nested));
            }
            v
        })
        .collect();
    let vulnerabilities: Vec<Value> = list
        .iter()
        .map(|s| {
            let analysis = s.cyclonedx.clone().unwrap_or_else(|| CdxAnalysis {
                state: status_to_cdx_state(s.status).to_owned(),
                justification: s
                    .justification
                    .as_deref()
                    .map(|j| cisa_to_cdx(j).to_owned()),
                response: Vec::new(),
            });
            let mut a = json!({"state": analysis.state});
            if let Some(j) = &analysis.justification {
                set(&mut a, "justification", json!(j));
            }
            if !analysis.response.is_empty() {
                set(&mut a, "response", json!(analysis.response));
            }
            let mut props = Vec::new();
            if let Some(j) = &s.justification {
                props.push(json!({"name": "medsec:vex:justification", "value": j}));
            }
            if s.status == Status::NotAffected {
                if let Some(i) = &s.impact_statement {
                    set(&mut a, "detail", json!(i));
                }
            } else if let Some(i) = &s.impact_statement {
                props.push(json!({"name": "medsec:vex:impact_statement", "value": i}));
            }
            let target = match &s.component {
                Some(c) => cref(&s.product, c),
                None => pref(&s.product),
            };
            let mut v = json!({
                "id": s.vulnerability,
                "analysis": a,
                "affects": [{"ref": target}],
            });
            if let Some(r) = &s.action_statement {
                set(&mut v, "recommendation", json!(r));
            }
            if !props.is_empty() {
                set(&mut v, "properties", Value::Array(props));
            }
            v
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_of(&meta.id)),
        "version": 1,
        "metadata": {
            "timestamp": meta.timestamp,
            "authors": [{"name": meta.author}],
        },
        "components": components,
        "vulnerabilities": vulnerabilities,
    })
}

/// Sets a field of a JSON object (a no-op on anything else, which medsec never builds).
fn set(into: &mut Value, key: &str, value: Value) {
    if let Some(o) = into.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

fn export_openvex(list: &[Statement], meta: &Meta) -> Value {
    let statements: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut product = json!({"@id": openvex_iri(&s.product)});
            if let Some(c) = &s.component {
                set(
                    &mut product,
                    "subcomponents",
                    json!([{"@id": openvex_iri(c)}]),
                );
            }
            let mut v = json!({
                "vulnerability": {"name": s.vulnerability},
                "products": [product],
                "status": s.status.name(),
            });
            for (k, x) in [
                ("justification", &s.justification),
                ("impact_statement", &s.impact_statement),
                ("action_statement", &s.action_statement),
            ] {
                if let Some(x) = x {
                    set(&mut v, k, json!(x));
                }
            }
            if s.status == Status::Affected && s.action_statement.is_none() {
                set(&mut v, "action_statement", json!(NO_ACTION));
            }
            if s.status == Status::NotAffected
                && s.justification.is_none()
                && s.impact_statement.is_none()
            {
                set(&mut v, "impact_statement", json!(NO_IMPACT));
            }
            if let Some(a) = &s.cyclonedx {
                set(&mut v, "status_notes", json!(encode_cdx(a)));
            }
            v
        })
        .collect();
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://openvex.dev/docs/medsec/{}", uuid_of(&meta.id)),
        "author": meta.author,
        "timestamp": meta.timestamp,
        "version": 1,
        "statements": statements,
    })
}

fn export_csaf(list: &[Statement], meta: &Meta) -> Value {
    // Product ids: one per product and component identity, then one per relationship.
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    for s in list {
        for x in std::iter::once(&s.product).chain(s.component.as_ref()) {
            let n = ids.len() + 1;
            ids.entry(x.as_str())
                .or_insert_with(|| format!("CSAFPID-{n:04}"));
        }
    }
    let full: Vec<Value> = ids
        .iter()
        .map(|(name, id)| {
            let mut v = json!({"product_id": id, "name": name});
            let helper = identity_fields(name);
            if helper.as_object().is_some_and(|o| !o.is_empty()) {
                set(&mut v, "product_identification_helper", helper);
            }
            v
        })
        .collect();
    let mut relationships: BTreeMap<String, Value> = BTreeMap::new();
    let pid = |s: &Statement| -> String {
        let p = ids.get(s.product.as_str()).cloned().unwrap_or_default();
        match &s.component {
            Some(c) => format!("{}:{p}", ids.get(c.as_str()).cloned().unwrap_or_default()),
            None => p,
        }
    };
    for s in list {
        if let Some(c) = &s.component {
            let id = pid(s);
            relationships.entry(id.clone()).or_insert_with(|| {
                json!({
                    "category": "default_component_of",
                    "product_reference": ids.get(c.as_str()),
                    "relates_to_product_reference": ids.get(s.product.as_str()),
                    "full_product_name": {"product_id": id, "name": format!("{c} in {}", s.product)},
                })
            });
        }
    }
    let mut by_vuln: BTreeMap<&str, Vec<&Statement>> = BTreeMap::new();
    for s in list {
        by_vuln.entry(s.vulnerability.as_str()).or_default().push(s);
    }
    let vulnerabilities: Vec<Value> = by_vuln
        .iter()
        .map(|(vuln, statements)| {
            let mut status: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            let mut flags: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            let mut threats = Vec::new();
            let mut remediations = Vec::new();
            let mut notes = Vec::new();
            for s in statements {
                let id = pid(s);
                let key = match s.status {
                    Status::NotAffected => "known_not_affected",
                    Status::Affected => "known_affected",
                    Status::Fixed => "fixed",
                    Status::UnderInvestigation => "under_investigation",
                };
                status.entry(key).or_default().push(id.clone());
                if let Some(j) = &s.justification {
                    flags.entry(j.as_str()).or_default().push(id.clone());
                }
                if let Some(i) = &s.impact_statement {
                    threats.push(json!({"category": "impact", "details": i, "product_ids": [id]}));
                }
                if let Some(a) = &s.action_statement {
                    let category = if s.status == Status::Fixed {
                        "vendor_fix"
                    } else {
                        "mitigation"
                    };
                    remediations
                        .push(json!({"category": category, "details": a, "product_ids": [id]}));
                }
                if let Some(a) = &s.cyclonedx {
                    notes.push(json!({
                        "category": "other",
                        "title": format!("medsec cyclonedx-analysis for {id}"),
                        "text": encode_cdx(a),
                    }));
                }
            }
            let mut v = if vuln.starts_with("CVE-") {
                json!({"cve": vuln})
            } else {
                json!({"ids": [{"system_name": "medsec", "text": vuln}]})
            };
            set(&mut v, "product_status", json!(status));
            if !flags.is_empty() {
                let list = flags
                    .into_iter()
                    .map(|(label, ids)| json!({"label": label, "product_ids": ids}))
                    .collect();
                set(&mut v, "flags", Value::Array(list));
            }
            for (k, list) in [
                ("threats", threats),
                ("remediations", remediations),
                ("notes", notes),
            ] {
                if !list.is_empty() {
                    set(&mut v, k, Value::Array(list));
                }
            }
            v
        })
        .collect();
    let mut tree = json!({"full_product_names": full});
    if !relationships.is_empty() {
        set(
            &mut tree,
            "relationships",
            Value::Array(relationships.into_values().collect()),
        );
    }
    let mut title = String::new();
    let _ = write!(title, "VEX statements by {}", meta.author);
    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "notes": [{"category": "summary", "title": "About", "text": "VEX statements exported by medsec."}],
            "publisher": {"category": "vendor", "name": meta.author, "namespace": meta.namespace},
            "title": title,
            "tracking": {
                "current_release_date": meta.timestamp,
                "id": meta.id,
                "initial_release_date": meta.timestamp,
                "revision_history": [{"date": meta.timestamp, "number": "1", "summary": "Exported by medsec."}],
                "status": "final",
                "version": "1",
            },
        },
        "product_tree": tree,
        "vulnerabilities": vulnerabilities,
    })
}

/// Whether identity `given` (from a VEX statement) names `actual` (from an SBOM): the same
/// string, or the same package by purl where the statement's purl has no version or the
/// same one.
fn names(given: &str, actual: &str) -> bool {
    if given == actual {
        return true;
    }
    match (ident::purl(given), ident::purl(actual)) {
        (Some(g), Some(a)) => g.key == a.key && (g.version.is_none() || g.version == a.version),
        _ => match (ident::cpe(given), ident::cpe(actual)) {
            (Some(g), Some(a)) => g.key == a.key && (g.version.is_none() || g.version == a.version),
            _ => false,
        },
    }
}

impl Statement {
    /// Whether the statement is about the product an SBOM describes (`product_ids`, its
    /// version `product_version`): one of its names, or one of its names narrowed to its
    /// version (`NAME@VERSION`, `NAME@vers:...`).
    pub fn about_product(&self, product_ids: &[String], product_version: Option<&str>) -> bool {
        product_ids.iter().any(|id| {
            if names(&self.product, id) {
                return true;
            }
            let Some((base, narrowed)) = self.product.rsplit_once('@') else {
                return false;
            };
            let Some(version) = product_version else {
                return false;
            };
            if base != id && !names(base, id) {
                return false;
            }
            let narrowed = if narrowed.starts_with("vers:") {
                // `vers:generic/...` after a bom-ref; a purl's @ is its version's.
                self.product.get(base.len() + 1..).unwrap_or(narrowed)
            } else {
                narrowed
            };
            if narrowed.starts_with("vers:") {
                crate::range::Vers::parse(narrowed)
                    .is_ok_and(|r| r.scheme().parse(version).is_ok_and(|v| r.contains(&v)))
            } else {
                narrowed == version
            }
        })
    }

    /// Whether the statement is about a component known by these names (purl, CPE,
    /// bom-ref); a statement about the whole product is about every component in it.
    pub fn about_component(&self, component_ids: &[&str]) -> bool {
        match &self.component {
            None => true,
            Some(c) => component_ids.iter().any(|id| names(c, id)),
        }
    }
}
