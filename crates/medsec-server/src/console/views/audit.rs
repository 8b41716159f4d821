//! The audit log: entries searched by principal, action, decision and time; one entry with its
//! inclusion proof under the signed tree head; the whole log verified in place.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::console::Ctx;
use crate::console::page::{self, Page, csrf, text, when};
use crate::console::session::CsrfOnly;

/// How many entries one search reads back from its starting point.
const SEARCH_WINDOW: u64 = 1000;
const SHOWN: usize = 100;

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    principal: Option<String>,
    action: Option<String>,
    decision: Option<String>,
    /// Search entries up to this sequence number (default: the newest).
    before: Option<u64>,
    /// Only entries at or after this moment (RFC 3339, or a date: UTC midnight).
    since: Option<String>,
    /// Only entries before this moment.
    until: Option<String>,
}

/// A moment typed in the search form: RFC 3339, or `YYYY-MM-DD` (UTC midnight), or
/// `YYYY-MM-DDTHH:MM` (UTC); `None` when empty, an error naming the text otherwise.
fn moment(text: Option<&str>) -> Result<Option<i64>, String> {
    use time::format_description::well_known::Rfc3339;
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else if t.len() == 16 {
        format!("{t}:00Z")
    } else {
        t.to_owned()
    };
    time::OffsetDateTime::parse(&full, &Rfc3339)
        .map(|d| Some((d.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            format!("{t:?} is not a time: write 2026-12-07, 2026-12-07T14:30 (UTC) or RFC 3339")
        })
}

fn matches(e: &Value, q: &Search) -> bool {
    let has = |field: &str, want: &Option<String>| {
        want.as_deref().is_none_or(|w| {
            w.is_empty() || e["event"][field].as_str().is_some_and(|v| v.contains(w))
        })
    };
    has("principal", &q.principal) && has("action", &q.action) && has("decision", &q.decision)
}

/// `GET /ui/audit`.
pub(crate) async fn list(ctx: Ctx, Query(q): Query<Search>) -> Response {
    let head = match ctx.get("/api/v1/audit/head").await {
        Ok(h) => h,
        Err(f) => return ctx.failed(f),
    };
    let size = head["head"]["tree_size"].as_u64().unwrap_or(0);
    let end = q.before.unwrap_or(size).min(size);
    let start = end.saturating_sub(SEARCH_WINDOW);
    // Sequence numbers count from 1; the API reads pages of at most 1,000 from `from`.
    let entries = match ctx
        .get(&format!(
            "/api/v1/audit/entries?from={}&limit={}",
            start + 1,
            end - start
        ))
        .await
    {
        Ok(v) => v,
        Err(f) => return ctx.failed(f),
    };
    let (since, until) = match (moment(q.since.as_deref()), moment(q.until.as_deref())) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(why), _) | (_, Err(why)) => {
            return ctx.failed(crate::console::session::Failure {
                status: axum::http::StatusCode::BAD_REQUEST,
                message: why,
            });
        }
    };
    let found: Vec<&Value> = entries
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter(|e| matches(e, &q))
        .filter(|e| {
            let t = e["time_ms"].as_i64().unwrap_or(0);
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
        })
        .take(SHOWN)
        .collect();
    let field = |name: &str, label: &str, value: &Option<String>| {
        page::filter_text("a", name, label, value.as_deref())
    };
    let decisions = ["allow", "deny", "info"].map(|d| (d, d));
    let body = html! {
        section aria-labelledby="h-head" {
            h2 #h-head { "Signed tree head" }
            p { (size) " entries; root " code { (text(&head["head"]["root_hash"])) } ", signed " (when(head["head"]["timestamp_ms"].as_i64())) " (" (text(&head["scheme"])) ")." }
            form.inline method="post" action="/ui/audit/verify" {
                (csrf(&ctx))
                button type="submit" { "Verify the whole log now" }
            }
        }
        form.filters method="get" action="/ui/audit" role="search" aria-label="Search the audit log" {
            (field("principal", "Principal contains", &q.principal))
            (field("action", "Action contains", &q.action))
            (field("since", "From (UTC)", &q.since))
            (field("until", "Until (UTC)", &q.until))
            (page::filter_choice("a", "decision", "Decision", "any", &decisions, q.decision.as_deref()))
            button type="submit" { "Search" }
        }
        p.muted { "Entries " (start + 1) " to " (end) " searched, newest first; " (found.len()) " shown." }
        table {
            thead { tr { th.num { "#" } th { "Time" } th { "Principal" } th { "Action" } th { "Resource" } th { "Decision" } th { "Detail" } } }
            tbody { @for e in &found {
                tr {
                    td.num { a href={ "/ui/audit/" (text(&e["seq"])) } { (text(&e["seq"])) } }
                    td { (when(e["time_ms"].as_i64())) }
                    td { (text(&e["event"]["principal"])) }
                    td { (text(&e["event"]["action"])) }
                    td { (text(&e["event"]["resource"])) }
                    td { span class=(match e["event"]["decision"].as_str() { Some("deny") => "bad", Some("allow") => "ok", _ => "muted" }) { (text(&e["event"]["decision"])) } }
                    td { (text(&e["event"]["detail"])) }
                }
            } }
        }
        @if start > 0 {
            @let keep = |v: &Option<String>| page::encode(v.as_deref().unwrap_or(""));
            @let more = format!("/ui/audit?before={start}&principal={}&action={}&decision={}&since={}&until={}",
                keep(&q.principal), keep(&q.action), keep(&q.decision), keep(&q.since), keep(&q.until));
            p { a href=(more) { "Search older entries" } }
        }
    };
    Page::new(&ctx, "Audit log").body(body).into_response()
}

