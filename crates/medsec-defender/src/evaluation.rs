//! The detectors evaluated on labelled flow data (WUSTL-EHMS-2020): trained on normal rows
//! only, identifier columns kept out, and a refusal to run when any feature used leaks the label
//! on its own. No IO: the caller hands in the CSV as a reader and keeps (or writes) the training
//! split it gets back; `medsec defender evaluate` is the command around it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::metrics::{best_f1, roc_auc, share_above, threshold_at_fpr};
use crate::{
    FeatureSpec, Features, ForestOptions, IdentityBinding, IsolationForest, RobustBaseline,
    SplitMix64, Tail,
};

/// The features the detectors read, with the tail that is suspicious: flow timing (duration,
/// inter-packet times, jitter) and loss only when high, as an interceptor adds delay; volumes,
/// rates and patient readings either way. Identifier columns (`SrcAddr`, `DstAddr`, `Sport`,
/// `Dport`, `SrcMac`, `DstMac`, `Packet_num`), `Dir` and `Flgs` (Argus state flags, which encode
/// the capture rather than the device's behaviour) and the labels are never features.
pub const WUSTL_FEATURES: &[(&str, Tail, bool)] = &[
    ("SrcBytes", Tail::Both, true),
    ("DstBytes", Tail::Both, true),
    ("SrcLoad", Tail::Both, true),
    ("DstLoad", Tail::Both, true),
    ("SrcGap", Tail::Upper, true),
    ("DstGap", Tail::Upper, true),
    ("SIntPkt", Tail::Upper, true),
    ("DIntPkt", Tail::Upper, true),
    ("SIntPktAct", Tail::Upper, true),
    ("DIntPktAct", Tail::Upper, true),
    ("SrcJitter", Tail::Upper, true),
    ("DstJitter", Tail::Upper, true),
    ("sMaxPktSz", Tail::Both, true),
    ("dMaxPktSz", Tail::Both, true),
    ("sMinPktSz", Tail::Both, true),
    ("dMinPktSz", Tail::Both, true),
    ("Dur", Tail::Upper, true),
    ("Trans", Tail::Both, true),
    ("TotPkts", Tail::Both, true),
    ("TotBytes", Tail::Both, true),
    ("Load", Tail::Both, true),
    ("Loss", Tail::Upper, true),
    ("pLoss", Tail::Upper, true),
    ("pSrcLoss", Tail::Upper, true),
    ("pDstLoss", Tail::Upper, true),
    ("Rate", Tail::Both, true),
    ("Temp", Tail::Both, false),
    ("SpO2", Tail::Both, false),
    ("Pulse_Rate", Tail::Both, false),
    ("SYS", Tail::Both, false),
    ("DIA", Tail::Both, false),
    ("Heart_rate", Tail::Both, false),
    ("Resp_Rate", Tail::Both, false),
    ("ST", Tail::Both, false),
];

/// A single feature reaching this ROC-AUC (either direction) separates the classes by itself:
/// an identifier, not behaviour. The evaluation refuses to run with one.
pub const LEAK_AUC: f64 = 0.99;

/// Why data or parameters were refused; each names the problem (the caller adds the file).
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// The CSV could not be read (a row of the wrong width, bad UTF-8, an IO error).
    #[error("{0}")]
    Csv(#[from] csv::Error),
    /// A column the features or the labels need is missing.
    #[error("no column {0:?}")]
    MissingColumn(String),
    /// A feature value is not a number.
    #[error("row {row}: {feature} is not a number: {value:?}")]
    NotANumber {
        /// The row in the file (the header is row 1).
        row: usize,
        /// The column.
        feature: String,
        /// What it holds.
        value: String,
    },
    /// The data holds only normal or only attack rows.
    #[error("the data needs both normal and attack rows")]
    OneClass,
    /// Features that separate the classes on their own.
    #[error(
        "these features separate normal from attack rows on their own (ROC-AUC >= {LEAK_AUC}): {0}; \
         they identify the capture, not behaviour, and would make any score meaningless \
         (if one is a real behaviour signal, name it with --allow-feature NAME --reason TEXT)"
    )]
    Leak(String),
    /// A parameter out of its range.
    #[error("{0}")]
    Parameter(String),
    /// A detector refused its training or test rows.
    #[error(transparent)]
    Detector(#[from] crate::Error),
}

