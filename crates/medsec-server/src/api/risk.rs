//! Risk on the operator API: findings per device from the release its signed version report
//! names ([`medsec_risk`]).
//!
//! - `PUT /api/v1/risk/sboms/{*target}` (`risk.write`): a release's SBOM. The target must be
//!   in the image repository, and the SBOM's SHA-256 must be the one signed into its
//!   metadata (`repo add-target --sbom`), so the SBOM a device runs is provable. Stored once
//!   per hardware id the target is signed for, with the target's version.
//! - `POST /api/v1/risk/advisories` (`risk.write`): one OSV record, CSAF 2.0 document or the
//!   CISA KEV catalogue, checked as `medsec risk match` checks it. Re-importing one with the
//!   same `modified` date changes nothing; another replaces it.
//! - `POST /api/v1/risk/vex` (`risk.write`): a VEX document (CycloneDX, OpenVEX, CSAF).
//! - `GET /api/v1/devices/{id}/findings` (`risk.read` on the device): the device's release
//!   (hardware id and the version of its last signed report), its components matched, the
//!   VEX applied, and each finding's risk in the device's context (its quarantine from the
//!   fleet's state; clinical class, exposure and segmentation from the model's profile
//!   (`inventory/records.rs`) unless the query names them; a model whose vendor no longer ships updates
//!   scores as unfixable), with the model's support state.
//! - `GET /api/v1/risk/advisories/{id}/devices` (`risk.read`): the releases and devices one
//!   advisory (by id or alias) affects, through the release index.
//! - `GET /api/v1/risk/devices` (`risk.read`): the fleet ranked by device risk (the worst open
//!   finding), each device in its model's context.
//! - `GET /api/v1/risk/summary` (`risk.read`): the ranking's counts, scored once per group of
//!   devices alike in release, model and quarantine (the console's dashboard).
//!
//! The parsed documents come from `crate::risk::RiskCache`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use medsec_risk::advisory::{self, Document};
use medsec_risk::inventory::{ModelProfile, SupportState};
use medsec_risk::sbom::Sbom;
use medsec_risk::score::{Clinical, Context, Controls, Exposure};
use medsec_store::prelude::*;
use medsec_store::{AdvisoryDoc, ReleaseSbomRow};
use serde::Deserialize;

use super::auth::{Auth, DevicePath};
use super::error::ApiError;
use crate::audit_log::event;
use crate::authz::Target;
use crate::state::{Conn, now_ms};

pub(crate) fn audit_write(
    conn: &Conn,
    who: &str,
    resource: &str,
    detail: String,
) -> medsec_audit::Event {
    let mut e = event("risk", who, "risk.write", resource, "info");
    e.source = conn.addr.to_string();
    e.detail = detail;
    e
}

/// What every upload does first: the caller must hold `risk.write`, and the document must be
/// UTF-8. Returns the caller's label, the text and its SHA-256 (hex).
pub(crate) async fn upload(
    auth: &Auth,
    body: &Bytes,
    what: &str,
) -> Result<(String, String, String), ApiError> {
    let who = auth.authorize("risk.write", &Target::Fleet).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest(format!("the {what} is not UTF-8")))?;
    let digest = hex::encode(medsec_crypto::digest::sha256(body));
    Ok((who.subject.label(), text, digest))
}

/// Why a document was refused, in one line.
fn refusal(e: &medsec_risk::Error) -> String {
    match e {
        medsec_risk::Error::Schema { format, problems } => {
            format!("not a valid {format} document: {}", problems.join("; "))
        }
        other => other.to_string(),
    }
}

fn refused(e: &medsec_risk::Error) -> ApiError {
    ApiError::BadRequest(refusal(e))
}

