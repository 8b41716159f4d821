//! `medsec risk`: read and check SBOMs (CycloneDX, SPDX), score CVSS vectors, and match an
//! SBOM's components against advisories (OSV, CSAF 2.0, CISA KEV).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Subcommand, ValueEnum};
use medsec_risk::matching::{ComponentMatch, Status};
use medsec_risk::sbom::Sbom;
use medsec_risk::score::{Clinical, Context, Controls, Exposure};

use crate::cmd::advisories;

/// Where advisories and VEX come from, and the limits on reading them.
#[derive(Debug, clap::Args)]
pub struct MatchInputs {
    /// Advisory files, directories or zip archives (repeatable): OSV, CSAF 2.0, CISA KEV.
    #[arg(long = "advisories", required = true)]
    advisories: Vec<PathBuf>,
    /// VEX documents (CycloneDX, OpenVEX or CSAF; repeatable): a statement about this
    /// SBOM's product, and the component or the whole product, is shown with the finding,
    /// and a finding VEX says is not affected or fixed no longer counts.
    #[arg(long)]
    vex: Vec<PathBuf>,
    /// Read CSAF documents strictly (a document that breaks a checked CSAF mandatory test
    /// is refused, even where its meaning is clear), and refuse the whole load when one
    /// advisory file is refused. Without it such documents are read with a warning, and an
    /// unreadable file is listed and makes the result incomplete.
    #[arg(long)]
    strict: bool,
    /// Accept a result with unread advisory files: --fail-on (and release check) otherwise
    /// fail on an incomplete result, since nothing can be called clean.
    #[arg(long)]
    allow_incomplete: bool,
    /// Vendor alias tables to add to medsec's own (repeatable; lines `Canonical: alias;
    /// alias`, see docs/risk.md): which manufacturer names are one vendor when matching by
    /// name.
    #[arg(long)]
    vendor_aliases: Vec<PathBuf>,
    /// The largest one advisory file may be.
    #[arg(long, default_value_t = 16 << 20)]
    max_file_bytes: u64,
    /// The most one zip archive may unpack to.
    #[arg(long, default_value_t = 8 << 30)]
    max_total_bytes: u64,
}

/// What matching an SBOM gave.
struct Matched {
    loaded: advisories::Loaded,
    matches: Vec<ComponentMatch>,
    unapplied: Vec<medsec_risk::matching::Unapplied>,
}

impl Matched {
    fn summary(&self) -> medsec_risk::matching::Summary {
        medsec_risk::matching::summarise(&self.matches, &self.loaded.db, self.unapplied.len())
    }

    /// The JSON of the advisories read, refused and forgiven.
    fn advisories_json(&self) -> serde_json::Value {
        let l = &self.loaded;
        serde_json::json!({
            "files": l.files, "held": l.db.len(), "imported": l.imported,
            "unread": l.refused.iter()
                .map(|(file, why)| serde_json::json!({"file": file, "why": why}))
                .collect::<Vec<_>>(),
            "warnings": l.warnings.iter()
                .map(|(file, w)| serde_json::json!({"file": file, "warnings": w}))
                .collect::<Vec<_>>(),
            "unmatchable_products": l.db.unmatchable(),
        })
    }

    /// Fails on an incomplete result unless allowed.
    fn complete_or_allowed(&self, allow: bool) -> Result<()> {
        let unread = &self.loaded.refused;
        if !unread.is_empty() && !allow {
            bail!(
                "{} of {} advisory files could not be read, so no component can be called clean                  (first: {}: {}); fix or remove them, or pass --allow-incomplete",
                unread.len(),
                self.loaded.files,
                unread.first().map_or("", |u| u.0.as_str()),
                unread.first().map_or("", |u| u.1.as_str())
            );
        }
        Ok(())
    }
}

