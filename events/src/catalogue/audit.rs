//! Audit checkpoints over the log's Merkle tree.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Timestamp;
use crate::ids::KeyId;

/// A checkpoint of the domain's Merkle log was signed (C2SP signed-note format).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSigned {
    /// Number of leaves (stream sequences 1..=tree_size).
    pub tree_size: u64,
    /// Root hash, base64 (standard, padded), as in the note body.
    pub root_hash: String,
    /// The whole signed note, as text.
    pub note: String,
    pub key: KeyId,
    pub signed_at: Timestamp,
}
