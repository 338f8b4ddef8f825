//! The registration rules (ADR 0015): exactly what was signed, on a live credential; the
//! record follows renewals; registering again is idempotent.

use accord_events::catalogue::{
    AgentRegistered, AgentSuspended, AgentUpdated, Audience, CardFields, Endpoint, Owner,
    OwnerBindingKind, Skill, Visibility,
};

use super::super::registration::Registration;
use super::*;

fn owner_named(subject: &str) -> Owner {
    Owner {
        subject: subject.into(),
        issuer: "https://idp.org-a.example".into(),
        kind: OwnerBindingKind::IdToken,
    }
}

fn owner() -> Owner {
    owner_named("alice@org-a.example")
}

fn signed(p: &AgentProvisioned, serial: &str, key: u8) -> IssuedCredential {
    let mut c = credential(p, serial, key, 1);
    c.owner = Some(owner());
    c.aibom_digest = Some(Digest::sha256(b"aibom"));
    c
}

fn asking(c: &IssuedCredential) -> Registration {
    Registration {
        serial: c.serial.clone(),
        name: "travel".into(),
        description: "books trips".into(),
        capabilities: c.capabilities.clone(),
        owner: c.owner.clone(),
        aibom_digest: c.aibom_digest.clone(),
        endpoints: vec![Endpoint {
            url: "https://travel.org-a.example/a2a".into(),
            transport: "JSONRPC".into(),
        }],
        agent_card_digest: None,
        skills: vec![Skill {
            id: "book".into(),
            name: "Book a trip".into(),
            description: "books flights".into(),
            tags: ["travel".to_owned()].into(),
        }],
        audience: Audience::default(),
        card: CardFields::default(),
        wit_jti: None,
    }
}

fn register(r: Registration) -> AgentCommand {
    AgentCommand::Register(Box::new(r))
}

fn registered(p: &AgentProvisioned, r: &Registration) -> Event {
    Event::AgentRegistered(AgentRegistered {
        spiffe_id: p.spiffe_id.clone(),
        credential_serial: r.serial.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        capabilities: r.capabilities.clone(),
        owner: r.owner.clone(),
        aibom_digest: r.aibom_digest.clone(),
        endpoints: r.endpoints.clone(),
        agent_card_digest: r.agent_card_digest.clone(),
        skills: r.skills.clone(),
        audience: r.audience.clone(),
        card: r.card.clone(),
    })
}

#[test]
fn a_registration_carries_exactly_what_was_signed() {
    let p = provisioned();
    let c = signed(&p, "4a01", 1);
    let history = vec![Event::AgentProvisioned(p.clone()), issued(c.clone())];
    let ok = asking(&c);
    Fw::with(())
        .given(history.clone())
        .when(register(ok.clone()))
        .then_expect_events(vec![registered(&p, &ok)]);
    // a superset, a subset, another owner, another AIBOM, no owner: each names its field
    let mut superset = ok.clone();
    superset.capabilities.insert("mail.send".into());
    let mut subset = ok.clone();
    subset.capabilities.clear();
    let mut other_owner = ok.clone();
    other_owner.owner = Some(owner_named("mallory@org-a.example"));
    let mut no_owner = ok.clone();
    no_owner.owner = None;
    let mut other_aibom = ok.clone();
    other_aibom.aibom_digest = Some(Digest::sha256(b"another"));
    for (r, field) in [
        (superset, "capabilities"),
        (subset, "capabilities"),
        (other_owner, "owner"),
        (no_owner, "owner"),
        (other_aibom, "aibom_digest"),
    ] {
        let e = Fw::with(())
            .given(history.clone())
            .when(register(r))
            .inspect_result()
            .unwrap_err();
        assert_eq!(e, AgentError::RegistrationMismatch { field });
        assert!(e.rejection().is_some(), "{e:?}");
    }
}

