//! The log itself: what an entry holds, the incremental root the appender keeps, and the verifier
//! that walks a stored log and names the first entry that was altered, removed or reordered.
//!
//! Each entry's text records its own position (`seq`) and the leaf hash of the entry before it
//! (`prev`). The Merkle root over all entries is signed in a tree head after every batch. So:
//! - a removed row leaves a gap in positions (or, if positions were renumbered, entries whose
//!   recorded `seq` disagrees with where they stand);
//! - a moved row stands at a position its recorded `seq` disagrees with;
//! - an edited row no longer hashes to the `prev` its successor recorded, and the signed root of
//!   every later head stops matching — the last entry, which has no successor, is caught there;
//! - rows forged wholesale (an edited row with its successors rewritten to match) cannot produce
//!   the signed roots without the log key.

use medsec_crypto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::{Hash, SignedTreeHead, leaf_hash, node_hash};

/// One audit entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Leaf hash (hex) of the entry before this one; empty for the first.
    pub prev: String,
    /// What happened.
    pub event: Event,
}

/// A security-relevant event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Kind: `authz`, `enrolment`, `issuance`, `revocation`, `tls`, `config`, `token`, …
    pub kind: String,
    /// Who: `Device::"pump-1"`, `Operator::"alice"`, `anonymous`.
    pub principal: String,
    /// What was asked (a Cedar action id or an operation name).
    pub action: String,
    /// On what.
    pub resource: String,
    /// `allow`, `deny` or `info`.
    pub decision: String,
    /// The policies that decided (Cedar policy ids), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Where the request came from (peer address), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Free-form explanation (never secrets).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Entry {
    /// The entry's text: the bytes that are stored and hashed.
    pub fn to_text(&self) -> String {
        // A struct of strings, integers and a string list always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The right edge of the tree: the roots of its perfect subtrees, largest first. Appending is
/// O(log n) and so is the root, so the appender never rereads the log.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut n = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
        while n & 1 == 1 {
            let Some(left) = self.stack.pop() else { break };
            hash = node_hash(&left, &hash);
            n >>= 1;
        }
        self.stack.push(hash);
        self.size += 1;
    }

    /// MTH over every leaf pushed (RFC 9162 2.1.1).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return medsec_crypto::digest::sha256(&[]);
        };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// One problem found in a stored log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// Entries that should stand before `found` are not there.
    Missing {
        /// First missing position.
        first: u64,
        /// Last missing position.
        last: u64,
    },
    /// The row at `position` holds the entry written for position `recorded`.
    Reordered {
        /// Where the row stands.
        position: u64,
        /// The position its text records.
        recorded: u64,
    },
    /// The entry at `seq` is not the entry that was written there.
    Altered {
        /// Its position.
        seq: u64,
        /// How it was noticed.
        reason: String,
    },
    /// A signed tree head does not match the entries (or its signature does not verify).
    HeadMismatch {
        /// The head's size.
        tree_size: u64,
        /// Why.
        reason: String,
    },
    /// Entries signed by a tree head are gone from the end of the log.
    Truncated {
        /// Entries the latest head covers.
        signed: u64,
        /// Entries present.
        present: u64,
    },
    /// The log does not extend a head saved outside it (by an auditor, or co-signed by a
    /// witness): rewritten or truncated, whatever the heads stored beside it say.
    SavedHead {
        /// Why.
        reason: String,
    },
    /// Entries after the latest signed head (nothing signed them).
    Unsigned {
        /// First unsigned position.
        first: u64,
        /// Entries present.
        present: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { first, last } if first == last => {
                write!(f, "entry {first} was removed")
            }
            Self::Missing { first, last } => write!(f, "entries {first} to {last} were removed"),
            Self::Reordered { position, recorded } => write!(
                f,
                "entry {position} was reordered: the row at position {position} holds entry {recorded}"
            ),
            Self::Altered { seq, reason } => write!(f, "entry {seq} was altered: {reason}"),
            Self::HeadMismatch { tree_size, reason } => {
                write!(
                    f,
                    "signed tree head at size {tree_size} does not match: {reason}"
                )
            }
            Self::Truncated { signed, present } => write!(
                f,
                "entries {present} to {} were removed from the end: a signed tree head covers {signed}",
                signed.saturating_sub(1)
            ),
            Self::SavedHead { reason } => write!(f, "against the saved head: {reason}"),
            Self::Unsigned { first, present } => write!(
                f,
                "entries {first} to {} are not covered by any signed tree head (inserted?)",
                present.saturating_sub(1)
            ),
        }
    }
}

