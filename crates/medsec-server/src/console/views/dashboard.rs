//! The dashboard: the fleet at a glance, what needs attention, campaigns under way, risk. A
//! wall screen: it follows the live stream.

use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::console::Ctx;
use crate::console::page::{self, Page, bars, duration};

fn count(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn tile(label: &str, n: i64, href: &str, hint: Markup) -> Markup {
    html! {
        a.tile.attention[n > 0].fine[n == 0] href=(href) {
            span.n { (n) }
            span { (label) }
            br;
            span.hint { (hint) }
        }
    }
}

fn chart(summary: &Value, key: &str, label: &str, filter: &str) -> Markup {
    let rows: Vec<(String, i64, Option<String>)> = summary
        .get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let href = (k != "(not reported)")
                        .then(|| format!("/ui/devices?{filter}={}", page::encode(k)));
                    (k.clone(), v.as_i64().unwrap_or(0), href)
                })
                .collect()
        })
        .unwrap_or_default();
    bars(label, &rows)
}

/// `GET /ui/`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let (summary, incidents, campaigns, alerts, ranking) = tokio::join!(
        ctx.get("/api/v1/fleet/summary"),
        ctx.get("/api/v1/incidents?open=true&limit=1000"),
        ctx.get("/api/v1/campaigns"),
        ctx.get("/api/v1/alerts?limit=1000"),
        ctx.get("/api/v1/risk/summary"),
    );
    let now = crate::state::now_ms();
    let body = html! {
        section #fleet data-region aria-labelledby="h-fleet" {
            @match &summary {
                Ok(s) => {
                    h2 #h-fleet { (count(s, "devices")) " devices" }
                    div.tiles {
                        (tile("quarantined", count(s, "quarantined"), "/ui/devices?quarantined=true", html!{ "isolated by a playbook" }))
                        (tile("silent", count(s, "silent"), &format!("/ui/devices?silent_for_secs={}", count(s, "silent_for_secs")),
                            html!{ "enrolled, not heard from for " (duration(count(s, "silent_for_secs") * 1000)) }))
                        (tile("certificates expiring", count(s, "certificates_expiring"),
                            &format!("/ui/devices?certificate_expires_within_days={}", count(s, "certificate_expires_within_days")),
                            html!{ "within " (count(s, "certificate_expires_within_days")) " days" }))
                        @if let Ok(list) = &incidents {
                            @let open = list.as_array().map_or(0, Vec::len) as i64;
                            @let next = next_deadline(list);
                            (tile("open incidents", open, "/ui/incidents", html!{
                                @if let Some((id, report, due)) = &next {
                                    "next: " (report) " for " (id) " in " (duration(due - now))
                                } @else { "no reporting clock running" }
                            }))
                        }
                        @if let Ok(list) = &campaigns {
                            @let stopped = list.as_array().map_or(0, |a| a.iter().filter(|c| matches!(status(c), "halted" | "aborted")).count()) as i64;
                            (tile("halted updates", stopped, "/ui/campaigns?status=halted", html!{ "campaigns stopped by failures" }))
                        }
                        @if let Ok(list) = &alerts {
                            @let open = list.as_array().map_or(0, |a| a.iter().filter(|x| x["acknowledged"].is_null() && x["suppressed_by"].is_null()).count()) as i64;
                            (tile("unacknowledged alerts", open, "/ui/alerts?unacknowledged=true", html!{ "of the latest 1,000" }))
                        }
                        @if let Ok(r) = &ranking {
                            @let high = count(&r["by_priority"], "critical") + count(&r["by_priority"], "high");
                            (tile("devices at high or critical risk", high, "/ui/risk", html!{ "worst open finding, clinically weighted" }))
                            (tile("devices with known-exploited findings", count(r, "known_exploited"), "/ui/risk", html!{ "open, on CISA's KEV list" }))
                            (tile("devices past vendor support", count(r, "replace"), "/ui/risk", html!{ "to be replaced" }))
                        }
                    }
                    div.grid2 {
                        (chart(s, "by_state", "By state", "state"))
                        (chart(s, "by_model", "By model", "model"))
                        (chart(s, "by_version", "By installed version", "version"))
                        @if let Ok(r) = &ranking { (clinical(r)) }
                    }
                }
                Err(f) => { h2 #h-fleet { "Fleet" } (page::unavailable("The fleet summary", f)) }
            }
        }
        section #running data-region aria-labelledby="h-campaigns" {
            h2 #h-campaigns { "Campaigns under way" }
            @match &campaigns {
                Ok(list) => {
                    @let live: Vec<&Value> = list.as_array().map(|a| a.iter().filter(|c| matches!(status(c), "running" | "paused" | "created" | "halted")).collect()).unwrap_or_default();
                    @if live.is_empty() { p.muted { "No campaign is running." } }
                    @for c in live { (super::campaigns::summary_row(c)) }
                }
                Err(f) => (page::unavailable("Campaigns", f)),
            }
        }
        section #incidents data-region aria-labelledby="h-incidents" {
            h2 #h-incidents { "Open incidents" }
            @match &incidents {
                Ok(list) => (super::incidents::table(list, now)),
                Err(f) => (page::unavailable("Incidents", f)),
            }
        }
    };
    Page::new(&ctx, "Dashboard")
        .live()
        .body(body)
        .into_response()
}

/// A campaign's status name.
pub(crate) fn status(c: &Value) -> &str {
    c["status"]["status"].as_str().unwrap_or("")
}

/// The soonest reporting deadline of the open incidents: (incident, report, due).
fn next_deadline(list: &Value) -> Option<(String, String, i64)> {
    list.as_array()?
        .iter()
        .flat_map(|i| {
            i["clocks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |c| {
                    Some((
                        i["id"].as_str()?.to_owned(),
                        c["report"].as_str()?.to_owned(),
                        c["due_at_ms"].as_i64()?,
                    ))
                })
        })
        .min_by_key(|(_, _, due)| *due)
}

/// Risk by clinical class: each class's devices by the priority of their worst open finding.
fn clinical(r: &Value) -> Markup {
    let classes = r["by_clinical"].as_object().cloned().unwrap_or_default();
    html! {
        table.bars {
            caption { "Risk by clinical class" }
            @if classes.is_empty() {
                tbody { tr { td.muted { "no device scored yet (a model profile and a release SBOM are needed)" } } }
            } @else {
                thead { tr { th { "Class" } @for p in PRIORITIES { th.num { (p) } } } }
                tbody { @for (class, counts) in &classes {
                    tr { th scope="row" { (class) } @for p in PRIORITIES { td.num { (count(counts, p)) } } }
                } }
            }
        }
    }
}

/// Risk priorities, worst first.
const PRIORITIES: [&str; 5] = ["critical", "high", "medium", "low", "none"];