/// One labelled flow.
pub struct Flow {
    /// Its row number in the file (0 = the first row after the header).
    pub index: usize,
    /// Feature values, in [`WUSTL_FEATURES`] order.
    pub row: Vec<f64>,
    /// Attack class (`normal` for normal rows).
    pub class: String,
    /// Source MAC (for identity binding only, never a feature).
    pub src_mac: String,
}

impl Flow {
    fn attack(&self) -> bool {
        self.class != "normal"
    }
}

/// Labelled flows.
pub struct Dataset {
    /// The flows, in file order.
    pub flows: Vec<Flow>,
}

impl Dataset {
    /// Reads WUSTL-EHMS-2020's CSV (Argus flows with patient readings), in capture (file)
    /// order.
    pub fn from_csv(reader: impl std::io::Read) -> Result<Self, EvaluationError> {
        Self::from_csv_ordered(reader, None)
    }

    /// Reads the CSV; with `time_column`, the flows are put in the order of that column's
    /// numbers (stable: rows with equal times keep file order), the order a time split
    /// follows.
    pub fn from_csv_ordered(
        reader: impl std::io::Read,
        time_column: Option<&str>,
    ) -> Result<Self, EvaluationError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header = reader.headers()?.clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| EvaluationError::MissingColumn(name.to_owned()))
        };
        let feature_cols: Vec<usize> = WUSTL_FEATURES
            .iter()
            .map(|(n, _, _)| col(n))
            .collect::<Result<_, _>>()?;
        let (class_col, mac_col) = (col("Attack Category")?, col("SrcMac")?);
        let time_col = time_column.map(col).transpose()?;
        let mut times = Vec::new();
        let mut flows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record?;
            let field = |c: usize| record.get(c).unwrap_or_default();
            let row = feature_cols
                .iter()
                .zip(WUSTL_FEATURES)
                .map(|(&c, (name, _, _))| {
                    field(c)
                        .parse::<f64>()
                        .map_err(|_| EvaluationError::NotANumber {
                            row: i + 2,
                            feature: (*name).to_owned(),
                            value: field(c).to_owned(),
                        })
                })
                .collect::<Result<Vec<f64>, _>>()?;
            if let (Some(c), Some(name)) = (time_col, time_column) {
                times.push(
                    field(c)
                        .parse::<f64>()
                        .map_err(|_| EvaluationError::NotANumber {
                            row: i + 2,
                            feature: name.to_owned(),
                            value: field(c).to_owned(),
                        })?,
                );
            }
            flows.push(Flow {
                index: i,
                row,
                class: field(class_col).to_owned(),
                src_mac: field(mac_col).to_owned(),
            });
        }
        if !times.is_empty() {
            let mut order: Vec<(f64, Flow)> = times.into_iter().zip(flows).collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0));
            flows = order.into_iter().map(|(_, f)| f).collect();
        }
        let data = Self { flows };
        let attacks = data.flows.iter().filter(|f| f.attack()).count();
        if attacks == 0 || attacks == data.flows.len() {
            return Err(EvaluationError::OneClass);
        }
        Ok(data)
    }

    /// Whether each flow is an attack, in file order.
    pub fn attack(&self) -> Vec<bool> {
        self.flows.iter().map(Flow::attack).collect()
    }
}

/// Each feature's ROC-AUC on its own (folded so 0.5 is chance and 1.0 perfect separation).
pub fn single_feature_auc(data: &Dataset) -> Vec<(String, f64)> {
    let labels = data.attack();
    WUSTL_FEATURES
        .iter()
        .enumerate()
        .map(|(j, (name, _, _))| {
            let col: Vec<f64> = data
                .flows
                .iter()
                .map(|f| f.row.get(j).copied().unwrap_or(0.0))
                .collect();
            let auc = roc_auc(&col, &labels).unwrap_or(0.5);
            ((*name).to_owned(), auc.max(1.0 - auc))
        })
        .collect()
}

