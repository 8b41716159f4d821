//! Robust per-feature baselines whose scores explain themselves.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which deviations from the baseline are suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tail {
    /// Only values above the baseline (latency, inter-packet time, jitter, loss: a
    /// man-in-the-middle adds delay; nothing gains by being faster).
    Upper,
    /// Only values below it.
    Lower,
    /// Either way (bytes, rates, ports, readings).
    Both,
}

/// One feature a model reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Its name (a telemetry metric or a flow field).
    pub name: String,
    /// Which tail is suspicious.
    pub tail: Tail,
    /// Whether the model reads `sign(x)·ln(1 + |x|)` instead of `x` (for heavy-tailed counts,
    /// byte totals and times, so one huge value does not flatten the rest).
    pub log: bool,
}

impl FeatureSpec {
    /// A feature.
    pub fn new(name: &str, tail: Tail, log: bool) -> Self {
        Self {
            name: name.to_owned(),
            tail,
            log,
        }
    }

    fn transform(&self, x: f64) -> f64 {
        if self.log {
            x.signum() * x.abs().ln_1p()
        } else {
            x
        }
    }
}

/// An ordered list of features (the columns of every row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features(Vec<FeatureSpec>);

impl Features {
    /// Checks that the list is not empty and names each feature once.
    pub fn new(specs: Vec<FeatureSpec>) -> Result<Self, Error> {
        if specs.is_empty() {
            return Err(Error::Features {
                reason: "no features".into(),
            });
        }
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(Error::Features {
                reason: format!("{:?} is named twice", w.first().unwrap_or(&"")),
            });
        }
        Ok(Self(specs))
    }

    /// The features, in column order.
    pub fn specs(&self) -> &[FeatureSpec] {
        &self.0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a feature list is not empty).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks a row's width and values, and applies each feature's transform.
    pub fn transform(&self, row: &[f64]) -> Result<Vec<f64>, Error> {
        if row.len() != self.0.len() {
            return Err(Error::Width {
                expected: self.0.len(),
                got: row.len(),
            });
        }
        self.0
            .iter()
            .zip(row)
            .map(|(spec, &x)| {
                if x.is_finite() {
                    Ok(spec.transform(x))
                } else {
                    Err(Error::NotFinite {
                        feature: spec.name.clone(),
                    })
                }
            })
            .collect()
    }
}

/// Median and robust scale of one feature (after its transform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    /// Median.
    pub median: f64,
    /// Robust standard deviation: the larger of 1.4826·MAD and IQR/1.349, floored so a
    /// feature that never varied in training still has a finite scale.
    pub scale: f64,
}

/// Per-feature robust baselines of one device or device class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustBaseline {
    features: Features,
    baselines: Vec<FeatureBaseline>,
    /// Deviations are capped here (in robust standard deviations), so one absurd value cannot
    /// outweigh every other feature.
    cap: f64,
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The feature.
    pub feature: String,
    /// The value seen (before the transform).
    pub observed: f64,
    /// The baseline median, in the same units as `observed`.
    pub baseline: f64,
    /// How far off, in robust standard deviations, counting only the suspicious tail.
    pub deviation: f64,
}

/// A score with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Mean deviation over all features (0 when every feature is at or inside its baseline
    /// tail).
    pub score: f64,
    /// The largest contributions, largest first.
    pub top: Vec<Contribution>,
}

/// The fewest training rows a baseline accepts.
pub const MIN_TRAINING_ROWS: usize = 30;

fn median_of(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(0.0),
        _ => {
            let a = sorted.get(n / 2 - 1).copied().unwrap_or(0.0);
            let b = sorted.get(n / 2).copied().unwrap_or(0.0);
            (a + b) / 2.0
        }
    }
}

/// Linear-interpolated quantile of sorted values (NumPy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let pos = q * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let a = sorted.get(lo).copied().unwrap_or(0.0);
    let b = sorted.get(hi).copied().unwrap_or(a);
    a + (b - a) * (pos - lo as f64)
}

impl RobustBaseline {
    /// Learns the baseline from `rows` (each in the order of `features`).
    pub fn fit(features: Features, rows: &[Vec<f64>]) -> Result<Self, Error> {
        if rows.len() < MIN_TRAINING_ROWS {
            return Err(Error::TooFewRows {
                needed: MIN_TRAINING_ROWS,
                got: rows.len(),
            });
        }
        let transformed: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| features.transform(r))
            .collect::<Result<_, _>>()?;
        let mut baselines = Vec::with_capacity(features.len());
        for j in 0..features.len() {
            let mut col: Vec<f64> = transformed
                .iter()
                .map(|r| r.get(j).copied().unwrap_or(0.0))
                .collect();
            col.sort_by(f64::total_cmp);
            let median = median_of(&col);
            let mut dev: Vec<f64> = col.iter().map(|x| (x - median).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = 1.4826 * median_of(&dev);
            let iqr = (quantile(&col, 0.75) - quantile(&col, 0.25)) / 1.349;
            // A feature constant in training: any change is news, but measured against a
            // scale that keeps it comparable with the others (1 % of its magnitude, or 1e-3).
            let floor = (median.abs() * 0.01).max(1e-3);
            baselines.push(FeatureBaseline {
                median,
                scale: mad.max(iqr).max(floor),
            });
        }
        Ok(Self {
            features,
            baselines,
            cap: 50.0,
        })
    }

    /// The features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The per-feature baselines, in feature order.
    pub fn baselines(&self) -> &[FeatureBaseline] {
        &self.baselines
    }

