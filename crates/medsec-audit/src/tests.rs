use medsec_crypto::{KeySource as _, Scheme, SigningKey};
use proptest::prelude::*;

use super::*;

/// The RFC 6962 / RFC 9162 reference leaves used by Certificate Transparency's test suites.
fn reference_leaves() -> Vec<Hash> {
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    data.iter().map(|d| leaf_hash(d)).collect()
}

#[test]
fn roots_match_the_certificate_transparency_reference_values() {
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let leaves = reference_leaves();
    for (n, hex_root) in expected.iter().enumerate() {
        assert_eq!(
            hex::encode(root(&leaves[..=n])),
            *hex_root,
            "size {}",
            n + 1
        );
    }
    assert_eq!(
        hex::encode(root(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect()
}

proptest! {
    /// Every leaf of every tree up to 70 entries proves its inclusion, and no other leaf, index,
    /// size or root does.
    #[test]
    fn inclusion_proofs_verify_and_refuse_forgeries(n in 1usize..70, pick in any::<prop::sample::Index>()) {
        let l = leaves(n);
        let r = root(&l);
        let i = pick.index(n);
        let proof = inclusion_proof(&l, i as u64).unwrap();
        verify_inclusion(&l[i], i as u64, n as u64, &proof, &r).unwrap();
        let other = leaf_hash(b"forged");
        prop_assert!(verify_inclusion(&other, i as u64, n as u64, &proof, &r).is_err());
        if n > 1 {
            let j = (i + 1) % n;
            prop_assert!(verify_inclusion(&l[i], j as u64, n as u64, &proof, &r).is_err());
        }
        // The proof for the n-entry tree does not prove inclusion in the (n+1)-entry tree (the
        // size alone is not bound by the proof: signed tree heads bind size and root together).
        let mut grown = l.clone();
        grown.push(leaf_hash(b"next"));
        prop_assert!(verify_inclusion(&l[i], i as u64, n as u64 + 1, &proof, &root(&grown)).is_err());
        prop_assert!(verify_inclusion(&l[i], n as u64, n as u64, &proof, &r).is_err());
        if let Some(first) = proof.first() {
            let mut bad = proof.clone();
            bad[0] = node_hash(first, first);
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &bad, &r).is_err());
        }
    }

    /// Every earlier size is consistent with every later one; a rewritten history is not.
    #[test]
    fn consistency_proofs_verify_and_detect_rewrites(n in 1usize..70, pick in any::<prop::sample::Index>()) {
        let l = leaves(n);
        let m = pick.index(n) + 1; // 1..=n
        let proof = consistency_proof(&l, m as u64).unwrap();
        let (old, new) = (root(&l[..m]), root(&l));
        verify_consistency(m as u64, n as u64, &old, &new, &proof).unwrap();
        // Edit one entry of the old history: the new tree no longer extends the old one.
        let mut edited = l.clone();
        edited[pick.index(m)] = leaf_hash(b"edited");
        let edited_root = root(&edited);
        if m < n {
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &edited_root, &proof).is_err());
            let p2 = consistency_proof(&edited, m as u64).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &edited_root, &p2).is_err());
            prop_assert!(verify_consistency(m as u64, n as u64, &edited_root, &new, &proof).is_err());
        }
        // Removing the last entry is detected too.
        if n > 1 && m < n {
            let shorter = root(&l[..n - 1]);
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &shorter, &proof).is_err());
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let l = leaves(5);
    let r = root(&l);
    verify_consistency(5, 5, &r, &r, &[]).unwrap();
    verify_consistency(0, 5, &root(&[]), &r, &[]).unwrap();
    assert!(verify_consistency(6, 5, &r, &r, &[]).is_err());
    assert!(verify_consistency(3, 5, &root(&l[..3]), &r, &[]).is_err());
    assert!(consistency_proof(&l, 6).is_err());
    assert!(inclusion_proof(&l, 5).is_err());
}

#[test]
fn signed_tree_heads_verify_and_refuse_edits_and_other_keys() {
    let key = SigningKey::generate(Scheme::MlDsa65Ed25519).unwrap();
    let l = leaves(10);
    let sth = TreeHead::new(10, &root(&l), 1_700_000_000_000)
        .sign(&key)
        .unwrap();
    assert_eq!(sth.verify(key.public_key()).unwrap().tree_size, 10);
    let mut bigger = sth.clone();
    bigger.head.tree_size = 11;
    assert!(bigger.verify(key.public_key()).is_err());
    let mut moved = sth.clone();
    moved.head.root_hash = hex::encode(root(&l[..9]));
    assert!(moved.verify(key.public_key()).is_err());
    let other = SigningKey::generate(Scheme::MlDsa65Ed25519).unwrap();
    assert!(sth.verify(other.public_key()).is_err());
    let ed = SigningKey::generate(Scheme::Ed25519).unwrap();
    assert!(sth.verify(ed.public_key()).is_err(), "scheme mismatch");
    let json = serde_json::to_string(&sth).unwrap();
    let back: SignedTreeHead = serde_json::from_str(&json).unwrap();
    back.verify(key.public_key()).unwrap();
}

proptest! {
    /// The appender's incremental root equals the RFC's recursive definition at every size.
    #[test]
    fn frontier_root_equals_the_recursive_root(n in 0usize..300) {
        let l = leaves(n);
        let mut f = Frontier::new();
        prop_assert_eq!(f.root(), root(&[]));
        for (i, leaf) in l.iter().enumerate() {
            f.push(*leaf);
            prop_assert_eq!(f.root(), root(&l[..=i]));
        }
    }
}

