//! Suppressions, the service side: an operator's decision, with a mandatory reason and an
//! expiry, that a rule's alerts about a device, a model, a site or a destination are known and
//! accepted. A suppressed alert is still stored and counted (under its suppression), listed
//! and shown in the timeline, but opens no incident. An expired suppression stops applying by
//! itself: it is only matched while `expires_at_ms` is ahead. Routes are in `api/defender.rs`.

use medsec_store::SuppressionRow;
use medsec_store::prelude::*;

use crate::Error;
use crate::audit_log::event;
use crate::state::AppState;
use medsec_audit::Event as AuditEvent;

/// What a suppression may cover.
pub const SCOPES: [&str; 4] = ["device", "model", "site", "destination"];

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What an operator asks for.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// The rule (`destination-not-allowed`, …).
    pub rule: String,
    /// `device`, `model`, `site` or `destination`.
    pub scope: String,
    /// The device id, model, site or destination address.
    pub value: String,
    /// Why: mandatory.
    pub reason: String,
    /// How long it lasts, in seconds (at most `limits.max_suppression_secs`).
    pub duration_secs: u64,
}

/// Checks a request, naming what is wrong.
fn check(new: &NewSuppression, max_secs: u64) -> Result<(), Error> {
    let refuse = |reason: String| Err(Error::Refused { reason });
    let printable = |s: &str| !s.chars().any(char::is_control);
    if new.rule.trim().is_empty() || new.rule.len() > 100 || !printable(&new.rule) {
        return refuse("rule must name the rule, 1 to 100 printable characters".into());
    }
    if !SCOPES.contains(&new.scope.as_str()) {
        return refuse(format!(
            "scope {:?} is not one of {}",
            new.scope,
            SCOPES.join(", ")
        ));
    }
    if new.value.trim().is_empty() || new.value.len() > 200 || !printable(&new.value) {
        return refuse(format!(
            "value must name the {}, 1 to 200 printable characters",
            new.scope
        ));
    }
    if new.reason.trim().chars().count() < 10
        || new.reason.chars().count() > MAX_REASON_CHARS
        || !printable(&new.reason)
    {
        return refuse(format!(
            "reason is mandatory: say why these alerts are accepted, 10 to {MAX_REASON_CHARS} printable characters"
        ));
    }
    if new.duration_secs == 0 || new.duration_secs > max_secs {
        return refuse(format!(
            "duration_secs must be 1 to {max_secs} (limits.max_suppression_secs): every suppression expires"
        ));
    }
    Ok(())
}

