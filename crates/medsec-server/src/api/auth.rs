//! How an HTTP request names its caller: an operator's bearer token on the operator port, the
//! connection's verified device certificate on the device port. Resolving the principal, asking
//! Cedar and auditing the decision are `crate::access`, shared with MQTT.
//!
//! Every handler takes an [`Auth`] (the request's credential, read but not yet judged) and calls
//! [`Auth::authorize`] with its action and target before it acts; a handler that must read its
//! body between the two steps (to answer 401 before 400, and 400 before 403) calls
//! [`Auth::caller`] and then [`Auth::check`]. The order is always: who is calling, then Cedar,
//! then the audit entry, then the work.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use medsec_audit::Event;
use medsec_pki::DeviceId;
use medsec_store::prelude::*;

use crate::access::authorize;
pub(crate) use crate::access::{Caller, deny_event, device_caller, device_id, device_subject};
use crate::audit_log::event;
use crate::authz::{Subject, Target};
use crate::tokens;

use super::error::ApiError;
use super::guard::{VerifiedToken, bearer};
use crate::state::{AppState, Conn, Peer, now_ms};

/// The request's credential and context, read from the request but not yet judged.
pub(crate) struct Auth {
    /// The server's state.
    pub(crate) state: Arc<AppState>,
    /// The connection the request came on.
    pub(crate) conn: Conn,
    /// The operator's bearer token, if the request carried one.
    token: Option<String>,
    /// That token's record, if the guard read it already.
    verified: Option<medsec_store::OperatorToken>,
    /// The person signed in to the web console, when the console sends the request.
    console: Option<ConsolePrincipal>,
}

/// The person signed in to the web console on whose behalf the console sends a request to the
/// API inside the server. Only the console sets this request extension, on requests that never
/// cross the network, after it has checked the session cookie (and the CSRF token of a
/// change); nothing a client sends becomes one.
#[derive(Clone, Debug)]
pub(crate) struct ConsolePrincipal {
    /// The operator's name (an identity provider's subject and issuer, or a token's name).
    pub(crate) name: String,
    /// medsec roles.
    pub(crate) roles: Vec<String>,
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        // `serve.rs` inserts the connection into every request; a request without one is a
        // wiring bug, never a client's fault.
        let conn = parts
            .extensions
            .get::<Conn>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("request without connection context".into()))?;
        Ok(Auth {
            state: state.clone(),
            token: bearer(&parts.headers).map(str::to_owned),
            verified: parts.extensions.get::<VerifiedToken>().map(|v| v.0.clone()),
            console: parts.extensions.get::<ConsolePrincipal>().cloned(),
            conn,
        })
    }
}

impl Auth {
    /// Who is calling, then whether Cedar allows `action` on `target` (both audited).
    pub(crate) async fn authorize(
        &self,
        action: &str,
        target: &Target,
    ) -> Result<Caller, ApiError> {
        let who = self.caller(action, target).await?;
        self.check(&who, action, target).await?;
        Ok(who)
    }

    /// Whether Cedar allows an already resolved caller `action` on `target` (audited).
    pub(crate) async fn check(
        &self,
        who: &Caller,
        action: &str,
        target: &Target,
    ) -> Result<(), ApiError> {
        Ok(authorize(&self.state, &self.conn, who, action, target).await?)
    }

    /// An audit entry of this request: `event` with the connection's address as its source.
    pub(crate) fn event(
        &self,
        kind: &str,
        principal: &str,
        action: &str,
        resource: &str,
        decision: &str,
    ) -> Event {
        let mut e = event(kind, principal, action, resource, decision);
        e.source = self.conn.addr.to_string();
        e
    }

    /// Resolves the caller of a device-API or operator-API route, auditing refusals.
    pub(crate) async fn caller(&self, action: &str, target: &Target) -> Result<Caller, ApiError> {
        let (state, conn) = (&self.state, &self.conn);
        let refuse =
            |principal: &str, detail: &str| deny_event(conn, principal, action, target, detail);
        if conn.operator_port
            && let Some(person) = &self.console
        {
            return Ok(Caller {
                subject: Subject::Operator {
                    name: person.name.clone(),
                    roles: person.roles.clone(),
                },
                credential: "console-session",
                record: None,
            });
        }
        if conn.operator_port {
            let Some(token) = &self.token else {
                state
                    .audit(refuse("anonymous", "no operator token"))
                    .await?;
                return Err(ApiError::Unauthenticated(
                    "an operator token is required: Authorization: Bearer <token>".into(),
                ));
            };
            let stored = match &self.verified {
                Some(t) => Ok(t.clone()),
                None => state.store.operator_token(&tokens::hash(token)).await,
            };
            let found = match stored {
                Ok(t) => t,
                Err(medsec_store::Error::NotFound { .. }) => {
                    state
                        .audit(refuse("anonymous", "unknown operator token"))
                        .await?;
                    return Err(ApiError::Unauthenticated("unknown operator token".into()));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(why) = found.refusal(now_ms()) {
                let label = format!("Operator::{:?}", found.name);
                state.audit(refuse(&label, why)).await?;
                return Err(ApiError::Unauthenticated(why.into()));
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
                Ok(device_caller(state, conn, id, record, action, target).await?)
            }
            other => {
                let detail = match other {
                    Peer::Manufacturer(_) => "a manufacturer certificate only enrols",
                    Peer::Unidentified => "the certificate names no device",
                    _ => "no client certificate",
                };
                state.audit(refuse("anonymous", detail)).await?;
                Err(ApiError::Unauthenticated(
                    "a device certificate from the fleet CA is required".into(),
                ))
            }
        }
    }
}

/// A device id from the route's `{id}`, refused with a 400 naming the problem when medsec does
/// not allow it (before any credential is read: the id is not a secret and the answer names no
/// device).
pub(crate) struct DevicePath(pub(crate) DeviceId);

impl DevicePath {
    /// The device as a Cedar target.
    pub(crate) fn target(&self) -> Target {
        Target::Device(self.0.as_str().to_owned())
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DevicePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let id = params
            .iter()
            .find(|(name, _)| name == "id")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::Internal("route has no {id} parameter".into()))?;
        Ok(DevicePath(device_id(id)?))
    }
}
