//! The Defender and the Investigator on the operator port: a device's telemetry, alerts and
//! timeline, the fleet's alerts, the audit checks, and a device's identity binding with its
//! audited re-binding after a repair.

use axum::Json;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use medsec_store::AlertRow;
use medsec_store::prelude::*;

use super::auth::{Auth, Caller, DevicePath};
use super::error::ApiError;
use crate::authz::Target;
use crate::state::now_ms;

/// The operator-port preamble of the per-device read routes: the device id, checked; the
/// caller, authorised for `device.read` on it; the device, known.
pub(super) async fn readable_device(auth: &Auth, id: &DevicePath) -> Result<Caller, ApiError> {
    let who = auth.authorize("device.read", &id.target()).await?;
    auth.state.store.device(id.as_str()).await?;
    Ok(who)
}

/// Query of the telemetry and alert lists (operator port).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SinceQuery {
    /// Received or raised at or after this time (Unix ms; default: all).
    since_ms: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/telemetry/reset",
    tag = "defender",
    operation_id = "reset_telemetry",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/devices/{id}/telemetry/reset`: forgets the device's telemetry cursor, so that
/// its next batch may be numbered from 1 again (audited, with the cursor it held).
pub(super) async fn reset_telemetry(auth: Auth, id: DevicePath) -> Result<Response, ApiError> {
    let who = auth.authorize("telemetry.reset", &id.target()).await?;
    auth.state.store.device(id.as_str()).await?;
    let was = auth.state.store.reset_telemetry_cursor(id.as_str()).await?;
    let mut e = auth.event(
        "telemetry",
        &who.subject.label(),
        "telemetry.reset",
        &id.target().label(),
        "info",
    );
    e.detail = match was {
        Some(last) => format!("telemetry cursor reset (was {last})"),
        None => "telemetry cursor reset (there was none)".into(),
    };
    auth.state.audit(e).await?;
    Ok(
        Json(serde_json::json!({ "device": id.as_str(), "last_sequence_was": was }))
            .into_response(),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/telemetry",
    tag = "defender",
    operation_id = "list_telemetry",
    params(("id" = String, Path, description = "The id."), SinceQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/devices/{id}/telemetry`: the device's stored batches, newest first.