/// Walks a stored log in position order and reports every problem; the first is the precise one
/// (later ones are often its consequences). Give the rows with [`Verifier::push`], then call
/// [`Verifier::finish`].
pub struct Verifier<'k> {
    key: &'k PublicKey,
    heads: Vec<SignedTreeHead>,
    next_head: usize,
    frontier: Frontier,
    expected: u64,
    prev: Option<(u64, Hash)>,
    last_head_time: u64,
    last_good_size: u64,
    findings: Vec<Finding>,
}

/// What a finished verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Entries read.
    pub entries: u64,
    /// Signed tree heads checked.
    pub heads: u64,
    /// The root over all entries read.
    pub root_hash: String,
    /// Problems, in the order found; empty means the log is intact.
    pub findings: Vec<Finding>,
}

impl<'k> Verifier<'k> {
    /// Starts a verification against the log key and the stored heads (any order).
    pub fn new(key: &'k PublicKey, mut heads: Vec<SignedTreeHead>) -> Self {
        heads.sort_by_key(|h| h.head.tree_size);
        Self {
            key,
            heads,
            next_head: 0,
            frontier: Frontier::new(),
            expected: 0,
            prev: None,
            last_head_time: 0,
            last_good_size: 0,
            findings: Vec::new(),
        }
    }

    /// Takes the row stored at `position` with its text.
    pub fn push(&mut self, position: u64, text: &str) {
        if position > self.expected {
            self.findings.push(Finding::Missing {
                first: self.expected,
                last: position - 1,
            });
        }
        self.expected = position + 1;
        let leaf = leaf_hash(text.as_bytes());
        match serde_json::from_str::<Entry>(text) {
            Err(e) => self.findings.push(Finding::Altered {
                seq: position,
                reason: format!("its text is not an audit entry ({e})"),
            }),
            Ok(entry) if entry.seq != position => self.findings.push(Finding::Reordered {
                position,
                recorded: entry.seq,
            }),
            Ok(entry) => {
                if let Some((prev_seq, prev_leaf)) = self.prev {
                    if prev_seq + 1 == position && entry.prev != hex::encode(prev_leaf) {
                        self.findings.push(Finding::Altered {
                            seq: prev_seq,
                            reason: format!(
                                "its hash no longer matches the hash entry {position} recorded for it"
                            ),
                        });
                    }
                } else if position == 0 && !entry.prev.is_empty() {
                    self.findings.push(Finding::Altered {
                        seq: 0,
                        reason: "the first entry records a predecessor".into(),
                    });
                }
            }
        }
        self.prev = Some((position, leaf));
        self.frontier.push(leaf);
        self.check_heads();
    }

    fn check_heads(&mut self) {
        while let Some(head) = self.heads.get(self.next_head) {
            if head.head.tree_size > self.frontier.size() {
                break;
            }
            let size = head.head.tree_size;
            let reason = match head.verify(self.key) {
                Err(e) => Some(format!("{e}")),
                Ok(h) if h.root_hash != hex::encode(self.frontier.root()) => Some(format!(
                    "an entry from {} to {} differs from what was signed",
                    self.last_good_size,
                    size.saturating_sub(1)
                )),
                Ok(h) if h.timestamp_ms < self.last_head_time => {
                    Some("its time is earlier than the head before it".into())
                }
                Ok(h) => {
                    self.last_head_time = h.timestamp_ms;
                    self.last_good_size = size;
                    None
                }
            };
            if let Some(reason) = reason {
                self.findings.push(Finding::HeadMismatch {
                    tree_size: size,
                    reason,
                });
            }
            self.next_head += 1;
        }
    }

    /// Ends the walk.
    pub fn finish(mut self) -> Report {
        let present = self.frontier.size();
        let signed = self.heads.last().map_or(0, |h| h.head.tree_size);
        // The last entry has no successor to record its hash: when the only problem is the head
        // that covers it, that entry is the one altered.
        if let [Finding::HeadMismatch { tree_size, .. }] = self.findings.as_slice()
            && *tree_size == present
            && present > 0
        {
            let last = present - 1;
            let reason = if self.last_good_size == last {
                "it no longer hashes to the root the latest tree head signed".to_owned()
            } else {
                format!(
                    "it no longer hashes to the root the latest tree head signed \
                     (unless entries {} to {last} were rewritten together)",
                    self.last_good_size
                )
            };
            self.findings
                .insert(0, Finding::Altered { seq: last, reason });
        }
        if signed > present {
            self.findings.push(Finding::Truncated { signed, present });
        } else if signed < present {
            self.findings.push(Finding::Unsigned {
                first: signed,
                present,
            });
        }
        Report {
            entries: present,
            heads: self.heads.len() as u64,
            root_hash: hex::encode(self.frontier.root()),
            findings: self.findings,
        }
    }
}
