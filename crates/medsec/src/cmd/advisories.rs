//! Reading advisories from disk: files, directories (recursively) and zip archives (such as
//! OSV's per-ecosystem `all.zip`), each JSON file an OSV record, a CSAF 2.0 document or
//! CISA's KEV catalogue. Offline: medsec fetches nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use medsec_risk::advisory;
use medsec_risk::matching::{Database, Imported};

/// Size limits for reading advisories.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest one JSON file may be.
    pub max_file_bytes: u64,
    /// The most a zip archive may unpack to, in all.
    pub max_total_bytes: u64,
}

/// What a load read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The advisories.
    pub db: Database,
    /// Sums of what each file added.
    pub imported: Imported,
    /// How many JSON files were read.
    pub files: usize,
    /// Files refused, with why (the load goes on without them unless strict; the database
    /// notes them as unread, so no component is reported clean).
    pub refused: Vec<(String, String)>,
    /// Files read with warnings (a departure from the format whose meaning was clear), with
    /// the warnings.
    pub warnings: Vec<(String, Vec<String>)>,
    /// Read strictly: a file that breaks a checked rule is refused.
    strict: bool,
}

impl Loaded {
    fn take(&mut self, name: String, bytes: &[u8]) {
        self.files += 1;
        match advisory::read(bytes, self.strict) {
            Ok(read) => {
                if !read.warnings.is_empty() {
                    self.warnings.push((name, read.warnings.clone()));
                }
                let n = self.db.import_read(read);
                self.imported.added += n.added;
                self.imported.updated += n.updated;
                self.imported.unchanged += n.unchanged;
                self.imported.withdrawn += n.withdrawn;
                self.imported.kev += n.kev;
            }
            Err(e) => {
                self.db.note_unread(&name, e.to_string());
                self.refused.push((name, e.to_string()));
            }
        }
    }
}

fn is_json(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".json")
}

/// Loads advisories from `paths` (files, directories, zip archives), comparing vendor
/// names with `names`. Without `strict`, CSAF documents are read leniently
/// ([`advisory::read`]) and unreadable files are listed; with it, either refuses the load.
pub fn load(
    paths: &[PathBuf],
    limits: Limits,
    strict: bool,
    names: medsec_risk::names::Names,
) -> Result<Loaded> {
    let mut out = Loaded {
        strict,
        ..Loaded::default()
    };
    out.db.set_names(names);
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            for f in files {
                let bytes = read_file(&f, limits.max_file_bytes)?;
                out.take(f.display().to_string(), &bytes);
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
        {
            read_zip(path, limits, &mut out)?;
        } else {
            let bytes = read_file(path, limits.max_file_bytes)?;
            out.take(path.display().to_string(), &bytes);
        }
    }
    if strict && let Some((name, why)) = out.refused.first() {
        bail!(
            "{} of {} advisory files refused (--strict); first: {name}: {why}",
            out.refused.len(),
            out.files
        );
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let path = e.path();
        if e.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if is_json(&path.to_string_lossy()) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "{} is {len} bytes, over the limit of {max} (--max-file-bytes)",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_zip(path: &Path, limits: Limits, out: &mut Loaded) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let limits = medsec_risk::archive::Limits {
        max_file_bytes: limits.max_file_bytes,
        max_total_bytes: limits.max_total_bytes,
    };
    medsec_risk::archive::json_entries(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        limits,
        |name, bytes| out.take(name, &bytes),
    )
    .map_err(|e| match e {
        medsec_risk::archive::ArchiveError::TooLarge { name, limit, which } => anyhow::anyhow!(
            "{name} unpacks to over {limit} bytes ({})",
            if which.contains("file") {
                "--max-file-bytes"
            } else {
                "--max-total-bytes"
            }
        ),
        other => other.into(),
    })
}