pub(super) async fn list_telemetry(
    auth: Auth,
    id: DevicePath,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    readable_device(&auth, &id).await?;
    let batches = auth
        .state
        .store
        .telemetry(
            id.as_str(),
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    let shown: Vec<serde_json::Value> = batches
        .iter()
        .map(|b| {
            serde_json::json!({
                "sequence": b.sequence,
                "received_at_ms": b.received_at_ms,
                "events": b.events,
                "source": b.source,
                "batch": serde_json::from_slice::<serde_json::Value>(&b.body)
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect();
    Ok(Json(shown).into_response())
}

pub(super) fn alerts_json(rows: &[AlertRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|a| {
            let mut v: serde_json::Value =
                serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), a.id.into());
                o.insert("device".into(), a.device_id.clone().into());
                o.insert("sequence".into(), a.sequence.into());
                o.insert("raised_at_ms".into(), a.raised_at_ms.into());
                o.insert("key".into(), a.aggregate_key.clone().into());
                o.insert("count".into(), a.occurrences.into());
                o.insert("first_seen_ms".into(), a.raised_at_ms.into());
                o.insert("last_seen_ms".into(), a.last_seen_ms.into());
                o.insert(
                    "suppressed_by".into(),
                    if a.suppressed_by == 0 {
                        serde_json::Value::Null
                    } else {
                        a.suppressed_by.into()
                    },
                );
            }
            v
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/alerts",
    tag = "defender",
    operation_id = "device_alerts",
    params(("id" = String, Path, description = "The id."), SinceQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/devices/{id}/alerts`: the device's alerts, newest first (`device.read`).
pub(super) async fn device_alerts(
    auth: Auth,
    id: DevicePath,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    readable_device(&auth, &id).await?;
    let rows = auth
        .state
        .store
        .alerts(
            Some(id.as_str()),
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(super::alerts::with_acks(&auth.state, &rows).await?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "defender",
    operation_id = "fleet_alerts",
    params(SinceQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/alerts`: the fleet's alerts, newest first (`device.list`).
pub(super) async fn fleet_alerts(
    auth: Auth,
    axum::extract::Query(q): axum::extract::Query<SinceQuery>,
) -> Result<Response, ApiError> {
    let target = Target::Fleet;
    let _who = auth.authorize("device.list", &target).await?;
    let rows = auth
        .state
        .store
        .alerts(
            None,
            q.since_ms.unwrap_or(0),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(super::alerts::with_acks(&auth.state, &rows).await?).into_response())
}

/// Query of `GET /api/v1/devices/{id}/timeline`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TimelineQuery {
    /// From (Unix ms; default: the beginning).
    since_ms: Option<i64>,
    /// To (Unix ms; default: now).
    until_ms: Option<i64>,
    /// Comma-separated kinds (default: all).
    kind: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// Most entries read from each source (1 to 10000, default 1000).
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/timeline",
    tag = "defender",
    operation_id = "device_timeline",
    params(("id" = String, Path, description = "The id."), TimelineQuery),
    responses((status = 200, description = "The timeline.", content((serde_json::Value = "application/json"), (String = "text/csv; charset=utf-8"))), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/devices/{id}/timeline`: Investigator's view of one device. It includes policy
/// decisions from the audit log, so it needs `audit.read` as well as `device.read`.
pub(super) async fn device_timeline(
    auth: Auth,
    id: DevicePath,
    axum::extract::Query(q): axum::extract::Query<TimelineQuery>,
) -> Result<Response, ApiError> {
    let who = readable_device(&auth, &id).await?;
    auth.check(&who, "audit.read", &Target::AuditLog).await?;
    let filter = crate::timeline::Filter {
        since_ms: q.since_ms.unwrap_or(0),
        until_ms: q.until_ms.unwrap_or(i64::MAX),
        kinds: crate::timeline::Filter::kinds(q.kind.as_deref().unwrap_or(""))
            .map_err(ApiError::BadRequest)?,
        per_source: q.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let entries = crate::timeline::build(&auth.state.store, id.as_str(), &filter).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(entries).into_response()),
        "csv" => {
            let text = crate::timeline::to_csv(&entries).map_err(ApiError::Internal)?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                text,
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

/// Query of `GET /api/v1/defender/audit`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditChecksQuery {
    /// Report device certificates expiring within this many days (default 7).
    cert_days: Option<i64>,
    /// Report enrolled devices not seen for this many hours (default 24).
    silent_hours: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/defender/audit",
    tag = "defender",
    operation_id = "audit_checks",
    params(AuditChecksQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/defender/audit`: the audit checks now (`audit.read`).
pub(super) async fn audit_checks(
    auth: Auth,
    axum::extract::Query(q): axum::extract::Query<AuditChecksQuery>,
) -> Result<Response, ApiError> {
    let _who = auth.authorize("audit.read", &Target::AuditLog).await?;
    let defaults = crate::defender_audit::Thresholds::default();
    let thresholds = crate::defender_audit::Thresholds {
        cert_days: q.cert_days.unwrap_or(defaults.cert_days).clamp(0, 3650),
        silent_hours: q
            .silent_hours
            .unwrap_or(defaults.silent_hours)
            .clamp(1, 87_600),
    };
    let findings = crate::defender_audit::run(
        &auth.state.store,
        &auth.state.config,
        &auth.state.policies,
        thresholds,
        now_ms(),
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(findings).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/identity",
    tag = "defender",
    operation_id = "identity",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/devices/{id}/identity`: the identities the device is bound to (`device.read`).
pub(super) async fn identity(auth: Auth, id: DevicePath) -> Result<Response, ApiError> {
    readable_device(&auth, &id).await?;
    let bindings = auth.state.store.identity_bindings(id.as_str()).await?;
    Ok(Json(serde_json::json!({ "device": id.as_str(), "bindings": bindings })).into_response())
}

/// The longest reason a re-bind may give.
const MAX_REASON_BYTES: usize = 500;

/// The body of a re-bind.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RebindRequest {
    /// The device's new MAC address.
    mac: String,
    /// Why (a repair's work order, say); required, and audited.
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/identity/rebind",
    tag = "defender",
    operation_id = "rebind",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/devices/{id}/identity/rebind` (`device.rebind`): binds the device to the MAC
/// address of its new network interface after a repair. The new address is given explicitly
/// (read off the device), never taken from the next batch, so the re-bind opens no window in
/// which a clone's MAC would be bound. The old and new addresses and the reason are audited.
pub(super) async fn rebind(
    auth: Auth,
    DevicePath(id): DevicePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = Target::Device(id.as_str().to_owned());
    let who = auth.caller("device.rebind", &target).await?;
    let req: RebindRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("re-bind request: {e}")))?;
    let mac = req.mac.trim().to_ascii_lowercase();
    if !medsec_defender::telemetry::is_mac(&mac) {
        return Err(ApiError::BadRequest(format!(
            "mac {:?} is not a MAC address (six hex octets separated by `:`)",
            req.mac
        )));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "reason must be 1 to {MAX_REASON_BYTES} bytes of text on one line"
        )));
    }
    auth.check(&who, "device.rebind", &target).await?;
    auth.state.store.device(id.as_str()).await?;
    let previous = auth
        .state
        .store
        .rebind_identity(id.as_str(), "mac", &mac, now_ms())
        .await?;
    let mut e = auth.event(
        "defender",
        &who.subject.label(),
        "device.rebind",
        &target.label(),
        "info",
    );
    e.detail = format!(
        "mac {} -> {mac}: {reason}",
        previous.as_deref().unwrap_or("(none)")
    );
    auth.state.audit(e).await?;
    Ok(Json(serde_json::json!({
        "device": id.as_str(),
        "kind": "mac",
        "value": mac,
        "previous": previous,
    }))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "defender",
    operation_id = "list_suppressions",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/suppressions`: every suppression, in force or not (`incident.read`).
pub(super) async fn list_suppressions(auth: Auth) -> Result<Response, ApiError> {
    let _who = auth.authorize("incident.read", &Target::Fleet).await?;
    let now = crate::state::now_ms();
    let rows = auth.state.store.suppressions(None).await?;
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "in_force".into(),
                    (r.lifted_at_ms.is_none() && r.expires_at_ms > now).into(),
                );
            }
            v
        })
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/suppressions",
    tag = "defender",
    operation_id = "create_suppression",
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 201, description = "Created.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/suppressions`: suppress a rule's alerts about a device, model, site or
/// destination, with a reason and a duration (`alert.suppress`, audited).
pub(super) async fn create_suppression(
    auth: Auth,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = auth.authorize("alert.suppress", &Target::Fleet).await?;
    let new: crate::suppressions::NewSuppression = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a suppression: {e}")))?;
    let row = crate::suppressions::create(
        &auth.state,
        &who.subject.label(),
        &auth.conn.addr.to_string(),
        new,
        crate::state::now_ms(),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(row)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/suppressions/{id}",
    tag = "defender",
    operation_id = "lift_suppression",
    params(("id" = i64, Path, description = "The suppression's id.")),
    responses((status = 204, description = "Done."), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `DELETE /api/v1/suppressions/{id}`: lift a suppression before its expiry
/// (`alert.suppress`, audited).
pub(super) async fn lift_suppression(
    auth: Auth,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Response, ApiError> {
    let who = auth.authorize("alert.suppress", &Target::Fleet).await?;
    let lifted = crate::suppressions::lift(
        &auth.state,
        &who.subject.label(),
        &auth.conn.addr.to_string(),
        id,
        crate::state::now_ms(),
    )
    .await?;
    if lifted {
        Ok(axum::http::StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
