//! In front of every route: the rate limit, the body limit and the time limit, each refusal
//! audited.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::audit_log::event;
use crate::tokens;

use super::error::ApiError;
use crate::state::{AppState, Conn, Peer};

/// The body limit of a request: documents on the risk upload routes, commands elsewhere.
fn body_limit(state: &AppState, method: &axum::http::Method, path: &str) -> usize {
    if method != axum::http::Method::GET && path.starts_with("/api/v1/risk/") {
        state.config.limits.max_document_bytes
    } else {
        state.config.limits.max_body_bytes
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// The rate-limit key of a request: its certificate identity or token, else its address.
fn rate_key(conn: &Conn, headers: &HeaderMap) -> String {
    match (&conn.peer, bearer(headers)) {
        (Peer::Device(id), _) => format!("device:{}", id.as_str()),
        (_, Some(token)) => format!(
            "token:{}",
            hex::encode(tokens::hash(token).get(..8).unwrap_or_default())
        ),
        _ => format!("addr:{}", conn.addr.ip()),
    }
}

/// Rate limit, body limit and time limit, in front of every route; refusals are audited.
pub(super) async fn guard(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = rate_key(&conn, request.headers());
    let action = |r: &axum::http::request::Parts| format!("{} {}", r.method, r.uri.path());
    let refuse = |action: String, detail: String| {
        let mut e = event("limit", &key, &action, "-", "deny");
        e.source = conn.addr.to_string();
        e.detail = detail;
        e
    };
    let (parts, body) = request.into_parts();
    let limit = body_limit(&state, &parts.method, parts.uri.path());
    if !state.rate_ok(&key) {
        state
            .audit(refuse(action(&parts), "rate limit exceeded".into()))
            .await?;
        return Err(ApiError::RateLimited);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        state
            .audit(refuse(
                action(&parts),
                format!(
                    "body of {} bytes exceeds the limit of {limit}",
                    declared.unwrap_or(0)
                ),
            ))
            .await?;
        return Err(ApiError::TooLarge(limit));
    }
    // Bodies are small by design: read them here, under the limit, so an oversized chunked body
    // is refused (and audited) like a declared one.
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            state
                .audit(refuse(
                    action(&parts),
                    format!("body exceeds the limit of {limit} bytes"),
                ))
                .await?;
            return Err(ApiError::TooLarge(limit));
        }
    };
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    tokio::time::timeout(
        Duration::from_millis(state.config.limits.request_timeout_ms),
        next.run(request),
    )
    .await
    .map_err(|_| ApiError::Timeout)
}
