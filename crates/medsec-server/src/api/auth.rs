//! How an HTTP request names its caller: an operator's bearer token on the operator port, the
//! connection's verified device certificate on the device port. Resolving the principal, asking
//! Cedar and auditing the decision are `crate::access`, shared with MQTT.

use axum::http::HeaderMap;
use medsec_store::Store as _;

pub(crate) use crate::access::{
    Caller, authorize, deny_event, device_caller, device_id, device_subject,
};
use crate::authz::{Subject, Target};
use crate::tokens;

use super::error::ApiError;
use super::guard::bearer;
use crate::state::{AppState, Conn, Peer, now_ms};

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
            Ok(device_caller(state, conn, id, record, action, target).await?)
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
