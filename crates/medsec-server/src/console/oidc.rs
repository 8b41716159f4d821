//! Single sign-on with OpenID Connect: the authorisation code flow with PKCE (S256), a `state`
//! that is used once and tied to the browser that started the sign-in, a `nonce` checked in
//! the ID token, and the ID token's signature checked under the provider's published keys
//! (asymmetric algorithms only: an `alg` of `none` or a shared-secret HMAC is refused). The
//! person's groups give their medsec roles through `console.oidc.roles`; a person whose groups
//! map to no role is not signed in, and that refusal is audited.
//!
//! The provider's discovery document and keys are fetched over TLS pinned to
//! `console.oidc.ca_file` (default: the system's trust store) and kept for ten minutes; an ID
//! token signed with a key id not yet known makes one early refresh (the provider rotated).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::page;
use super::session::{Next, audit_sign_in, begin, login_cookie, next_path};
use crate::api::guard::cookie;
use crate::config::Oidc;
use crate::sessions::{self, Person};
use crate::state::{AppState, Conn, now_ms};

/// How long discovery and keys are kept.
const KEEP: Duration = Duration::from_secs(600);
/// Each request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Clock skew allowed on the ID token's times.
const LEEWAY_SECS: u64 = 60;
/// The only signature algorithms accepted on an ID token.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What the provider's discovery document says that medsec uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The provider, as last fetched.
struct Provider {
    discovery: Discovery,
    keys: JwkSet,
    fetched: Instant,
}

fn cache() -> &'static Mutex<BTreeMap<String, Arc<Provider>>> {
    static CACHE: std::sync::OnceLock<Mutex<BTreeMap<String, Arc<Provider>>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn agent(config: &Oidc) -> Result<ureq::Agent, String> {
    let path = config
        .ca_file
        .clone()
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let pem = std::fs::read(&path)
        .map_err(|e| format!("console.oidc.ca_file {}: {e}", path.display()))?;
    medsec_tuf_client::HttpTransport::new(Some(&pem), TIMEOUT)
        .map(|t| t.agent().clone())
        .map_err(|e| format!("the identity provider's TLS client: {e}"))
}

fn get_json<T: serde::de::DeserializeOwned>(agent: &ureq::Agent, url: &str) -> Result<T, String> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status() != 200 {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))
}

/// Fetches discovery and keys (blocking).
fn fetch(config: &Oidc, issuer: &str) -> Result<Provider, String> {
    let agent = agent(config)?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: Discovery = get_json(&agent, &url)?;
    // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was asked for.
    if discovery.issuer != issuer {
        return Err(format!(
            "the discovery document names issuer {:?}, not the configured {issuer:?}",
            discovery.issuer
        ));
    }
    let keys: JwkSet = get_json(&agent, &discovery.jwks_uri)?;
    Ok(Provider {
        discovery,
        keys,
        fetched: Instant::now(),
    })
}

/// The provider, from the cache unless it is older than [`KEEP`] or `refresh` is set.
async fn provider(config: &Oidc, refresh: bool) -> Result<Arc<Provider>, String> {
    let issuer = config
        .issuer
        .clone()
        .ok_or_else(|| "single sign-on is not configured".to_owned())?;
    if !refresh
        && let Some(p) = cache().lock().ok().and_then(|c| c.get(&issuer).cloned())
        && p.fetched.elapsed() < KEEP
    {
        return Ok(p);
    }
    let (config, key) = (config.clone(), issuer.clone());
    let fetched = tokio::task::spawn_blocking(move || fetch(&config, &key))
        .await
        .map_err(|e| e.to_string())??;
    let fetched = Arc::new(fetched);
    if let Ok(mut c) = cache().lock() {
        c.insert(issuer, fetched.clone());
    }
    Ok(fetched)
}

/// What the callback needs, stored under the sign-in's `state`.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
    binding: String,
    next: String,
    redirect_uri: String,
}

fn redirect_uri(config: &Oidc, headers: &HeaderMap) -> String {
    config.redirect_url.clone().unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("https://{host}/ui/login/callback")
    })
}

fn unavailable(why: &str) -> Response {
    page::error_page(
        StatusCode::BAD_GATEWAY,
        "Single sign-on unavailable",
        &format!(
            "The identity provider could not be reached or answered wrongly: {why}. \
             Break-glass: sign in with an operator token."
        ),
    )
}