/// Refuses features that leak the label, except those in `allowed` (named on purpose, with
/// a reason the caller prints).
pub fn check_leaks(aucs: &[(String, f64)], allowed: &[String]) -> Result<(), EvaluationError> {
    let leaks: Vec<String> = aucs
        .iter()
        .filter(|(n, a)| *a >= LEAK_AUC && !allowed.contains(n))
        .map(|(n, a)| format!("{n} ({a:.3})"))
        .collect();
    if leaks.is_empty() {
        Ok(())
    } else {
        Err(EvaluationError::Leak(leaks.join(", ")))
    }
}

/// How training and test rows are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Train on the earliest normal rows (capture order, or a time column), test on every
    /// row after them: what a deployed detector meets.
    Time,
    /// Train on a random sample of the normal rows, test on the rest and every attack: the
    /// model sees the future, so its figures are optimistic. For comparison only.
    Random,
}

/// What an evaluation is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds (the random split's sample, and each forest).
    pub seeds: u64,
    /// Share of the normal rows in the training period (calibration slice included).
    pub train_share: f64,
    /// The false-positive budget the thresholds are set for.
    pub fpr: f64,
    /// Time or random.
    pub split: Split,
    /// Share of the training rows held out to choose the thresholds: for the time split the
    /// latest ones (closest to what follows), for the random split a random part.
    pub calibration_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seeds: 5,
            train_share: 0.6,
            fpr: 0.01,
            split: Split::Time,
            calibration_share: 0.2,
        }
    }
}

/// One detector's results over the seeds.
#[derive(Debug, Serialize)]
pub struct ModelResult {
    /// Detector.
    pub model: String,
    /// ROC-AUC per seed, on the test rows.
    pub roc_auc: Vec<f64>,
    /// Best F1 per seed (a threshold chosen on the test rows: for comparison only).
    pub best_f1: Vec<f64>,
    /// The threshold per seed, chosen on the training period's calibration slice for the
    /// false-positive budget: never on a test row.
    pub threshold: Vec<f64>,
    /// Recall per attack class at that threshold, mean over seeds.
    pub recall_at_fpr: BTreeMap<String, f64>,
    /// The realised false-positive rate on the test's normal rows at that threshold, mean
    /// over seeds.
    pub fpr: f64,
}

/// What an evaluation gives back: the results, and each seed's rows, so another tool can
/// use exactly the same split.
pub struct Evaluation {
    /// Per detector.
    pub results: Vec<ModelResult>,
    /// Per seed, the training period's rows ([`Flow::index`]es, sorted; the calibration
    /// slice included).
    pub training_rows: Vec<Vec<usize>>,
    /// Per seed, the calibration slice's size.
    pub calibration_rows: usize,
    /// Per seed, the test rows' indexes.
    pub test_rows: Vec<Vec<usize>>,
    /// Attack rows inside the training period (time split): neither trained on nor tested.
    pub attacks_in_training_period: usize,
    /// The split used.
    pub split: Split,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Refuses parameters out of their range (before any data is read, where the caller wants).
pub fn check_parameters(seeds: u64, train_share: f64, fpr: f64) -> Result<(), EvaluationError> {
    if seeds == 0 {
        return Err(EvaluationError::Parameter(
            "--seeds must be at least 1".into(),
        ));
    }
    if !(0.05..=0.95).contains(&train_share) {
        return Err(EvaluationError::Parameter(format!(
            "--train-share must be between 0.05 and 0.95, not {train_share}"
        )));
    }
    if !(0.0..0.5).contains(&fpr) {
        return Err(EvaluationError::Parameter(format!(
            "--fpr must be in [0, 0.5), not {fpr}"
        )));
    }
    Ok(())
}

/// One seed's rows: fitted on, calibrated on, tested on.
struct Rows<'a> {
    fit: Vec<&'a Flow>,
    calibrate: Vec<&'a Flow>,
    test: Vec<&'a Flow>,
    attacks_before: usize,
}

