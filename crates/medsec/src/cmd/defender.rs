//! `medsec defender audit` (the audit checks on the server's data) and `medsec defender
//! evaluate` (the detectors on labelled flow data, WUSTL-EHMS-2020: the evaluation itself is
//! `medsec_defender::evaluation`; this file reads the file and writes the split).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use medsec_defender::evaluation::{
    Dataset, LEAK_AUC, WUSTL_FEATURES, check_leaks, check_parameters, evaluate, single_feature_auc,
    table,
};

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

/// Writes each seed's training rows as `DIR/seed-N.train`, one row number per line, so another
/// tool (scikit-learn in benches/defender_wustl.sh) uses exactly the same split.
fn write_split(dir: &Path, training_rows: &[Vec<usize>]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (seed, rows) in training_rows.iter().enumerate() {
        let text: String = rows.iter().map(|i| format!("{i}\n")).collect();
        let file = dir.join(format!("seed-{seed}.train"));
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
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
            check_parameters(seeds, train_share, fpr)?;
            let file = std::fs::File::open(&data)
                .with_context(|| format!("reading {}", data.display()))?;
            let dataset = Dataset::from_csv(std::io::BufReader::new(file))
                .with_context(|| data.display().to_string())?;
            let aucs = single_feature_auc(&dataset);
            check_leaks(&aucs)?;
            let evaluation = evaluate(&dataset, seeds, train_share, fpr)?;
            if let Some(dir) = &export_split {
                write_split(dir, &evaluation.training_rows)?;
            }
            let results = evaluation.results;
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