/// `PUT /api/v1/risk/sboms/{*target}`.
pub(crate) async fn put_sbom(
    auth: Auth,
    Path(target): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (who, text, digest) = upload(&auth, &body, "SBOM").await?;
    let image = auth.state.director.image().ok_or_else(|| {
        ApiError::Conflict(
            "no image_repository is configured: an SBOM is accepted only for a signed target"
                .into(),
        )
    })?;
    let entry = crate::director::lookup(image, &target)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{target:?} is not a target of the image repository"
            ))
        })?;
    let medsec = entry
        .custom
        .as_ref()
        .and_then(|c| c.get("medsec"))
        .cloned()
        .unwrap_or_default();
    let signed = medsec
        .pointer("/sbom/sha256")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{target:?} has no SBOM digest in its signed metadata (repo add-target --sbom)"
            ))
        })?;
    if !digest.eq_ignore_ascii_case(signed) {
        return Err(ApiError::BadRequest(format!(
            "this SBOM's SHA-256 is {digest}, but the one signed into {target:?} is {signed}"
        )));
    }
    let sbom = Sbom::parse(&body).map_err(|e| refused(&e))?;
    let version = medsec
        .get("version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let hardware_ids: Vec<String> = medsec
        .get("hardware_ids")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if version.is_empty() || hardware_ids.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{target:?} names no version or hardware id in its signed metadata"
        )));
    }
    let now = now_ms();
    let rows: Vec<ReleaseSbomRow> = hardware_ids
        .iter()
        .map(|hw| ReleaseSbomRow {
            target: target.clone(),
            hardware_id: hw.clone(),
            version: version.clone(),
            sha256: digest.clone(),
            body: text.clone(),
            uploaded_at_ms: now,
        })
        .collect();
    auth.state.store.put_release_sbom(&rows).await?;
    auth.state
        .audit(audit_write(
            &auth.conn,
            &who,
            &format!("Release::{target:?}"),
            format!(
                "SBOM {digest} ({}, {} components) for {} {version}",
                sbom.format,
                sbom.components.len(),
                hardware_ids.join(", ")
            ),
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "target": target, "sha256": digest, "format": sbom.format,
            "components": sbom.components.len(), "hardware_ids": hardware_ids, "version": version,
        })),
    )
        .into_response())
}

/// The identity an advisory document is stored under, its `modified` date and how many
/// advisories it holds.
fn identity(doc: &Document, digest: &str) -> (String, String, usize) {
    match doc {
        Document::Kev(list) => ("kev".to_owned(), digest.to_owned(), list.len()),
        Document::Advisories(list) => {
            let first = list.first();
            let identity = match first.and_then(|a| a.document.as_ref()) {
                Some(doc) => format!("csaf:{doc}"),
                None => format!("osv:{}", first.map_or("", |a| a.id.as_str())),
            };
            let modified = first.map(|a| a.modified.clone()).unwrap_or_default();
            if list.is_empty() {
                // A CSAF document with no vulnerabilities: nothing to match, stored anyway
                // under its digest so a re-import is recognised.
                (format!("csaf-empty:{digest}"), digest.to_owned(), 0)
            } else {
                (identity, modified, list.len())
            }
        }
    }
}

/// The query of `POST /api/v1/risk/advisories`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AdvisoryQuery {
    /// Read CSAF strictly (a document breaking a checked mandatory test is refused even
    /// where its meaning is clear); with a zip archive, also refuse the whole archive if any
    /// file in it is refused.
    strict: Option<bool>,
}

/// Refused files listed in an answer, at most.
const MAX_REFUSED_LISTED: usize = 100;

