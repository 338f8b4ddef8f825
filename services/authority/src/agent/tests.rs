use std::collections::BTreeSet;

use accord_events::catalogue::KeyAlgorithm;
use accord_events::{Digest, TrustDomain};
use cqrs_es::test::TestFramework;

use super::*;

type Fw = TestFramework<Agent>;

fn provisioned() -> AgentProvisioned {
    let agent_id = AgentId::new_v7();
    let td = TrustDomain::parse("org-a.example").unwrap();
    AgentProvisioned {
        spiffe_id: SpiffeId::for_agent(&td, &agent_id),
        agent_id,
        name: "travel".into(),
        provider_id: None,
        requested_capabilities: BTreeSet::from(["travel.book".to_owned()]),
    }
}

fn kid(n: u8) -> KeyId {
    KeyId::parse(
        &"A".repeat(42)
            .chars()
            .chain([char::from(b'A' + n)])
            .collect::<String>(),
    )
    .unwrap()
}

fn credential(p: &AgentProvisioned, serial: &str, key: u8, hours: i64) -> IssuedCredential {
    let now = Timestamp::now();
    IssuedCredential {
        serial: CredentialSerial::parse(serial).unwrap(),
        spiffe_id: p.spiffe_id.clone(),
        key_thumbprint: kid(key),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        not_before: now,
        not_after: Timestamp::from_datetime(now.datetime() + time::Duration::hours(hours)),
        capabilities: p.requested_capabilities.clone(),
        owner: None,
        aibom_digest: None,
        attestation: None,
        certificate_der: String::new(),
        wit_jti: Some(format!("jti-{serial}")),
        issuer_key: kid(9),
    }
}

fn requested() -> CredentialRequested {
    CredentialRequested {
        csr_digest: Digest::sha256(b"csr"),
        key_thumbprint: kid(1),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        requested_capabilities: BTreeSet::new(),
    }
}

fn policy() -> PolicyRef {
    PolicyRef {
        bundle: "default".into(),
        version: 1,
        digest: Digest::sha256(b"bundle"),
        at_seq: 3,
    }
}

fn record(grant: Grant, c: IssuedCredential) -> AgentCommand {
    AgentCommand::RecordCredential {
        grant,
        requested: requested(),
        credential: Box::new(c),
        checks: Vec::new(),
        policy: policy(),
        owner_bound: None,
    }
}

fn issued(c: IssuedCredential) -> Event {
    Event::CredentialIssued(CredentialIssued {
        request: Some(requested()),
        credential: c,
        checks: Vec::new(),
        policy: policy(),
        owner_bound: None,
    })
}

#[test]
fn provisioning_happens_once() {
    let p = provisioned();
    Fw::with(())
        .given_no_previous_events()
        .when(AgentCommand::Provision(p.clone()))
        .then_expect_events(vec![Event::AgentProvisioned(p.clone())]);
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone())])
        .when(AgentCommand::Provision(p))
        .then_expect_error(AgentError::AlreadyProvisioned);
}

#[test]
fn enrollment_records_the_request_and_the_credential_once() {
    let p = provisioned();
    let c = credential(&p, "4a01", 1, 1);
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone())])
        .when(record(Grant::Enrollment, c.clone()))
        .then_expect_events(vec![issued(c.clone())]);
    // the enrollment token is spent
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone()), issued(c)])
        .when(record(Grant::Enrollment, credential(&p, "4a02", 1, 1)))
        .then_expect_error(AgentError::AlreadyEnrolled);
    // and nothing is recorded for an agent that was never provisioned
    Fw::with(())
        .given_no_previous_events()
        .when(record(Grant::Enrollment, credential(&p, "4a03", 1, 1)))
        .then_expect_error(AgentError::NotProvisioned);
}

#[test]
fn a_credential_for_another_identity_or_a_reused_serial_is_refused() {
    let p = provisioned();
    let mut other = credential(&p, "4a01", 1, 1);
    other.spiffe_id = provisioned().spiffe_id;
    let r = Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone())])
        .when(record(Grant::Enrollment, other))
        .inspect_result();
    assert!(matches!(r, Err(AgentError::WrongSubject { .. })));
    let c = credential(&p, "4a01", 1, 1);
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone()), issued(c.clone())])
        .when(record(
            Grant::Renewal {
                previous: c.serial.clone(),
                rotation_grace: time::Duration::minutes(5),
            },
            c.clone(),
        ))
        .then_expect_error(AgentError::SerialReused(c.serial));
}

