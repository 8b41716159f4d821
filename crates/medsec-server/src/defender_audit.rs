//! The Defender's audit checks, after AWS IoT Device Defender Audit: configuration and fleet
//! state that weakens security, checked on demand (`GET /api/v1/defender/audit`, `medsec
//! defender audit`, which a timer can run and which exits non-zero on findings at or above a
//! severity).
//!
//! | check | finds |
//! | --- | --- |
//! | `device-certificate-expiring` | an enrolled device whose newest certificate expires within `cert_days` (high once expired) |
//! | `ca-certificate-expiring` | a trusted CA certificate (fleet chain, manufacturer CAs) expiring within 90 days |
//! | `expired-ca-still-trusted` | a trusted CA certificate that has expired |
//! | `overly-permissive-policy` | a Cedar permit open to any principal, or to any device without a condition |
//! | `device-silent` | an enrolled device not seen for `silent_hours` |
//! | `logging-disabled` | a device that reported its logging turned off in the last 7 days |
//! | `quarantine-without-incident` | a quarantined device that no open incident quarantines (a quarantine left on) |
//! | `audit-log-integrity` | the audit log fails verification |

use std::path::Path;

use medsec_defender::incident::Incident;
use medsec_defender::rules::Severity;
use medsec_store::prelude::*;
use medsec_store::{AnyStore, DeviceQuery};
use serde::Serialize;

use crate::config::Config;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check.
    pub check: String,
    /// How bad.
    pub severity: Severity,
    /// What it is about (`Device::"pump-1"`, a file, a policy id).
    pub resource: String,
    /// Why.
    pub detail: String,
}

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Device certificates expiring within this many days are reported.
    pub cert_days: i64,
    /// Devices not seen for this many hours are reported.
    pub silent_hours: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            cert_days: 7,
            silent_hours: 24,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

fn finding(check: &str, severity: Severity, resource: String, detail: String) -> Finding {
    Finding {
        check: check.into(),
        severity,
        resource,
        detail,
    }
}

/// Certificates in a PEM file: (subject, not after in Unix ms).
pub(crate) fn certificates(path: &Path) -> Vec<(String, i64)> {
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    x509_parser::pem::Pem::iter_from_buffer(&pem)
        .filter_map(Result::ok)
        .filter_map(|p| {
            let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).ok()?;
            Some((
                cert.subject().to_string(),
                cert.validity().not_after.timestamp().saturating_mul(1000),
            ))
        })
        .collect()
}

/// The scheduled run (`defender_audit_interval_secs`): every check with the default
/// thresholds, each finding not reported by the previous run written to the audit log (its
/// severity as the decision), and one summary entry per run. `reported` carries the findings
/// of the previous run, so a condition left as it was is not written again every hour; one
/// that clears and comes back is.
pub(crate) async fn scheduled(
    state: &crate::state::AppState,
    reported: &mut std::collections::BTreeSet<(String, String)>,
) -> Result<usize, crate::Error> {
    let now = crate::state::now_ms();
    let findings = run(
        &state.store,
        &state.config,
        &state.policies,
        Thresholds::default(),
        now,
    )
    .await?;
    let mut current = std::collections::BTreeSet::new();
    let mut new = 0;
    for f in &findings {
        let key = (f.check.clone(), f.resource.clone());
        if !reported.contains(&key) {
            let mut e = crate::audit_log::event(
                "defender",
                "system",
                "defender.audit",
                &f.resource,
                f.severity.name(),
            );
            e.detail = format!("{}: {}", f.check, f.detail);
            state.audit(e).await?;
            new += 1;
        }
        current.insert(key);
    }
    let mut e = crate::audit_log::event("defender", "system", "defender.audit", "Fleet", "info");
    e.detail = format!(
        "scheduled audit checks: {} findings, {new} new since the last run",
        findings.len()
    );
    state.audit(e).await?;
    *reported = current;
    Ok(findings.len())
}