/// `POST /api/v1/risk/advisories` with `Content-Type: application/zip`: every JSON file of
/// the archive (OSV's `all.zip`, a directory of CSAF documents) read as one upload would
/// read it (leniently: warnings are listed per file), and stored in one transaction. A
/// refused (unread) file is named and skipped, or, with `strict=true`, refuses the archive
/// with nothing stored.
async fn post_advisory_zip(auth: &Auth, strict: bool, body: Bytes) -> Result<Response, ApiError> {
    let who = auth.authorize("risk.write", &Target::Fleet).await?;
    let (state, conn) = (&*auth.state, &auth.conn);
    let limits = medsec_risk::archive::Limits {
        max_file_bytes: u64::try_from(state.config.limits.max_document_bytes).unwrap_or(u64::MAX),
        max_total_bytes: state.config.limits.max_archive_bytes,
    };
    type Parsed = (
        Vec<(AdvisoryDoc, usize)>,
        Vec<(String, String)>,
        Vec<(String, Vec<String>)>,
        usize,
    );
    let parsed: Result<Parsed, medsec_risk::archive::ArchiveError> =
        tokio::task::spawn_blocking(move || {
            let (mut docs, mut skipped, mut warned, mut files) =
                (Vec::new(), Vec::new(), Vec::new(), 0);
            medsec_risk::archive::json_entries(
                std::io::Cursor::new(body),
                "the archive",
                limits,
                |name, bytes| {
                    files += 1;
                    let name = name.replacen("the archive:", "", 1);
                    let text = match String::from_utf8(bytes) {
                        Ok(t) => t,
                        Err(_) => return skipped.push((name, "not UTF-8".to_owned())),
                    };
                    match advisory::read(text.as_bytes(), strict) {
                        Ok(read) => {
                            if !read.warnings.is_empty() {
                                warned.push((name.clone(), read.warnings));
                            }
                            let digest =
                                hex::encode(medsec_crypto::digest::sha256(text.as_bytes()));
                            let (identity, modified, n) = identity(&read.document, &digest);
                            docs.push((
                                AdvisoryDoc {
                                    identity,
                                    modified,
                                    body: text,
                                },
                                n,
                            ));
                        }
                        Err(e) => skipped.push((name, refusal(&e))),
                    }
                },
            )
            .map(|()| (docs, skipped, warned, files))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("reading the archive failed: {e}")))?;
    let (docs, refused_files, warned, files) =
        parsed.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if strict && let Some((name, why)) = refused_files.first() {
        return Err(ApiError::BadRequest(format!(
            "{} of {files} files refused (strict); nothing stored; first: {name}: {why}",
            refused_files.len()
        )));
    }
    let entries: usize = docs.iter().map(|(_, n)| n).sum();
    let rows: Vec<AdvisoryDoc> = docs.into_iter().map(|(d, _)| d).collect();
    let changed = state.store.put_advisory_docs(&rows, now_ms()).await?;
    state
        .audit(audit_write(
            conn,
            &who.subject.label(),
            "Advisory::\"zip\"",
            format!(
                "archive: {files} files, {} documents ({entries} entries), {changed} changed, {} refused, {} read with warnings",
                rows.len(),
                refused_files.len(),
                warned.len()
            ),
        ))
        .await?;
    let listed: Vec<serde_json::Value> = refused_files
        .iter()
        .take(MAX_REFUSED_LISTED)
        .map(|(file, why)| serde_json::json!({"file": file, "why": why}))
        .collect();
    Ok((
        if changed > 0 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(serde_json::json!({
            "files": files, "documents": rows.len(), "entries": entries, "changed": changed,
            "refused": refused_files.len(), "refused_files": listed,
            "warned": warned.len(),
            "warnings": warned.iter().take(MAX_REFUSED_LISTED)
                .map(|(file, w)| serde_json::json!({"file": file, "warnings": w}))
                .collect::<Vec<_>>(),
        })),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/risk/advisories",
    tag = "risk",
    operation_id = "post_advisory",
    params(AdvisoryQuery),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/risk/advisories`.
pub(crate) async fn post_advisory(
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<AdvisoryQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let zip = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/zip"));
    if zip {
        return post_advisory_zip(&auth, q.strict.unwrap_or(false), body).await;
    }
    let (who, text, digest) = upload(&auth, &body, "advisory").await?;
    let read = advisory::read(&body, q.strict.unwrap_or(false)).map_err(|e| refused(&e))?;
    let (identity, modified, count) = identity(&read.document, &digest);
    let changed = auth
        .state
        .store
        .put_advisory_doc(&identity, &modified, &text, now_ms())
        .await?;
    if changed {
        auth.state
            .audit(audit_write(
                &auth.conn,
                &who,
                &format!("Advisory::{identity:?}"),
                format!(
                    "{count} entries, modified {modified}, {} warnings",
                    read.warnings.len()
                ),
            ))
            .await?;
    }
    Ok((
        if changed {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(serde_json::json!({
            "identity": identity, "entries": count, "changed": changed,
            "warnings": read.warnings,
        })),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/risk/vex",
    tag = "risk",
    operation_id = "post_vex",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/risk/vex`.
pub(crate) async fn post_vex(auth: Auth, body: Bytes) -> Result<Response, ApiError> {
    let (who, text, digest) = upload(&auth, &body, "VEX document").await?;
    let (format, statements) = medsec_risk::vex::parse(&body).map_err(|e| refused(&e))?;
    let new = auth
        .state
        .store
        .put_vex_doc(&digest, &text, now_ms())
        .await?;
    if new {
        auth.state
            .audit(audit_write(
                &auth.conn,
                &who,
                &format!("Vex::{digest:?}"),
                format!("{format:?}, {} statements", statements.len()),
            ))
            .await?;
    }
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(serde_json::json!({"sha256": digest, "statements": statements.len(), "new": new})),
    )
        .into_response())
}

/// The query of `GET /api/v1/devices/{id}/findings`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FindingsQuery {
    /// `therapy`, `diagnostic`, `monitoring` or `non-clinical`: with it, findings are scored.
    clinical: Option<String>,
    /// `internet`, `network` (default), `adjacent` or `local`.
    exposure: Option<String>,
    /// The device sits on a filtering segment.
    segmented: Option<bool>,
}

