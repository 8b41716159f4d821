//! OpenVEX 0.2.0: statements read and written, products and subcomponents as IRIs (purls,
//! CPEs, or medsec's identity URN).

use super::*;

pub(super) fn openvex_iri(id: &str) -> String {
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

pub(super) fn openvex_id(p: &Value) -> Option<String> {
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

pub(super) fn openvex(doc: &Value) -> Result<Vec<Statement>, Error> {
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

pub(super) fn export_openvex(list: &[Statement], meta: &Meta) -> Value {
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
