//! `medsec risk`: read and check SBOMs (CycloneDX, SPDX) and score CVSS vectors.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use medsec_risk::sbom::Sbom;

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
                        c.purl
                            .as_ref()
                            .or(c.cpe.as_ref())
                            .map_or("unidentifiable (no purl or CPE)", String::as_str),
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
