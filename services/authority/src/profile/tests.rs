//! The profile, its independent re-validation, the CA and the CRL, with a software CA key.

use std::sync::Arc;

use accord_events::TrustDomain;
use accord_events::catalogue::{AttestationResult, RevocationReason, TrustVector};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use x509_parser::prelude::FromDer;

use super::*;
use crate::ca::Ca;
use crate::signer::DevFileSigner;
use crate::validate::issued_certificate;

fn ca() -> Ca {
    let (signer, _) = DevFileSigner::generate_p256().unwrap();
    Ca::generate(
        Arc::new(signer),
        &TrustDomain::parse("org-a.example").unwrap(),
        time::Duration::days(1),
    )
    .unwrap()
}

fn facts(td: &str) -> CredentialFacts {
    let agent_id = AgentId::new_v7();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    CredentialFacts {
        spiffe_id: SpiffeId::for_agent(&accord_events::TrustDomain::parse(td).unwrap(), &agent_id),
        agent_id,
        serial: random_serial(),
        not_before: Timestamp::from_datetime(now - time::Duration::seconds(30)),
        not_after: Timestamp::from_datetime(now + time::Duration::hours(1)),
        capabilities: BTreeSet::from(["travel.book".to_owned(), "travel.search".to_owned()]),
        owner: Some(Owner {
            subject: "alice".into(),
            issuer: "https://idp.org-a.example".into(),
            kind: OwnerBindingKind::IdToken,
        }),
        aibom_digest: Some(Digest::sha256(b"aibom")),
        attestation: Some(AttestationResult {
            verifier_id: MaterialId::parse("tpm-verifier").unwrap(),
            evidence: Digest::sha256(b"eat"),
            trust_vector: TrustVector {
                instance_identity: Some(2),
                configuration: None,
                executables: None,
                file_system: None,
                hardware: None,
                runtime_opaque: None,
                storage_opaque: None,
                sourced_data: None,
            },
            appraised_at: Timestamp::now(),
        }),
    }
}

fn sign(ca: &Ca, f: &CredentialFacts, spki: &[u8]) -> Vec<u8> {
    let params = certificate_params(
        f,
        &ExtensionArc::default(),
        Some("https://aca.example/v1/crl"),
    )
    .unwrap();
    let key = rcgen::SubjectPublicKeyInfo::from_der(spki).unwrap();
    params
        .signed_by(&key, &ca.issuer().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn agent_spki() -> Vec<u8> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .subject_public_key_info()
}

#[test]
fn a_signed_credential_passes_its_independent_check() {
    let ca = ca();
    let f = facts("org-a.example");
    let spki = agent_spki();
    let der = sign(&ca, &f, &spki);
    issued_certificate(
        &der,
        &ca,
        &f,
        &spki,
        &ExtensionArc::default(),
        Some("https://aca.example/v1/crl"),
    )
    .unwrap();

    // and the extensions decode to the facts
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let arc = ExtensionArc::default();
    let ext = |n: u64| {
        let oid = arc
            .child(n)
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .unwrap()
            .value
    };
    assert_eq!(decode::owner(ext(1)).unwrap(), f.owner.clone().unwrap());
    assert_eq!(decode::capabilities(ext(2)).unwrap(), f.capabilities);
    assert_eq!(
        decode::aibom(ext(3)).unwrap(),
        f.aibom_digest.clone().unwrap()
    );
    assert_eq!(
        decode::attestation(ext(4)).unwrap().0.as_str(),
        "tpm-verifier"
    );
}

#[test]
fn the_check_catches_a_certificate_that_says_something_else() {
    let ca = ca();
    let f = facts("org-a.example");
    let spki = agent_spki();
    let der = sign(&ca, &f, &spki);
    let arc = ExtensionArc::default();
    let crl = Some("https://aca.example/v1/crl");
    let mut wrong = f.clone();
    wrong.capabilities.insert("admin.all".into());
    assert!(issued_certificate(&der, &ca, &wrong, &spki, &arc, crl).is_err());
    let mut wrong = f.clone();
    wrong.serial = random_serial();
    assert!(issued_certificate(&der, &ca, &wrong, &spki, &arc, crl).is_err());
    let mut wrong = f.clone();
    wrong.spiffe_id = facts("org-b.example").spiffe_id;
    assert!(issued_certificate(&der, &ca, &wrong, &spki, &arc, crl).is_err());
    // another key than the request's
    assert!(issued_certificate(&der, &ca, &f, &agent_spki(), &arc, crl).is_err());
    // another CA's signature
    assert!(issued_certificate(&der, &self::ca(), &f, &spki, &arc, crl).is_err());
    // a flipped bit anywhere in the signed part
    let mut tampered = der.clone();
    let i = tampered.len() / 2;
    tampered[i] ^= 1;
    assert!(issued_certificate(&tampered, &ca, &f, &spki, &arc, crl).is_err());
    // a CA certificate is not an agent credential
    assert!(issued_certificate(ca.certificate_der(), &ca, &f, &spki, &arc, crl).is_err());
}

#[test]
fn a_credential_without_optional_facts_carries_only_capabilities() {
    let ca = ca();
    let mut f = facts("org-a.example");
    f.owner = None;
    f.aibom_digest = None;
    f.attestation = None;
    f.capabilities.clear();
    let spki = agent_spki();
    let der = sign(&ca, &f, &spki);
    issued_certificate(
        &der,
        &ca,
        &f,
        &spki,
        &ExtensionArc::default(),
        Some("https://aca.example/v1/crl"),
    )
    .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let private = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string().starts_with("1.3.6.1.4.1.32473."))
        .count();
    assert_eq!(private, 1);
}

