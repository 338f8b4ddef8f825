use super::*;

/// RFC 6962 §2.1 MTH, straight from its recursive definition.
fn mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => Hash(sha(&[])),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split(n);
            node(mth(&leaves[..k]), mth(&leaves[k..]))
        }
    }
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn sha(b: &[u8]) -> [u8; 32] {
    let mut o = [0; 32];
    o.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref());
    o
}

fn node(l: Hash, r: Hash) -> Hash {
    let mut b = vec![1u8];
    b.extend_from_slice(&l.0);
    b.extend_from_slice(&r.0);
    Hash(sha(&b))
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]).
fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b).
fn subproof(m: usize, leaves: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![mth(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

#[test]
fn empty_tree_root_is_the_hash_of_nothing() {
    let t = MemoryTree::new();
    assert_eq!(
        t.root(0).map(|h| h.0),
        Ok(sha(&[])),
        "RFC 6962: MTH({{}}) = SHA-256()"
    );
}

#[test]
fn roots_and_proofs_match_the_rfc_definitions() {
    let all = leaves(37);
    let mut t = MemoryTree::new();
    for l in &all {
        t.push(l);
    }
    for n in 1..=all.len() {
        let root = t.root(n as u64).expect("root");
        assert_eq!(root, mth(&all[..n]), "root of {n}");
        for m in 0..n {
            let p = t.inclusion(m as u64, n as u64).expect("inclusion");
            assert_eq!(p, path(m, &all[..n]), "PATH({m}, D[{n}])");
            check_inclusion(&p, n as u64, root, m as u64, leaf_hash(&all[m])).expect("checks");
        }
        for m in 1..=n {
            let p = t.consistency(m as u64, n as u64).expect("consistency");
            assert_eq!(p, subproof(m, &all[..n], true), "PROOF({m}, D[{n}])");
            check_consistency(&p, m as u64, mth(&all[..m]), n as u64, root).expect("checks");
        }
    }
}

#[test]
fn altered_proofs_and_roots_fail() {
    let all = leaves(11);
    let mut t = MemoryTree::new();
    for l in &all {
        t.push(l);
    }
    let root = t.root(11).expect("root");
    let mut p = t.inclusion(5, 11).expect("inclusion");
    p[1].0[0] ^= 1;
    assert_eq!(
        check_inclusion(&p, 11, root, 5, leaf_hash(&all[5])),
        Err(ProofError::Invalid)
    );
    let p = t.inclusion(5, 11).expect("inclusion");
    assert_eq!(
        check_inclusion(&p, 11, root, 4, leaf_hash(&all[5])),
        Err(ProofError::Invalid)
    );
    let c = t.consistency(6, 11).expect("consistency");
    let wrong = t.root(7).expect("root");
    assert_eq!(
        check_consistency(&c, 6, wrong, 11, root),
        Err(ProofError::Invalid)
    );
    assert!(matches!(
        t.inclusion(11, 11),
        Err(ProofError::LeafOutside { .. })
    ));
    assert!(matches!(t.root(12), Err(ProofError::BeyondTree { .. })));
    assert!(matches!(
        t.consistency(0, 3),
        Err(ProofError::BadRange { .. })
    ));
    assert!(matches!(
        check_inclusion(&[Hash([0; 32]); 65], 11, root, 5, leaf_hash(&all[5])),
        Err(ProofError::Invalid)
    ));
}

#[test]
fn a_tree_reloaded_from_its_stored_hashes_goes_on() {
    let all = leaves(20);
    let mut t = MemoryTree::new();
    for l in &all[..13] {
        t.push(l);
    }
    let mut back = MemoryTree::from_stored(t.stored().to_vec(), 13).expect("13 leaves");
    assert!(MemoryTree::from_stored(t.stored().to_vec(), 12).is_none());
    for l in &all[13..] {
        back.push(l);
    }
    assert_eq!(back.root(20).expect("root"), mth(&all));
}