/// The device's context: each of clinical class, exposure and segmentation from the query if
/// it names it, else from the model's profile; quarantine from the fleet; whether the vendor
/// still ships updates from the profile and the vendor registry. No clinical class from
/// either: findings are not scored.
fn context(
    q: &FindingsQuery,
    quarantined: bool,
    profile: Option<&ModelProfile>,
    support: Option<&SupportState>,
) -> Result<Option<Context>, ApiError> {
    let clinical = match q.clinical.as_deref() {
        None => match profile {
            Some(p) => p.clinical,
            None => return Ok(None),
        },
        Some("therapy") => Clinical::Therapy,
        Some("diagnostic") => Clinical::Diagnostic,
        Some("monitoring") => Clinical::Monitoring,
        Some("non-clinical") => Clinical::NonClinical,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "clinical {other:?} is not therapy, diagnostic, monitoring or non-clinical"
            )));
        }
    };
    let exposure = match q.exposure.as_deref() {
        None => profile.map_or(Exposure::Network, |p| p.exposure),
        Some("internet") => Exposure::Internet,
        Some("network") => Exposure::Network,
        Some("adjacent") => Exposure::Adjacent,
        Some("local") => Exposure::Local,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "exposure {other:?} is not internet, network, adjacent or local"
            )));
        }
    };
    Ok(Some(Context {
        clinical,
        exposure,
        controls: Controls {
            quarantined,
            segmented: q
                .segmented
                .unwrap_or_else(|| profile.is_some_and(|p| p.segmented)),
        },
        unsupported: support.is_some_and(|s| s.replace),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/findings",
    tag = "risk",
    operation_id = "device_findings",
    params(("id" = String, Path, description = "The id."), FindingsQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/devices/{id}/findings`.
pub(crate) async fn device_findings(
    auth: Auth,
    DevicePath(id): DevicePath,
    Query(q): Query<FindingsQuery>,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let _who = auth.authorize("risk.read", &target).await?;
    let device = auth.state.store.device(id.as_str()).await?;
    let assets = crate::inventory::records::Registry::read(&auth.state.store).await?;
    let profile = assets.models.get(&device.model);
    let support = assets.support(&device.model, now_ms());
    let ctx = context(&q, device.quarantined, profile, support.as_ref())?;
    let unknown = |why: String| {
        Json(serde_json::json!({
            "device": device.id, "hardware_id": device.hardware_id,
            "version": device.installed_version, "release": null, "why": why,
            "support": support,
        }))
        .into_response()
    };
    if device.hardware_id.is_empty() || device.installed_version.is_empty() {
        return Ok(unknown(
            "the device has no hardware id, or has sent no signed version report".into(),
        ));
    }
    let loaded = auth.state.risk.get(&auth.state.store).await?;
    let Some(release) = loaded
        .releases
        .get(&(device.hardware_id.clone(), device.installed_version.clone()))
    else {
        return Ok(unknown(format!(
            "no SBOM is stored for hardware id {} version {}",
            device.hardware_id, device.installed_version
        )));
    };
    let mut matches = loaded.db.index().components(&release.sbom.components);
    // Statements about other releases are expected among the fleet's VEX; those about this
    // release that match no finding are listed.
    let unapplied: Vec<medsec_risk::matching::Unapplied> = medsec_risk::matching::apply_vex(
        &mut matches,
        &loaded.vex,
        &release.sbom.product_ids,
        release.sbom.subject_version.as_deref(),
    )
    .into_iter()
    .filter(|u| u.this_product)
    .collect();
    if let Some(ctx) = &ctx {
        medsec_risk::matching::score_findings(&mut matches, ctx);
    }
    let summary = medsec_risk::matching::summarise(&matches, &loaded.db, unapplied.len());
    Ok(Json(serde_json::json!({
        "device": device.id,
        "hardware_id": device.hardware_id,
        "version": device.installed_version,
        "release": {"target": release.row.target, "sbom_sha256": release.row.sha256},
        "summary": summary,
        "vex_unapplied": unapplied,
        "unread_advisories": loaded.db.unread().iter()
            .map(|(identity, why)| serde_json::json!({"identity": identity, "why": why}))
            .collect::<Vec<_>>(),
        "risk": ctx.map(|_| medsec_risk::matching::device_risk(&matches)),
        "context": ctx,
        "support": support,
        "components": matches,
    }))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/risk/advisories/{id}/devices",
    tag = "risk",
    operation_id = "advisory_devices",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/risk/advisories/{id}/devices`.
pub(crate) async fn advisory_devices(
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("risk.read", &Target::Fleet).await?;
    let loaded = auth.state.risk.get(&auth.state.store).await?;
    let advisories: Vec<&medsec_risk::advisory::Advisory> = loaded
        .db
        .advisories()
        .filter(|a| a.names().any(|n| n == name))
        .collect();
    if advisories.is_empty() {
        return Err(ApiError::NotFound);
    }
    // Release index -> affected components (names), across every advisory of that name.
    let mut by_release: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for a in &advisories {
        for hit in loaded.inventory.affected(a) {
            let Ok(i) = hit.release.parse::<usize>() else {
                continue;
            };
            let Some(key) = loaded.keys.get(i) else {
                continue;
            };
            let Some(r) = loaded.releases.get(key) else {
                continue;
            };
            let name = r
                .sbom
                .components
                .get(hit.component)
                .map_or_else(String::new, |c| c.name.clone());
            let list = by_release.entry(i).or_default();
            if !list.contains(&name) {
                list.push(name);
            }
        }
    }
    let mut releases = Vec::new();
    let mut total = 0;
    for (i, components) in by_release {
        let Some((hw, version)) = loaded.keys.get(i) else {
            continue;
        };
        let Some(r) = loaded.releases.get(&(hw.clone(), version.clone())) else {
            continue;
        };
        let devices = auth.state.store.devices_running(hw, version).await?;
        total += devices.len();
        releases.push(serde_json::json!({
            "target": r.row.target, "hardware_id": hw, "version": version,
            "components": components, "devices": devices,
        }));
    }
    Ok(Json(serde_json::json!({
        "advisory": name,
        "ids": advisories.iter().map(|a| &a.id).collect::<Vec<_>>(),
        "releases": releases,
        "devices": total,
    }))
    .into_response())
}

/// The query of `GET /api/v1/risk/devices`.
/// A release's components matched against the advisories, with the VEX statements applied:
/// the same for every device that runs it.
pub(super) fn release_matches(
    index: &medsec_risk::matching::Index<'_>,
    release: &crate::risk::Release,
    vex: &[medsec_risk::vex::Statement],
) -> Vec<medsec_risk::matching::ComponentMatch> {
    let mut m = index.components(&release.sbom.components);
    let _ = medsec_risk::matching::apply_vex(
        &mut m,
        vex,
        &release.sbom.product_ids,
        release.sbom.subject_version.as_deref(),
    );
    m
}

/// Matches per release, computed once per release for all the devices that run it.
type PerRelease = BTreeMap<(String, String), Vec<medsec_risk::matching::ComponentMatch>>;

/// A release's findings scored in one device context, and the device risk they make.
fn score(
    per_release: &mut PerRelease,
    key: (String, String),
    index: &medsec_risk::matching::Index<'_>,
    release: &crate::risk::Release,
    vex: &[medsec_risk::vex::Statement],
    ctx: &Context,
) -> (
    Vec<medsec_risk::matching::ComponentMatch>,
    medsec_risk::matching::DeviceRisk,
) {
    let matches = per_release
        .entry(key)
        .or_insert_with(|| release_matches(index, release, vex));
    let mut scored = matches.clone();
    medsec_risk::matching::score_findings(&mut scored, ctx);
    let risk = medsec_risk::matching::device_risk(&scored);
    (scored, risk)
}

#[utoipa::path(
    get,
    path = "/api/v1/risk/summary",
    tag = "risk",
    operation_id = "risk_summary",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/risk/summary`: the ranking's counts without its list — devices at each risk
/// priority, devices whose model is past vendor support, and those that could not be scored.
/// Devices alike in release, model and quarantine score alike, so each such group is scored
/// once (a fleet of 100,000 devices is a few groups).
pub(crate) async fn risk_summary(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("risk.read", &Target::Fleet).await?;
    let store = &auth.state.store;
    let loaded = auth.state.risk.get(store).await?;
    let assets = crate::inventory::records::Registry::read(store).await?;
    let groups = store.risk_groups().await?;
    let now = now_ms();
    let index = loaded.db.index();
    let mut per_release = PerRelease::new();
    let mut by_priority: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut by_clinical: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
    let (mut total, mut replace, mut unscored, mut unknown_release) = (0i64, 0i64, 0i64, 0i64);
    let mut known_exploited = 0i64;
    for g in &groups {
        total += g.count;
        let support = assets.support(&g.model, now);
        if support.as_ref().is_some_and(|s| s.replace) {
            replace += g.count;
        }
        let key = (g.hardware_id.clone(), g.installed_version.clone());
        let Some(release) = loaded.releases.get(&key) else {
            unknown_release += g.count;
            continue;
        };
        let profile = assets.models.get(&g.model);
        let Some(ctx) = context(
            &FindingsQuery::default(),
            g.quarantined,
            profile,
            support.as_ref(),
        )?
        else {
            unscored += g.count;
            continue;
        };
        let (scored, risk) = score(&mut per_release, key, &index, release, &loaded.vex, &ctx);
        *by_priority.entry(risk.priority).or_default() += g.count;
        let clinical = serde_json::to_value(ctx.clinical)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *by_clinical
            .entry(clinical)
            .or_default()
            .entry(risk.priority)
            .or_default() += g.count;
        if scored
            .iter()
            .flat_map(|m| &m.findings)
            .any(|f| f.open() && f.known_exploited.is_some())
        {
            known_exploited += g.count;
        }
    }
    Ok(Json(serde_json::json!({
        "devices": total,
        "by_priority": by_priority,
        "by_clinical": by_clinical,
        "known_exploited": known_exploited,
        "replace": replace,
        "unscored_no_model_profile": unscored,
        "no_release_sbom": unknown_release,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RankQuery {
    /// Most devices listed (default 100, at most [`MAX_RANKED`]).
    limit: Option<usize>,
}

/// Most devices one ranking lists.
const MAX_RANKED: usize = 10_000;

#[utoipa::path(
    get,
    path = "/api/v1/risk/devices",
    tag = "risk",
    operation_id = "ranked_devices",
    params(RankQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/risk/devices`: the fleet ranked by device risk, each device scored in its
/// model's context (profile, quarantine, vendor support). Findings are matched once per
/// release and scored per device. Devices whose model has no profile cannot be scored and
/// are counted, as are devices whose release has no SBOM or that never reported.
pub(crate) async fn ranked_devices(
    auth: Auth,
    Query(q): Query<RankQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("risk.read", &Target::Fleet).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_RANKED {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is not between 1 and {MAX_RANKED}"
        )));
    }
    let loaded = auth.state.risk.get(&auth.state.store).await?;
    let assets = crate::inventory::records::Registry::read(&auth.state.store).await?;
    let devices = crate::inventory::records::all_devices(&auth.state.store)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = now_ms();
    let index = loaded.db.index();
    let mut per_release = PerRelease::new();
    let mut ranked = Vec::new();
    let (mut unscored, mut unknown_release) = (Vec::new(), 0usize);
    for d in &devices {
        let key = (d.hardware_id.clone(), d.installed_version.clone());
        let Some(release) = loaded.releases.get(&key) else {
            unknown_release += 1;
            continue;
        };
        let profile = assets.models.get(&d.model);
        let support = assets.support(&d.model, now);
        let Some(ctx) = context(
            &FindingsQuery::default(),
            d.quarantined,
            profile,
            support.as_ref(),
        )?
        else {
            unscored.push(d.id.clone());
            continue;
        };
        let (_, risk) = score(&mut per_release, key, &index, release, &loaded.vex, &ctx);
        ranked.push((d, release.row.target.clone(), risk, support));
    }
    ranked.sort_by(|a, b| {
        b.2.raw
            .partial_cmp(&a.2.raw)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| b.2.open.cmp(&a.2.open))
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    let total = ranked.len();
    let list: Vec<serde_json::Value> = ranked
        .into_iter()
        .take(limit)
        .map(|(d, target, risk, support)| {
            serde_json::json!({
                "device": d.id, "model": d.model, "site": d.site, "release": target,
                "quarantined": d.quarantined, "risk": risk,
                "replace": support.is_some_and(|s| s.replace),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "devices": list,
        "ranked": total,
        "unscored_no_model_profile": unscored,
        "no_release_sbom": unknown_release,
    }))
    .into_response())
}
