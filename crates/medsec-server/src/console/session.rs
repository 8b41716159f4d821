//! Signing in and out, and [`Ctx`]: the signed-in person's view of the API.

use std::sync::Arc;

use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use medsec_store::ConsoleSession;
use medsec_store::prelude::*;
use serde::Deserialize;
use tower::ServiceExt as _;

use super::page::{self, Page};
use super::{ConsolePrincipal, InternalApi};
use crate::api::guard::{VerifiedSession, cookie};
use crate::audit_log::event;
use crate::sessions::{self, Person};
use crate::state::{AppState, Conn, now_ms};
use crate::tokens;

/// What the API answered when it refused or failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Failure {
    fn internal(what: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: what.to_string(),
        }
    }
}

/// A console request from a signed-in person: the session, and the API as that person.
pub(crate) struct Ctx {
    pub(crate) state: Arc<AppState>,
    pub(crate) session: ConsoleSession,
    pub(crate) conn: Conn,
    api: axum::Router,
    /// The request's path and query (where a notice sends the browser back).
    pub(crate) here: String,
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/ui/".to_owned(), |p| p.as_str().to_owned());
        let (Some(conn), Some(InternalApi(api))) = (
            parts.extensions.get::<Conn>().cloned(),
            parts.extensions.get::<InternalApi>().cloned(),
        ) else {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "console wiring: no connection",
            )
                .into_response());
        };
        let Some(VerifiedSession(session)) = parts.extensions.get::<VerifiedSession>().cloned()
        else {
            // Not signed in (or the session ended): a page goes to the sign-in, and comes back
            // after; anything else is told plainly.
            if parts.method == Method::GET && !here.starts_with("/ui/events") {
                return Err(page::see_other(&format!(
                    "/ui/login?next={}",
                    page::encode(&here)
                )));
            }
            return Err(page::error_page(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Your session has ended. Sign in again.",
            ));
        };
        Ok(Ctx {
            state: state.clone(),
            session,
            conn,
            api,
            here,
        })
    }
}

impl Ctx {
    /// The signed-in person as Cedar sees them.
    pub(crate) fn label(&self) -> String {
        format!("Operator::{:?}", self.session.principal)
    }

    /// Sends one request to the operator API as the signed-in person, and returns the status
    /// and body of a success.
    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Bytes, Failure> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(Failure::internal)?;
        self.send(method, uri, body.map(|b| ("application/json", b)))
            .await
    }

    /// Sends one request with a body of its own type (a document upload) to the operator API
    /// as the signed-in person; the answer's body on success.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Bytes, Failure> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some((content_type, _)) = &body {
            request = request.header(header::CONTENT_TYPE, *content_type);
        }
        let bytes = body.map(|(_, b)| b).unwrap_or_default();
        let mut request = request.body(Body::from(bytes)).map_err(Failure::internal)?;
        request.extensions_mut().insert(self.conn.clone());
        request.extensions_mut().insert(ConsolePrincipal {
            name: self.session.principal.clone(),
            roles: self.session.roles.clone(),
        });
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(Failure::internal)?;
        let status = response.status();
        let limit = self.state.config.limits.max_document_bytes.max(64 << 20);
        let body = axum::body::to_bytes(response.into_body(), limit)
            .await
            .map_err(Failure::internal)?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<medsec_api::ErrorBody>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(Failure { status, message })
    }

    /// `GET uri` from the API, as JSON.
    pub(crate) async fn get(&self, uri: &str) -> Result<serde_json::Value, Failure> {
        let body = self.call(Method::GET, uri, None).await?;
        serde_json::from_slice(&body).map_err(Failure::internal)
    }

    /// `POST uri` with a JSON body, as JSON (an empty answer is `null`).
    pub(crate) async fn post(
        &self,
        uri: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let bytes = self.call(Method::POST, uri, Some(body)).await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into())))
    }

    /// Checks a change's CSRF token against the session's; a mismatch is refused with 403 and
    /// audited (a page on another site cannot read the token, so it cannot send it).
    pub(crate) async fn check_csrf(&self, sent: &str, action: &str) -> Result<(), Response> {
        if sessions::same_secret(sent, &self.session.csrf) {
            return Ok(());
        }
        let mut e = event("console", &self.label(), action, "-", "deny");
        e.source = self.conn.addr.to_string();
        e.detail = "refused: the form's CSRF token is missing or wrong".into();
        if let Err(err) = self.state.audit(e).await {
            tracing::error!(error = ?err, "auditing a CSRF refusal failed");
        }
        Err(page::error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form's security token is missing or out of date (CSRF). Reload the page and try again.",
        ))
    }

    /// The page for an API refusal or failure, with the API's status.
    pub(crate) fn failed(&self, f: Failure) -> Response {
        let title = match f.status {
            StatusCode::FORBIDDEN => "Not permitted",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Not possible now",
            StatusCode::BAD_REQUEST => "Not accepted",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            _ => "Failed",
        };
        let page = Page::new(self, title).body(html! {
            div.failure role="alert" {
                p { strong { (title) } " (" (f.status.as_u16()) "): " (f.message) }
                @if f.status == StatusCode::FORBIDDEN {
                    p { "Your roles (" (self.session.roles.join(", ")) ") do not allow this; the refusal is in the audit log." }
                }
            }
        });
        (f.status, page.render()).into_response()
    }
}

