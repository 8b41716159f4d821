//! The CSAF 2.0 mandatory tests (specification section 6.1) that bear on what medsec
//! reads from a document: which products exist, which status each has, its scores and its
//! VEX justifications. In strict mode a document failing one is refused; the refusal names
//! the test. Otherwise the tests whose failure real publishers commit and whose meaning
//! stays clear (6.1.9, 6.1.13, 6.1.23, 6.1.31, 6.1.33: see [`LENIENT`]) give a warning
//! that says how the document is read, and the others still refuse it.
//!
//! Implemented: 6.1.1 (missing definition of a product id), 6.1.2 (multiple definition),
//! 6.1.3 (circular definition), 6.1.4 (missing definition of a group id), 6.1.5 (multiple
//! definition of a group id), 6.1.6 (contradicting product status), 6.1.8 (CVSS objects
//! against their schema, through the schema), 6.1.9 (CVSS scores that do not follow from
//! the vector), 6.1.13 (invalid purl), 6.1.23 (the same CVE twice), 6.1.31 (a range in a
//! `product_version`), 6.1.33 (more than one VEX justification for a product). The others
//! (revision history, language tags, translations, document profiles' required sections)
//! concern publishing, not matching, and are not checked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Error;
use crate::schema::{array, text};

fn fail(test: &str, reason: String) -> Error {
    Error::Consistency {
        format: "CSAF 2.0".into(),
        reason: format!("mandatory test {test}: {reason}"),
    }
}

/// Every value of `key` anywhere under `v`, with the field it was found in.
fn collect<'a>(v: &'a Value, keys: &[&str], out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if keys.contains(&k.as_str()) {
                    match x {
                        Value::String(s) => out.push((k.as_str(), s.as_str())),
                        Value::Array(list) => {
                            out.extend(list.iter().filter_map(|s| Some((k.as_str(), s.as_str()?))));
                        }
                        _ => {}
                    }
                }
                collect(x, keys, out);
            }
        }
        Value::Array(list) => list.iter().for_each(|x| collect(x, keys, out)),
        _ => {}
    }
}

const STATUS_GROUPS: [(&str, &[&str]); 4] = [
    (
        "affected",
        &["first_affected", "known_affected", "last_affected"],
    ),
    ("not affected", &["known_not_affected"]),
    ("fixed", &["first_fixed", "fixed"]),
    ("under investigation", &["under_investigation"]),
];

const RANGE_WORDS: [&str; 11] = [
    "<", ">", "after", "all", "before", "earlier", "later", "prior", "versions", "vers:", "≤",
];

/// The tests a document may fail and still be read (when not strict), and how it is read.
pub(crate) const LENIENT: [(&str, &str); 5] = [
    ("6.1.9", "the scores are computed from the vector"),
    (
        "6.1.13",
        "the purl is ignored; the product is matched by vendor and name",
    ),
    ("6.1.23", "the items are read as one vulnerability"),
    ("6.1.31", "the text is read as a range"),
    ("6.1.33", "the flags are ignored in matching"),
];

/// Failures of the tests: in strict mode the first refuses the document; otherwise those in
/// [`LENIENT`] become warnings and any other refuses it.
struct Outcome {
    strict: bool,
    warnings: Vec<String>,
}

impl Outcome {
    fn failed(&mut self, test: &str, reason: String) -> Result<(), Error> {
        match LENIENT.iter().find(|(t, _)| *t == test) {
            Some((_, how)) if !self.strict => {
                self.warnings.push(format!(
                    "mandatory test {test}: {reason}; read anyway: {how}"
                ));
                Ok(())
            }
            _ => Err(fail(test, reason)),
        }
    }
}

/// Runs the implemented mandatory tests; the warnings of those forgiven.
pub(crate) fn check(doc: &Value, strict: bool) -> Result<Vec<String>, Error> {
    let mut outcome = Outcome {
        strict,
        warnings: Vec::new(),
    };
    tests(doc, &mut outcome)?;
    Ok(outcome.warnings)
}

