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

mod csaf;
mod cyclonedx;
mod openvex;

use csaf::{csaf, export_csaf};
use cyclonedx::{cyclonedx, export_cdx};
use openvex::{export_openvex, openvex};

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

/// OpenVEX wants an IRI for `@id`; an identity that is not one (a bom-ref, a product name)
/// is written as `urn:x-medsec:id:` and its percent-encoding.
const ID_URN: &str = "urn:x-medsec:id:";

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

/// Sets a field of a JSON object (a no-op on anything else, which medsec never builds).
fn set(into: &mut Value, key: &str, value: Value) {
    if let Some(o) = into.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
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
