//! The genesis event and domain-wide facts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::DomainKey;
use crate::ids::{DomainId, TrustDomain};

/// The first event of a domain's log: pairs the domain id with its trust domain, fixes the
/// domain's keys and first configuration. Appended once, with an expectation that the stream
/// is empty, so no second genesis can exist.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainCreated {
    pub domain_id: DomainId,
    pub trust_domain: TrustDomain,
    /// Keys that sign this domain's events. Verifiers pin their thumbprints out of band.
    pub event_signing_keys: Vec<DomainKey>,
    /// Keys that sign audit checkpoints.
    pub audit_keys: Vec<DomainKey>,
    pub config: GenesisConfig,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenesisConfig {
    /// Replicas of `ACCORD_EVENTS` (1 on a laptop, 3 in a cluster).
    pub replicas: u8,
    /// JetStream duplicate window, seconds.
    pub duplicate_window_secs: u64,
    /// Number of shards for high-volume token facts.
    pub token_shards: u16,
}
