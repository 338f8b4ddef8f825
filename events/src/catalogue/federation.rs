//! Peers and cross-domain identifier mappings (draft §4.1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DomainKey, Timestamp};
use crate::ids::{DomainId, EventTypeName, TrustDomain};

/// A federation peer was added; its event-signing keys are pinned here.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerAdded {
    pub peer: DomainId,
    pub trust_domain: TrustDomain,
    pub event_signing_keys: Vec<DomainKey>,
    /// DER certificates (base64) of the peer's CA for the leaf-node mTLS link.
    pub ca_certificates_der: Vec<String>,
    /// `nats-leaf://host:port` (or `tls://`) of the peer's leaf-node listener.
    pub leaf_url: String,
    /// Event types ingested from this peer.
    pub accepted_event_types: Vec<EventTypeName>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerRemoved {
    pub peer: DomainId,
    pub reason: String,
}

/// The form an identifier was written in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierForm {
    Spiffe,
    Urn,
    Did,
    Https,
}

/// An identifier of another domain was mapped to a local one.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierMapped {
    pub external: String,
    pub form: IdentifierForm,
    pub peer: DomainId,
    pub local: String,
    /// The translation rule that produced it.
    pub rule: String,
    /// Origin stream sequence and time of the fact it was derived from.
    pub origin_seq: u64,
    pub origin_time: Timestamp,
}
