//! The HTTP API in process: requests go straight into the routers `serve.rs` mounts, with the
//! connection facts (`Conn`) a handshake would have produced, against a server started on a
//! temporary directory. This level tests what the API decides (who may do what, what is
//! refused and how it is audited) without TLS, curl or a child process; what only the wire
//! shows (mutual TLS, EST with real clients, limits, tampering) stays in the end-to-end tests of
//! `crates/medsec/tests/e2e`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use medsec_pki::DeviceId;
use medsec_server::state::{Conn, Peer};
use medsec_server::{Config, Server, api, tokens};
use medsec_store::prelude::*;
use serde_json::Value;
use tower::ServiceExt as _;

/// A started server and its two routers, called in process.
struct Api {
    server: Server,
    operator: Router,
    device: Router,
    _dir: tempfile::TempDir,
}

/// The answer: status and JSON body (`Null` when empty).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(Config {
            data_dir: dir.path().to_owned(),
            device_listen: "127.0.0.1:0".parse().unwrap(),
            operator_listen: "127.0.0.1:0".parse().unwrap(),
            insecure_plaintext_audit_key: true,
            ..Config::default()
        })
        .await
        .unwrap();
        Self {
            operator: api::operator_router(server.state.clone()),
            device: api::device_router(server.state.clone()),
            server,
            _dir: dir,
        }
    }

    async fn token(&self, name: &str, role: &str) -> String {
        tokens::create_operator_token(
            &self.server.state.store,
            name,
            &[role.to_owned()],
            medsec_util::now_ms(),
            3600,
        )
        .await
        .unwrap()
    }

    /// A request on the operator port, with `token` as its bearer token if given.
    async fn operator(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let conn = conn(40000, Peer::None, true);
        let body = body.map(|b| ("application/json", b));
        call(&self.operator, conn, method, path, token, body).await
    }

    /// A POST on the device port from a connection without a client certificate (EST with a
    /// token), with `content_type` if given.
    async fn anonymous_post(&self, path: &str, content_type: Option<&str>, body: &str) -> Answer {
        let conn = conn(40002, Peer::None, false);
        let body = content_type.map_or(("", body), |t| (t, body));
        call(&self.device, conn, "POST", path, None, Some(body)).await
    }

    /// A request on the device port from a connection whose verified certificate names
    /// `device`.
    async fn device(&self, device: &str, method: &str, path: &str) -> Answer {
        let conn = conn(40001, Peer::Device(DeviceId::new(device).unwrap()), false);
        call(&self.device, conn, method, path, None, None).await
    }

    /// The audited events, oldest first, as JSON.
    async fn audit(&self) -> Vec<Value> {
        let rows = self
            .server
            .state
            .store
            .audit_entries(0, 10_000)
            .await
            .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str::<Value>(&r.entry).unwrap()["event"].clone())
            .collect()
    }
}

/// The connection facts a handshake from `127.0.0.1:PORT` would have produced.
fn conn(port: u16, peer: Peer, operator_port: bool) -> Conn {
    Conn {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        peer,
        certificate: None,
        serial: None,
        operator_port,
        broker: None,
    }
}

async fn call(
    router: &Router,
    conn: Conn,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    if let Some((content_type, _)) = body.filter(|(t, _)| !t.is_empty()) {
        request = request.header("content-type", content_type);
    }
    let mut request = request
        .body(Body::from(
            body.map(|(_, b)| b).unwrap_or_default().to_owned(),
        ))
        .unwrap();
    request.extensions_mut().insert(conn);
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer { status, body }
}

