//! The audit log's write path and its verification over a store.
//!
//! Callers hand an [`Event`] to [`AuditLog::record`] and get its position back once it is durable.
//! One task writes: it drains whatever is queued (up to `audit_batch`), chains the entries, signs a
//! tree head over the new root, and commits entries and head in one transaction — group commit, so
//! throughput grows with load while each caller still waits for its own fsync. Several writers
//! (server replicas on one PostgreSQL, or a CLI command beside a running server) may share a log:
//! a writer whose positions were taken meanwhile reads the new tail and retries.

use std::path::Path;
use std::sync::Arc;

use medsec_audit::{
    Entry, Event, Frontier, Hash, Report, SignedTreeHead, TreeHead, Verifier, leaf_hash,
};
use medsec_crypto::{KeySource, PublicKey, Scheme, SigningKey};
use medsec_store::{AuditRow, HeadRow, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Entries read per page when loading or verifying.
const PAGE: u32 = 10_000;
/// Retries after another writer took our positions.
const CONFLICT_RETRIES: u32 = 16;

type Pending = (Event, oneshot::Sender<Result<u64, String>>);

/// A handle to the log's writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

/// A random wait in [0, 2^attempt) ms, at most 64 ms.
fn conflict_backoff(attempt: u32) -> std::time::Duration {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut b = [0u8; 2];
    // Without randomness the wait is the bound itself: still a backoff.
    let r = if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_ok() {
        u64::from(u16::from_le_bytes(b))
    } else {
        u64::MAX
    };
    let bound = 1u64 << attempt.min(6);
    std::time::Duration::from_millis(r % bound)
}

/// The log key files in a data directory: `audit.key` (private, PKCS#8 PEM, mode 0600) and
/// `audit.pub` (public, JSON). Made on first use.
///
/// The private key is encrypted under `passphrase` (Argon2id + AES-GCM, as the CA's keys are):
/// whoever copies the data directory must also know the passphrase to sign a forged tree head.
/// A plaintext key is refused, new or existing, unless `allow_plaintext`; an existing plaintext
/// key is encrypted in place once a passphrase is given.
pub fn load_or_create_key(
    data_dir: &Path,
    passphrase: Option<&str>,
    allow_plaintext: bool,
) -> Result<SigningKey, Error> {
    use medsec_crypto::keyfile::{self, Protection};
    let path = data_dir.join("audit.key");
    let refuse = |what: &str| Error::Config {
        reason: format!(
            "{what}: give a passphrase (ca_passphrase_file, MEDSEC_PASSPHRASE) to keep the audit \
             log key encrypted, or start with --insecure-plaintext-audit-key (tests, \
             throw-away demos): whoever reads a plaintext key can re-sign a rewritten log"
        ),
    };
    if path.exists() {
        let pem = medsec_util::read_secret(&path)?;
        let key = keyfile::decode_private(&pem, || passphrase.map(str::to_owned))?;
        if !keyfile::is_encrypted(&pem) {
            match passphrase {
                Some(p) => {
                    let sealed = keyfile::encode_private(&key, Protection::Passphrase(p))?;
                    medsec_util::write_atomic(
                        &path,
                        sealed.as_bytes(),
                        medsec_util::Access::Private,
                    )?;
                    tracing::info!(path = %path.display(), "the audit log key was encrypted in place");
                }
                None if allow_plaintext => {
                    tracing::warn!(path = %path.display(), "the audit log key is not encrypted");
                }
                None => {
                    return Err(refuse(&format!("{} is not encrypted", path.display())));
                }
            }
        }
        return Ok(key);
    }
    let protection = match passphrase {
        Some(p) => Protection::Passphrase(p),
        None if allow_plaintext => Protection::Plaintext,
        None => {
            return Err(refuse(&format!(
                "no passphrase to encrypt a new {}",
                path.display()
            )));
        }
    };
    let key = SigningKey::generate(Scheme::Ed25519)?;
    let pem = keyfile::encode_private(&key, protection)?;
    medsec_util::write_atomic(&path, pem.as_bytes(), medsec_util::Access::Private)?;
    let public = public_key_json(key.public_key());
    medsec_util::write_atomic(
        &data_dir.join("audit.pub"),
        public.as_bytes(),
        medsec_util::Access::Public,
    )?;
    Ok(key)
}

/// The JSON form of the log's public key (`audit.pub`).
pub fn public_key_json(key: &PublicKey) -> String {
    serde_json::json!({
        "keytype": key.scheme().keytype(),
        "scheme": key.scheme().name(),
        "public": key.to_tuf_public(),
    })
    .to_string()
}

/// Reads `audit.pub` (or any file in that form).
pub fn read_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        reason: format!("{} is not an audit public key: {e}", path.display()),
    })?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(PublicKey::from_tuf(
        &field("keytype"),
        &field("scheme"),
        &field("public"),
    )?)
}

