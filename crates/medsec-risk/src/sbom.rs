//! SBOMs: CycloneDX (1.4, 1.5, 1.6 JSON) and SPDX 2.3 JSON, validated against the official
//! schemas bundled in `schemas/` (offline: no reference is fetched), then checked for what a
//! schema cannot say (unique references, dependencies that name real components), and
//! reduced to the components a release is made of.
//!
//! - **CycloneDX 1.4 and 1.5** are validated with the 1.6 schema, which accepts them: 1.6
//!   only added fields, and its `specVersion` is any string.
//! - **FDA fields the formats lack**: a component's level of support and end-of-support date
//!   are read from CycloneDX properties [`LEVEL_OF_SUPPORT`] and [`END_OF_SUPPORT`], and from
//!   SPDX's `validUntilDate` (end of support) and an annotation whose comment starts with
//!   `medsec:level-of-support=`.
//! - **Completeness** ([`Completeness`]): the NTIA minimum elements per component (supplier,
//!   version, a unique identifier, a hash), the FDA's support fields, and the document's
//!   author, timestamp and dependency relationships, each as the share that has it.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::schema::{Doc, array, text, validate};

/// The CycloneDX property holding a component's level of support (FDA premarket guidance:
/// e.g. `actively maintained`, `no longer maintained`, `abandoned`).
pub const LEVEL_OF_SUPPORT: &str = "medsec:level-of-support";
/// The CycloneDX property holding a component's end-of-support date (ISO 8601).
pub const END_OF_SUPPORT: &str = "medsec:end-of-support";

/// One component of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// CycloneDX `bom-ref`, or SPDX `SPDXID`.
    pub reference: Option<String>,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Who supplies it.
    pub supplier: Option<String>,
    /// Package URL.
    pub purl: Option<String>,
    /// CPE 2.3 (or 2.2) name, for firmware components without a purl.
    pub cpe: Option<String>,
    /// `algorithm:hex`, each.
    pub hashes: Vec<String>,
    /// Licence ids, names or expressions.
    pub licenses: Vec<String>,
    /// FDA: level of support.
    pub level_of_support: Option<String>,
    /// FDA: end-of-support date.
    pub end_of_support: Option<String>,
}

impl Component {
    /// Whether the component can be matched against advisories by identifier: it has a purl
    /// or a CPE. (Without one, a component with a supplier is still compared by vendor and
    /// product name: [`crate::matching`].)
    pub fn identifiable(&self) -> bool {
        self.purl.is_some() || self.cpe.is_some()
    }
}

/// An SBOM, read and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sbom {
    /// `CycloneDX 1.6`, `SPDX 2.3`, …
    pub format: String,
    /// What it describes (CycloneDX `metadata.component`, SPDX document name).
    pub subject: Option<String>,
    /// The subject's version, where given.
    pub subject_version: Option<String>,
    /// Names a VEX statement may give the subject (the product) by: its purl, CPE and
    /// bom-ref, and the BOM-Link `urn:cdx:SERIAL/VERSION` (CycloneDX); the document
    /// namespace and the described packages' purls (SPDX).
    pub product_ids: Vec<String>,
    /// When it was made.
    pub timestamp: Option<String>,
    /// Who or what made it (authors, tools, SPDX creators).
    pub authors: Vec<String>,
    /// Its components (nested CycloneDX components flattened), in document order.
    pub components: Vec<Component>,
    /// Dependency or containment relationships.
    pub relationships: usize,
}

/// One element's coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// The element.
    pub element: &'static str,
    /// Components (or, for document elements, documents: 0 or 1) that have it.
    pub have: usize,
    /// Out of.
    pub of: usize,
    /// Names of the first components that lack it.
    pub missing: Vec<String>,
}

/// How complete an SBOM is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completeness {
    /// The mean of the elements' coverages, 0 to 100.
    pub score: f64,
    /// Each element.
    pub elements: Vec<Coverage>,
}

