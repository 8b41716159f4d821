//! Incidents: alerts grouped per device, moved through the NIST SP 800-61 lifecycle, with the
//! response actions taken and the regulatory reporting clocks that start when an incident is
//! confirmed. Pure functions of their inputs, the time included, so the clocks are tested with
//! any clock.

use serde::{Deserialize, Serialize};

use crate::rules::Severity;

/// Where an incident is in its life (NIST SP 800-61r2 section 3: detection and analysis;
/// containment, eradication and recovery; post-incident activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Raised by alerts, not yet looked at.
    Detected,
    /// Being analysed.
    Analysing,
    /// The damage is contained (for example the device is quarantined).
    Contained,
    /// The cause is removed (patched, re-imaged, certificate replaced).
    Eradicated,
    /// Back in normal service, watched.
    Recovered,
    /// Lessons learned; done.
    Closed,
}

/// What kind of event the manufacturer must report under the EU Cyber Resilience Act,
/// Article 14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CraKind {
    /// An actively exploited vulnerability (Art. 14(2)): final report within 14 days after a
    /// corrective or mitigating measure is available.
    ExploitedVulnerability,
    /// A severe incident affecting the product's security (Art. 14(4)): final report within one
    /// month after the incident notification.
    SevereIncident,
}

/// What an alert contributes to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    /// The alert's id in the store.
    pub id: i64,
    /// The device.
    pub device: String,
    /// The rule.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// When it was raised.
    pub raised_at_ms: i64,
}

/// A response action, undone or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `quarantine`, `release`, `revoke`, `force_update`.
    pub playbook: String,
    /// On which device.
    pub device: String,
    /// Who.
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// What it did, for the record.
    pub detail: String,
}

/// The confirmation, which starts the reporting clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// When (the moment of "becoming aware").
    pub at_ms: i64,
    /// Who confirmed it.
    pub by: String,
    /// What must be reported under the CRA, if anything (the CRA exempts devices under the MDR,
    /// not separately sold software).
    pub cra: Option<CraKind>,
    /// Whether unsecured protected health information may be affected (HIPAA breach
    /// notification, 45 CFR 164.404).
    pub personal_data: bool,
    /// When a corrective or mitigating measure became available (for the CRA final report on an
    /// exploited vulnerability).
    pub fix_available_at_ms: Option<i64>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Its id.
    pub id: String,
    /// One line.
    pub title: String,
    /// The highest severity of its alerts.
    pub severity: Severity,
    /// Where it is.
    pub phase: Phase,
    /// Devices involved.
    pub devices: Vec<String>,
    /// Its alerts.
    pub alerts: Vec<AlertRef>,
    /// Actions taken.
    pub actions: Vec<Action>,
    /// Opened.
    pub opened_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
    /// Confirmed (clocks run from here).
    pub confirmation: Option<Confirmation>,
}

/// A reporting deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// What must be sent.
    pub report: String,
    /// Under which rule.
    pub basis: String,
    /// When it is due (`None` while it cannot be computed yet).
    pub due_at_ms: Option<i64>,
    /// Milliseconds left at `now` (negative: overdue).
    pub remaining_ms: Option<i64>,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Alerts on a device join its open incident if that incident changed within this window.
pub const GROUP_WINDOW_MS: i64 = HOUR;

/// Why a change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncidentError {
    /// Phases only move forward.
    #[error("an incident in phase {from:?} cannot move back to {to:?}")]
    Backwards {
        /// Current phase.
        from: Phase,
        /// Asked phase.
        to: Phase,
    },
    /// A closed incident does not change.
    #[error("the incident is closed")]
    Closed,
    /// Confirmed twice.
    #[error("the incident was confirmed already at {at_ms}")]
    AlreadyConfirmed {
        /// When.
        at_ms: i64,
    },
}

/// Adds `months` calendar months to a Unix-ms time (days clamped to the month's end), in UTC.
fn add_months(at_ms: i64, months: i64) -> i64 {
    // Civil-from-days and days-from-civil (Howard Hinnant's algorithms), to stay free of a
    // calendar dependency in this crate.
    let days = at_ms.div_euclid(DAY);
    let rem = at_ms.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let mut y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mut m = if mp < 10 { mp + 3 } else { mp - 9 };
    if m <= 2 {
        y += 1;
    }
    let total = y * 12 + (m - 1) + months;
    y = total.div_euclid(12);
    m = total.rem_euclid(12) + 1;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let d = d.min(month_days.get((m - 1) as usize).copied().unwrap_or(28));
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * DAY + rem
}