/// The wall clock as the log's entries record it (unsigned: a clock before 1970 reads 0).
fn now_ms() -> u64 {
    u64::try_from(medsec_util::now_ms()).unwrap_or(0)
}

/// Where the writer stands: next position, the previous leaf, the tree's right edge.
struct Tail {
    frontier: Frontier,
    prev: String,
}

async fn read_tail<S: Store>(store: &S, tail: &mut Tail) -> Result<(), Error> {
    loop {
        let from = i64::try_from(tail.frontier.size()).unwrap_or(i64::MAX);
        let rows = store.audit_entries(from, PAGE).await?;
        for row in &rows {
            let leaf = leaf_hash(row.entry.as_bytes());
            tail.frontier.push(leaf);
            tail.prev = hex::encode(leaf);
        }
        if rows.len() < PAGE as usize {
            return Ok(());
        }
    }
}

impl AuditLog {
    /// Starts the writer over `store`, signing tree heads with `key`.
    pub async fn start<S: Store>(
        store: S,
        key: Arc<dyn KeySource>,
        queue: usize,
        batch: usize,
    ) -> Result<Self, Error> {
        let mut tail = Tail {
            frontier: Frontier::new(),
            prev: String::new(),
        };
        read_tail(&store, &mut tail).await?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(writer(store, key, tail, rx, batch.max(1)));
        Ok(Self { tx })
    }

    /// Entries queued for the writer and not yet taken, and the queue's capacity.
    pub fn queue(&self) -> (usize, usize) {
        let max = self.tx.max_capacity();
        (max - self.tx.capacity(), max)
    }

    /// Appends one event and returns its position once it is durable.
    pub async fn record(&self, event: Event) -> Result<u64, Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .await
            .map_err(|_| Error::Audit {
                reason: "the audit writer has stopped".into(),
            })?;
        wait.await
            .map_err(|_| Error::Audit {
                reason: "the audit writer has stopped".into(),
            })?
            .map_err(|reason| Error::Audit { reason })
    }
}

