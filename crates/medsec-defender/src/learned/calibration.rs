//! The learned flow threshold calibrated on the training window itself: each device's latest
//! flows held out, scored against a class baseline fitted on the rest, and the lower median
//! over devices of their conformal quantiles (so one device flooding its class's training
//! data cannot raise it).

use std::collections::BTreeMap;

use super::{MIN_TRAINING_ROWS, RobustBaseline};
use super::{Trainer, capped, flow_features, spread};
use crate::Error;

/// The share of each device's training flows, its latest, held out to calibrate the flow
/// threshold.
pub const CALIBRATION_SHARE: f64 = 0.2;

/// The share of held-out flows the calibrated threshold lets through: 1 in 1,000.
pub const CALIBRATION_FPR: f64 = 0.001;

/// Held-out flows a device needs for its threshold to count.
const CALIBRATION_MIN_PER_DEVICE: usize = 10;

/// The calibrated flow threshold raises the policy's at most this many times over: a class
/// whose every device was compromised during training cannot lift it without bound.
pub const CALIBRATION_MAX_FACTOR: f64 = 3.0;

impl Trainer {
    /// The flow threshold from a held-out slice: a class baseline fitted on each device's
    /// earlier flows (rows are added in time order), then each device's latest
    /// [`CALIBRATION_SHARE`] of flows scored against it. Each device's threshold is the
    /// conformal `1 - CALIBRATION_FPR` quantile of its held-out deviations (with fewer than
    /// `1 / CALIBRATION_FPR` of them, their largest), and the class's is the lower median over
    /// devices: one device flooding its class's data with an attack cannot raise it, as it
    /// cannot move the class's medians. `None` without enough flows.
    pub(super) fn calibrate(&self) -> Result<(Option<f64>, usize), Error> {
        let mut fit: BTreeMap<&String, Vec<Vec<f64>>> = BTreeMap::new();
        let mut held_out: BTreeMap<&String, Vec<Vec<f64>>> = BTreeMap::new();
        for (device, rows) in &self.flows {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a share of a row count"
            )]
            let n = ((rows.len() as f64) * CALIBRATION_SHARE).floor() as usize;
            let (early, late) = rows.split_at(rows.len() - n);
            fit.insert(device, early.to_vec());
            if late.len() >= CALIBRATION_MIN_PER_DEVICE {
                held_out.insert(device, late.to_vec());
            }
        }
        let cap = capped(fit.values().map(Vec::len), self.max_rows_per_device);
        let rows: Vec<Vec<f64>> = fit.values().flat_map(|r| spread(r, cap)).collect();
        let n_held: usize = held_out.values().map(Vec::len).sum();
        if rows.len() < MIN_TRAINING_ROWS || held_out.is_empty() {
            return Ok((None, 0));
        }
        let baseline = RobustBaseline::fit(flow_features()?, &rows)?;
        let mut per_device: Vec<f64> = Vec::new();
        for late in held_out.values() {
            let mut deviations: Vec<f64> = spread(late, self.max_rows_per_device)
                .iter()
                .filter_map(|r| baseline.score(r, 1).ok())
                .map(|s| s.top.first().map_or(0.0, |c| c.deviation))
                .collect();
            deviations.sort_by(f64::total_cmp);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rank in a sorted list"
            )]
            let rank = (((deviations.len() + 1) as f64) * (1.0 - CALIBRATION_FPR)).ceil() as usize;
            if let Some(t) = deviations
                .get(
                    rank.saturating_sub(1)
                        .min(deviations.len().saturating_sub(1)),
                )
                .copied()
            {
                per_device.push(t);
            }
        }
        per_device.sort_by(f64::total_cmp);
        // The lower median: of two devices, the smaller.
        let t = per_device
            .get(per_device.len().saturating_sub(1) / 2)
            .copied();
        Ok((t, n_held))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{batch, flow};
    use super::super::{ClassBaseline, Trainer};
    use crate::SplitMix64;

    #[test]
    fn the_flow_threshold_is_calibrated_on_the_latest_flows_and_only_raises_the_policys() {
        let mut r = SplitMix64::new(13);
        let mut t = Trainer::new(1_000).with_forest(0, 0);
        for d in 0..4 {
            // Traffic that drifts: later flows last longer than earlier ones.
            let events: Vec<String> = (0..300)
                .map(|i| {
                    flow(
                        450 + (r.next_f64() * 100.0) as u64,
                        10.0 + f64::from(i) / 30.0 + r.next_f64() * 4.0,
                    )
                })
                .collect();
            t.add(&format!("pump-{d}"), &batch(events));
        }
        let b = t.fit("pump", 0, 1).unwrap();
        assert_eq!(b.calibration_flows, 240);
        let cal = b.flow_threshold.unwrap();
        assert!(cal > 1.0, "the drift shows in the held-out flows: {cal}");
        // At a policy threshold under the calibrated one, a flow like the latest training
        // flows raises nothing; under the policy's alone it would.
        let latest = batch(vec![flow(500, 21.0)]);
        let policy = cal / 4.0;
        assert!(b.score("pump-0", &latest, policy, 1).is_empty());
        let uncalibrated = ClassBaseline {
            flow_threshold: None,
            ..b.clone()
        };
        assert!(!uncalibrated.score("pump-0", &latest, policy, 1).is_empty());
        // It never lowers the policy's, and an exfiltration still alerts.
        assert!(
            !b.score("pump-0", &batch(vec![flow(4_000_000, 11.0)]), 8.0, 1)
                .is_empty()
        );
        // Baselines stored before calibration existed still read.
        let mut v = serde_json::to_value(&b).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("flow_threshold");
        o.remove("calibration_flows");
        let old: ClassBaseline = serde_json::from_value(v).unwrap();
        assert_eq!(old.flow_threshold, None);
    }
}
