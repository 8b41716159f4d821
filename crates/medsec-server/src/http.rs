//! The HTTP side: one router per port, each built by one function, sharing [`AppState`].
//!
//! Every route resolves its caller (a device from the connection's verified certificate, an
//! operator from a bearer token), asks Cedar, writes the decision to the audit log, and only then
//! acts. Refusals — no credential, an unknown or expired token, a denied request, a body over the
//! limit, a burst over the rate limit — are audited too.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use medsec_audit::Event;
use medsec_pki::{DeviceId, FleetCa};
use medsec_store::{AnyStore, DeviceKey, DeviceQuery, Store as _, VersionReport};
use serde::Deserialize;

use crate::audit_log::{AuditLog, event};
use crate::authz::{Policies, RequestContext, Subject, Target};
use crate::director::Director;
use crate::inventory::{self, InventoryPatch};
use crate::repeats::Verdict;
use crate::tls::Reloadable;
use crate::{Config, tokens, version_report};
use crate::{campaigns, updates};

/// Who is at the other end of a connection, from its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (EST with a token, or the operator port).
    None,
    /// A fleet device certificate.
    Device(DeviceId),
    /// A manufacturer certificate (IDevID) vouching for this device id: enrolment only.
    Manufacturer(DeviceId),
    /// A verified certificate naming no device.
    Unidentified,
}

/// Per-connection facts attached to each request.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Peer address.
    pub addr: SocketAddr,
    /// Certificate identity.
    pub peer: Peer,
    /// The verified fleet certificate (DER) of a device peer.
    pub certificate: Option<Arc<[u8]>>,
    /// Whether this is the operator port.
    pub operator_port: bool,
    /// The MQTT broker the message came through (then `addr` is the broker's address, and the
    /// broker verified the device certificate).
    pub broker: Option<Arc<str>>,
}

impl Conn {
    /// Where a request came from, as stored beside telemetry: the peer's address, or
    /// `mqtt://<broker>/<client id>` for a message relayed by a broker.
    pub fn source_label(&self) -> String {
        match &self.broker {
            Some(broker) => format!("mqtt://{broker}"),
            None => self.addr.to_string(),
        }
    }
}

/// Shared by both ports.
pub struct AppState {
    /// Storage.
    pub store: AnyStore,
    /// Cedar policies.
    pub policies: Policies,
    audit_log: AuditLog,
    pub(crate) ca: tokio::sync::Mutex<FleetCa>,
    tls: Arc<Reloadable>,
    /// The configuration in effect.
    pub config: Config,
    limiter: DefaultKeyedRateLimiter<String>,
    /// The EST `cacerts` answer.
    cacerts: tokio::sync::OnceCell<Bytes>,
    /// The director (per-device update metadata) and the image repository.
    pub director: Director,
    /// Counts of repeated allowed routine decisions not yet logged.
    repeats: crate::repeats::Repeats,
    /// The Defender's rules, applied to every telemetry batch.
    pub defender: medsec_defender::rules::Policy,
    /// Learned baselines: the signing key and each model's loaded version.
    pub baselines: crate::baselines::Baselines,
    /// Sigma event rules (`defender_sigma_dir`).
    pub sigma: medsec_defender::sigma::SigmaRules,
    /// Release SBOMs, advisories and VEX as this replica parsed them.
    pub risk: crate::risk::RiskCache,
}

pub(crate) use medsec_util::now_ms;

