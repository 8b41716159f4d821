//! `medsec inventory …` and `medsec operator token list|revoke` against the current context's
//! server (the commands with `--data-dir` do the same on the server host's store).

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

use std::path::Path;

use anyhow::{Context as _, Result};

use super::Remote;
use super::client::{Body, segment};
use super::output::{Format, col, emit, print, time, wide};

/// `inventory model|vendor set NAME FILE`.
pub fn set(remote: &Remote, plural: &str, name: &str, file: &Path) -> Result<()> {
    let (client, format) = remote.open()?;
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let v = client
        .json(
            "PUT",
            &format!("/api/v1/inventory/{plural}/{}", segment(name)),
            Body::Bytes(&body, "application/json"),
        )
        .with_context(|| format!("{}", file.display()))?;
    match format {
        Format::Json | Format::Yaml => print(format, &v, &[], &[]),
        _ => emit(&format!("{plural} record {name:?} stored\n")),
    }
}

/// `inventory model|vendor list`.
pub fn list(remote: &Remote, plural: &str) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.get(&format!("/api/v1/inventory/{plural}"))?;
    let rows = v[plural].as_array().cloned().unwrap_or_default();
    if plural == "models" {
        print(
            format,
            &v,
            &rows,
            &[
                col("MODEL", "model"),
                col("VENDOR", "profile.vendor"),
                col("CLINICAL", "profile.clinical"),
                col("EXPOSURE", "profile.exposure"),
                col("SUPPORT", "profile.support.status"),
                col("DEVICES", "devices"),
                wide(col("HARDWARE IDS", "profile.hardware_ids")),
                wide(col("END OF SUPPORT", "profile.support.end_of_support")),
            ],
        )
    } else {
        print(
            format,
            &v,
            &rows,
            &[
                col("VENDOR", "vendor"),
                col("MISSING", "missing"),
                wide(col("RECORD", "record")),
            ],
        )
    }
}

/// `inventory support`: devices to replace, support ending, no profile.
pub fn support(remote: &Remote, json: bool) -> Result<()> {
    let (client, format) = remote.open_with_json(json)?;
    let v = client.get("/api/v1/inventory/support")?;
    if matches!(format, Format::Json | Format::Yaml) {
        return print(format, &v, &[], &[]);
    }
    let mut out = String::new();
    for (label, key) in [
        ("REPLACE", "replace"),
        ("ENDING", "ending_soon"),
        ("UNKNOWN", "unknown"),
    ] {
        for d in v[key].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{label:<8} {:<24} {:<20} {:<14} {}\n",
                d["device"].as_str().unwrap_or("-"),
                d["model"].as_str().unwrap_or("-"),
                d["site"].as_str().unwrap_or("-"),
                d["support"]["why"].as_str().unwrap_or("no model profile")
            ));
        }
    }
    emit(&out)?;
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    eprintln!(
        "{}: {} to replace, {} ending soon, {} unknown, {} supported",
        v["date"].as_str().unwrap_or("-"),
        n("replace"),
        n("ending_soon"),
        n("unknown"),
        v["supported"]
    );
    Ok(())
}

/// `operator token list`.
pub fn operator_tokens(remote: &Remote, json: bool) -> Result<()> {
    let (client, format) = remote.open_with_json(json)?;
    let v = client.get("/api/v1/operators/tokens")?;
    let rows = v.as_array().cloned().unwrap_or_default();
    print(
        format,
        &v,
        &rows,
        &[
            col("ID", "id"),
            col("OPERATOR", "name"),
            col("ROLES", "roles"),
            col("STATE", "state"),
            time("EXPIRES", "expires_at_ms"),
            wide(time("CREATED", "created_at_ms")),
            wide(time("REVOKED", "revoked_at_ms")),
        ],
    )
}

/// `operator token revoke ID`.
pub fn revoke_operator_token(remote: &Remote, id: &str) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.json(
        "POST",
        &format!("/api/v1/operators/tokens/{}/revoke", segment(id)),
        Body::None,
    )?;
    match format {
        Format::Json | Format::Yaml => print(format, &v, &[], &[]),
        _ => emit(&format!(
            "operator token {id} ({}) revoked: refused from its next request on\n",
            v["name"].as_str().unwrap_or("-")
        )),
    }
}
