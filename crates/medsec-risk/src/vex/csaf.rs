//! CSAF 2.0 VEX: statements read from the product tree and `product_status`, and written as
//! one document per export.

use super::*;

pub(super) fn csaf(doc: &Value) -> Result<Vec<Statement>, Error> {
    validate(Doc::Csaf, "CSAF 2.0", doc)?;
    crate::csaf_rules::check(doc, true)?;
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

pub(super) fn export_csaf(list: &[Statement], meta: &Meta) -> Value {
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