impl AppState {
    /// Assembles the state.
    #[expect(
        clippy::too_many_arguments,
        reason = "each part is required and of its own type; a builder would allow a half-made state"
    )]
    pub fn new(
        store: AnyStore,
        policies: Policies,
        audit_log: AuditLog,
        ca: FleetCa,
        tls: Arc<Reloadable>,
        config: Config,
        director: Director,
        baseline_key: medsec_crypto::SigningKey,
    ) -> Self {
        let per_second =
            NonZeroU32::new(config.limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.request_burst).unwrap_or(NonZeroU32::MIN);
        let reload = std::time::Duration::from_secs(config.defender_baseline_reload_secs);
        let repeats = crate::repeats::Repeats::new(
            config.limits.audit_repeat_window_secs,
            config.limits.audit_repeat_streams,
        );
        Self {
            store,
            policies,
            audit_log,
            ca: tokio::sync::Mutex::new(ca),
            tls,
            config,
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            cacerts: tokio::sync::OnceCell::new(),
            director,
            repeats,
            defender: medsec_defender::rules::Policy::default(),
            baselines: crate::baselines::Baselines::new(baseline_key, reload),
            sigma: medsec_defender::sigma::SigmaRules::default(),
            risk: crate::risk::RiskCache::default(),
        }
    }

    /// Applies the Defender's rule policy (default: the rules that need no profile).
    #[must_use]
    pub fn with_defender(mut self, policy: medsec_defender::rules::Policy) -> Self {
        self.defender = policy;
        self
    }

    /// Applies the Sigma event rules.
    #[must_use]
    pub fn with_sigma(mut self, rules: medsec_defender::sigma::SigmaRules) -> Self {
        self.sigma = rules;
        self
    }

    /// Appends to the audit log and waits until the entry is durable.
    pub async fn audit(&self, event: Event) -> Result<u64, ApiError> {
        self.audit_log
            .record(event)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Takes one request from `key`'s allowance.
    pub fn rate_ok(&self, key: &str) -> bool {
        self.limiter.check_key(&key.to_owned()).is_ok()
    }

    /// Logs the summaries of repeated routine decisions whose window ended by `now_ms`.
    pub async fn flush_repeats(&self, now_ms: i64) {
        for e in self.repeats.sweep(now_ms) {
            if let Err(err) = self.audit(e).await {
                tracing::error!(error = ?err, "logging a summary of repeated decisions failed");
            }
        }
    }

    /// Logs the summaries of repeated routine decisions whose window ended, then fails campaign
    /// devices whose report is overdue, and audits each change (errors are logged; the next
    /// round tries again).
    pub async fn expire_reports(&self) {
        self.flush_repeats(now_ms()).await;
        let changed = match campaigns::expire_reports(&self.store, now_ms()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "checking campaign report timeouts failed");
                return;
            }
        };
        for (id, late, status) in changed {
            let mut e = event(
                "campaign",
                "system",
                "campaign.timeout",
                &format!("Campaign::{id:?}"),
                "warn",
            );
            e.detail =
                format!("{late} device(s) did not report in time: failed; campaign {status}");
            if let Err(err) = self.audit(e).await {
                tracing::error!(error = ?err, "auditing a campaign timeout failed");
            }
        }
    }

    /// Periodic chores: forgets the rate-limit state of idle principals, and re-signs the CRL
    /// (and reloads TLS) once it is half its lifetime old, so relying parties never see a stale
    /// one. Returns whether the CRL was re-signed.
    pub async fn housekeeping(&self) -> Result<bool, ApiError> {
        self.limiter.retain_recent();
        let days = self.config.crl_days;
        let path = self.ca.lock().await.crl_path();
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let half_life = Duration::from_secs(u64::try_from(days).unwrap_or(7) * 43_200);
        if age.is_some_and(|a| a < half_life) {
            return Ok(false);
        }
        {
            let mut ca = self.ca.lock().await;
            ca.reload_state()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            ca.crl(days)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        self.tls
            .reload()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut e = event("revocation", "system", "crl.sign", "Fleet", "info");
        e.detail = format!("CRL re-signed, valid {days} days");
        self.audit(e).await?;
        Ok(true)
    }
}

