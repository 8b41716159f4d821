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
//! - **Per device, too.** A device with 30 flows (or readings of a metric) of its own also
//!   gets its own medians and scales, so a pump that always sent 500 bytes is caught sending
//!   50 kB even when other pumps of its class send that much. Its scales are never narrower
//!   than its class's or [`DEVICE_MIN_SCALE`], whichever is narrower, so a device that
//!   happened to be steady in training is not held to nothing. A device compromised while its baseline was learned
//!   would have learned its own attack, which is why the class baseline is always scored too.
//! - **Jointly unusual flows.** An isolation forest over the class's flows finds flows that
//!   are a little unusual in several features at once, none of them far enough out for the
//!   per-feature baselines. One training flow in twenty scores above the forest's cut (its
//!   95th percentile); a batch raises an alert when so many of its flows do that chance would
//!   explain it less than once in 10⁶ batches ([`FOREST_CHANCE`], a binomial tail). A single
//!   odd flow is the per-feature baselines' to catch; the forest catches a shift in a batch.
//! - **Explained.** An alert names the rows' most deviant features, observed against the
//!   baseline median, in robust standard deviations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::{
    FeatureBaseline, FeatureSpec, Features, MIN_TRAINING_ROWS, RobustBaseline, Tail,
};
use crate::rules::{Alert, Evidence, Severity, technique};
use crate::telemetry::{Batch, Event};
use crate::{Error, ForestOptions, IsolationForest};

mod calibration;
pub use calibration::{CALIBRATION_FPR, CALIBRATION_MAX_FACTOR, CALIBRATION_SHARE};

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
    /// The isolation forest over the class's flows, if there were enough flows and trees were
    /// asked for.
    #[serde(default)]
    pub forest: Option<FlowForest>,
    /// Each device's own baseline, for the devices that sent enough.
    #[serde(default)]
    pub per_device: BTreeMap<String, DeviceBaseline>,
    /// The flow threshold calibrated on the training window's held-out latest slice (the
    /// deviation at most [`CALIBRATION_FPR`] of its flows reach, the median device's), when
    /// there were enough flows: flows alert at this or the policy's threshold, whichever is
    /// higher (at most [`CALIBRATION_MAX_FACTOR`] times the policy's).
    #[serde(default)]
    pub flow_threshold: Option<f64>,
    /// Flows in that held-out slice.
    #[serde(default)]
    pub calibration_flows: usize,
}

/// A device's own medians and scales, for its class's flow features and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceBaseline {
    /// Flow rows it was learned from (0 if too few for a flow baseline).
    pub flow_rows: usize,
    /// Per flow feature, in the class's order; empty if the device sent too few flows.
    #[serde(default)]
    pub flow: Vec<FeatureBaseline>,
    /// Per numeric metric it sent enough readings of.
    #[serde(default)]
    pub metrics: BTreeMap<String, FeatureBaseline>,
}

/// A class's isolation forest over flows, with the score its training flows stay under
/// [`FOREST_QUANTILE`] of the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowForest {
    /// The forest.
    pub forest: IsolationForest,
    /// The [`FOREST_QUANTILE`] quantile of its training flows' scores.
    pub cut: f64,
}

/// A device's own robust scale is at least its class's or this, whichever is smaller (in the
/// features' log units: 0.25 is a factor of 1.28, so at the default threshold of 8 a value must
/// be 7.4 times the device's median or less than a seventh of it).
pub const DEVICE_MIN_SCALE: f64 = 0.25;

/// The share of training flows that score at or below a forest's cut.
pub const FOREST_QUANTILE: f64 = 0.95;

/// The chance below which a batch's count of unusual flows is not put down to chance.
pub const FOREST_CHANCE: f64 = 1e-6;

/// The fewest unusual flows in a batch that the forest alerts on.
const FOREST_MIN_FLOWS: usize = 3;

/// Trees in a class's forest unless asked otherwise.
pub const DEFAULT_FOREST_TREES: usize = 100;