impl Sbom {
    /// Reads a CycloneDX or SPDX JSON document: the format is told by `bomFormat` or
    /// `spdxVersion`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Format(format!("the SBOM is not JSON: {e}")))?;
        if doc.get("bomFormat").is_some() {
            Self::cyclonedx(&doc)
        } else if doc.get("spdxVersion").is_some() {
            Self::spdx(&doc)
        } else {
            Err(Error::Format(
                "not an SBOM medsec reads: neither CycloneDX JSON (`bomFormat`) nor SPDX JSON \
                 (`spdxVersion`)"
                    .into(),
            ))
        }
    }

    fn cyclonedx(doc: &Value) -> Result<Self, Error> {
        let spec = text(doc, "specVersion").unwrap_or_default();
        if !["1.4", "1.5", "1.6"].contains(&spec.as_str()) {
            return Err(Error::Format(format!(
                "CycloneDX specVersion {spec:?} is not read: medsec reads 1.4, 1.5 and 1.6"
            )));
        }
        let label = format!("CycloneDX {spec}");
        validate(Doc::CycloneDx, &label, doc)?;
        // Every `bom-ref` in the document (components, services, their nested ones, the
        // subject, formulation, …) is unique, and dependencies name one of them.
        let mut refs = BTreeSet::new();
        collect_refs(doc, &mut refs, &label)?;
        let mut components = Vec::new();
        let metadata = doc.get("metadata").unwrap_or(&Value::Null);
        let subject = metadata.get("component");
        flatten(array(doc, "components"), &mut components);
        let dependencies = array(doc, "dependencies");
        for d in dependencies {
            for r in std::iter::once(d.get("ref")).chain(array(d, "dependsOn").iter().map(Some)) {
                if let Some(r) = r.and_then(Value::as_str)
                    && !refs.contains(r)
                {
                    return Err(Error::Consistency {
                        format: label,
                        reason: format!("dependency {r:?} names no component or service"),
                    });
                }
            }
        }
        let mut authors: Vec<String> = array(metadata, "authors")
            .iter()
            .filter_map(|a| text(a, "name").or_else(|| text(a, "email")))
            .collect();
        let tools = metadata.get("tools");
        // 1.4: tools is an array; 1.5 and 1.6: {components, services}.
        let tool_list = match tools {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(t) => array(t, "components")
                .iter()
                .chain(array(t, "services"))
                .collect(),
            None => Vec::new(),
        };
        authors.extend(
            tool_list
                .iter()
                .filter_map(|t| text(t, "name"))
                .map(|n| format!("tool: {n}")),
        );
        if let Some(m) = metadata
            .get("manufacturer")
            .or_else(|| metadata.get("supplier"))
        {
            authors.extend(text(m, "name"));
        }
        Ok(Self {
            format: label,
            subject: subject.and_then(|c| text(c, "name")),
            subject_version: subject.and_then(|c| text(c, "version")),
            product_ids: subject
                .iter()
                .flat_map(|c| ["purl", "cpe", "bom-ref"].map(|k| text(c, k)))
                .flatten()
                .chain(text(doc, "serialNumber").map(|serial| {
                    format!(
                        "urn:cdx:{}/{}",
                        serial.trim_start_matches("urn:uuid:"),
                        doc.get("version").and_then(Value::as_u64).unwrap_or(1)
                    )
                }))
                .collect(),
            timestamp: text(metadata, "timestamp"),
            authors,
            components,
            relationships: dependencies
                .iter()
                .map(|d| array(d, "dependsOn").len())
                .sum(),
        })
    }

    fn spdx(doc: &Value) -> Result<Self, Error> {
        let version = text(doc, "spdxVersion").unwrap_or_default();
        if version != "SPDX-2.3" {
            return Err(Error::Format(format!(
                "SPDX version {version:?} is not read: medsec reads SPDX-2.3 JSON"
            )));
        }
        let label = "SPDX 2.3".to_owned();
        validate(Doc::Spdx, &label, doc)?;
        let mut ids = BTreeSet::new();
        if let Some(id) = text(doc, "SPDXID") {
            ids.insert(id);
        }
        let mut components = Vec::new();
        for p in array(doc, "packages") {
            let id = text(p, "SPDXID");
            if let Some(id) = &id
                && !ids.insert(id.clone())
            {
                return Err(duplicate(&label, id));
            }
            let refs = array(p, "externalRefs");
            let locator = |types: &[&str]| {
                refs.iter()
                    .find(|r| {
                        r.get("referenceType")
                            .and_then(Value::as_str)
                            .is_some_and(|t| types.contains(&t))
                    })
                    .and_then(|r| text(r, "referenceLocator"))
            };
            let level = array(p, "annotations").iter().find_map(|a| {
                text(a, "comment")?
                    .strip_prefix("medsec:level-of-support=")
                    .map(|s| s.trim().to_owned())
            });
            components.push(Component {
                reference: id,
                name: text(p, "name").unwrap_or_default(),
                version: text(p, "versionInfo"),
                supplier: text(p, "supplier").filter(|s| s != "NOASSERTION").map(|s| {
                    s.split_once(':')
                        .map_or(s.clone(), |(_, name)| name.trim().to_owned())
                }),
                purl: locator(&["purl"]),
                cpe: locator(&["cpe23Type", "cpe22Type"]),
                hashes: array(p, "checksums")
                    .iter()
                    .filter_map(|c| {
                        Some(format!(
                            "{}:{}",
                            text(c, "algorithm")?.to_ascii_lowercase(),
                            text(c, "checksumValue")?
                        ))
                    })
                    .collect(),
                licenses: ["licenseConcluded", "licenseDeclared"]
                    .iter()
                    .filter_map(|k| text(p, k))
                    .filter(|l| l != "NOASSERTION" && l != "NONE")
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                level_of_support: level,
                end_of_support: text(p, "validUntilDate"),
            });
        }
        for f in array(doc, "files").iter().chain(array(doc, "snippets")) {
            if let Some(id) = text(f, "SPDXID")
                && !ids.insert(id.clone())
            {
                return Err(duplicate(&label, &id));
            }
        }
        let relationships = array(doc, "relationships");
        for r in relationships {
            for key in ["spdxElementId", "relatedSpdxElement"] {
                if let Some(id) = text(r, key)
                    && id != "NOASSERTION"
                    && id != "NONE"
                    && !id.starts_with("DocumentRef-")
                    && !ids.contains(&id)
                {
                    return Err(Error::Consistency {
                        format: label,
                        reason: format!("relationship {key} {id:?} names no element"),
                    });
                }
            }
        }
        let creation = doc.get("creationInfo").unwrap_or(&Value::Null);
        Ok(Self {
            format: label,
            subject: text(doc, "name"),
            subject_version: None,
            product_ids: text(doc, "documentNamespace")
                .into_iter()
                .chain(
                    array(doc, "documentDescribes")
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(|id| {
                            components
                                .iter()
                                .find(|c| c.reference.as_deref() == Some(id))
                        })
                        .filter_map(|c| c.purl.clone()),
                )
                .collect(),
            timestamp: text(creation, "created"),
            authors: array(creation, "creators")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            components,
            relationships: relationships.len(),
        })
    }

    /// How complete it is.
    pub fn completeness(&self) -> Completeness {
        type Has = fn(&Component) -> bool;
        let checks: [(&'static str, Has); 6] = [
            ("supplier", |c| c.supplier.is_some()),
            ("version", |c| c.version.is_some()),
            ("unique identifier (purl or CPE)", Component::identifiable),
            ("hash", |c| !c.hashes.is_empty()),
            ("level of support", |c| c.level_of_support.is_some()),
            ("end-of-support date", |c| c.end_of_support.is_some()),
        ];
        let n = self.components.len();
        let mut elements: Vec<Coverage> = checks
            .iter()
            .map(|(element, has)| {
                let lacking: Vec<&Component> = self.components.iter().filter(|c| !has(c)).collect();
                Coverage {
                    element,
                    have: n - lacking.len(),
                    of: n,
                    missing: lacking.iter().take(5).map(|c| c.name.clone()).collect(),
                }
            })
            .collect();
        for (element, present) in [
            ("author", !self.authors.is_empty()),
            ("timestamp", self.timestamp.is_some()),
            ("dependency relationships", self.relationships > 0),
            ("components", n > 0),
        ] {
            elements.push(Coverage {
                element,
                have: usize::from(present),
                of: 1,
                missing: Vec::new(),
            });
        }
        let score = elements
            .iter()
            .map(|e| {
                if e.of == 0 {
                    0.0
                } else {
                    e.have as f64 / e.of as f64
                }
            })
            .sum::<f64>()
            / elements.len() as f64
            * 100.0;
        Completeness {
            score: (score * 10.0).round() / 10.0,
            elements,
        }
    }
}

