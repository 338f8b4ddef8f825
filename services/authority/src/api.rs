//! The enrollment API's documents (JSON over HTTPS, design §6a). The agent library uses the
//! same types.

use accord_events::{AgentId, CredentialSerial, MaterialId, SpiffeId, Timestamp};
use serde::{Deserialize, Serialize};

/// Most capabilities an agent may be provisioned with or ask for.
pub const MAX_CAPABILITIES: usize = 64;
/// Longest capability, bytes.
pub const MAX_CAPABILITY_LEN: usize = 128;
/// Longest agent name, bytes.
pub const MAX_NAME_LEN: usize = 128;

/// `POST /v1/agents` (admin): create an agent identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// A display name (`[A-Za-z0-9 ._-]`, 1 to 128 bytes).
    pub name: String,
    /// What the agent may ever be credentialled for (`[a-z0-9._:/-]`, sorted and deduplicated).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The provider (model or platform vendor) it runs on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<MaterialId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionResponse {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    /// The one-time bootstrap credential: present it as `Authorization: Bearer` with the first
    /// credential request. It is shown once and stored nowhere.
    pub enrollment_token: String,
    pub enrollment_expires_at: Timestamp,
    /// Where to send the credential request.
    pub credentials_url: String,
    /// Log sequence of the `AgentProvisioned` event.
    pub seq: u64,
}

/// `POST /v1/agents/{id}/credentials`: a credential for the key of the CSR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// PKCS#10, PEM.
    pub csr: String,
    /// Capabilities asked for (a subset of those provisioned); absent: all provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Shorter lifetime than the domain's, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_secs: Option<u64>,
    /// What the agent brings besides its CSR; the domain's issuance policy decides which
    /// parts are required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// Largest credential request body (an AIBOM travels in it), bytes.
pub const MAX_CREDENTIAL_REQUEST: usize = 512 * 1024;

/// The evidence of a credential request (design §6a, draft §3.1). Each part is checked when
/// present (an invalid part refuses the request even where policy does not require it) and
/// recorded in the issuance event by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Initial trust: the execution environment's identity certificate (IDevID-style), PEM,
    /// leaf first, then intermediates up to (not including) a trusted manufacturer CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_chain: Option<String>,
    /// Attestation evidence: an EAT in JWT form (`application/eat+jwt`) signed by the key of
    /// the identity certificate, carrying a nonce from `POST /v1/agents/{id}/attestation-nonce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eat: Option<String>,
    /// The AI bill of materials: a CycloneDX 1.6 JSON document, base64 (standard alphabet) of
    /// its exact bytes (the digest the credential carries is over those bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aibom: Option<String>,
    /// The provider's endorsement (`accord-endorsement+jwt`) over the key, name, version and
    /// AIBOM digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
    /// Owner binding: an ID token of a trusted identity provider, carrying (`nonce`) an owner
    /// nonce from `POST /v1/agents/{id}/owner-nonce` and at most 10 minutes old ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id_token: Option<String>,
    /// ... or a role grant signed by this domain (`accord-role-grant+jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_role_grant: Option<String>,
}

/// `POST /v1/agents/{id}/attestation-nonce` (a single-use `eat_nonce`) and
/// `POST /v1/agents/{id}/owner-nonce` (a single-use `nonce` for the owner's ID token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceResponse {
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `POST /v1/agents/{id}/role-grants` (admin): a role grant for one agent, signed by the
/// domain's token key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrantRequest {
    /// The role the agent acts for (`[A-Za-z0-9 ._-]`).
    pub role: String,
    /// Capabilities the role allows (caps the credential).
    pub scope: Vec<String>,
    /// Lifetime in seconds (at most 30 days).
    pub lifetime_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrantResponse {
    pub role_grant: String,
    pub expires_at: i64,
}

