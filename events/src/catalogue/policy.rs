//! Policy bundles as events (the PDP's "what" and "how").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Digest;

/// One file of a policy bundle: a Rego module or a JSON data document, kept as text so the
/// log never holds a JSON number it cannot canonicalise.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    pub path: String,
    pub content: String,
}

/// A policy bundle version was published (compiled and tested before publication).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBundlePublished {
    pub bundle: String,
    /// Monotonic per bundle, starting at 1.
    pub version: u64,
    /// SHA-256 over the bundle's canonical file list.
    pub digest: Digest,
    pub files: Vec<BundleFile>,
}
