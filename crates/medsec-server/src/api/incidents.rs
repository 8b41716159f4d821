//! Incidents on the operator port: alerts grouped per device as they are raised, the NIST SP
//! 800-61 phases, confirmation with its reporting clocks, and the response playbooks
//! (quarantine, release, revoke, force_update, cancel_update). Every change is audited;
//! playbooks act through the device record that Cedar reads, so a quarantined device keeps only
//! what policy leaves it (reports, telemetry, update fetches).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medsec_defender::incident::{Action, Confirmation, CraKind, Incident, IncidentError, Phase};
use medsec_store::prelude::*;
use serde::Deserialize;

use super::auth::{Auth, device_id};
use super::devices::revoke_certificates;
use super::error::ApiError;
use crate::authz::Target;
use crate::incidents::{TRIES, from_row, phase_name, to_row};
use crate::state::{AppState, now_ms};

/// The incident as shown: the document, its version, and its clocks at `now`.
fn shown(i: &Incident, version: i64, now: i64) -> serde_json::Value {
    let mut v = serde_json::to_value(i).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("version".into(), version.into());
        o.insert(
            "clocks".into(),
            serde_json::to_value(i.clocks(now)).unwrap_or_default(),
        );
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only incidents not closed.
    open: Option<bool>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    operation_id = "list",
    params(ListQuery),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/incidents`.
pub(super) async fn list(auth: Auth, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let _who = auth.authorize("incident.read", &Target::Fleet).await?;
    let rows = auth
        .state
        .store
        .incidents(
            q.open.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    let now = now_ms();
    let out: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| from_row(r).map(|i| shown(&i, r.version, now)))
        .collect::<Result<_, _>>()?;
    Ok(Json(out).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    operation_id = "incidents_get",
    params(("id" = String, Path, description = "The id.")),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `GET /api/v1/incidents/{id}`.
pub(super) async fn get(auth: Auth, Path(id): Path<String>) -> Result<Response, ApiError> {
    let _who = auth.authorize("incident.read", &Target::Fleet).await?;
    let row = auth.state.store.incident(&id).await?;
    Ok(Json(shown(&from_row(&row)?, row.version, now_ms())).into_response())
}

/// What an operator asks of an incident.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Command {
    /// Move to a later phase.
    Phase {
        /// The phase.
        phase: Phase,
    },
    /// Confirm: the reporting clocks start.
    Confirm {
        /// What the CRA needs reported, if anything.
        #[serde(default)]
        cra: Option<CraKind>,
        /// Whether protected health information may be affected.
        #[serde(default)]
        personal_data: bool,
    },
    /// A corrective or mitigating measure is available.
    FixAvailable,
    /// Run a playbook on one of the incident's devices.
    Playbook {
        /// `quarantine`, `release`, `revoke`, `force_update` or `cancel_update`.
        playbook: String,
        /// The device.
        device: String,
        /// The release `force_update` installs.
        #[serde(default)]
        release: Option<medsec_campaign::Release>,
    },
}

fn refused(e: IncidentError) -> ApiError {
    ApiError::Conflict(e.to_string())
}

/// The name of the campaign an incident's `force_update` makes: readable when it fits the 64
/// characters a campaign name may have, else with the device hashed.
fn forced_campaign(incident: &str, device: &str, counter: i64) -> String {
    let name = format!("force-{incident}-{device}-{counter}");
    if name.len() <= 64 {
        return name;
    }
    let digest = hex::encode(medsec_crypto::digest::sha256(device.as_bytes()));
    format!(
        "force-{incident}-{}-{counter}",
        digest.get(..16).unwrap_or_default()
    )
}

/// The `force_update` playbook: a one-device campaign of `release`, started at once. It goes
/// through the same checks as any campaign (the image repository signs the release for the
/// device's hardware id; anti-rollback on the device), and the device keeps its clinical-use
/// deferral: a forced update never interrupts therapy. Returns the action's detail, whose second
/// word is the campaign (`cancel_update` reads it).
async fn force_update(
    state: &AppState,
    incident: &str,
    device: &medsec_pki::DeviceId,
    release: medsec_campaign::Release,
    by: &str,
    now: i64,
) -> Result<String, ApiError> {
    let name = forced_campaign(incident, device.as_str(), release.release_counter);
    let mut spec = medsec_campaign::Spec::new(&name, release.clone());
    spec.canary = medsec_campaign::WaveSize::Count(1);
    let selection = crate::campaigns::Selection {
        devices: vec![device.as_str().to_owned()],
        ..crate::campaigns::Selection::default()
    };
    let as_config = |e: crate::Error| match e {
        crate::Error::Config { reason } => ApiError::BadRequest(reason),
        crate::Error::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    };
    crate::campaigns::create(
        &state.store,
        state.director.image(),
        spec,
        &selection,
        1,
        by,
        now,
    )
    .await
    .map_err(as_config)?;
    crate::campaigns::control(&state.store, &name, crate::campaigns::Control::Start, now)
        .await
        .map_err(as_config)?;
    Ok(format!(
        "campaign {name} started: {} (version {}, release counter {}) is offered at the \
         device's next poll; clinical-use deferral still applies",
        release.target, release.version, release.release_counter
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    operation_id = "command",
    params(("id" = String, Path, description = "The id.")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Done.", body = serde_json::Value), (status = 400, description = "The request is malformed; the body names the problem.", body = crate::api::openapi::ErrorSchema), (status = 401, description = "No operator token, or an unknown, expired or revoked one.", body = crate::api::openapi::ErrorSchema), (status = 403, description = "Not permitted by policy (audited).", body = crate::api::openapi::ErrorSchema), (status = 404, description = "No such record.", body = crate::api::openapi::ErrorSchema), (status = 409, description = "In conflict with the record's state.", body = crate::api::openapi::ErrorSchema), (status = 413, description = "The body is over the limit.", body = crate::api::openapi::ErrorSchema), (status = 415, description = "A media type not accepted here.", body = crate::api::openapi::ErrorSchema), (status = 429, description = "Over the rate limit (Retry-After: 1).", body = crate::api::openapi::ErrorSchema)),
    security(("operator_token" = []))
)]
/// `POST /api/v1/incidents/{id}`: one command (`{"action": "phase" | "confirm" |
/// "fix_available" | "playbook", …}`).
pub(super) async fn command(
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = auth.authorize("incident.manage", &Target::Fleet).await?;
    let cmd: Command = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("incident command: {e}")))?;
    let by = who.subject.label();
    // A playbook's effect happens once, even when the incident update is retried.
    let mut effect: Option<String> = None;
    for _ in 0..TRIES {
        let row = auth.state.store.incident(&id).await?;
        let mut incident = from_row(&row)?;
        let now = now_ms();
        let detail = match &cmd {
            Command::Phase { phase } => {
                incident.advance(*phase, now).map_err(refused)?;
                format!("phase {}", phase_name(*phase))
            }
            Command::Confirm { cra, personal_data } => {
                incident
                    .confirm(Confirmation {
                        at_ms: now,
                        by: by.clone(),
                        cra: *cra,
                        personal_data: *personal_data,
                        fix_available_at_ms: None,
                    })
                    .map_err(refused)?;
                format!(
                    "confirmed (CRA: {cra:?}, personal data: {personal_data}); reporting clocks started"
                )
            }
            Command::FixAvailable => {
                if incident.confirmation.is_none() {
                    return Err(ApiError::Conflict(
                        "confirm the incident before recording a fix".into(),
                    ));
                }
                incident.fix_available(now);
                "a corrective measure is available".into()
            }
            Command::Playbook {
                playbook,
                device,
                release,
            } => {
                // A closed incident takes no new action, but what it did can be undone: a
                // quarantine it set is released through it (or through the device's own
                // release), so closing never strands a device.
                if incident.phase == Phase::Closed && playbook != "release" {
                    return Err(refused(IncidentError::Closed));
                }
                if !incident.devices.iter().any(|d| d == device) {
                    return Err(ApiError::BadRequest(format!(
                        "device {device:?} is not part of incident {id}"
                    )));
                }
                let dev = device_id(device)?;
                let did = match (&effect, playbook.as_str()) {
                    (Some(done), _) => done.clone(),
                    (None, name) => match name {
                        "quarantine" => {
                            auth.state
                                .store
                                .set_device_quarantined(dev.as_str(), true)
                                .await?;
                            "quarantined: it keeps version reports, telemetry and update fetches; \
                         every other device action is refused"
                                .to_owned()
                        }
                        "release" => {
                            if !incident.quarantines(device) {
                                return Err(ApiError::Conflict(format!(
                                    "{device} is not quarantined by this incident"
                                )));
                            }
                            auth.state
                                .store
                                .set_device_quarantined(dev.as_str(), false)
                                .await?;
                            "released from quarantine".to_owned()
                        }
                        "revoke" => {
                            let serials =
                                revoke_certificates(&auth.state, &dev, "key-compromise").await?;
                            format!(
                                "revoked {} certificate(s) (key-compromise): {}",
                                serials.len(),
                                serials.join(", ")
                            )
                        }
                        "force_update" => {
                            let release = release.clone().ok_or_else(|| {
                                ApiError::BadRequest(
                                    "force_update needs \"release\": {\"version\", \
                                     \"release_counter\", \"target\"}"
                                        .into(),
                                )
                            })?;
                            let on = Target::Device(dev.as_str().to_owned());
                            auth.check(&who, "device.force_update", &on).await?;
                            force_update(&auth.state, &id, &dev, release, &by, now).await?
                        }
                        "cancel_update" => {
                            let name = incident
                                .actions
                                .iter()
                                .rev()
                                .find(|a| a.device == *device && a.playbook == "force_update")
                                .and_then(|a| a.detail.split_whitespace().nth(1))
                                .ok_or_else(|| {
                                    ApiError::Conflict(format!(
                                        "this incident forced no update on {device}"
                                    ))
                                })?
                                .to_owned();
                            let on = Target::Device(dev.as_str().to_owned());
                            auth.check(&who, "device.force_update", &on).await?;
                            crate::campaigns::control(
                                &auth.state.store,
                                &name,
                                crate::campaigns::Control::Abort,
                                now,
                            )
                            .await
                            .map_err(|e| ApiError::Conflict(e.to_string()))?;
                            format!(
                                "campaign {name} aborted: nothing more is offered; an image \
                                 already installed stays (anti-rollback forbids going back)"
                            )
                        }
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "unknown playbook {other:?}: use quarantine, release, revoke, \
                                 force_update or cancel_update"
                            )));
                        }
                    },
                };
                effect = Some(did.clone());
                incident.record(Action {
                    playbook: playbook.clone(),
                    device: device.clone(),
                    by: by.clone(),
                    at_ms: now,
                    detail: did.clone(),
                });
                if playbook == "quarantine" && incident.phase < Phase::Contained {
                    incident.phase = Phase::Contained;
                }
                format!("{playbook} {device}: {did}")
            }
        };
        incident.updated_at_ms = incident.updated_at_ms.max(now);
        if auth
            .state
            .store
            .update_incident(&to_row(&incident, row.version)?)
            .await?
        {
            let mut e = auth.event("incident", &by, "incident.manage", &id, "info");
            e.detail = detail;
            auth.state.audit(e).await?;
            return Ok(
                (StatusCode::OK, Json(shown(&incident, row.version + 1, now))).into_response(),
            );
        }
    }
    Err(ApiError::Conflict(
        "the incident kept changing under this update; try again".into(),
    ))
}