/// Loads the advisories and VEX, matches the SBOM's components and applies the VEX.
fn match_sbom(sbom: &Sbom, inputs: &MatchInputs) -> Result<Matched> {
    let mut names = medsec_risk::names::Names::builtin();
    for file in &inputs.vendor_aliases {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        names
            .extend(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    let loaded = advisories::load(
        &inputs.advisories,
        advisories::Limits {
            max_file_bytes: inputs.max_file_bytes,
            max_total_bytes: inputs.max_total_bytes,
        },
        inputs.strict,
        names,
    )?;
    for (name, why) in &loaded.refused {
        eprintln!("unread {name}: {why}");
    }
    for (name, warnings) in &loaded.warnings {
        for w in warnings {
            eprintln!("warning {name}: {w}");
        }
    }
    let mut matches = loaded.db.index().components(&sbom.components);
    let mut statements = Vec::new();
    for file in &inputs.vex {
        statements.extend(read_vex(file)?.1);
    }
    let unapplied = medsec_risk::matching::apply_vex(
        &mut matches,
        &statements,
        &sbom.product_ids,
        sbom.subject_version.as_deref(),
    );
    for u in &unapplied {
        eprintln!(
            "VEX statement about {} for {} applied to nothing: {}",
            u.vulnerability, u.product, u.why
        );
    }
    Ok(Matched {
        loaded,
        matches,
        unapplied,
    })
}

/// `medsec release`.
#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Gate a release on its vulnerabilities: verify the repository, check that the SBOM
    /// is the one whose digest is signed into TARGET's metadata, match it against the
    /// advisories with the VEX applied, and exit 1 when an open finding (not resolved by
    /// VEX, undetermined ones included) reaches --fail-on (default critical) or is known
    /// exploited (CISA KEV, whatever its severity): the rule the compliance report's
    /// vulnerability gaps follow.
    Check {
        /// The repository directory.
        repo: PathBuf,
        /// The target path in the repository (e.g. pump/pump-1.2.0.img).
        target: String,
        /// The release's SBOM (its SHA-256 must be the one signed into the target).
        #[arg(long)]
        sbom: PathBuf,
        #[command(flatten)]
        inputs: MatchInputs,
        /// The lowest severity that fails the release.
        #[arg(long, value_enum, default_value = "critical")]
        fail_on: FailOn,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `medsec release`.
pub fn run_release(cmd: ReleaseCommand) -> Result<()> {
    let ReleaseCommand::Check {
        repo,
        target,
        sbom,
        inputs,
        fail_on,
        json,
    } = cmd;
    let report = crate::editor::Repo::open(&repo)?.verify(time::OffsetDateTime::now_utc())?;
    anyhow::ensure!(
        report.problems.is_empty(),
        "{} does not verify, so nothing it signs can be trusted:\n  {}",
        repo.display(),
        report.problems.join("\n  ")
    );
    let entry = report
        .targets
        .get(&target)
        .with_context(|| format!("{target:?} is not a target of {}", repo.display()))?;
    let signed = entry
        .custom
        .as_ref()
        .and_then(|c| c.pointer("/medsec/sbom/sha256"))
        .and_then(serde_json::Value::as_str)
        .with_context(|| {
            format!("{target:?} has no SBOM digest in its signed metadata (repo add-target --sbom)")
        })?;
    let (bytes, parsed) = read_sbom(&sbom)?;
    let digest = hex::encode(medsec_crypto::digest::sha256(&bytes));
    anyhow::ensure!(
        digest.eq_ignore_ascii_case(signed),
        "{} is not the SBOM signed into {target:?}: its SHA-256 is {digest}, the signed one {signed}",
        sbom.display()
    );
    let matched = match_sbom(&parsed, &inputs)?;
    let matches = &matched.matches;
    // The rule the compliance report's vulnerability gaps use too (medsec_risk::gate).
    let blocking: Vec<(&medsec_risk::matching::Finding, medsec_risk::gate::Block)> = matches
        .iter()
        .flat_map(|m| &m.findings)
        .filter_map(|f| f.blocks(fail_on.threshold()).map(|why| (f, why)))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "target": target, "sbom_sha256": digest,
                "blocking": blocking.iter().map(|(f, _)| &f.advisory).collect::<Vec<_>>(),
                "summary": matched.summary(),
                "advisories": matched.advisories_json(),
                "vex_unapplied": matched.unapplied,
                "components": matches,
            }))?
        );
    } else {
        println!("{target}: the SBOM's SHA-256 {digest} is the one signed into the target");
        print!("{}", match_table(&parsed, &matched)?);
    }
    matched.complete_or_allowed(inputs.allow_incomplete)?;
    if !blocking.is_empty() {
        let names: Vec<String> = blocking
            .iter()
            .map(|(f, why)| {
                format!(
                    "{} ({}{}{})",
                    f.advisory,
                    f.severity.unwrap_or("unscored"),
                    if f.certain { "" } else { ", undetermined" },
                    match (*why, &f.known_exploited) {
                        (medsec_risk::gate::Block::Exploited, Some(_)) =>
                            ", known exploited: CISA KEV",
                        (medsec_risk::gate::Block::Exploited, None) => {
                            ", exploited: the advisory says so"
                        }
                        _ => "",
                    }
                )
            })
            .collect();
        bail!(
            "{target} has {} open finding(s) at or above {fail_on:?}, or known exploited, without a VEX statement resolving them: {}",
            blocking.len(),
            names.join(", ")
        );
    }
    println!("{target}: no open finding at or above {fail_on:?}, and none known exploited");
    Ok(())
}

