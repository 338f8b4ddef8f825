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
