//! Accord's event catalogue: the contract every other component and every other organization
//! reads. Ids and subjects that cannot hold wildcards, the envelope, every event type and
//! version, RFC 8785 canonical bytes and Ed25519 signatures by the domain's event-signing key.

pub mod canonical;
pub mod catalogue;
pub mod common;
pub mod envelope;
pub mod genesis;
pub mod ids;
#[cfg(any(test, feature = "test-support"))]
pub mod sample;
pub mod signing;
pub mod subject;

pub use catalogue::{CATALOGUE, DecodeError, Descriptor, Event};
pub use common::{Actor, AuthMethod, CallerType, Digest, DomainKey, Timestamp, TraceParent};
pub use envelope::{AggregateRef, Envelope, Metadata};
pub use ids::{
    AgentId, AggregateId, CommandId, CorrelationId, CredentialSerial, DomainId, EventId,
    EventTypeName, IdError, Jti, KeyId, MaterialId, SpiffeId, TrustDomain,
};
pub use signing::{
    Ed25519Key, EventSignature, KeyRing, SignedEvent, UnverifiedEvent, VerifiedEvent, VerifyError,
    parse_unverified,
};
pub use subject::{AggregateKind, Subject};
