//! High-volume token facts, appended pipelined on sharded subjects. Tokens are recorded by id,
//! hash and claims; never the token itself.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Digest, Timestamp};
use crate::ids::Jti;

/// An access or transaction token was issued.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIssued {
    pub jti: Jti,
    /// SHA-256 of the token as issued.
    pub token_digest: Digest,
    /// RFC 8693 token type URI of the issued token.
    pub token_type: String,
    pub subject: String,
    pub client_id: String,
    pub audience: BTreeSet<String>,
    pub scope: BTreeSet<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A token was exchanged (RFC 8693), chaining identity across domains or downscoping into a
/// Transaction Token.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenExchanged {
    pub jti: Jti,
    pub token_digest: Digest,
    pub issued_token_type: String,
    /// `jti` (or digest, when it has none) of the subject token.
    pub subject_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub grant_type: String,
    pub audience: BTreeSet<String>,
    pub scope: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}
