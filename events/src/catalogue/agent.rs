//! An agent's life at the ACA: provisioning, owner binding, credentials, keys (draft §3.1).
//! The agent aggregate owns its credentials, so one event can revoke all of them.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Digest, Timestamp};
use crate::ids::{AgentId, CredentialSerial, EventId, KeyId, MaterialId, SpiffeId};

/// On whose behalf an agent acts, and how that was established.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The owner's subject at its issuer (`sub` of the ID token, or a role name).
    pub subject: String,
    /// The issuer that vouched for it (an OIDC issuer URL, or `role-grant:<domain>`).
    pub issuer: String,
    pub kind: OwnerBindingKind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerBindingKind {
    IdToken,
    RoleGrant,
}

/// The ACA created an agent identity and assigned its id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentProvisioned {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<MaterialId>,
    pub requested_capabilities: BTreeSet<String>,
}

/// A credential was asked for (recorded before the checks ran, so refused requests of an
/// authenticated agent stay visible to auditors).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequested {
    /// SHA-256 of the CSR's DER.
    pub csr_digest: Digest,
    /// RFC 7638 thumbprint of the public key in the CSR.
    pub key_thumbprint: KeyId,
    pub key_algorithm: KeyAlgorithm,
    pub requested_capabilities: BTreeSet<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    Ed25519,
    EcdsaP256,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// Which check of the issuance pipeline this is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    ProofOfPossession,
    CsrProfile,
    InitialTrust,
    Attestation,
    Aibom,
    ProviderEndorsement,
    OwnerBinding,
    IssuancePolicy,
    OutputRevalidation,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Passed,
    /// Policy did not require it and no evidence was given.
    NotRequired,
}

/// What was checked before issuance, and against what.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRecord {
    pub check: CheckKind,
    pub outcome: CheckOutcome,
    /// Digest of the evidence checked (CSR, EAT, AIBOM, endorsement, ID token), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Digest>,
    /// The trust material it was checked against (anchor, verifier, provider, IdP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<MaterialId>,
}

/// The policy decision an action was taken under, precise enough to reproduce it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    pub bundle: String,
    pub version: u64,
    pub digest: Digest,
    /// Stream sequence of the projection the decision read.
    pub at_seq: u64,
}

/// AR4SI-style trustworthiness vector of an attestation result (each claim -128..=127).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustVector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_identity: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executables: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_opaque: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_opaque: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sourced_data: Option<i8>,
}

/// The attestation result kept with a credential.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationResult {
    pub verifier_id: MaterialId,
    /// Digest of the evidence (the EAT as received).
    pub evidence: Digest,
    pub trust_vector: TrustVector,
    pub appraised_at: Timestamp,
}

/// A credential as issued: the facts of the certificate and token the ACA signed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedCredential {
    pub serial: CredentialSerial,
    pub spiffe_id: SpiffeId,
    pub key_thumbprint: KeyId,
    pub key_algorithm: KeyAlgorithm,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub capabilities: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aibom_digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationResult>,
    /// The signed certificate, DER, base64 (public: it lets auditors and the registry check
    /// exactly what was signed).
    pub certificate_der: String,
    /// `jti` of the workload identity token issued with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit_jti: Option<String>,
    /// Thumbprint of the CA key that signed it.
    pub issuer_key: KeyId,
}

/// A credential was issued; records what was asked for, what was checked and under which
/// policy, all in one event (one compare-and-set publish, ADR 0013).
///
/// Version 2 carries the request and the owner binding the request's evidence established.
/// In version 1 they were events of their own (`CredentialRequested`, `OwnerBound`) recorded
/// just before it in the same atomic batch; a version 1 event upcasts with both absent.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialIssued {
    /// What the request asked for (absent in version 1: a `CredentialRequested` precedes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CredentialRequested>,
    pub credential: IssuedCredential,
    pub checks: Vec<CheckRecord>,
    pub policy: PolicyRef,
    /// The owner binding this request's evidence established (an ID token or role grant); the
    /// agent acts for this owner from now on, as after an `OwnerBound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_bound: Option<OwnerBound>,
}

/// A credential was renewed: a new credential replacing `previous_serial`.
///
/// Version 2 carries the request and a new owner binding, as [`CredentialIssued`] does.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRenewed {
    /// What the request asked for (absent in version 1: a `CredentialRequested` precedes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CredentialRequested>,
    pub previous_serial: CredentialSerial,
    pub same_key: bool,
    pub credential: IssuedCredential,
    pub checks: Vec<CheckRecord>,
    pub policy: PolicyRef,
    /// A new owner binding established by this request's evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_bound: Option<OwnerBound>,
}

/// RFC 5280 §5.3.1 reason codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl RevocationReason {
    /// The CRLReason enumeration value (RFC 5280 §5.3.1; 7 is unused).
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }
}

/// One or more credentials of the agent were revoked (all of them, on compromise).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRevoked {
    pub serials: Vec<CredentialSerial>,
    pub reason: RevocationReason,
    pub revoked_at: Timestamp,
    /// The event that triggered it (decommissioning, owner unbound, compromise report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<EventId>,
}

/// A credential reached its `not_after`, as recorded by the expiry sweep.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialExpired {
    pub serial: CredentialSerial,
    pub expired_at: Timestamp,
}

/// The agent moved to a new key (proved with the old one); the old credential stays valid
/// until `grace_until`, then is revoked.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotated {
    pub old_key: KeyId,
    pub new_key: KeyId,
    pub old_serial: CredentialSerial,
    pub new_serial: CredentialSerial,
    pub grace_until: Timestamp,
}

/// The agent was bound to an owner, whose scope caps its capabilities.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerBound {
    pub owner: Owner,
    pub scope: BTreeSet<String>,
    /// Digest of the ID token or role grant that proved it.
    pub evidence: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerUnbound {
    pub owner: Owner,
    pub reason: String,
}

/// Someone reported the agent's key or environment compromised; every live credential of the
/// agent is revoked by the `CredentialRevoked` appended with it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompromiseReported {
    /// Who reported it (an operator's subject, or the agent itself).
    pub reported_by: String,
    pub details: String,
}