/// An error answer. Internal details go to the log, never to the client.
#[derive(Debug)]
pub enum ApiError {
    /// 400, with what was wrong.
    BadRequest(String),
    /// 401, with what credential is missing.
    Unauthenticated(String),
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409, with what conflicts.
    Conflict(String),
    /// 413.
    TooLarge(usize),
    /// 429.
    RateLimited,
    /// 503: the request took too long.
    Timeout,
    /// 500; the text is logged only.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "not permitted by policy".to_owned()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the limit of {limit} bytes"),
            ),
            ApiError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded: slow down".to_owned(),
            ),
            ApiError::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "request timed out".to_owned(),
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<medsec_store::Error> for ApiError {
    fn from(e: medsec_store::Error) -> Self {
        match e {
            medsec_store::Error::NotFound { .. } => ApiError::NotFound,
            e @ medsec_store::Error::Conflict { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The device port's routes: EST and the device API.
pub fn device_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(est_cacerts))
        .route("/.well-known/est/simpleenroll", post(est_simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est_simplereenroll))
        .route("/api/v1/devices/{id}", get(get_device))
        .route("/api/v1/devices/{id}/status", put(put_status))
        .route("/api/v1/devices/{id}/report-nonce", post(report_nonce))
        .route("/api/v1/devices/{id}/version", put(put_version))
        .route(
            "/api/v1/devices/{id}/telemetry",
            post(crate::telemetry::post_telemetry),
        )
        .route("/director/{id}/{file}", get(updates::director_file))
        .route("/repo/{*path}", get(updates::image_file))
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The operator port's routes.
pub fn operator_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{id}", get(get_device).patch(patch_device))
        .route("/api/v1/devices/{id}/versions", get(list_versions))
        .route(
            "/api/v1/devices/{id}/telemetry",
            get(crate::telemetry::list_telemetry),
        )
        .route(
            "/api/v1/devices/{id}/alerts",
            get(crate::telemetry::device_alerts),
        )
        .route(
            "/api/v1/devices/{id}/identity",
            get(crate::telemetry::identity),
        )
        .route(
            "/api/v1/devices/{id}/identity/rebind",
            post(crate::telemetry::rebind),
        )
        .route("/api/v1/alerts", get(crate::telemetry::fleet_alerts))
        .route(
            "/api/v1/defender/audit",
            get(crate::telemetry::audit_checks),
        )
        .route(
            "/api/v1/defender/baselines/{model}",
            get(crate::baselines::show).post(crate::baselines::train),
        )
        .route(
            "/api/v1/devices/{id}/timeline",
            get(crate::telemetry::device_timeline),
        )
        .route("/api/v1/incidents", get(crate::incidents::list))
        .route(
            "/api/v1/incidents/{id}",
            get(crate::incidents::get).post(crate::incidents::command),
        )
        .route("/api/v1/devices/{id}/revoke", post(revoke_device))
        .route("/api/v1/devices/{id}/reinstate", post(reinstate_device))
        .route("/api/v1/enrolment-tokens", post(create_enrolment_token))
        .route(
            "/api/v1/campaigns",
            get(list_campaigns).post(create_campaign),
        )
        .route("/api/v1/campaigns/{id}", get(get_campaign))
        .route("/api/v1/campaigns/{id}/{control}", post(control_campaign))
        .route("/api/v1/audit/head", get(audit_head))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/audit/entries", get(audit_entries))
        .route("/api/v1/audit/proof/inclusion", get(audit_inclusion))
        .route("/api/v1/audit/proof/consistency", get(audit_consistency))
        .route(
            "/api/v1/devices/{id}/findings",
            get(crate::risk::device_findings),
        )
        .route(
            "/api/v1/risk/advisories/{id}/devices",
            get(crate::risk::advisory_devices),
        )
        .route("/api/v1/inventory/models", get(crate::assets::list_models))
        .route(
            "/api/v1/inventory/models/{model}",
            put(crate::assets::put_model),
        )
        .route(
            "/api/v1/inventory/vendors",
            get(crate::assets::list_vendors),
        )
        .route(
            "/api/v1/inventory/vendors/{vendor}",
            put(crate::assets::put_vendor),
        )
        .route("/api/v1/inventory/support", get(crate::assets::support))
        .route("/api/v1/risk/devices", get(crate::risk::ranked_devices))
        .merge(
            // Documents (SBOMs, advisories, VEX) are larger than commands: their own limit.
            Router::new()
                .route("/api/v1/risk/sboms/{*target}", put(crate::risk::put_sbom))
                .route("/api/v1/risk/advisories", post(crate::risk::post_advisory))
                .route("/api/v1/risk/vex", post(crate::risk::post_vex))
                .layer(DefaultBodyLimit::max(
                    state.config.limits.max_document_bytes,
                )),
        )
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The body limit of a request: documents on the risk upload routes, commands elsewhere.
fn body_limit(state: &AppState, method: &axum::http::Method, path: &str) -> usize {
    if method != axum::http::Method::GET && path.starts_with("/api/v1/risk/") {
        state.config.limits.max_document_bytes
    } else {
        state.config.limits.max_body_bytes
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
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
async fn guard(
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

/// An authenticated caller.
pub(crate) struct Caller {
    pub(crate) subject: Subject,
    pub(crate) credential: &'static str,
    /// A device caller's own record, as read to build its principal.
    pub(crate) record: Option<medsec_store::Device>,
}

fn deny_event(conn: &Conn, principal: &str, action: &str, target: &Target, detail: &str) -> Event {
    let mut e = event("authn", principal, action, &target.label(), "deny");
    e.source = conn.addr.to_string();
    e.detail = detail.to_owned();
    e
}

/// A device's Cedar principal, from its record.
fn device_subject(d: &medsec_store::Device) -> Subject {
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

async fn get_device(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.read", &target).await?;
    authorize(&state, &conn, &who, "device.read", &target).await?;
    // A device reading itself: the record read to authenticate it is the answer.
    let device = match who.record {
        Some(own) if own.id == id.as_str() => own,
        _ => state.store.device(id.as_str()).await?,
    };
    Ok(Json(device).into_response())
}

async fn put_status(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.write", &target).await?;
    let status: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("status must be a JSON object: {e}")))?;
    authorize(&state, &conn, &who, "device.write", &target).await?;
    let text = serde_json::Value::Object(status).to_string();
    state
        .store
        .set_device_status(id.as_str(), &text, now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Issues a single-use nonce for the device's next version report.
async fn report_nonce(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.report", &target).await?;
    authorize(&state, &conn, &who, "device.report", &target).await?;
    let nonce = tokens::nonce().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = now_ms();
    let lifetime_ms = i64::try_from(state.config.limits.report_nonce_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let expires = now.saturating_add(lifetime_ms);
    state
        .store
        .add_report_nonce(
            id.as_str(),
            &nonce,
            now,
            expires,
            state.config.limits.report_nonces_per_device,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "nonce": nonce, "expires_at_ms": expires })),
    )
        .into_response())
}

/// Accepts a signed version report (see `version_report`), signed with the key of the
/// certificate on this very connection and carrying a nonce issued to this device.
async fn put_version(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.report", &target).await?;
    authorize(&state, &conn, &who, "device.report", &target).await?;
    let refuse = |reason: String, status: fn(String) -> ApiError| {
        let mut e = event(
            "version-report",
            &who.subject.label(),
            "device.report",
            &target.label(),
            "deny",
        );
        e.source = conn.addr.to_string();
        e.detail.clone_from(&reason);
        (e, status(reason))
    };
    let certificate = conn
        .certificate
        .clone()
        .ok_or_else(|| ApiError::Internal("a device peer without its certificate".into()))?;
    let (payload, signature, report) = match version_report::open(&body, &certificate, id.as_str())
    {
        Ok(opened) => opened,
        Err(refused) => {
            let (e, err) = refuse(refused.0, ApiError::BadRequest);
            state.audit(e).await?;
            return Err(err);
        }
    };
    let previous = match &who.record {
        Some(own) => own.release_counter,
        None => state.store.device(id.as_str()).await?.release_counter,
    };
    let stored = VersionReport {
        nonce: report.nonce.clone(),
        device_id: id.as_str().to_owned(),
        received_at_ms: now_ms(),
        version: report.version.clone(),
        release_counter: report.release_counter,
        payload,
        signature,
        certificate: certificate.to_vec(),
    };
    match state.store.record_version_report(&stored).await {
        Ok(()) => {}
        Err(medsec_store::Error::NonceRefused { nonce }) => {
            let (e, err) = refuse(
                format!(
                    "nonce {nonce:?} was not issued to this device, was used already or expired: \
                     ask for a new one (a replayed report is refused)"
                ),
                ApiError::Conflict,
            );
            state.audit(e).await?;
            return Err(err);
        }
        Err(other) => return Err(other.into()),
    }
    let mut e = event(
        "version-report",
        &who.subject.label(),
        "device.report",
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "runs {} (release counter {})",
        report.version, report.release_counter
    );
    if report.release_counter < previous {
        // What runs is what runs: the report is kept, and the fall is flagged for review.
        e.detail = format!(
            "{}; the release counter went DOWN from {previous}: rolled back?",
            e.detail
        );
        tracing::warn!(
            device = id.as_str(),
            previous,
            now = report.release_counter,
            "release counter went down"
        );
    }
    state.audit(e).await?;
    if let Some(install) = &report.install {
        campaign_report(&state, &conn, &who, id.as_str(), install, &report).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Applies the install outcome a version report carries to its campaign, and audits it. A
/// report the campaign does not expect (a repeat after a crash, a campaign the device is not
/// in) changes nothing and is audited as ignored; the version report itself stands.
async fn campaign_report(
    state: &AppState,
    conn: &Conn,
    who: &Caller,
    device: &str,
    install: &version_report::Install,
    report: &version_report::Payload,
) -> Result<(), ApiError> {
    let now = now_ms();
    let before = state.store.campaign(&install.campaign).await;
    let mut e = event(
        "campaign",
        &who.subject.label(),
        "campaign.report",
        &format!("Campaign::{:?}", install.campaign),
        "info",
    );
    e.source = conn.addr.to_string();
    let row = match before {
        Ok(row) => row,
        Err(medsec_store::Error::NotFound { .. }) => {
            e.decision = "ignored".into();
            e.detail = format!("{device}: no campaign {:?}", install.campaign);
            state.audit(e).await?;
            return Ok(());
        }
        Err(other) => return Err(other.into()),
    };
    let release = campaigns::load(&row)
        .map_err(bad_request)?
        .spec()
        .release
        .clone();
    if release.target != install.target {
        e.decision = "ignored".into();
        e.detail = format!(
            "{device}: reported target {:?}, the campaign installs {:?}",
            install.target, release.target
        );
        state.audit(e).await?;
        return Ok(());
    }
    let outcome = install.outcome(report, &release);
    let status_before = row.status.clone();
    let applied = campaigns::change(&state.store, &install.campaign, now, |c| {
        c.report(device, outcome.clone(), now)
    })
    .await;
    match applied {
        Ok(c) => {
            e.detail = format!(
                "{device}: {}",
                serde_json::to_string(&outcome).unwrap_or_default()
            );
            state.audit(e).await?;
            if c.status().name() != status_before {
                let mut s = event(
                    "campaign",
                    "system",
                    "campaign.status",
                    &format!("Campaign::{:?}", install.campaign),
                    "warn",
                );
                s.detail = serde_json::to_string(c.status()).unwrap_or_default();
                state.audit(s).await?;
            }
        }
        Err(err) => {
            e.decision = "ignored".into();
            e.detail = format!("{device}: {err}");
            state.audit(e).await?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignRequest {
    spec: medsec_campaign::Spec,
    selection: campaigns::Selection,
}

async fn create_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.create", &Target::Fleet).await?;
    let req: CampaignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("campaign request: {e}")))?;
    authorize(&state, &conn, &who, "campaign.create", &Target::Fleet).await?;
    let by = who.subject.label();
    let now = now_ms();
    let c = campaigns::create(
        &state.store,
        state.director.image(),
        req.spec,
        &req.selection,
        state.config.limits.max_campaign_devices,
        &by,
        now,
    )
    .await
    .map_err(bad_request)?;
    let row = state.store.campaign(&c.spec().name).await?;
    let mut e = event(
        "campaign",
        &by,
        "campaign.create",
        &format!("Campaign::{:?}", row.id),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "release {} (counter {}), {} device(s) in {} wave(s)",
        c.spec().release.version,
        c.spec().release.release_counter,
        c.devices().count(),
        c.waves().len()
    );
    state.audit(e).await?;
    Ok((StatusCode::CREATED, Json(campaigns::view(&row, &c, false))).into_response())
}

async fn list_campaigns(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.read", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "campaign.read", &Target::Fleet).await?;
    let mut out = Vec::new();
    for row in state.store.campaigns().await? {
        let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
        out.push(campaigns::view(&row, &c, false));
    }
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignQuery {
    #[serde(default)]
    devices: bool,
}

async fn get_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CampaignQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "campaign.read", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "campaign.read", &Target::Fleet).await?;
    let row = state.store.campaign(&id).await?;
    let c = campaigns::load(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(campaigns::view(&row, &c, q.devices)).into_response())
}

/// `start`, `pause`, `resume` or `abort` (see `campaigns::Control` for the actions they need).
async fn control_campaign(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path((id, control)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let control = campaigns::Control::from_name(&control).ok_or(ApiError::NotFound)?;
    let action = control.action();
    let who = caller(&state, &conn, &headers, action, &Target::Fleet).await?;
    authorize(&state, &conn, &who, action, &Target::Fleet).await?;
    let c = campaigns::control(&state.store, &id, control, now_ms())
        .await
        .map_err(|e| match e {
            crate::Error::Config { reason } => ApiError::Conflict(reason),
            other => bad_request(other),
        })?;
    let row = state.store.campaign(&id).await?;
    let mut e = event(
        "campaign",
        &who.subject.label(),
        &format!("campaign.{}", control.name()),
        &format!("Campaign::{id:?}"),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!("now {}", c.status().name());
    state.audit(e).await?;
    Ok(Json(campaigns::view(&row, &c, false)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    limit: Option<u32>,
}

/// A device's signed version reports, newest first, each with what is needed to check it again:
/// `openssl` can verify `signature` over `"medsec version report v1\n" || payload` with the
/// certificate's key.
async fn list_versions(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<VersionsQuery>,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.read", &target).await?;
    authorize(&state, &conn, &who, "device.read", &target).await?;
    state.store.device(id.as_str()).await?;
    let reports = state
        .store
        .version_reports(id.as_str(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let shown: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "received_at_ms": r.received_at_ms,
                "version": r.version,
                "release_counter": r.release_counter,
                "nonce": r.nonce,
                "payload": STANDARD.encode(&r.payload),
                "signature": STANDARD.encode(&r.signature),
                "certificate": STANDARD.encode(&r.certificate),
            })
        })
        .collect();
    Ok(Json(shown).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
    model: Option<String>,
    site: Option<String>,
    group: Option<String>,
}

async fn list_devices(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "device.list", &Target::Fleet).await?;
    authorize(&state, &conn, &who, "device.list", &Target::Fleet).await?;
    let query = DeviceQuery {
        after: q.after,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        model: q.model,
        site: q.site,
        group: q.group,
    };
    let devices = state.store.devices(&query).await?;
    Ok(Json(devices).into_response())
}

/// Changes a device's inventory (model, hardware id, site, groups); fields left out keep their
/// value. Answers with the device as stored.
async fn patch_device(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.update", &target).await?;
    let patch: InventoryPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("inventory change: {e}")))?;
    patch.check().map_err(bad_request)?;
    authorize(&state, &conn, &who, "device.update", &target).await?;
    let device = inventory::update(&state.store, id.as_str(), &patch)
        .await
        .map_err(bad_request)?;
    let mut e = event(
        "inventory",
        &who.subject.label(),
        "device.update",
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = patch.describe();
    state.audit(e).await?;
    Ok(Json(device).into_response())
}

/// Refused input is a 400 naming the problem; a missing device a 404; anything else a 500.
fn bad_request(e: crate::Error) -> ApiError {
    match e {
        crate::Error::Config { reason } => ApiError::BadRequest(reason),
        crate::Error::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    device: String,
    #[serde(default = "default_ttl")]
    ttl_secs: i64,
    // Inventory to set with the registration. Listed here rather than flattened from
    // InventoryPatch: serde cannot combine `flatten` with `deny_unknown_fields`.
    model: Option<String>,
    hardware_id: Option<String>,
    site: Option<String>,
    groups: Option<Vec<String>>,
}

impl TokenRequest {
    fn inventory(&self) -> InventoryPatch {
        InventoryPatch {
            model: self.model.clone(),
            hardware_id: self.hardware_id.clone(),
            site: self.site.clone(),
            groups: self.groups.clone(),
        }
    }
}

fn default_ttl() -> i64 {
    24 * 3600
}

async fn create_enrolment_token(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "token.create", &Target::Fleet).await?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("enrolment token request: {e}")))?;
    let device = device_id(&req.device)?;
    let inventory = req.inventory();
    inventory.check().map_err(bad_request)?;
    authorize(&state, &conn, &who, "token.create", &Target::Fleet).await?;
    let token = tokens::create_enrolment_token(
        &state.store,
        &device,
        &inventory,
        &who.subject.label(),
        now_ms(),
        req.ttl_secs,
    )
    .await
    .map_err(bad_request)?;
    let mut e = event(
        "token",
        &who.subject.label(),
        "token.create",
        &format!("Device::{:?}", device.as_str()),
        "info",
    );
    e.detail = format!("enrolment token valid {}s", req.ttl_secs);
    if !inventory.is_empty() {
        e.detail = format!("{}; {}", e.detail, inventory.describe());
    }
    state.audit(e).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "device": device.as_str(), "token": token, "ttl_secs": req.ttl_secs })),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// Revokes every live certificate of `id` for `reason_name` (an RFC 5280 reason), re-signs the
/// CRL, reloads the device port's TLS and marks the device revoked. Returns the serials.
pub(crate) async fn revoke_certificates(
    state: &AppState,
    id: &DeviceId,
    reason_name: &str,
) -> Result<Vec<String>, ApiError> {
    let reason = medsec_pki::reason_from_name(reason_name).ok_or_else(|| {
        ApiError::BadRequest(format!("unknown revocation reason {reason_name:?}"))
    })?;
    state.store.device(id.as_str()).await?;
    let serials = {
        let mut ca = state.ca.lock().await;
        ca.reload_state()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let live: Vec<String> = ca
            .issued()
            .iter()
            .filter(|c| c.device_id == *id && c.revoked.is_none())
            .map(|c| c.serial.clone())
            .collect();
        for serial in &live {
            ca.revoke(serial, reason)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        ca.crl(state.config.crl_days)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        live
    };
    state
        .tls
        .reload()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.store.set_device_state(id.as_str(), "revoked").await?;
    Ok(serials)
}

async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.revoke", &target).await?;
    let req: RevokeRequest = if body.is_empty() {
        RevokeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("revoke request: {e}")))?
    };
    let reason_name = req.reason.unwrap_or_else(|| "unspecified".into());
    if medsec_pki::reason_from_name(&reason_name).is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown revocation reason {reason_name:?}"
        )));
    }
    authorize(&state, &conn, &who, "device.revoke", &target).await?;
    let serials = revoke_certificates(&state, &id, &reason_name).await?;
    let mut e = event(
        "revocation",
        &who.subject.label(),
        "device.revoke",
        &target.label(),
        "info",
    );
    e.detail = format!(
        "revoked {} certificate(s) ({reason_name}): {}",
        serials.len(),
        serials.join(", ")
    );
    state.audit(e).await?;
    Ok(Json(serde_json::json!({ "device": id.as_str(), "revoked": serials })).into_response())
}

