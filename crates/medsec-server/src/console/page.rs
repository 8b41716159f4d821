//! The layout every page shares, the assets, the security headers, and small pieces.

use std::sync::OnceLock;

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use maud::{DOCTYPE, Markup, html};

use super::Ctx;

/// The Content-Security-Policy of every console answer: nothing but this origin's own script,
/// style and images; no inline script or style, no framing, forms only to this origin.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// One static asset, named by its content's hash so that it can be cached for good.
pub(crate) struct Asset {
    /// The URL path under `/ui/assets/`.
    pub(crate) name: String,
    /// `sha384-…`, for the `integrity` attribute.
    pub(crate) integrity: String,
    content_type: &'static str,
    body: &'static [u8],
}

fn make_asset(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, body);
    let hex: String = sha
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    Asset {
        name: format!("{stem}-{hex}.{ext}"),
        integrity: format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(sha.as_ref())
        ),
        content_type,
        body,
    }
}

/// The console's two assets: its style sheet and its script.
pub(crate) fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            make_asset(
                "console",
                "css",
                "text/css; charset=utf-8",
                include_bytes!("assets/console.css"),
            ),
            make_asset(
                "console",
                "js",
                "text/javascript; charset=utf-8",
                include_bytes!("assets/console.js"),
            ),
        ]
    })
}

/// `GET /ui/assets/{name}`.
pub(crate) async fn asset_handler(Path(name): Path<String>) -> Response {
    match assets().iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Security headers on every console answer; pages are never cached (they show live state
/// and a CSRF token), assets are (their names change with their content).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/ui/assets/");
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // The server's time for the answer (for a page, its API calls and rendering), shown by
    // browsers' developer tools and read by the console benchmark.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "app;dur={:.1}",
        started.elapsed().as_secs_f64() * 1000.0
    )) {
        h.insert("server-timing", v);
    }
    // A download that sets its own, stricter policy keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `GET /ui` → `/ui/`.
pub(crate) async fn to_dashboard() -> Response {
    see_other("/ui/")
}

/// A 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// What [`encode`] leaves as it is: letters, digits and `-._~/` (RFC 3986's unreserved
/// characters, and the path separator, which console paths carry in `next=`).
const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

fn head(title: &str) -> Markup {
    let [css, js] = assets();
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · medsec" }
        link rel="stylesheet" href={ "/ui/assets/" (css.name) } integrity=(css.integrity);
        script src={ "/ui/assets/" (js.name) } integrity=(js.integrity) defer {}
    }
}

/// A page without navigation (sign-in, errors before a session).
pub(crate) fn bare(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { (body) }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.0,
    )
        .into_response()
}

/// An error page with `status`, outside a session.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut r = bare(
        title,
        html! {
            main.login id="main" {
                h1 { (title) }
                p role="alert" { (message) }
                p { a href="/ui/" { "Back to the console" } }
            }
        },
    );
    *r.status_mut() = status;
    r
}

/// A page that moves on to `next` by itself (a same-site navigation; see
/// [`super::session::begin`]), with a link for a browser that does not.
pub(crate) fn continue_to(next: &str, message: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(message))
                meta http-equiv="refresh" content={ "0;url=" (next) };
            }
            body { main.login id="main" { h1 { (message) } p { a href=(next) { "Continue" } } } }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.0,
    )
        .into_response()
}

/// The sections of the navigation: path and label.
const NAV: &[(&str, &str)] = &[
    ("/ui/", "Dashboard"),
    ("/ui/devices", "Devices"),
    ("/ui/campaigns", "Campaigns"),
    ("/ui/releases", "Releases"),
    ("/ui/alerts", "Alerts"),
    ("/ui/incidents", "Incidents"),
    ("/ui/risk", "Risk"),
    ("/ui/compliance", "Compliance"),
    ("/ui/audit", "Audit log"),
];

/// A page inside the console.
pub(crate) struct Page<'a> {
    ctx: &'a Ctx,
    title: String,
    body: Markup,
    live: bool,
}

impl<'a> Page<'a> {
    pub(crate) fn new(ctx: &'a Ctx, title: &str) -> Self {
        Self {
            ctx,
            title: title.to_owned(),
            body: html! {},
            live: false,
        }
    }

    pub(crate) fn body(mut self, body: Markup) -> Self {
        self.body = body;
        self
    }

    /// The page follows the live stream: its `data-live` regions are refreshed on changes.
    pub(crate) fn live(mut self) -> Self {
        self.live = true;
        self
    }