fn draw<'a>(data: &'a Dataset, options: &Options, seed: u64) -> Rows<'a> {
    let share = |n: usize, s: f64| ((n as f64) * s).round() as usize;
    let (train, test, attacks_before): (Vec<&Flow>, Vec<&Flow>, usize) = match options.split {
        Split::Time => {
            // Capture order is file order (a time column was sorted by at read).
            let normal: Vec<usize> = data
                .flows
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.attack())
                .map(|(i, _)| i)
                .collect();
            let n_train = share(normal.len(), options.train_share).clamp(1, normal.len());
            let cut = normal.get(n_train - 1).copied().unwrap_or(0);
            let (before, after) = data.flows.split_at((cut + 1).min(data.flows.len()));
            (
                before.iter().filter(|f| !f.attack()).collect(),
                after.iter().collect(),
                before.iter().filter(|f| f.attack()).count(),
            )
        }
        Split::Random => {
            let mut normal: Vec<&Flow> = data.flows.iter().filter(|f| !f.attack()).collect();
            SplitMix64::new(seed).shuffle(&mut normal);
            let n_train = share(normal.len(), options.train_share).min(normal.len());
            let (train, rest) = normal.split_at(n_train);
            (
                train.to_vec(),
                rest.iter()
                    .copied()
                    .chain(data.flows.iter().filter(|f| f.attack()))
                    .collect(),
                0,
            )
        }
    };
    // The calibration slice: the last part of the training rows (for the time split, the
    // latest: the closest to what the detector will meet).
    let n_cal = share(train.len(), options.calibration_share).clamp(1, train.len() / 2);
    let (fit, calibrate) = train.split_at(train.len() - n_cal);
    Rows {
        fit: fit.to_vec(),
        calibrate: calibrate.to_vec(),
        test,
        attacks_before,
    }
}

/// The WUSTL columns that carry patient readings, as the clinical signals they are.
const CLINICAL_COLUMNS: [(&str, crate::telemetry::ClinicalSignal); 7] = [
    ("Temp", crate::telemetry::ClinicalSignal::Temperature),
    ("SpO2", crate::telemetry::ClinicalSignal::Spo2),
    ("Pulse_Rate", crate::telemetry::ClinicalSignal::PulseRate),
    ("SYS", crate::telemetry::ClinicalSignal::Systolic),
    ("DIA", crate::telemetry::ClinicalSignal::Diastolic),
    ("Heart_rate", crate::telemetry::ClinicalSignal::HeartRate),
    (
        "Resp_Rate",
        crate::telemetry::ClinicalSignal::RespirationRate,
    ),
];

/// The clinical rules (implausible readings, impossible jumps; [`crate::rules`]) on one flow's
/// readings, one second after the previous flow's in capture order, with the default
/// policy (a 0 is no reading): 1 when they alert on this flow's readings, else 0. The rules
/// learn nothing, so nothing is fitted.
fn clinical_score(previous: Option<&Flow>, flow: &Flow) -> f64 {
    let readings = |f: &Flow, at_ms: i64| -> Vec<crate::telemetry::Event> {
        CLINICAL_COLUMNS
            .iter()
            .filter_map(|(col, signal)| {
                let j = WUSTL_FEATURES.iter().position(|(n, _, _)| n == col)?;
                Some(crate::telemetry::Event::Clinical {
                    at_ms,
                    signal: *signal,
                    value: *f.row.get(j)?,
                    state: crate::telemetry::SensorState::Measuring,
                })
            })
            .collect()
    };
    let mut events = previous.map(|p| readings(p, 0)).unwrap_or_default();
    events.extend(readings(flow, 1_000));
    let batch = crate::telemetry::Batch {
        sequence: 1,
        events,
    };
    let alerts = crate::rules::evaluate(&crate::rules::ClassPolicy::default(), &batch);
    if alerts.iter().any(|a| a.at_ms == 1_000) {
        1.0
    } else {
        0.0
    }
}

