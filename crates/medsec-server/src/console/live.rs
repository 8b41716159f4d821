//! `GET /ui/events`: Server-Sent Events telling a live page that the fleet changed (an event
//! `change` whose data is the new fingerprint), and a comment every 15 s that keeps proxies
//! from closing an idle stream. The number of open streams is capped
//! (`console.max_live_streams`); over it the answer is 503, which ends the browser's stream
//! for good, and the page says live updates are off until it is reloaded.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::Ctx;

pub(crate) async fn events(ctx: Ctx) -> Response {
    let state = ctx.state.clone();
    let console = &state.config.console;
    let Some(slot) = state.changes.slot(console.max_live_streams) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "30")],
            "too many live streams are open",
        )
            .into_response();
    };
    let rx = state.changes.subscribe(
        &state.store,
        Duration::from_millis(console.live_interval_ms),
    );
    // The slot is part of the stream's state: it is given back when the browser goes away
    // and the stream is dropped.
    let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.changed().await.ok()?;
        let value = *rx.borrow_and_update();
        Some((
            Ok::<_, Infallible>(Event::default().event("change").data(value.to_string())),
            (rx, slot),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
