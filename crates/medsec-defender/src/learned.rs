//! Learned baselines of a device class, trained from its stored telemetry and scored on every
//! batch as it arrives.
//!
//! - **What is learned.** A [`RobustBaseline`] over each flow's volumes and duration, and one
//!   per numeric metric (bytes out, authorisation failures, …): median and robust scale, so the
//!   statistical threshold of each is learned from the class, not set by hand.
//! - **Little data.** Medians need few rows: 30 flows (or 30 readings of a metric) are enough,
//!   which a class of a few devices sends within minutes.
//! - **Poisoning.** A median ignores up to half of its rows; on top of that each device
//!   contributes at most `max_rows_per_device` rows (spread evenly over its data), so one
//!   compromised device cannot pull its class's baseline, and batches that already raised an
//!   alert are left out by the caller.
//! - **Explained.** An alert names the rows' most deviant features, observed against the
//!   baseline median, in robust standard deviations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::baseline::{FeatureSpec, Features, MIN_TRAINING_ROWS, RobustBaseline, Tail};
use crate::rules::{Alert, Evidence, Severity, technique};
use crate::telemetry::{Batch, Event};

/// The flow features, in row order.
fn flow_features() -> Result<Features, Error> {
    Features::new(vec![
        FeatureSpec::new("bytes_out", Tail::Both, true),
        FeatureSpec::new("bytes_in", Tail::Both, true),
        FeatureSpec::new("packets_out", Tail::Both, true),
        FeatureSpec::new("packets_in", Tail::Both, true),
        // Added delay is what an adversary in the middle costs; a faster flow is no threat.
        FeatureSpec::new("duration_ms", Tail::Upper, true),
    ])
}

fn flow_row(e: &Event) -> Option<Vec<f64>> {
    match e {
        Event::Flow {
            bytes_out,
            bytes_in,
            packets_out,
            packets_in,
            duration_ms,
            ..
        } => Some(vec![
            *bytes_out as f64,
            *bytes_in as f64,
            *packets_out as f64,
            *packets_in as f64,
            *duration_ms,
        ]),
        _ => None,
    }
}

fn metric_value(e: &Event) -> Option<(String, f64)> {
    match e {
        Event::Metric {
            name,
            value: Some(v),
            ..
        } => {
            let name = serde_json::to_value(name).ok()?.as_str()?.to_owned();
            Some((name, *v))
        }
        _ => None,
    }
}

/// A device class's learned baseline: what was learned, from what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBaseline {
    /// The model (device class).
    pub model: String,
    /// Training data received from (Unix ms).
    pub trained_from_ms: i64,
    /// … to.
    pub trained_to_ms: i64,
    /// Devices whose telemetry was used.
    pub devices: usize,
    /// Flow rows used (after the per-device cap).
    pub flow_rows: usize,
    /// The flow baseline, if there were enough flows.
    pub flow: Option<RobustBaseline>,
    /// Per numeric metric, if there were enough readings.
    pub metrics: BTreeMap<String, RobustBaseline>,
}

