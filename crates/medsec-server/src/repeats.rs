//! Summarising repeated allowed routine requests in the audit log.
//!
//! A fleet of a million devices polling every five minutes makes 3,300 allowed `update.fetch`
//! decisions a second: logging each one durably would make the audit log grow by hundreds of
//! millions of identical entries a day and put an fsync on every poll. So, for the routine
//! actions in [`ROUTINE`] only, an allowed decision is logged when it is first seen and then at
//! most once per window for the same principal, action, resource, deciding policies and source
//! address; the requests in between are counted, and the count is logged either with the next
//! logged decision or, when the stream stops, by [`Repeats::sweep`]: every request is in the log
//! one by one or in a count. The counts live in memory until they are logged, so a crash loses at
//! most one window of them; the decisions themselves are unaffected. Rate-limit refusals are
//! summarised the same way, per rate-limit key and source address, so a flood cannot grow the log
//! faster than one entry per window per source; so are refused, replayed and duplicate telemetry
//! batches ([`SUMMARISED_KINDS`]), per device and kind. Every other refusal, and every other
//! action, is logged one by one (their rate is what the rate limit lets through).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use medsec_audit::Event;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Actions whose repeated allowed decisions are summarised.
pub(crate) const ROUTINE: &[&str] = &[
    "update.fetch",
    "telemetry.send",
    // A Prometheus scrape every 15 s and the CLI's session checks.
    "metrics.read",
    "session.read",
];

/// The kind of the audit entries of rate-limit refusals, which are summarised too.
pub(crate) const LIMIT_KIND: &str = "limit";

/// The kinds of entry summarised whatever their decision: rate-limit refusals, and what
/// becomes of a telemetry batch beside being stored (a device, or a broker redelivering, can
/// send these as fast as its rate allows).
pub(crate) const SUMMARISED_KINDS: &[&str] = &[
    LIMIT_KIND,
    crate::telemetry::MALFORMED,
    crate::telemetry::REPLAY,
    crate::telemetry::DUPLICATE,
];

/// Whether repeats of `event` are summarised.
fn summarised(event: &Event) -> bool {
    ROUTINE.contains(&event.action.as_str()) || SUMMARISED_KINDS.contains(&event.kind.as_str())
}

/// "allowed" or "refused", for the summary's sentence.
fn outcome(event: &Event) -> &'static str {
    if event.decision == "deny" {
        "refused"
    } else {
        "allowed"
    }
}

/// What to do with one allowed routine decision.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it now, noting `skipped` identical decisions (since `since_ms`) that were not logged
    /// one by one.
    Log { skipped: u64, since_ms: i64 },
    /// Count it; it is logged in a later summary.
    Count,
}

struct Seen {
    /// When a decision of this stream was last logged.
    logged_ms: i64,
    /// Decisions counted since, and the first and last of them.
    skipped: u64,
    first_ms: i64,
    last_ms: i64,
    /// The logged event, to write the summary from.
    template: Event,
}

/// The per-stream counters (see the module documentation).
pub(crate) struct Repeats {
    window_ms: i64,
    max_streams: usize,
    seen: Mutex<HashMap<String, Seen>>,
}

impl Repeats {
    /// `window_secs` 0 logs every decision; `max_streams` bounds the memory: past it, decisions
    /// of new streams are logged one by one.
    pub(crate) fn new(window_secs: u64, max_streams: usize) -> Self {
        Self {
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_streams,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Decides whether the allowed decision `event`, made for a request from `ip` at `now_ms`,
    /// is logged now.
    pub(crate) fn note(&self, event: &Event, ip: IpAddr, now_ms: i64) -> Verdict {
        let fresh = Verdict::Log {
            skipped: 0,
            since_ms: now_ms,
        };
        if self.window_ms == 0 || !summarised(event) {
            return fresh;
        }
        let key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{ip}",
            event.kind,
            event.principal,
            event.action,
            event.resource,
            event.policies.join(",")
        );
        let Ok(mut seen) = self.seen.lock() else {
            return fresh;
        };
        let full = seen.len() >= self.max_streams;
        match seen.get_mut(&key) {
            Some(s) if now_ms.saturating_sub(s.logged_ms) < self.window_ms => {
                if s.skipped == 0 {
                    s.first_ms = now_ms;
                }
                s.skipped += 1;
                s.last_ms = now_ms;
                Verdict::Count
            }
            Some(s) => {
                let verdict = Verdict::Log {
                    skipped: s.skipped,
                    since_ms: s.first_ms,
                };
                s.logged_ms = now_ms;
                s.skipped = 0;
                s.template = event.clone();
                verdict
            }
            None if full => fresh,
            None => {
                seen.insert(
                    key,
                    Seen {
                        logged_ms: now_ms,
                        skipped: 0,
                        first_ms: now_ms,
                        last_ms: now_ms,
                        template: event.clone(),
                    },
                );
                fresh
            }
        }
    }

    /// Forgets streams whose window has ended, returning a summary event for each that counted
    /// decisions since it was last logged.
    pub(crate) fn sweep(&self, now_ms: i64) -> Vec<Event> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        let mut summaries = Vec::new();
        seen.retain(|_, s| {
            if now_ms.saturating_sub(s.logged_ms) < self.window_ms {
                return true;
            }
            if s.skipped > 0 {
                let mut e = s.template.clone();
                e.detail = summary(s.skipped, s.first_ms, s.last_ms, outcome(&e));
                summaries.push(e);
            }
            false
        });
        summaries
    }
}

