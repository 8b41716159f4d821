//! CycloneDX VEX: statements read from a BOM's `vulnerabilities` and written back, with
//! CycloneDX's own analysis states and justifications mapped to the CISA ones.

use super::*;

pub(super) const CDX_TO_CISA: [(&str, &str); 9] = [
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

pub(super) fn cisa_to_cdx(j: &str) -> &'static str {
    match j {
        "component_not_present" => "requires_dependency",
        "vulnerable_code_not_present" => "code_not_present",
        "vulnerable_code_not_in_execute_path" => "code_not_reachable",
        "vulnerable_code_cannot_be_controlled_by_adversary" => "requires_environment",
        _ => "protected_by_mitigating_control",
    }
}

pub(super) fn cdx_state_to_status(state: &str) -> Option<Status> {
    Some(match state {
        "not_affected" | "false_positive" => Status::NotAffected,
        "exploitable" => Status::Affected,
        "resolved" | "resolved_with_pedigree" => Status::Fixed,
        "in_triage" => Status::UnderInvestigation,
        _ => return None,
    })
}

pub(super) fn status_to_cdx_state(s: Status) -> &'static str {
    match s {
        Status::NotAffected => "not_affected",
        Status::Affected => "exploitable",
        Status::Fixed => "resolved",
        Status::UnderInvestigation => "in_triage",
    }
}

/// The identity of a CycloneDX component: its purl, else its CPE, else the identity medsec
/// wrote in its `medsec:vex:id` property (a bom-ref of the product's own SBOM, kept apart
/// from the VEX document's bom-refs, which must be unique per product), else its bom-ref.
pub(super) fn cdx_identity(c: &Value) -> Option<String> {
    let own = array(c, "properties")
        .iter()
        .find(|p| text(p, "name").as_deref() == Some("medsec:vex:id"))
        .and_then(|p| text(p, "value"));
    text(c, "purl")
        .or(own)
        .or_else(|| text(c, "cpe"))
        .or_else(|| text(c, "bom-ref"))
}

pub(super) fn cyclonedx(doc: &Value) -> Result<Vec<Statement>, Error> {
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

/// [`identity_fields`] for a CycloneDX component: an identity that is neither purl nor CPE
/// goes in a property.
pub(super) fn cdx_identity_fields(id: &str) -> Value {
    let v = identity_fields(id);
    if v.as_object().is_some_and(serde_json::Map::is_empty) {
        json!({"properties": [{"name": "medsec:vex:id", "value": id}]})
    } else {
        v
    }
}

pub(super) fn export_cdx(list: &[Statement], meta: &Meta) -> Value {
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

pub(super) fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