/// Runs every check at `now`.
pub async fn run(
    store: &AnyStore,
    config: &Config,
    policies: &crate::authz::Policies,
    thresholds: Thresholds,
    now: i64,
) -> Result<Vec<Finding>, crate::Error> {
    let mut out = Vec::new();
    let store_err = |e: medsec_store::Error| crate::Error::Config {
        reason: e.to_string(),
    };

    // Devices, page by page.
    let mut devices = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .devices(&DeviceQuery {
                after: after.clone(),
                limit: 1000,
                ..DeviceQuery::default()
            })
            .await
            .map_err(store_err)?;
        let last = page.last().map(|d| d.id.clone());
        let done = page.len() < 1000;
        devices.extend(page);
        if done || last.is_none() {
            break;
        }
        after = last;
    }
    let open: Vec<Incident> = store
        .incidents(true, 10_000)
        .await
        .map_err(store_err)?
        .iter()
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    for d in &devices {
        let label = format!("Device::{:?}", d.id);
        if d.state == "enrolled" {
            let keys = store.device_keys(&d.id).await.map_err(store_err)?;
            if let Some(newest) = keys.iter().map(|k| k.not_after_ms).max() {
                if newest <= now {
                    out.push(finding(
                        "device-certificate-expiring",
                        Severity::High,
                        label.clone(),
                        "its newest certificate has expired: it cannot connect until it enrols again"
                            .into(),
                    ));
                } else if newest <= now + thresholds.cert_days * DAY_MS {
                    out.push(finding(
                        "device-certificate-expiring",
                        Severity::Medium,
                        label.clone(),
                        format!(
                            "its newest certificate expires in {:.1} days and was not renewed",
                            (newest - now) as f64 / DAY_MS as f64
                        ),
                    ));
                }
            }
            match d.last_seen_ms {
                Some(seen) if now - seen > thresholds.silent_hours * 3_600_000 => {
                    out.push(finding(
                        "device-silent",
                        Severity::Medium,
                        label.clone(),
                        format!(
                            "not seen for {:.1} hours (threshold {} h)",
                            (now - seen) as f64 / 3_600_000.0,
                            thresholds.silent_hours
                        ),
                    ));
                }
                _ => {}
            }
        }
        if d.quarantined && !open.iter().any(|i| i.quarantines(&d.id)) {
            out.push(finding(
                "quarantine-without-incident",
                Severity::Medium,
                label.clone(),
                "quarantined, but no open incident holds the quarantine: release it or open an incident"
                    .into(),
            ));
        }
    }
    // The last week's alerts, read once for the checks on them.
    let recent = store
        .alerts(None, now - 7 * DAY_MS, 10_000)
        .await
        .map_err(store_err)?;
    for a in recent.iter().filter(|a| a.rule == "logging-disabled") {
        out.push(finding(
            "logging-disabled",
            Severity::High,
            format!("Device::{:?}", a.device_id),
            format!(
                "the device reported its logging turned off (alert {}, {} time(s){})",
                a.id,
                a.occurrences,
                if a.suppressed_by == 0 {
                    String::new()
                } else {
                    format!(", suppressed by suppression {}", a.suppressed_by)
                }
            ),
        ));
    }
    // Suppressed alerts are never dropped: the audit checks count them, per rule.
    let mut suppressed: std::collections::BTreeMap<(String, i64), i64> =
        std::collections::BTreeMap::new();
    for a in recent.iter().filter(|a| a.suppressed_by != 0) {
        *suppressed
            .entry((a.rule.clone(), a.suppressed_by))
            .or_default() += a.occurrences;
    }
    for ((rule, by), n) in suppressed {
        out.push(finding(
            "alerts-suppressed",
            Severity::Low,
            format!("Suppression::\"{by}\""),
            format!("{n} occurrence(s) of {rule} in the last 7 days were suppressed, not dropped"),
        ));
    }

    // Trust anchors.
    let data = crate::DataDir::new(&config.data_dir);
    let anchors = std::iter::once(data.ca().join("chain.pem"))
        .chain(config.manufacturers.iter().map(|m| m.ca.clone()));
    for path in anchors {
        for (subject, not_after) in certificates(&path) {
            let resource = format!("{} ({subject})", path.display());
            if not_after <= now {
                out.push(finding(
                    "expired-ca-still-trusted",
                    Severity::High,
                    resource,
                    "an expired CA certificate is still configured as trusted".into(),
                ));
            } else if not_after <= now + 90 * DAY_MS {
                out.push(finding(
                    "ca-certificate-expiring",
                    Severity::High,
                    resource,
                    format!(
                        "expires in {:.0} days: plan the CA rollover",
                        (not_after - now) as f64 / DAY_MS as f64
                    ),
                ));
            }
        }
    }

    for (id, reason) in policies.permissive() {
        out.push(finding(
            "overly-permissive-policy",
            Severity::High,
            format!("policy {id}"),
            reason,
        ));
    }

    let key =
        crate::audit_log::read_public_key(&data.audit_pub()).map_err(|e| crate::Error::Config {
            reason: e.to_string(),
        })?;
    let report = crate::audit_log::verify(store, &key)
        .await
        .map_err(|e| crate::Error::Config {
            reason: e.to_string(),
        })?;
    if !report.findings.is_empty() {
        out.push(finding(
            "audit-log-integrity",
            Severity::Critical,
            "AuditLog".into(),
            format!(
                "the audit log fails verification: {} finding(s); run `medsec audit verify`",
                report.findings.len()
            ),
        ));
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(&b.check)));
    Ok(out)
}