    /// Scores `row` and explains the score with its `top` largest contributions.
    pub fn score(&self, row: &[f64], top: usize) -> Result<Scored, Error> {
        self.score_against(&self.baselines, row, top)
    }

    /// Scores `row` against other medians and scales for the same features (a device's own,
    /// beside its class's); `Width` if `baselines` does not have one per feature.
    pub fn score_against(
        &self,
        baselines: &[FeatureBaseline],
        row: &[f64],
        top: usize,
    ) -> Result<Scored, Error> {
        if baselines.len() != self.baselines.len() {
            return Err(Error::Width {
                expected: self.baselines.len(),
                got: baselines.len(),
            });
        }
        let t = self.features.transform(row)?;
        let mut parts: Vec<(usize, f64)> = Vec::with_capacity(t.len());
        let mut sum = 0.0;
        for (j, ((x, b), spec)) in t
            .iter()
            .zip(baselines)
            .zip(self.features.specs())
            .enumerate()
        {
            let z = (x - b.median) / b.scale;
            let d = match spec.tail {
                Tail::Upper => z.max(0.0),
                Tail::Lower => (-z).max(0.0),
                Tail::Both => z.abs(),
            }
            .min(self.cap);
            sum += d;
            parts.push((j, d));
        }
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = parts
            .iter()
            .take(top)
            .filter(|(_, d)| *d > 0.0)
            .filter_map(|&(j, d)| {
                let spec = self.features.specs().get(j)?;
                let b = baselines.get(j)?;
                Some(Contribution {
                    feature: spec.name.clone(),
                    observed: *row.get(j)?,
                    baseline: if spec.log {
                        b.median.signum() * b.median.abs().exp_m1()
                    } else {
                        b.median
                    },
                    deviation: d,
                })
            })
            .collect();
        Ok(Scored {
            score: sum / t.len().max(1) as f64,
            top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    fn features() -> Features {
        Features::new(vec![
            FeatureSpec::new("latency_ms", Tail::Upper, true),
            FeatureSpec::new("bytes_out", Tail::Both, true),
            FeatureSpec::new("spo2", Tail::Both, false),
        ])
        .unwrap()
    }

    fn normal(r: &mut SplitMix64) -> Vec<f64> {
        vec![
            10.0 + 4.0 * r.next_f64(),
            5_000.0 + 1_000.0 * r.next_f64(),
            96.0 + 3.0 * r.next_f64(),
        ]
    }

    #[test]
    fn a_slow_flow_is_explained_by_its_latency() {
        let mut r = SplitMix64::new(1);
        let rows: Vec<Vec<f64>> = (0..500).map(|_| normal(&mut r)).collect();
        let b = RobustBaseline::fit(features(), &rows).unwrap();
        let quiet = b.score(&normal(&mut r), 3).unwrap();
        let slow = b.score(&[140.0, 5_400.0, 97.0], 3).unwrap();
        assert!(
            slow.score > 5.0 * quiet.score.max(0.1),
            "{slow:?} vs {quiet:?}"
        );
        let first = &slow.top[0];
        assert_eq!(first.feature, "latency_ms");
        assert_eq!(first.observed, 140.0);
        assert!((10.0..14.0).contains(&first.baseline), "{first:?}");
        // Faster than usual is not suspicious for an upper-tail feature.
        let fast = b.score(&[1.0, 5_400.0, 97.0], 3).unwrap();
        assert!(
            fast.top.iter().all(|c| c.feature != "latency_ms"),
            "{fast:?}"
        );
    }

    #[test]
    fn a_poisoned_quarter_of_the_training_window_barely_moves_the_baseline() {
        let mut r = SplitMix64::new(2);
        let clean: Vec<Vec<f64>> = (0..400).map(|_| normal(&mut r)).collect();
        let mut poisoned = clean.clone();
        // An attacker slips 100 slow flows into the learning hour to make slowness normal.
        poisoned.extend((0..100).map(|_| vec![500.0, 5_000.0, 97.0]));
        let a = RobustBaseline::fit(features(), &clean).unwrap();
        let b = RobustBaseline::fit(features(), &poisoned).unwrap();
        let (ma, mb) = (a.baselines()[0].median, b.baselines()[0].median);
        assert!((mb - ma).abs() < 0.2, "median moved from {ma} to {mb}");
        assert!(b.score(&[500.0, 5_000.0, 97.0], 1).unwrap().top[0].deviation > 10.0);
    }

    #[test]
    fn bad_input_is_named() {
        let f = features();
        assert_eq!(
            RobustBaseline::fit(f.clone(), &[vec![1.0, 2.0, 3.0]]).unwrap_err(),
            Error::TooFewRows {
                needed: MIN_TRAINING_ROWS,
                got: 1
            }
        );
        let rows = vec![vec![1.0, 2.0, 3.0]; 40];
        let b = RobustBaseline::fit(f, &rows).unwrap();
        assert_eq!(
            b.score(&[1.0, 2.0], 1).unwrap_err(),
            Error::Width {
                expected: 3,
                got: 2
            }
        );
        assert_eq!(
            b.score(&[1.0, f64::NAN, 3.0], 1).unwrap_err(),
            Error::NotFinite {
                feature: "bytes_out".into()
            }
        );
        let dup = Features::new(vec![
            FeatureSpec::new("a", Tail::Both, false),
            FeatureSpec::new("a", Tail::Upper, false),
        ]);
        assert!(matches!(dup, Err(Error::Features { .. })));
        // A feature constant in training still scores a change, finitely.
        let s = b.score(&[1.0, 2.0, 30.0], 1).unwrap();
        assert!(s.score.is_finite() && s.top[0].feature == "spo2");
    }
}
