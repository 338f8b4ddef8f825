use accord_events::MaterialId;
use accord_events::catalogue::{AibomDenyEntry, AibomMatcher, ReferenceValue};
use cqrs_es::test::TestFramework;

use accord_events::catalogue::AnchorPurpose;

use super::*;

type Fw = TestFramework<Material>;

fn id(s: &str) -> MaterialId {
    MaterialId::parse(s).unwrap()
}

fn verifier(name: &str) -> AttestationVerifierAdded {
    AttestationVerifierAdded {
        verifier_id: id(name),
        keys: vec![],
        reference_values: vec![ReferenceValue {
            component: "kernel".into(),
            digests: vec![Digest::sha256(b"kernel")],
        }],
    }
}

#[test]
fn material_is_added_once_and_removed_for_good() {
    let added = Event::AttestationVerifierAdded(verifier("v1"));
    let removed = Event::AttestationVerifierRemoved(AttestationVerifierRemoved {
        verifier_id: id("v1"),
        reason: "rotated".into(),
    });
    Fw::with(())
        .given_no_previous_events()
        .when(TrustCommand::AddVerifier(verifier("v1")))
        .then_expect_events(vec![added.clone()]);
    Fw::with(())
        .given(vec![added.clone()])
        .when(TrustCommand::AddVerifier(verifier("v1")))
        .then_expect_error(TrustError::Exists("v1".into()));
    Fw::with(())
        .given(vec![added.clone(), removed.clone()])
        .when(TrustCommand::AddVerifier(verifier("v1")))
        .then_expect_error(TrustError::Reused("v1".into()));
    Fw::with(())
        .given(vec![added.clone(), removed.clone()])
        .when(TrustCommand::RemoveVerifier(AttestationVerifierRemoved {
            verifier_id: id("v1"),
            reason: "again".into(),
        }))
        .then_expect_error(TrustError::Unknown("v1".into()));
}

#[test]
fn an_id_names_one_kind_of_material() {
    Fw::with(())
        .given(vec![Event::AttestationVerifierAdded(verifier("m1"))])
        .when(TrustCommand::RemoveProvider(ProviderRemoved {
            provider_id: id("m1"),
            reason: "x".into(),
        }))
        .then_expect_error(TrustError::WrongKind {
            id: "m1".into(),
            found: MaterialKind::Verifier,
            wanted: MaterialKind::Provider,
        });
}

#[test]
fn an_environment_certificate_is_revoked_once_under_a_live_anchor() {
    let revoke = EnvironmentCertificateRevoked {
        anchor_id: id("acme"),
        fingerprint: Digest::sha256(b"leaf"),
        reason: "stolen".into(),
    };
    Fw::with(())
        .given_no_previous_events()
        .when(TrustCommand::RevokeEnvironmentCertificate(revoke.clone()))
        .then_expect_error(TrustError::Unknown("acme".into()));
    let anchor = Event::TrustAnchorAdded(TrustAnchorAdded {
        anchor_id: id("acme"),
        purpose: AnchorPurpose::ManufacturerCa,
        certificates_der: vec![],
        fingerprints: vec![],
    });
    Fw::with(())
        .given(vec![
            anchor.clone(),
            Event::EnvironmentCertificateRevoked(revoke.clone()),
        ])
        .when(TrustCommand::RevokeEnvironmentCertificate(revoke.clone()))
        .then_expect_error(TrustError::AlreadyRevoked(Digest::sha256(b"leaf")));
}

#[test]
fn the_deny_list_is_replaced_whole() {
    let list = AibomDenyListSet {
        entries: vec![AibomDenyEntry {
            id: "bad".into(),
            matcher: AibomMatcher::Purl {
                purl: "pkg:pypi/evil".into(),
                vers: None,
            },
            reason: "malware".into(),
        }],
    };
    Fw::with(())
        .given(vec![Event::AibomDenyListSet(list.clone())])
        .when(TrustCommand::SetDenyList(AibomDenyListSet {
            entries: vec![],
        }))
        .then_expect_events(vec![Event::AibomDenyListSet(AibomDenyListSet {
            entries: vec![],
        })]);
}

#[test]
fn contents_are_checked_before_anything_is_appended() {
    let mut v = verifier("v2");
    v.reference_values[0].component = "Kernel!".into();
    assert!(validate::verifier(&v).is_err());
    let mut v = verifier("v3");
    v.reference_values.push(v.reference_values[0].clone());
    assert!(validate::verifier(&v).is_err());
    let bad_anchor = TrustAnchorAdded {
        anchor_id: id("a"),
        purpose: AnchorPurpose::ManufacturerCa,
        certificates_der: vec!["AAAA".into()],
        fingerprints: vec![Digest::sha256(b"\0\0\0")],
    };
    assert!(validate::anchor(&bad_anchor).is_err());
    let idp = IdentityProviderAdded {
        idp_id: id("corp"),
        issuer: "http://idp.example".into(),
        audiences: vec!["aca".into()],
        keys: vec![],
    };
    assert!(
        validate::identity_provider(&idp)
            .unwrap_err()
            .contains("https")
    );
}
