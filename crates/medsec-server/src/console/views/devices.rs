//! Devices: the filtered list (a page at a time, by id: as fast at 100,000 devices as at ten),
//! one device's page, its timeline export, and the actions on it.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::Ctx;
use crate::console::page::{self, Page, csrf, text, when};

/// The list's filters, passed on to `GET /api/v1/devices` as they are.
#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    model: Option<String>,
    site: Option<String>,
    group: Option<String>,
    state: Option<String>,
    version: Option<String>,
    quarantined: Option<String>,
    silent_for_secs: Option<String>,
    certificate_expires_within_days: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("model", &self.model),
            ("site", &self.site),
            ("group", &self.group),
            ("state", &self.state),
            ("version", &self.version),
            ("quarantined", &self.quarantined),
            ("silent_for_secs", &self.silent_for_secs),
            (
                "certificate_expires_within_days",
                &self.certificate_expires_within_days,
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
    }

    fn query(&self) -> String {
        self.pairs()
            .iter()
            .map(|(k, v)| format!("{k}={}", page::encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

const PAGE: u32 = 50;

/// `GET /ui/devices`.
pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filters>) -> Response {
    let limit = f
        .limit
        .as_deref()
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(PAGE)
        .clamp(1, 500);
    let mut uri = format!("/api/v1/devices?limit={limit}");
    let q = f.query();
    if !q.is_empty() {
        uri = format!("{uri}&{q}");
    }
    if let Some(after) = f.after.as_deref().filter(|a| !a.is_empty()) {
        uri = format!("{uri}&after={}", page::encode(after));
    }
    let answer = ctx.get(&uri).await;
    let field = |name: &str, label: &str, value: &Option<String>| {
        page::filter_text("f", name, label, value.as_deref())
    };
    let states = ["registered", "enrolled", "revoked", "decommissioned"].map(|s| (s, s));
    let body = html! {
        form.filters method="get" action="/ui/devices" role="search" aria-label="Filter devices" {
            (field("model", "Model", &f.model))
            (field("site", "Site", &f.site))
            (field("group", "Group", &f.group))
            (field("version", "Installed version", &f.version))
            (page::filter_choice("f", "state", "State", "any", &states, f.state.as_deref()))
            (page::filter_choice("f", "quarantined", "Quarantine", "any", &[("true", "quarantined only")], f.quarantined.as_deref()))
            (field("silent_for_secs", "Silent for (s)", &f.silent_for_secs))
            (field("certificate_expires_within_days", "Certificate expires within (days)", &f.certificate_expires_within_days))
            button type="submit" { "Filter" }
            a href="/ui/devices" { "Clear" }
        }
        section #devices data-region {
            @match &answer {
                Ok(list) => {
                    @let rows = list.as_array().cloned().unwrap_or_default();
                    table {
                        caption.muted { (rows.len()) " devices on this page, in id order" }
                        thead { tr { th { "Device" } th { "Model" } th { "Site" } th { "State" } th { "Version" } th { "Last seen" } } }
                        tbody {
                            @for d in &rows {
                                tr {
                                    td { a href={ "/ui/devices/" (page::encode(&text(&d["id"]))) } { (text(&d["id"])) }
                                         @if d["quarantined"].as_bool().unwrap_or(false) { " " span.badge.bad { "quarantined" } } }
                                    td { (text(&d["model"])) }
                                    td { (text(&d["site"])) }
                                    td { (text(&d["state"])) }
                                    td { (text(&d["installed_version"])) }
                                    td { (when(d["last_seen_ms"].as_i64())) }
                                }
                            }
                        }
                    }
                    nav aria-label="Pages" {
                        @if f.after.is_some() { a href={ "/ui/devices?" (q) } { "First page" } " " }
                        @if rows.len() as u32 == limit {
                            @if let Some(last) = rows.last() {
                                a href={ "/ui/devices?" (q) "&after=" (page::encode(&text(&last["id"]))) } { "Next page" }
                            }
                        }
                    }
                }
                Err(f) => (page::unavailable("Devices", f)),
            }
        }
    };
    Page::new(&ctx, "Devices").body(body).into_response()
}

fn action_form(
    ctx: &Ctx,
    id: &str,
    action: &str,
    label: &str,
    confirm: Option<&str>,
    extra: Markup,
) -> Markup {
    html! {
        form.inline method="post" action={ "/ui/devices/" (page::encode(id)) "/" (action) } data-confirm=[confirm] {
            (csrf(ctx))
            (extra)
            button.danger[confirm.is_some()] type="submit" { (label) }
        }
    }
}

fn reason_field(id: &str, action: &str) -> Markup {
    html! {
        label for={ (action) "-reason-" (id) } { "Reason" }
        input id={ (action) "-reason-" (id) } name="reason" required maxlength="500";
    }
}

/// `GET /ui/devices/{id}`.
pub(crate) async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let e = page::encode(&id);
    let uris = [
        format!("/api/v1/devices/{e}"),
        format!("/api/v1/devices/{e}/versions?limit=20"),
        format!("/api/v1/devices/{e}/alerts?limit=100"),
        format!("/api/v1/devices/{e}/findings"),
        format!("/api/v1/devices/{e}/identity"),
        format!("/api/v1/devices/{e}/timeline?limit=200"),
    ];
    let (device, versions, alerts, findings, identity, timeline) = tokio::join!(
        ctx.get(&uris[0]),
        ctx.get(&uris[1]),
        ctx.get(&uris[2]),
        ctx.get(&uris[3]),
        ctx.get(&uris[4]),
        ctx.get(&uris[5]),
    );
    let device = match device {
        Ok(d) => d,
        Err(f) => return ctx.failed(f),
    };
    let body = html! {
        section #record data-region aria-labelledby="h-record" {
            h2 #h-record { "Identity and inventory" }
            table {
                tbody {
                    @for (k, label) in [("id", "Device"), ("model", "Model"), ("hardware_id", "Hardware id"), ("site", "Site"), ("state", "State"), ("installed_version", "Installed version"), ("release_counter", "Release counter")] {
                        tr { th scope="row" { (label) } td { (text(&device[k])) } }
                    }
                    tr { th scope="row" { "Groups" } td { (device["groups"].as_array().map(|g| g.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } }
                    tr { th scope="row" { "Quarantined" } td { @if device["quarantined"].as_bool().unwrap_or(false) { span.badge.bad { "yes" } } @else { "no" } } }
                    tr { th scope="row" { "Registered" } td { (when(device["created_at_ms"].as_i64())) } }
                    tr { th scope="row" { "Last seen" } td { (when(device["last_seen_ms"].as_i64())) } }
                }
            }
            h3 { "Certificates" }
            @match &timeline {
                Ok(list) => {
                    @let certs: Vec<&serde_json::Value> = list.as_array().into_iter().flatten().filter(|t| t["kind"] == "certificate").collect();
                    @if certs.is_empty() { p.muted { "No certificate issued." } } @else {
                        table {
                            thead { tr { th { "Serial" } th { "Issued" } th { "Valid until" } th { "Key (SHA-256 of its SPKI)" } } }
                            tbody { @for c in certs.iter().rev() {
                                tr { td { code { (text(&c["detail"]["serial"])) } } td { (when(c["at_ms"].as_i64())) } td { (when(c["detail"]["not_after_ms"].as_i64())) } td { code { (text(&c["detail"]["spki_sha256"]).chars().take(16).collect::<String>()) "…" } } }
                            } }
                        }
                        p.hint { "Issued by the fleet's issuing CA under its offline root (" code { "ca/chain.pem" } " on the server host); revocations appear in the timeline." }
                    }
                }
                Err(f) => (page::unavailable("Certificates", f)),
            }
            @match &identity {
                Ok(v) => { h3 { "Bound network identity" } (page::json_block(v)) }
                Err(f) => (page::unavailable("Network identity", f)),
            }
        }
        section aria-labelledby="h-actions" {
            h2 #h-actions { "Actions" }
            p.hint { "Each action goes through the same policy as the API and is written to the audit log under your name." }
            (action_form(&ctx, &id, "release", "Release from quarantine", None, reason_field(&id, "release")))
            (action_form(&ctx, &id, "revoke", "Revoke certificates", Some("Revoke this device's certificates? It can no longer connect until reinstated."), reason_field(&id, "revoke")))
            (action_form(&ctx, &id, "reinstate", "Reinstate", None, html!{}))
            (action_form(&ctx, &id, "rebind", "Re-bind MAC address", None, html!{
                label for={ "mac-" (id) } { "New MAC" }
                input id={ "mac-" (id) } name="mac" required pattern="[0-9A-Fa-f:]{17}" placeholder="02:00:00:00:00:01";
                (reason_field(&id, "rebind"))
            }))
            (action_form(&ctx, &id, "decommission", "Decommission", Some("Take this device out of service for good? Its certificates are revoked."), reason_field(&id, "decommission")))
        }
        section #versions data-region aria-labelledby="h-versions" {
            h2 #h-versions { "Signed version history" }
            @match &versions {
                Ok(list) => table {
                    thead { tr { th { "Reported" } th { "Version" } th { "Release counter" } th { "Outcome" } } }
                    tbody { @for r in list.as_array().into_iter().flatten() {
                        tr { td { (when(r["received_at_ms"].as_i64().or(r["at_ms"].as_i64()))) } td { (text(&r["version"])) } td { (text(&r["release_counter"])) } td { (text(&r["install"]["outcome"])) } }
                    } }
                },
                Err(f) => (page::unavailable("Version history", f)),
            }
        }
        section #findings data-region aria-labelledby="h-findings" {
            h2 #h-findings { "Findings" }
            @match &findings {
                Ok(v) => (super::risk::findings_table(v)),
                Err(f) => (page::unavailable("Findings", f)),
            }
        }
        section #alerts data-region aria-labelledby="h-alerts" {
            h2 #h-alerts { "Alerts" }
            @match &alerts {
                Ok(list) => (super::alerts::table(&ctx, list)),
                Err(f) => (page::unavailable("Alerts", f)),
            }
        }
        section #timeline data-region aria-labelledby="h-timeline" {
            h2 #h-timeline { "Investigator timeline" }
            p { "Export: " a href={ "/ui/devices/" (e) "/timeline.csv" } download { "CSV" } " · " a href={ "/ui/devices/" (e) "/timeline.json" } download { "JSON" } }
            @match &timeline {
                Ok(list) => table {
                    thead { tr { th { "When" } th { "Kind" } th { "What" } } }
                    tbody { @for t in list.as_array().into_iter().flatten().rev() {
                        tr { td { (when(t["at_ms"].as_i64())) } td { (text(&t["kind"])) } td { (text(&t["summary"])) } }
                    } }
                },
                Err(f) => (page::unavailable("Timeline", f)),
            }
        }
    };
    Page::new(&ctx, &format!("Device {id}"))
        .live()
        .body(body)
        .into_response()
}