/// The row of a suppression `who` asks for at `now`, checked (the store gives its id).
pub fn prepare(
    new: NewSuppression,
    who: &str,
    now: i64,
    max_secs: u64,
) -> Result<SuppressionRow, Error> {
    check(&new, max_secs)?;
    Ok(SuppressionRow {
        id: 0,
        rule: new.rule.trim().to_owned(),
        scope: new.scope,
        value: new.value.trim().to_owned(),
        reason: new.reason.trim().to_owned(),
        created_by: who.to_owned(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(
            i64::try_from(new.duration_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        ),
        lifted_at_ms: None,
    })
}

/// The audit entry of a stored suppression (`alert.suppress`), or of its lifting.
pub fn audited(row: &SuppressionRow, who: &str, source: &str, lifted: bool) -> AuditEvent {
    let mut e = event(
        "alert",
        who,
        "alert.suppress",
        &format!("Suppression::\"{}\"", row.id),
        "allow",
    );
    e.source = source.to_owned();
    e.detail = if lifted {
        format!("lifted: {} for {} {}", row.rule, row.scope, row.value)
    } else {
        format!(
            "{} for {} {} until {}: {}",
            row.rule, row.scope, row.value, row.expires_at_ms, row.reason
        )
    };
    e
}

/// Stores a suppression decided by `who` (audited as `alert.suppress`); returns it.
pub(crate) async fn create(
    state: &AppState,
    who: &str,
    source: &str,
    new: NewSuppression,
    now: i64,
) -> Result<SuppressionRow, Error> {
    let mut row = prepare(new, who, now, state.config.limits.max_suppression_secs)?;
    row.id = state.store.put_suppression(&row).await?;
    state.audit(audited(&row, who, source, false)).await?;
    Ok(row)
}

/// Lifts a suppression before its expiry (audited); false if none in force has that id.
pub(crate) async fn lift(
    state: &AppState,
    who: &str,
    source: &str,
    id: i64,
    now: i64,
) -> Result<bool, Error> {
    let row = state
        .store
        .suppressions(Some(now))
        .await?
        .into_iter()
        .find(|r| r.id == id);
    let Some(row) = row else { return Ok(false) };
    let lifted = state.store.lift_suppression(id, now).await?;
    if lifted {
        state.audit(audited(&row, who, source, true)).await?;
    }
    Ok(lifted)
}

/// What an alert is about, for matching suppressions.
pub(crate) struct Subject<'a> {
    pub(crate) device: &'a str,
    pub(crate) model: &'a str,
    pub(crate) site: &'a str,
}

/// The suppression in force that covers an alert of `rule` with `key` about `subject`, if
/// any (the oldest first: its id is what the alert is counted under).
pub(crate) fn covering(
    active: &[SuppressionRow],
    rule: &str,
    key: &str,
    subject: &Subject<'_>,
) -> Option<i64> {
    active
        .iter()
        .filter(|s| s.rule == rule)
        .find(|s| match s.scope.as_str() {
            "device" => s.value == subject.device,
            "model" => s.value == subject.model,
            "site" => !subject.site.is_empty() && s.value == subject.site,
            // The alert's key for a destination is `address:port` (`[v6]:port`), or one of
            // them; the suppression names the address, or the address and port.
            "destination" => {
                let bracketed = format!("[{}]", s.value);
                key == s.value
                    || key == bracketed
                    || key
                        .strip_prefix(s.value.as_str())
                        .is_some_and(|rest| !s.value.contains(':') && rest.starts_with(':'))
                    || key
                        .strip_prefix(bracketed.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
            }
            _ => false,
        })
        .map(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, rule: &str, scope: &str, value: &str) -> SuppressionRow {
        SuppressionRow {
            id,
            rule: rule.into(),
            scope: scope.into(),
            value: value.into(),
            reason: "known".into(),
            created_by: "x".into(),
            created_at_ms: 0,
            expires_at_ms: 1,
            lifted_at_ms: None,
        }
    }

    #[test]
    fn a_suppression_covers_its_rule_and_scope_only() {
        let active = [
            row(1, "destination-not-allowed", "destination", "203.0.113.9"),
            row(2, "clinical-implausible", "model", "monitor"),
            row(3, "clinical-jump", "site", "ward-3"),
        ];
        let pump = Subject {
            device: "pump-1",
            model: "pump",
            site: "",
        };
        let covers = |rule: &str, key: &str, s: &Subject<'_>| covering(&active, rule, key, s);
        assert_eq!(
            covers("destination-not-allowed", "203.0.113.9:443", &pump),
            Some(1)
        );
        assert_eq!(
            covers("destination-not-allowed", "203.0.113.10:443", &pump),
            None
        );
        assert_eq!(
            covers("listening-port-not-allowed", "203.0.113.9", &pump),
            None
        );
        assert_eq!(covers("clinical-implausible", "spo2", &pump), None);
        let monitor = Subject {
            device: "mon-1",
            model: "monitor",
            site: "ward-3",
        };
        assert_eq!(covers("clinical-implausible", "spo2", &monitor), Some(2));
        assert_eq!(covers("clinical-jump", "spo2", &monitor), Some(3));
        assert_eq!(covers("clinical-jump", "spo2", &pump), None, "no site");
    }

    #[test]
    fn ipv6_destinations_are_told_apart_from_their_ports() {
        let active = [row(1, "destination-not-allowed", "destination", "fd00::1")];
        let pump = Subject {
            device: "pump-1",
            model: "pump",
            site: "",
        };
        let covers = |key: &str| covering(&active, "destination-not-allowed", key, &pump);
        assert_eq!(covers("[fd00::1]:443"), Some(1));
        assert_eq!(covers("[fd00::1]"), Some(1));
        assert_eq!(covers("[fd00::1:2]:443"), None);
    }

    #[test]
    fn a_suppression_without_a_reason_or_an_end_is_refused() {
        let ok = NewSuppression {
            rule: "destination-not-allowed".into(),
            scope: "destination".into(),
            value: "203.0.113.9".into(),
            reason: "the vendor's update server, ticket CHG-1042".into(),
            duration_secs: 3_600,
        };
        assert!(check(&ok, 86_400).is_ok());
        for (bad, what) in [
            (
                NewSuppression {
                    reason: " ".into(),
                    ..ok.clone()
                },
                "reason is mandatory",
            ),
            (
                NewSuppression {
                    scope: "ward".into(),
                    ..ok.clone()
                },
                "scope \"ward\"",
            ),
            (
                NewSuppression {
                    duration_secs: 0,
                    ..ok.clone()
                },
                "every suppression expires",
            ),
            (
                NewSuppression {
                    duration_secs: 86_401,
                    ..ok.clone()
                },
                "every suppression expires",
            ),
            (
                NewSuppression {
                    value: String::new(),
                    ..ok.clone()
                },
                "value must name",
            ),
        ] {
            let e = check(&bad, 86_400).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