/// A log of `n` entries written in batches of `batch`, as the server's appender writes it.
fn written_log(key: &SigningKey, n: u64, batch: u64) -> (Vec<(u64, String)>, Vec<SignedTreeHead>) {
    let mut rows = Vec::new();
    let mut heads = Vec::new();
    let mut frontier = Frontier::new();
    let mut prev = String::new();
    for seq in 0..n {
        let entry = Entry {
            seq,
            time_ms: 1_000 + seq,
            prev: prev.clone(),
            event: Event {
                kind: "authz".into(),
                principal: format!("Device::\"pump-{seq}\""),
                action: "device.read".into(),
                resource: "Device::\"pump-1\"".into(),
                decision: "allow".into(),
                policies: vec!["device-own-record".into()],
                source: "127.0.0.1:5000".into(),
                detail: String::new(),
            },
        };
        let text = entry.to_text();
        let leaf = leaf_hash(text.as_bytes());
        prev = hex::encode(leaf);
        frontier.push(leaf);
        rows.push((seq, text));
        if (seq + 1) % batch == 0 || seq + 1 == n {
            heads.push(
                TreeHead::new(frontier.size(), &frontier.root(), 2_000 + seq)
                    .sign(key)
                    .unwrap(),
            );
        }
    }
    (rows, heads)
}

fn verify(key: &SigningKey, rows: &[(u64, String)], heads: &[SignedTreeHead]) -> Report {
    let mut v = Verifier::new(key.public_key(), heads.to_vec());
    for (pos, text) in rows {
        v.push(*pos, text);
    }
    v.finish()
}

#[test]
fn an_intact_log_verifies() {
    let key = SigningKey::generate(Scheme::Ed25519).unwrap();
    let (rows, heads) = written_log(&key, 25, 4);
    let report = verify(&key, &rows, &heads);
    assert_eq!(report.findings, []);
    assert_eq!((report.entries, report.heads), (25, 7));
}

#[test]
fn the_verifier_names_the_altered_removed_or_reordered_entry() {
    let key = SigningKey::generate(Scheme::Ed25519).unwrap();
    let (rows, heads) = written_log(&key, 25, 4);
    let first = |rows: &[(u64, String)], heads: &[SignedTreeHead]| {
        verify(&key, rows, heads).findings[0].to_string()
    };

    // Edited in the middle: named by its successor's record.
    let mut edited = rows.clone();
    edited[9].1 = edited[9].1.replace("allow", "deny");
    assert_eq!(
        first(&edited, &heads),
        "entry 9 was altered: its hash no longer matches the hash entry 10 recorded for it"
    );
    // Edited so that it no longer parses.
    let mut garbled = rows.clone();
    garbled[3].1.push('x');
    assert!(
        first(&garbled, &heads).starts_with("entry 3 was altered: its text is not an audit entry")
    );
    // The last entry has no successor: the signed head names it.
    let mut last = rows.clone();
    last[24].1 = last[24].1.replace("allow", "deny");
    assert!(
        first(&last, &heads).starts_with("entry 24 was altered: it no longer hashes to the root")
    );
    // Removed.
    let mut removed = rows.clone();
    removed.remove(7);
    assert_eq!(first(&removed, &heads), "entry 7 was removed");
    // Removed and renumbered to hide the gap.
    let renumbered: Vec<(u64, String)> = removed
        .iter()
        .enumerate()
        .map(|(i, (_, t))| (i as u64, t.clone()))
        .collect();
    assert_eq!(
        first(&renumbered, &heads),
        "entry 7 was reordered: the row at position 7 holds entry 8"
    );
    // Two rows swapped.
    let mut swapped = rows.clone();
    let (a, b) = (swapped[5].1.clone(), swapped[6].1.clone());
    swapped[5].1 = b;
    swapped[6].1 = a;
    assert_eq!(
        first(&swapped, &heads),
        "entry 5 was reordered: the row at position 5 holds entry 6"
    );
    // Removed from the end, with the heads that covered them left behind.
    assert!(first(&rows[..20], &heads).starts_with("entries 20 to 24 were removed from the end"));
    // An inserted row nothing signed.
    let mut extra = rows.clone();
    let mut forged = serde_json::from_str::<Entry>(&rows[24].1).unwrap();
    forged.seq = 25;
    forged.prev = hex::encode(leaf_hash(rows[24].1.as_bytes()));
    extra.push((25, forged.to_text()));
    assert!(
        first(&extra, &heads)
            .starts_with("entries 25 to 25 are not covered by any signed tree head")
    );
    // A consistent rewrite of the chain from entry 9 on cannot reproduce the signed roots.
    let mut rewritten = rows.clone();
    let mut prev = hex::encode(leaf_hash(rows[8].1.as_bytes()));
    for row in rewritten.iter_mut().skip(9) {
        let mut e = serde_json::from_str::<Entry>(&row.1).unwrap();
        e.prev = prev.clone();
        if e.seq == 9 {
            e.event.decision = "deny".into();
        }
        row.1 = e.to_text();
        prev = hex::encode(leaf_hash(row.1.as_bytes()));
    }
    assert_eq!(
        first(&rewritten, &heads),
        "signed tree head at size 12 does not match: an entry from 8 to 11 differs from what was signed"
    );
    // Tree heads signed by another key.
    let other = SigningKey::generate(Scheme::Ed25519).unwrap();
    let report = verify(&other, &rows, &heads);
    assert!(
        report.findings[0].to_string().contains("signature"),
        "{}",
        report.findings[0]
    );
}