fn tests(doc: &Value, outcome: &mut Outcome) -> Result<(), Error> {
    let tree = doc.get("product_tree").unwrap_or(&Value::Null);
    // 6.1.1 / 6.1.2: product ids, defined once and referred to only when defined.
    let mut defined = Vec::new();
    collect(tree, &["product_id"], &mut defined);
    let mut products = BTreeSet::new();
    for (_, id) in &defined {
        if !products.insert(*id) {
            return Err(fail("6.1.2", format!("product id {id:?} is defined twice")));
        }
    }
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in array(tree, "product_groups") {
        let Some(id) = g.get("group_id").and_then(Value::as_str) else {
            continue;
        };
        let members = array(g, "product_ids")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if groups.insert(id, members).is_some() {
            return Err(fail("6.1.5", format!("group id {id:?} is defined twice")));
        }
    }
    let mut refs = Vec::new();
    collect(
        tree,
        &[
            "product_ids",
            "product_reference",
            "relates_to_product_reference",
        ],
        &mut refs,
    );
    let vulns = array(doc, "vulnerabilities");
    for v in vulns {
        collect(v, &["product_ids", "products"], &mut refs);
        if let Some(status) = v.get("product_status") {
            collect(
                status,
                &STATUS_GROUPS
                    .iter()
                    .flat_map(|g| g.1.iter().copied())
                    .collect::<Vec<_>>(),
                &mut refs,
            );
        }
    }
    if let Some((field, id)) = refs.iter().find(|(_, id)| !products.contains(id)) {
        return Err(fail(
            "6.1.1",
            format!("product id {id:?} (in {field}) is not defined in the product tree"),
        ));
    }
    let mut group_refs = Vec::new();
    for v in vulns {
        collect(v, &["group_ids"], &mut group_refs);
    }
    if let Some((_, id)) = group_refs.iter().find(|(_, id)| !groups.contains_key(id)) {
        return Err(fail("6.1.4", format!("group id {id:?} is not defined")));
    }
    // 6.1.3: a relationship's product may not be made of itself.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in array(tree, "relationships") {
        if let Some(full) = r
            .get("full_product_name")
            .and_then(|f| f.get("product_id"))
            .and_then(Value::as_str)
        {
            let to = edges.entry(full).or_default();
            for k in ["product_reference", "relates_to_product_reference"] {
                if let Some(x) = r.get(k).and_then(Value::as_str) {
                    to.push(x);
                }
            }
        }
    }
    for start in edges.keys() {
        let mut stack: Vec<&str> = edges.get(start).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if n == *start {
                return Err(fail(
                    "6.1.3",
                    format!("product id {start:?} is defined through itself"),
                ));
            }
            if seen.insert(n) {
                stack.extend(edges.get(n).into_iter().flatten());
            }
        }
    }
    // 6.1.13: purls must parse.
    let mut purls = Vec::new();
    collect(tree, &["purl"], &mut purls);
    for (_, p) in purls
        .iter()
        .filter(|(_, p)| crate::ident::purl(p).is_none())
    {
        outcome.failed("6.1.13", format!("{p:?} is not a valid purl"))?;
    }
    // 6.1.31: a product_version names one version.
    fn versions<'a>(branches: &'a [Value], out: &mut Vec<&'a str>) {
        for b in branches {
            if b.get("category").and_then(Value::as_str) == Some("product_version")
                && let Some(n) = b.get("name").and_then(Value::as_str)
            {
                out.push(n);
            }
            versions(array(b, "branches"), out);
        }
    }
    let mut names = Vec::new();
    versions(array(tree, "branches"), &mut names);
    for n in names {
        let lower = n.to_lowercase();
        if RANGE_WORDS.iter().any(|w| {
            if w.chars().all(char::is_alphabetic) {
                lower.split_whitespace().any(|x| x == *w)
            } else {
                lower.contains(w)
            }
        }) {
            outcome.failed(
                "6.1.31",
                format!("product_version {n:?} is a range; use product_version_range"),
            )?;
        }
    }
    let expand = |v: &Value| expand_groups(v, &groups);
    let mut cves = BTreeSet::new();
    for (n, v) in vulns.iter().enumerate() {
        // 6.1.23: one vulnerability item per CVE.
        if let Some(cve) = text(v, "cve")
            && !cves.insert(cve.clone())
        {
            outcome.failed(
                "6.1.23",
                format!("{cve} appears in more than one vulnerability"),
            )?;
        }
        // 6.1.6: one status per product.
        let mut status_of: BTreeMap<&str, &str> = BTreeMap::new();
        if let Some(status) = v.get("product_status") {
            for (group, keys) in STATUS_GROUPS {
                for id in keys
                    .iter()
                    .flat_map(|k| array(status, k))
                    .filter_map(Value::as_str)
                {
                    if let Some(other) = status_of.insert(id, group)
                        && other != group
                    {
                        return Err(fail(
                            "6.1.6",
                            format!(
                                "vulnerability {} gives product {id:?} both {other} and {group}",
                                n + 1
                            ),
                        ));
                    }
                }
            }
        }
        // 6.1.33: at most one VEX justification per product.
        let mut flagged = BTreeSet::new();
        for f in array(v, "flags") {
            for id in expand(f) {
                if !flagged.insert(id.clone()) {
                    outcome.failed(
                        "6.1.33",
                        format!(
                            "vulnerability {} flags product {id:?} more than once",
                            n + 1
                        ),
                    )?;
                }
            }
        }
        // 6.1.9: the scores follow from the vector.
        for s in array(v, "scores") {
            for key in ["cvss_v3", "cvss_v2"] {
                let Some(c) = s.get(key) else { continue };
                let vector = text(c, "vectorString").unwrap_or_default();
                let scores = match crate::cvss::score(&vector) {
                    Ok(s) => s,
                    Err(e) => {
                        // Not even a vector to compute from: refused either way.
                        return Err(fail("6.1.9", e.to_string()));
                    }
                };
                let said = |k: &str| c.get(k).and_then(Value::as_f64);
                let differs = |claimed: Option<f64>, computed: Option<f64>| matches!((claimed, computed), (Some(a), Some(b)) if (a - b).abs() > 1e-9);
                if differs(said("baseScore"), Some(scores.base))
                    || differs(said("temporalScore"), scores.temporal)
                    || differs(said("environmentalScore"), scores.environmental)
                {
                    outcome.failed(
                        "6.1.9",
                        format!(
                            "the {key} scores given ({:?} base) do not follow from {vector} ({} base)",
                            said("baseScore"),
                            scores.base
                        ),
                    )?;
                }
                if key == "cvss_v3"
                    && let Some(sev) = text(c, "baseSeverity")
                {
                    let computed = crate::cvss::score(&vector)
                        .ok()
                        .and_then(|_| severity_of(scores.base));
                    if computed.is_some_and(|x| !x.eq_ignore_ascii_case(&sev)) {
                        outcome.failed(
                            "6.1.9",
                            format!(
                                "baseSeverity {sev} does not follow from base score {}",
                                scores.base
                            ),
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The product ids an item (flag, threat, remediation) names: its `product_ids` and the
/// members of its `group_ids`.
pub(crate) fn expand_groups<S: AsRef<str>>(
    v: &Value,
    groups: &BTreeMap<&str, Vec<S>>,
) -> Vec<String> {
    let mut ids: Vec<String> = array(v, "product_ids")
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    for g in array(v, "group_ids").iter().filter_map(Value::as_str) {
        ids.extend(
            groups
                .get(g)
                .into_iter()
                .flatten()
                .map(|s| s.as_ref().to_owned()),
        );
    }
    ids
}

fn severity_of(base: f64) -> Option<&'static str> {
    Some(if base == 0.0 {
        "NONE"
    } else if base < 4.0 {
        "LOW"
    } else if base < 7.0 {
        "MEDIUM"
    } else if base < 9.0 {
        "HIGH"
    } else {
        "CRITICAL"
    })
}
