//! The web console: HTML pages under `/ui/` on the operator port, rendered on the server
//! (maud), with one small script of our own for local times and live updates (no framework, no
//! third-party request: every asset is served here with its integrity hash).
//!
//! Every page and every action goes through the operator API inside the server: the console
//! sends the API route the CLI would call, as the signed-in person ([`ConsolePrincipal`]), to
//! the same router without the network in between. The API's handler resolves the caller,
//! asks Cedar and writes the audit entry as it does for a token, under the credential
//! `console-session`; a page shows what the API answered, a refusal included. The console
//! itself decides nothing about who may do what.
//!
//! - `session.rs`: sign-in (one-time link, operator token, OpenID Connect in `oidc.rs`), the
//!   session cookie, sign-out, and the [`Ctx`] every page takes: the session, the CSRF check
//!   of every change, the API calls.
//! - `page.rs`: the layout, the assets, the security headers, shared pieces (tables, times,
//!   forms).
//! - `views/`: one file per area; `live.rs`: the Server-Sent Events stream of changes.

mod live;
mod oidc;
mod page;
mod session;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::api::auth::ConsolePrincipal;
use crate::state::AppState;

pub(crate) use session::Ctx;

/// The console's routes. `api` is the operator API's router without the network-facing guard
/// (the console's own requests passed it already): the console calls it in-process.
pub(crate) fn router(api: Router, document_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(page::to_dashboard))
        .route("/ui/", get(views::dashboard::page))
        .route("/ui/assets/{name}", get(page::asset_handler))
        .route(
            "/ui/login",
            get(session::login_page).post(session::token_login),
        )
        .route("/ui/login/link/{secret}", get(session::link_login))
        .route("/ui/login/oidc", get(oidc::start))
        .route("/ui/login/callback", get(oidc::callback))
        .route("/ui/logout", post(session::logout))
        .route("/ui/events", get(live::events))
        .route("/ui/devices", get(views::devices::list))
        .route("/ui/devices/{id}", get(views::devices::show))
        .route(
            "/ui/devices/{id}/timeline.{format}",
            get(views::devices::timeline_export),
        )
        .route("/ui/devices/{id}/{action}", post(views::devices::act))
        .route("/ui/alerts", get(views::alerts::list))
        .route("/ui/alerts/suppress", post(views::alerts::suppress))
        .route(
            "/ui/alerts/{id}/acknowledge",
            post(views::alerts::acknowledge),
        )
        .route("/ui/incidents", get(views::incidents::list))
        .route(
            "/ui/incidents/{id}",
            get(views::incidents::show).post(views::incidents::command),
        )
        .route(
            "/ui/campaigns",
            get(views::campaigns::list).post(views::campaigns::create),
        )
        .route("/ui/campaigns/new", get(views::campaigns::form))
        .route(
            "/ui/campaigns/preview",
            post(views::campaigns::preview_page),
        )
        .route("/ui/campaigns/{id}", get(views::campaigns::show))
        .route(
            "/ui/campaigns/{id}/{control}",
            post(views::campaigns::control),
        )
        .route("/ui/releases", get(views::releases::list))
        .route("/ui/risk", get(views::risk::page))
        .route(
            "/ui/risk/upload",
            // A document pasted or read into a form: URL encoding can triple its size.
            post(views::risk::upload).layer(axum::extract::DefaultBodyLimit::max(
                document_limit.saturating_mul(3),
            )),
        )
        .route("/ui/compliance", get(views::compliance::page))
        .route("/ui/compliance/{file}", get(views::compliance::download))
        .route("/ui/audit", get(views::audit::list))
        .route("/ui/audit/verify", post(views::audit::verify))
        .route("/ui/audit/{seq}", get(views::audit::show))
        .layer(axum::middleware::from_fn(page::security_headers))
        .layer(axum::Extension(InternalApi(api)))
}

/// The operator API's router as the console calls it (a request extension of console routes).
#[derive(Clone)]
pub(crate) struct InternalApi(pub(crate) Router);
