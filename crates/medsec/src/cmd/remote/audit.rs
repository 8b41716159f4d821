//! `medsec audit head|proof|verify` against the current context's server. What the server
//! answers is checked here under the audit log's public key, pinned by the operator
//! (`--key`, a copy of the server's `audit.pub` kept elsewhere): a server that rewrote its log
//! cannot produce a head or an inclusion proof that verifies under that key.

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use medsec_audit::{leaf_hash, verify_inclusion};
use medsec_server::audit_log::{InclusionProof, read_public_key};

use super::Remote;
use super::output::{Format, emit, print, rfc3339};

fn hash(hex_text: &str) -> Result<medsec_audit::Hash> {
    let bytes = hex::decode(hex_text).with_context(|| format!("{hex_text:?} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("{hex_text:?} is not a SHA-256 hash"))
}

/// `medsec audit head [--key FILE]`: the newest signed tree head, its signature checked when
/// a key is given.
pub fn head(remote: &Remote, key: Option<&Path>) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.get("/api/v1/audit/head")?;
    if v.is_null() {
        return emit("the audit log is empty\n");
    }
    let head: medsec_audit::SignedTreeHead =
        serde_json::from_value(v.clone()).context("the server's head")?;
    let checked = match key {
        Some(path) => {
            head.verify(&read_public_key(path)?).map_err(|e| {
                anyhow!(
                    "the head is NOT signed by the key in {}: {e}",
                    path.display()
                )
            })?;
            "signature verified under the pinned key"
        }
        None => "signature not checked (give --key with a copy of audit.pub)",
    };
    if matches!(format, Format::Json | Format::Yaml) {
        return print(format, &v, &[], &[]);
    }
    let ms = i64::try_from(head.head.timestamp_ms).unwrap_or(i64::MAX);
    emit(&format!(
        "{} entries, root {}, signed {} ({checked})\n",
        head.head.tree_size,
        head.head.root_hash,
        rfc3339(ms)
    ))
}

/// `medsec audit proof SEQ --key FILE`: entry SEQ, proved to be in the log under a head the
/// pinned key signed.
pub fn proof(remote: &Remote, seq: u64, key: &Path) -> Result<()> {
    let (client, format) = remote.open()?;
    let v = client.get(&format!("/api/v1/audit/proof/inclusion?seq={seq}"))?;
    let p: InclusionProof = serde_json::from_value(v.clone()).context("the server's proof")?;
    let head = p
        .head
        .verify(&read_public_key(key)?)
        .map_err(|e| anyhow!("the proof's head is NOT signed by the pinned key: {e}"))?;
    let path = p
        .proof
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>>>()?;
    if p.seq != seq {
        bail!("the server proved entry {} instead of {seq}", p.seq);
    }
    verify_inclusion(
        &leaf_hash(p.entry.as_bytes()),
        seq,
        head.tree_size,
        &path,
        &hash(&head.root_hash)?,
    )
    .map_err(|e| anyhow!("entry {seq} is NOT proved to be in the log: {e}"))?;
    if matches!(format, Format::Json | Format::Yaml) {
        return print(format, &v, &[], &[]);
    }
    emit(&format!(
        "entry {seq} is in the log of {} entries (root {}), under a head signed by the pinned key\n{}\n",
        head.tree_size, head.root_hash, p.entry
    ))
}

/// `medsec audit verify` without a data directory: the server's own verification, and its
/// newest head checked under the pinned key.
pub fn verify(remote: &Remote, key: Option<&Path>, json: bool) -> Result<()> {
    let (client, format) = remote.open_with_json(json)?;
    let key = key.ok_or_else(|| {
        anyhow!(
            "checking a remote server's log needs --key: a copy of its audit.pub kept apart from \
             it (on the server host, pass --data-dir instead)"
        )
    })?;
    let report = client.get("/api/v1/audit/verify")?;
    let head: Option<medsec_audit::SignedTreeHead> =
        serde_json::from_value(client.get("/api/v1/audit/head")?).context("the server's head")?;
    if let Some(h) = &head {
        h.verify(&read_public_key(key)?).map_err(|e| {
            anyhow!("the server's newest head is NOT signed by the pinned key: {e}")
        })?;
    }
    if matches!(format, Format::Json | Format::Yaml) {
        print(format, &report, &[], &[])?;
    } else {
        for f in report["findings"].as_array().into_iter().flatten() {
            emit(&format!("TAMPERED  {f}\n"))?;
        }
        emit(&format!(
            "{} entries, {} signed tree heads, root {} (verified by the server; its newest head \
             checked here under the pinned key)\n",
            report["entries"], report["heads"], report["root_hash"]
        ))?;
    }
    if report["findings"].as_array().is_some_and(|f| !f.is_empty()) {
        bail!("the audit log does not verify");
    }
    emit("audit log verifies\n")
}