/// `POST /v1/agents/{id}/lifecycle` (admin): an event that ends the agent's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum LifecycleRequest {
    /// The agent's key or environment is compromised: every live credential is revoked.
    CompromiseReported { details: String },
    /// The agent is retired.
    Decommissioned { reason: String },
    /// The owner no longer vouches for the agent.
    OwnerUnbound { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleResponse {
    pub agent_id: AgentId,
    pub revoked: Vec<CredentialSerial>,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialResponse {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub serial: CredentialSerial,
    /// The X.509-SVID, PEM.
    pub certificate: String,
    /// The CA chain it verifies under, PEM (CA first).
    pub chain: String,
    /// The workload identity token (`wit+jwt`), bound to the same key.
    pub wit: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub capabilities: Vec<String>,
    /// `issued` or `renewed`.
    pub kind: String,
    /// Log sequence of the event that recorded it.
    pub seq: u64,
    /// The owner signed into it (what a registration must carry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<accord_events::catalogue::Owner>,
    /// The AIBOM digest signed into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aibom_digest: Option<accord_events::Digest>,
}

/// `POST /v1/revocations` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// An agent id (all its live credentials) or a credential serial.
    pub target: String,
    /// An RFC 5280 reason (`keyCompromise`, `superseded`, ...).
    pub reason: accord_events::catalogue::RevocationReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationResponse {
    pub agent_id: AgentId,
    pub serials: Vec<CredentialSerial>,
    pub seq: u64,
}

/// Checks a capability name.
pub fn check_capability(c: &str) -> Result<(), String> {
    if c.is_empty() || c.len() > MAX_CAPABILITY_LEN {
        return Err(format!(
            "capability of {} bytes (1 to {MAX_CAPABILITY_LEN})",
            c.len()
        ));
    }
    if !c
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_:/".contains(&b))
    {
        return Err(format!(
            "capability {c:?} has characters outside [a-z0-9._:/-]"
        ));
    }
    Ok(())
}

/// Checks and sorts a capability list.
pub fn capability_set(caps: &[String]) -> Result<std::collections::BTreeSet<String>, String> {
    if caps.len() > MAX_CAPABILITIES {
        return Err(format!(
            "{} capabilities, at most {MAX_CAPABILITIES}",
            caps.len()
        ));
    }
    caps.iter().try_for_each(|c| check_capability(c))?;
    Ok(caps.iter().cloned().collect())
}

/// Checks an agent name.
pub fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > MAX_NAME_LEN {
        return Err(format!("name of {} bytes (1 to {MAX_NAME_LEN})", n.len()));
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" ._-".contains(&b))
    {
        return Err("name has characters outside [A-Za-z0-9 ._-]".into());
    }
    Ok(())
}

/// `POST /v1/trust` (admin): one change of the trust material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    content = "material",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum TrustRequest {
    /// A manufacturer CA of environment identity certificates (PEM, root first; the ACA
    /// computes the DER and fingerprints).
    AddAnchor {
        anchor_id: MaterialId,
        certificates_pem: String,
    },
    RemoveAnchor(accord_events::catalogue::TrustAnchorRemoved),
    /// An environment certificate no longer trusted, by PEM or by fingerprint.
    RevokeEnvironmentCertificate {
        anchor_id: MaterialId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate_pem: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<accord_events::Digest>,
        reason: String,
    },
    AddVerifier(accord_events::catalogue::AttestationVerifierAdded),
    RemoveVerifier(accord_events::catalogue::AttestationVerifierRemoved),
    AddProvider(accord_events::catalogue::ProviderAdded),
    RemoveProvider(accord_events::catalogue::ProviderRemoved),
    AddIdentityProvider(accord_events::catalogue::IdentityProviderAdded),
    RemoveIdentityProvider(accord_events::catalogue::IdentityProviderRemoved),
    SetAibomDenyList(accord_events::catalogue::AibomDenyListSet),
}

/// Largest `POST /v1/trust` body (a deny-list), bytes.
pub const MAX_TRUST_REQUEST: usize = 2 * 1024 * 1024;
