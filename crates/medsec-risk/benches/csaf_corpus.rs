//! Intake of real CSAF advisories and matching a hospital-style SBOM against them.
//!
//!   cargo bench -p medsec-risk --bench csaf_corpus
//!
//! Reads every advisory of CISA's 2023–2024 ICS corpus (`../shared/data/risk/cisa-icsa/`,
//! 704 files; `MEDSEC_CSAF_CORPUS` points elsewhere) as `medsec risk match` reads them
//! (schema, mandatory tests, lenient intake), and prints: files read, read with warnings and
//! unread (each with why); products and what they can be matched on; version texts by form
//! and how many medsec evaluates; then the time to import all and to match a 500-component
//! SBOM written as a hospital would (manufacturer, name, version; no purl, no CPE). The
//! peer, in the same run when `python3` is on the PATH: Python's `json` module loading the
//! same files (parsing only, no validation), a floor for any Python CSAF tool.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::panic,
    reason = "a benchmark: its output is the point, and a panic is a failed run"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use medsec_risk::advisory;
use medsec_risk::forms::Form;
use medsec_risk::matching::{Database, Status};
use medsec_risk::sbom::Component;

fn corpus() -> PathBuf {
    std::env::var_os("MEDSEC_CSAF_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/risk/cisa-icsa"),
        PathBuf::from,
    )
}

fn component(supplier: &str, name: &str, version: &str) -> Component {
    Component {
        reference: None,
        name: name.to_owned(),
        version: Some(version.to_owned()),
        supplier: Some(supplier.to_owned()),
        purl: None,
        cpe: None,
        hashes: Vec::new(),
        licenses: Vec::new(),
        level_of_support: None,
        end_of_support: None,
    }
}

fn main() {
    let dir = corpus();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set MEDSEC_CSAF_CORPUS)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let started = Instant::now();
    let mut db = Database::new();
    let (mut warned, mut unread) = (0, Vec::new());
    let mut forms: BTreeMap<Form, usize> = BTreeMap::new();
    let (mut products, mut by_identifier, mut by_name_only, mut nothing) = (0, 0, 0, 0);
    let mut named: Vec<(String, String)> = Vec::new();
    for (f, b) in files.iter().zip(&bytes) {
        match advisory::read(b, false) {
            Ok(read) => {
                if !read.warnings.is_empty() {
                    warned += 1;
                }
                for p in &read.products {
                    products += 1;
                    *forms.entry(p.form).or_default() += 1;
                    if p.identifier {
                        by_identifier += 1;
                    } else if p.named {
                        by_name_only += 1;
                    } else {
                        nothing += 1;
                    }
                }
                if let advisory::Document::Advisories(list) = &read.document {
                    for a in list {
                        for aff in &a.affected {
                            if let Some(n) = &aff.named
                                && named.len() < 5_000
                            {
                                named.push((n.vendor.clone(), n.product.clone()));
                            }
                        }
                    }
                }
                db.import_read(read);
            }
            Err(e) => unread.push(format!("{}: {e}", f.display())),
        }
    }
    let index = db.index();
    let import = started.elapsed();

    // 500 components: 400 named as the advisories name their products (with versions that
    // land inside and outside their ranges), 100 of vendors no advisory names.
    named.sort();
    named.dedup();
    let step = (named.len() / 400).max(1);
    let mut sbom: Vec<Component> = named
        .iter()
        .step_by(step)
        .take(400)
        .enumerate()
        .map(|(i, (v, p))| {
            let version = ["1.0", "2.5.1", "V3.0.1", "10.2", "4.12.006"][i % 5];
            component(v, p, version)
        })
        .collect();
    for i in 0..100 {
        sbom.push(component(
            &format!("Unlisted Maker {i}"),
            &format!("Device {i}"),
            "1.0",
        ));
    }
    let started = Instant::now();
    let rounds = 20;
    let mut matches = Vec::new();
    for _ in 0..rounds {
        matches = index.components(&sbom);
    }
    let per_match = started.elapsed() / rounds;
    let summary = medsec_risk::matching::summarise(&matches, &db, 0);

    let peer = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, time, pathlib\n\
             files = sorted(pathlib.Path(sys.argv[1]).glob('*.json'))\n\
             t = time.perf_counter()\n\
             for f in files: json.loads(f.read_bytes())\n\
             print(time.perf_counter() - t)",
        ])
        .arg(&dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        });

    println!("CISA ICS CSAF corpus: {}", dir.display());
    println!("\n| files | read | read with warnings | unread |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {warned} | {} |",
        files.len(),
        files.len() - unread.len(),
        unread.len()
    );
    for u in &unread {
        println!("  unread: {u}");
    }
    println!(
        "\n| products | matchable by identifier (purl, CPE, model numbers) | by vendor and name only | not at all |"
    );
    println!("|---:|---:|---:|---:|");
    println!("| {products} | {by_identifier} | {by_name_only} | {nothing} |");
    println!("\n| version form | products | evaluated |");
    println!("|---|---:|---|");
    for form in Form::ALL {
        let n = forms.get(&form).copied().unwrap_or(0);
        let evaluated = if form == Form::Unreadable {
            "no: undetermined, with the text"
        } else {
            "yes"
        };
        println!("| {} | {n} | {evaluated} |", form.name());
    }
    let readable: usize = forms
        .iter()
        .filter(|(f, _)| **f != Form::Unreadable)
        .map(|(_, n)| n)
        .sum();
    println!(
        "\nversion texts evaluated: {readable} of {products} ({:.1} %)",
        100.0 * readable as f64 / products.max(1) as f64
    );
    println!("\n| step | medsec | peer: python3 json.loads (parse only) |\n|---|---:|---:|");
    println!(
        "| import {} files (parse, schema, mandatory tests, index) | {:.0} ms | {} |",
        files.len(),
        import.as_secs_f64() * 1e3,
        peer.map_or("-".to_owned(), |s| format!("{:.0} ms", s * 1e3))
    );
    println!(
        "| match a 500-component SBOM (mean of {rounds}) | {:.1} ms | - |",
        per_match.as_secs_f64() * 1e3
    );
    let count = |s: Status| matches.iter().filter(|m| m.status == s).count();
    println!(
        "\nthe SBOM: {} matched ({} findings: {:?}), {} possible, {} clean, {} incomplete, {} unidentifiable",
        count(Status::Matched),
        summary.findings,
        summary.findings_by,
        count(Status::Possible),
        count(Status::Clean),
        count(Status::Incomplete),
        count(Status::Unidentifiable)
    );
}
