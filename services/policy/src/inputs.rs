//! The documents the shipped policies read and answer, as types: enforcement points build
//! their input with these, and `schemas/policy/` holds their JSON Schemas (generated; a test
//! keeps them current).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// AR4SI trustworthiness claims of an attestation result (`instance_identity`,
/// `configuration`, `executables`, `file_system`, `hardware`, `runtime_opaque`,
/// `storage_opaque`, `sourced_data`), each -128..=127; 2..=31 is affirming.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    pub trust_vector: BTreeMap<String, i8>,
}

/// Who asks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// SPIFFE ID of an agent, or the subject of a human or service.
    pub id: String,
    /// `agent`, `human_browser`, `human_api`, `device`, `service`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Roles of the agent's owner (an agent acts within them).
    #[serde(default)]
    pub owner_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

/// What is acted on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// `public`, `internal`, `confidential`, `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// Where and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// `internal` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Hour of day, 0..=23, in the domain's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<u8>,
}

/// Relationships of the requester to the resource, derived from the registry projection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Relations {
    #[serde(default)]
    pub owner_of: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub delegated_by: Vec<String>,
}

/// Input of `accord.rbac`, `accord.abac` and `accord.rebac`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessInput {
    pub subject: Subject,
    pub action: String,
    pub resource: Resource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relations: Option<Relations>,
}

/// State of one issuance check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Passed,
    Absent,
}

/// Input of `accord.issuance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuanceInput {
    /// proof_of_possession, initial_trust, attestation, aibom, provider_endorsement,
    /// owner_binding.
    pub checks: BTreeMap<String, CheckState>,
    pub requested_capabilities: Vec<String>,
    /// Absent: the provider endorsed nothing (no narrowing from that side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsed_capabilities: Option<Vec<String>>,
    /// Absent: no owner binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_scope: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
    pub lifetime_secs: u64,
    /// The agent, for policies that look at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// A renewal by a live credential (its owner binding, AIBOM and capabilities carry over
    /// unless new evidence replaces them); `settings.issuance.renewal_require` applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renewal: bool,
}

/// The requester of a discovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    pub id: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryQuery {
    /// Capabilities sought; empty: any.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// A registry record as the discovery policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryRecord {
    pub agent_id: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// `registered`, `suspended`, `decommissioned`, ...
    pub status: String,
    /// `public`, `domain`, `team`, `owner`.
    pub visibility: String,
    pub capabilities: Vec<String>,
}

/// Input of `accord.discovery`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryInput {
    pub requester: Requester,
    #[serde(default)]
    pub query: DiscoveryQuery,
    pub record: DiscoveryRecord,
}

/// What every policy answers (`data.accord.<policy>.decision`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionResult {
    pub allow: bool,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// issuance: the capabilities the credential may carry; discovery: those shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// (file name, schema) of every document above, for `schemas/policy/`.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("input.schema.json", schemars::schema_for!(AccessInput)),
        (
            "issuance.input.schema.json",
            schemars::schema_for!(IssuanceInput),
        ),
        (
            "discovery.input.schema.json",
            schemars::schema_for!(DiscoveryInput),
        ),
        (
            "decision.schema.json",
            schemars::schema_for!(DecisionResult),
        ),
    ]
}
