//! RFC 9162 section 2.1: Merkle Tree Hash, PATH (inclusion), PROOF/SUBPROOF (consistency), and
//! the verification algorithms of 2.1.3.2 and 2.1.4.2, step by step.

use medsec_crypto::digest::{constant_time_eq, sha256};

use crate::Error;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `HASH(0x00 || entry)`: the hash of a leaf.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut buf = Vec::with_capacity(entry.len() + 1);
    buf.push(0x00);
    buf.extend_from_slice(entry);
    sha256(&buf)
}

/// `HASH(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = Vec::with_capacity(65);
    buf.push(0x01);
    buf.extend_from_slice(left);
    buf.extend_from_slice(right);
    sha256(&buf)
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes (the empty tree hashes to SHA-256 of nothing).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => sha256(&[]),
        [one] => *one,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&root(left), &root(right))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `index`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, Error> {
    let n = leaves.len();
    let m = usize::try_from(index)
        .ok()
        .filter(|m| *m < n)
        .ok_or(Error::OutOfRange {
            what: "leaf index",
            value: index,
            tree_size: n as u64,
        })?;
    let mut proof = Vec::new();
    path(m, leaves, &mut proof);
    Ok(proof)
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let (left, right) = leaves.split_at(split(leaves.len()));
    if m < left.len() {
        path(m, left, out);
        out.push(root(right));
    } else {
        path(m - left.len(), right, out);
        out.push(root(left));
    }
}

/// PROOF(m, D[n]): the consistency proof between the first `old_size` leaves and all of them.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, Error> {
    let n = leaves.len();
    let m = usize::try_from(old_size)
        .ok()
        .filter(|m| *m <= n)
        .ok_or(Error::OutOfRange {
            what: "old tree size",
            value: old_size,
            tree_size: n as u64,
        })?;
    let mut proof = Vec::new();
    if m > 0 && m < n {
        subproof(m, leaves, true, &mut proof);
    }
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let (left, right) = leaves.split_at(split(n));
    if m <= left.len() {
        subproof(m, left, complete, out);
        out.push(root(right));
    } else {
        subproof(m - left.len(), right, false, out);
        out.push(root(left));
    }
}

fn lsb(x: u64) -> bool {
    x & 1 == 1
}

/// RFC 9162 2.1.3.2: checks that `leaf` is entry `index` of the tree with `tree_size` entries and
/// root `expected_root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    expected_root: &Hash,
) -> Result<(), Error> {
    let failed = Error::ProofFailed { kind: "inclusion" };
    if index >= tree_size {
        return Err(Error::OutOfRange {
            what: "leaf index",
            value: index,
            tree_size,
        });
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(failed);
        }
        if lsb(f) || f == s {
            r = node_hash(p, &r);
            if !lsb(f) {
                while !lsb(f) && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && constant_time_eq(&r, expected_root) {
        Ok(())
    } else {
        Err(failed)
    }
}

/// RFC 9162 2.1.4.2: checks that the tree of `new_size` entries with root `new_root` extends the
/// tree of `old_size` entries with root `old_root` (same first `old_size` entries, in order).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), Error> {
    let failed = Error::ProofFailed {
        kind: "consistency",
    };
    if old_size > new_size {
        return Err(Error::OutOfRange {
            what: "old tree size",
            value: old_size,
            tree_size: new_size,
        });
    }
    if old_size == new_size {
        return if proof.is_empty() && constant_time_eq(old_root, new_root) {
            Ok(())
        } else {
            Err(failed)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(failed)
        };
    }
    // 1. An empty path cannot prove anything between two different non-empty sizes.
    let (first, rest) = proof.split_first().ok_or(Error::ProofFailed {
        kind: "consistency",
    })?;
    // 2. If old_size is a power of two, the old root itself starts the path.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.push(first);
    path.extend(rest);
    // 3–4.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while lsb(f) {
        f >>= 1;
        s >>= 1;
    }
    // 5.
    let Some((start, others)) = path.split_first() else {
        return Err(failed);
    };
    let (mut fr, mut sr) = (**start, **start);
    // 6.
    for c in others {
        if s == 0 {
            return Err(failed);
        }
        if lsb(f) || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if !lsb(f) {
                while !lsb(f) && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // 7.
    if s == 0 && constant_time_eq(&fr, old_root) && constant_time_eq(&sr, new_root) {
        Ok(())
    } else {
        Err(failed)
    }
}
