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

/// `GET /ui/campaigns/new`.
pub(crate) async fn form(ctx: Ctx) -> Response {
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
        form.stack method="post" action="/ui/campaigns" {
            (csrf(&ctx))
            (field("name", "Name", "", "a new campaign's id, e.g. fw-1.3", true))
            fieldset {
                legend { "Release (as signed in the image repository)" }
                (field("target", "Target file", "", "e.g. fleet-fw-1.3.0.img", true))
                (field("version", "Version", "", "the version signed into the target", true))
                (field("release_counter", "Release counter", "", "anti-rollback counter signed into the target", true))
            }
            fieldset {
                legend { "Devices" }
                (field("model", "Model", "", "only this model (empty: any)", false))
                (field("site", "Site", "", "only this site (empty: any)", false))
                (field("group", "Group", "", "only this group (empty: any)", false))
                div {
                    input #c-all type="checkbox" name="all" value="true";
                    label for="c-all" { "All devices (when no filter above is set)" }
                }
            }
            fieldset {
                legend { "Waves" }
                (field("canary", "Canary devices", "5", "devices in the first wave", true))
                (field("growth", "Growth", "2", "each later wave is this many times the last", true))
                (field("max_failure_rate", "Halt above failure rate", "0.1", "a wave failing on more than this share halts the campaign", true))
            }
            div {
                input #c-start type="checkbox" name="start" value="true" checked;
                label for="c-start" { "Start it now" }
            }
            button type="submit" { "Create campaign" }
        }
        p.hint { "Devices in clinical use defer installation until therapy ends; windows per site are set through the API or " code { "medsec campaign create" } " (docs/campaigns.md)." }
    };
    Page::new(&ctx, "New campaign").body(body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    name: String,
    target: String,
    version: String,
    release_counter: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    group: String,
    all: Option<String>,
    canary: String,
    growth: String,
    max_failure_rate: String,
    start: Option<String>,
}

fn bad(ctx: &Ctx, message: String) -> Response {
    ctx.failed(crate::console::session::Failure {
        status: StatusCode::BAD_REQUEST,
        message,
    })
}

/// `POST /ui/campaigns`: creates (and starts) a campaign.
pub(crate) async fn create(ctx: Ctx, Form(f): Form<CreateForm>) -> Response {
    if let Err(r) = ctx.check_csrf(&f.csrf, "campaign.create").await {
        return r;
    }
    let Ok(counter) = f.release_counter.trim().parse::<i64>() else {
        return bad(
            &ctx,
            format!(
                "release counter {:?} is not a whole number",
                f.release_counter
            ),
        );
    };
    let Ok(canary) = f.canary.trim().parse::<u32>() else {
        return bad(
            &ctx,
            format!("canary {:?} is not a number of devices", f.canary),
        );
    };
    let (Ok(growth), Ok(rate)) = (
        f.growth.trim().parse::<f64>(),
        f.max_failure_rate.trim().parse::<f64>(),
    ) else {
        return bad(&ctx, "growth and failure rate must be numbers".into());
    };
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let request = json!({
        "spec": {
            "name": f.name.trim(),
            "release": {"version": f.version.trim(), "release_counter": counter, "target": f.target.trim()},
            "canary": {"count": canary},
            "growth": growth,
            "max_failure_rate": rate,
        },
        "selection": {
            "all": f.all.as_deref() == Some("true"),
            "model": opt(&f.model), "site": opt(&f.site), "group": opt(&f.group),
        }
    });
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
        .get(&format!("/api/v1/campaigns/{}", page::encode(&id)))
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