fn error(a: &Answer) -> &str {
    a.body["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_record_is_checked_stored_audited_and_listed_by_role() {
    let api = Api::start().await;
    let admin = api.token("alice", "admin").await;
    let viewer = api.token("victor", "viewer").await;
    let profile = r#"{"vendor":"Acme Infusion","clinical":"monitoring","exposure":"adjacent","support":{"status":"security-only"}}"#;
    let path = "/api/v1/inventory/models/monitor";

    let a = api.operator("PUT", path, None, Some(profile)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(
        error(&a).contains("operator token is required"),
        "{}",
        a.body
    );
    let a = api
        .operator("PUT", path, Some("not-a-token"), Some(profile))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let a = api
        .operator("PUT", path, Some(&viewer), Some(profile))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);

    let bad = r#"{"vendor":"Acme Infusion","clinical":"monitoring","exposure":"adjacent","support":{"status":"security-only"},"mds2":{"NOPE":{"answer":"yes"}}}"#;
    let a = api.operator("PUT", path, Some(&admin), Some(bad)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(error(&a).contains("NOPE"), "{}", a.body);

    let a = api.operator("PUT", path, Some(&admin), Some(profile)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = api
        .operator("GET", "/api/v1/inventory/models", Some(&viewer), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let listed = &a.body["models"][0];
    assert_eq!(listed["model"], "monitor", "{}", a.body);
    assert_eq!(
        listed["support"]["why"], "security updates only",
        "{}",
        a.body
    );

    // Every refusal and the change are in the audit log, in that order.
    let entries = api.audit().await;
    let find = |pred: &dyn Fn(&Value) -> bool| entries.iter().position(pred);
    let anonymous = find(&|e| e["kind"] == "authn" && e["detail"] == "no operator token");
    let unknown = find(&|e| e["kind"] == "authn" && e["detail"] == "unknown operator token");
    let denied = find(&|e| {
        e["kind"] == "authz"
            && e["decision"] == "deny"
            && e["principal"]
                .as_str()
                .unwrap_or_default()
                .contains("victor")
    });
    let stored = find(&|e| {
        e["kind"] == "risk"
            && e["principal"]
                .as_str()
                .unwrap_or_default()
                .contains("alice")
            && e["resource"]
                .as_str()
                .unwrap_or_default()
                .contains("monitor")
    });
    assert!(
        anonymous < unknown && unknown < denied && denied < stored && stored.is_some(),
        "{anonymous:?} {unknown:?} {denied:?} {stored:?}: {entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_id_medsec_refuses_is_a_400_before_any_credential_is_read() {
    let api = Api::start().await;
    let before = api.audit().await.len();
    for id in ["a%20b", "x:y", "..%2Fetc"] {
        let a = api
            .operator("GET", &format!("/api/v1/devices/{id}"), None, None)
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{id}: {}", a.body);
        assert!(error(&a).contains("device id"), "{id}: {}", a.body);
    }
    // Refused as input, not as a credential: no authentication entry was written for them.
    assert_eq!(api.audit().await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reads_its_own_record_and_no_other() {
    let api = Api::start().await;
    let store = &api.server.state.store;
    for id in ["pump-1", "pump-2"] {
        store.register_device(id, "pump", 1).await.unwrap();
        store.set_device_state(id, "enrolled").await.unwrap();
    }
    let a = api.device("pump-1", "GET", "/api/v1/devices/pump-1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["id"], "pump-1");
    let a = api.device("pump-1", "GET", "/api/v1/devices/pump-2").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // A certificate naming a device medsec has no record of is refused, and audited.
    let a = api.device("ghost", "GET", "/api/v1/devices/ghost").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(api.audit().await.iter().any(|e| {
        e["kind"] == "authn" && e["detail"] == "certificate names a device medsec has no record of"
    }));
}

/// RFC 7030 section 4.2.1: an enrolment request is `application/pkcs10`. Anything else is
/// refused with a 415 that names the expected type, before the body is read or a credential
/// spent, and the refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_est_request_that_is_not_application_pkcs10_is_refused_and_audited() {
    let api = Api::start().await;
    for (endpoint, content_type) in [
        ("simpleenroll", Some("application/json")),
        ("simpleenroll", None),
        ("simplereenroll", Some("text/plain")),
    ] {
        let a = api
            .anonymous_post(
                &format!("/.well-known/est/{endpoint}"),
                content_type,
                "MIIB",
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{endpoint} {content_type:?}: {}",
            a.body
        );
        assert!(error(&a).contains("application/pkcs10"), "{}", a.body);
    }
    let refusals = api
        .audit()
        .await
        .into_iter()
        .filter(|e| {
            e["kind"] == "enrolment"
                && e["decision"] == "deny"
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Content-Type")
        })
        .count();
    assert_eq!(refusals, 3);
    // With the right type (and a charset parameter), the same junk body gets past the type
    // check and is refused for what it is.
    let a = api
        .anonymous_post(
            "/.well-known/est/simpleenroll",
            Some("application/pkcs10; charset=us-ascii"),
            "not base64!",
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(error(&a).contains("base64"), "{}", a.body);
}

/// A flood of requests, each with a fresh random bearer token, from one address: the rate
/// limit is keyed on the address (a token is not verified when the limit applies, so it cannot
/// buy a fresh allowance), and its refusals are one audit entry per window with a count. The
/// log grows by at most the burst, the refill, and one entry; before, every request got its own
/// bucket and its own durable "unknown operator token" row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_token_flood_from_one_address_is_rate_limited_and_its_audit_growth_bounded() {
    let api = Api::start().await;
    let limits = &api.server.state.config.limits;
    let (rate, burst) = (
        u64::from(limits.requests_per_second),
        u64::from(limits.request_burst),
    );
    let before = api.audit().await.len() as u64;
    let started = std::time::Instant::now();
    let (mut refused, mut limited, mut sent) = (0u64, 0u64, 0u64);
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let token = format!("medsec-op-{sent:032x}");
        let a = api
            .operator("GET", "/api/v1/devices", Some(&token), None)
            .await;
        match a.status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("{other}: {}", a.body),
        }
        sent += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = api.audit().await.len() as u64 - before;
    eprintln!(
        "flood: {sent} requests in {secs:.1} s ({:.0}/s); {refused} refused as unauthenticated, \
         {limited} rate-limited; {rows} audit rows ({:.1} rows/s)",
        sent as f64 / secs,
        rows as f64 / secs
    );
    assert!(
        limited > sent / 2,
        "most of the flood is rate-limited: {limited} of {sent}"
    );
    let allowance = burst + rate * (secs.ceil() as u64);
    assert!(
        refused <= allowance,
        "{refused} got past the limit, allowance {allowance}"
    );
    // One row per request let through, plus the first rate-limit refusal; the rest are counted.
    assert!(
        rows <= refused + 1,
        "{rows} rows for {refused} requests let through"
    );
    let limit_rows: Vec<Value> = api
        .audit()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "limit")
        .collect();
    assert_eq!(limit_rows.len(), 1, "{limit_rows:#?}");
    assert_eq!(limit_rows[0]["principal"], "addr:127.0.0.1");
    // An operator with a live token has an allowance of its own: the flood from the same
    // address does not lock it out.
    let admin = api.token("alice", "admin").await;
    let a = api
        .operator("GET", "/api/v1/devices", Some(&admin), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}