#[test]
fn renewal_needs_a_live_credential_and_says_whether_the_key_changed() {
    let p = provisioned();
    let c = credential(&p, "4a01", 1, 1);
    let next = credential(&p, "4a02", 2, 1);
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone()), issued(c.clone())])
        .when(record(
            Grant::Renewal {
                previous: c.serial.clone(),
                rotation_grace: time::Duration::minutes(5),
            },
            next.clone(),
        ))
        .then_expect_events(vec![
            Event::CredentialRenewed(CredentialRenewed {
                request: Some(requested()),
                previous_serial: c.serial.clone(),
                same_key: false,
                credential: next.clone(),
                checks: Vec::new(),
                policy: policy(),
                owner_bound: None,
            }),
            // another key: a rotation, the old credential kept for the grace period
            Event::KeyRotated(KeyRotated {
                old_key: c.key_thumbprint.clone(),
                new_key: next.key_thumbprint.clone(),
                old_serial: c.serial.clone(),
                new_serial: next.serial.clone(),
                grace_until: Timestamp::from_datetime(
                    next.not_before.datetime()
                        + time::Duration::seconds(crate::profile::BACKDATE_SECS)
                        + time::Duration::minutes(5),
                ),
            }),
        ]);
    // revoked, expired or unknown credentials do not renew
    let revoked = Event::CredentialRevoked(CredentialRevoked {
        serials: vec![c.serial.clone()],
        reason: RevocationReason::KeyCompromise,
        revoked_at: Timestamp::now(),
        triggered_by: None,
    });
    Fw::with(())
        .given(vec![
            Event::AgentProvisioned(p.clone()),
            issued(c.clone()),
            revoked,
        ])
        .when(record(
            Grant::Renewal {
                previous: c.serial.clone(),
                rotation_grace: time::Duration::minutes(5),
            },
            next.clone(),
        ))
        .then_expect_error(AgentError::Revoked(c.serial.clone()));
    let old = credential(&p, "4a05", 1, -1);
    Fw::with(())
        .given(vec![
            Event::AgentProvisioned(p.clone()),
            issued(old.clone()),
        ])
        .when(record(
            Grant::Renewal {
                previous: old.serial.clone(),
                rotation_grace: time::Duration::minutes(5),
            },
            next.clone(),
        ))
        .then_expect_error(AgentError::Expired(old.serial));
    let unknown = CredentialSerial::parse("7777").unwrap();
    Fw::with(())
        .given(vec![Event::AgentProvisioned(p), issued(c)])
        .when(record(
            Grant::Renewal {
                previous: unknown.clone(),
                rotation_grace: time::Duration::minutes(5),
            },
            next,
        ))
        .then_expect_error(AgentError::UnknownCredential(unknown));
}

#[test]
fn revocation_takes_live_credentials_only() {
    let p = provisioned();
    let a = credential(&p, "4a01", 1, 1);
    let b = credential(&p, "4a02", 1, 1);
    let renewed = Event::CredentialRenewed(CredentialRenewed {
        request: Some(requested()),
        previous_serial: a.serial.clone(),
        same_key: true,
        credential: b.clone(),
        checks: Vec::new(),
        policy: policy(),
        owner_bound: None,
    });
    let at = Timestamp::now();
    let history = vec![
        Event::AgentProvisioned(p.clone()),
        issued(a.clone()),
        renewed,
    ];
    // all of them (compromise)
    Fw::with(())
        .given(history.clone())
        .when(AgentCommand::Revoke {
            serials: vec![],
            reason: RevocationReason::KeyCompromise,
            at,
        })
        .then_expect_events(vec![Event::CredentialRevoked(CredentialRevoked {
            serials: vec![a.serial.clone(), b.serial.clone()],
            reason: RevocationReason::KeyCompromise,
            revoked_at: at,
            triggered_by: None,
        })]);
    // one by serial; twice records nothing new
    let mut h = history.clone();
    h.push(Event::CredentialRevoked(CredentialRevoked {
        serials: vec![a.serial.clone()],
        reason: RevocationReason::Superseded,
        revoked_at: at,
        triggered_by: None,
    }));
    Fw::with(())
        .given(h.clone())
        .when(AgentCommand::Revoke {
            serials: vec![a.serial.clone()],
            reason: RevocationReason::Superseded,
            at,
        })
        .then_expect_error(AgentError::NothingToRevoke);
    Fw::with(())
        .given(h)
        .when(AgentCommand::Revoke {
            serials: vec![CredentialSerial::parse("99").unwrap()],
            reason: RevocationReason::Superseded,
            at,
        })
        .then_expect_error(AgentError::UnknownCredential(
            CredentialSerial::parse("99").unwrap(),
        ));
}

