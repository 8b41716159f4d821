//! In front of every route: the rate limit, the body limit and the time limit, each refusal
//! audited.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::audit_log::event;

use super::error::ApiError;
use crate::state::{AppState, Conn, Peer, address_block, now_ms};
use crate::tokens;
use medsec_store::prelude::*;

/// The body limit of a request: documents on the risk upload routes, commands elsewhere.
fn body_limit(state: &AppState, method: &axum::http::Method, path: &str) -> usize {
    if method != axum::http::Method::GET && path.starts_with("/api/v1/risk/") {
        state.config.limits.max_document_bytes
    } else if method == axum::http::Method::POST && path == "/ui/risk/upload" {
        // The console's form carries the document URL-encoded (up to three bytes per byte).
        state.config.limits.max_document_bytes.saturating_mul(3)
    } else {
        state.config.limits.max_body_bytes
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// The rate-limit key of a request: a verified principal (the device its certificate names; on
/// the operator port, the operator whose live token the request carries, looked up here), else
/// the source address, an IPv6 address by its /64 (one host's usual allocation). Never a
/// credential merely carried: a key made from an unchecked token would give every random token
/// a fresh allowance. A store error falls back to the address, the stricter key. A live token
/// found here is returned too, for the handler's [`super::auth::Auth`] to use without reading
/// it again.
async fn rate_key(
    state: &AppState,
    conn: &Conn,
    path: &str,
    headers: &HeaderMap,
) -> (String, Option<VerifiedToken>, Option<VerifiedSession>) {
    if let Peer::Device(id) = &conn.peer {
        return (format!("device:{}", id.as_str()), None, None);
    }
    // The web console's pages (only there: the API never takes a cookie) key on the person
    // whose live session cookie the request carries.
    if conn.operator_port
        && path.starts_with("/ui/")
        && let Some(secret) = cookie(headers, crate::sessions::COOKIE)
        && let Ok(Some(row)) = crate::sessions::open(
            &state.store,
            secret,
            now_ms(),
            state.config.console.idle_timeout_secs,
        )
        .await
    {
        return (
            format!("operator:{}", row.principal),
            None,
            Some(VerifiedSession(row)),
        );
    }
    if conn.operator_port
        && let Some(token) = bearer(headers)
        && let Ok(found) = state.store.operator_token(&tokens::hash(token)).await
        && found.refusal(now_ms()).is_none()
    {
        return (
            format!("operator:{}", found.name),
            Some(VerifiedToken(found)),
            None,
        );
    }
    let key = match address_block(conn.addr.ip()) {
        ip @ IpAddr::V4(_) => format!("addr:{ip}"),
        ip @ IpAddr::V6(_) => format!("addr:{ip}/64"),
    };
    (key, None, None)
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The web console's session a request's cookie names, as the guard found it live; a request
/// extension for the console's pages.
#[derive(Clone)]
pub(crate) struct VerifiedSession(pub(crate) medsec_store::ConsoleSession);

/// The stored record of the operator token a request carries, as the guard read it (the token
/// was live then); a request extension.
#[derive(Clone)]
pub(crate) struct VerifiedToken(pub(crate) medsec_store::OperatorToken);

/// Rate limit, body limit and time limit, in front of every route; refusals are audited.
pub(super) async fn guard(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    request: Request,
    next: Next,
) -> Response {
    // Every answer is counted, refusals included, under the route's pattern (never its path,
    // whose ids would make one series per device).
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let port = if conn.operator_port {
        "operator"
    } else {
        "device"
    };
    let response = match limits(state, conn, request, next).await {
        Ok(r) => json_errors(r).await,
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    crate::metrics::global().request(
        port,
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Every refusal answers with the JSON error body, including those axum's extractors write
/// as plain text before a handler runs (a path segment or query string that does not parse):
/// clients, and the OpenAPI description, see one error shape.
async fn json_errors(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are a line; a larger body is not one of them and is cut.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let error = medsec_api::ErrorBody {
        error: String::from_utf8_lossy(&text).trim().to_owned(),
    };
    let json = serde_json::to_vec(&error).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(json))
}

/// The rate and body limits and the request timeout.
async fn limits(
    state: Arc<AppState>,
    conn: Conn,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (key, verified, session) =
        rate_key(&state, &conn, request.uri().path(), request.headers()).await;
    let action = |r: &axum::http::request::Parts| format!("{} {}", r.method, r.uri.path());
    let refuse = |action: String, detail: String| {
        let mut e = event(crate::repeats::LIMIT_KIND, &key, &action, "-", "deny");
        e.source = conn.addr.to_string();
        e.detail = detail;
        e
    };
    let (mut parts, body) = request.into_parts();
    if let Some(v) = verified {
        parts.extensions.insert(v);
    }
    if let Some(s) = session {
        parts.extensions.insert(s);
    }
    let limit = body_limit(&state, &parts.method, parts.uri.path());
    if !state.rate_ok(&key) {
        // One entry per window per source, with a count: a flood cannot grow the log faster.
        let e = refuse(
            "rate-limit".into(),
            format!("rate limit exceeded: {}", action(&parts)),
        );
        state
            .audit_or_count(e, address_block(conn.addr.ip()))
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