/// `GET /ui/login/oidc`: sends the browser to the identity provider.
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    let config = &state.config.console.oidc;
    if config.issuer.is_none() {
        return page::error_page(
            StatusCode::NOT_FOUND,
            "No single sign-on",
            "This server has no identity provider configured (console.oidc).",
        );
    }
    let provider = match provider(config, false).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID provider unavailable");
            return unavailable(&e);
        }
    };
    let secrets = (
        sessions::secret(),
        sessions::secret(),
        sessions::secret(),
        sessions::secret(),
    );
    let (Ok(st), Ok(nonce), Ok(verifier), Ok(binding)) = secrets else {
        return unavailable("no randomness");
    };
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let pending = Pending {
        nonce: nonce.clone(),
        verifier,
        binding: binding.clone(),
        next: next_path(q.next.as_deref()),
        redirect_uri: redirect_uri(config, &headers),
    };
    let data = serde_json::to_string(&pending).unwrap_or_default();
    if let Err(e) = sessions::put_login(&state.store, &st, &data, now_ms()).await {
        tracing::error!(error = ?e, "storing a sign-in failed");
        return unavailable("the sign-in could not be stored");
    }
    let endpoint = &provider.discovery.authorization_endpoint;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let url = format!(
        "{endpoint}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={st}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        page::encode(&config.client_id),
        page::encode(&pending.redirect_uri),
        page::encode(&config.scopes.join(" ")),
    );
    let mut response = page::see_other(&url);
    response
        .headers_mut()
        .append(header::SET_COOKIE, login_cookie(&binding));
    response
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    #[allow(
        dead_code,
        reason = "RFC 9207 issuer identifier; checked through the ID token"
    )]
    iss: Option<String>,
}

/// The ID token's claims medsec reads.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    nonce: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Exchanges the code for tokens at the token endpoint (blocking).
fn exchange(config: &Oidc, provider: &Provider, code: &str, p: &Pending) -> Result<String, String> {
    let agent = agent(config)?;
    let form = [
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", p.redirect_uri.clone()),
        ("code_verifier", p.verifier.clone()),
        ("client_id", config.client_id.clone()),
    ];
    let mut request = agent.post(&provider.discovery.token_endpoint);
    if let Some(path) = &config.client_secret_file {
        let secret = std::fs::read_to_string(path)
            .map_err(|e| format!("console.oidc.client_secret_file {}: {e}", path.display()))?;
        // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
        let basic = STANDARD.encode(format!(
            "{}:{}",
            page::encode(&config.client_id),
            page::encode(secret.trim())
        ));
        request = request.header("Authorization", &format!("Basic {basic}"));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", page::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut response = request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .map_err(|e| format!("the token endpoint: {e}"))?;
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("the token endpoint's answer: {e}"))?;
    let answer: TokenAnswer =
        serde_json::from_str(&text).map_err(|e| format!("the token endpoint's answer: {e}"))?;
    if let Some(error) = answer.error {
        return Err(format!(
            "the token endpoint refused: {error} {}",
            answer.error_description.unwrap_or_default()
        ));
    }
    answer
        .id_token
        .ok_or_else(|| "the token endpoint returned no ID token".to_owned())
}