fn renewal(previous: &IssuedCredential) -> Grant {
    Grant::Renewal {
        previous: previous.serial.clone(),
        rotation_grace: time::Duration::minutes(5),
    }
}

fn renewed(previous: &IssuedCredential, next: &IssuedCredential) -> Event {
    Event::CredentialRenewed(CredentialRenewed {
        request: Some(requested()),
        previous_serial: previous.serial.clone(),
        same_key: previous.key_thumbprint == next.key_thumbprint,
        credential: next.clone(),
        checks: Vec::new(),
        policy: policy(),
        owner_bound: None,
    })
}

fn rotated(previous: &IssuedCredential, next: &IssuedCredential) -> Event {
    Event::KeyRotated(KeyRotated {
        old_key: previous.key_thumbprint.clone(),
        new_key: next.key_thumbprint.clone(),
        old_serial: previous.serial.clone(),
        new_serial: next.serial.clone(),
        grace_until: Timestamp::from_datetime(
            next.not_before.datetime() + time::Duration::minutes(5),
        ),
    })
}

/// Finding 4 (credential forking): one credential yields at most one successor, and a
/// same-key renewal leaves one live credential at once (the renewed one is superseded in the
/// same atomic batch).
#[test]
fn a_credential_renews_once() {
    let p = provisioned();
    let a = credential(&p, "4a01", 1, 1);
    let b = credential(&p, "4a02", 1, 1);
    let fork = credential(&p, "4a03", 1, 1);
    // the first same-key renewal: the new credential, and the old one superseded at once
    let r = Fw::with(())
        .given(vec![Event::AgentProvisioned(p.clone()), issued(a.clone())])
        .when(record(renewal(&a), b.clone()))
        .inspect_result()
        .unwrap();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0], renewed(&a, &b));
    match &r[1] {
        Event::CredentialRevoked(x) => {
            assert_eq!(x.serials, vec![a.serial.clone()]);
            assert_eq!(x.reason, RevocationReason::Superseded);
        }
        other => panic!("expected the renewed credential superseded, got {other:?}"),
    }
    // a second renewal of the same credential (a copy of the agent's folder) is refused, also
    // where the first renewal's supersession was not recorded (a history from before)
    Fw::with(())
        .given(vec![
            Event::AgentProvisioned(p.clone()),
            issued(a.clone()),
            renewed(&a, &b),
        ])
        .when(record(renewal(&a), fork.clone()))
        .then_expect_error(AgentError::AlreadyRenewed(a.serial.clone()));
    let mut superseded = vec![
        Event::AgentProvisioned(p.clone()),
        issued(a.clone()),
        renewed(&a, &b),
    ];
    superseded.push(r[1].clone());
    Fw::with(())
        .given(superseded.clone())
        .when(record(renewal(&a), fork))
        .then_expect_error(AgentError::AlreadyRenewed(a.serial.clone()));
    // the successor renews (once)
    let c = credential(&p, "4a04", 1, 1);
    let r = Fw::with(())
        .given(superseded)
        .when(record(renewal(&b), c))
        .inspect_result();
    assert!(r.is_ok(), "{r:?}");
}

/// Finding 4: a credential rotated out (renewed onto another key, still inside its grace
/// period) renews no more: a thief of the old key cannot outlive the rotation.
#[test]
fn no_renewal_of_a_rotated_out_credential() {
    let p = provisioned();
    let a = credential(&p, "4a01", 1, 1);
    let b = credential(&p, "4a02", 2, 1);
    let history = vec![
        Event::AgentProvisioned(p.clone()),
        issued(a.clone()),
        renewed(&a, &b),
        rotated(&a, &b),
    ];
    // with the old key (a same-key renewal by the thief) or with yet another key
    for (serial, key) in [("4a03", 1), ("4a04", 3)] {
        Fw::with(())
            .given(history.clone())
            .when(record(renewal(&a), credential(&p, serial, key, 1)))
            .then_expect_error(AgentError::RotatedOut(a.serial.clone()));
    }
    // the aggregate's own check says so before anything is signed
    let mut agent = Agent::default();
    for e in history {
        agent.apply(e);
    }
    assert_eq!(
        agent.check_renewable(&a.serial, Timestamp::now()),
        Err(AgentError::RotatedOut(a.serial.clone()))
    );
    assert!(agent.check_renewable(&b.serial, Timestamp::now()).is_ok());
}

#[path = "registration_tests.rs"]
mod registration;
