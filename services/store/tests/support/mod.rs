//! Shared by the store's integration tests: a store on a fresh nats-server, and a small
//! agent aggregate to exercise cqrs-es on JetStream.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_events::catalogue::*;
use accord_events::{
    Actor, AgentId, AggregateId, CommandId, DomainId, Ed25519Key, Event, Metadata, SpiffeId,
    Timestamp, TrustDomain,
};
use accord_store::{EventStore, StoreConfig};
use accord_testkit::NatsServer;
use serde::{Deserialize, Serialize};

pub fn domain() -> DomainId {
    DomainId::parse("org-a").unwrap()
}

/// The domain's event-signing key: one per test process, so that every store a test opens
/// writes as the same domain (a store believes only events signed by its domain's keys).
pub fn key() -> Arc<Ed25519Key> {
    static KEY: std::sync::OnceLock<Arc<Ed25519Key>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Arc::new(Ed25519Key::generate().unwrap().0))
        .clone()
}

/// A key that is not the domain's.
pub fn other_key() -> Arc<Ed25519Key> {
    Arc::new(Ed25519Key::generate().unwrap().0)
}

pub async fn store_on(url: &str, key: Arc<Ed25519Key>) -> EventStore {
    let client = async_nats::connect(url).await.unwrap();
    EventStore::open(client, StoreConfig::new(domain()), key)
        .await
        .unwrap()
}

pub async fn fresh() -> (NatsServer, EventStore) {
    let server = NatsServer::start();
    let store = store_on(&server.url(), key()).await;
    (server, store)
}

pub fn meta() -> Metadata {
    Metadata::new(
        CommandId::new_random(),
        Actor::operator("test"),
        Timestamp::now(),
    )
}

pub fn agent_aggregate() -> (AgentId, AggregateId) {
    let a = AgentId::new_v7();
    let id = AggregateId::parse(&a.to_string()).unwrap();
    (a, id)
}

pub fn suspended(reason: &str) -> Event {
    Event::AgentSuspended(AgentSuspended {
        reason: reason.into(),
    })
}

pub fn provisioned(agent: &AgentId, name: &str) -> Event {
    Event::AgentProvisioned(AgentProvisioned {
        agent_id: *agent,
        spiffe_id: SpiffeId::for_agent(&TrustDomain::parse("org-a.example").unwrap(), agent),
        name: name.into(),
        provider_id: None,
        requested_capabilities: BTreeSet::from(["mail.send".to_string()]),
    })
}

/// A minimal agent aggregate: provisioned once, then suspended or decommissioned.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Agent {
    pub provisioned: Option<AgentId>,
    pub name: String,
    pub suspensions: u32,
    pub decommissioned: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    Provision { agent: AgentId, name: String },
    Suspend { reason: String },
    Decommission { reason: String },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AgentError {
    #[error("agent already provisioned")]
    AlreadyProvisioned,
    #[error("agent not provisioned")]
    NotProvisioned,
    #[error("agent decommissioned")]
    Decommissioned,
}

impl cqrs_es::Aggregate for Agent {
    const TYPE: &'static str = "agent";
    type Command = AgentCommand;
    type Event = Event;
    type Error = AgentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AgentCommand,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), AgentError> {
        match command {
            AgentCommand::Provision { agent, name } => {
                if self.provisioned.is_some() {
                    return Err(AgentError::AlreadyProvisioned);
                }
                sink.write(provisioned(&agent, &name), self).await;
            }
            AgentCommand::Suspend { reason } => {
                self.live()?;
                sink.write(suspended(&reason), self).await;
            }
            AgentCommand::Decommission { reason } => {
                self.live()?;
                sink.write(suspended("decommissioning"), self).await;
                sink.write(
                    Event::AgentDecommissioned(AgentDecommissioned {
                        reason: reason.clone(),
                    }),
                    self,
                )
                .await;
                sink.write(
                    Event::CredentialRevoked(CredentialRevoked {
                        serials: vec![],
                        reason: RevocationReason::CessationOfOperation,
                        revoked_at: Timestamp::now(),
                        triggered_by: None,
                    }),
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::AgentProvisioned(p) => {
                self.provisioned = Some(p.agent_id);
                self.name = p.name;
            }
            Event::AgentSuspended(_) => self.suspensions += 1,
            Event::AgentDecommissioned(_) => self.decommissioned = true,
            _ => {}
        }
    }
}

impl Agent {
    fn live(&self) -> Result<(), AgentError> {
        if self.provisioned.is_none() {
            return Err(AgentError::NotProvisioned);
        }
        if self.decommissioned {
            return Err(AgentError::Decommissioned);
        }
        Ok(())
    }
}

/// A test PKI made with rcgen for the test at hand (no committed keys): a CA, and a server
/// certificate it signed for `names` (PEM).
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert: String,
    pub server_key: String,
}

pub fn test_pki(names: &[&str]) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    // a name of its own: another test CA is another issuer, not a forgery of this one
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("accord test PostgreSQL CA {}", uuid::Uuid::new_v4()),
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::minutes(5);
    ca.not_after = now + time::Duration::days(1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("db"));
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::minutes(5);
    server.not_after = now + time::Duration::days(1);
    let cert = server.signed_by(&key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server_cert: cert.pem(),
        server_key: key.serialize_pem(),
    }
}
