//! Releases: the image repository's signed targets as devices verify them, with their SBOM,
//! the devices running them and the release check.

use axum::response::{IntoResponse, Response};
use maud::html;

use crate::console::Ctx;
use crate::console::page::{self, Page, text};

/// `GET /ui/releases`.
pub(crate) async fn list(ctx: Ctx) -> Response {
    let answer = ctx.get("/api/v1/releases").await;
    let body = html! {
        @match &answer {
            Ok(list) => {
                p.hint { "Each release is read through the TUF client from the published image repository, as a device reads it: only what a threshold of keys signed is listed." }
                table {
                    thead { tr { th { "Target" } th { "Version" } th.num { "Release counter" } th { "Hardware ids" } th.num { "Devices running it" } th { "SBOM" } th { "Release check" } } }
                    tbody { @for r in list.as_array().into_iter().flatten() {
                        @let verdict = text(&r["check"]["verdict"]);
                        tr {
                            td { code { (text(&r["target"])) } br; span.muted { (text(&r["length"])) " bytes, sha256 " (text(&r["sha256"]).chars().take(16).collect::<String>()) "…" } }
                            td { (text(&r["version"])) }
                            td.num { (text(&r["release_counter"])) }
                            td { (r["hardware_ids"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                            td.num { a href={ "/ui/devices?version=" (page::encode(&text(&r["version"]))) } { (text(&r["devices_running"])) } }
                            td { @if r["sbom_signed"].is_null() { span.warn { "no SBOM digest signed" } } @else { (text(&r["sbom_signed"]["format"])) ", " (text(&r["sbom_signed"]["components"])) " components, digest signed" } }
                            td {
                                span class=(match verdict.as_str() { "pass" => "ok", "blocked" => "bad", _ => "warn" }) { (verdict) }
                                @for (sev, n) in r["check"]["open_by_severity"].as_object().into_iter().flatten() { br; span.muted { (text(n)) " open " (sev) } }
                                @for a in r["check"]["blocking"].as_array().into_iter().flatten() { br; span.bad { "blocks: " (text(a)) } }
                            }
                        }
                    } }
                }
            }
            Err(f) => (page::unavailable("Releases", f)),
        }
    };
    Page::new(&ctx, "Releases").body(body).into_response()
}
