//! Campaigns: the list, the creation form, one campaign's waves and outcome, and its controls.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::dashboard::status;
use crate::console::Ctx;
use crate::console::page::{self, Page, csrf, text, when};

/// A campaign in one block: status, the halt reason, the waves' progress.
pub(crate) fn summary_row(c: &Value) -> Markup {
    let id = text(&c["id"]);
    html! {
        article.campaign aria-label={ "Campaign " (id) } {
            h3 { a href={ "/ui/campaigns/" (page::encode(&id)) } { (id) } " — " span class={ "status-" (status(c)) } { (status(c)) } }
            p.muted { (text(&c["release"]["target"])) " (version " (text(&c["release"]["version"])) ", release counter " (text(&c["release"]["release_counter"])) ")" }
            @if let Some(reason) = c["status"]["reason"].as_str() { p.bad { "Halted: " (reason) } }
            (waves(c))
        }
    }
}

fn waves(c: &Value) -> Markup {
    html! {
        div.waves {
            @for w in c["waves"].as_array().into_iter().flatten() {
                @let size = w["size"].as_i64().unwrap_or(0);
                @let done = w["succeeded"].as_i64().unwrap_or(0);
                @let failed = w["failed"].as_i64().unwrap_or(0);
                @let label = if w["wave"].as_i64() == Some(0) { "canary".to_owned() } else { format!("wave {}", text(&w["wave"])) };
                div.wave {
                    strong { (label) } @if !w["open"].as_bool().unwrap_or(false) { " " span.muted { "(not open)" } }
                    br;
                    label { span.muted { (done) " of " (size) " installed" } progress max=(size.max(1)) value=(done) { (done) "/" (size) } }
                    br;
                    span.bad[failed > 0] { (failed) " failed" } " · " (text(&w["offered"])) " offered · " (text(&w["deferred"])) " deferred · " (text(&w["waiting"])) " waiting"
                    @if w["withdrawn"].as_i64().unwrap_or(0) > 0 { " · " (text(&w["withdrawn"])) " withdrawn" }
                }
            }
        }
    }
}

/// Devices listed on a campaign's page; a larger campaign's list is the CLI's.
const SHOWN_DEVICES: usize = 500;

#[derive(Deserialize, Default)]
pub(crate) struct ListFilter {
    status: Option<String>,
}

/// `GET /ui/campaigns`.
pub(crate) async fn list(ctx: Ctx, Query(f): Query<ListFilter>) -> Response {
    let answer = ctx.get("/api/v1/campaigns").await;
    let body = html! {
        p { a.button href="/ui/campaigns/new" { "New campaign" } }
        section #campaign-list data-region {
            @match &answer {
                Ok(list) => {
                    @let rows: Vec<&Value> = list.as_array().into_iter().flatten()
                        .filter(|c| f.status.as_deref().is_none_or(|s| s.is_empty() || status(c) == s)).collect();
                    @if rows.is_empty() { p.muted { "No campaigns." } }
                    @for c in rows { (summary_row(c)) }
                }
                Err(f) => (page::unavailable("Campaigns", f)),
            }
        }
    };
    Page::new(&ctx, "Campaigns")
        .live()
        .body(body)
        .into_response()
}

/// The creation form's fields, as typed (kept when the form is shown again with a preview or
/// an error).
#[derive(Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    release_counter: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    group: String,
    all: Option<String>,
    #[serde(default)]
    canary: String,
    #[serde(default)]
    growth: String,
    #[serde(default)]
    max_failure_rate: String,
    #[serde(default)]
    windows: String,
    start: Option<String>,
}

impl CreateForm {
    fn defaults() -> Self {
        Self {
            canary: "5".into(),
            growth: "2".into(),
            max_failure_rate: "0.1".into(),
            start: Some("true".into()),
            ..Self::default()
        }
    }

    /// The API's request: `{"spec": …, "selection": …}`, or what is wrong with the form.
    fn request(&self) -> Result<Value, String> {
        let counter = self.release_counter.trim().parse::<i64>().map_err(|_| {
            format!(
                "release counter {:?} is not a whole number",
                self.release_counter
            )
        })?;
        let canary = self
            .canary
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("canary {:?} is not a number of devices", self.canary))?;
        let growth = self
            .growth
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("growth {:?} is not a number", self.growth))?;
        let rate = self
            .max_failure_rate
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("failure rate {:?} is not a number", self.max_failure_rate))?;
        let mut windows = serde_json::Map::new();
        for line in self
            .windows
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (site, w) = medsec_campaign::WindowSpec::parse_line(line)?;
            windows.insert(site, json!(w));
        }
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(json!({
            "spec": {
                "name": self.name.trim(),
                "release": {"version": self.version.trim(), "release_counter": counter, "target": self.target.trim()},
                "canary": {"count": canary},
                "growth": growth,
                "max_failure_rate": rate,
                "windows": windows,
            },
            "selection": {
                "all": self.all.as_deref() == Some("true"),
                "model": opt(&self.model), "site": opt(&self.site), "group": opt(&self.group),
            }
        }))
    }
}