    pub(crate) fn render(self) -> Markup {
        let ctx = self.ctx;
        let path = ctx.here.split('?').next().unwrap_or("/ui/");
        let current = NAV
            .iter()
            .filter(|(p, _)| *p == "/ui/" && path == "/ui/" || *p != "/ui/" && path.starts_with(p))
            .map(|(p, _)| *p)
            .next();
        html! {
            (DOCTYPE)
            html lang="en" {
                head { (head(&self.title)) }
                body data-live=[self.live.then_some("/ui/events")] {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/ui/" { "medsec" }
                        nav aria-label="Sections" {
                            ul {
                                @for (href, label) in NAV {
                                    li { a href=(href) aria-current=[(current == Some(*href)).then_some("page")] { (label) } }
                                }
                            }
                        }
                        div.who {
                            span { (ctx.session.display_name) " · " (ctx.session.roles.join(", ")) }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(ctx.session.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" {
                        h1 { (self.title) }
                        @if let Some(n) = notice(ctx) { p.notice role="status" { (n) } }
                        (self.body)
                    }
                    @if self.live {
                        p.live-state aria-live="polite" id="live-state" { "Live updates: connecting…" }
                    }
                }
            }
        }
    }
}

impl IntoResponse for Page<'_> {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.render().0,
        )
            .into_response()
    }
}

fn notice_mac(ctx: &Ctx, text: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, ctx.session.csrf.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, text.as_bytes());
    tag.as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a change sends the browser back to, with its result as a notice. The notice is
/// signed with the session's secret, so a link from elsewhere cannot put words on a page.
pub(crate) fn back_with_notice(ctx: &Ctx, to: &str, text: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    see_other(&format!(
        "{to}{sep}notice={}&sig={}",
        encode(text),
        notice_mac(ctx, text)
    ))
}

fn notice(ctx: &Ctx) -> Option<String> {
    let query = ctx.here.split_once('?')?.1;
    let mut text = None;
    let mut sig = None;
    for (k, v) in form_urlencoded_pairs(query) {
        match k.as_str() {
            "notice" => text = Some(v),
            "sig" => sig = Some(v),
            _ => {}
        }
    }
    let (text, sig) = (text?, sig?);
    crate::sessions::same_secret(&notice_mac(ctx, &text), &sig).then_some(text)
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    format!("/?{query}")
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// A moment, in UTC on the server; the script shows it in the browser's time zone.
pub(crate) fn when(ms: Option<i64>) -> Markup {
    let Some(ms) = ms else {
        return html! { span.muted { "never" } };
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    html! { time datetime=(iso) { (text) } }
}

/// A duration in words ("3 h 20 min").
pub(crate) fn duration(ms: i64) -> String {
    let (sign, ms) = if ms < 0 {
        ("overdue by ", -ms)
    } else {
        ("", ms)
    };
    let mins = ms / 60_000;
    let (d, h, m) = (mins / 1440, mins / 60 % 24, mins % 60);
    let text = if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    };
    format!("{sign}{text}")
}

/// A text field of a filter form (GET), labelled, keeping what was typed.
pub(crate) fn filter_text(prefix: &str, name: &str, label: &str, value: Option<&str>) -> Markup {
    html! {
        div {
            label for={ (prefix) "-" (name) } { (label) }
            input id={ (prefix) "-" (name) } name=(name) value=(value.unwrap_or_default());
        }
    }
}

/// A choice of a filter form: "any" (the empty value, labelled `any`) or one of `options`.
pub(crate) fn filter_choice(
    prefix: &str,
    name: &str,
    label: &str,
    any: &str,
    options: &[(&str, &str)],
    selected: Option<&str>,
) -> Markup {
    html! {
        div {
            label for={ (prefix) "-" (name) } { (label) }
            select id={ (prefix) "-" (name) } name=(name) {
                option value="" { (any) }
                @for (value, text) in options {
                    option value=(value) selected[selected == Some(*value)] { (text) }
                }
            }
        }
    }
}

/// A hidden CSRF field for a form of the signed-in person.
pub(crate) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf); }
}

/// A severity as a badge.
pub(crate) fn severity(s: &str) -> Markup {
    html! { span class={ "badge sev-" (s) } { (s) } }
}

/// A horizontal bar chart: a table whose rows name a value (a link to the filtered list when
/// given), draw its bar as inline SVG (hidden from screen readers, which read the number) and
/// give the number. No style attribute: the CSP allows none.
pub(crate) fn bars(label: &str, rows: &[(String, i64, Option<String>)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    html! {
        table.bars {
            caption { (label) }
            tbody {
                @for (name, n, href) in rows {
                    @let w = (*n as f64 / max as f64 * 200.0).round().max(1.0);
                    tr {
                        th scope="row" {
                            @if let Some(h) = href { a href=(h) { (truncate(name, 32)) } } @else { (truncate(name, 32)) }
                        }
                        td.barcell {
                            svg aria-hidden="true" focusable="false" viewBox="0 0 200 14" width="200" height="14" {
                                rect x="0" y="0" width=(w) height="14" class="bar" {}
                            }
                        }
                        td.num { (n) }
                    }
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Raw JSON, pretty, in a `<pre>`.
pub(crate) fn json_block(v: &serde_json::Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// Text of a JSON value (strings without quotes).
pub(crate) fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A short explanation that a part of a page could not be shown, and why.
pub(crate) fn unavailable(what: &str, f: &super::session::Failure) -> Markup {
    html! {
        p.unavailable {
            (what) ": "
            @if f.status == StatusCode::FORBIDDEN { "not permitted for your roles" } @else { (f.message) }
            " (" (f.status.as_u16()) ")"
        }
    }
}