/// `GET /ui/devices/{id}/timeline.{csv|json}`: the whole timeline as a file.
pub(crate) async fn timeline_export(
    ctx: Ctx,
    Path((id, format)): Path<(String, String)>,
) -> Response {
    if !matches!(format.as_str(), "csv" | "json") {
        return ctx.failed(crate::console::session::Failure {
            status: StatusCode::NOT_FOUND,
            message: format!("no export as {format:?}: csv or json"),
        });
    }
    let uri = format!(
        "/api/v1/devices/{}/timeline?format={format}&limit=10000",
        page::encode(&id)
    );
    match ctx.call(axum::http::Method::GET, &uri, None).await {
        Ok(bytes) => {
            let kind = if format == "csv" {
                "text/csv; charset=utf-8"
            } else {
                "application/json"
            };
            let name = format!(
                "attachment; filename=\"timeline-{}.{format}\"",
                id.replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.',
                    "_"
                )
            );
            (
                [
                    (header::CONTENT_TYPE, kind.to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                bytes,
            )
                .into_response()
        }
        Err(f) => ctx.failed(f),
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
    mac: Option<String>,
}

/// `POST /ui/devices/{id}/{action}`: release, revoke, reinstate, rebind, decommission.
pub(crate) async fn act(
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = ctx
        .check_csrf(&form.csrf, &format!("device.{action}"))
        .await
    {
        return r;
    }
    let e = page::encode(&id);
    let reason = form.reason.unwrap_or_default();
    let (uri, body) = match action.as_str() {
        "release" | "decommission" => (
            format!("/api/v1/devices/{e}/{action}"),
            json!({"reason": reason}),
        ),
        "revoke" => (
            format!("/api/v1/devices/{e}/revoke"),
            json!({"reason": reason}),
        ),
        "reinstate" => (format!("/api/v1/devices/{e}/reinstate"), json!({})),
        "rebind" => (
            format!("/api/v1/devices/{e}/identity/rebind"),
            json!({"mac": form.mac.unwrap_or_default(), "reason": reason}),
        ),
        _ => {
            return ctx.failed(crate::console::session::Failure {
                status: StatusCode::NOT_FOUND,
                message: format!("no device action {action:?}"),
            });
        }
    };
    match ctx.post(&uri, &body).await {
        Ok(answer) => page::back_with_notice(
            &ctx,
            &format!("/ui/devices/{e}"),
            &format!("{action}: done. {}", summary(&answer)),
        ),
        Err(f) => ctx.failed(f),
    }
}

/// One line from an API answer.
pub(crate) fn summary(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| format!("{k}: {}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}
