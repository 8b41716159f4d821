//! The web console's security checks in process: requests go straight into the operator port's
//! router with the connection a handshake would have produced. Each test is an attack the
//! console must refuse (and the audit entry it leaves); the whole console in a real browser,
//! signed in through a real OpenID provider, is `crates/medsec/tests/e2e/console.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use medsec_server::sessions::{self, Person};
use medsec_server::state::{Conn, Peer};
use medsec_server::{Config, Server, api, tokens};
use medsec_store::ConsoleSession;
use medsec_store::prelude::*;
use serde_json::Value;
use tower::ServiceExt as _;

struct Console {
    server: Server,
    operator: Router,
    _dir: tempfile::TempDir,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The `name=value` of each `Set-Cookie`, and the whole header.
    fn cookie(&self, name: &str) -> Option<(String, String)> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| {
                let value = v
                    .split(';')
                    .next()
                    .unwrap()
                    .split_once('=')
                    .unwrap()
                    .1
                    .to_owned();
                (value, v)
            })
    }
}

impl Console {
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
            server,
            _dir: dir,
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        cookies: &[(&str, &str)],
        form: Option<&str>,
        bearer: Option<&str>,
    ) -> Page {
        let mut r = Request::builder().method(method).uri(path);
        if !cookies.is_empty() {
            let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r = r.header(header::COOKIE, c.join("; "));
        }
        if form.is_some() {
            r = r.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(t) = bearer {
            r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut r = r
            .body(Body::from(form.unwrap_or_default().to_owned()))
            .unwrap();
        r.extensions_mut().insert(Conn {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 41000)),
            peer: Peer::None,
            certificate: None,
            serial: None,
            operator_port: true,
            broker: None,
        });
        let response = self.operator.clone().oneshot(r).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 8 << 20)
            .await
            .unwrap();
        Page {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Page {
        let cookies: Vec<(&str, &str)> =
            session.map(|s| (sessions::COOKIE, s)).into_iter().collect();
        self.request("GET", path, &cookies, None, None).await
    }

    /// A session for `name` with `roles`, as a sign-in would make it: (cookie secret, row).
    async fn session(&self, name: &str, roles: &[&str]) -> (String, ConsoleSession) {
        sessions::start(
            &self.server.state.store,
            &Person {
                principal: name.into(),
                display_name: name.into(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            },
            medsec_util::now_ms(),
            3600,
            None,
        )
        .await
        .unwrap()
    }

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_a_page_sends_to_the_sign_in_and_only_to_a_console_path_after() {
    let c = Console::start().await;
    let page = c.get("/ui/devices?model=x", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/ui/login?next=/ui/devices%3Fmodel%3Dx");
    // A forged or unknown cookie is no session.
    let page = c.get("/ui/", Some("forged-cookie-value")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // The sign-in page follows only a console path: never another site (open redirect).
    for evil in [
        "//evil.example/ui/",
        "https://evil.example/",
        "/ui/\\\\evil",
        "/api/v1/devices",
    ] {
        let page = c
            .get(&format!("/ui/login?next={}", urlencode(evil)), None)
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.text.contains(r#"name="next" value="/ui/""#),
            "{evil} was kept as the place to go after signing in"
        );
    }
    // Every console answer carries the strict policy.
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_sign_in_needs_this_browsers_form_and_a_live_token() {
    let c = Console::start().await;
    let token = tokens::create_operator_token(
        &c.server.state.store,
        "break-glass",
        &["admin".to_owned()],
        medsec_util::now_ms(),
        3600,
    )
    .await
    .unwrap();
    // Login CSRF: a form posted from elsewhere has no binding cookie; refused and audited.
    let form = format!("token={token}&binding=abc&next=/ui/");
    let page = c.request("POST", "/ui/login", &[], Some(&form), None).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.cookie(sessions::COOKIE).is_none());
    // From the sign-in page: its binding cookie and the form's field agree.
    let login = c.get("/ui/login", None).await;
    let (binding, _) = login.cookie(sessions::LOGIN_COOKIE).unwrap();
    let wrong = format!("token=medsec-op-not-a-token&binding={binding}");
    let page = c
        .request(
            "POST",
            "/ui/login",
            &[(sessions::LOGIN_COOKIE, &binding)],
            Some(&wrong),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let form = format!("token={token}&binding={binding}&next=/ui/devices");
    let page = c
        .request(
            "POST",
            "/ui/login",
            &[(sessions::LOGIN_COOKIE, &binding)],
            Some(&form),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    assert_eq!(page.location(), "/ui/devices");
    let (secret, header) = page.cookie(sessions::COOKIE).unwrap();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(header.contains(attribute), "{header} lacks {attribute}");
    }
    assert!(!header.contains("Domain"), "{header}");
    let page = c.get("/ui/", Some(&secret)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("break-glass · admin"));
    // The API never takes the console's cookie: a cross-site request carrying it gets nothing.
    let api = c
        .request(
            "GET",
            "/api/v1/devices",
            &[(sessions::COOKIE, &secret)],
            None,
            None,
        )
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    let audit = c.audit().await;
    let refusals = audit
        .iter()
        .filter(|e| e["action"] == "console.sign_in" && e["decision"] == "deny")
        .count();
    assert_eq!(refusals, 2, "{audit:#?}");
    assert!(audit.iter().any(|e| e["action"] == "console.sign_in"
        && e["decision"] == "allow"
        && e["principal"] == "Operator::\"break-glass\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_works_once_and_a_session_ends_when_idle_or_signed_out() {
    let c = Console::start().await;
    let store = &c.server.state.store;
    let person = Person {
        principal: "demo".into(),
        display_name: "demo".into(),
        roles: vec!["viewer".into()],
    };
    let link = sessions::make_link(store, &person, medsec_util::now_ms())
        .await
        .unwrap();
    let first = c.get(&format!("/ui/login/link/{link}"), None).await;
    assert_eq!(first.status, StatusCode::OK);
    // A page that moves on by itself: a redirect after a cross-site navigation would not
    // carry the new SameSite=Strict cookie.
    assert!(first.text.contains(r#"http-equiv="refresh""#));
    let (secret, _) = first.cookie(sessions::COOKIE).unwrap();
    let again = c.get(&format!("/ui/login/link/{link}"), None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.cookie(sessions::COOKIE).is_none());
    assert!(
        sessions::make_link(
            store,
            &Person {
                roles: vec!["root".into()],
                ..person.clone()
            },
            0
        )
        .await
        .is_err(),
        "a link with an unknown role"
    );

    // Idle: a session unused for longer than the idle timeout is over.
    let (idle, row) = c.session("idle", &["viewer"]).await;
    let hash = tokens::hash(&idle);
    store
        .touch_console_session(&hash, row.last_seen_ms - 901_000)
        .await
        .unwrap();
    assert_eq!(
        c.get("/ui/", Some(&idle)).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(
        store
            .console_session(&hash, "session", medsec_util::now_ms())
            .await
            .is_err()
    );

    // Sign-out needs the CSRF token, and then the cookie is dead.
    let page = c.get("/ui/", Some(&secret)).await;
    let csrf = page
        .text
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let cookies = [(sessions::COOKIE, secret.as_str())];
    let refused = c
        .request("POST", "/ui/logout", &cookies, Some("csrf=wrong"), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = c
        .request(
            "POST",
            "/ui/logout",
            &cookies,
            Some(&format!("csrf={csrf}")),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        c.get("/ui/", Some(&secret)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_change_is_cedars_decision_under_the_persons_name_and_needs_its_csrf_token() {
    let c = Console::start().await;
    let (viewer, vrow) = c.session("victor", &["viewer"]).await;
    let (admin, arow) = c.session("ada", &["admin"]).await;
    // A viewer's change reaches the API, which refuses it: 403, audited as Cedar's decision
    // with the console's credential.
    let cookies = [(sessions::COOKIE, viewer.as_str())];
    let form = format!("csrf={}&reason=test", vrow.csrf);
    let page = c
        .request(
            "POST",
            "/ui/devices/pump-1/decommission",
            &cookies,
            Some(&form),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(page.text.contains("Not permitted"));
    // An admin's change without its token, or with the viewer's, is refused before the API.
    let cookies = [(sessions::COOKIE, admin.as_str())];
    for form in [
        "reason=test".to_owned(),
        format!("csrf={}&reason=test", vrow.csrf),
    ] {
        let page = c
            .request(
                "POST",
                "/ui/devices/pump-1/decommission",
                &cookies,
                Some(&form),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.text.contains("CSRF"));
    }
    // With its own token, the API answers (no such device: 404, and nothing changed).
    let form = format!("csrf={}&reason=test", arow.csrf);
    let page = c
        .request(
            "POST",
            "/ui/devices/pump-1/decommission",
            &cookies,
            Some(&form),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text);
    let audit = c.audit().await;
    let denied = audit
        .iter()
        .find(|e| e["principal"] == "Operator::\"victor\"" && e["action"] == "device.decommission")
        .expect("the viewer's refusal is audited");
    assert_eq!(denied["decision"], "deny");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e["principal"] == "Operator::\"ada\""
                && e["decision"] == "deny"
                && e["detail"].as_str().unwrap_or("").contains("CSRF"))
            .count(),
        2
    );
    // A notice is shown only when the session signed it: a link cannot put words on a page.
    let forged = c
        .get(
            "/ui/?notice=Your%20account%20is%20locked&sig=00",
            Some(&admin),
        )
        .await;
    assert_eq!(forged.status, StatusCode::OK);
    assert!(!forged.text.contains("Your account is locked"));
}
