//! Alerts: the triage list (severity, rule, ATT&CK technique, evidence) and acknowledgement.

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::Ctx;
use crate::console::page::{self, Page, csrf, severity, text, when};

#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    unacknowledged: Option<String>,
    severity: Option<String>,
}

/// `GET /ui/alerts`.
pub(crate) async fn list(ctx: Ctx, Query(f): Query<Filter>) -> Response {
    let answer = ctx.get("/api/v1/alerts?limit=500").await;
    let only_open = f.unacknowledged.as_deref() == Some("true");
    let body = html! {
        form.filters method="get" action="/ui/alerts" role="search" aria-label="Filter alerts" {
            (page::filter_choice("f", "severity", "Severity", "any", &["critical", "high", "medium", "low"].map(|s| (s, s)), f.severity.as_deref()))
            (page::filter_choice("f", "unacknowledged", "Show", "all", &[("true", "unacknowledged only")], f.unacknowledged.as_deref()))
            button type="submit" { "Filter" }
        }
        section #alert-list data-region {
            @match &answer {
                Ok(list) => {
                    @let rows: Vec<Value> = list.as_array().into_iter().flatten()
                        .filter(|a| !only_open || (a["acknowledged"].is_null() && a["suppressed_by"].is_null()))
                        .filter(|a| f.severity.as_deref().is_none_or(|s| s.is_empty() || a["severity"].as_str() == Some(s)))
                        .cloned().collect();
                    (table(&ctx, &Value::Array(rows)))
                }
                Err(f) => (page::unavailable("Alerts", f)),
            }
        }
    };
    Page::new(&ctx, "Alerts").live().body(body).into_response()
}

/// A table of alerts with their evidence and an acknowledgement form.
pub(crate) fn table(ctx: &Ctx, list: &Value) -> Markup {
    let rows = list.as_array().cloned().unwrap_or_default();
    html! {
        @if rows.is_empty() { p.muted { "No alerts." } } @else {
            table {
                thead { tr { th { "Raised" } th { "Device" } th { "Severity" } th { "Rule" } th { "Technique" } th { "What and evidence" } th { "Status" } } }
                tbody {
                    @for a in &rows {
                        tr id={ "alert-" (text(&a["id"])) } {
                            td { (when(a["raised_at_ms"].as_i64())) }
                            td { a href={ "/ui/devices/" (page::encode(&text(&a["device"]))) } { (text(&a["device"])) } }
                            td { (severity(a["severity"].as_str().unwrap_or(""))) }
                            td { (text(&a["rule"])) @if a["count"].as_i64().unwrap_or(1) > 1 { " ×" (a["count"]) } }
                            td { (text(&a["technique"]["id"])) " " span.muted { (text(&a["technique"]["name"])) } }
                            td {
                                (text(&a["summary"]))
                                @for e in a["evidence"].as_array().into_iter().flatten() {
                                    br; span.muted { (text(&e["feature"])) ": observed " (text(&e["observed"])) ", expected " (text(&e["expected"])) }
                                }
                            }
                            td {
                                @if !a["suppressed_by"].is_null() { "suppressed (" (text(&a["suppressed_by"])) ")" }
                                @else if !a["acknowledged"].is_null() {
                                    "acknowledged by " (text(&a["acknowledged"]["by"])) " " (when(a["acknowledged"]["at_ms"].as_i64()))
                                } @else {
                                    form.inline method="post" action={ "/ui/alerts/" (text(&a["id"])) "/acknowledge" } {
                                        (csrf(ctx))
                                        label for={ "note-" (text(&a["id"])) } { "Note" }
                                        input id={ "note-" (text(&a["id"])) } name="note" maxlength="500";
                                        button type="submit" { "Acknowledge" }
                                    }
                                    details {
                                        summary { "Suppress this rule on this device" }
                                        form.inline method="post" action="/ui/alerts/suppress" {
                                            (csrf(ctx))
                                            input type="hidden" name="rule" value=(text(&a["rule"]));
                                            input type="hidden" name="device" value=(text(&a["device"]));
                                            label for={ "why-" (text(&a["id"])) } { "Reason" }
                                            input id={ "why-" (text(&a["id"])) } name="reason" required maxlength="500";
                                            label for={ "days-" (text(&a["id"])) } { "Days" }
                                            input id={ "days-" (text(&a["id"])) } name="days" value="7" required size="3";
                                            button type="submit" { "Suppress" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /ui/alerts/{id}/acknowledge`.
pub(crate) async fn acknowledge(
    ctx: Ctx,
    Path(id): Path<u64>,
    Form(form): Form<AckForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf, "alert.acknowledge").await {
        return r;
    }
    match ctx
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            &json!({"note": form.note}),
        )
        .await
    {
        Ok(_) => page::back_with_notice(&ctx, "/ui/alerts", &format!("alert {id} acknowledged")),
        Err(f) => ctx.failed(f),
    }
}

#[derive(Deserialize)]
pub(crate) struct SuppressForm {
    #[serde(default)]
    csrf: String,
    rule: String,
    device: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    days: String,
}

/// `POST /ui/alerts/suppress`: suppresses a rule's alerts on one device, with a reason and an
/// expiry (the Defender's suppression, `alert.suppress`).
pub(crate) async fn suppress(ctx: Ctx, Form(form): Form<SuppressForm>) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf, "alert.suppress").await {
        return r;
    }
    let Ok(days) = form.days.trim().parse::<u64>() else {
        return ctx.failed(crate::console::session::Failure {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: format!("{:?} is not a number of days", form.days),
        });
    };
    let body = json!({
        "rule": form.rule, "scope": "device", "value": form.device,
        "reason": form.reason, "duration_secs": days.saturating_mul(86_400),
    });
    match ctx.post("/api/v1/suppressions", &body).await {
        Ok(_) => page::back_with_notice(
            &ctx,
            "/ui/alerts",
            &format!(
                "{} on {} suppressed for {days} days",
                form.rule, form.device
            ),
        ),
        Err(f) => ctx.failed(f),
    }
}
