//! The RFC 6962 Merkle tree over the log, with the Go `tlog` layout of stored hashes
//! (`tlog_tiles`, ADR 0011): every leaf adds its leaf hash and the roots of the subtrees it
//! completes (just under two hashes per leaf on average), so that any root, inclusion proof or
//! consistency proof reads O(log n) stored hashes and never the leaves again.
//!
//! Leaf `i` (0-based) is the message at stream sequence `i + 1`; its leaf hash is
//! `SHA-256(0x00 || message bytes)` (RFC 6962 §2.1), the message bytes exactly as stored.

use tlog_tiles::{Hash, HashReader};

pub use tlog_tiles::Hash as TreeHash;

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("tree size {size} is larger than the log's {have} leaves")]
    BeyondTree { size: u64, have: u64 },
    #[error("leaf {index} is not in a tree of size {size}")]
    LeafOutside { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < first ({first}) <= second ({second})")]
    BadRange { first: u64, second: u64 },
    #[error("the proof does not verify")]
    Invalid,
}

/// The hash of one leaf (RFC 6962: SHA-256 over 0x00 and the leaf's bytes).
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&[0]);
    ctx.update(bytes);
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// The stored hashes of a tree, in memory: `hashes[stored_hash_index(level, n)]`.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    hashes: Vec<Hash>,
    leaves: u64,
}

struct Reader<'a>(&'a [Hash]);

impl HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.0.get(i))
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree from stored hashes read back from durable storage. `hashes` must be exactly the
    /// stored hashes of `leaves` leaves.
    pub fn from_stored(hashes: Vec<Hash>, leaves: u64) -> Option<Self> {
        (tlog_tiles::stored_hash_count(leaves) == hashes.len() as u64)
            .then_some(Self { hashes, leaves })
    }

    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// Every stored hash (for persisting: the ones from `from` on are new since then).
    pub fn stored(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf by its leaf hash; returns its 0-based index.
    pub fn push_hash(&mut self, h: Hash) -> u64 {
        let n = self.leaves;
        let new = tlog_tiles::stored_hashes_for_record_hash(n, h, &Reader(&self.hashes))
            .unwrap_or_else(|_| unreachable!("the hashes of complete subtrees are stored"));
        self.hashes.extend(new);
        self.leaves += 1;
        n
    }

    /// Appends a leaf by its bytes.
    pub fn push(&mut self, bytes: &[u8]) -> u64 {
        self.push_hash(leaf_hash(bytes))
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.within(size)?;
        tlog_tiles::tree_hash(size, &Reader(&self.hashes)).map_err(|_| ProofError::Invalid)
    }

    /// The leaf hash of leaf `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash, ProofError> {
        if index >= self.leaves {
            return Err(ProofError::LeafOutside {
                index,
                size: self.leaves,
            });
        }
        let i = tlog_tiles::stored_hash_index(0, index);
        Ok(self.hashes[i as usize])
    }

    /// RFC 9162 §2.1.3 inclusion proof of leaf `index` in the tree of size `size`.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.within(size)?;
        if index >= size {
            return Err(ProofError::LeafOutside { index, size });
        }
        tlog_tiles::prove_record(size, index, &Reader(&self.hashes))
            .map_err(|_| ProofError::Invalid)
    }

    /// RFC 9162 §2.1.4 consistency proof from the tree of size `first` to the one of `second`.
    pub fn consistency(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        self.within(second)?;
        if first == 0 || first > second {
            return Err(ProofError::BadRange { first, second });
        }
        tlog_tiles::prove_tree(second, first, &Reader(&self.hashes))
            .map_err(|_| ProofError::Invalid)
    }

    fn within(&self, size: u64) -> Result<(), ProofError> {
        if size > self.leaves {
            return Err(ProofError::BeyondTree {
                size,
                have: self.leaves,
            });
        }
        Ok(())
    }
}

/// Checks an inclusion proof of leaf `index` (hash `leaf`) in the tree of `size` and `root`.
pub fn check_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::LeafOutside { index, size });
    }
    // bound the work a hostile proof can ask for before the library looks at it
    if proof.len() > 64 {
        return Err(ProofError::Invalid);
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf)
        .map_err(|_| ProofError::Invalid)
}

/// Checks a consistency proof between (`first`, `first_root`) and (`second`, `second_root`).
pub fn check_consistency(
    proof: &[Hash],
    first: u64,
    first_root: Hash,
    second: u64,
    second_root: Hash,
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::BadRange { first, second });
    }
    if proof.len() > 128 {
        return Err(ProofError::Invalid);
    }
    tlog_tiles::check_tree(&proof.to_vec(), second, second_root, first, first_root)
        .map_err(|_| ProofError::Invalid)
}

#[cfg(test)]
#[path = "tree/tests.rs"]
mod tests;
