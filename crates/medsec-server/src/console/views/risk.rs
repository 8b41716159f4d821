//! Risk: the fleet ranked by clinically weighted device risk, and a device's findings with the
//! score's factors and VEX status.

use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::console::Ctx;
use crate::console::page::{self, Page, severity, text};

/// A device's findings (`GET /api/v1/devices/{id}/findings`), each with its score's factors.
pub(crate) fn findings_table(v: &Value) -> Markup {
    let findings: Vec<&Value> = v["findings"]
        .as_array()
        .or_else(|| v.as_array())
        .into_iter()
        .flatten()
        .collect();
    html! {
        @if let Some(note) = v["note"].as_str().or(v["status"].as_str()) { p.muted { (note) } }
        @if findings.is_empty() { p.muted { "No findings for the release this device reports." } } @else {
            table {
                thead { tr { th { "Advisory" } th { "Component" } th { "Status" } th { "Score" } th { "Why" } } }
                tbody { @for f in findings {
                    tr {
                        td { (text(&f["advisory"])) }
                        td { (text(&f["component"]["name"])) " " (text(&f["component"]["version"])) }
                        td { (text(&f["status"])) @if let Some(vex) = f["vex"]["status"].as_str() { br; span.muted { "VEX: " (vex) } } }
                        td { @if let Some(p) = f["score"]["priority"].as_str() { (severity(p)) " " } (text(&f["score"]["score"])) }
                        td { @for factor in f["score"]["factors"].as_array().into_iter().flatten() {
                            span.muted { (text(&factor["name"])) ": " (text(&factor["effect"])) " " (text(&factor["why"])) } br;
                        } }
                    }
                } }
            }
        }
    }
}

/// `GET /ui/risk`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let ranking = ctx.get("/api/v1/risk/devices?limit=200").await;
    let body = html! {
        section #ranking data-region {
            @match &ranking {
                Ok(r) => {
                    p { (text(&r["ranked"])) " devices scored; "
                        (r["unscored_no_model_profile"].as_array().map_or(0, Vec::len)) " without a model profile (not scored); "
                        (text(&r["no_release_sbom"])) " whose release has no SBOM or that never reported." }
                    table {
                        thead { tr { th { "Device" } th { "Model" } th { "Site" } th { "Release" } th { "Priority" } th.num { "Score" } th.num { "Open findings" } th { "Worst" } } }
                        tbody { @for d in r["devices"].as_array().into_iter().flatten() {
                            tr {
                                td { a href={ "/ui/devices/" (page::encode(&text(&d["device"]))) "#findings" } { (text(&d["device"])) }
                                     @if d["replace"].as_bool().unwrap_or(false) { " " span.badge.warn { "past support" } } }
                                td { (text(&d["model"])) } td { (text(&d["site"])) } td { (text(&d["release"])) }
                                td { (severity(d["risk"]["priority"].as_str().unwrap_or("none"))) }
                                td.num { (text(&d["risk"]["score"])) } td.num { (text(&d["risk"]["open"])) }
                                td { (text(&d["risk"]["advisory"])) " " span.muted { (text(&d["risk"]["component"])) } }
                            }
                        } }
                    }
                }
                Err(f) => (page::unavailable("The risk ranking", f)),
            }
        }
        p.hint { "SBOMs, advisories and VEX are uploaded with " code { "medsec sbom|advisory|vex upload" } " or the API (docs/risk.md)." }
    };
    Page::new(&ctx, "Risk").live().body(body).into_response()
}