/// Collects a class's training rows device by device.
#[derive(Debug)]
pub struct Trainer {
    max_rows_per_device: usize,
    forest: ForestOptions,
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
            forest: ForestOptions {
                trees: DEFAULT_FOREST_TREES,
                ..ForestOptions::default()
            },
            flows: BTreeMap::new(),
            metrics: BTreeMap::new(),
        }
    }

    /// Grows the class's forest with `trees` trees (0: no forest) from `seed`.
    #[must_use]
    pub fn with_forest(mut self, trees: usize, seed: u64) -> Self {
        self.forest.trees = trees;
        self.forest.seed = seed;
        self
    }

    /// Adds one stored batch of `device`; a device's batches are added oldest first (its
    /// latest flows are the calibration slice).
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
        let (flow_threshold, calibration_flows) = self.calibrate()?;
        let cap = capped(self.flows.values().map(Vec::len), self.max_rows_per_device);
        let mut devices: std::collections::BTreeSet<&String> = self.flows.keys().collect();
        let rows: Vec<Vec<f64>> = self.flows.values().flat_map(|r| spread(r, cap)).collect();
        let flow_rows = rows.len();
        let flow = if flow_rows >= MIN_TRAINING_ROWS {
            Some(RobustBaseline::fit(flow_features()?, &rows)?)
        } else {
            None
        };
        let forest = match &flow {
            Some(_) if self.forest.trees > 0 => Some(FlowForest::fit(&rows, self.forest)?),
            _ => None,
        };
        let mut per_device: BTreeMap<String, DeviceBaseline> = BTreeMap::new();
        if let Some(class) = &flow {
            for (device, rows) in &self.flows {
                if let Some(own) =
                    own_baseline(flow_features()?, rows, class, self.max_rows_per_device)?
                {
                    per_device.insert(
                        device.clone(),
                        DeviceBaseline {
                            flow_rows: rows.len().min(self.max_rows_per_device),
                            flow: own,
                            metrics: BTreeMap::new(),
                        },
                    );
                }
            }
        }
        let mut metrics = BTreeMap::new();
        for (name, by_device) in &self.metrics {
            devices.extend(by_device.keys());
            let cap = capped(by_device.values().map(Vec::len), self.max_rows_per_device);
            let values: Vec<Vec<f64>> = by_device
                .values()
                .flat_map(|v| spread(v, cap))
                .map(|v| vec![v])
                .collect();
            if values.len() < MIN_TRAINING_ROWS {
                continue;
            }
            let features = Features::new(vec![FeatureSpec::new(name, Tail::Both, true)])?;
            let class = RobustBaseline::fit(features.clone(), &values)?;
            for (device, readings) in by_device {
                let rows: Vec<Vec<f64>> = readings.iter().map(|v| vec![*v]).collect();
                if let Some(own) =
                    own_baseline(features.clone(), &rows, &class, self.max_rows_per_device)?
                    && let Some(own) = own.into_iter().next()
                {
                    per_device
                        .entry(device.clone())
                        .or_insert_with(|| DeviceBaseline {
                            flow_rows: 0,
                            flow: Vec::new(),
                            metrics: BTreeMap::new(),
                        })
                        .metrics
                        .insert(name.clone(), own);
                }
            }
            metrics.insert(name.clone(), class);
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
            forest,
            per_device,
            flow_threshold,
            calibration_flows,
        })
    }
}

/// A device's own medians and scales from its `rows` (at most `cap` of them,
/// spread over its data), each scale widened to its class's or [`DEVICE_MIN_SCALE`];
/// `None` if it sent too few.
fn own_baseline(
    features: Features,
    rows: &[Vec<f64>],
    class: &RobustBaseline,
    cap: usize,
) -> Result<Option<Vec<FeatureBaseline>>, Error> {
    let rows = spread(rows, cap);
    if rows.len() < MIN_TRAINING_ROWS {
        return Ok(None);
    }
    let own = RobustBaseline::fit(features, &rows)?;
    Ok(Some(
        own.baselines()
            .iter()
            .zip(class.baselines())
            .map(|(o, c)| FeatureBaseline {
                median: o.median,
                scale: o.scale.max(c.scale.min(DEVICE_MIN_SCALE)),
            })
            .collect(),
    ))
}