/// Checks the ID token: signature under the provider's key named by `kid`, issuer, audience,
/// expiry, nonce.
async fn verify(config: &Oidc, id_token: &str, nonce: &str) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| format!("ID token: {e}"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(format!(
            "ID token signed with {:?}, which medsec does not accept",
            header.alg
        ));
    }
    let mut provider = provider(config, false).await?;
    let pick = |p: &Provider| match &header.kid {
        Some(kid) => p.keys.find(kid).cloned(),
        None if p.keys.keys.len() == 1 => p.keys.keys.first().cloned(),
        None => None,
    };
    let jwk = match pick(&provider) {
        Some(k) => k,
        None => {
            provider = self::provider(config, true).await?;
            pick(&provider).ok_or_else(|| {
                format!(
                    "the provider publishes no key {:?} for the ID token",
                    header.kid
                )
            })?
        }
    };
    let family_ok = matches!(
        (&jwk.algorithm, header.alg),
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            Algorithm::ES256 | Algorithm::ES384
        ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    );
    if !family_ok {
        return Err(format!(
            "the ID token's algorithm {:?} does not fit the provider's key",
            header.alg
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("the provider's key: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[provider.discovery.issuer.as_str()]);
    validation.set_audience(&[config.client_id.as_str()]);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(id_token, &key, &validation)
        .map_err(|e| format!("the ID token does not verify: {e}"))?;
    let claims = data.claims;
    if !claims
        .nonce
        .as_deref()
        .is_some_and(|n| sessions::same_secret(n, nonce))
    {
        return Err("the ID token's nonce is not this sign-in's".into());
    }
    Ok(claims)
}

/// The person's groups from `claim`: a list of strings, or one string.
fn groups(claims: &Claims, claim: &str) -> Vec<String> {
    match claims.rest.get(claim) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The medsec roles `groups` give under `map`, sorted, each once.
pub(crate) fn roles_for(map: &BTreeMap<String, Vec<String>>, groups: &[String]) -> Vec<String> {
    let mut roles: Vec<String> = groups
        .iter()
        .filter_map(|g| map.get(g))
        .flatten()
        .cloned()
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// `GET /ui/login/callback`: the provider sends the browser back with a code.
pub(crate) async fn callback(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let config = &state.config.console.oidc;
    let refuse = |detail: String, message: &'static str| {
        let state = state.clone();
        let conn = conn.clone();
        async move {
            tracing::warn!(reason = %detail, "single sign-on refused");
            audit_sign_in(
                &state,
                &conn,
                "anonymous",
                "deny",
                format!("single sign-on refused: {detail}"),
            )
            .await;
            page::error_page(StatusCode::FORBIDDEN, "Not signed in", message)
        }
    };
    if let Some(error) = &q.error {
        return refuse(
            format!(
                "the provider answered {error}: {}",
                q.error_description.as_deref().unwrap_or("")
            ),
            "The identity provider did not sign you in.",
        )
        .await;
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return refuse(
            "the callback has no code or state".into(),
            "This sign-in link is incomplete. Start again.",
        )
        .await;
    };
    let pending = match sessions::take_login(&state.store, st, now_ms()).await {
        Ok(Some(data)) => serde_json::from_str::<Pending>(&data).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = ?e, "reading a sign-in failed");
            None
        }
    };
    let Some(pending) = pending else {
        return refuse(
            "unknown, used or expired state".into(),
            "This sign-in is unknown, was used already or took longer than ten minutes. Start again.",
        )
        .await;
    };
    if !cookie(&headers, sessions::LOGIN_COOKIE)
        .is_some_and(|c| sessions::same_secret(c, &pending.binding))
    {
        return refuse(
            "the sign-in was started in another browser".into(),
            "This sign-in was started in another browser (or its cookie is gone). Start again here.",
        )
        .await;
    }
    let provider = match provider(config, false).await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let (nonce, next) = (pending.nonce.clone(), pending.next.clone());
    let result = {
        let (config, code) = (config.clone(), code.clone());
        tokio::task::spawn_blocking(move || exchange(&config, &provider, &code, &pending))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
    };
    let id_token = match result {
        Ok(t) => t,
        Err(e) => return refuse(e, "The identity provider did not confirm the sign-in.").await,
    };
    let claims = match verify(config, &id_token, &nonce).await {
        Ok(c) => c,
        Err(e) => return refuse(e, "The identity provider's answer did not verify.").await,
    };
    let groups = groups(&claims, &config.groups_claim);
    let roles = roles_for(&config.roles, &groups);
    let principal = format!("{}#{}", claims.iss, claims.sub);
    let display = claims
        .preferred_username
        .clone()
        .or_else(|| claims.email.clone())
        .or_else(|| claims.name.clone())
        .unwrap_or_else(|| claims.sub.clone());
    if roles.is_empty() {
        audit_sign_in(
            &state,
            &conn,
            &format!("Operator::{principal:?}"),
            "deny",
            format!(
                "single sign-on: groups [{}] give no medsec role (console.oidc.roles)",
                groups.join(", ")
            ),
        )
        .await;
        return page::error_page(
            StatusCode::FORBIDDEN,
            "No medsec role",
            "You signed in, but none of your groups gives a role in medsec. Ask an administrator.",
        );
    }
    let person = Person {
        principal,
        display_name: display,
        roles,
    };
    begin(
        &state,
        &conn,
        &person,
        None,
        &next,
        &format!("single sign-on (groups {})", groups.join(", ")),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_give_the_union_of_their_roles_and_unknown_groups_give_none() {
        let map: BTreeMap<String, Vec<String>> = [
            ("sec".to_owned(), vec!["security".to_owned()]),
            (
                "ops".to_owned(),
                vec!["viewer".to_owned(), "security".to_owned()],
            ),
        ]
        .into();
        assert_eq!(
            roles_for(&map, &["ops".into(), "sec".into()]),
            ["security", "viewer"]
        );
        assert!(roles_for(&map, &["Sec".into(), "other".into()]).is_empty());
    }
}
