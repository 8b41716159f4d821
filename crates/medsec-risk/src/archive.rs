//! The JSON files of a zip archive (such as OSV's per-ecosystem `all.zip`), unpacked within
//! limits. Reads from any `Read + Seek` the caller opens (a file for the CLI, an uploaded body
//! for the server); it opens nothing itself.
//!
//! The sizes in a zip's headers are the archive's word; every read here is capped whatever
//! they say, so a zip bomb stops at the limit.

use std::io::{Read, Seek};

/// Size limits for unpacking.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest one JSON file may be.
    pub max_file_bytes: u64,
    /// The most the archive may unpack to, in all.
    pub max_total_bytes: u64,
}

/// Why an archive was refused as a whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    /// Not a readable zip archive, or an entry that cannot be read.
    #[error("{0}")]
    Unreadable(String),
    /// An entry or the whole archive unpacks beyond a limit.
    #[error("{name} unpacks to over {limit} bytes ({which})")]
    TooLarge {
        /// The entry or archive.
        name: String,
        /// The limit.
        limit: u64,
        /// Which limit.
        which: &'static str,
    },
}

fn is_json(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".json")
}

/// Calls `each` with the name (`LABEL:PATH`) and bytes of every `.json` entry, in archive
/// order. Other entries and directories are skipped.
pub fn json_entries<R: Read + Seek>(
    reader: R,
    label: &str,
    limits: Limits,
    mut each: impl FnMut(String, Vec<u8>),
) -> Result<(), ArchiveError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| ArchiveError::Unreadable(format!("{label} is not a zip archive: {e}")))?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| {
            ArchiveError::Unreadable(format!("{label}: entry {i} cannot be read: {e}"))
        })?;
        let inner = entry
            .name()
            .map_err(|e| {
                ArchiveError::Unreadable(format!("{label}: entry {i} has no readable name: {e}"))
            })?
            .into_owned();
        if entry.is_dir() || !is_json(&inner) {
            continue;
        }
        let name = format!("{label}:{inner}");
        let mut bytes = Vec::new();
        (&mut entry)
            .take(limits.max_file_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| ArchiveError::Unreadable(format!("{name} cannot be unpacked: {e}")))?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > limits.max_file_bytes {
            return Err(ArchiveError::TooLarge {
                name,
                limit: limits.max_file_bytes,
                which: "the limit per file",
            });
        }
        total = total.saturating_add(len);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooLarge {
                name: label.to_owned(),
                limit: limits.max_total_bytes,
                which: "the limit per archive",
            });
        }
        each(name, bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write as _};

    use super::*;

    fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const LIMITS: Limits = Limits {
        max_file_bytes: 1024,
        max_total_bytes: 4096,
    };

    #[test]
    fn json_entries_are_given_in_order_and_others_skipped() {
        let z = zip_of(&[
            ("a/1.json", b"{}".to_vec()),
            ("README", b"x".to_vec()),
            ("b/2.JSON", b"[]".to_vec()),
        ]);
        let mut got = Vec::new();
        json_entries(Cursor::new(z), "feed.zip", LIMITS, |n, b| got.push((n, b))).unwrap();
        assert_eq!(
            got,
            vec![
                ("feed.zip:a/1.json".to_owned(), b"{}".to_vec()),
                ("feed.zip:b/2.JSON".to_owned(), b"[]".to_vec())
            ]
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limits_and_garbage_is_named() {
        // 1 MiB of spaces deflates to about a kilobyte: the header cannot be trusted.
        let z = zip_of(&[("huge.json", vec![b' '; 1 << 20])]);
        let e = json_entries(Cursor::new(z), "bomb.zip", LIMITS, |_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bomb.zip:huge.json unpacks to over 1024 bytes (the limit per file)"
        );
        let z = zip_of(
            &(0..5)
                .map(|i| (["f", &i.to_string(), ".json"].concat(), vec![b' '; 1000]))
                .collect::<Vec<_>>()
                .iter()
                .map(|(n, b)| (n.as_str(), b.clone()))
                .collect::<Vec<_>>(),
        );
        let e = json_entries(Cursor::new(z), "many.zip", LIMITS, |_, _| {}).unwrap_err();
        assert!(
            e.to_string()
                .contains("many.zip unpacks to over 4096 bytes (the limit per archive)"),
            "{e}"
        );
        let e = json_entries(
            Cursor::new(b"not a zip".to_vec()),
            "x.zip",
            LIMITS,
            |_, _| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("x.zip is not a zip archive"),
            "{e}"
        );
    }
}