/// The evaluation: per seed, detectors fitted on the training period's normal rows, their
/// thresholds chosen on its held-out calibration slice for the false-positive budget, then
/// judged on the test rows (which never touch a threshold).
pub fn evaluate(data: &Dataset, options: &Options) -> Result<Evaluation, EvaluationError> {
    check_parameters(options.seeds, options.train_share, options.fpr)?;
    if !(0.05..=0.5).contains(&options.calibration_share) {
        return Err(EvaluationError::Parameter(format!(
            "--calibration-share must be between 0.05 and 0.5, not {}",
            options.calibration_share
        )));
    }
    let features = Features::new(
        WUSTL_FEATURES
            .iter()
            .map(|(n, t, l)| FeatureSpec::new(n, *t, *l))
            .collect(),
    )?;
    let classes: Vec<String> = {
        let mut c: Vec<String> = data
            .flows
            .iter()
            .filter(|f| f.attack())
            .map(|f| f.class.clone())
            .collect();
        c.sort();
        c.dedup();
        c
    };
    let names = [
        "robust baseline",
        "isolation forest",
        "identity binding (MAC)",
        "clinical rules (implausible, jump)",
    ];
    let mut results: Vec<ModelResult> = names
        .iter()
        .map(|n| ModelResult {
            model: (*n).to_owned(),
            roc_auc: Vec::new(),
            best_f1: Vec::new(),
            threshold: Vec::new(),
            recall_at_fpr: BTreeMap::new(),
            fpr: 0.0,
        })
        .collect();
    let (mut training_rows, mut test_rows) = (Vec::new(), Vec::new());
    let (mut calibration_rows, mut attacks_in_training_period) = (0, 0);
    let seeds = options.seeds;
    for seed in 0..seeds {
        let rows = draw(data, options, seed);
        calibration_rows = rows.calibrate.len();
        attacks_in_training_period = rows.attacks_before;
        let mut sorted: Vec<usize> = rows
            .fit
            .iter()
            .chain(&rows.calibrate)
            .map(|f| f.index)
            .collect();
        sorted.sort_unstable();
        training_rows.push(sorted);
        test_rows.push(rows.test.iter().map(|f| f.index).collect());
        let fit_rows: Vec<Vec<f64>> = rows.fit.iter().map(|f| f.row.clone()).collect();
        let baseline = RobustBaseline::fit(features.clone(), &fit_rows)?;
        let forest = IsolationForest::fit(
            features.clone(),
            &fit_rows,
            ForestOptions {
                trees: 200,
                sample_size: 256,
                seed,
            },
        )?;
        // The monitor's binding, learned from the fitting rows' source addresses.
        let mut binding = IdentityBinding::new();
        for f in &rows.fit {
            binding.bind("monitor", "mac", &f.src_mac);
        }
        // The flow before each one in capture order, for the jump rule.
        let previous: BTreeMap<usize, &Flow> = data
            .flows
            .windows(2)
            .filter_map(|w| Some((w.get(1)?.index, w.first()?)))
            .collect();
        let score = |f: &Flow| -> Result<[f64; 4], EvaluationError> {
            let violated = !binding
                .check("monitor", &[("mac", f.src_mac.as_str())])
                .is_empty();
            Ok([
                baseline.score(&f.row, 0)?.score,
                forest.score(&f.row)?,
                if violated { 1.0 } else { 0.0 },
                clinical_score(previous.get(&f.index).copied(), f),
            ])
        };
        let calibration: Vec<[f64; 4]> = rows
            .calibrate
            .iter()
            .map(|f| score(f))
            .collect::<Result<_, _>>()?;
        let test: Vec<[f64; 4]> = rows
            .test
            .iter()
            .map(|f| score(f))
            .collect::<Result<_, _>>()?;
        let test_labels: Vec<bool> = rows.test.iter().map(|f| f.attack()).collect();
        for (m, result) in results.iter_mut().enumerate() {
            let pick = |v: &[[f64; 4]]| -> Vec<f64> {
                v.iter().map(|s| s.get(m).copied().unwrap_or(0.0)).collect()
            };
            let (cal, s) = (pick(&calibration), pick(&test));
            result
                .roc_auc
                .push(roc_auc(&s, &test_labels).ok_or(EvaluationError::OneClass)?);
            result.best_f1.push(best_f1(&s, &test_labels).0);
            let t = threshold_at_fpr(&cal, options.fpr);
            result.threshold.push(t);
            let normal_scores: Vec<f64> = s
                .iter()
                .zip(&test_labels)
                .filter(|(_, l)| !**l)
                .map(|(v, _)| *v)
                .collect();
            result.fpr += share_above(&normal_scores, t) / seeds as f64;
            for class in &classes {
                let cs: Vec<f64> = s
                    .iter()
                    .zip(&rows.test)
                    .filter(|(_, f)| f.class == *class)
                    .map(|(v, _)| *v)
                    .collect();
                *result.recall_at_fpr.entry(class.clone()).or_default() +=
                    share_above(&cs, t) / seeds as f64;
            }
        }
    }
    Ok(Evaluation {
        results,
        training_rows,
        calibration_rows,
        test_rows,
        attacks_in_training_period,
        split: options.split,
    })
}