/// Returns a revoked device to `registered`, so that it can enrol again with a new enrolment
/// token (or its manufacturer certificate) and a new key; its revoked certificates stay revoked.
async fn reinstate_device(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = device_id(&id)?;
    let target = Target::Device(id.as_str().to_owned());
    let who = caller(&state, &conn, &headers, "device.reinstate", &target).await?;
    authorize(&state, &conn, &who, "device.reinstate", &target).await?;
    let device = state.store.device(id.as_str()).await?;
    if device.state != "revoked" {
        return Err(ApiError::Conflict(format!(
            "device {} is {}, not revoked",
            id.as_str(),
            device.state
        )));
    }
    state
        .store
        .set_device_state(id.as_str(), "registered")
        .await?;
    let mut e = event(
        "revocation",
        &who.subject.label(),
        "device.reinstate",
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = "reinstated: may enrol again with a new token and a new key".into();
    state.audit(e).await?;
    Ok(Json(serde_json::json!({ "device": id.as_str(), "state": "registered" })).into_response())
}

async fn audit_head(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let head = crate::audit_log::latest_head(&state.store)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(head).into_response())
}

async fn audit_verify(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let key =
        crate::audit_log::read_public_key(&crate::DataDir::new(&state.config.data_dir).audit_pub())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = crate::audit_log::verify(&state.store, &key)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    #[serde(default)]
    from: i64,
    limit: Option<u32>,
}

