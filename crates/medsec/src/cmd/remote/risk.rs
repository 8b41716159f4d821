//! `medsec sbom|advisory|vex upload`, `medsec findings` and `medsec ranking` against the
//! current context's server.

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::Remote;
use super::client::{Body, query, segment};
use super::output::{self, Format, col, emit, wide};

/// `medsec sbom|advisory|vex upload`.
#[derive(Subcommand)]
pub enum UploadCommand {
    /// Uploads documents to the server.
    Upload {
        /// The files (an advisory upload also takes zip archives of CSAF or OSV files).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// SBOM only: the image repository's target path the SBOM describes (its digest must
        /// be the one signed into that target).
        #[arg(long)]
        target: Option<String>,
        /// Advisories only: refuse a CSAF document that fails a mandatory test instead of
        /// reading it with warnings.
        #[arg(long)]
        strict: bool,
    },
}

/// What is uploaded.
#[derive(Clone, Copy)]
pub enum Document {
    /// A release SBOM.
    Sbom,
    /// Advisories.
    Advisory,
    /// VEX.
    Vex,
}

/// `medsec sbom|advisory|vex upload`.
pub fn run_upload(remote: &Remote, what: Document, cmd: UploadCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    let UploadCommand::Upload {
        files,
        target,
        strict,
    } = cmd;
    if matches!(what, Document::Sbom) && (target.is_none() || files.len() != 1) {
        bail!("an SBOM upload takes one file and --target PATH (the signed target it describes)");
    }
    let mut answers = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let zip = bytes.starts_with(b"PK\x03\x04");
        let media = if zip {
            "application/zip"
        } else {
            "application/json"
        };
        let path = match what {
            Document::Sbom => format!(
                "/api/v1/risk/sboms/{}",
                target
                    .as_deref()
                    .unwrap_or_default()
                    .trim_start_matches('/')
            ),
            Document::Advisory => format!(
                "/api/v1/risk/advisories{}",
                query(&[("strict", strict.then(|| "true".to_owned()))])
            ),
            Document::Vex => "/api/v1/risk/vex".to_owned(),
        };
        let method = if matches!(what, Document::Sbom) {
            "PUT"
        } else {
            "POST"
        };
        let v = client
            .json(method, &path, Body::Bytes(&bytes, media))
            .with_context(|| format!("uploading {}", file.display()))?;
        if matches!(format, Format::Table | Format::Wide) {
            emit(&format!("{}: {}\n", file.display(), summary(&v)))?;
        }
        answers.push(json!({"file": file.display().to_string(), "answer": v}));
    }
    if matches!(format, Format::Json | Format::Yaml) {
        output::print(format, &Value::Array(answers), &[], &[])?;
    }
    Ok(())
}

/// One line of an upload's answer: its scalar fields.
fn summary(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => v.to_string(),
    }
}

/// `medsec findings DEVICE`: one device's findings, a row per component and advisory (a
/// component without a finding shows its status alone).
pub fn run_findings(remote: &Remote, device: &str) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.get(&format!("/api/v1/devices/{}/findings", segment(device)))?;
    let mut rows = Vec::new();
    for c in v["components"].as_array().into_iter().flatten() {
        let findings = c["findings"].as_array().cloned().unwrap_or_default();
        if findings.is_empty() {
            if c["status"] != "clean" {
                rows.push(json!({"component": c["component"], "version": c["version"], "status": c["status"]}));
            }
            continue;
        }
        for f in findings {
            let mut row = f.clone();
            if let Some(o) = row.as_object_mut() {
                o.insert("component".into(), c["component"].clone());
                o.insert("version".into(), c["version"].clone());
                o.insert("status".into(), c["status"].clone());
                o.insert("kev".into(), (!f["known_exploited"].is_null()).into());
            }
            rows.push(row);
        }
    }
    output::print(
        format,
        &v,
        &rows,
        &[
            col("ADVISORY", "advisory"),
            col("COMPONENT", "component"),
            col("VERSION", "version"),
            col("STATUS", "status"),
            col("SEVERITY", "severity"),
            col("CVSS", "score"),
            col("MATCHED BY", "matched_by"),
            col("FIXED IN", "fixed_in"),
            wide(col("KEV", "kev")),
            wide(col("CONFIDENCE", "confidence")),
            wide(col("SUMMARY", "summary")),
        ],
    )?;
    if matches!(format, Format::Table | Format::Wide) {
        if let Some(why) = v["why"].as_str() {
            emit(&format!("no findings can be computed: {why}\n"))?;
        }
        let unread = v["unread_advisories"].as_array().map_or(0, Vec::len);
        if unread > 0 {
            emit(&format!(
                "{unread} stored advisory file(s) could not be read: these findings are incomplete\n"
            ))?;
        }
    }
    Ok(())
}

/// `medsec ranking`: the fleet ranked by device risk.
pub fn run_ranking(remote: &Remote, limit: usize) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.get(&format!("/api/v1/risk/devices?limit={limit}"))?;
    let rows = v["devices"].as_array().cloned().unwrap_or_default();
    output::print(
        format,
        &v,
        &rows,
        &[
            col("DEVICE", "device"),
            col("MODEL", "model"),
            col("SITE", "site"),
            col("SCORE", "risk.score"),
            col("PRIORITY", "risk.priority"),
            col("OPEN", "risk.open"),
            col("REPLACE", "replace"),
            wide(col("RELEASE", "release")),
            wide(col("TOP ADVISORY", "risk.advisory")),
            wide(col("QUARANTINED", "quarantined")),
        ],
    )?;
    if matches!(format, Format::Table | Format::Wide) {
        let unscored = v["unscored_no_model_profile"]
            .as_array()
            .map_or(0, Vec::len);
        emit(&format!(
            "{} device(s) ranked; {unscored} without a model profile (not scored); {} without a \
             release SBOM\n",
            v["ranked"], v["no_release_sbom"]
        ))?;
    }
    Ok(())
}