#[test]
fn extension_decoders_are_strict() {
    assert!(decode::capabilities(&encode_capabilities(&BTreeSet::from(["a".to_owned()]))).is_ok());
    // unsorted or duplicated capabilities
    let unsorted = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string("b");
            w.next().write_utf8_string("a");
        })
    });
    assert!(decode::capabilities(&unsorted).is_err());
    // trailing bytes, wrong digest length, unknown owner kind
    let mut trailing = encode_digest(&Digest::sha256(b"x"));
    trailing.push(0);
    assert!(decode::aibom(&trailing).is_err());
    let short = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&yasna::models::ObjectIdentifier::from_slice(OID_SHA256));
            w.next().write_bytes(&[1, 2, 3]);
        })
    });
    assert!(decode::aibom(&short).is_err());
    let owner = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string("a");
            w.next().write_utf8_string("b");
            w.next().write_enum(7);
        })
    });
    assert!(decode::owner(&owner).is_err());
}

#[test]
fn extension_arcs_parse_strictly() {
    assert_eq!(
        ExtensionArc::parse("1.3.6.1.4.1.99999.1")
            .unwrap()
            .to_string(),
        "1.3.6.1.4.1.99999.1"
    );
    for bad in ["", "1", "1.2", "1..3", "1.3.x", "3.1.2", "1.40.1", "1.03.1"] {
        assert!(ExtensionArc::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn serials_are_16_positive_bytes() {
    for _ in 0..100 {
        let s = random_serial();
        let b = serial_bytes(&s);
        assert_eq!(b.len(), 16);
        assert!(b[0] & 0x80 == 0 && b[0] != 0);
    }
}

#[test]
fn the_crl_lists_live_revocations_and_verifies() {
    let ca = ca();
    let now = OffsetDateTime::now_utc();
    let live = random_serial();
    let expired = random_serial();
    let revoked = vec![
        crate::crl::Revoked {
            serial: live.clone(),
            reason: RevocationReason::KeyCompromise,
            revoked_at: Timestamp::now(),
            not_after: Some(Timestamp::from_datetime(now + time::Duration::hours(1))),
        },
        crate::crl::Revoked {
            serial: expired,
            reason: RevocationReason::Superseded,
            revoked_at: Timestamp::now(),
            not_after: Some(Timestamp::from_datetime(now - time::Duration::hours(1))),
        },
    ];
    let crl = crate::crl::build(&ca, &revoked, 42, now, time::Duration::hours(24)).unwrap();
    assert_eq!(crl.entries, 1);
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der).unwrap();
    assert_eq!(
        parsed.crl_number().map(|n| n.to_u64_digits()),
        Some(vec![42])
    );
    let serials: Vec<Vec<u8>> = parsed
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(serials, vec![serial_bytes(&live)]);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.certificate_der()).unwrap();
    parsed.verify_signature(ca_cert.public_key()).unwrap();
}