/// A page of audit entries from sequence number `from`, oldest first, as stored (each entry is
/// also returned parsed, or with `"unreadable": true` if a row no longer parses).
async fn audit_entries(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let rows = state
        .store
        .audit_entries(q.from.max(0), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.entry)
                .unwrap_or_else(|_| serde_json::json!({ "seq": r.seq, "unreadable": true }))
        })
        .collect();
    Ok(Json(entries).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    tree_size: Option<u64>,
}

/// Inclusion proof of one entry in a signed head's tree (default: the latest head).
async fn audit_inclusion(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<InclusionQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let proof = crate::audit_log::prove_inclusion(&state.store, q.seq, q.tree_size)
        .await
        .map_err(proof_error)?;
    Ok(Json(proof).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// Consistency proof between two signed heads (default `to`: the latest).
async fn audit_consistency(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &conn, &headers, "audit.read", &Target::AuditLog).await?;
    authorize(&state, &conn, &who, "audit.read", &Target::AuditLog).await?;
    let proof = crate::audit_log::prove_consistency(&state.store, q.from, q.to)
        .await
        .map_err(proof_error)?;
    Ok(Json(proof).into_response())
}

/// A proof request that names no signed head or entry is the caller's mistake.
fn proof_error(e: crate::Error) -> ApiError {
    match e {
        crate::Error::Audit { reason } => ApiError::BadRequest(reason),
        other => ApiError::Internal(other.to_string()),
    }
}

// ---- EST (RFC 7030) -------------------------------------------------------------------------

/// The base64 body of an EST answer, in lines of 64 characters ended by CRLF: RFC 7030 uses
/// the MIME `base64` transfer encoding, whose lines may not pass 76 characters (RFC 2045 6.8),
/// and strict decoders such as `openssl base64 -d` refuse one long line.
fn mime_base64(der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out
}

fn pkcs7_response(body: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/pkcs7-mime; smime-type=certs-only",
            ),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        body,
    )
        .into_response()
}

fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(format!("certificate PEM: {e}")))
}

async fn est_cacerts(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    // The chain changes only when the CA is re-created, which needs a restart: build the answer
    // once.
    let body = state
        .cacerts
        .get_or_try_init(|| async {
            let path = state.ca.lock().await.chain_path();
            let pem = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
            Ok::<_, ApiError>(Bytes::from(mime_base64(&medsec_crypto::pkcs7_certs_only(
                &pem_certs(&pem)?,
            ))))
        })
        .await?;
    Ok(pkcs7_response(body.clone()))
}

/// The request body: base64 of a DER PKCS#10 (whitespace allowed), returned as PEM.
fn est_csr(body: &[u8]) -> Result<String, ApiError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(compact).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be a base64 DER PKCS#10 request: {e}"
        ))
    })?;
    pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, &der)
        .map_err(|e| ApiError::BadRequest(format!("request: {e}")))
}

/// Refuses a request whose subject or alternative names claim any identity but `device`.
fn check_claims(info: &medsec_pki::RequestInfo, device: &DeviceId) -> Result<(), String> {
    if let Some(cn) = info.common_names.iter().find(|cn| *cn != device.as_str()) {
        return Err(format!(
            "the request's subject claims {cn:?}, but the credential is for {:?}",
            device.as_str()
        ));
    }
    let own = format!("URI({})", device.uri());
    if let Some(name) = info.alt_names.iter().find(|n| **n != own) {
        return Err(format!(
            "the request asks for the name {name}, which the CA does not give to {:?}",
            device.as_str()
        ));
    }
    Ok(())
}

