//! Atomic replacement of files: write a temporary file in the same directory, flush it to disk,
//! rename it over the old one, then flush the directory. A crash at any instant leaves either the
//! old file or the new one, never a mix.

use std::io::Write as _;
use std::path::Path;

use crate::Error;

/// Prefix of temporary files; [`remove_stale_temporaries`] clears what a crash left behind.
pub(crate) const TEMP_PREFIX: &str = ".medsec-tmp-";

pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let dest = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path().to_owned(), e))?;
    tmp.persist(&dest)
        .map_err(|e| Error::io("replacing", dest.clone(), e.error))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("flushing directory", dir, e))
}

/// Removes temporary files a crash may have left (they were never trusted).
pub(crate) fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
