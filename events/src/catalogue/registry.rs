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

/// An agent registered with a credential the ACA signed; capabilities, owner and AIBOM digest
/// equal what the ACA signed.
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
}

/// Mutable parts of a registration changed.
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