async fn enrol(
    state: &AppState,
    conn: &Conn,
    caller: &Caller,
    action: &str,
    device: &DeviceId,
    csr_pem: &str,
    info: &medsec_pki::RequestInfo,
) -> Result<Response, ApiError> {
    let target = Target::Device(device.as_str().to_owned());
    authorize(state, conn, caller, action, &target).await?;
    let refuse = |detail: String| {
        let mut e = event(
            "enrolment",
            &caller.subject.label(),
            action,
            &target.label(),
            "deny",
        );
        e.source = conn.addr.to_string();
        e.detail = detail;
        e
    };
    if let Err(detail) = check_claims(info, device) {
        state.audit(refuse(detail.clone())).await?;
        return Err(ApiError::BadRequest(detail));
    }
    let days = state.config.device_cert_days;
    let not_after_ms = now_ms().saturating_add(days.saturating_mul(86_400_000));
    // The key is recorded after issuing, under a unique constraint: of two requests with one
    // key, only one certificate is handed out (the other is revoked unseen).
    let mut key = DeviceKey {
        spki_sha256: info.spki_sha256.to_vec(),
        device_id: device.as_str().to_owned(),
        serial: "(pending)".into(),
        not_after_ms,
        created_at_ms: now_ms(),
    };
    let (issued, pem) = {
        let mut ca = state.ca.lock().await;
        ca.reload_state()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        match ca.issue(csr_pem, device, days) {
            Ok(done) => done,
            Err(e) => {
                state.audit(refuse(e.to_string())).await?;
                return Err(ApiError::BadRequest(e.to_string()));
            }
        }
    };
    key.serial = issued.serial.clone();
    if let Err(e) = state.store.add_device_key(&key).await {
        let detail = match e {
            medsec_store::Error::Conflict { .. } => {
                "this key was certified before: enrolment needs a new key pair".to_owned()
            }
            other => return Err(other.into()),
        };
        // The certificate was signed but is never handed out; revoke it so it cannot surface.
        let mut ca = state.ca.lock().await;
        if let Err(e) = ca.revoke(&issued.serial, medsec_pki::RevocationReason::Superseded) {
            tracing::error!(serial = %issued.serial, error = %e, "could not revoke a certificate that was never handed out");
        }
        drop(ca);
        state.audit(refuse(detail.clone())).await?;
        return Err(ApiError::Conflict(detail));
    }
    state
        .store
        .set_device_state(device.as_str(), "enrolled")
        .await?;
    let mut e = event(
        "issuance",
        &caller.subject.label(),
        action,
        &target.label(),
        "info",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "certificate {} valid until {}",
        issued.serial, issued.not_after
    );
    state.audit(e).await?;
    Ok(pkcs7_response(Bytes::from(mime_base64(
        &medsec_crypto::pkcs7_certs_only(&pem_certs(&pem)?),
    ))))
}

/// Parses and verifies the request before any credential is spent.
async fn parse_request(
    state: &AppState,
    conn: &Conn,
    action: &str,
    body: &[u8],
) -> Result<(String, medsec_pki::RequestInfo), ApiError> {
    let checked = est_csr(body).and_then(|pem| {
        medsec_pki::inspect_request(&pem)
            .map(|info| (pem, info))
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    });
    if let Err(ApiError::BadRequest(detail)) = &checked {
        let mut e = event("enrolment", "anonymous", action, "-", "deny");
        e.source = conn.addr.to_string();
        e.detail = detail.clone();
        state.audit(e).await?;
    }
    checked
}

fn basic_or_bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = bearer(headers) {
        return Some(t.to_owned());
    }
    // EST clients send HTTP Basic; the token is the password (RFC 7030 section 3.2.3).
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

