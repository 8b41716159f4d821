//! Who is calling and whether they may: the principal comes from the verified certificate or
//! the hashed token, never from the request; Cedar decides; the decision is audited before the
//! handler acts.

use axum::http::HeaderMap;
use medsec_audit::Event;
use medsec_pki::DeviceId;
use medsec_store::Store as _;

use crate::audit_log::event;
use crate::authz::{RequestContext, Subject, Target};
use crate::repeats::Verdict;
use crate::tokens;

use super::error::ApiError;
use super::guard::bearer;
use crate::state::{AppState, Conn, Peer, now_ms};

/// An authenticated caller.
pub(crate) struct Caller {
    pub(crate) subject: Subject,
    pub(crate) credential: &'static str,
    /// A device caller's own record, as read to build its principal.
    pub(crate) record: Option<medsec_store::Device>,
}

pub(super) fn deny_event(
    conn: &Conn,
    principal: &str,
    action: &str,
    target: &Target,
    detail: &str,
) -> Event {
    let mut e = event("authn", principal, action, &target.label(), "deny");
    e.source = conn.addr.to_string();
    e.detail = detail.to_owned();
    e
}

/// A device's Cedar principal, from its record.
pub(super) fn device_subject(d: &medsec_store::Device) -> Subject {
    Subject::Device {
        id: d.id.clone(),
        model: d.model.clone(),
        state: d.state.clone(),
        quarantined: d.quarantined,
    }
}

/// The caller behind a device certificate naming `id`, from its record as read (`NotFound`: the
/// certificate names a device medsec has no record of, which is audited and refused).
pub(crate) async fn device_caller(
    state: &AppState,
    conn: &Conn,
    id: &DeviceId,
    record: Result<medsec_store::Device, ApiError>,
    action: &str,
    target: &Target,
) -> Result<Caller, ApiError> {
    match record {
        Ok(d) => Ok(Caller {
            subject: device_subject(&d),
            credential: "fleet-certificate",
            record: Some(d),
        }),
        Err(ApiError::NotFound) => {
            let label = format!("Device::{:?}", id.as_str());
            state
                .audit(deny_event(
                    conn,
                    &label,
                    action,
                    target,
                    "certificate names a device medsec has no record of",
                ))
                .await?;
            Err(ApiError::Forbidden)
        }
        Err(e) => Err(e),
    }
}

/// Resolves the caller of a device-API or operator-API route, auditing refusals.
pub(crate) async fn caller(
    state: &AppState,
    conn: &Conn,
    headers: &HeaderMap,
    action: &str,
    target: &Target,
) -> Result<Caller, ApiError> {
    if conn.operator_port {
        let Some(token) = bearer(headers) else {
            state
                .audit(deny_event(
                    conn,
                    "anonymous",
                    action,
                    target,
                    "no operator token",
                ))
                .await?;
            return Err(ApiError::Unauthenticated(
                "an operator token is required: Authorization: Bearer <token>".into(),
            ));
        };
        let found = match state.store.operator_token(&tokens::hash(token)).await {
            Ok(t) => t,
            Err(medsec_store::Error::NotFound { .. }) => {
                state
                    .audit(deny_event(
                        conn,
                        "anonymous",
                        action,
                        target,
                        "unknown operator token",
                    ))
                    .await?;
                return Err(ApiError::Unauthenticated("unknown operator token".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let label = format!("Operator::{:?}", found.name);
        if found.expires_at_ms <= now_ms() {
            state
                .audit(deny_event(
                    conn,
                    &label,
                    action,
                    target,
                    "operator token expired",
                ))
                .await?;
            return Err(ApiError::Unauthenticated("operator token expired".into()));
        }
        return Ok(Caller {
            subject: Subject::Operator {
                name: found.name,
                roles: found.roles,
            },
            credential: "operator-token",
            record: None,
        });
    }
    match &conn.peer {
        Peer::Device(id) => {
            let record = state.store.device(id.as_str()).await.map_err(Into::into);
            device_caller(state, conn, id, record, action, target).await
        }
        other => {
            let detail = match other {
                Peer::Manufacturer(_) => "a manufacturer certificate only enrols",
                Peer::Unidentified => "the certificate names no device",
                _ => "no client certificate",
            };
            state
                .audit(deny_event(conn, "anonymous", action, target, detail))
                .await?;
            Err(ApiError::Unauthenticated(
                "a device certificate from the fleet CA is required".into(),
            ))
        }
    }
}

/// Asks Cedar and audits the decision (repeated allowed routine decisions as counts, see
/// [`crate::repeats`]); `Forbidden` unless allowed.
pub(crate) async fn authorize(
    state: &AppState,
    conn: &Conn,
    caller: &Caller,
    action: &str,
    target: &Target,
) -> Result<(), ApiError> {
    let context = RequestContext {
        time: now_ms() / 1000,
        source: conn.addr.ip(),
        credential: caller.credential,
    };
    let decision = state
        .policies
        .decide(&caller.subject, action, target, &context)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut e = event(
        "authz",
        &caller.subject.label(),
        action,
        &target.label(),
        if decision.allowed { "allow" } else { "deny" },
    );
    e.policies = decision.policies;
    e.source = conn.addr.to_string();
    e.detail = decision.errors.join("; ");
    if decision.allowed {
        match state.repeats.note(&e, conn.addr.ip(), now_ms()) {
            Verdict::Count => return Ok(()),
            Verdict::Log { skipped, since_ms } if skipped > 0 => {
                let note = crate::repeats::preceded_by(skipped, since_ms);
                e.detail = if e.detail.is_empty() {
                    note
                } else {
                    format!("{}; {note}", e.detail)
                };
            }
            Verdict::Log { .. } => {}
        }
    }
    state.audit(e).await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

pub(crate) fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))
}
