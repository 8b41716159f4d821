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