/// The plan the API previews: devices, sites with their windows, waves.
fn preview(answer: &Result<Value, String>) -> Markup {
    html! {
        section #preview data-region aria-live="polite" aria-labelledby="h-preview" {
            h2 #h-preview { "Preview" }
            @match answer {
                Ok(p) => {
                    p { strong { (text(&p["devices_selected"])) " devices" } " in " (p["waves"].as_array().map_or(0, Vec::len)) " waves." }
                    table {
                        caption { "Waves" }
                        thead { tr { th { "Wave" } th.num { "Devices" } } }
                        tbody { @for w in p["waves"].as_array().into_iter().flatten() {
                            tr { td { @if w["wave"].as_i64() == Some(0) { "canary" } @else { "wave " (text(&w["wave"])) } } td.num { (text(&w["size"])) } }
                        } }
                    }
                    table {
                        caption { "Sites and their maintenance windows" }
                        thead { tr { th { "Site" } th.num { "Devices" } th { "Window" } } }
                        tbody { @for (site, n) in p["sites"].as_object().into_iter().flatten() {
                            @let w = &p["windows"][site.as_str()];
                            tr {
                                td { @if site.is_empty() { span.muted { "(no site)" } } @else { (site) } }
                                td.num { (text(n)) }
                                td { @if w.is_null() { "any time" } @else { "opens " code { (text(&w["cron"])) } " in " (text(&w["time_zone"])) " for " (text(&w["duration_minutes"])) " min" } }
                            }
                        } }
                    }
                    p.hint { "A pump or monitor in clinical use defers the installation until therapy ends; a wave counts it when it reports." }
                }
                Err(why) => p.failure role="alert" { (why) },
            }
        }
    }
}

fn form_page(ctx: &Ctx, f: &CreateForm, previewed: Option<Result<Value, String>>) -> Response {
    let field = |name: &str, label: &str, value: &str, hint: &str, required: bool| {
        html! {
            div {
                label for={ "c-" (name) } { (label) }
                input id={ "c-" (name) } name=(name) value=(value) required[required] aria-describedby={ "c-" (name) "-hint" };
                span.hint id={ "c-" (name) "-hint" } { (hint) }
            }
        }
    };
    let body = html! {
        div.grid2 {
            form.stack method="post" action="/ui/campaigns" data-preview="/ui/campaigns/preview" {
                (csrf(ctx))
                (field("name", "Name", &f.name, "a new campaign's id, e.g. fw-1.3", true))
                fieldset {
                    legend { "Release (as signed in the image repository)" }
                    (field("target", "Target file", &f.target, "e.g. fleet-fw-1.3.0.img", true))
                    (field("version", "Version", &f.version, "the version signed into the target", true))
                    (field("release_counter", "Release counter", &f.release_counter, "anti-rollback counter signed into the target", true))
                }
                fieldset {
                    legend { "Devices" }
                    (field("model", "Model", &f.model, "only this model (empty: any)", false))
                    (field("site", "Site", &f.site, "only this site (empty: any)", false))
                    (field("group", "Group", &f.group, "only this group (empty: any)", false))
                    div {
                        input #c-all type="checkbox" name="all" value="true" checked[f.all.is_some()];
                        label for="c-all" { "All devices (when no filter above is set)" }
                    }
                }
                fieldset {
                    legend { "Waves" }
                    (field("canary", "Canary devices", &f.canary, "devices in the first wave", true))
                    (field("growth", "Growth", &f.growth, "each later wave is this many times the last", true))
                    (field("max_failure_rate", "Halt above failure rate", &f.max_failure_rate, "a wave failing on more than this share halts the campaign", true))
                }
                div {
                    label for="c-windows" { "Maintenance windows, one site per line" }
                    textarea #c-windows name="windows" rows="3" aria-describedby="c-windows-hint" { (f.windows) }
                    span.hint id="c-windows-hint" { "SITE|CRON|MINUTES|TIME ZONE, e.g. north|0 2 * * SUN|180|Europe/Berlin; a site without a line installs any time" }
                }
                div {
                    input #c-start type="checkbox" name="start" value="true" checked[f.start.is_some()];
                    label for="c-start" { "Start it now" }
                }
                div {
                    button type="submit" formaction="/ui/campaigns/preview" { "Preview" }
                    " "
                    button type="submit" { "Create campaign" }
                }
            }
            @match previewed {
                Some(p) => (preview(&p)),
                None => section #preview data-region aria-live="polite" { h2 { "Preview" } p.muted { "Fill in the release and the devices: the plan appears here as you type." } },
            }
        }
    };
    Page::new(ctx, "New campaign").body(body).into_response()
}

/// `GET /ui/campaigns/new`.
pub(crate) async fn form(ctx: Ctx) -> Response {
    form_page(&ctx, &CreateForm::defaults(), None)
}

