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
use crate::state::{AppState, Conn, Peer, now_ms};
use crate::tokens;
use medsec_store::prelude::*;

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
    headers: &HeaderMap,
) -> (String, Option<VerifiedToken>) {
    if let Peer::Device(id) = &conn.peer {
        return (format!("device:{}", id.as_str()), None);
    }
    if conn.operator_port
        && let Some(token) = bearer(headers)
        && let Ok(found) = state.store.operator_token(&tokens::hash(token)).await
        && found.refusal(now_ms()).is_none()
    {
        return (
            format!("operator:{}", found.name),
            Some(VerifiedToken(found)),
        );
    }
    let key = match address_block(conn.addr.ip()) {
        ip @ IpAddr::V4(_) => format!("addr:{ip}"),
        ip @ IpAddr::V6(_) => format!("addr:{ip}/64"),
    };
    (key, None)
}

/// The stored record of the operator token a request carries, as the guard read it (the token
/// was live then); a request extension.
#[derive(Clone)]
pub(crate) struct VerifiedToken(pub(crate) medsec_store::OperatorToken);

/// The block a source address is limited and summarised by: an IPv4 address as it is (an
/// IPv4-mapped IPv6 one as IPv4), an IPv6 address by its /64, so that one host cycling through
/// its 2^64 addresses is one source.
pub(crate) fn address_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Rate limit, body limit and time limit, in front of every route; refusals are audited.
pub(super) async fn guard(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (key, verified) = rate_key(&state, &conn, request.headers()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_one_source_by_its_64_and_a_mapped_ipv4_address_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_block(a), address_block(b));
        assert_ne!(address_block(a), address_block(other));
        assert_eq!(address_block(a).to_string(), "2001:db8:1:2::");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_block(mapped).to_string(), "192.0.2.7");
    }
}
