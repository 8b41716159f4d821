//! The clinical rules: readings physically impossible for an attached sensor, and changes no
//! attached sensor shows, judged with the device class's own conventions (what it sends for
//! "no reading", its ranges, its largest steps), so a sensor that is off is not physiology.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Alert, Evidence, Severity, technique};
use crate::telemetry::{ClinicalSignal, SensorState};

/// How a device class reports clinical readings, so that the clinical rules judge physiology
/// and not a sensor that is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicalPolicy {
    /// Values the device sends for "no reading" (a sensor off or not attached): never judged
    /// as physiology. Default `[0]`, what monitors send; an infusion rate of 0 is a pump at
    /// rest, which the range allows anyway.
    #[serde(default = "default_no_reading")]
    pub no_reading: Vec<f64>,
    /// Ranges replacing medsec's ([`ClinicalSignal::plausible`]), per signal: `[low, high]`.
    #[serde(default)]
    pub ranges: BTreeMap<ClinicalSignal, [f64; 2]>,
    /// The largest change between two readings of a signal at most `jump_window_secs` apart,
    /// per signal, replacing medsec's ([`default_max_step`]).
    #[serde(default)]
    pub max_step: BTreeMap<ClinicalSignal, f64>,
    /// Two readings further apart than this are not compared (default 60 s).
    #[serde(default = "default_jump_window")]
    pub jump_window_secs: u64,
}

impl Default for ClinicalPolicy {
    fn default() -> Self {
        Self {
            no_reading: default_no_reading(),
            ranges: BTreeMap::new(),
            max_step: BTreeMap::new(),
            jump_window_secs: default_jump_window(),
        }
    }
}

fn default_no_reading() -> Vec<f64> {
    vec![0.0]
}

fn default_jump_window() -> u64 {
    60
}

/// The largest change between two readings within a minute that an attached sensor on a
/// living patient can show: beyond it the data was altered (or the sensor failed). Infusion
/// rates are not judged: a pump's rate changes at a touch.
pub fn default_max_step(signal: ClinicalSignal) -> Option<f64> {
    match signal {
        ClinicalSignal::Temperature => Some(3.0),
        ClinicalSignal::Spo2 => Some(20.0),
        ClinicalSignal::PulseRate | ClinicalSignal::HeartRate => Some(60.0),
        ClinicalSignal::Systolic => Some(60.0),
        ClinicalSignal::Diastolic => Some(40.0),
        ClinicalSignal::RespirationRate => Some(30.0),
        ClinicalSignal::InfusionRate => None,
    }
}

impl ClinicalPolicy {
    fn range(&self, signal: ClinicalSignal) -> std::ops::RangeInclusive<f64> {
        self.ranges
            .get(&signal)
            .map_or_else(|| signal.plausible(), |[lo, hi]| *lo..=*hi)
    }

    fn step(&self, signal: ClinicalSignal) -> Option<f64> {
        self.max_step
            .get(&signal)
            .copied()
            .or_else(|| default_max_step(signal))
    }

    fn no_reading(&self, value: f64) -> bool {
        self.no_reading
            .iter()
            .any(|x| (x - value).abs() < f64::EPSILON)
    }

