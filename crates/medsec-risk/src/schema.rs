//! The official JSON schemas medsec validates against, bundled (`schemas/`), so nothing is
//! fetched at run time; and small helpers for reading JSON.

use std::sync::OnceLock;

use serde_json::Value;

use crate::Error;

/// How many schema problems a refusal lists.
const MAX_PROBLEMS: usize = 20;

/// A document kind with a bundled schema.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Doc {
    CycloneDx,
    Spdx,
    Osv,
    Csaf,
    OpenVex,
}

struct Bundled;

impl jsonschema::Retrieve for Bundled {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = match uri.as_str().rsplit('/').next() {
            Some("spdx.schema.json") => include_str!("../schemas/spdx.schema.json"),
            Some("jsf-0.82.schema.json") => include_str!("../schemas/jsf-0.82.schema.json"),
            // FIRST's CVSS schemas (referred to by CSAF) are not bundled: here only what tells
            // the versions apart (CSAF picks one with oneOf) and the fields they require.
            // The scores themselves are checked by computing them from the vector
            // (advisory.rs, CSAF test 6.1.9).
            Some("cvss-v2.0.json") => {
                r#"{"type": "object", "required": ["version", "vectorString", "baseScore"],
                    "properties": {"version": {"const": "2.0"}, "vectorString": {"type": "string"},
                                   "baseScore": {"type": "number"}}}"#
            }
            Some("cvss-v3.0.json") => {
                r#"{"type": "object", "required": ["version", "vectorString", "baseScore", "baseSeverity"],
                    "properties": {"version": {"const": "3.0"}, "vectorString": {"type": "string", "pattern": "^CVSS:3[.]0/"},
                                   "baseScore": {"type": "number"}, "baseSeverity": {"type": "string"}}}"#
            }
            Some("cvss-v3.1.json") => {
                r#"{"type": "object", "required": ["version", "vectorString", "baseScore", "baseSeverity"],
                    "properties": {"version": {"const": "3.1"}, "vectorString": {"type": "string", "pattern": "^CVSS:3[.]1/"},
                                   "baseScore": {"type": "number"}, "baseSeverity": {"type": "string"}}}"#
            }
            _ => {
                return Err(
                    format!("{} is not bundled (medsec fetches no schema)", uri.as_str()).into(),
                );
            }
        };
        Ok(serde_json::from_str(text)?)
    }
}

type Compiled = Result<jsonschema::Validator, String>;

fn compile(schema: &str) -> Compiled {
    let schema: Value = serde_json::from_str(schema).map_err(|e| format!("bundled schema: {e}"))?;
    jsonschema::options()
        .with_retriever(Bundled)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("bundled schema does not compile: {e}"))
}

fn validator(doc: Doc) -> Result<&'static jsonschema::Validator, Error> {
    static CYCLONEDX: OnceLock<Compiled> = OnceLock::new();
    static SPDX: OnceLock<Compiled> = OnceLock::new();
    static OSV: OnceLock<Compiled> = OnceLock::new();
    static CSAF: OnceLock<Compiled> = OnceLock::new();
    static OPENVEX: OnceLock<Compiled> = OnceLock::new();
    let compiled = match doc {
        Doc::CycloneDx => {
            CYCLONEDX.get_or_init(|| compile(include_str!("../schemas/bom-1.6.schema.json")))
        }
        Doc::Spdx => SPDX.get_or_init(|| compile(include_str!("../schemas/spdx-2.3.schema.json"))),
        Doc::Osv => OSV.get_or_init(|| compile(include_str!("../schemas/osv.schema.json"))),
        Doc::Csaf => CSAF.get_or_init(|| compile(include_str!("../schemas/csaf-2.0.schema.json"))),
        Doc::OpenVex => {
            OPENVEX.get_or_init(|| compile(include_str!("../schemas/openvex-0.2.0.schema.json")))
        }
    };
    compiled.as_ref().map_err(|e| Error::Format(e.clone()))
}

/// Validates `value` against `doc`'s schema; `label` names the format in the refusal.
pub(crate) fn validate(doc: Doc, label: &str, value: &Value) -> Result<(), Error> {
    let problems: Vec<String> = validator(doc)?
        .iter_errors(value)
        .take(MAX_PROBLEMS)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Schema {
            format: label.to_owned(),
            problems,
        })
    }
}

/// A non-empty, trimmed string field.
pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An array field, empty when absent.
pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}