/// The detail of a summary entry.
pub(crate) fn summary(count: u64, first_ms: i64, last_ms: i64, outcome: &str) -> String {
    format!(
        "{count} identical {outcome} request(s) from {} to {}, summarised instead of logged one by one",
        rfc3339(first_ms),
        rfc3339(last_ms)
    )
}

/// What a logged decision says of the identical ones counted before it.
pub(crate) fn preceded_by(count: u64, since_ms: i64, event: &Event) -> String {
    format!(
        "{count} identical {} request(s) since {} were summarised into this entry",
        outcome(event),
        rfc3339(since_ms)
    )
}

pub(crate) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_log::event;

    fn poll(device: &str) -> Event {
        let mut e = event(
            "authz",
            &format!("Device::{device:?}"),
            "update.fetch",
            &format!("Device::{device:?}"),
            "allow",
        );
        e.policies = vec!["device-fetches-own-updates".into()];
        e
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn repeats_inside_the_window_are_counted_and_reported_with_the_next_entry() {
        let r = Repeats::new(60, 10);
        let e = poll("pump-1");
        assert_eq!(
            r.note(&e, IP, 0),
            Verdict::Log {
                skipped: 0,
                since_ms: 0
            }
        );
        assert_eq!(r.note(&e, IP, 1_000), Verdict::Count);
        assert_eq!(r.note(&e, IP, 59_999), Verdict::Count);
        assert_eq!(
            r.note(&e, IP, 60_000),
            Verdict::Log {
                skipped: 2,
                since_ms: 1_000
            }
        );
        // Another device, address or policy set is another stream.
        assert!(matches!(
            r.note(&poll("pump-2"), IP, 60_001),
            Verdict::Log { skipped: 0, .. }
        ));
        assert!(matches!(
            r.note(&e, "10.0.0.9".parse().unwrap(), 60_002),
            Verdict::Log { skipped: 0, .. }
        ));
        let mut other = poll("pump-1");
        other.policies = vec!["another".into()];
        assert!(matches!(
            r.note(&other, IP, 60_003),
            Verdict::Log { skipped: 0, .. }
        ));
    }

    #[test]
    fn a_stream_that_stops_is_summarised_by_the_sweep_and_nothing_is_lost() {
        let r = Repeats::new(60, 10);
        let e = poll("pump-1");
        r.note(&e, IP, 0);
        for t in 1..=5 {
            assert_eq!(r.note(&e, IP, t * 1000), Verdict::Count);
        }
        assert!(r.sweep(59_000).is_empty(), "window still open");
        let summaries = r.sweep(60_000);
        assert_eq!(summaries.len(), 1);
        assert!(
            summaries[0]
                .detail
                .starts_with("5 identical allowed request(s) from 1970-01-01T00:00:01Z"),
            "{}",
            summaries[0].detail
        );
        assert_eq!(summaries[0].principal, e.principal);
        // Forgotten: the next one is logged afresh, with nothing counted twice.
        assert_eq!(
            r.note(&e, IP, 61_000),
            Verdict::Log {
                skipped: 0,
                since_ms: 61_000
            }
        );
        assert!(r.sweep(200_000).is_empty());
    }

    #[test]
    fn other_actions_a_zero_window_and_a_full_table_log_every_decision() {
        let mut enrol = poll("pump-1");
        enrol.action = "device.report".into();
        let r = Repeats::new(60, 1);
        for t in 0..3 {
            assert!(matches!(r.note(&enrol, IP, t), Verdict::Log { .. }));
        }
        r.note(&poll("pump-1"), IP, 0);
        for t in 0..3 {
            assert!(matches!(
                r.note(&poll("pump-2"), IP, t),
                Verdict::Log { .. }
            ));
        }
        let every = Repeats::new(0, 10);
        for t in 0..3 {
            assert!(matches!(
                every.note(&poll("pump-1"), IP, t),
                Verdict::Log { .. }
            ));
        }
    }
}