async fn est_simpleenroll(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    const ACTION: &str = "est.enroll";
    let (pem, info) = parse_request(&state, &conn, ACTION, &body).await?;
    let (device, credential) = match (&conn.peer, basic_or_bearer_token(&headers)) {
        (Peer::Manufacturer(id), _) => {
            state
                .store
                .register_device(id.as_str(), "unspecified", now_ms())
                .await?;
            (id.clone(), "manufacturer-certificate")
        }
        (Peer::Device(id), _) => {
            let mut e = deny_event(
                &conn,
                &format!("Device::{:?}", id.as_str()),
                ACTION,
                &Target::Device(id.as_str().to_owned()),
                "an enrolled device renews with simplereenroll",
            );
            e.kind = "enrolment".into();
            state.audit(e).await?;
            return Err(ApiError::BadRequest(
                "this device is enrolled: use /.well-known/est/simplereenroll".into(),
            ));
        }
        (_, Some(token)) => match state
            .store
            .consume_enrolment_token(&tokens::hash(&token), now_ms())
            .await
        {
            Ok(id) => (device_id(&id)?, "enrolment-token"),
            Err(medsec_store::Error::TokenRefused { reason }) => {
                state
                    .audit(deny_event(
                        &conn,
                        "anonymous",
                        ACTION,
                        &Target::Fleet,
                        reason,
                    ))
                    .await?;
                return Err(ApiError::Unauthenticated(format!(
                    "enrolment refused: {reason}"
                )));
            }
            Err(e) => return Err(e.into()),
        },
        (_, None) => {
            state
                .audit(deny_event(
                    &conn,
                    "anonymous",
                    ACTION,
                    &Target::Fleet,
                    "no enrolment token or manufacturer certificate",
                ))
                .await?;
            return Err(ApiError::Unauthenticated(
                "enrolment needs a token (Authorization: Bearer, or Basic with the token as password) or a manufacturer certificate".into(),
            ));
        }
    };
    let caller = Caller {
        subject: device_subject(&state.store.device(device.as_str()).await?),
        record: None,
        credential,
    };
    enrol(&state, &conn, &caller, ACTION, &device, &pem, &info).await
}

async fn est_simplereenroll(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    const ACTION: &str = "est.reenroll";
    let (pem, info) = parse_request(&state, &conn, ACTION, &body).await?;
    let target = match &conn.peer {
        Peer::Device(id) => Target::Device(id.as_str().to_owned()),
        _ => Target::Fleet,
    };
    let caller = caller(&state, &conn, &headers, ACTION, &target).await?;
    let Peer::Device(device) = &conn.peer else {
        return Err(ApiError::Unauthenticated(
            "re-enrolment needs the device's certificate".into(),
        ));
    };
    enrol(&state, &conn, &caller, ACTION, device, &pem, &info).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_for_another_device_are_refused() {
        let me = DeviceId::new("pump-1").unwrap();
        let info = |cns: &[&str], sans: &[&str]| medsec_pki::RequestInfo {
            spki_sha256: [0; 32],
            common_names: cns.iter().map(|s| (*s).to_owned()).collect(),
            alt_names: sans.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(check_claims(&info(&[], &[]), &me).is_ok());
        assert!(check_claims(&info(&["pump-1"], &["URI(urn:medsec:device:pump-1)"]), &me).is_ok());
        assert!(
            check_claims(&info(&["pump-2"], &[]), &me)
                .unwrap_err()
                .contains("pump-2")
        );
        assert!(check_claims(&info(&["pump-1"], &["URI(urn:medsec:device:pump-2)"]), &me).is_err());
        assert!(check_claims(&info(&[], &["DNSName(evil.example)"]), &me).is_err());
    }

    #[test]
    fn est_bodies_are_base64_der_with_any_whitespace() {
        assert!(est_csr(b"MIIB\n  AA==\r\n").is_ok());
        assert!(matches!(
            est_csr(b"not base64!"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn est_answers_are_mime_base64_lines() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = mime_base64(&der);
        assert!(text.split("\r\n").all(|l| l.len() <= 64));
        assert!(text.ends_with("\r\n"));
        let compact: String = text.split_whitespace().collect();
        assert_eq!(STANDARD.decode(compact).unwrap(), der);
    }

    proptest::proptest! {
        #[test]
        fn est_bodies_survive_any_line_breaks(
            der in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600),
            width in 1usize..100,
            crlf in proptest::prelude::any::<bool>(),
        ) {
            let text = STANDARD.encode(&der);
            let eol = if crlf { "\r\n" } else { "\n" };
            let wrapped: Vec<String> = text
                .as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let pem = est_csr(wrapped.join(eol).as_bytes()).unwrap();
            let (label, back) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
            proptest::prop_assert_eq!(label, "CERTIFICATE REQUEST");
            proptest::prop_assert_eq!(back, der);
        }
    }

    #[test]
    fn basic_auth_carries_the_token_as_password() {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("pump-1:medsec-enrol-abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        assert_eq!(
            basic_or_bearer_token(&h).as_deref(),
            Some("medsec-enrol-abc")
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(basic_or_bearer_token(&h).as_deref(), Some("xyz"));
    }
}