/// `GET /ui/audit/{seq}`: one entry, proved to be in the log under the newest signed head.
pub(crate) async fn show(ctx: Ctx, Path(seq): Path<u64>) -> Response {
    let proof = match ctx
        .get(&format!("/api/v1/audit/proof/inclusion?seq={seq}"))
        .await
    {
        Ok(p) => p,
        Err(f) => return ctx.failed(f),
    };
    let checked = check(&ctx, seq, &proof);
    let entry: Value =
        serde_json::from_str(proof["entry"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    let body = html! {
        @match &checked {
            Ok(text) => p.notice role="status" { "Verified: " (text) },
            Err(text) => p.failure role="alert" { "NOT verified: " (text) },
        }
        h2 { "Entry" }
        (page::json_block(&entry))
        h2 { "Inclusion proof" }
        p { "Tree of " (text(&proof["head"]["head"]["tree_size"])) " entries, root " code { (text(&proof["head"]["head"]["root_hash"])) } ", " (proof["proof"].as_array().map_or(0, Vec::len)) " hashes:" }
        ol { @for h in proof["proof"].as_array().into_iter().flatten() { li { code { (text(h)) } } } }
        h2 { "Signed tree head" }
        (page::json_block(&proof["head"]))
        p.hint { "To check it away from this server, with a copy of the log's public key: " code { "medsec audit proof " (seq) " --key audit.pub" } }
    };
    Page::new(&ctx, &format!("Audit entry {seq}"))
        .body(body)
        .into_response()
}

/// Checks a proof here, as `medsec audit proof` does on a laptop: the head's signature under
/// the log's key, then the entry's leaf hash up the path to the signed root.
fn check(ctx: &Ctx, seq: u64, v: &Value) -> Result<String, String> {
    let p: crate::audit_log::InclusionProof =
        serde_json::from_value(v.clone()).map_err(|e| format!("the proof does not parse: {e}"))?;
    let key = crate::audit_log::read_public_key(
        &crate::DataDir::new(&ctx.state.config.data_dir).audit_pub(),
    )
    .map_err(|e| format!("the log's public key: {e}"))?;
    let head = p
        .head
        .verify(&key)
        .map_err(|e| format!("the head's signature: {e}"))?;
    let hash = |h: &str| -> Result<medsec_audit::Hash, String> {
        hex::decode(h)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{h:?} is not a SHA-256 hash"))
    };
    let path = p
        .proof
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    if p.seq != seq {
        return Err(format!(
            "the server proved entry {} instead of {seq}",
            p.seq
        ));
    }
    medsec_audit::verify_inclusion(
        &medsec_audit::leaf_hash(p.entry.as_bytes()),
        seq,
        head.tree_size,
        &path,
        &hash(&head.root_hash)?,
    )
    .map_err(|e| format!("entry {seq} is not in the signed tree: {e}"))?;
    Ok(format!(
        "entry {seq} is in the log of {} entries under a head signed by the log's key",
        head.tree_size
    ))
}

/// `POST /ui/audit/verify`: the server verifies the whole log (hash chain and every head).
pub(crate) async fn verify(ctx: Ctx, Form(f): Form<CsrfOnly>) -> Response {
    if let Err(r) = ctx.check_csrf(&f.csrf, "audit.verify").await {
        return r;
    }
    match ctx.call(Method::GET, "/api/v1/audit/verify", None).await {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let findings = v["findings"].as_array().map_or(0, Vec::len);
            let text = if findings == 0 {
                format!(
                    "the audit log verifies: {} entries, {} signed heads, root {}",
                    text(&v["entries"]),
                    text(&v["heads"]),
                    text(&v["root_hash"])
                )
            } else {
                format!(
                    "the audit log does NOT verify: {findings} finding(s): {}",
                    v["findings"]
                )
            };
            page::back_with_notice(&ctx, "/ui/audit", &text)
        }
        Err(f) => ctx.failed(f),
    }
}
