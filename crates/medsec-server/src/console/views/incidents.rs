//! Incidents: the list with reporting clocks, one incident's page with its phase, playbook
//! buttons per device and the clocks counting down.

use axum::Form;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::Ctx;
use crate::console::page::{self, Page, csrf, duration, severity, text, when};

/// An incident's phases, in order (`medsec_defender::incident::Phase`).
const PHASES: &[&str] = &[
    "detected",
    "analysing",
    "contained",
    "eradicated",
    "recovered",
    "closed",
];

/// A table of incidents.
pub(crate) fn table(list: &Value, now: i64) -> Markup {
    let rows = list.as_array().cloned().unwrap_or_default();
    html! {
        @if rows.is_empty() { p.muted { "No incidents." } } @else {
            table {
                thead { tr { th { "Incident" } th { "Severity" } th { "Phase" } th { "Devices" } th { "Opened" } th { "Next report due" } } }
                tbody {
                    @for i in &rows {
                        @let next = i["clocks"].as_array().into_iter().flatten().filter_map(|c| Some((c["report"].as_str()?.to_owned(), c["due_at_ms"].as_i64()?))).min_by_key(|c| c.1);
                        tr {
                            td { a href={ "/ui/incidents/" (page::encode(&text(&i["id"]))) } { (text(&i["id"])) } br; span.muted { (text(&i["title"])) } }
                            td { (severity(i["severity"].as_str().unwrap_or(""))) }
                            td { (text(&i["phase"])) }
                            td { (i["devices"].as_array().map(|d| d.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                            td { (when(i["opened_at_ms"].as_i64())) }
                            td { @if let Some((report, due)) = next { (report) ": " (duration(due - now)) } @else { span.muted { "not confirmed" } } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/incidents`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    let answer = ctx.get("/api/v1/incidents?limit=500").await;
    let now = crate::state::now_ms();
    let body = html! {
        section #incident-list data-region {
            @match &answer { Ok(l) => (table(l, now)), Err(f) => (page::unavailable("Incidents", f)) }
        }
    };
    Page::new(&ctx, "Incidents")
        .live()
        .body(body)
        .into_response()
}

/// `GET /ui/incidents/{id}`.
pub(crate) async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let i = match ctx
        .get(&format!("/api/v1/incidents/{}", page::encode(&id)))
        .await
    {
        Ok(i) => i,
        Err(f) => return ctx.failed(f),
    };
    let now = crate::state::now_ms();
    let form = |label: &str, fields: Markup, danger: bool| {
        html! {
            form.inline method="post" action={ "/ui/incidents/" (page::encode(&id)) } data-confirm=[danger.then(|| format!("{label}?"))] {
                (csrf(&ctx))
                (fields)
                button.danger[danger] type="submit" { (label) }
            }
        }
    };
    let body = html! {
        section #incident data-region {
            p { (severity(i["severity"].as_str().unwrap_or(""))) " " strong { (text(&i["title"])) } " — phase " strong { (text(&i["phase"])) } }
            h2 { "Reporting clocks" }
            @let clocks = i["clocks"].as_array().cloned().unwrap_or_default();
            @if clocks.is_empty() { p.muted { "The clocks start when the incident is confirmed." } }
            @else {
                table {
                    thead { tr { th { "Report" } th { "Due" } th { "Time left" } th { "Basis" } } }
                    tbody { @for c in &clocks {
                        @let due = c["due_at_ms"].as_i64().unwrap_or(0);
                        tr { td { (text(&c["report"])) } td { (when(Some(due))) } td.bad[due < now] { (duration(due - now)) } td { (text(&c["basis"])) } }
                    } }
                }
            }
            h2 { "Alerts" }
            ul { @for a in i["alerts"].as_array().into_iter().flatten() {
                li { (severity(a["severity"].as_str().unwrap_or(""))) " " (text(&a["rule"])) " on " a href={ "/ui/devices/" (page::encode(&text(&a["device"]))) } { (text(&a["device"])) } " " (when(a["raised_at_ms"].as_i64())) }
            } }
            h2 { "Actions taken" }
            ul { @for a in i["actions"].as_array().into_iter().flatten() {
                li { (text(&a["playbook"])) " on " (text(&a["device"])) " by " (text(&a["by"])) " " (when(a["at_ms"].as_i64())) ": " (text(&a["detail"])) }
            } }
        }
        section aria-labelledby="h-response" {
            h2 #h-response { "Response" }
            @if i["confirmation"].is_null() {
                (form("Confirm incident", html!{
                    input type="hidden" name="action" value="confirm";
                    label for="cra" { "EU CRA reporting" }
                    select #cra name="cra" {
                        option value="" { "not reportable" }
                        option value="severe_incident" { "severe incident" }
                        option value="exploited_vulnerability" { "actively exploited vulnerability" }
                    }
                    label for="pd" { "Health data may be affected" }
                    input #pd type="checkbox" name="personal_data" value="true";
                }, false))
            }
            @let current = PHASES.iter().position(|p| i["phase"].as_str() == Some(*p)).unwrap_or(0);
            @for phase in PHASES.iter().skip(current + 1) {
                (form(&format!("Move to {phase}"), html!{
                    input type="hidden" name="action" value="phase";
                    input type="hidden" name="phase" value=(phase);
                }, false))
            }
            h3 { "Playbooks" }
            @for d in i["devices"].as_array().into_iter().flatten() {
                @let dev = text(d);
                p { strong { (dev) } }
                @for (playbook, label, danger) in [("quarantine", "Quarantine", true), ("release", "Release", false), ("revoke", "Revoke", true), ("cancel_update", "Cancel forced update", false)] {
                    (form(&format!("{label} {dev}"), html!{
                        input type="hidden" name="action" value="playbook";
                        input type="hidden" name="playbook" value=(playbook);
                        input type="hidden" name="device" value=(dev);
                    }, danger))
                }
            }
        }
    };
    Page::new(&ctx, &format!("Incident {id}"))
        .live()
        .body(body)
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct CommandForm {
    #[serde(default)]
    csrf: String,
    action: String,
    phase: Option<String>,
    cra: Option<String>,
    personal_data: Option<String>,
    playbook: Option<String>,
    device: Option<String>,
}

/// `POST /ui/incidents/{id}`: one command, as the API takes it.
pub(crate) async fn command(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CommandForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf, "incident.manage").await {
        return r;
    }
    let body = match form.action.as_str() {
        "confirm" => json!({
            "action": "confirm",
            "cra": form.cra.filter(|c| !c.is_empty()),
            "personal_data": form.personal_data.as_deref() == Some("true"),
        }),
        "phase" => json!({"action": "phase", "phase": form.phase}),
        "playbook" => {
            json!({"action": "playbook", "playbook": form.playbook, "device": form.device})
        }
        other => json!({"action": other}),
    };
    let e = page::encode(&id);
    match ctx.post(&format!("/api/v1/incidents/{e}"), &body).await {
        Ok(answer) => {
            let last = answer["actions"]
                .as_array()
                .and_then(|a| a.last())
                .map(|a| text(&a["detail"]))
                .unwrap_or_default();
            let notice = match form.action.as_str() {
                "confirm" => "Incident confirmed: its reporting clocks run.".to_owned(),
                "phase" => format!("Moved to {}.", text(&answer["phase"])),
                "playbook" => format!(
                    "{} on {}: done ({last}).",
                    form.playbook.unwrap_or_default(),
                    form.device.unwrap_or_default()
                ),
                other => format!("{other}: done."),
            };
            page::back_with_notice(&ctx, &format!("/ui/incidents/{e}"), &notice)
        }
        Err(f) => ctx.failed(f),
    }
}