#[test]
fn only_a_live_credential_of_the_agent_registers() {
    let p = provisioned();
    let c = signed(&p, "4a01", 1);
    let base = vec![Event::AgentProvisioned(p.clone()), issued(c.clone())];
    let revoked = Event::CredentialRevoked(CredentialRevoked {
        serials: vec![c.serial.clone()],
        reason: RevocationReason::KeyCompromise,
        revoked_at: Timestamp::now(),
        triggered_by: None,
    });
    let expired = Event::CredentialExpired(CredentialExpired {
        serial: c.serial.clone(),
        expired_at: Timestamp::now(),
    });
    for (extra, want) in [
        (revoked, AgentError::Revoked(c.serial.clone())),
        (expired, AgentError::Expired(c.serial.clone())),
    ] {
        let mut h = base.clone();
        h.push(extra);
        let e = Fw::with(())
            .given(h)
            .when(register(asking(&c)))
            .inspect_result()
            .unwrap_err();
        assert_eq!(e, want);
    }
    // a serial the agent never held
    let stranger = signed(&p, "4a99", 1);
    Fw::with(())
        .given(base.clone())
        .when(register(asking(&stranger)))
        .then_expect_error(AgentError::UnknownCredential(stranger.serial.clone()));
    // the renewed one: register with its successor
    let next = signed(&p, "4a02", 1);
    let mut h = base.clone();
    h.push(renewed(&c, &next));
    Fw::with(())
        .given(h)
        .when(register(asking(&c)))
        .then_expect_error(AgentError::Superseded(c.serial.clone()));
}

#[test]
fn registering_again_is_idempotent_and_a_renewal_moves_the_record() {
    let p = provisioned();
    let c = signed(&p, "4a01", 1);
    let r = asking(&c);
    let mut h = vec![
        Event::AgentProvisioned(p.clone()),
        issued(c.clone()),
        registered(&p, &r),
    ];
    Fw::with(())
        .given(h.clone())
        .when(register(r.clone()))
        .then_expect_events(vec![]);
    // a new description is an update of that field alone
    let mut described = r.clone();
    described.description = "books trips and hotels".into();
    Fw::with(())
        .given(h.clone())
        .when(register(described))
        .then_expect_events(vec![Event::AgentUpdated(AgentUpdated {
            description: Some("books trips and hotels".into()),
            endpoints: None,
            agent_card_digest: None,
            credential_serial: None,
            skills: None,
            audience: None,
            card: None,
        })]);
    // after a key rotation the record moves to the new serial
    let next = signed(&p, "4a02", 2);
    h.push(renewed(&c, &next));
    Fw::with(())
        .given(h)
        .when(register(asking(&next)))
        .then_expect_events(vec![Event::AgentUpdated(AgentUpdated {
            description: None,
            endpoints: None,
            agent_card_digest: None,
            credential_serial: Some(next.serial.clone()),
            skills: None,
            audience: None,
            card: None,
        })]);
}

#[test]
fn the_audience_is_an_update_and_suspension_needs_a_record() {
    let p = provisioned();
    let c = signed(&p, "4a01", 1);
    let r = asking(&c);
    let h = vec![
        Event::AgentProvisioned(p.clone()),
        issued(c.clone()),
        registered(&p, &r),
    ];
    let mut team = r.clone();
    team.audience = Audience {
        visibility: Visibility::Team,
        team: Some("travel".into()),
    };
    Fw::with(())
        .given(h.clone())
        .when(register(team.clone()))
        .then_expect_events(vec![Event::AgentUpdated(AgentUpdated {
            description: None,
            endpoints: None,
            agent_card_digest: None,
            credential_serial: None,
            skills: None,
            audience: Some(team.audience.clone()),
            card: None,
        })]);
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone()), issued(c.clone())])
        .when(AgentCommand::Suspend {
            reason: "audit".into(),
        })
        .then_expect_error(AgentError::NotRegistered);
    let suspended = Event::AgentSuspended(AgentSuspended {
        reason: "audit".into(),
    });
    Fw::with(())
        .given(h.clone())
        .when(AgentCommand::Suspend {
            reason: "audit".into(),
        })
        .then_expect_events(vec![suspended.clone()]);
    let mut again = h;
    again.push(suspended);
    Fw::with(())
        .given(again)
        .when(AgentCommand::Suspend {
            reason: "audit".into(),
        })
        .then_expect_error(AgentError::AlreadySuspended);
}
