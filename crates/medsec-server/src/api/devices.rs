//! Devices: the record, status and signed version reports (device port), the inventory
//! listing and edits, version history, enrolment tokens, revocation and reinstatement
//! (operator port).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medsec_api::{devices, report};
use medsec_pki::DeviceId;
use medsec_store::prelude::*;
use medsec_store::{DeviceQuery, VersionReport};
use serde::Deserialize;

use crate::audit_log::event;
use crate::authz::Target;
use crate::campaigns;
use crate::inventory::{self, InventoryPatch};
use crate::{tokens, version_report};

use super::auth::{Auth, Caller, DevicePath, device_id};
use super::error::{ApiError, bad_request};
use crate::state::{AppState, Conn, now_ms};

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}",
    tag = "devices",
    operation_id = "get_device",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// One device's record: state, quarantine, inventory, installed version.
pub(super) async fn get_device(
    auth: Auth,
    DevicePath(id): DevicePath,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.authorize("device.read", &target).await?;
    // A device reading itself: the record read to authenticate it is the answer.
    let device = match who.record {
        Some(own) if own.id == id.as_str() => own,
        _ => auth.state.store.device(id.as_str()).await?,
    };
    Ok(Json(device).into_response())
}

pub(super) async fn put_status(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.write", &target).await?;
    let status: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("status must be a JSON object: {e}")))?;
    auth.check(&who, "device.write", &target).await?;
    let text = serde_json::Value::Object(status).to_string();
    auth.state
        .store
        .set_device_status(id.as_str(), &text, now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Issues a single-use nonce for the device's next version report.
pub(super) async fn report_nonce(
    auth: Auth,
    DevicePath(id): DevicePath,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let _who = auth.authorize("device.report", &target).await?;
    let nonce = tokens::nonce().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = now_ms();
    let lifetime_ms = i64::try_from(auth.state.config.limits.report_nonce_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let expires = now.saturating_add(lifetime_ms);
    auth.state
        .store
        .add_report_nonce(
            id.as_str(),
            &nonce,
            now,
            expires,
            auth.state.config.limits.report_nonces_per_device,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(report::Nonce {
            nonce,
            expires_at_ms: expires,
        }),
    )
        .into_response())
}

/// Accepts a signed version report (see `version_report`), signed with the key of the
/// certificate on this very connection and carrying a nonce issued to this device.
pub(super) async fn put_version(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.authorize("device.report", &target).await?;
    let refuse = |reason: String, status: fn(String) -> ApiError| {
        let mut e = auth.event(
            "version-report",
            &who.subject.label(),
            "device.report",
            &target.label(),
            "deny",
        );
        e.detail.clone_from(&reason);
        (e, status(reason))
    };
    let certificate = auth
        .conn
        .certificate
        .clone()
        .ok_or_else(|| ApiError::Internal("a device peer without its certificate".into()))?;
    let (payload, signature, report) = match version_report::open(&body, &certificate, id.as_str())
    {
        Ok(opened) => opened,
        Err(refused) => {
            let (e, err) = refuse(refused.0, ApiError::BadRequest);
            auth.state.audit(e).await?;
            return Err(err);
        }
    };
    let previous = match &who.record {
        Some(own) => own.release_counter,
        None => auth.state.store.device(id.as_str()).await?.release_counter,
    };
    let stored = VersionReport {
        nonce: report.nonce.clone(),
        device_id: id.as_str().to_owned(),
        received_at_ms: now_ms(),
        version: report.version.clone(),
        release_counter: report.release_counter,
        payload,
        signature,
        certificate: certificate.to_vec(),
    };
    match auth.state.store.record_version_report(&stored).await {
        Ok(()) => {}
        Err(medsec_store::Error::NonceRefused { nonce }) => {
            let (e, err) = refuse(
                format!(
                    "nonce {nonce:?} was not issued to this device, was used already or expired: \
                     ask for a new one (a replayed report is refused)"
                ),
                ApiError::Conflict,
            );
            auth.state.audit(e).await?;
            return Err(err);
        }
        Err(other) => return Err(other.into()),
    }
    let mut e = auth.event(
        "version-report",
        &who.subject.label(),
        "device.report",
        &target.label(),
        "info",
    );
    e.detail = format!(
        "runs {} (release counter {})",
        report.version, report.release_counter
    );
    if report.release_counter < previous {
        // What runs is what runs: the report is kept, and the fall is flagged for review.
        e.detail = format!(
            "{}; the release counter went DOWN from {previous}: rolled back?",
            e.detail
        );
        tracing::warn!(
            device = id.as_str(),
            previous,
            now = report.release_counter,
            "release counter went down"
        );
    }
    auth.state.audit(e).await?;
    if let Some(install) = &report.install {
        campaign_report(&auth.state, &auth.conn, &who, id.as_str(), install, &report).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Applies the install outcome a version report carries to its campaign, and audits it. A
/// report the campaign does not expect (a repeat after a crash, a campaign the device is not
/// in) changes nothing and is audited as ignored; the version report itself stands.
pub(super) async fn campaign_report(
    state: &AppState,
    conn: &Conn,
    who: &Caller,
    device: &str,
    install: &version_report::Install,
    report: &version_report::Payload,
) -> Result<(), ApiError> {
    let now = now_ms();
    let before = state.store.campaign(&install.campaign).await;
    let mut e = event(
        "campaign",
        &who.subject.label(),
        "campaign.report",
        &format!("Campaign::{:?}", install.campaign),
        "info",
    );
    e.source = conn.addr.to_string();
    let row = match before {
        Ok(row) => row,
        Err(medsec_store::Error::NotFound { .. }) => {
            e.decision = "ignored".into();
            e.detail = format!("{device}: no campaign {:?}", install.campaign);
            state.audit(e).await?;
            return Ok(());
        }
        Err(other) => return Err(other.into()),
    };
    let release = campaigns::load(&row)
        .map_err(bad_request)?
        .spec()
        .release
        .clone();
    if release.target != install.target {
        e.decision = "ignored".into();
        e.detail = format!(
            "{device}: reported target {:?}, the campaign installs {:?}",
            install.target, release.target
        );
        state.audit(e).await?;
        return Ok(());
    }
    let outcome = version_report::outcome(install, report, &release);
    let status_before = row.status.clone();
    let applied = campaigns::change(&state.store, &install.campaign, now, |c| {
        c.report(device, outcome.clone(), now)
    })
    .await;
    match applied {
        Ok(c) => {
            e.detail = format!(
                "{device}: {}",
                serde_json::to_string(&outcome).unwrap_or_default()
            );
            state.audit(e).await?;
            if c.status().name() != status_before {
                let mut s = event(
                    "campaign",
                    "system",
                    "campaign.status",
                    &format!("Campaign::{:?}", install.campaign),
                    "warn",
                );
                s.detail = serde_json::to_string(c.status()).unwrap_or_default();
                state.audit(s).await?;
            }
        }
        Err(err) => {
            e.decision = "ignored".into();
            e.detail = format!("{device}: {err}");
            state.audit(e).await?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct VersionsQuery {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/versions",
    tag = "devices",
    operation_id = "list_versions",
    params(("id" = String, Path, description = "The id."), VersionsQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// A device's signed version reports, newest first, each with what is needed to check it again:
/// `openssl` can verify `signature` over `"medsec version report v1\n" || payload` with the
/// certificate's key.
pub(super) async fn list_versions(
    auth: Auth,
    DevicePath(id): DevicePath,
    Query(q): Query<VersionsQuery>,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let _who = auth.authorize("device.read", &target).await?;
    auth.state.store.device(id.as_str()).await?;
    let reports = auth
        .state
        .store
        .version_reports(id.as_str(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let shown: Vec<report::Stored> = reports
        .into_iter()
        .map(|r| report::Stored {
            received_at_ms: r.received_at_ms,
            version: r.version,
            release_counter: r.release_counter,
            nonce: r.nonce,
            payload: STANDARD.encode(&r.payload),
            signature: STANDARD.encode(&r.signature),
            certificate: STANDARD.encode(&r.certificate),
        })
        .collect();
    Ok(Json(shown).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SummaryQuery {
    /// A device not heard from for this many seconds counts as silent (default: the
    /// console's `silent_after_secs`).
    silent_for_secs: Option<u32>,
    /// A certificate expiring within this many days counts as expiring (default 7).
    certificate_expires_within_days: Option<u16>,
}

#[utoipa::path(
    get,
    path = "/api/v1/fleet/summary",
    tag = "devices",
    operation_id = "fleet_summary",
    params(SummaryQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// The fleet at a glance: devices by state, model and installed version, quarantined ones,
/// silent ones and those whose certificate expires soon (`device.list`).
pub(super) async fn fleet_summary(
    auth: Auth,
    Query(q): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("device.list", &Target::Fleet).await?;
    let now = now_ms();
    let silent_secs = q
        .silent_for_secs
        .map_or(auth.state.config.console.silent_after_secs, u64::from);
    let days = q.certificate_expires_within_days.unwrap_or(7);
    let census = auth.state.store.device_census().await?;
    let attention = auth
        .state
        .store
        .attention_counts(
            now.saturating_sub(i64::try_from(silent_secs.saturating_mul(1000)).unwrap_or(i64::MAX)),
            now.saturating_add(i64::from(days) * 86_400_000),
        )
        .await?;
    let mut by_state = std::collections::BTreeMap::<&str, i64>::new();
    let mut by_model = std::collections::BTreeMap::<&str, i64>::new();
    let mut by_version = std::collections::BTreeMap::<&str, i64>::new();
    let (mut total, mut quarantined) = (0i64, 0i64);
    for c in &census {
        total += c.count;
        *by_state.entry(&c.state).or_default() += c.count;
        *by_model.entry(&c.model).or_default() += c.count;
        let version = if c.installed_version.is_empty() {
            "(not reported)"
        } else {
            &c.installed_version
        };
        *by_version.entry(version).or_default() += c.count;
        if c.quarantined {
            quarantined += c.count;
        }
    }
    Ok(Json(serde_json::json!({
        "devices": total,
        "by_state": by_state,
        "by_model": by_model,
        "by_version": by_version,
        "quarantined": quarantined,
        "silent": attention.silent,
        "silent_for_secs": silent_secs,
        "certificates_expiring": attention.certificates_expiring,
        "certificate_expires_within_days": days,
        "at_ms": now,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
    model: Option<String>,
    site: Option<String>,
    group: Option<String>,
    /// Only devices in this state.
    state: Option<String>,
    /// Only devices whose last signed report named this version.
    version: Option<String>,
    /// Only quarantined devices (`true`).
    quarantined: Option<bool>,
    /// Only enrolled devices not heard from for this many seconds.
    silent_for_secs: Option<u32>,
    /// Only devices whose newest certificate expires within this many days.
    certificate_expires_within_days: Option<u16>,
}

#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    operation_id = "list_devices",
    params(ListQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Devices in id order, a page at a time, optionally of one model, site or group.
pub(super) async fn list_devices(
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("device.list", &Target::Fleet).await?;
    let now = now_ms();
    let query = DeviceQuery {
        after: q.after,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        model: q.model,
        site: q.site,
        group: q.group,
        state: q.state,
        version: q.version,
        quarantined_only: q.quarantined.unwrap_or(false),
        silent_before_ms: q
            .silent_for_secs
            .map(|s| now.saturating_sub(i64::from(s) * 1000)),
        certificate_expires_before_ms: q
            .certificate_expires_within_days
            .map(|d| now.saturating_add(i64::from(d) * 86_400_000)),
    };
    let devices = auth.state.store.devices(&query).await?;
    Ok(Json(devices).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/devices/{id}",
    tag = "devices",
    operation_id = "patch_device",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Changes a device's inventory (model, hardware id, site, groups); fields left out keep their
/// value. Answers with the device as stored.
pub(super) async fn patch_device(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.update", &target).await?;
    let patch: InventoryPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("inventory change: {e}")))?;
    patch.check().map_err(bad_request)?;
    auth.check(&who, "device.update", &target).await?;
    let device = inventory::update(&auth.state.store, id.as_str(), &patch)
        .await
        .map_err(bad_request)?;
    let mut e = auth.event(
        "inventory",
        &who.subject.label(),
        "device.update",
        &target.label(),
        "info",
    );
    e.detail = patch.describe();
    auth.state.audit(e).await?;
    Ok(Json(device).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    device: String,
    #[serde(default = "default_ttl")]
    ttl_secs: i64,
    // Inventory to set with the registration. Listed here rather than flattened from
    // InventoryPatch: serde cannot combine `flatten` with `deny_unknown_fields`.
    model: Option<String>,
    hardware_id: Option<String>,
    site: Option<String>,
    groups: Option<Vec<String>>,
    /// Gives a decommissioned device's name to a device again.
    #[serde(default)]
    re_register: bool,
}

impl TokenRequest {
    fn inventory(&self) -> InventoryPatch {
        InventoryPatch {
            model: self.model.clone(),
            hardware_id: self.hardware_id.clone(),
            site: self.site.clone(),
            groups: self.groups.clone(),
        }
    }
}

fn default_ttl() -> i64 {
    24 * 3600
}

#[utoipa::path(
    post,
    path = "/api/v1/enrolment-tokens",
    tag = "devices",
    operation_id = "create_enrolment_token",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Registers a device if new and makes its one-time enrolment token (shown once).
pub(super) async fn create_enrolment_token(auth: Auth, body: Bytes) -> Result<Response, ApiError> {
    let who = auth.caller("token.create", &Target::Fleet).await?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("enrolment token request: {e}")))?;
    let device = device_id(&req.device)?;
    let inventory = req.inventory();
    inventory.check().map_err(bad_request)?;
    auth.check(&who, "token.create", &Target::Fleet).await?;
    let token = tokens::create_enrolment_token(
        &auth.state.store,
        &device,
        &inventory,
        &who.subject.label(),
        now_ms(),
        req.ttl_secs,
        req.re_register,
    )
    .await
    .map_err(|e| match e {
        crate::Error::Refused { reason } => ApiError::Conflict(reason),
        other => bad_request(other),
    })?;
    let mut e = event(
        "token",
        &who.subject.label(),
        "token.create",
        &format!("Device::{:?}", device.as_str()),
        "info",
    );
    e.detail = format!("enrolment token valid {}s", req.ttl_secs);
    if req.re_register {
        e.detail
            .push_str("; re-registered (the name was decommissioned)");
    }
    if !inventory.is_empty() {
        e.detail = format!("{}; {}", e.detail, inventory.describe());
    }
    auth.state.audit(e).await?;
    Ok((
        StatusCode::CREATED,
        Json(devices::EnrolmentToken {
            device: device.as_str().to_owned(),
            token,
            ttl_secs: req.ttl_secs,
        }),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// Revokes every live certificate of `id` for `reason_name` (an RFC 5280 reason), re-signs the
/// CRL, reloads the device port's TLS and marks the device revoked. Returns the serials.
pub(crate) async fn revoke_certificates(
    state: &AppState,
    id: &DeviceId,
    reason_name: &str,
) -> Result<Vec<String>, ApiError> {
    let reason = medsec_pki::reason_from_name(reason_name).ok_or_else(|| {
        ApiError::BadRequest(format!("unknown revocation reason {reason_name:?}"))
    })?;
    state.store.device(id.as_str()).await?;
    let serials = revoke_live(state, id, reason, None).await?;
    state.store.set_device_state(id.as_str(), "revoked").await?;
    Ok(serials)
}

/// Revokes every live certificate of `id` but `except` for `reason`; when any was, re-signs
/// the CRL and reloads the device port's TLS, so they are refused at their next handshake.
/// Returns the serials revoked.
pub(crate) async fn revoke_live(
    state: &AppState,
    id: &DeviceId,
    reason: medsec_pki::RevocationReason,
    except: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let internal = |e: medsec_pki::Error| ApiError::Internal(e.to_string());
    let revoked = {
        let mut ca = state.ca.lock().await;
        ca.reload_state().map_err(internal)?;
        let live: Vec<String> = ca
            .issued()
            .iter()
            .filter(|c| c.device_id == *id && c.revoked.is_none())
            .filter(|c| except != Some(c.serial.as_str()))
            .map(|c| c.serial.clone())
            .collect();
        for serial in &live {
            ca.revoke(serial, reason).map_err(internal)?;
        }
        if !live.is_empty() {
            ca.crl(state.config.crl_days).map_err(internal)?;
        }
        live
    };
    if !revoked.is_empty() {
        state
            .tls
            .reload()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    Ok(revoked)
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/revoke",
    tag = "devices",
    operation_id = "revoke_device",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Revokes every live certificate of the device (`{"reason": "key-compromise"}` by default).
pub(super) async fn revoke_device(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.revoke", &target).await?;
    let req: RevokeRequest = if body.is_empty() {
        RevokeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("revoke request: {e}")))?
    };
    let reason_name = req.reason.unwrap_or_else(|| "unspecified".into());
    if medsec_pki::reason_from_name(&reason_name).is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown revocation reason {reason_name:?}"
        )));
    }
    auth.check(&who, "device.revoke", &target).await?;
    let serials = revoke_certificates(&auth.state, &id, &reason_name).await?;
    let mut e = event(
        "revocation",
        &who.subject.label(),
        "device.revoke",
        &target.label(),
        "info",
    );
    e.detail = format!(
        "revoked {} certificate(s) ({reason_name}): {}",
        serials.len(),
        serials.join(", ")
    );
    auth.state.audit(e).await?;
    Ok(Json(devices::Revoked {
        device: id.as_str().to_owned(),
        revoked: serials,
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/reinstate",
    tag = "devices",
    operation_id = "reinstate_device",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// Returns a revoked device to `registered`, so that it can enrol again with a new enrolment
/// token (or its manufacturer certificate) and a new key; its revoked certificates stay revoked.
pub(super) async fn reinstate_device(
    auth: Auth,
    DevicePath(id): DevicePath,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.authorize("device.reinstate", &target).await?;
    let device = auth.state.store.device(id.as_str()).await?;
    if device.state != "revoked" {
        return Err(ApiError::Conflict(format!(
            "device {} is {}, not revoked",
            id.as_str(),
            device.state
        )));
    }
    auth.state
        .store
        .set_device_state(id.as_str(), "registered")
        .await?;
    let mut e = auth.event(
        "revocation",
        &who.subject.label(),
        "device.reinstate",
        &target.label(),
        "info",
    );
    e.detail = "reinstated: may enrol again with a new token and a new key".into();
    auth.state.audit(e).await?;
    Ok(Json(devices::Reinstated {
        device: id.as_str().to_owned(),
        state: "registered".into(),
    })
    .into_response())
}