async fn writer<S: Store>(
    store: S,
    key: Arc<dyn KeySource>,
    mut tail: Tail,
    mut rx: mpsc::Receiver<Pending>,
    batch: usize,
) {
    let mut pending: Vec<Pending> = Vec::with_capacity(batch);
    while let Some(first) = rx.recv().await {
        pending.push(first);
        while pending.len() < batch {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
                Err(_) => break,
            }
        }
        let metrics = crate::metrics::global();
        metrics
            .audit_queue
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        let started = std::time::Instant::now();
        let result = write_batch(&store, key.as_ref(), &mut tail, &pending).await;
        metrics
            .audit_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(first_seq) => {
                for (i, (_, done)) in pending.drain(..).enumerate() {
                    let _ = done.send(Ok(first_seq + i as u64));
                }
            }
            Err(e) => {
                metrics.audit_failures.with_label_values(&["store"]).inc();
                tracing::error!(error = %e, "audit append failed; the requests waiting on it fail");
                for (_, done) in pending.drain(..) {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}

async fn write_batch<S: Store>(
    store: &S,
    key: &dyn KeySource,
    tail: &mut Tail,
    pending: &[Pending],
) -> Result<u64, Error> {
    for attempt in 0..CONFLICT_RETRIES {
        let mut frontier = tail.frontier.clone();
        let mut prev = tail.prev.clone();
        let first = frontier.size();
        let time_ms = now_ms();
        let mut rows = Vec::with_capacity(pending.len());
        for (event, _) in pending {
            let seq = frontier.size();
            let text = Entry {
                seq,
                time_ms,
                prev: std::mem::take(&mut prev),
                event: event.clone(),
            }
            .to_text();
            let leaf = leaf_hash(text.as_bytes());
            frontier.push(leaf);
            prev = hex::encode(leaf);
            rows.push(AuditRow {
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                entry: text,
            });
        }
        let head = TreeHead::new(frontier.size(), &frontier.root(), time_ms).sign(key)?;
        let head_row = HeadRow {
            tree_size: i64::try_from(frontier.size()).unwrap_or(i64::MAX),
            head: serde_json::to_string(&head).map_err(|e| Error::Audit {
                reason: e.to_string(),
            })?,
        };
        match store.append_audit(&rows, &head_row).await {
            Ok(()) => {
                tail.frontier = frontier;
                tail.prev = prev;
                return Ok(first);
            }
            Err(medsec_store::Error::Conflict { .. }) => {
                // Another writer appended meanwhile: wait a random while, so that two writers
                // retrying in step do not collide again and again, then catch up and renumber.
                tokio::time::sleep(conflict_backoff(attempt)).await;
                read_tail(store, tail).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Audit {
        reason: format!("gave up after {CONFLICT_RETRIES} conflicting appends"),
    })
}

/// Reads the whole log from `store` and checks it against `key`.
pub async fn verify<S: Store>(store: &S, key: &PublicKey) -> Result<Report, Error> {
    let heads = store
        .audit_heads()
        .await?
        .into_iter()
        .map(|h| {
            serde_json::from_str::<SignedTreeHead>(&h.head).map_err(|e| Error::Audit {
                reason: format!("tree head at size {} is not readable: {e}", h.tree_size),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut verifier = Verifier::new(key, heads);
    let mut from = 0i64;
    loop {
        let rows = store.audit_entries(from, PAGE).await?;
        for row in &rows {
            verifier.push(u64::try_from(row.seq).unwrap_or(0), &row.entry);
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE as usize => from = last.seq + 1,
            _ => break,
        }
    }
    Ok(verifier.finish())
}

/// The latest signed tree head, if any.
pub async fn latest_head<S: Store>(store: &S) -> Result<Option<SignedTreeHead>, Error> {
    store
        .audit_latest_head()
        .await?
        .map(|h| {
            serde_json::from_str(&h.head).map_err(|e| Error::Audit {
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Proof that an entry is in the tree a signed head commits to (RFC 9162 section 2.1.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The entry's position.
    pub seq: u64,
    /// The entry's text, as stored and hashed.
    pub entry: String,
    /// The signed head the proof leads to.
    pub head: SignedTreeHead,
    /// The audit path, hex, leaf to root.
    pub proof: Vec<String>,
}

/// Proof that a later signed head extends an earlier one (RFC 9162 section 2.1.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The earlier head.
    pub old: SignedTreeHead,
    /// The later head.
    pub new: SignedTreeHead,
    /// The consistency proof, hex.
    pub proof: Vec<String>,
}

async fn signed_heads<S: Store>(store: &S) -> Result<Vec<SignedTreeHead>, Error> {
    store
        .audit_heads()
        .await?
        .into_iter()
        .map(|h| {
            serde_json::from_str::<SignedTreeHead>(&h.head).map_err(|e| Error::Audit {
                reason: format!("tree head at size {} is not readable: {e}", h.tree_size),
            })
        })
        .collect()
}

/// The signed head at `size`, or the latest.
fn pick_head(heads: &[SignedTreeHead], size: Option<u64>) -> Result<SignedTreeHead, Error> {
    match size {
        Some(n) => heads
            .iter()
            .find(|h| h.head.tree_size == n)
            .cloned()
            .ok_or(Error::Audit {
                reason: format!("no signed tree head has size {n}"),
            }),
        None => heads.last().cloned().ok_or(Error::Audit {
            reason: "the audit log is empty".into(),
        }),
    }
}

/// Entry texts and leaf hashes of the first `size` entries.
async fn leaves<S: Store>(store: &S, size: u64) -> Result<(Vec<String>, Vec<Hash>), Error> {
    let mut texts = Vec::new();
    let mut hashes = Vec::new();
    while (hashes.len() as u64) < size {
        let from = i64::try_from(hashes.len()).unwrap_or(i64::MAX);
        let rows = store.audit_entries(from, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows
            .into_iter()
            .take(usize::try_from(size).unwrap_or(usize::MAX) - hashes.len())
        {
            hashes.push(leaf_hash(row.entry.as_bytes()));
            texts.push(row.entry);
        }
    }
    if (hashes.len() as u64) < size {
        return Err(Error::Audit {
            reason: format!(
                "the log holds {} entries, fewer than the signed {size}",
                hashes.len()
            ),
        });
    }
    Ok((texts, hashes))
}

/// Proves that entry `seq` is in the tree of the signed head of size `tree_size` (default: the
/// latest head).
pub async fn prove_inclusion<S: Store>(
    store: &S,
    seq: u64,
    tree_size: Option<u64>,
) -> Result<InclusionProof, Error> {
    let head = pick_head(&signed_heads(store).await?, tree_size)?;
    if seq >= head.head.tree_size {
        return Err(Error::Audit {
            reason: format!(
                "entry {seq} is not in the tree of size {}",
                head.head.tree_size
            ),
        });
    }
    let (mut texts, hashes) = leaves(store, head.head.tree_size).await?;
    let proof = medsec_audit::inclusion_proof(&hashes, seq)?;
    let index = usize::try_from(seq).unwrap_or(usize::MAX);
    Ok(InclusionProof {
        seq,
        entry: if index < texts.len() {
            texts.swap_remove(index)
        } else {
            String::new()
        },
        head,
        proof: proof.iter().map(hex::encode).collect(),
    })
}

/// Proves that the signed head of size `new_size` (default: the latest) extends the one of size
/// `old_size`.
pub async fn prove_consistency<S: Store>(
    store: &S,
    old_size: u64,
    new_size: Option<u64>,
) -> Result<ConsistencyProof, Error> {
    let heads = signed_heads(store).await?;
    let old = pick_head(&heads, Some(old_size))?;
    let new = pick_head(&heads, new_size)?;
    if old.head.tree_size > new.head.tree_size {
        return Err(Error::Audit {
            reason: format!(
                "the old head ({}) is larger than the new one ({})",
                old.head.tree_size, new.head.tree_size
            ),
        });
    }
    let (_, hashes) = leaves(store, new.head.tree_size).await?;
    let proof = medsec_audit::consistency_proof(&hashes, old.head.tree_size)?;
    Ok(ConsistencyProof {
        old,
        new,
        proof: proof.iter().map(hex::encode).collect(),
    })
}

/// Checks the log in `store` against a head saved earlier (by an auditor, or co-signed by a
/// witness): the head must carry the log key's signature, and the log's first `tree_size`
/// entries must still hash to its root. Whoever holds the data directory and the log key can
/// rewrite entries and re-sign every head in the store, but not the head saved elsewhere: a
/// rewrite changes the root, a truncation leaves too few entries. Returns what is wrong.
pub async fn check_saved_head<S: Store>(
    store: &S,
    key: &PublicKey,
    saved: &SignedTreeHead,
) -> Result<Option<String>, Error> {
    let head = match saved.verify(key) {
        Ok(head) => head,
        Err(e) => {
            return Ok(Some(format!(
                "the saved head is not signed by the log key: {e}"
            )));
        }
    };
    let size = head.tree_size;
    let root = head.root()?;
    let (_, hashes) = match leaves(store, size).await {
        Ok(l) => l,
        Err(Error::Audit { reason }) => {
            return Ok(Some(format!(
                "truncated: the saved head covers {size} entries, but {reason}"
            )));
        }
        Err(e) => return Err(e),
    };
    if medsec_audit::root(&hashes) != root {
        return Ok(Some(format!(
            "rewritten: the log's first {size} entries no longer hash to the saved head's root \
             {}",
            head.root_hash
        )));
    }
    Ok(None)
}

/// Builds an event (a shorthand for the many call sites).
pub fn event(kind: &str, principal: &str, action: &str, resource: &str, decision: &str) -> Event {
    Event {
        kind: kind.into(),
        principal: principal.into(),
        action: action.into(),
        resource: resource.into(),
        decision: decision.into(),
        policies: Vec::new(),
        source: String::new(),
        detail: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_one_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = medsec_store::SqliteStore::open(&dir.path().join("db"), 4)
            .await
            .unwrap();
        let key = SigningKey::generate(Scheme::Ed25519).unwrap();
        let copy = || -> Arc<dyn KeySource> {
            Arc::new(SigningKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap())
        };
        let a = AuditLog::start(store.clone(), copy(), 100, 7)
            .await
            .unwrap();
        let b = AuditLog::start(store.clone(), copy(), 100, 5)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let log = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                log.record(event("test", "p", "a", "r", "info"))
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (0..200).collect::<Vec<u64>>(),
            "every event has its own position"
        );
        let report = verify(&store, key.public_key()).await.unwrap();
        assert_eq!(report.findings, []);
        assert_eq!(report.entries, 200);
    }
}
