//! The Agent Registry Service's facts (draft §3.3-3.5). Registration uses the agent's id.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalogue::agent::Owner;
use crate::common::Digest;
use crate::ids::{CredentialSerial, SpiffeId};

/// Where an agent can be reached.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    /// `JSONRPC`, `GRPC`, `HTTP+JSON` (A2A transport names), or `NATS`.
    pub transport: String,
}

/// A skill the agent offers (an A2A `AgentSkill`): what discovery matches by `skill` and `tag`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
}

/// Who may discover a record (the discovery policy decides; these are its record attributes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Any authenticated requester, of any domain.
    Public,
    /// Requesters of the record's domain.
    #[default]
    Domain,
    /// Requesters of the record's domain in the record's team.
    Team,
    /// Requesters acting for the record's owner.
    Owner,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Domain => "domain",
            Self::Team => "team",
            Self::Owner => "owner",
        }
    }
}

/// Who a record is shown to: a visibility and, for `team`, the team.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// The A2A Agent Card fields a record carries beyond its name, description, endpoints and
/// skills.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardFields {
    /// The agent's own version (the card's `version`).
    pub version: String,
    /// Media types the agent accepts and produces (`defaultInputModes`/`defaultOutputModes`).
    pub input_modes: Vec<String>,
    pub output_modes: Vec<String>,
    /// Whether it streams responses (`capabilities.streaming`).
    #[serde(default)]
    pub streaming: bool,
}

impl Default for CardFields {
    fn default() -> Self {
        Self {
            version: "1.0.0".into(),
            input_modes: vec!["text/plain".into()],
            output_modes: vec!["text/plain".into()],
            streaming: false,
        }
    }
}

/// An agent registered with a credential the ACA signed; capabilities, owner and AIBOM digest
/// equal what the ACA signed. Version 2 added `skills`, `audience` and `card` (a version 1
/// event reads as no skills, visible to its domain, default card fields).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRegistered {
    pub spiffe_id: SpiffeId,
    pub credential_serial: CredentialSerial,
    pub name: String,
    pub description: String,
    pub capabilities: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aibom_digest: Option<Digest>,
    pub endpoints: Vec<Endpoint>,
    /// Digest of the A2A Agent Card served for this agent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_card_digest: Option<Digest>,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default)]
    pub card: CardFields,
}

/// Mutable parts of a registration changed (version 2 added `skills`, `audience`, `card`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<Endpoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_card_digest: Option<Digest>,
    /// The credential the registration now rests on (after renewal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_serial: Option<CredentialSerial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<Skill>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardFields>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSuspended {
    pub reason: String,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDecommissioned {
    pub reason: String,
}

/// Why a registration of an authenticated agent was refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationRejection {
    CapabilitiesMismatch,
    OwnerMismatch,
    AibomMismatch,
    CredentialRevoked,
    CredentialExpired,
    UnknownCredential,
    PolicyDenied,
}

/// A registration by an authenticated party was refused for a security-relevant reason.
/// Rate-limited per identity, so nobody can grow the log at will.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRejected {
    pub requester: SpiffeId,
    pub reason: RegistrationRejection,
    /// Digest of the refused request body.
    pub request_digest: Digest,
}
