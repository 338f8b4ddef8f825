//! Trust material: what the ACA trusts before it issues anything (draft §3.1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Digest, PublicJwk};
use crate::ids::MaterialId;

/// What a trust anchor is trusted for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnchorPurpose {
    /// Manufacturer CA of environment identity certificates (IDevID-style chains).
    ManufacturerCa,
    /// CA of a federation peer's mTLS and agent certificates.
    PeerCa,
}

/// An X.509 trust anchor was added (or rotated: a new anchor id next to the old one).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorAdded {
    pub anchor_id: MaterialId,
    pub purpose: AnchorPurpose,
    /// DER certificates, base64 (standard alphabet, padded), root first.
    pub certificates_der: Vec<String>,
    /// SHA-256 over the DER of each certificate, same order.
    pub fingerprints: Vec<Digest>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorRemoved {
    pub anchor_id: MaterialId,
    pub reason: String,
}

/// One expected measurement of an attesting environment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceValue {
    /// Name of the measured component (`kernel`, `model-runtime`, ...).
    pub component: String,
    /// Accepted digests, any of which matches (`sha256:<hex>`).
    pub digests: Vec<Digest>,
}

/// An attestation verifier (keys that sign attestation evidence, and reference values).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationVerifierAdded {
    pub verifier_id: MaterialId,
    pub keys: Vec<PublicJwk>,
    pub reference_values: Vec<ReferenceValue>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationVerifierRemoved {
    pub verifier_id: MaterialId,
    pub reason: String,
}

/// A trusted agent provider and its endorsement keys.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderAdded {
    pub provider_id: MaterialId,
    pub name: String,
    pub endorsement_keys: Vec<PublicJwk>,
    /// Capabilities this provider may endorse; the ACA intersects with them.
    pub endorsable_capabilities: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRemoved {
    pub provider_id: MaterialId,
    pub reason: String,
}

/// A trusted owner identity provider (OIDC issuer and its keys).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderAdded {
    pub idp_id: MaterialId,
    pub issuer: String,
    /// Audiences the ACA accepts in ID tokens from this issuer.
    pub audiences: Vec<String>,
    pub keys: Vec<PublicJwk>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderRemoved {
    pub idp_id: MaterialId,
    pub reason: String,
}

/// How an AIBOM deny-list entry matches a component of a CycloneDX document.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AibomMatcher {
    /// A component (model weights, dataset file, package) whose `hashes` list this digest.
    /// `alg` is a CycloneDX hash algorithm name (`SHA-256`, ...), `content` lowercase hex.
    Hash { alg: String, content: String },
    /// A package URL without version (`pkg:huggingface/acme/model-x`), matched on type,
    /// namespace and name; `vers` is a purl version range (`vers:semver/>=1.2.0|<1.4.0`) or
    /// absent for every version. A component whose version cannot be compared under the
    /// range's scheme fails the check (closed).
    Purl {
        purl: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vers: Option<String>,
    },
}

/// One entry of the domain's AIBOM deny-list.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AibomDenyEntry {
    /// A short name for reports (`cve-2026-1234`, `poisoned-dataset-7`).
    pub id: String,
    #[serde(rename = "match")]
    pub matcher: AibomMatcher,
    pub reason: String,
}

/// The domain's AIBOM deny-list was replaced by this one (the whole list: the last event
/// wins, so a replay gives the list in force at any sequence).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AibomDenyListSet {
    pub entries: Vec<AibomDenyEntry>,
}

/// An environment identity certificate (or an intermediate) under a manufacturer CA is no
/// longer trusted, named by the SHA-256 of its DER.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentCertificateRevoked {
    pub anchor_id: MaterialId,
    pub fingerprint: Digest,
    pub reason: String,
}
