//! Records follow credentials in the `registry` read model (issue 15): a registered record
//! leaves discovery's status at its credential's revocation or expiry, and comes back when the
//! agent registers on a live credential again.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use accord_events::catalogue::{
    AgentProvisioned, AgentRegistered, AgentSuspended, AgentUpdated, CredentialExpired,
    CredentialRevoked, RevocationReason,
};
use accord_events::{
    Actor, AgentId, AggregateId, AggregateKind, AggregateRef, CommandId, CredentialSerial,
    DomainId, Envelope, Event, Metadata, SpiffeId, Timestamp, TrustDomain,
};
use accord_store::StoredEvent;
use accord_store::projection::ProjectionStore;
use accord_store::projection::memory::MemoryStore;

use super::Registry;

struct Agent {
    id: AggregateId,
    agent: AgentId,
    events: Vec<StoredEvent>,
}

impl Agent {
    fn new() -> Self {
        let agent = AgentId::new_v7();
        Self {
            id: AggregateId::parse(&agent.to_string()).unwrap(),
            agent,
            events: Vec::new(),
        }
    }

    fn spiffe(&self) -> SpiffeId {
        SpiffeId::for_agent(&TrustDomain::parse("org-a.example").unwrap(), &self.agent)
    }

    fn push(&mut self, event: Event) {
        let seq = self.events.len() as u64 + 1;
        let meta = Metadata::new(
            CommandId::new_random(),
            Actor::operator("t"),
            Timestamp::now(),
        );
        let aggregate = AggregateRef {
            kind: AggregateKind::Agent,
            id: self.id.clone(),
            seq,
        };
        let envelope = Envelope::new(
            &DomainId::parse("org-a").unwrap(),
            aggregate,
            &meta,
            0,
            &event,
        )
        .unwrap();
        self.events.push(StoredEvent {
            stream_seq: seq * 10,
            envelope,
            event,
        });
    }

    fn registered(&mut self, serial: &str) {
        let e = Event::AgentRegistered(AgentRegistered {
            spiffe_id: self.spiffe(),
            credential_serial: CredentialSerial::parse(serial).unwrap(),
            name: "travel".into(),
            description: "books trips".into(),
            capabilities: BTreeSet::from(["travel.book".to_owned()]),
            owner: None,
            aibom_digest: None,
            endpoints: Vec::new(),
            agent_card_digest: None,
            skills: Vec::new(),
            audience: Default::default(),
            card: Default::default(),
        });
        self.push(e);
    }

    /// The record's status after everything so far.
    async fn status(&self) -> (String, Option<u64>) {
        let store = MemoryStore::new();
        let generation = store.open("registry").await.unwrap().generation;
        let last = self.events.last().map_or(0, |e| e.stream_seq);
        store
            .apply_batch(&Registry, generation, &self.events, last)
            .await
            .unwrap();
        let row = store
            .get("registry", "agents", self.id.as_str())
            .await
            .unwrap()
            .unwrap();
        (
            row["status"].as_str().unwrap().to_owned(),
            row.get("status_seq").and_then(serde_json::Value::as_u64),
        )
    }
}

fn provisioned(a: &Agent) -> Event {
    Event::AgentProvisioned(AgentProvisioned {
        agent_id: a.agent,
        spiffe_id: a.spiffe(),
        name: "travel".into(),
        provider_id: None,
        requested_capabilities: BTreeSet::from(["travel.book".to_owned()]),
    })
}

fn revoked(serial: &str) -> Event {
    Event::CredentialRevoked(CredentialRevoked {
        serials: vec![CredentialSerial::parse(serial).unwrap()],
        reason: RevocationReason::KeyCompromise,
        revoked_at: Timestamp::now(),
        triggered_by: None,
    })
}

#[tokio::test]
async fn a_record_leaves_at_its_credentials_revocation_or_expiry_and_comes_back_on_a_live_one() {
    let mut a = Agent::new();
    a.push(provisioned(&a));
    a.registered("4a01");
    assert_eq!(a.status().await, ("registered".into(), None));
    // another credential's revocation changes nothing
    a.push(revoked("4a99"));
    assert_eq!(a.status().await.0, "registered");
    // its own: out, at that sequence
    a.push(revoked("4a01"));
    assert_eq!(a.status().await, ("revoked".into(), Some(40)));
    // registered again on a renewed credential: back
    a.push(Event::AgentUpdated(AgentUpdated {
        description: None,
        endpoints: None,
        agent_card_digest: None,
        credential_serial: Some(CredentialSerial::parse("4a02").unwrap()),
        skills: None,
        audience: None,
        card: None,
    }));
    assert_eq!(a.status().await, ("registered".into(), Some(50)));
    // its expiry: out
    a.push(Event::CredentialExpired(CredentialExpired {
        serial: CredentialSerial::parse("4a02").unwrap(),
        expired_at: Timestamp::now(),
    }));
    assert_eq!(a.status().await, ("expired".into(), Some(60)));
}

#[tokio::test]
async fn a_suspended_record_stays_suspended_whatever_its_credential_does() {
    let mut a = Agent::new();
    a.push(provisioned(&a));
    a.registered("4a01");
    a.push(Event::AgentSuspended(AgentSuspended {
        reason: "under review".into(),
    }));
    a.push(revoked("4a01"));
    assert_eq!(a.status().await.0, "suspended");
}