fn duplicate(format: &str, reference: &str) -> Error {
    Error::Consistency {
        format: format.to_owned(),
        reason: format!("reference {reference:?} is used twice"),
    }
}

/// Adds every `bom-ref` under `v` to `refs`; `Consistency` on one seen before.
fn collect_refs(v: &Value, refs: &mut BTreeSet<String>, label: &str) -> Result<(), Error> {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "bom-ref"
                    && let Some(r) = child.as_str()
                    && !refs.insert(r.to_owned())
                {
                    return Err(duplicate(label, r));
                }
                collect_refs(child, refs, label)?;
            }
        }
        Value::Array(items) => {
            for child in items {
                collect_refs(child, refs, label)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Adds `list` and the components nested in them.
fn flatten(list: &[Value], out: &mut Vec<Component>) {
    for c in list {
        let reference = text(c, "bom-ref");
        let property = |name: &str| {
            array(c, "properties")
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|p| text(p, "value"))
        };
        out.push(Component {
            reference,
            name: text(c, "name").unwrap_or_default(),
            version: text(c, "version"),
            supplier: c
                .get("supplier")
                .and_then(|s| text(s, "name"))
                .or_else(|| c.get("manufacturer").and_then(|s| text(s, "name")))
                .or_else(|| text(c, "publisher")),
            purl: text(c, "purl"),
            cpe: text(c, "cpe"),
            hashes: array(c, "hashes")
                .iter()
                .filter_map(|h| {
                    Some(format!(
                        "{}:{}",
                        text(h, "alg")?.to_ascii_lowercase(),
                        text(h, "content")?
                    ))
                })
                .collect(),
            licenses: array(c, "licenses")
                .iter()
                .filter_map(|l| {
                    text(l, "expression").or_else(|| {
                        let l = l.get("license")?;
                        text(l, "id").or_else(|| text(l, "name"))
                    })
                })
                .collect(),
            level_of_support: property(LEVEL_OF_SUPPORT),
            end_of_support: property(END_OF_SUPPORT),
        });
        flatten(array(c, "components"), out);
    }
}