/// Collects a class's training rows device by device.
#[derive(Debug)]
pub struct Trainer {
    max_rows_per_device: usize,
    flows: BTreeMap<String, Vec<Vec<f64>>>,
    metrics: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

/// At most `cap` of `rows`, spread evenly over them (all of them if they are fewer).
fn spread<T: Clone>(rows: &[T], cap: usize) -> Vec<T> {
    if rows.len() <= cap {
        return rows.to_vec();
    }
    (0..cap)
        .filter_map(|i| rows.get(i * rows.len() / cap).cloned())
        .collect()
}

/// The rows each device may give: `max`, and no more than the median device has.
fn capped(counts: impl Iterator<Item = usize>, max: usize) -> usize {
    let mut counts: Vec<usize> = counts.collect();
    counts.sort_unstable();
    // The lower median: of two devices, the smaller one sets the cap.
    let median = counts
        .get(counts.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(max);
    max.min(median).max(1)
}

impl Trainer {
    /// A trainer taking at most `max_rows_per_device` flows (and readings of each metric) from
    /// each device.
    pub fn new(max_rows_per_device: usize) -> Self {
        Self {
            max_rows_per_device: max_rows_per_device.max(1),
            flows: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }

    /// Adds one stored batch of `device`.
    pub fn add(&mut self, device: &str, batch: &Batch) {
        for e in &batch.events {
            if let Some(row) = flow_row(e) {
                self.flows.entry(device.to_owned()).or_default().push(row);
            } else if let Some((name, v)) = metric_value(e) {
                self.metrics
                    .entry(name)
                    .or_default()
                    .entry(device.to_owned())
                    .or_default()
                    .push(v);
            }
        }
    }

    /// Fits the baselines; `TooFewRows` when neither flows nor any metric had enough.
    ///
    /// No device contributes more rows than `max_rows_per_device`, nor more than the median
    /// device does: a device flooding its class's data weighs as much as a typical one, so with
    /// four honest devices it holds a fifth of the rows, inside what the median and the
    /// quartiles ignore.
    pub fn fit(self, model: &str, from_ms: i64, to_ms: i64) -> Result<ClassBaseline, Error> {
        let cap = capped(self.flows.values().map(Vec::len), self.max_rows_per_device);
        let mut devices: std::collections::BTreeSet<&String> = self.flows.keys().collect();
        let rows: Vec<Vec<f64>> = self.flows.values().flat_map(|r| spread(r, cap)).collect();
        let flow_rows = rows.len();
        let flow = if flow_rows >= MIN_TRAINING_ROWS {
            Some(RobustBaseline::fit(flow_features()?, &rows)?)
        } else {
            None
        };
        let mut metrics = BTreeMap::new();
        for (name, by_device) in &self.metrics {
            devices.extend(by_device.keys());
            let cap = capped(by_device.values().map(Vec::len), self.max_rows_per_device);
            let values: Vec<Vec<f64>> = by_device
                .values()
                .flat_map(|v| spread(v, cap))
                .map(|v| vec![v])
                .collect();
            if values.len() >= MIN_TRAINING_ROWS {
                let features = Features::new(vec![FeatureSpec::new(name, Tail::Both, true)])?;
                metrics.insert(name.clone(), RobustBaseline::fit(features, &values)?);
            }
        }
        if flow.is_none() && metrics.is_empty() {
            return Err(Error::TooFewRows {
                needed: MIN_TRAINING_ROWS,
                got: flow_rows,
            });
        }
        Ok(ClassBaseline {
            model: model.to_owned(),
            trained_from_ms: from_ms,
            trained_to_ms: to_ms,
            devices: devices.len(),
            flow_rows,
            flow,
            metrics,
        })
    }
}

/// Medium past the threshold, high past twice it.
fn severity(deviation: f64, threshold: f64) -> Severity {
    if deviation >= 2.0 * threshold {
        Severity::High
    } else {
        Severity::Medium
    }
}

/// The ATT&CK for ICS technique an unusual feature points to.
fn technique_of(feature: &str) -> crate::rules::Technique {
    match feature {
        "bytes_out" | "packets_out" => technique("T0882", "Theft of Operational Information"),
        "bytes_in" | "packets_in" => technique("T0867", "Lateral Tool Transfer"),
        "duration_ms" => technique("T0830", "Adversary-in-the-Middle"),
        "authorization_failures" | "connection_attempts" => technique("T0859", "Valid Accounts"),
        _ => technique("T0814", "Denial of Service"),
    }
}

impl ClassBaseline {
    /// Scores a batch: one alert for its flows if any deviates by `threshold` robust standard
    /// deviations or more in some feature (explained by the worst flow's top three features),
    /// and one per metric that does. `version` is the baseline's, for the alert's rule.
    pub fn score(&self, batch: &Batch, threshold: f64, version: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if let Some(flow) = &self.flow {
            let (mut flows, mut over, mut worst) = (0usize, 0usize, None::<(f64, i64, Vec<f64>)>);
            for e in &batch.events {
                let Some(row) = flow_row(e) else { continue };
                flows += 1;
                let Ok(s) = flow.score(&row, 1) else { continue };
                let d = s.top.first().map_or(0.0, |c| c.deviation);
                if d >= threshold {
                    over += 1;
                    if worst.as_ref().is_none_or(|w| d > w.0) {
                        worst = Some((d, e.at_ms(), row));
                    }
                }
            }
            if let Some((d, at_ms, row)) = worst
                && let Ok(s) = flow.score(&row, 3)
            {
                let top = s.top.first().map(|c| c.feature.clone()).unwrap_or_default();
                alerts.push(Alert {
                    at_ms,
                    rule: format!("baseline:flow@v{version}"),
                    severity: severity(d, threshold),
                    technique: technique_of(&top),
                    summary: format!(
                        "{over} of {flows} flows deviate from the {} class baseline (v{version}) \
                         by {threshold} robust standard deviations or more; the worst by {d:.1}, \
                         in {top}",
                        self.model
                    ),
                    evidence: s
                        .top
                        .iter()
                        .map(|c| Evidence {
                            feature: c.feature.clone(),
                            observed: format!("{}", c.observed),
                            expected: format!(
                                "about {:.0} (deviation {:.1} robust SD)",
                                c.baseline, c.deviation
                            ),
                        })
                        .collect(),
                });
            }
        }
        let mut worst: BTreeMap<&str, (f64, i64, f64, f64)> = BTreeMap::new();
        for e in &batch.events {
            let Some((name, v)) = metric_value(e) else {
                continue;
            };
            let Some((key, model)) = self.metrics.get_key_value(&name) else {
                continue;
            };
            let Ok(s) = model.score(&[v], 1) else {
                continue;
            };
            if let Some(c) = s.top.first()
                && c.deviation >= threshold
                && worst.get(key.as_str()).is_none_or(|w| c.deviation > w.0)
            {
                worst.insert(key, (c.deviation, e.at_ms(), v, c.baseline));
            }
        }
        for (name, (d, at_ms, v, median)) in worst {
            alerts.push(Alert {
                at_ms,
                rule: format!("baseline:{name}@v{version}"),
                severity: severity(d, threshold),
                technique: technique_of(name),
                summary: format!(
                    "{name} {v} deviates from the {} class baseline (v{version}) by {d:.1} robust \
                     standard deviations",
                    self.model
                ),
                evidence: vec![Evidence {
                    feature: name.to_owned(),
                    observed: format!("{v}"),
                    expected: format!("about {median:.0}"),
                }],
            });
        }
        alerts
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    fn batch(events: Vec<String>) -> Batch {
        Batch::parse(
            format!(r#"{{"sequence": 1, "events": [{}]}}"#, events.join(",")).as_bytes(),
            100_000,
        )
        .unwrap()
    }

    fn flow(bytes_out: u64, duration_ms: f64) -> String {
        format!(
            r#"{{"kind": "flow", "at_ms": 1, "remote": "10.0.1.5", "remote_port": 1111,
              "protocol": "tcp", "bytes_out": {bytes_out}, "bytes_in": 180, "packets_out": 4,
              "packets_in": 3, "duration_ms": {duration_ms}}}"#
        )
    }

    fn normal(r: &mut SplitMix64) -> String {
        flow(
            450 + (r.next_f64() * 100.0) as u64,
            10.0 + r.next_f64() * 4.0,
        )
    }

    fn trained(r: &mut SplitMix64, poison: Option<u64>) -> ClassBaseline {
        let mut t = Trainer::new(200);
        for d in 0..4 {
            let events: Vec<String> = (0..100).map(|_| normal(r)).collect();
            t.add(&format!("pump-{d}"), &batch(events));
        }
        if let Some(bytes) = poison {
            // One compromised device floods its class's training data with exfiltration.
            let events: Vec<String> = (0..5_000).map(|_| flow(bytes, 12.0)).collect();
            t.add("pump-evil", &batch(events));
        }
        t.fit("pump", 0, 1).unwrap()
    }

    #[test]
    fn an_exfiltrating_flow_is_caught_and_explained_and_normal_flows_are_not() {
        let mut r = SplitMix64::new(7);
        let b = trained(&mut r, None);
        assert_eq!((b.devices, b.flow_rows), (4, 400));
        let quiet: Vec<String> = (0..200).map(|_| normal(&mut r)).collect();
        assert!(b.score(&batch(quiet), 8.0, 1).is_empty());
        let mut events: Vec<String> = (0..20).map(|_| normal(&mut r)).collect();
        events.push(flow(4_000_000, 11.0));
        let alerts = b.score(&batch(events), 8.0, 3);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.rule, "baseline:flow@v3");
        assert_eq!(a.technique.id, "T0882");
        assert_eq!(a.evidence[0].feature, "bytes_out");
        assert_eq!(a.evidence[0].observed, "4000000");
        assert!(a.summary.contains("1 of 21 flows"), "{}", a.summary);
        // A slowed flow (interception) is caught by its duration; a faster one is not.
        let slow = b.score(&batch(vec![flow(500, 900.0)]), 8.0, 3);
        assert_eq!(slow[0].technique.id, "T0830", "{slow:?}");
        assert!(b.score(&batch(vec![flow(500, 0.5)]), 8.0, 3).is_empty());
    }

    #[test]
    fn one_device_flooding_the_training_data_does_not_move_its_class_baseline() {
        let mut r = SplitMix64::new(9);
        let clean = trained(&mut r, None);
        let poisoned = trained(&mut r, Some(4_000_000));
        let median = |b: &ClassBaseline| b.flow.as_ref().unwrap().baselines()[0].median;
        // The flooding device gives 100 rows, as many as the median device: a fifth.
        assert!(
            (median(&clean) - median(&poisoned)).abs() < 0.2,
            "{} vs {}",
            median(&clean),
            median(&poisoned)
        );
        let alerts = poisoned.score(&batch(vec![flow(4_000_000, 11.0)]), 8.0, 1);
        assert_eq!(
            alerts.len(),
            1,
            "the poison is still an anomaly: {alerts:?}"
        );
    }

    #[test]
    fn metrics_learn_their_own_thresholds_and_too_little_data_is_named() {
        let mut t = Trainer::new(1_000);
        let mut r = SplitMix64::new(3);
        for d in 0..3 {
            let events: Vec<String> = (0..20)
                .map(|_| {
                    format!(
                        r#"{{"kind": "metric", "at_ms": 1, "name": "authorization_failures", "value": {}}}"#,
                        (r.next_f64() * 3.0).floor()
                    )
                })
                .collect();
            t.add(&format!("m-{d}"), &batch(events));
        }
        let b = t.fit("monitor", 0, 1).unwrap();
        assert!(b.flow.is_none());
        let burst = batch(vec![
            r#"{"kind": "metric", "at_ms": 1, "name": "authorization_failures", "value": 5000}"#
                .into(),
        ]);
        let alerts = b.score(&burst, 8.0, 2);
        assert_eq!(alerts[0].rule, "baseline:authorization_failures@v2");
        assert_eq!(alerts[0].technique.id, "T0859");
        let e = Trainer::new(10).fit("empty", 0, 1).unwrap_err();
        assert!(matches!(e, Error::TooFewRows { .. }), "{e}");
    }
}
