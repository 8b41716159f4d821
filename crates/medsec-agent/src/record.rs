//! Crash-safe records, in the manner of U-Boot's redundant environment: each record lives in two
//! files, written alternately, each carrying a sequence number and a SHA-256 of its body. A write
//! cut short by power loss or a kill damages only the copy being written; reading takes the
//! valid copy with the higher sequence number, which is either the new state or the one before.
//!
//! Written by hand: a rename-based write is atomic on most file systems but not on every flash
//! file system or FAT boot partition a device may keep its state on; two checksummed copies are.

use std::io::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

const MAGIC: &str = "medsec-record v1";

/// One record of type `T`, kept as `NAME.0` and `NAME.1` in a directory.
#[derive(Debug)]
pub struct Record<T> {
    paths: [PathBuf; 2],
    seq: u64,
    _t: PhantomData<T>,
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<(u64, T)> {
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let (head, body) = bytes.split_at(newline);
    let body = body.get(1..)?;
    let head = std::str::from_utf8(head).ok()?;
    let mut parts = head.split(' ');
    let (m1, m2) = (parts.next()?, parts.next()?);
    if format!("{m1} {m2}") != MAGIC {
        return None;
    }
    let seq: u64 = parts.next()?.parse().ok()?;
    let digest = parts.next()?;
    if parts.next().is_some() || hex::encode(medsec_crypto::digest::sha256(body)) != digest {
        return None;
    }
    Some((seq, serde_json::from_slice(body).ok()?))
}

impl<T: Serialize + DeserializeOwned> Record<T> {
    /// The record `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            paths: [dir.join(format!("{name}.0")), dir.join(format!("{name}.1"))],
            seq: 0,
            _t: PhantomData,
        }
    }

    /// The newest valid copy, or `None` when neither copy is valid (never written, or both
    /// destroyed).
    pub fn load(&mut self) -> Option<T> {
        let mut best: Option<(u64, T)> = None;
        for path in &self.paths {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            if let Some((seq, value)) = parse::<T>(&bytes)
                && best.as_ref().is_none_or(|(s, _)| seq > *s)
            {
                best = Some((seq, value));
            }
        }
        best.map(|(seq, value)| {
            self.seq = seq;
            value
        })
    }

    /// Writes `value` as the next sequence number into the older copy, and waits until it is on
    /// disk.
    pub fn save(&mut self, value: &T) -> Result<(), Error> {
        let seq = self.seq + 1;
        let body = serde_json::to_vec(value).map_err(|e| Error::State(e.to_string()))?;
        let digest = hex::encode(medsec_crypto::digest::sha256(&body));
        let path = self
            .paths
            .get(usize::try_from(seq % 2).unwrap_or(0))
            .ok_or_else(|| Error::State("record path".into()))?;
        crate::fault::point("record-write");
        let mut f = std::fs::File::create(path).map_err(Error::io("writing", path))?;
        f.write_all(format!("{MAGIC} {seq} {digest}\n").as_bytes())
            .and_then(|()| f.write_all(&body))
            .and_then(|()| f.sync_all())
            .map_err(Error::io("writing", path))?;
        crate::sync_dir(path)?;
        self.seq = seq;
        Ok(())
    }

    /// Both files (for fault injection and inspection).
    pub fn paths(&self) -> &[PathBuf; 2] {
        &self.paths
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_newest_valid_copy_wins_and_a_torn_write_falls_back_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut r: Record<Vec<u32>> = Record::new(dir.path(), "state");
        assert_eq!(r.load(), None);
        for i in 1..=5u32 {
            r.save(&vec![i]).unwrap();
        }
        let mut again: Record<Vec<u32>> = Record::new(dir.path(), "state");
        assert_eq!(again.load(), Some(vec![5]));
        // Seq 5 went to copy 1; tear it: copy 0 (seq 4) is what remains.
        let torn = std::fs::read(&r.paths()[1]).unwrap();
        std::fs::write(&r.paths()[1], &torn[..torn.len() - 3]).unwrap();
        assert_eq!(again.load(), Some(vec![4]));
        // The next save goes over the torn copy, never over the good one.
        again.save(&vec![6]).unwrap();
        assert_eq!(
            Record::<Vec<u32>>::new(dir.path(), "state").load(),
            Some(vec![6])
        );
        assert!(parse::<Vec<u32>>(&std::fs::read(&r.paths()[0]).unwrap()).is_some());
    }

    proptest! {
        /// Whatever a write leaves behind (any prefix, any garbage), loading returns either the
        /// new value or the previous one.
        #[test]
        fn any_damage_to_the_copy_being_written_keeps_the_previous_value(
            cut in 0usize..200, garbage in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut r: Record<String> = Record::new(dir.path(), "s");
            r.save(&"old".to_owned()).unwrap();
            r.save(&"new value".to_owned()).unwrap();
            let bytes = std::fs::read(&r.paths()[0]).unwrap();
            let mut damaged = bytes[..cut.min(bytes.len())].to_vec();
            damaged.extend_from_slice(&garbage);
            std::fs::write(&r.paths()[0], &damaged).unwrap();
            let got = Record::<String>::new(dir.path(), "s").load();
            prop_assert!(got.as_deref() == Some("old") || got.as_deref() == Some("new value"), "{got:?}");
        }
    }
}