/// A Markdown table of the results.
pub fn table(results: &[ModelResult], fpr: f64) -> String {
    let classes: Vec<&String> = results
        .first()
        .map(|r| r.recall_at_fpr.keys().collect())
        .unwrap_or_default();
    let mut out = String::from("| detector | ROC-AUC | best F1 (test-chosen) |");
    for c in &classes {
        let _ = write!(out, " {c} recall |");
    }
    let _ = write!(
        out,
        " realised FP rate on later normal rows (budget {:.1} %) |\n|---|---|---|",
        fpr * 100.0
    );
    for _ in &classes {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for r in results {
        let _ = write!(
            out,
            "| {} | {:.3} ± {:.3} | {:.3} |",
            r.model,
            mean(&r.roc_auc),
            sd(&r.roc_auc),
            mean(&r.best_f1)
        );
        for c in &classes {
            let _ = write!(
                out,
                " {:.3} |",
                r.recall_at_fpr.get(*c).copied().unwrap_or(0.0)
            );
        }
        let _ = writeln!(out, " {:.4} |", r.fpr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_that_separates_the_classes_is_refused_by_name() {
        let aucs = vec![("Dur".to_owned(), 0.78), ("SrcMac".to_owned(), 1.0)];
        let err = check_leaks(&aucs, &[]).unwrap_err().to_string();
        assert!(
            err.contains("SrcMac (1.000)") && !err.contains("Dur"),
            "{err}"
        );
        assert!(check_leaks(&aucs[..1], &[]).is_ok());
        // Named on purpose, it is let through (the caller prints the reason).
        assert!(check_leaks(&aucs, &["SrcMac".to_owned()]).is_ok());
    }

    #[test]
    fn identifier_columns_are_never_features() {
        for id in [
            "SrcAddr",
            "DstAddr",
            "Sport",
            "Dport",
            "SrcMac",
            "DstMac",
            "Packet_num",
            "Dir",
            "Flgs",
            "Attack Category",
            "Label",
        ] {
            assert!(WUSTL_FEATURES.iter().all(|(n, _, _)| *n != id), "{id}");
        }
    }

    #[test]
    fn a_missing_column_and_a_bad_number_are_named() {
        let err = Dataset::from_csv("Dur,Label\n0.1,0\n".as_bytes())
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "no column \"SrcBytes\"");
        let mut header: Vec<&str> = WUSTL_FEATURES.iter().map(|(n, _, _)| *n).collect();
        header.extend(["Attack Category", "SrcMac"]);
        let mut row = vec!["1"; WUSTL_FEATURES.len()];
        row[16] = "fast";
        row.extend(["normal", "aa"]);
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        let err = Dataset::from_csv(text.as_bytes()).err().unwrap();
        assert_eq!(err.to_string(), "row 2: Dur is not a number: \"fast\"");
    }

    #[test]
    fn parameters_out_of_range_are_refused_before_any_work() {
        let data = Dataset { flows: Vec::new() };
        for (seeds, share, fpr, what) in [
            (0, 0.7, 0.01, "--seeds"),
            (1, 0.99, 0.01, "--train-share"),
            (1, 0.7, 0.5, "--fpr"),
        ] {
            let options = Options {
                seeds,
                train_share: share,
                fpr,
                ..Options::default()
            };
            let err = evaluate(&data, &options).err().unwrap();
            assert!(err.to_string().starts_with(what), "{err}");
        }
    }

    /// A synthetic capture: normal rows around 1.0 in every feature, attack rows every tenth
    /// row, far out in `Dur`.
    fn synthetic(rows: usize) -> Dataset {
        let mut rng = SplitMix64::new(7);
        let flows = (0..rows)
            .map(|i| {
                let attack = i % 10 == 9;
                let mut row: Vec<f64> = (0..WUSTL_FEATURES.len())
                    .map(|_| 1.0 + rng.next_f64() * 0.1)
                    .collect();
                if attack && let Some(d) = row.get_mut(16) {
                    *d += 5.0;
                }
                Flow {
                    index: i,
                    row,
                    class: if attack { "Data Alteration" } else { "normal" }.into(),
                    src_mac: "aa".into(),
                }
            })
            .collect();
        Dataset { flows }
    }

    #[test]
    fn thresholds_come_from_training_rows_only() {
        for split in [Split::Time, Split::Random] {
            // One seed: another seed's random split trains on this one's test rows.
            let options = Options {
                seeds: 1,
                split,
                ..Options::default()
            };
            let data = synthetic(2_000);
            let first = evaluate(&data, &options).unwrap();
            // Change every row the evaluation tests on (and nothing it trains or calibrates
            // on): the thresholds stay exactly the same; the realised rates move.
            let mut changed = synthetic(2_000);
            let tested: std::collections::BTreeSet<usize> =
                first.test_rows.iter().flatten().copied().collect();
            for f in &mut changed.flows {
                if tested.contains(&f.index) {
                    for v in &mut f.row {
                        *v *= 3.0;
                    }
                }
            }
            let second = evaluate(&changed, &options).unwrap();
            for (a, b) in first.results.iter().zip(&second.results) {
                assert_eq!(a.threshold, b.threshold, "{split:?} {}", a.model);
            }
            let fp = |e: &Evaluation| e.results.first().map_or(0.0, |r| r.fpr);
            assert!(fp(&second) > fp(&first), "{split:?}");
            // No tested row is a training or calibration row.
            for (seed, rows) in first.training_rows.iter().enumerate() {
                let test = first.test_rows.get(seed).unwrap();
                assert!(rows.iter().all(|r| !test.contains(r)), "{split:?}");
            }
        }
    }

    #[test]
    fn the_time_split_trains_on_the_earliest_rows_and_tests_on_later_ones() {
        let data = synthetic(1_000);
        let options = Options {
            seeds: 1,
            train_share: 0.6,
            ..Options::default()
        };
        let e = evaluate(&data, &options).unwrap();
        let train = e.training_rows.first().unwrap();
        let test = e.test_rows.first().unwrap();
        let last_train = *train.iter().max().unwrap();
        assert!(test.iter().all(|t| *t > last_train));
        // 900 normal rows; 60 % train (calibration included); attacks before the cut are left
        // out and counted.
        assert_eq!(train.len(), 540);
        assert_eq!(e.attacks_in_training_period, 59);
    }
}