    /// Judges one reading (of a batch, in order): a sensor not measuring, or the class's "no
    /// reading" value, is not physiology; a value out of range is `clinical-implausible`; a
    /// change too fast since the signal's last reading (`last_reading`, kept across the batch)
    /// is `clinical-jump`.
    pub(super) fn judge(
        &self,
        at_ms: i64,
        signal: ClinicalSignal,
        value: f64,
        state: SensorState,
        last_reading: &mut BTreeMap<ClinicalSignal, (i64, f64)>,
        alerts: &mut Vec<Alert>,
    ) {
        // A sensor that says it is not measuring, or the device's "no reading" value,
        // is not physiology: neither judged nor compared with the next reading.
        if state != crate::telemetry::SensorState::Measuring || self.no_reading(value) {
            return;
        }
        let name = serde_json::to_value(signal)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let range = self.range(signal);
        if !range.contains(&value) {
            alerts.push(Alert {
                at_ms,
                rule: "clinical-implausible".into(),
                severity: Severity::Critical,
                technique: technique("T0832", "Manipulation of View"),
                summary: format!(
                    "{name} reading {value} is physically impossible for an attached sensor: a failing sensor or altered data"
                ),
                evidence: vec![Evidence {
                    feature: name.clone(),
                    observed: value.to_string(),
                    expected: format!("{} to {}", range.start(), range.end()),
                }],
            });
        }
        let window_ms =
            i64::try_from(self.jump_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if let (Some(step), Some((then, before))) = (self.step(signal), last_reading.get(&signal))
            && at_ms.saturating_sub(*then) <= window_ms
            && (value - before).abs() > step
        {
            alerts.push(Alert {
                at_ms,
                rule: "clinical-jump".into(),
                severity: Severity::High,
                technique: technique("T0832", "Manipulation of View"),
                summary: format!(
                    "{name} jumped from {before} to {value} within {} s: no attached sensor on a patient changes so fast",
                    at_ms.saturating_sub(*then) / 1000
                ),
                evidence: vec![Evidence {
                    feature: name,
                    observed: format!("{before} -> {value}"),
                    expected: format!("a change of at most {step}"),
                }],
            });
        }
        last_reading.insert(signal, (at_ms, value));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ClassPolicy, Policy, evaluate};
    use crate::telemetry::Batch;

    fn batch(events: &str) -> Batch {
        Batch::parse(
            format!(r#"{{"sequence": 1, "events": [{events}]}}"#).as_bytes(),
            100,
        )
        .unwrap()
    }

    #[test]
    fn a_sensor_that_is_off_is_not_physiology_and_impossible_jumps_are() {
        let p = ClassPolicy::default();
        let rules = |events: &str| -> Vec<String> {
            evaluate(&p, &batch(events))
                .into_iter()
                .map(|a| a.rule)
                .collect()
        };
        let reading = |at: i64, signal: &str, value: f64, state: &str| {
            let state = if state.is_empty() {
                String::new()
            } else {
                format!(r#", "state": "{state}""#)
            };
            format!(
                r#"{{"kind": "clinical", "at_ms": {at}, "signal": "{signal}", "value": {value}{state}}}"#
            )
        };
        // Zeros (what monitors send with no sensor attached) and readings a sensor marks as
        // not measuring are never judged.
        for r in [
            reading(1, "spo2", 0.0, ""),
            reading(1, "heart_rate", 0.0, ""),
            reading(1, "spo2", 12.0, "detached"),
            reading(1, "systolic", 500.0, "calibrating"),
            reading(1, "temperature", 3.0, "no_patient"),
            reading(1, "respiration_rate", 0.0, "off"),
        ] {
            assert_eq!(rules(&r), Vec::<String>::new(), "{r}");
        }
        // A skin probe's 24 °C is possible on a living patient; 12 °C is not.
        assert!(rules(&reading(1, "temperature", 24.4, "")).is_empty());
        assert_eq!(
            rules(&reading(1, "temperature", 12.0, "")),
            ["clinical-implausible"]
        );
        // A jump no attached sensor shows within a minute: from 97 % to 55 % SpO2.
        let jump = [
            reading(1_000, "spo2", 97.0, ""),
            reading(2_000, "spo2", 55.0, ""),
        ]
        .join(",");
        assert_eq!(rules(&jump), ["clinical-jump"]);
        // The same values two minutes apart, or with the sensor off between them, are not
        // compared.
        let apart = [
            reading(1_000, "spo2", 97.0, ""),
            reading(121_000, "spo2", 55.0, ""),
        ]
        .join(",");
        assert!(rules(&apart).is_empty());
        let off_between = [
            reading(1_000, "heart_rate", 80.0, ""),
            reading(1_500, "heart_rate", 0.0, ""),
            reading(2_000, "heart_rate", 82.0, ""),
        ]
        .join(",");
        assert!(rules(&off_between).is_empty());
        // A pump's rate changes at a touch: never a jump.
        let pump = [
            reading(1_000, "infusion_rate", 0.0, ""),
            reading(2_000, "infusion_rate", 900.0, ""),
        ]
        .join(",");
        assert!(rules(&pump).is_empty());
    }

    #[test]
    fn a_profile_declares_its_own_conventions() {
        let policy = Policy::from_json(
            r#"{"classes": {"core-temp-monitor": {"clinical": {
                "no_reading": [-1], "ranges": {"temperature": [30, 43]},
                "max_step": {"temperature": 0.5}, "jump_window_secs": 300}}}}"#,
        )
        .unwrap();
        let class = policy.class("core-temp-monitor");
        let rules = |events: &str| -> Vec<String> {
            evaluate(class, &batch(events))
                .into_iter()
                .map(|a| a.rule)
                .collect()
        };
        let t = |at: i64, v: f64| {
            format!(
                r#"{{"kind": "clinical", "at_ms": {at}, "signal": "temperature", "value": {v}}}"#
            )
        };
        assert!(rules(&t(1, -1.0)).is_empty(), "its own no-reading value");
        assert_eq!(
            rules(&t(1, 0.0)),
            ["clinical-implausible"],
            "0 is a reading here"
        );
        assert_eq!(rules(&t(1, 28.0)), ["clinical-implausible"]);
        assert_eq!(
            rules(&[t(1_000, 37.0), t(200_000, 37.8)].join(",")),
            ["clinical-jump"]
        );
        assert!(
            Policy::from_json(r#"{"default": {"clinical": {"ranges": {"glucose": [1, 2]}}}}"#)
                .is_err()
        );
    }
}