impl Incident {
    /// Opens an incident from its first alert.
    pub fn open(id: &str, alert: AlertRef, title: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            severity: alert.severity,
            phase: Phase::Detected,
            devices: vec![alert.device.clone()],
            opened_at_ms: alert.raised_at_ms,
            updated_at_ms: alert.raised_at_ms,
            alerts: vec![alert],
            actions: Vec::new(),
            confirmation: None,
        }
    }

    /// Whether a new alert on `device` at `now` joins this incident: it is not closed, it
    /// involves the device, and it changed within [`GROUP_WINDOW_MS`].
    pub fn takes(&self, device: &str, now_ms: i64) -> bool {
        self.phase != Phase::Closed
            && self.devices.iter().any(|d| d == device)
            && now_ms.saturating_sub(self.updated_at_ms) <= GROUP_WINDOW_MS
    }

    /// Adds an alert.
    pub fn attach(&mut self, alert: AlertRef) {
        self.severity = self.severity.max(alert.severity);
        if !self.devices.contains(&alert.device) {
            self.devices.push(alert.device.clone());
        }
        self.updated_at_ms = self.updated_at_ms.max(alert.raised_at_ms);
        self.alerts.push(alert);
    }

    /// Moves to `to` (forward only).
    pub fn advance(&mut self, to: Phase, now_ms: i64) -> Result<(), IncidentError> {
        if self.phase == Phase::Closed {
            return Err(IncidentError::Closed);
        }
        if to < self.phase {
            return Err(IncidentError::Backwards {
                from: self.phase,
                to,
            });
        }
        self.phase = to;
        self.updated_at_ms = now_ms;
        Ok(())
    }

    /// Confirms the incident: the reporting clocks start now.
    pub fn confirm(&mut self, confirmation: Confirmation) -> Result<(), IncidentError> {
        if self.phase == Phase::Closed {
            return Err(IncidentError::Closed);
        }
        if let Some(c) = &self.confirmation {
            return Err(IncidentError::AlreadyConfirmed { at_ms: c.at_ms });
        }
        self.updated_at_ms = confirmation.at_ms;
        if self.phase < Phase::Analysing {
            self.phase = Phase::Analysing;
        }
        self.confirmation = Some(confirmation);
        Ok(())
    }

    /// Records that a fix is available (starts the CRA final-report clock of an exploited
    /// vulnerability).
    pub fn fix_available(&mut self, at_ms: i64) {
        if let Some(c) = &mut self.confirmation {
            c.fix_available_at_ms.get_or_insert(at_ms);
        }
    }

    /// Records a response action.
    pub fn record(&mut self, action: Action) {
        self.updated_at_ms = self.updated_at_ms.max(action.at_ms);
        self.actions.push(action);
    }

    /// Whether `device` is quarantined by this incident's actions (the last quarantine or
    /// release on it decides).
    pub fn quarantines(&self, device: &str) -> bool {
        self.actions
            .iter()
            .rev()
            .find(|a| a.device == device && (a.playbook == "quarantine" || a.playbook == "release"))
            .is_some_and(|a| a.playbook == "quarantine")
    }

    /// The reporting clocks at `now`.
    pub fn clocks(&self, now_ms: i64) -> Vec<Clock> {
        let Some(c) = &self.confirmation else {
            return Vec::new();
        };
        let clock = |report: &str, basis: &str, due: Option<i64>| Clock {
            report: report.into(),
            basis: basis.into(),
            due_at_ms: due,
            remaining_ms: due.map(|d| d - now_ms),
        };
        let mut out = Vec::new();
        if let Some(kind) = c.cra {
            out.push(clock(
                "early warning",
                "EU CRA Art. 14(2)(a)/(4)(a): 24 hours",
                Some(c.at_ms + 24 * HOUR),
            ));
            out.push(clock(
                "notification",
                "EU CRA Art. 14(2)(b)/(4)(b): 72 hours",
                Some(c.at_ms + 72 * HOUR),
            ));
            match kind {
                CraKind::ExploitedVulnerability => out.push(clock(
                    "final report",
                    "EU CRA Art. 14(2)(c): 14 days after a corrective or mitigating measure is available",
                    c.fix_available_at_ms.map(|f| f + 14 * DAY),
                )),
                CraKind::SevereIncident => out.push(clock(
                    "final report",
                    "EU CRA Art. 14(4)(c): one month after the incident notification",
                    Some(add_months(c.at_ms + 72 * HOUR, 1)),
                )),
            }
        }
        if c.personal_data {
            out.push(clock(
                "breach notification to individuals",
                "HIPAA 45 CFR 164.404(b): without unreasonable delay, at most 60 days after discovery",
                Some(c.at_ms + 60 * DAY),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03T10:00:00Z
    const T0: i64 = 1_796_292_000_000;

    fn alert(device: &str, at: i64, severity: Severity) -> AlertRef {
        AlertRef {
            id: 1,
            device: device.into(),
            rule: "destination-not-allowed".into(),
            severity,
            raised_at_ms: at,
        }
    }

    #[test]
    fn alerts_group_per_device_within_the_window() {
        let mut i = Incident::open("inc-1", alert("pump-1", T0, Severity::Medium), "t");
        assert!(i.takes("pump-1", T0 + GROUP_WINDOW_MS));
        assert!(!i.takes("pump-2", T0));
        assert!(!i.takes("pump-1", T0 + GROUP_WINDOW_MS + 1));
        i.attach(alert("pump-1", T0 + 10, Severity::Critical));
        assert_eq!(i.severity, Severity::Critical);
        i.advance(Phase::Closed, T0 + 20).unwrap();
        assert!(!i.takes("pump-1", T0 + 30));
    }

    #[test]
    fn phases_move_forward_only_and_a_closed_incident_is_final() {
        let mut i = Incident::open("inc-1", alert("pump-1", T0, Severity::High), "t");
        i.advance(Phase::Contained, T0 + 1).unwrap();
        assert_eq!(
            i.advance(Phase::Analysing, T0 + 2),
            Err(IncidentError::Backwards {
                from: Phase::Contained,
                to: Phase::Analysing
            })
        );
        i.advance(Phase::Closed, T0 + 3).unwrap();
        assert_eq!(i.advance(Phase::Closed, T0 + 4), Err(IncidentError::Closed));
    }

    #[test]
    fn reporting_clocks_start_at_confirmation() {
        let mut i = Incident::open("inc-1", alert("pump-1", T0, Severity::High), "t");
        assert!(i.clocks(T0).is_empty(), "no clock before confirmation");
        i.confirm(Confirmation {
            at_ms: T0,
            by: "sam".into(),
            cra: Some(CraKind::SevereIncident),
            personal_data: true,
            fix_available_at_ms: None,
        })
        .unwrap();
        assert_eq!(i.phase, Phase::Analysing);
        let now = T0 + 30 * HOUR;
        let c = i.clocks(now);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].due_at_ms, Some(T0 + 24 * HOUR));
        assert_eq!(
            c[0].remaining_ms,
            Some(-6 * HOUR),
            "the early warning is 6 h overdue"
        );
        assert_eq!(c[1].due_at_ms, Some(T0 + 72 * HOUR));
        // Notification 2026-12-06T10:00Z; final report one month later: 2027-01-06T10:00Z.
        assert_eq!(c[2].due_at_ms, Some(1_799_229_600_000));
        assert_eq!(c[3].due_at_ms, Some(T0 + 60 * DAY));
        assert!(matches!(
            i.confirm(Confirmation {
                at_ms: T0 + 1,
                by: "x".into(),
                cra: None,
                personal_data: false,
                fix_available_at_ms: None
            }),
            Err(IncidentError::AlreadyConfirmed { .. })
        ));
    }

    #[test]
    fn the_exploited_vulnerability_final_report_waits_for_the_fix() {
        let mut i = Incident::open("inc-2", alert("pump-1", T0, Severity::High), "t");
        i.confirm(Confirmation {
            at_ms: T0,
            by: "sam".into(),
            cra: Some(CraKind::ExploitedVulnerability),
            personal_data: false,
            fix_available_at_ms: None,
        })
        .unwrap();
        assert_eq!(i.clocks(T0)[2].due_at_ms, None);
        i.fix_available(T0 + 5 * DAY);
        assert_eq!(i.clocks(T0)[2].due_at_ms, Some(T0 + 19 * DAY));
        assert_eq!(
            i.clocks(T0).len(),
            3,
            "no HIPAA clock without personal data"
        );
    }

    #[test]
    fn months_are_calendar_months() {
        // 2027-01-31T00:00Z + 1 month = 2027-02-28T00:00Z; 2028 is a leap year.
        let jan31 = 1_801_353_600_000;
        assert_eq!(add_months(jan31, 1), jan31 + 28 * DAY);
        let jan31_2028 = jan31 + 365 * DAY;
        assert_eq!(add_months(jan31_2028, 1), jan31_2028 + 29 * DAY);
        assert_eq!(add_months(T0, 12), T0 + 365 * DAY);
    }

    #[test]
    fn the_last_quarantine_or_release_decides() {
        let mut i = Incident::open("inc-1", alert("pump-1", T0, Severity::High), "t");
        let act = |playbook: &str, at| Action {
            playbook: playbook.into(),
            device: "pump-1".into(),
            by: "sam".into(),
            at_ms: at,
            detail: String::new(),
        };
        assert!(!i.quarantines("pump-1"));
        i.record(act("quarantine", T0 + 1));
        assert!(i.quarantines("pump-1"));
        i.record(act("release", T0 + 2));
        assert!(!i.quarantines("pump-1"));
    }
}
