//! The web console's sessions, one-time sign-in links and OpenID Connect sign-ins under way, as
//! stored rows (`console_sessions`). A secret (the cookie's, the link's, the sign-in's `state`)
//! is 256 random bits shown once; only its SHA-256 is stored, as for operator tokens.
//!
//! No HTTP here: the cookie is read and written by the console (`console/`), and the guard
//! resolves a request's session through [`open`] for its rate-limit key.

use medsec_store::ConsoleSession;
use medsec_store::prelude::*;

use crate::Error;
use crate::tokens;

/// The session cookie. The `__Host-` prefix makes browsers refuse it unless it is `Secure`,
/// has `Path=/` and no `Domain`: no other host or path can set or shadow it.
pub const COOKIE: &str = "__Host-medsec-session";
/// The cookie that ties an OpenID Connect sign-in to the browser that started it (login CSRF).
pub const LOGIN_COOKIE: &str = "__Host-medsec-login";
/// How long a one-time sign-in link works.
pub const LINK_SECS: i64 = 600;
/// How long a browser has to come back from the identity provider.
pub const LOGIN_SECS: i64 = 600;
/// A session's activity is written at most this often (a page's several requests make one
/// write).
const TOUCH_EVERY_MS: i64 = 30_000;

/// A new secret: 256 random bits, URL-safe base64.
pub fn secret() -> Result<String, Error> {
    Ok(format!("{}{}", tokens::nonce()?, tokens::nonce()?))
}

/// Who a session, link or sign-in is for.
#[derive(Debug, Clone)]
pub struct Person {
    /// The principal's name as Cedar and the audit log see it.
    pub principal: String,
    /// The name the console shows.
    pub display_name: String,
    /// medsec roles.
    pub roles: Vec<String>,
}

/// Starts a session for `person`, ending at `now + max_secs` at the latest (and no later than
/// `until_ms`, a token's own expiry, when given). Returns the cookie's secret and the row.
pub async fn start<S: Store>(
    store: &S,
    person: &Person,
    now_ms: i64,
    max_secs: u64,
    until_ms: Option<i64>,
) -> Result<(String, ConsoleSession), Error> {
    let id = secret()?;
    let max_ms = i64::try_from(max_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires = now_ms
        .saturating_add(max_ms)
        .min(until_ms.unwrap_or(i64::MAX));
    let row = ConsoleSession {
        id_sha256: tokens::hash(&id),
        kind: "session".into(),
        principal: person.principal.clone(),
        display_name: person.display_name.clone(),
        roles: person.roles.clone(),
        csrf: secret()?,
        data: String::new(),
        created_at_ms: now_ms,
        last_seen_ms: now_ms,
        expires_at_ms: expires,
    };
    store.put_console_session(&row).await?;
    Ok((id, row))
}

/// The live session a cookie's secret names at `now_ms`, if any: not ended, not past its
/// absolute expiry, and used within `idle_secs`. Its idle clock restarts.
pub async fn open<S: Store>(
    store: &S,
    secret: &str,
    now_ms: i64,
    idle_secs: u64,
) -> Result<Option<ConsoleSession>, Error> {
    let hash = tokens::hash(secret);
    let row = match store.console_session(&hash, "session", now_ms).await {
        Ok(row) => row,
        Err(medsec_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let idle_ms = i64::try_from(idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if row.last_seen_ms.saturating_add(idle_ms) <= now_ms {
        store.end_console_session(&hash).await?;
        return Ok(None);
    }
    if now_ms - row.last_seen_ms >= TOUCH_EVERY_MS {
        store.touch_console_session(&hash, now_ms).await?;
    }
    Ok(Some(row))
}

/// Ends the session a cookie's secret names (sign-out).
pub async fn end<S: Store>(store: &S, secret: &str) -> Result<(), Error> {
    Ok(store.end_console_session(&tokens::hash(secret)).await?)
}

/// Makes a one-time sign-in link's secret for `person`, valid [`LINK_SECS`]: the break-glass
/// and demo way in, made on the server host (`medsec console link`).
pub async fn make_link<S: Store>(store: &S, person: &Person, now_ms: i64) -> Result<String, Error> {
    if let Some(bad) = person
        .roles
        .iter()
        .find(|r| !tokens::ROLES.contains(&r.as_str()))
    {
        return Err(Error::Config {
            reason: format!("unknown role {bad:?}: use {}", tokens::ROLES.join(", ")),
        });
    }
    let id = secret()?;
    store
        .put_console_session(&ConsoleSession {
            id_sha256: tokens::hash(&id),
            kind: "link".into(),
            principal: person.principal.clone(),
            display_name: person.display_name.clone(),
            roles: person.roles.clone(),
            csrf: String::new(),
            data: String::new(),
            created_at_ms: now_ms,
            last_seen_ms: now_ms,
            expires_at_ms: now_ms + LINK_SECS * 1000,
        })
        .await?;
    Ok(id)
}

/// Uses a one-time link: the person it was made for, once; `None` if it is unknown, used or
/// expired.
pub async fn take_link<S: Store>(
    store: &S,
    secret: &str,
    now_ms: i64,
) -> Result<Option<Person>, Error> {
    match store
        .take_console_session(&tokens::hash(secret), "link", now_ms)
        .await
    {
        Ok(row) => Ok(Some(Person {
            principal: row.principal,
            display_name: row.display_name,
            roles: row.roles,
        })),
        Err(medsec_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Stores an OpenID Connect sign-in under way, keyed by its `state`; `data` is what the
/// callback needs (the nonce, the PKCE verifier, the browser binding), as JSON.
pub async fn put_login<S: Store>(
    store: &S,
    state: &str,
    data: &str,
    now_ms: i64,
) -> Result<(), Error> {
    store
        .put_console_session(&ConsoleSession {
            id_sha256: tokens::hash(state),
            kind: "oidc-login".into(),
            principal: String::new(),
            display_name: String::new(),
            roles: Vec::new(),
            csrf: String::new(),
            data: data.to_owned(),
            created_at_ms: now_ms,
            last_seen_ms: now_ms,
            expires_at_ms: now_ms + LOGIN_SECS * 1000,
        })
        .await?;
    Ok(())
}

/// Takes the sign-in under way that `state` names, once; `None` if unknown, used or expired.
pub async fn take_login<S: Store>(
    store: &S,
    state: &str,
    now_ms: i64,
) -> Result<Option<String>, Error> {
    match store
        .take_console_session(&tokens::hash(state), "oidc-login", now_ms)
        .await
    {
        Ok(row) => Ok(Some(row.data)),
        Err(medsec_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}
