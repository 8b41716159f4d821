//! Compliance: the live report (controls, status, evidence, gaps and what would close them)
//! and its files for download.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use crate::console::Ctx;
use crate::console::page::{Page, text};
use crate::console::session::Failure;

/// The report as the API answers it: its JSON parsed, its HTML, its bundle.
async fn report(ctx: &Ctx) -> Result<(Value, Value), Failure> {
    let answer = ctx.get("/api/v1/reports/compliance").await?;
    let report: Value = serde_json::from_str(answer["report_json"].as_str().unwrap_or("null"))
        .map_err(|e| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the report does not parse: {e}"),
        })?;
    Ok((report, answer))
}

/// `GET /ui/compliance`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let (report, answer) = match report(&ctx).await {
        Ok(r) => r,
        Err(f) => return ctx.failed(f),
    };
    let s = &report["summary"];
    let body = html! {
        p { "As of " (text(&report["as_of"])) ": "
            strong.ok { (text(&s["evidenced"])) " evidenced" } ", " strong.warn { (text(&s["partial"])) " partial" } ", " strong.bad { (text(&s["gap"])) " gaps" } "." }
        p { "Download: "
            a href="/ui/compliance/report.html" download { "report (HTML)" } " · "
            a href="/ui/compliance/report.json" download { "report (JSON)" } " · "
            a href="/ui/compliance/bundle.json" download { "SBOM + VEX bundle" }
            " (" (answer["bundle"].as_array().map_or(0, Vec::len)) " files)" }
        table {
            thead { tr { th { "Control" } th { "Framework" } th { "Requirement" } th { "Status" } th { "Evidence, and what would close a gap" } } }
            tbody { @for c in report["controls"].as_array().into_iter().flatten() {
                tr {
                    td { strong { (text(&c["clause"])) } br; (text(&c["title"])) }
                    td { (text(&c["framework"])) }
                    td { (text(&c["requirement"])) }
                    td { @let st = text(&c["status"]); span class=(match st.as_str() { "evidenced" => "ok", "partial" => "warn", _ => "bad" }) { (st) } }
                    td { @for kind in c["evidence"].as_array().into_iter().flatten() {
                        @let a = &report["assessments"][text(kind)];
                        details {
                            summary { (text(kind)) }
                            ul {
                                @for f in a["facts"].as_array().into_iter().flatten() { li { (text(f)) } }
                                @for w in a["warnings"].as_array().into_iter().flatten() { li.warn { "warning: " (text(w)) } }
                                @for g in a["gaps"].as_array().into_iter().flatten() { li.bad { "gap: " (text(g)) } }
                            }
                        }
                    } }
                }
            } }
        }
    };
    Page::new(&ctx, "Compliance").body(body).into_response()
}

/// `GET /ui/compliance/{file}`: `report.html`, `report.json` or `bundle.json` (the bundle's
/// files by name, the same bytes `medsec report compliance` writes).
pub(crate) async fn download(ctx: Ctx, Path(file): Path<String>) -> Response {
    let (_, answer) = match report(&ctx).await {
        Ok(r) => r,
        Err(f) => return ctx.failed(f),
    };
    let (kind, body) = match file.as_str() {
        "report.html" => ("text/html; charset=utf-8", text(&answer["html"])),
        "report.json" => ("application/json", text(&answer["report_json"])),
        "bundle.json" => (
            "application/json",
            serde_json::to_string_pretty(&answer["bundle"]).unwrap_or_default(),
        ),
        _ => {
            return ctx.failed(Failure {
                status: StatusCode::NOT_FOUND,
                message: format!("no report file {file:?}"),
            });
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"medsec-compliance-{file}\""),
            ),
            // The HTML report is a document of its own: it runs no script and loads nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox".to_owned(),
            ),
        ],
        body,
    )
        .into_response()
}