/// `?next=` of the sign-in: where to go after. Only a console path is followed, never another
/// site (an open redirect would lend medsec's name to a phishing link).
#[derive(Deserialize, Default)]
pub(crate) struct Next {
    pub(crate) next: Option<String>,
}

/// A safe place to go after signing in.
pub(crate) fn next_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with("/ui/")
                && !p.contains("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

fn cookie_header(name: &str, value: &str, same_site: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map_or_else(String::new, |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` of a new session.
pub(crate) fn session_cookie(secret: &str) -> HeaderValue {
    cookie_header(sessions::COOKIE, secret, "Strict", None)
}

/// The `Set-Cookie` of a cookie removed.
pub(crate) fn removed_cookie(name: &str) -> HeaderValue {
    cookie_header(name, "", "Strict", Some(0))
}

/// The `Set-Cookie` of the sign-in binding: `Lax`, because the identity provider sends the
/// browser back by a cross-site navigation, which a `Strict` cookie would not come with.
pub(crate) fn login_cookie(secret: &str) -> HeaderValue {
    cookie_header(
        sessions::LOGIN_COOKIE,
        secret,
        "Lax",
        Some(sessions::LOGIN_SECS),
    )
}

/// Audits a sign-in, allowed or refused.
pub(crate) async fn audit_sign_in(
    state: &AppState,
    conn: &Conn,
    principal: &str,
    decision: &str,
    detail: String,
) {
    let mut e = event("console", principal, "console.sign_in", "Fleet", decision);
    e.source = conn.addr.to_string();
    e.detail = detail;
    if let Err(err) = state.audit(e).await {
        tracing::error!(error = ?err, "auditing a console sign-in failed");
    }
}

/// Starts a session for `person` and answers with a page that moves on to `next`.
///
/// The answer is a page that refreshes itself rather than a redirect: after a cross-site
/// navigation (a link opened from a terminal, the identity provider sending the browser back),
/// a browser does not send a `SameSite=Strict` cookie on the redirect that follows, but does on
/// a navigation the page itself starts.
pub(crate) async fn begin(
    state: &AppState,
    conn: &Conn,
    person: &Person,
    until_ms: Option<i64>,
    next: &str,
    how: &str,
) -> Response {
    let now = now_ms();
    let started = sessions::start(
        &state.store,
        person,
        now,
        state.config.console.max_session_secs,
        until_ms,
    )
    .await;
    let (secret, _) = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = ?e, "starting a console session failed");
            return page::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not signed in",
                "The session could not be stored; try again.",
            );
        }
    };
    audit_sign_in(
        state,
        conn,
        &format!("Operator::{:?}", person.principal),
        "allow",
        format!(
            "signed in to the console by {how} as {:?} with roles {}",
            person.display_name,
            person.roles.join(",")
        ),
    )
    .await;
    let mut response = page::continue_to(next, &format!("Signed in as {}", person.display_name));
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session_cookie(&secret));
    headers.append(header::SET_COOKIE, removed_cookie(sessions::LOGIN_COOKIE));
    response
}

/// `GET /ui/login`: single sign-on (when configured) and the operator-token form.
pub(crate) async fn login_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Next>,
) -> Response {
    let next = next_path(q.next.as_deref());
    let binding = match sessions::secret() {
        Ok(s) => s,
        Err(_) => {
            return page::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "no randomness",
            );
        }
    };
    let oidc = &state.config.console.oidc;
    let body = html! {
        main.login id="main" {
            h1 { "Sign in to medsec" }
            @if oidc.issuer.is_some() {
                p { a.button href={ "/ui/login/oidc?next=" (page::encode(&next)) } { "Sign in with " (oidc.provider_name) } }
                p.hint { "Your organisation's identity provider; your groups decide your medsec roles." }
            }
            details open[oidc.issuer.is_none()] {
                summary { "Break-glass: sign in with an operator token" }
                form method="post" action="/ui/login" {
                    input type="hidden" name="binding" value=(binding);
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Operator token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    button type="submit" { "Sign in" }
                }
                p.hint { "Made on the server host with " code { "medsec operator token create" } ". The session takes the token's roles and ends no later than the token." }
            }
        }
    };
    let mut response = page::bare("Sign in", body);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            sessions::LOGIN_COOKIE,
            &binding,
            "Strict",
            Some(sessions::LOGIN_SECS),
        ),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct TokenLogin {
    token: String,
    binding: String,
    next: Option<String>,
}

/// `POST /ui/login`: signs in with an operator token (break-glass). The form must come from
/// this browser's sign-in page (its binding cookie), so another site cannot sign a victim in
/// under the attacker's token.
pub(crate) async fn token_login(
    State(state): State<Arc<AppState>>,
    axum::Extension(conn): axum::Extension<Conn>,
    headers: HeaderMap,
    Form(form): Form<TokenLogin>,
) -> Response {
    let bound = cookie(&headers, sessions::LOGIN_COOKIE)
        .is_some_and(|c| sessions::same_secret(c, &form.binding));
    if !bound {
        audit_sign_in(
            &state,
            &conn,
            "anonymous",
            "deny",
            "token sign-in refused: the form did not come from this browser's sign-in page".into(),
        )
        .await;
        return page::error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This sign-in form is out of date or came from elsewhere. Open the sign-in page again.",
        );
    }
    let found = state
        .store
        .operator_token(&tokens::hash(form.token.trim()))
        .await;
    let token = match found {
        Ok(t) => t,
        Err(medsec_store::Error::NotFound { .. }) => {
            audit_sign_in(
                &state,
                &conn,
                "anonymous",
                "deny",
                "unknown operator token".into(),
            )
            .await;
            return page::error_page(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "That operator token is not known.",
            );
        }
        Err(e) => {
            tracing::error!(error = ?e, "reading an operator token failed");
            return page::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The store did not answer.",
            );
        }
    };
    let now = now_ms();
    if let Some(why) = token.refusal(now) {
        audit_sign_in(
            &state,
            &conn,
            &format!("Operator::{:?}", token.name),
            "deny",
            why.into(),
        )
        .await;
        return page::error_page(StatusCode::UNAUTHORIZED, "Not signed in", why);
    }
    let person = Person {
        principal: token.name.clone(),
        display_name: token.name.clone(),
        roles: token.roles.clone(),
    };
    let next = next_path(form.next.as_deref());
    let mut response = begin(
        &state,
        &conn,
        &person,
        Some(token.expires_at_ms),
        &next,
        &format!("operator token {}", token.id()),
    )
    .await;
    // A same-site form post: a plain redirect carries the new cookie.
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&next) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    response
}

/// `GET /ui/login/link/{secret}`: a one-time sign-in link (`medsec console link`, the demo).
pub(crate) async fn link_login(
    State(state): State<Arc<AppState>>,
    axum::Extension(conn): axum::Extension<Conn>,
    Path(secret): Path<String>,
) -> Response {
    match sessions::take_link(&state.store, &secret, now_ms()).await {
        Ok(Some(person)) => begin(&state, &conn, &person, None, "/ui/", "one-time link").await,
        Ok(None) => {
            audit_sign_in(
                &state,
                &conn,
                "anonymous",
                "deny",
                "one-time sign-in link unknown, used or expired".into(),
            )
            .await;
            page::error_page(
                StatusCode::UNAUTHORIZED,
                "Link used or expired",
                "A sign-in link works once, for ten minutes. Make a new one with `medsec console link`.",
            )
        }
        Err(e) => {
            tracing::error!(error = ?e, "reading a sign-in link failed");
            page::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The store did not answer.",
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// `POST /ui/logout`: ends the session.
pub(crate) async fn logout(ctx: Ctx, headers: HeaderMap, Form(form): Form<CsrfOnly>) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf, "console.sign_out").await {
        return r;
    }
    if let Some(secret) = cookie(&headers, sessions::COOKIE)
        && let Err(e) = sessions::end(&ctx.state.store, secret).await
    {
        tracing::error!(error = ?e, "ending a console session failed");
    }
    let mut e = event("console", &ctx.label(), "console.sign_out", "Fleet", "info");
    e.source = ctx.conn.addr.to_string();
    if let Err(err) = ctx.state.audit(e).await {
        tracing::error!(error = ?err, "auditing a sign-out failed");
    }
    let mut response = page::see_other("/ui/login");
    response
        .headers_mut()
        .append(header::SET_COOKIE, removed_cookie(sessions::COOKIE));
    response
}
