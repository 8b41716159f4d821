//! Risk: the fleet ranked by clinically weighted device risk, and a device's findings with the
//! score's factors and VEX status.

use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::console::Ctx;
use axum::Form;
use serde::Deserialize;

use crate::console::page::{self, Page, csrf, severity, text};

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
        section aria-labelledby="h-upload" {
            h2 #h-upload { "Upload an advisory, VEX or SBOM" }
            form.stack method="post" action="/ui/risk/upload" {
                (csrf(&ctx))
                div {
                    label for="u-kind" { "Document" }
                    select #u-kind name="kind" {
                        option value="advisory" { "advisory: OSV, CSAF 2.0, or the CISA KEV catalogue" }
                        option value="vex" { "VEX: CycloneDX, OpenVEX or CSAF" }
                        option value="sbom" { "SBOM of a release (CycloneDX or SPDX JSON)" }
                    }
                }
                div {
                    label for="u-target" { "Release target (SBOM only)" }
                    input #u-target name="target" placeholder="fleet-fw-1.3.1.img" aria-describedby="u-target-hint";
                    span.hint #u-target-hint { "its SHA-256 must be the one signed into the target (repo add-target --sbom)" }
                }
                div {
                    label for="u-file" { "File (read here, in the browser)" }
                    input #u-file type="file" accept=".json,application/json" data-fills="u-document";
                }
                div {
                    label for="u-document" { "Document (JSON)" }
                    textarea #u-document name="document" rows="6" required {}
                }
                div { button type="submit" { "Upload" } }
            }
            p.hint { "The same checks as " code { "medsec advisory|vex|sbom upload" } " and the API (docs/risk.md): a document that does not validate is refused, naming the problem." }
        }
    };
    Page::new(&ctx, "Risk").live().body(body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct UploadForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    #[serde(default)]
    target: String,
    document: String,
}

/// `POST /ui/risk/upload`: the document to the API route the CLI uses.
pub(crate) async fn upload(ctx: Ctx, Form(f): Form<UploadForm>) -> Response {
    if let Err(r) = ctx.check_csrf(&f.csrf, "risk.write").await {
        return r;
    }
    let (method, uri) = match f.kind.as_str() {
        "advisory" => (
            axum::http::Method::POST,
            "/api/v1/risk/advisories".to_owned(),
        ),
        "vex" => (axum::http::Method::POST, "/api/v1/risk/vex".to_owned()),
        "sbom" if !f.target.trim().is_empty() => (
            axum::http::Method::PUT,
            format!("/api/v1/risk/sboms/{}", page::encode(f.target.trim())),
        ),
        other => {
            return ctx.failed(crate::console::session::Failure {
                status: axum::http::StatusCode::BAD_REQUEST,
                message: if other == "sbom" {
                    "an SBOM needs the release target it belongs to".into()
                } else {
                    format!("no document kind {other:?}: advisory, vex or sbom")
                },
            });
        }
    };
    let body = Some(("application/json", f.document.into_bytes()));
    match ctx.send(method, &uri, body).await {
        Ok(answer) => {
            let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            page::back_with_notice(
                &ctx,
                "/ui/risk",
                &format!("{} stored. {}", f.kind, super::devices::summary(&v)),
            )
        }
        Err(e) => ctx.failed(e),
    }
}
