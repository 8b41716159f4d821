//! Liveness, readiness and the scrape-time metrics read from the store.
//!
//! `/healthz` says the process answers. `/readyz` says it can do its job: the store answers, the
//! audit writer keeps up (every answer waits for it), the CRL that the device port checks is
//! within its validity, and the server's certificate and the issuing CA's are not expired. A
//! load balancer takes an unready replica out of rotation; each failing check names itself.

use std::time::{Duration, Instant};

use medsec_store::prelude::*;
use serde::Serialize;

use crate::state::AppState;
use crate::{DataDir, Error};

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `store`, `audit-writer`, `crl`, `certificates`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The readiness answer.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// Every check, passed or not.
    pub checks: Vec<Check>,
}

/// A store query that must answer within `limit`.
const STORE_LIMIT: Duration = Duration::from_secs(2);

/// Runs every readiness check.
pub async fn readiness(state: &AppState) -> Readiness {
    let mut checks = Vec::new();
    let started = Instant::now();
    let store = tokio::time::timeout(STORE_LIMIT, state.store.audit_latest_head()).await;
    crate::metrics::global()
        .store_seconds
        .observe(started.elapsed().as_secs_f64());
    checks.push(match store {
        Ok(Ok(_)) => Check {
            name: "store",
            ok: true,
            detail: format!("answered in {} ms", started.elapsed().as_millis()),
        },
        Ok(Err(e)) => Check {
            name: "store",
            ok: false,
            detail: format!("the store refused a read: {e}"),
        },
        Err(_) => Check {
            name: "store",
            ok: false,
            detail: format!(
                "the store did not answer within {} s",
                STORE_LIMIT.as_secs()
            ),
        },
    });
    let (queued, capacity) = state.audit_queue();
    checks.push(Check {
        name: "audit-writer",
        ok: queued.saturating_mul(10) < capacity.saturating_mul(9),
        detail: format!("{queued} of {capacity} queue places taken"),
    });
    checks.push(crl_check(state).await);
    checks.push(certificate_check(state));
    let ready = checks.iter().all(|c| c.ok);
    Readiness {
        status: if ready { "ready" } else { "unready" },
        checks,
    }
}

async fn crl_check(state: &AppState) -> Check {
    let path = state.ca.lock().await.crl_path();
    let days = u64::try_from(state.config.crl_days).unwrap_or(0);
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())
        .and_then(|t| t.elapsed().map_err(|e| e.to_string()));
    match age {
        Ok(age) => Check {
            name: "crl",
            ok: age < Duration::from_secs(days * 86_400),
            detail: format!(
                "signed {} h ago, valid {days} days (re-signed at half its validity)",
                age.as_secs() / 3600
            ),
        },
        Err(e) => Check {
            name: "crl",
            ok: false,
            detail: format!("{}: {e}", path.display()),
        },
    }
}

/// The earliest `notAfter` in the server's chain (its own certificate and the issuing CA's).
fn certificate_check(state: &AppState) -> Check {
    let path = DataDir::new(&state.config.data_dir).server_chain();
    let now = crate::state::now_ms();
    match crate::defender_audit::certificates(&path)
        .into_iter()
        .min_by_key(|(_, not_after)| *not_after)
    {
        Some((subject, not_after)) => Check {
            name: "certificates",
            ok: not_after > now,
            detail: format!(
                "the earliest expiry in the server's chain: {subject} until {}",
                crate::repeats::rfc3339(not_after)
            ),
        },
        None => Check {
            name: "certificates",
            ok: false,
            detail: format!("{}: no readable certificate", path.display()),
        },
    }
}

/// Sets the gauges read from the store (devices, open incidents, campaigns, audit entries), then
/// renders every metric.
pub async fn scrape(state: &AppState) -> Result<String, Error> {
    let m = crate::metrics::global();
    let started = Instant::now();
    let census = state.store.device_census().await?;
    let incidents = state.store.incidents(true, u32::MAX).await?;
    let campaigns = state.store.campaigns().await?;
    let head = crate::audit_log::latest_head(&state.store).await?;
    m.store_seconds.observe(started.elapsed().as_secs_f64());
    // Reset first: a group that emptied since the last scrape must read 0, not its old count.
    m.devices.reset();
    for c in &census {
        m.devices
            .with_label_values(&[
                c.state.as_str(),
                if c.quarantined { "true" } else { "false" },
                c.model.as_str(),
                c.installed_version.as_str(),
            ])
            .add(c.count);
    }
    m.incidents_open.reset();
    for row in &incidents {
        let severity = crate::incidents::from_row(row)
            .map(|i| i.severity.name())
            .unwrap_or("unreadable");
        m.incidents_open
            .with_label_values(&[severity, row.phase.as_str()])
            .inc();
    }
    m.campaigns.reset();
    m.campaign_devices.reset();
    for c in &campaigns {
        m.campaigns.with_label_values(&[c.status.as_str()]).inc();
        if !matches!(c.status.as_str(), "running" | "paused" | "halted") {
            continue;
        }
        let Ok(campaign) = crate::campaigns::load(c) else {
            continue;
        };
        let progress = campaign.progress();
        let sum = |f: fn(&medsec_campaign::WaveProgress) -> usize| {
            i64::try_from(progress.iter().map(f).sum::<usize>()).unwrap_or(i64::MAX)
        };
        for (state, n) in [
            ("waiting", sum(|w| w.waiting)),
            ("offered", sum(|w| w.offered)),
            ("deferred", sum(|w| w.deferred)),
            ("succeeded", sum(|w| w.succeeded)),
            ("failed", sum(|w| w.failed)),
            ("withdrawn", sum(|w| w.withdrawn)),
        ] {
            m.campaign_devices
                .with_label_values(&[c.id.as_str(), state])
                .set(n);
        }
    }
    m.audit_entries
        .set(head.map_or(0, |h| i64::try_from(h.head.tree_size).unwrap_or(i64::MAX)));
    let (queued, _) = state.audit_queue();
    m.audit_queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
    m.render()
}
