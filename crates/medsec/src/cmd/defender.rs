//! `medsec defender evaluate`: the Defender's detectors on labelled flow data (WUSTL-EHMS-2020),
//! trained on normal rows only, with identifier columns kept out and a refusal to run when any
//! feature used leaks the label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use medsec_defender::metrics::{best_f1, roc_auc, share_above, threshold_at_fpr};
use medsec_defender::{
    FeatureSpec, Features, ForestOptions, IdentityBinding, IsolationForest, RobustBaseline,
    SplitMix64, Tail,
};
use serde::Serialize;

#[derive(Subcommand)]
pub enum DefenderCommand {
    /// Run the audit checks (certificates, trust anchors, policies, silent or quarantined
    /// devices, logging, audit-log integrity) on the server's data; exits 1 when a finding is at
    /// or above --fail-on.
    Audit {
        #[command(flatten)]
        location: crate::cmd::server::Location,
        /// Report device certificates expiring within this many days.
        #[arg(long, default_value_t = 7)]
        cert_days: i64,
        /// Report enrolled devices not seen for this many hours.
        #[arg(long, default_value_t = 24)]
        silent_hours: i64,
        /// Exit 1 when a finding is at least this severe (low, medium, high, critical).
        #[arg(long, default_value = "high")]
        fail_on: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Train the detectors on normal rows only and report ROC-AUC, best F1 and recall per attack
    /// class at a 1 % false-positive budget, over several seeds.
    Evaluate {
        /// The labelled flows: WUSTL-EHMS-2020's CSV (Argus flows with patient readings).
        #[arg(long)]
        data: PathBuf,
        /// Seeds (each draws another training sample and grows another forest).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Share of the normal rows used for training; the rest are test rows with every attack.
        #[arg(long, default_value_t = 0.7)]
        train_share: f64,
        /// False-positive budget for the recall columns.
        #[arg(long, default_value_t = 0.01)]
        fpr: f64,
        /// Write each seed's training row numbers here (seed-N.train, one per line), so another
        /// tool (scikit-learn in benches/defender_wustl.sh) uses exactly the same split.
        #[arg(long)]
        export_split: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

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
    /// Reads the WUSTL-EHMS-2020 CSV.
    pub fn read(path: &Path) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let header = reader.headers()?.clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{}: no column {name:?}", path.display()))
        };
        let feature_cols: Vec<usize> = WUSTL_FEATURES
            .iter()
            .map(|(n, _, _)| col(n))
            .collect::<Result<_>>()?;
        let (class_col, mac_col) = (col("Attack Category")?, col("SrcMac")?);
        let mut flows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
            let field = |c: usize| record.get(c).unwrap_or_default();
            let row = feature_cols
                .iter()
                .zip(WUSTL_FEATURES)
                .map(|(&c, (name, _, _))| {
                    field(c).parse::<f64>().with_context(|| {
                        format!(
                            "{}: row {}: {name} is not a number: {:?}",
                            path.display(),
                            i + 2,
                            field(c)
                        )
                    })
                })
                .collect::<Result<Vec<f64>>>()?;
            flows.push(Flow {
                index: i,
                row,
                class: field(class_col).to_owned(),
                src_mac: field(mac_col).to_owned(),
            });
        }
        let data = Self { flows };
        if !data.flows.iter().any(|f| !f.attack()) || data.flows.iter().all(|f| !f.attack()) {
            bail!(
                "{}: the data needs both normal and attack rows",
                path.display()
            );
        }
        Ok(data)
    }

    fn attack(&self) -> Vec<bool> {
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

/// Refuses features that leak the label.
pub fn check_leaks(aucs: &[(String, f64)]) -> Result<()> {
    let leaks: Vec<String> = aucs
        .iter()
        .filter(|(_, a)| *a >= LEAK_AUC)
        .map(|(n, a)| format!("{n} ({a:.3})"))
        .collect();
    if !leaks.is_empty() {
        bail!(
            "these features separate normal from attack rows on their own (ROC-AUC >= {LEAK_AUC}): {}; \
             they identify the capture, not behaviour, and would make any score meaningless",
            leaks.join(", ")
        );
    }
    Ok(())
}

/// One detector's results over the seeds.
#[derive(Debug, Serialize)]
pub struct ModelResult {
    /// Detector.
    pub model: String,
    /// ROC-AUC per seed.
    pub roc_auc: Vec<f64>,
    /// Best F1 per seed.
    pub best_f1: Vec<f64>,
    /// Recall per attack class at the false-positive budget, mean over seeds.
    pub recall_at_fpr: BTreeMap<String, f64>,
    /// False-positive rate on the test's normal rows at that threshold, mean over seeds.
    pub fpr: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// The evaluation: per seed, a training sample of normal rows; test rows are the other normal
/// rows and every attack row.
pub fn evaluate(
    data: &Dataset,
    seeds: u64,
    train_share: f64,
    fpr: f64,
    export: Option<&Path>,
) -> Result<Vec<ModelResult>> {
    if !(0.05..=0.95).contains(&train_share) {
        bail!("--train-share must be between 0.05 and 0.95, not {train_share}");
    }
    if !(0.0..0.5).contains(&fpr) {
        bail!("--fpr must be in [0, 0.5), not {fpr}");
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
    ];
    let mut results: Vec<ModelResult> = names
        .iter()
        .map(|n| ModelResult {
            model: (*n).to_owned(),
            roc_auc: Vec::new(),
            best_f1: Vec::new(),
            recall_at_fpr: BTreeMap::new(),
            fpr: 0.0,
        })
        .collect();
    if let Some(dir) = export {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for seed in 0..seeds {
        let mut normal: Vec<&Flow> = data.flows.iter().filter(|f| !f.attack()).collect();
        SplitMix64::new(seed).shuffle(&mut normal);
        let n_train = ((normal.len() as f64) * train_share).round() as usize;
        let (train, rest) = normal.split_at(n_train.min(normal.len()));
        let test: Vec<&Flow> = rest
            .iter()
            .copied()
            .chain(data.flows.iter().filter(|f| f.attack()))
            .collect();
        if let Some(dir) = export {
            let mut sorted: Vec<usize> = train.iter().map(|f| f.index).collect();
            sorted.sort_unstable();
            let text: String = sorted.iter().map(|i| format!("{i}\n")).collect();
            let file = dir.join(format!("seed-{seed}.train"));
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        }
        let train_rows: Vec<Vec<f64>> = train.iter().map(|f| f.row.clone()).collect();
        let baseline = RobustBaseline::fit(features.clone(), &train_rows)?;
        let forest = IsolationForest::fit(
            features.clone(),
            &train_rows,
            ForestOptions {
                trees: 200,
                sample_size: 256,
                seed,
            },
        )?;
        // The monitor's binding, learned from the training rows' source addresses.
        let mut binding = IdentityBinding::new();
        for f in train {
            binding.bind("monitor", "mac", &f.src_mac);
        }
        let mut scores: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for f in &test {
            let [baseline_scores, forest_scores, binding_scores] = &mut scores;
            baseline_scores.push(baseline.score(&f.row, 0)?.score);
            forest_scores.push(forest.score(&f.row)?);
            let violated = !binding
                .check("monitor", &[("mac", f.src_mac.as_str())])
                .is_empty();
            binding_scores.push(if violated { 1.0 } else { 0.0 });
        }
        let test_labels: Vec<bool> = test.iter().map(|f| f.attack()).collect();
        for (result, s) in results.iter_mut().zip(&scores) {
            result
                .roc_auc
                .push(roc_auc(s, &test_labels).context("the test rows hold one class only")?);
            result.best_f1.push(best_f1(s, &test_labels).0);
            let normal_scores: Vec<f64> = s
                .iter()
                .zip(&test_labels)
                .filter(|(_, l)| !**l)
                .map(|(v, _)| *v)
                .collect();
            let t = threshold_at_fpr(&normal_scores, fpr);
            result.fpr += share_above(&normal_scores, t) / seeds as f64;
            for class in &classes {
                let cs: Vec<f64> = s
                    .iter()
                    .zip(&test)
                    .filter(|(_, f)| f.class == *class)
                    .map(|(v, _)| *v)
                    .collect();
                *result.recall_at_fpr.entry(class.clone()).or_default() +=
                    share_above(&cs, t) / seeds as f64;
            }
        }
    }
    Ok(results)
}

/// A Markdown table of the results.
pub fn table(results: &[ModelResult], fpr: f64) -> String {
    let classes: Vec<&String> = results
        .first()
        .map(|r| r.recall_at_fpr.keys().collect())
        .unwrap_or_default();
    let mut out = String::from("| detector | ROC-AUC | best F1 |");
    for c in &classes {
        let _ = write!(out, " {c} recall at ≤ {:.0} % FP |", fpr * 100.0);
    }
    out.push_str(" FP rate |\n|---|---|---|");
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

/// Runs one command.
pub fn run(command: DefenderCommand) -> Result<()> {
    match command {
        DefenderCommand::Audit {
            location,
            cert_days,
            silent_hours,
            fail_on,
            json,
        } => {
            let fail_on =
                medsec_defender::rules::Severity::from_name(&fail_on).ok_or_else(|| {
                    anyhow::anyhow!("--fail-on {fail_on:?}: use low, medium, high or critical")
                })?;
            let config = location.load(None, None)?;
            let policies = match &config.policy_dir {
                Some(dir) => medsec_server::authz::Policies::from_dir(dir)?,
                None => medsec_server::authz::Policies::shipped()?,
            };
            let findings = crate::cmd::server::runtime()?.block_on(async {
                let store = medsec_server::open_store(&config).await?;
                anyhow::Ok(
                    medsec_server::defender_audit::run(
                        &store,
                        &config,
                        &policies,
                        medsec_server::defender_audit::Thresholds {
                            cert_days,
                            silent_hours,
                        },
                        crate::cmd::server::now_ms(),
                    )
                    .await?,
                )
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&findings)?);
            } else if findings.is_empty() {
                println!("no findings");
            } else {
                for f in &findings {
                    println!(
                        "{:<8}  {:<28}  {}: {}",
                        f.severity.name(),
                        f.check,
                        f.resource,
                        f.detail
                    );
                }
            }
            if findings.iter().any(|f| f.severity >= fail_on) {
                bail!(
                    "{} finding(s) at or above {:?}",
                    findings.iter().filter(|f| f.severity >= fail_on).count(),
                    fail_on
                );
            }
            Ok(())
        }
        DefenderCommand::Evaluate {
            data,
            seeds,
            train_share,
            fpr,
            export_split,
            json,
        } => {
            if seeds == 0 {
                bail!("--seeds must be at least 1");
            }
            let dataset = Dataset::read(&data)?;
            let aucs = single_feature_auc(&dataset);
            check_leaks(&aucs)?;
            let results = evaluate(&dataset, seeds, train_share, fpr, export_split.as_deref())?;
            let strongest = aucs
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(n, a)| format!("{n} {a:.3}"))
                .unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "rows": dataset.flows.len(),
                        "features": WUSTL_FEATURES.len(),
                        "strongest_single_feature": strongest,
                        "seeds": seeds,
                        "train_share": train_share,
                        "fpr_budget": fpr,
                        "results": results,
                    }))?
                );
            } else {
                let attacks = dataset.attack().iter().filter(|a| **a).count();
                println!(
                    "{} rows ({} attack), {} features, trained on {:.0} % of the normal rows, {seeds} seed(s)",
                    dataset.flows.len(),
                    attacks,
                    WUSTL_FEATURES.len(),
                    train_share * 100.0
                );
                println!(
                    "leak check: the strongest single feature is {strongest} (refused at {LEAK_AUC})\n"
                );
                print!("{}", table(&results, fpr));
            }
            Ok(())
        }
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

    #[test]
    fn a_feature_that_separates_the_classes_is_refused_by_name() {
        let aucs = vec![("Dur".to_owned(), 0.78), ("SrcMac".to_owned(), 1.0)];
        let err = check_leaks(&aucs).unwrap_err().to_string();
        assert!(
            err.contains("SrcMac (1.000)") && !err.contains("Dur"),
            "{err}"
        );
        assert!(check_leaks(&aucs[..1]).is_ok());
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
}