/// A device's clinical impact class.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClinicalArg {
    /// Delivers therapy (infusion, insulin pumps, ventilators).
    Therapy,
    /// Informs diagnosis (imaging, laboratory).
    Diagnostic,
    /// Monitors patients.
    Monitoring,
    /// No clinical function.
    NonClinical,
}

/// A device's network reach.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExposureArg {
    /// From the internet.
    Internet,
    /// From the hospital network.
    Network,
    /// From its own segment only.
    Adjacent,
    /// No network service.
    Local,
}

/// A VEX format to write.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VexFormat {
    /// CycloneDX 1.6 VEX.
    Cyclonedx,
    /// OpenVEX 0.2.0.
    Openvex,
    /// CSAF 2.0, profile csaf_vex.
    Csaf,
}

/// Reads a VEX document.
fn read_vex(
    file: &std::path::Path,
) -> Result<(medsec_risk::vex::Format, Vec<medsec_risk::vex::Statement>)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    medsec_risk::vex::parse(&bytes).map_err(|e| match e {
        medsec_risk::Error::Schema { format, problems } => anyhow::anyhow!(
            "{} is not a valid {format} document:\n  {}",
            file.display(),
            problems.join("\n  ")
        ),
        other => anyhow::anyhow!("{}: {other}", file.display()),
    })
}

/// The lowest severity that makes `risk match` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum FailOn {
    /// Any finding, certain or not.
    Any,
    /// A certain finding scored low or above.
    Low,
    /// Medium or above.
    Medium,
    /// High or above.
    High,
    /// Critical.
    Critical,
}

impl FailOn {
    fn threshold(self) -> medsec_risk::gate::Threshold {
        use medsec_risk::gate::Threshold;
        match self {
            Self::Any => Threshold::Any,
            Self::Low => Threshold::Low,
            Self::Medium => Threshold::Medium,
            Self::High => Threshold::High,
            Self::Critical => Threshold::Critical,
        }
    }
}

