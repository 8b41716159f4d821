//! The operator API client of the remote commands: HTTPS to the context's server, whose
//! certificate must chain to the CA pinned at login (never the system's roots), with the
//! context's bearer token. An error answer becomes an error naming the request, the status and
//! the server's reason; a refused token names the fix.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use super::context::Context;

/// A connection to one server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
    context: String,
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    None,
    /// JSON.
    Json(&'a Value),
    /// Bytes of a media type.
    Bytes(&'a [u8], &'a str),
}

impl Client {
    /// A client for `context`.
    pub fn new(context: &Context) -> Result<Self> {
        Self::connect(
            &context.server,
            &context.ca_pem,
            &context.token,
            &context.name,
        )
    }

    /// A client for a server not yet saved as a context (`medsec login`).
    pub fn connect(server: &str, ca_pem: &str, token: &str, context: &str) -> Result<Self> {
        if !server.starts_with("https://") {
            bail!("the server URL must start with https:// (got {server:?})");
        }
        let agent =
            medsec_tuf_client::HttpTransport::new(Some(ca_pem.as_bytes()), Duration::from_secs(60))
                .context("the pinned CA")?
                .agent()
                .clone();
        Ok(Self {
            agent,
            base: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            context: context.to_owned(),
        })
    }

    /// Sends one request; returns the answer's body text on 2xx.
    pub fn send(&self, method: &str, path: &str, body: Body<'_>) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", &auth);
        let result = match body {
            Body::None => self
                .agent
                .run(request.body(()).map_err(|e| anyhow!("{e}"))?),
            Body::Json(v) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(v)?)
                    .map_err(|e| anyhow!("{e}"))?,
            ),
            Body::Bytes(b, media) => self.agent.run(
                request
                    .header("Content-Type", media)
                    .body(b.to_vec())
                    .map_err(|e| anyhow!("{e}"))?,
            ),
        };
        let mut answer = result.with_context(|| {
            format!(
                "{method} {url}: the server of context {:?} did not answer (is it running, \
                 and does its certificate chain to the CA pinned at login?)",
                self.context
            )
        })?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let reason = serde_json::from_str::<medsec_api::ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or_else(|_| text.trim().chars().take(300).collect());
        match status {
            401 => bail!(
                "{method} {path}: the server refused the token of context {:?} ({reason}); \
                 log in again with `medsec login`",
                self.context
            ),
            403 => bail!(
                "{method} {path}: not permitted by policy for this operator (HTTP 403); the \
                 refusal is in the audit log"
            ),
            404 => bail!("{method} {path}: not found (HTTP 404): {reason}"),
            _ => bail!("{method} {path}: HTTP {status}: {reason}"),
        }
    }

    /// Sends one request and parses the JSON answer.
    pub fn json(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value> {
        let text = self.send(method, path, body)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: the answer is not JSON"))
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.json("GET", path, Body::None)
    }
}

/// What is percent-encoded in a path segment or query value: all but RFC 3986's unreserved
/// characters.
const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query string from pairs whose value is present, percent-encoded.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", percent_encoding::utf8_percent_encode(v, ENCODED)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ENCODED).to_string()
}