impl FlowForest {
    fn fit(rows: &[Vec<f64>], options: ForestOptions) -> Result<Self, Error> {
        let forest = IsolationForest::fit(flow_features()?, rows, options)?;
        let mut scores: Vec<f64> = rows.iter().filter_map(|r| forest.score(r).ok()).collect();
        scores.sort_by(f64::total_cmp);
        let at = (scores.len().saturating_sub(1) as f64 * FOREST_QUANTILE).round() as usize;
        let cut = scores.get(at).copied().unwrap_or(1.0);
        Ok(Self { forest, cut })
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space so a large `n` does not underflow.
fn binomial_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // ln P(X = k) = ln C(n, k) + k ln p + (n − k) ln(1 − p), then P(X = j + 1) from P(X = j).
    let ln_choose: f64 = (1..=k)
        .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
        .sum();
    let mut ln_term = ln_choose + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln();
    let ratio = (p / (1.0 - p)).ln();
    let mut total = 0.0;
    for j in k..=n {
        let term = ln_term.exp();
        total += term;
        if term < total * 1e-16 {
            break;
        }
        ln_term += ((n - j) as f64).ln() - ((j + 1) as f64).ln() + ratio;
    }
    total.min(1.0)
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

/// The worst of a batch's flows against `baselines` (the class's, or a device's own), as one
/// alert if any deviates by `threshold` or more. `label` gives the alert's rule and what it
/// deviates from; it is called only when there is an alert, as most batches raise none.
fn flow_alert(
    model: &RobustBaseline,
    baselines: &[FeatureBaseline],
    batch: &Batch,
    threshold: f64,
    label: impl FnOnce() -> (String, String),
) -> Option<Alert> {
    let (mut flows, mut over, mut worst) = (0usize, 0usize, None::<(f64, i64, Vec<f64>)>);
    for e in &batch.events {
        let Some(row) = flow_row(e) else { continue };
        flows += 1;
        let Ok(s) = model.score_against(baselines, &row, 1) else {
            continue;
        };
        let d = s.top.first().map_or(0.0, |c| c.deviation);
        if d >= threshold {
            over += 1;
            if worst.as_ref().is_none_or(|w| d > w.0) {
                worst = Some((d, e.at_ms(), row));
            }
        }
    }
    let (d, at_ms, row) = worst?;
    let s = model.score_against(baselines, &row, 3).ok()?;
    let top = s.top.first().map(|c| c.feature.clone()).unwrap_or_default();
    let (rule, against) = label();
    Some(Alert {
        at_ms,
        rule,
        severity: severity(d, threshold),
        technique: technique_of(&top),
        summary: format!(
            "{over} of {flows} flows deviate from {against} by {threshold} robust standard \
             deviations or more; the worst by {d:.1}, in {top}"
        ),
        evidence: s.top.iter().map(evidence).collect(),
    })
}

fn evidence(c: &crate::Contribution) -> Evidence {
    Evidence {
        feature: c.feature.clone(),
        observed: format!("{}", c.observed),
        expected: format!(
            "about {:.0} (deviation {:.1} robust SD)",
            c.baseline, c.deviation
        ),
    }
}

impl ClassBaseline {
    /// Scores a batch of `device`:
    ///
    /// - one alert for its flows if any deviates by `threshold` robust standard deviations or
    ///   more in some feature from the class baseline (explained by the worst flow's top three
    ///   features), or else from the device's own;
    /// - one when the forest finds more jointly unusual flows than chance explains;
    /// - one per metric that deviates, from the class's baseline or else the device's own.
    ///
    /// `version` is the baseline's, for the alert's rule.
    pub fn score(&self, device: &str, batch: &Batch, threshold: f64, version: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let own = self.per_device.get(device);
        if let Some(flow) = &self.flow {
            // The calibrated threshold raises the policy's, never lowers it, and at most
            // CALIBRATION_MAX_FACTOR times.
            let threshold = self.flow_threshold.map_or(threshold, |t| {
                t.clamp(threshold, threshold * CALIBRATION_MAX_FACTOR)
            });
            let class = flow_alert(flow, flow.baselines(), batch, threshold, || {
                (
                    format!("baseline:flow@v{version}"),
                    format!("the {} class baseline (v{version})", self.model),
                )
            });
            alerts.extend(class.or_else(|| {
                let own = own.filter(|o| !o.flow.is_empty())?;
                flow_alert(flow, &own.flow, batch, threshold, || {
                    (
                        format!("baseline:device:flow@v{version}"),
                        format!("{device}'s own baseline (v{version})"),
                    )
                })
            }));
            if let Some(forest) = &self.forest {
                alerts.extend(forest.alert(flow, batch, &self.model, version));
            }
        }
        // Per metric and per baseline (class, own): the worst reading.
        let mut worst: BTreeMap<(&str, bool), (f64, i64, f64, f64)> = BTreeMap::new();
        for e in &batch.events {
            let Some((name, v)) = metric_value(e) else {
                continue;
            };
            let Some((key, model)) = self.metrics.get_key_value(&name) else {
                continue;
            };
            let class = model
                .score(&[v], 1)
                .ok()
                .and_then(|s| s.top.into_iter().next());
            let (c, is_own) = match class {
                Some(c) if c.deviation >= threshold => (c, false),
                _ => {
                    let Some(b) = own.and_then(|o| o.metrics.get(&name)) else {
                        continue;
                    };
                    match model.score_against(std::slice::from_ref(b), &[v], 1) {
                        Ok(s) => match s.top.into_iter().next() {
                            Some(c) if c.deviation >= threshold => (c, true),
                            _ => continue,
                        },
                        Err(_) => continue,
                    }
                }
            };
            let slot = (key.as_str(), is_own);
            if worst.get(&slot).is_none_or(|w| c.deviation > w.0) {
                worst.insert(slot, (c.deviation, e.at_ms(), v, c.baseline));
            }
        }
        for ((name, is_own), (d, at_ms, v, median)) in worst {
            let (rule, against) = if is_own {
                (
                    format!("baseline:device:{name}@v{version}"),
                    format!("{device}'s own baseline (v{version})"),
                )
            } else {
                (
                    format!("baseline:{name}@v{version}"),
                    format!("the {} class baseline (v{version})", self.model),
                )
            };
            alerts.push(Alert {
                at_ms,
                rule,
                severity: severity(d, threshold),
                technique: technique_of(name),
                summary: format!(
                    "{name} {v} deviates from {against} by {d:.1} robust standard deviations"
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

impl FlowForest {
    /// One alert if more of the batch's flows score above the forest's cut than chance
    /// explains (binomial tail under [`FOREST_CHANCE`], and at least
    /// `FOREST_MIN_FLOWS`), explained by the most isolated flow's score and its features
    /// against the class baseline `flow`.
    fn alert(
        &self,
        flow: &RobustBaseline,
        batch: &Batch,
        model: &str,
        version: i64,
    ) -> Option<Alert> {
        let (mut flows, mut over, mut worst) = (0usize, 0usize, None::<(f64, i64, Vec<f64>)>);
        for e in &batch.events {
            let Some(row) = flow_row(e) else { continue };
            flows += 1;
            let Ok(score) = self.forest.score(&row) else {
                continue;
            };
            if score > self.cut {
                over += 1;
                if worst.as_ref().is_none_or(|w| score > w.0) {
                    worst = Some((score, e.at_ms(), row));
                }
            }
        }
        let share = 1.0 - FOREST_QUANTILE;
        let chance = binomial_tail(flows, over, share);
        if over < FOREST_MIN_FLOWS || chance >= FOREST_CHANCE {
            return None;
        }
        let (score, at_ms, row) = worst?;
        let explained = flow.score(&row, 3).ok()?;
        let top = explained
            .top
            .first()
            .map(|c| c.feature.clone())
            .unwrap_or_default();
        let mut evidence: Vec<Evidence> = vec![
            Evidence {
                feature: "unusual flows".into(),
                observed: format!("{over} of {flows}"),
                expected: format!(
                    "about {:.1} ({:.0} %); chance of {over} or more: {chance:.1e}",
                    flows as f64 * share,
                    share * 100.0
                ),
            },
            Evidence {
                feature: "isolation score".into(),
                observed: format!("{score:.3}"),
                expected: format!(
                    "at most {:.3} for {:.0} % of training flows",
                    self.cut,
                    FOREST_QUANTILE * 100.0
                ),
            },
        ];
        evidence.extend(explained.top.iter().map(self::evidence));
        Some(Alert {
            at_ms,
            rule: format!("baseline:forest@v{version}"),
            severity: if over * 2 >= flows {
                Severity::High
            } else {
                Severity::Medium
            },
            technique: technique_of(&top),
            summary: format!(
                "{over} of {flows} flows are more isolated than {:.0} % of the {model} class's \
                 training flows (v{version}), which chance explains with probability \
                 {chance:.1e}; the most isolated scores {score:.3}",
                FOREST_QUANTILE * 100.0
            ),
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    pub(super) fn batch(events: Vec<String>) -> Batch {
        Batch::parse(
            format!(r#"{{"sequence": 1, "events": [{}]}}"#, events.join(",")).as_bytes(),
            100_000,
        )
        .unwrap()
    }

    pub(super) fn flow(bytes_out: u64, duration_ms: f64) -> String {
        flow_with(bytes_out, 4, duration_ms)
    }

    fn flow_with(bytes_out: u64, packets_out: u64, duration_ms: f64) -> String {
        format!(
            r#"{{"kind": "flow", "at_ms": 1, "remote": "10.0.1.5", "remote_port": 1111,
              "protocol": "tcp", "bytes_out": {bytes_out}, "bytes_in": 180,
              "packets_out": {packets_out}, "packets_in": 3, "duration_ms": {duration_ms}}}"#
        )
    }

    fn metric(name: &str, value: f64) -> String {
        format!(r#"{{"kind": "metric", "at_ms": 1, "name": "{name}", "value": {value}}}"#)
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
        assert!(b.score("pump-0", &batch(quiet), 8.0, 1).is_empty());
        let mut events: Vec<String> = (0..20).map(|_| normal(&mut r)).collect();
        events.push(flow(4_000_000, 11.0));
        let alerts = b.score("pump-0", &batch(events), 8.0, 3);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.rule, "baseline:flow@v3");
        assert_eq!(a.technique.id, "T0882");
        assert_eq!(a.evidence[0].feature, "bytes_out");
        assert_eq!(a.evidence[0].observed, "4000000");
        assert!(a.summary.contains("1 of 21 flows"), "{}", a.summary);
        // A slowed flow (interception) is caught by its duration; a faster one is not.
        let slow = b.score("pump-0", &batch(vec![flow(500, 900.0)]), 8.0, 3);
        assert_eq!(slow[0].technique.id, "T0830", "{slow:?}");
        assert!(
            b.score("pump-0", &batch(vec![flow(500, 0.5)]), 8.0, 3)
                .is_empty()
        );
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
        // Nor its calibrated threshold: the median device's sets it.
        let (a, b) = (
            clean.flow_threshold.unwrap(),
            poisoned.flow_threshold.unwrap(),
        );
        assert!((a - b).abs() < 2.0, "{a} vs {b}");
        // Its own baseline learned the poison; its class's still catches it.
        let alerts = poisoned.score("pump-evil", &batch(vec![flow(4_000_000, 11.0)]), 8.0, 1);
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
        let alerts = b.score("m-0", &burst, 8.0, 2);
        assert_eq!(alerts[0].rule, "baseline:authorization_failures@v2");
        assert_eq!(alerts[0].technique.id, "T0859");
        let e = Trainer::new(10).fit("empty", 0, 1).unwrap_err();
        assert!(matches!(e, Error::TooFewRows { .. }), "{e}");
    }

    #[test]
    fn a_device_is_held_to_its_own_baseline_as_well_as_its_class() {
        let mut r = SplitMix64::new(11);
        let mut t = Trainer::new(500).with_forest(0, 0);
        // Two small senders and two large ones in one class: 50 kB is normal for the class.
        for d in 0..4u64 {
            let factor = if d < 2 { 1 } else { 100 };
            let mut events: Vec<String> = (0..100)
                .map(|_| {
                    flow(
                        (450 + (r.next_f64() * 100.0) as u64) * factor,
                        10.0 + r.next_f64() * 4.0,
                    )
                })
                .collect();
            events.extend((0..40).map(|_| metric("messages_sent", (10 * factor) as f64)));
            t.add(&format!("pump-{d}"), &batch(events));
        }
        let few: Vec<String> = (0..5).map(|_| normal(&mut r)).collect();
        t.add("pump-new", &batch(few));
        let b = t.fit("pump", 0, 1).unwrap();
        assert_eq!(
            b.per_device.keys().collect::<Vec<_>>(),
            ["pump-0", "pump-1", "pump-2", "pump-3"]
        );
        assert_eq!(b.per_device["pump-0"].flow_rows, 100);
        assert!(b.forest.is_none());
        let big = batch(vec![flow(50_000, 12.0)]);
        assert!(b.score("pump-2", &big, 8.0, 1).is_empty());
        let alerts = b.score("pump-0", &big, 8.0, 4);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "baseline:device:flow@v4");
        assert!(
            alerts[0].summary.contains("pump-0's own baseline (v4)"),
            "{}",
            alerts[0].summary
        );
        assert_eq!(alerts[0].evidence[0].feature, "bytes_out");
        // Without a baseline of its own, a device is held to its class only.
        assert!(b.score("pump-new", &big, 8.0, 1).is_empty());
        // A device steady in training is not held to nothing: 12 % more is not news.
        assert!(
            b.score("pump-0", &batch(vec![flow(560, 12.0)]), 8.0, 1)
                .is_empty()
        );
        // Metrics too: 1,000 messages is normal for pump-3, not for pump-1.
        let chatty = batch(vec![metric("messages_sent", 1_000.0)]);
        assert!(b.score("pump-3", &chatty, 8.0, 1).is_empty());
        let alerts = b.score("pump-1", &chatty, 8.0, 1);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, "baseline:device:messages_sent@v1");
    }

    fn shaped(r: &mut SplitMix64) -> String {
        // Bytes follow packets: about 100 bytes a packet.
        let packets = 3 + (r.next_f64() * 27.0) as u64;
        let bytes = (packets as f64 * 100.0 * (0.9 + r.next_f64() * 0.2)) as u64;
        flow_with(bytes, packets, 10.0 + r.next_f64() * 4.0)
    }

    #[test]
    fn the_forest_catches_jointly_unusual_flows_and_not_a_normal_batch() {
        let mut r = SplitMix64::new(5);
        let mut t = Trainer::new(1_000).with_forest(100, 1);
        for d in 0..4 {
            let events: Vec<String> = (0..300).map(|_| shaped(&mut r)).collect();
            t.add(&format!("pump-{d}"), &batch(events));
        }
        let b = t.fit("pump", 0, 1).unwrap();
        let f = b.forest.as_ref().unwrap();
        assert!(f.cut > 0.4 && f.cut < 0.8, "{}", f.cut);
        for _ in 0..5 {
            let quiet: Vec<String> = (0..500).map(|_| shaped(&mut r)).collect();
            assert!(b.score("pump-0", &batch(quiet), 8.0, 1).is_empty());
        }
        // Each a little past what the class sent, in three features at once: no one feature
        // is 8 robust SDs out, so only the forest sees them.
        let odd = |i: u64| flow_with(6_000 + i, 45, 20.0);
        assert!(b.score("pump-0", &batch(vec![odd(0)]), 8.0, 2).is_empty());
        let mut events: Vec<String> = (0..60).map(|_| shaped(&mut r)).collect();
        events.extend((0..20).map(odd));
        let alerts = b.score("pump-0", &batch(events), 8.0, 2);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.rule, "baseline:forest@v2");
        assert_eq!(a.evidence[0].feature, "unusual flows");
        assert!(
            a.evidence[0].observed.ends_with("of 80"),
            "{:?}",
            a.evidence
        );
        assert_eq!(a.evidence[1].feature, "isolation score");
        assert!(a.evidence.len() > 2, "the worst flow's features explain it");
        // Too few to be more than chance: two such flows.
        let mut events: Vec<String> = (0..60).map(|_| shaped(&mut r)).collect();
        events.extend((0..2).map(odd));
        assert!(b.score("pump-0", &batch(events), 8.0, 2).is_empty());
    }

    #[test]
    fn binomial_tails_match_known_values() {
        assert_eq!(binomial_tail(10, 0, 0.3), 1.0);
        assert!((binomial_tail(3, 2, 0.5) - 0.5).abs() < 1e-12);
        // Binomial(1000, 0.01) ≥ 10: 0.5421 (scipy.stats.binom.sf(9, 1000, 0.01)).
        assert!((binomial_tail(1_000, 10, 0.01) - 0.5421).abs() < 1e-3);
        assert!(binomial_tail(100, 20, 0.01) < 1e-15);
        assert_eq!(binomial_tail(5, 6, 0.5), 0.0);
    }
}