#[derive(Subcommand)]
pub enum RiskCommand {
    /// Validate an SBOM (CycloneDX 1.4–1.6 or SPDX 2.3 JSON) against its official schema and
    /// the rules a schema cannot express, list its components and score its completeness
    /// (NTIA minimum elements and the FDA's support fields). Exits 1 when it is invalid or
    /// scores under --min-completeness.
    Sbom {
        /// The SBOM file.
        file: PathBuf,
        /// Lowest acceptable completeness score, 0 to 100.
        #[arg(long, default_value_t = 0.0)]
        min_completeness: f64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Match an SBOM's components against advisories: OSV records, CSAF 2.0 documents and
    /// CISA's Known Exploited Vulnerabilities catalogue, as files, directories or zip
    /// archives (read offline). Each component is matched (with its findings), clean, or
    /// unidentifiable (no purl or CPE); a match that cannot be decided is reported as
    /// undetermined. Exits 1 when --fail-on is met.
    Match {
        /// The SBOM file (CycloneDX or SPDX JSON).
        sbom: PathBuf,
        #[command(flatten)]
        inputs: MatchInputs,
        /// The device's clinical impact class: with it, each finding gets a risk score
        /// (0–100) with its explanation, and findings are ordered by it.
        #[arg(long, value_enum)]
        clinical: Option<ClinicalArg>,
        /// The device's network reach per policy (with --clinical).
        #[arg(long, value_enum, default_value = "network", requires = "clinical")]
        exposure: ExposureArg,
        /// The device is quarantined (a compensating control; with --clinical).
        #[arg(long, requires = "clinical")]
        quarantined: bool,
        /// The device sits on a filtering segment (a compensating control; with --clinical).
        #[arg(long, requires = "clinical")]
        segmented: bool,
        /// The vendor no longer ships updates for the device's model: findings score as
        /// unfixable (with --clinical).
        #[arg(long, requires = "clinical")]
        unsupported: bool,
        /// Exit 1 when an open finding reaches this severity (`any` includes undetermined
        /// ones).
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Convert a VEX document between CycloneDX, OpenVEX and CSAF 2.0 VEX. Statuses,
    /// justifications, impact and action statements, products and components are kept;
    /// CycloneDX's own analysis too (in a note the other formats carry). The output is the
    /// same bytes for the same input and options.
    Vex {
        /// The VEX document.
        file: PathBuf,
        /// The format to write.
        #[arg(long, value_enum)]
        to: VexFormat,
        /// Who states it (OpenVEX author, CSAF publisher, CycloneDX author).
        #[arg(long)]
        author: String,
        /// The document id (CSAF tracking id; seeds the OpenVEX @id and CycloneDX serial).
        #[arg(long)]
        id: String,
        /// The author's web address (CSAF publisher namespace).
        #[arg(long, default_value = "https://example.invalid")]
        namespace: String,
        /// The document's timestamp (RFC 3339).
        #[arg(long)]
        timestamp: String,
    },
    /// Score CVSS vectors (v2.0, v3.0, v3.1, v4.0): base, temporal and environmental scores
    /// and severity. Exits 1 if any vector is invalid.
    Cvss {
        /// The vectors, e.g. CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H.
        #[arg(required = true)]
        vectors: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and checks the SBOM in `file`.
pub fn read_sbom(file: &std::path::Path) -> Result<(Vec<u8>, Sbom)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let sbom = Sbom::parse(&bytes).map_err(|e| match e {
        medsec_risk::Error::Schema { format, problems } => anyhow::anyhow!(
            "{} is not a valid {format} document:\n  {}",
            file.display(),
            problems.join("\n  ")
        ),
        other => anyhow::anyhow!("{}: {other}", file.display()),
    })?;
    Ok((bytes, sbom))
}

fn or_dash(v: Option<&String>) -> &str {
    v.map_or("-", String::as_str)
}

pub fn run(cmd: RiskCommand) -> Result<()> {
    match cmd {
        RiskCommand::Sbom {
            file,
            min_completeness,
            json,
        } => {
            if !(0.0..=100.0).contains(&min_completeness) {
                bail!("--min-completeness must be between 0 and 100");
            }
            let (_, sbom) = read_sbom(&file)?;
            let completeness = sbom.completeness();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "sbom": sbom,
                        "completeness": completeness,
                    }))?
                );
            } else {
                let mut out = String::new();
                writeln!(
                    out,
                    "{}: {} {}, {} components, made {} by {}",
                    sbom.format,
                    or_dash(sbom.subject.as_ref()),
                    or_dash(sbom.subject_version.as_ref()),
                    sbom.components.len(),
                    or_dash(sbom.timestamp.as_ref()),
                    if sbom.authors.is_empty() {
                        "-".to_owned()
                    } else {
                        sbom.authors.join(", ")
                    }
                )?;
                writeln!(
                    out,
                    "\n| component | version | identifier | supplier | support | end of support |"
                )?;
                writeln!(out, "|---|---|---|---|---|---|")?;
                for c in &sbom.components {
                    writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        c.name,
                        or_dash(c.version.as_ref()),
                        c.purl.as_ref().or(c.cpe.as_ref()).map_or(
                            if c.supplier.is_some() {
                                "supplier and name only"
                            } else {
                                "unidentifiable (no purl, CPE or supplier)"
                            },
                            String::as_str
                        ),
                        or_dash(c.supplier.as_ref()),
                        or_dash(c.level_of_support.as_ref()),
                        or_dash(c.end_of_support.as_ref()),
                    )?;
                }
                writeln!(out, "\ncompleteness {:.1} / 100", completeness.score)?;
                for e in &completeness.elements {
                    write!(out, "  {:<34} {}/{}", e.element, e.have, e.of)?;
                    if !e.missing.is_empty() {
                        write!(out, "  missing on: {}", e.missing.join(", "))?;
                    }
                    writeln!(out)?;
                }
                print!("{out}");
            }
            if completeness.score < min_completeness {
                bail!(
                    "completeness {:.1} is under --min-completeness {min_completeness}",
                    completeness.score
                );
            }
        }
        RiskCommand::Match {
            sbom,
            inputs,
            clinical,
            exposure,
            quarantined,
            segmented,
            unsupported,
            fail_on,
            json,
        } => {
            let (_, parsed) = read_sbom(&sbom)?;
            let mut matched = match_sbom(&parsed, &inputs)?;
            let matches = &mut matched.matches;
            if let Some(clinical) = clinical {
                let context = Context {
                    clinical: match clinical {
                        ClinicalArg::Therapy => Clinical::Therapy,
                        ClinicalArg::Diagnostic => Clinical::Diagnostic,
                        ClinicalArg::Monitoring => Clinical::Monitoring,
                        ClinicalArg::NonClinical => Clinical::NonClinical,
                    },
                    exposure: match exposure {
                        ExposureArg::Internet => Exposure::Internet,
                        ExposureArg::Network => Exposure::Network,
                        ExposureArg::Adjacent => Exposure::Adjacent,
                        ExposureArg::Local => Exposure::Local,
                    },
                    controls: Controls {
                        quarantined,
                        segmented,
                    },
                    unsupported,
                };
                medsec_risk::matching::score_findings(matches, &context);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "sbom": {"format": parsed.format, "subject": parsed.subject,
                                 "version": parsed.subject_version},
                        "summary": matched.summary(),
                        "advisories": matched.advisories_json(),
                        "vex_unapplied": matched.unapplied,
                        "components": matched.matches,
                    }))?
                );
            } else {
                print!("{}", match_table(&parsed, &matched)?);
            }
            if let Some(level) = fail_on {
                matched.complete_or_allowed(inputs.allow_incomplete)?;
                // `any`: every open finding, undetermined and possible ones included; above
                // it, certain findings at the threshold, and exploited ones whatever it is.
                let hit = matched
                    .matches
                    .iter()
                    .flat_map(|m| &m.findings)
                    .filter(|f| f.open())
                    .find(|f| {
                        level == FailOn::Any || (f.certain && f.blocks(level.threshold()).is_some())
                    });
                if let Some(f) = hit {
                    bail!(
                        "{} ({}{}) reaches --fail-on {level:?}",
                        f.advisory,
                        f.severity.unwrap_or("unscored"),
                        if f.known_exploited.is_some() {
                            ", known exploited: CISA KEV"
                        } else if f.exploited() {
                            ", exploited: the advisory says so"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        RiskCommand::Vex {
            file,
            to,
            author,
            id,
            namespace,
            timestamp,
        } => {
            let (_, statements) = read_vex(&file)?;
            let format = match to {
                VexFormat::Cyclonedx => medsec_risk::vex::Format::CycloneDx,
                VexFormat::Openvex => medsec_risk::vex::Format::OpenVex,
                VexFormat::Csaf => medsec_risk::vex::Format::Csaf,
            };
            let meta = medsec_risk::vex::Meta {
                author,
                timestamp,
                id,
                namespace,
            };
            println!("{}", medsec_risk::vex::export(&statements, format, &meta)?);
        }
        RiskCommand::Cvss { vectors, json } => {
            let mut rows = Vec::new();
            let mut bad = Vec::new();
            for v in &vectors {
                match medsec_risk::cvss::score(v) {
                    Ok(s) => rows.push((v, s)),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(v, s)| serde_json::json!({"vector": v, "scores": s}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("| vector | version | base | temporal | environmental | severity |");
                println!("|---|---|---:|---:|---:|---|");
                let opt = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.1}"));
                for (v, s) in &rows {
                    println!(
                        "| {v} | {} | {:.1} | {} | {} | {} |",
                        s.version,
                        s.base,
                        opt(s.temporal),
                        opt(s.environmental),
                        s.severity
                    );
                }
            }
            if !bad.is_empty() {
                bail!("{}", bad.join("\n"));
            }
        }
    }
    Ok(())
}

fn match_table(sbom: &Sbom, matched: &Matched) -> Result<String> {
    let (loaded, matches) = (&matched.loaded, &matched.matches);
    let mut out = String::new();
    writeln!(
        out,
        "{}: {} {}, {} components; {} advisories from {} files ({} unread, {} read with warnings), {} KEV entries",
        sbom.format,
        or_dash(sbom.subject.as_ref()),
        or_dash(sbom.subject_version.as_ref()),
        sbom.components.len(),
        loaded.db.len(),
        loaded.files,
        loaded.refused.len(),
        loaded.warnings.len(),
        loaded.imported.kev
    )?;
    writeln!(
        out,
        "\n| component | version | status | advisory | matched by | severity | score | known exploited | fixed in | VEX | risk | why |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---:|---|---|---|---|---|")?;
    for m in matches {
        let version = or_dash(m.version.as_ref());
        if m.findings.is_empty() {
            let compared: Vec<String> = m
                .compared_on
                .iter()
                .map(|c| format!("{} {} ({} advisories)", c.on, c.value, c.advisories))
                .collect();
            let status = match m.status {
                Status::Unidentifiable => "unidentifiable (no purl, CPE or supplier)".to_owned(),
                Status::Incomplete => format!(
                    "incomplete ({} advisory files unread)",
                    loaded.refused.len()
                ),
                other => other.name().to_owned(),
            };
            writeln!(
                out,
                "| {} | {version} | {status} | | | | | | | | | compared on {} |",
                m.component,
                if compared.is_empty() {
                    "nothing".to_owned()
                } else {
                    compared.join("; ")
                }
            )?;
        }
        for f in &m.findings {
            let by = match &f.compared {
                Some(c) => format!(
                    "{} ({}: {:?} ~ {:?})",
                    serde_json::to_value(f.matched_by)?
                        .as_str()
                        .unwrap_or_default(),
                    f.confidence,
                    c.component,
                    c.advisory
                ),
                None => serde_json::to_value(f.matched_by)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            writeln!(
                out,
                "| {} | {version} | {} | {} | {by} | {} | {} | {} | {} | {} | {} | {} |",
                m.component,
                if f.possible() {
                    "possible"
                } else if f.certain {
                    "matched"
                } else {
                    "undetermined"
                },
                f.advisory,
                f.severity.unwrap_or("-"),
                f.score.map_or("-".to_owned(), |s| format!("{s:.1}")),
                match (&f.known_exploited, f.exploited_per_advisory) {
                    (Some(k), _) => format!("KEV since {}", k.date_added),
                    (None, true) => "per the advisory".to_owned(),
                    (None, false) => "-".to_owned(),
                },
                or_dash(f.fixed_in.as_ref()),
                f.vex
                    .as_ref()
                    .map_or("-".to_owned(), |v| match &v.justification {
                        Some(j) => format!("{} ({j})", v.status.name()),
                        None => v.status.name().to_owned(),
                    }),
                f.risk
                    .as_ref()
                    .map_or("-".to_owned(), |r| format!("{:.1} {}", r.score, r.priority)),
                f.reason
            )?;
        }
    }
    let mut explained = false;
    for m in matches {
        for f in &m.findings {
            let Some(r) = &f.risk else { continue };
            if !explained {
                writeln!(
                    out,
                    "\nrisk, explained (the score is the product of the factors, at most 100):"
                )?;
                explained = true;
            }
            let parts: Vec<String> = r
                .factors
                .iter()
                .map(|x| format!("{} {} ({})", x.name, x.weight, x.why))
                .collect();
            let capped = if r.raw > r.score {
                format!(" (capped from {:.1})", r.raw)
            } else {
                String::new()
            };
            writeln!(
                out,
                "  {} in {}: {} = {:.1}{capped} {}",
                f.advisory,
                m.component,
                parts.join(" × "),
                r.score,
                r.priority
            )?;
        }
    }
    let s = matched.summary();
    let by: Vec<String> = s
        .findings_by
        .iter()
        .map(|(k, v)| format!("{v} by {k}"))
        .collect();
    writeln!(
        out,
        "\n{} matched, {} possible, {} with undetermined findings, {} clean, {} incomplete, {} unidentifiable; {} findings ({}), {} open after VEX",
        s.matched,
        s.possible,
        s.undetermined,
        s.clean,
        s.incomplete,
        s.unidentifiable,
        s.findings,
        if by.is_empty() {
            "none".to_owned()
        } else {
            by.join(", ")
        },
        s.open
    )?;
    writeln!(
        out,
        "advisories: {} files unread, {} products with nothing to compare on, {} VEX statements applied to nothing",
        s.unread_advisory_files, s.unmatchable_products, s.vex_unapplied
    )?;
    if s.unread_advisory_files > 0 {
        writeln!(
            out,
            "INCOMPLETE: {} advisory files could not be read; no component is reported clean",
            s.unread_advisory_files
        )?;
    }
    Ok(out)
}
