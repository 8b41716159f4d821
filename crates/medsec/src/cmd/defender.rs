//! `medsec defender audit` (the audit checks on the server's data) and `medsec defender
//! evaluate` (the detectors on labelled flow data, WUSTL-EHMS-2020: the evaluation itself is
//! `medsec_defender::evaluation`; this file reads the file and writes the split).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use medsec_defender::evaluation::{
    Dataset, LEAK_AUC, Options, Split, WUSTL_FEATURES, check_leaks, check_parameters, evaluate,
    single_feature_auc, table,
};
use medsec_store::prelude::*;

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
    /// Suppress a rule's alerts about a device, model, site or destination, with a reason and
    /// an expiry (through the current context's server, or with --data-dir on the host;
    /// audited as `alert.suppress`). Suppressed alerts are still stored and counted.
    Suppress {
        #[command(flatten)]
        location: crate::cmd::server::Location,
        /// The rule (destination-not-allowed, clinical-implausible, …).
        #[arg(long)]
        rule: String,
        /// What it covers: device, model, site or destination.
        #[arg(long)]
        scope: String,
        /// The device id, model, site or destination address.
        #[arg(long)]
        value: String,
        /// Why these alerts are accepted (mandatory).
        #[arg(long)]
        reason: String,
        /// How long it lasts (e.g. 8h, 7d); every suppression expires.
        #[arg(long = "for", value_parser = crate::cmd::server::parse_duration_secs)]
        duration: i64,
    },
    /// List suppressions, in force or not.
    Suppressions {
        #[command(flatten)]
        location: crate::cmd::server::Location,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift a suppression before its expiry (audited).
    Lift {
        #[command(flatten)]
        location: crate::cmd::server::Location,
        /// The suppression's id.
        id: i64,
    },
    /// Train the detectors on normal rows only, choose each threshold for the false-positive
    /// budget on a held-out slice of the training period, and report, on the rows after it:
    /// ROC-AUC, the realised false-positive rate on later normal rows and recall per attack
    /// class, over several seeds. `--split time` (the default) is what a deployment gets;
    /// `--split random` lets the model see the future and is for comparison only.
    Evaluate {
        /// The labelled flows: WUSTL-EHMS-2020's CSV (Argus flows with patient readings).
        #[arg(long)]
        data: PathBuf,
        /// How training and test rows are drawn: `time` (the earliest normal rows, in capture
        /// order or --time-column order; every later row is tested) or `random`.
        #[arg(long, value_enum, default_value = "time")]
        split: SplitArg,
        /// A numeric column to order the rows by for the time split (default: file order,
        /// which is capture order).
        #[arg(long)]
        time_column: Option<String>,
        /// Seeds (each draws another training sample for the random split, and grows another
        /// forest).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Share of the normal rows in the training period (its calibration slice included).
        #[arg(long, default_value_t = 0.6)]
        train_share: f64,
        /// Share of the training rows held out to choose the thresholds (the latest ones for
        /// the time split).
        #[arg(long, default_value_t = 0.2)]
        calibration_share: f64,
        /// The false-positive budget the thresholds are chosen for.
        #[arg(long, default_value_t = 0.01)]
        fpr: f64,
        /// A feature to keep although it separates the classes on its own (repeatable; needs
        /// --reason). The report prints the override.
        #[arg(long, requires = "reason")]
        allow_feature: Vec<String>,
        /// Why the allowed features are real behaviour, not an identifier of the capture.
        #[arg(long)]
        reason: Option<String>,
        /// Write each seed's training row numbers here (seed-N.train, one per line), so another
        /// tool (scikit-learn in benches/defender_wustl.sh) uses exactly the same split.
        #[arg(long)]
        export_split: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// How `defender evaluate` splits the rows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SplitArg {
    /// Train on the earliest normal rows, test on every later row.
    Time,
    /// Train on a random sample of normal rows (optimistic: for comparison).
    Random,
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
pub fn run(command: DefenderCommand, remote: &crate::cmd::remote::Remote) -> Result<()> {
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
            if !location.direct(remote) {
                return crate::cmd::remote::defender::audit(
                    remote,
                    cert_days,
                    silent_hours,
                    fail_on,
                    json,
                );
            }
            let config = location.existing()?;
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
        DefenderCommand::Suppress {
            location,
            rule,
            scope,
            value,
            reason,
            duration,
        } => {
            if !location.direct(remote) {
                return crate::cmd::remote::defender::suppress(
                    remote, &rule, &scope, &value, &reason, duration,
                );
            }
            let config = location.existing()?;
            let who = crate::cmd::server::cli_principal();
            let row = crate::cmd::server::runtime()?.block_on(async {
                let (store, log) = crate::cmd::server::open_with_audit(&config).await?;
                let mut row = medsec_server::suppressions::prepare(
                    medsec_server::suppressions::NewSuppression {
                        rule,
                        scope,
                        value,
                        reason,
                        duration_secs: u64::try_from(duration).unwrap_or(0),
                    },
                    &who,
                    crate::cmd::server::now_ms(),
                    config.limits.max_suppression_secs,
                )?;
                row.id = store.put_suppression(&row).await?;
                log.record(medsec_server::suppressions::audited(
                    &row, &who, "cli", false,
                ))
                .await?;
                store.close().await;
                anyhow::Ok(row)
            })?;
            println!(
                "suppression {}: {} for {} {} until {} ms: {}",
                row.id, row.rule, row.scope, row.value, row.expires_at_ms, row.reason
            );
            Ok(())
        }
        DefenderCommand::Suppressions { location, json } => {
            if !location.direct(remote) {
                return crate::cmd::remote::defender::suppressions(remote, json);
            }
            let config = location.existing()?;
            let rows = crate::cmd::server::runtime()?.block_on(async {
                let store = medsec_server::open_store(&config).await?;
                let rows = store.suppressions(None).await;
                store.close().await;
                anyhow::Ok(rows?)
            })?;
            let now = crate::cmd::server::now_ms();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("| id | rule | scope | value | in force | expires (ms) | by | reason |");
                println!("|---|---|---|---|---|---|---|---|");
                for r in &rows {
                    println!(
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        r.id,
                        r.rule,
                        r.scope,
                        r.value,
                        if r.lifted_at_ms.is_some() {
                            "lifted"
                        } else if r.expires_at_ms > now {
                            "yes"
                        } else {
                            "expired"
                        },
                        r.expires_at_ms,
                        r.created_by,
                        r.reason
                    );
                }
            }
            Ok(())
        }
        DefenderCommand::Lift { location, id } => {
            if !location.direct(remote) {
                return crate::cmd::remote::defender::lift(remote, id);
            }
            let config = location.existing()?;
            let who = crate::cmd::server::cli_principal();
            let now = crate::cmd::server::now_ms();
            crate::cmd::server::runtime()?.block_on(async {
                let (store, log) = crate::cmd::server::open_with_audit(&config).await?;
                let row = store
                    .suppressions(Some(now))
                    .await?
                    .into_iter()
                    .find(|r| r.id == id)
                    .with_context(|| format!("no suppression {id} is in force"))?;
                if store.lift_suppression(id, now).await? {
                    log.record(medsec_server::suppressions::audited(
                        &row, &who, "cli", true,
                    ))
                    .await?;
                }
                store.close().await;
                anyhow::Ok(())
            })?;
            println!("suppression {id} lifted");
            Ok(())
        }
        DefenderCommand::Evaluate {
            data,
            split,
            time_column,
            seeds,
            train_share,
            calibration_share,
            fpr,
            allow_feature,
            reason,
            export_split,
            json,
        } => {
            check_parameters(seeds, train_share, fpr)?;
            if let Some(unknown) = allow_feature
                .iter()
                .find(|f| !WUSTL_FEATURES.iter().any(|(n, _, _)| n == f))
            {
                bail!("--allow-feature {unknown:?} is not one of the features read");
            }
            if reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
                bail!("--reason must say why the allowed features are behaviour");
            }
            let file = std::fs::File::open(&data)
                .with_context(|| format!("reading {}", data.display()))?;
            let dataset =
                Dataset::from_csv_ordered(std::io::BufReader::new(file), time_column.as_deref())
                    .with_context(|| data.display().to_string())?;
            let aucs = single_feature_auc(&dataset);
            check_leaks(&aucs, &allow_feature)?;
            let options = Options {
                seeds,
                train_share,
                fpr,
                split: match split {
                    SplitArg::Time => Split::Time,
                    SplitArg::Random => Split::Random,
                },
                calibration_share,
            };
            let evaluation = evaluate(&dataset, &options)?;
            if let Some(dir) = &export_split {
                write_split(dir, &evaluation.training_rows)?;
            }
            let overrides: Vec<serde_json::Value> = allow_feature
                .iter()
                .map(|f| {
                    let auc = aucs.iter().find(|(n, _)| n == f).map_or(0.5, |(_, a)| *a);
                    serde_json::json!({"feature": f, "auc": auc, "reason": reason})
                })
                .collect();
            let strongest = aucs
                .iter()
                .filter(|(n, _)| !allow_feature.contains(n))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(n, a)| format!("{n} {a:.3}"))
                .unwrap_or_default();
            let tested = evaluation.test_rows.first().map_or(0, Vec::len);
            let split_name = match evaluation.split {
                Split::Time => "time (train on the earliest normal rows, test on every later row)",
                Split::Random => {
                    "random (the model sees the future: optimistic, for comparison only)"
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "rows": dataset.flows.len(),
                        "features": WUSTL_FEATURES.len(),
                        "strongest_single_feature": strongest,
                        "allowed_features": overrides,
                        "split": evaluation.split,
                        "seeds": seeds,
                        "train_share": train_share,
                        "calibration_rows": evaluation.calibration_rows,
                        "test_rows": tested,
                        "attacks_in_training_period": evaluation.attacks_in_training_period,
                        "threshold_source": "training (held-out calibration slice)",
                        "fpr_budget": fpr,
                        "results": evaluation.results,
                    }))?
                );
            } else {
                let attacks = dataset.attack().iter().filter(|a| **a).count();
                println!(
                    "{} rows ({} attack), {} features; split: {split_name}",
                    dataset.flows.len(),
                    attacks,
                    WUSTL_FEATURES.len(),
                );
                println!(
                    "training period: {:.0} % of the normal rows, of which {} (the {}) choose the thresholds for a {:.1} % false-positive budget; {tested} rows tested{}; {seeds} seed(s)",
                    train_share * 100.0,
                    evaluation.calibration_rows,
                    if evaluation.split == Split::Time {
                        "latest"
                    } else {
                        "last drawn"
                    },
                    fpr * 100.0,
                    if evaluation.attacks_in_training_period > 0 {
                        format!(
                            " ({} attack rows inside the training period are neither trained on nor tested)",
                            evaluation.attacks_in_training_period
                        )
                    } else {
                        String::new()
                    }
                );
                println!(
                    "leak check: the strongest single feature is {strongest} (refused at {LEAK_AUC})"
                );
                for o in &overrides {
                    println!(
                        "leak check OVERRIDDEN for {} (ROC-AUC {:.3} on its own): {}",
                        o["feature"].as_str().unwrap_or_default(),
                        o["auc"].as_f64().unwrap_or_default(),
                        reason.as_deref().unwrap_or_default()
                    );
                }
                println!();
                print!("{}", table(&evaluation.results, fpr));
            }
            Ok(())
        }
    }
}
