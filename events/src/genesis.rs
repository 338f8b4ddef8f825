//! The genesis event: the first event of a domain's log.

use uuid::Uuid;

use crate::catalogue::{DomainCreated, Event, GenesisConfig};
use crate::common::{Actor, DomainKey, Timestamp};
use crate::envelope::{AggregateRef, Envelope, Metadata};
use crate::ids::{AggregateId, CommandId, DomainId, TrustDomain};
use crate::signing::{Ed25519Key, SignError, SignedEvent};
use crate::subject::AggregateKind;

const GENESIS_NAMESPACE: Uuid = Uuid::from_bytes([
    0x0e, 0x5d, 0x2b, 0x4f, 0x71, 0x3a, 0x4c, 0x19, 0x8f, 0x62, 0x11, 0xa7, 0x3c, 0x90, 0x5b, 0x08,
]);

/// The command id of a domain's genesis: derived from the domain id, so a retried genesis
/// carries the same event id and is recognised as the same fact.
pub fn genesis_command_id(domain: &DomainId) -> CommandId {
    CommandId::from_uuid(Uuid::new_v5(&GENESIS_NAMESPACE, domain.as_str().as_bytes()))
}

/// The aggregate the genesis event belongs to: the domain itself.
pub fn domain_aggregate(domain: &DomainId) -> AggregateRef {
    AggregateRef {
        kind: AggregateKind::Domain,
        id: AggregateId::parse(domain.as_str())
            .unwrap_or_else(|_| unreachable!("a domain id is a valid aggregate id")),
        seq: 1,
    }
}

/// Builds and signs the genesis event of a domain.
pub fn genesis_event(
    domain: &DomainId,
    trust_domain: &TrustDomain,
    event_key: &Ed25519Key,
    audit_keys: Vec<DomainKey>,
    config: GenesisConfig,
    at: Timestamp,
) -> Result<SignedEvent, SignError> {
    let event = Event::DomainCreated(DomainCreated {
        domain_id: domain.clone(),
        trust_domain: trust_domain.clone(),
        event_signing_keys: vec![event_key.public().clone()],
        audit_keys,
        config,
    });
    let meta = Metadata::new(genesis_command_id(domain), Actor::system("genesis"), at);
    let envelope = Envelope::new(domain, domain_aggregate(domain), &meta, 0, &event)
        .unwrap_or_else(|_| unreachable!("DomainCreated belongs to the domain aggregate"));
    event_key.sign_event(envelope)
}
