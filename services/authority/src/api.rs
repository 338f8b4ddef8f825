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
    /// Evidence (EAT, AIBOM, provider endorsement, owner binding): checked by the ACA's next
    /// part; this one refuses a request carrying any, rather than ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
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