/// `POST /ui/campaigns/preview`: the form again, with the plan the API previews.
pub(crate) async fn preview_page(ctx: Ctx, Form(f): Form<CreateForm>) -> Response {
    if let Err(r) = ctx.check_csrf(&f.csrf, "campaign.create").await {
        return r;
    }
    let planned = match f.request() {
        Ok(request) => ctx
            .post("/api/v1/campaigns/preview", &request)
            .await
            .map_err(|e| {
                if e.status == StatusCode::FORBIDDEN {
                    format!(
                        "not permitted for your roles ({})",
                        ctx.session.roles.join(", ")
                    )
                } else {
                    e.message
                }
            }),
        Err(why) => Err(why),
    };
    form_page(&ctx, &f, Some(planned))
}

/// `POST /ui/campaigns`: creates (and starts) a campaign.
pub(crate) async fn create(ctx: Ctx, Form(f): Form<CreateForm>) -> Response {
    if let Err(r) = ctx.check_csrf(&f.csrf, "campaign.create").await {
        return r;
    }
    let request = match f.request() {
        Ok(r) => r,
        Err(why) => return form_page(&ctx, &f, Some(Err(why))),
    };
    if let Err(e) = ctx.post("/api/v1/campaigns", &request).await {
        return ctx.failed(e);
    }
    let id = page::encode(f.name.trim());
    let mut notice = format!("campaign {} created", f.name.trim());
    if f.start.as_deref() == Some("true") {
        match ctx
            .post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
            .await
        {
            Ok(_) => notice.push_str(" and started"),
            Err(e) => return ctx.failed(e),
        }
    }
    page::back_with_notice(&ctx, &format!("/ui/campaigns/{id}"), &notice)
}

/// `GET /ui/campaigns/{id}`.
pub(crate) async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let c = match ctx
        .get(&format!(
            "/api/v1/campaigns/{}?devices=true",
            page::encode(&id)
        ))
        .await
    {
        Ok(c) => c,
        Err(f) => return ctx.failed(f),
    };
    let e = page::encode(&id);
    let body = html! {
        section #campaign data-region {
            (summary_row(&c))
            p.muted { "Created by " (text(&c["created_by"])) " " (when(c["created_at_ms"].as_i64())) "; last change " (when(c["updated_at_ms"].as_i64())) }
            @let devices = c["devices"].as_array().cloned().unwrap_or_default();
            details open[devices.len() <= 50] {
                summary { "Each device's outcome (" (devices.len()) ")" }
                table {
                    thead { tr { th { "Device" } th { "Wave" } th { "Progress" } } }
                    tbody { @for d in devices.iter().take(SHOWN_DEVICES) {
                        @let progress = d["progress"].as_str().map_or_else(|| d["progress"].to_string(), str::to_owned);
                        tr {
                            td { a href={ "/ui/devices/" (page::encode(&text(&d["device"]))) } { (text(&d["device"])) } }
                            td { @if d["wave"].as_i64() == Some(0) { "canary" } @else { (text(&d["wave"])) } }
                            td.bad[progress.contains("fail")].ok[progress.contains("succeed")] { (progress) }
                        }
                    } }
                }
                @if devices.len() > SHOWN_DEVICES { p.muted { "The first " (SHOWN_DEVICES) " are shown; " code { "medsec campaign status " (id) " --devices" } " lists all." } }
            }
        }
        section aria-labelledby="h-controls" {
            h2 #h-controls { "Controls" }
            @for (control, label, danger) in [("start", "Start", false), ("pause", "Pause", false), ("resume", "Resume", false), ("abort", "Abort", true)] {
                form.inline method="post" action={ "/ui/campaigns/" (e) "/" (control) } data-confirm=[danger.then_some("Abort this campaign? Devices not yet updated are not offered the release.")] {
                    (csrf(&ctx))
                    button.danger[danger] type="submit" { (label) }
                }
            }
        }
        details {
            summary { "The campaign as the API answers it" }
            (page::json_block(&c))
        }
    };
    Page::new(&ctx, &format!("Campaign {id}"))
        .live()
        .body(body)
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct ControlForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/campaigns/{id}/{control}`.
pub(crate) async fn control(
    ctx: Ctx,
    Path((id, control)): Path<(String, String)>,
    Form(f): Form<ControlForm>,
) -> Response {
    if let Err(r) = ctx
        .check_csrf(&f.csrf, &format!("campaign.{control}"))
        .await
    {
        return r;
    }
    let e = page::encode(&id);
    match ctx
        .post(
            &format!("/api/v1/campaigns/{e}/{}", page::encode(&control)),
            &json!({}),
        )
        .await
    {
        Ok(_) => page::back_with_notice(
            &ctx,
            &format!("/ui/campaigns/{e}"),
            &format!("campaign {id}: {control} done"),
        ),
        Err(f) => ctx.failed(f),
    }
}
