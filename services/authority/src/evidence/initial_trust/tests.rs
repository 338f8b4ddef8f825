//! Identity chains generated here with rcgen: root → intermediate → leaf, then one defect at
//! a time.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::signer::SignerExt;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Validity from `from` to `to` days relative to now.
type Days = (i64, i64);
const VALID: Days = (-1, 365);

/// How each certificate of the chain is made.
#[derive(Clone)]
struct Spec {
    root_alg: &'static SignatureAlgorithm,
    int_alg: &'static SignatureAlgorithm,
    leaf_alg: &'static SignatureAlgorithm,
    root_days: Days,
    int_days: Days,
    leaf_days: Days,
    int_is_ca: IsCa,
    int_usages: Vec<KeyUsagePurpose>,
    leaf_is_ca: IsCa,
    leaf_usages: Vec<KeyUsagePurpose>,
    leaf_eku: Vec<ExtendedKeyUsagePurpose>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            root_alg: &PKCS_ECDSA_P256_SHA256,
            int_alg: &PKCS_ECDSA_P256_SHA256,
            leaf_alg: &PKCS_ECDSA_P256_SHA256,
            root_days: VALID,
            int_days: VALID,
            leaf_days: VALID,
            int_is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
            int_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            leaf_is_ca: IsCa::ExplicitNoCa,
            leaf_usages: vec![KeyUsagePurpose::DigitalSignature],
            leaf_eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
        }
    }
}

struct Pki {
    root: Vec<u8>,
    int: Vec<u8>,
    leaf: Vec<u8>,
}

impl Pki {
    fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.leaf.clone(), self.int.clone()]
    }
    fn anchor(&self) -> Anchor {
        Anchor {
            id: MaterialId::parse("acme-tpm-ca").unwrap(),
            certificates_der: vec![self.root.clone()],
        }
    }
}

fn params(cn: &str, days: Days, is_ca: IsCa, usages: Vec<KeyUsagePurpose>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Acme Devices");
    let t = OffsetDateTime::now_utc();
    p.not_before = t + Duration::days(days.0);
    p.not_after = t + Duration::days(days.1);
    p.is_ca = is_ca;
    p.key_usages = usages;
    p
}

fn pki(s: &Spec) -> Pki {
    let ca_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_key = KeyPair::generate_for(s.root_alg).unwrap();
    let root_params = params(
        "Acme Root",
        s.root_days,
        IsCa::Ca(BasicConstraints::Unconstrained),
        ca_usages,
    );
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);

    let int_key = KeyPair::generate_for(s.int_alg).unwrap();
    let int_params = params(
        "Acme Issuing CA",
        s.int_days,
        s.int_is_ca,
        s.int_usages.clone(),
    );
    let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, int_key);

    let leaf_key = KeyPair::generate_for(s.leaf_alg).unwrap();
    let mut leaf_params = params(
        "device-0042",
        s.leaf_days,
        s.leaf_is_ca,
        s.leaf_usages.clone(),
    );
    leaf_params.extended_key_usages = s.leaf_eku.clone();
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
    Pki {
        root: root.der().to_vec(),
        int: int.der().to_vec(),
        leaf: leaf.der().to_vec(),
    }
}

fn run(s: &Spec) -> Result<EnvironmentIdentity, InitialTrustError> {
    let p = pki(s);
    check(&p.chain(), &[p.anchor()], &BTreeSet::new(), now())
}

#[test]
fn p256_and_ed25519_chains_pass() {
    let p = pki(&Spec::default());
    let id = check(&p.chain(), &[p.anchor()], &BTreeSet::new(), now()).unwrap();
    assert_eq!(id.anchor_id.as_str(), "acme-tpm-ca");
    assert_eq!(id.leaf_fingerprint, Digest::sha256(&p.leaf));
    assert!(id.subject.contains("CN=device-0042"), "{}", id.subject);
    assert!(id.not_after > now() + 300 * 86_400);
    assert_eq!(id.attestation_key.alg(), "ES256");
    assert_eq!(id.attestation_jwk.crv.as_deref(), Some("P-256"));

    let ed = Spec {
        int_alg: &PKCS_ED25519,
        leaf_alg: &PKCS_ED25519,
        ..Spec::default()
    };
    let id = run(&ed).unwrap();
    assert_eq!(id.attestation_key.alg(), "EdDSA");
    assert_eq!(id.attestation_jwk.kty, "OKP");
}

#[test]
fn the_attestation_key_verifies_what_the_leaf_key_signs() {
    // the key taken from the certificate is the leaf's: a JWS by the leaf key verifies
    let root_key = KeyPair::generate().unwrap();
    let root_params = params(
        "Acme Root",
        VALID,
        IsCa::Ca(BasicConstraints::Unconstrained),
        vec![KeyUsagePurpose::KeyCertSign],
    );
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(root_params, root_key);
    let (signer, _) = crate::signer::DevFileSigner::generate_p256().unwrap();
    let jwk = signer.jwk().0;
    // rcgen signs the leaf for a public key it is given as SPKI
    let leaf_key = rcgen::SubjectPublicKeyInfo::from_der(&signer.spki_der()).unwrap();
    let leaf = params("device-7", VALID, IsCa::ExplicitNoCa, vec![])
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let anchor = Anchor {
        id: MaterialId::parse("acme").unwrap(),
        certificates_der: vec![root.der().to_vec()],
    };
    let id = check(&[leaf.der().to_vec()], &[anchor], &BTreeSet::new(), now()).unwrap();
    assert_eq!(
        (&id.attestation_jwk.x, &id.attestation_jwk.y),
        (&jwk.x, &jwk.y)
    );
    let token =
        crate::jws::sign(&signer, "eat+jwt", &serde_json::json!({"exp": now() + 60})).unwrap();
    crate::jws::verify(&token, "eat+jwt", &id.attestation_key, now()).unwrap();
}

#[test]
fn an_intermediate_listed_by_the_anchor_lets_the_leaf_come_alone() {
    let p = pki(&Spec::default());
    let anchor = Anchor {
        certificates_der: vec![p.root.clone(), p.int.clone()],
        ..p.anchor()
    };
    check(
        std::slice::from_ref(&p.leaf),
        &[anchor],
        &BTreeSet::new(),
        now(),
    )
    .unwrap();
    // without it, the leaf alone has no path
    let e = check(
        std::slice::from_ref(&p.leaf),
        &[p.anchor()],
        &BTreeSet::new(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(e, InitialTrustError::Untrusted(_)), "{e:?}");
}

#[test]
fn a_chain_to_an_untrusted_root_is_refused() {
    let p = pki(&Spec::default());
    let other = pki(&Spec::default());
    let e = check(&p.chain(), &[other.anchor()], &BTreeSet::new(), now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Untrusted(_)), "{e:?}");
    assert_eq!(e.kind(), "identity-untrusted");
    // no anchor at all
    let e = check(&p.chain(), &[], &BTreeSet::new(), now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Untrusted(_)), "{e:?}");
    // the root presented in the chain does not make it trusted
    let with_root = vec![p.leaf.clone(), p.int.clone(), p.root.clone()];
    let e = check(&with_root, &[other.anchor()], &BTreeSet::new(), now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Untrusted(_)), "{e:?}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let cases = [
        (
            Spec {
                leaf_days: (-30, -1),
                ..Spec::default()
            },
            InitialTrustError::Expired,
        ),
        (
            Spec {
                int_days: (-30, -1),
                ..Spec::default()
            },
            InitialTrustError::Expired,
        ),
        (
            Spec {
                root_days: (-30, -1),
                ..Spec::default()
            },
            InitialTrustError::Expired,
        ),
        (
            Spec {
                leaf_days: (1, 30),
                ..Spec::default()
            },
            InitialTrustError::NotYetValid,
        ),
        (
            Spec {
                int_days: (1, 30),
                ..Spec::default()
            },
            InitialTrustError::NotYetValid,
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(run(&spec).unwrap_err(), want);
    }
    // the same chain, checked at a time when it is valid, and after
    let p = pki(&Spec::default());
    let anchors = [p.anchor()];
    check(&p.chain(), &anchors, &BTreeSet::new(), now() + 100 * 86_400).unwrap();
    assert_eq!(
        check(&p.chain(), &anchors, &BTreeSet::new(), now() + 400 * 86_400).unwrap_err(),
        InitialTrustError::Expired
    );
    assert_eq!(
        check(&p.chain(), &anchors, &BTreeSet::new(), now() - 2 * 86_400).unwrap_err(),
        InitialTrustError::NotYetValid
    );
}

#[test]
fn revoked_leaf_intermediate_or_root_is_refused() {
    let p = pki(&Spec::default());
    let anchors = [p.anchor()];
    for der in [&p.leaf, &p.int, &p.root] {
        let fp = Digest::sha256(der);
        let revoked = BTreeSet::from([fp.clone()]);
        let e = check(&p.chain(), &anchors, &revoked, now()).unwrap_err();
        assert_eq!(e, InitialTrustError::Revoked(fp));
        assert_eq!(e.kind(), "identity-revoked");
    }
    // another certificate's fingerprint changes nothing
    let revoked = BTreeSet::from([Digest::sha256(b"something else")]);
    check(&p.chain(), &anchors, &revoked, now()).unwrap();
}

#[test]
fn ca_constraints_are_enforced() {
    // a leaf that is a CA
    let e = run(&Spec {
        leaf_is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
        ..Spec::default()
    })
    .unwrap_err();
    assert_eq!(e, InitialTrustError::LeafIsCa);
    // a leaf that may sign certificates, without basicConstraints
    let e = run(&Spec {
        leaf_is_ca: IsCa::NoCa,
        leaf_usages: vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ],
        ..Spec::default()
    })
    .unwrap_err();
    assert_eq!(e, InitialTrustError::LeafIsCa);
    // an intermediate without cA, explicit or absent
    for is_ca in [IsCa::ExplicitNoCa, IsCa::NoCa] {
        let e = run(&Spec {
            int_is_ca: is_ca,
            ..Spec::default()
        })
        .unwrap_err();
        assert!(matches!(e, InitialTrustError::IssuerNotCa(_)), "{e:?}");
        assert_eq!(e.kind(), "identity-issuer-not-ca");
    }
    // an intermediate CA without keyCertSign, or without keyUsage at all
    for usages in [vec![KeyUsagePurpose::DigitalSignature], vec![]] {
        let e = run(&Spec {
            int_usages: usages,
            ..Spec::default()
        })
        .unwrap_err();
        assert!(
            matches!(e, InitialTrustError::IssuerNotCa(ref w) if w.contains("keyUsage") || w.contains("keyCertSign")),
            "{e:?}"
        );
    }
}

#[test]
fn a_leaf_for_servers_only_is_refused() {
    let e = run(&Spec {
        leaf_eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..Spec::default()
    })
    .unwrap_err();
    assert_eq!(e, InitialTrustError::Usage);
    // no EKU at all is fine
    run(&Spec {
        leaf_eku: vec![],
        ..Spec::default()
    })
    .unwrap();
}

#[test]
fn an_rsa_leaf_is_refused_under_an_rsa_ca_that_is_accepted() {
    let e = run(&Spec {
        leaf_alg: &PKCS_RSA_SHA256,
        ..Spec::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, InitialTrustError::Key(ref w) if w.contains("RSA")),
        "{e:?}"
    );
    assert_eq!(e.kind(), "identity-key");
    // RSA CAs may sign EC leaves
    run(&Spec {
        root_alg: &PKCS_RSA_SHA256,
        int_alg: &PKCS_RSA_SHA256,
        ..Spec::default()
    })
    .unwrap();
}

#[test]
fn bounds_and_garbage_are_refused() {
    let p = pki(&Spec::default());
    let anchors = [p.anchor()];
    let none = BTreeSet::new();
    let five = vec![
        p.leaf.clone(),
        p.int.clone(),
        p.int.clone(),
        p.int.clone(),
        p.root.clone(),
    ];
    assert_eq!(
        check(&five, &anchors, &none, now()).unwrap_err(),
        InitialTrustError::TooMany(5)
    );
    let e = check(&[vec![0u8; MAX_CERT_BYTES + 1]], &anchors, &none, now()).unwrap_err();
    assert_eq!(e, InitialTrustError::TooLarge(MAX_CERT_BYTES + 1));
    for garbage in [
        vec![],
        vec![0x30, 0x03, 0x02, 0x01],
        b"not a certificate".to_vec(),
    ] {
        let e = check(&[garbage], &anchors, &none, now()).unwrap_err();
        assert!(matches!(e, InitialTrustError::Malformed(_)), "{e:?}");
    }
    // trailing bytes after the leaf, garbage intermediate
    let mut trailing = p.leaf.clone();
    trailing.push(0);
    let e = check(&[trailing, p.int.clone()], &anchors, &none, now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Malformed(_)), "{e:?}");
    let e = check(&[p.leaf.clone(), vec![1, 2, 3]], &anchors, &none, now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Malformed(_)), "{e:?}");
    let e = check(&[], &anchors, &none, now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Malformed(_)), "{e:?}");
    // a tampered signature
    let mut tampered = p.leaf.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let e = check(&[tampered, p.int.clone()], &anchors, &none, now()).unwrap_err();
    assert!(matches!(e, InitialTrustError::Untrusted(_)), "{e:?}");
}

#[test]
fn pem_chains_parse_within_bounds() {
    let pem = |der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    };
    let p = pki(&Spec::default());
    let text = format!("{}{}", pem(&p.leaf), pem(&p.int));
    let chain = parse_chain_pem(&text).unwrap();
    assert_eq!(chain, p.chain());
    check(&chain, &[p.anchor()], &BTreeSet::new(), now()).unwrap();

    let five = pem(&p.leaf).repeat(5);
    assert_eq!(
        parse_chain_pem(&five).unwrap_err(),
        InitialTrustError::TooMany(5)
    );
    assert!(matches!(
        parse_chain_pem("no pem here"),
        Err(InitialTrustError::Malformed(_))
    ));
    assert!(matches!(
        parse_chain_pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        Err(InitialTrustError::Malformed(_))
    ));
    let huge = "x".repeat(MAX_PEM_BYTES + 1);
    assert_eq!(
        parse_chain_pem(&huge).unwrap_err(),
        InitialTrustError::TooLarge(MAX_PEM_BYTES + 1)
    );
}

/// A chain checked once is reused only for the same trust material version and while every
/// certificate of its path is valid: a revocation (a new version) or the end of the shortest
/// validity makes it checked again, and refused.
#[test]
fn a_cached_chain_is_reused_only_within_its_trust_version_and_validity() {
    let p = pki(&Spec::default());
    let anchors = [p.anchor()];
    let cache = ChainCache::default();
    let id = cache
        .check(7, &p.chain(), &anchors, &BTreeSet::new(), now())
        .unwrap();
    let (from, until) = id.path_valid;
    assert!(from <= now() && now() <= until, "{:?}", id.path_valid);
    // the same version: reused, even if the material passed in differs (it cannot, for one
    // version: this shows the cache is what answered)
    let fp = Digest::sha256(&p.leaf);
    let revoked = BTreeSet::from([fp.clone()]);
    cache
        .check(7, &p.chain(), &anchors, &revoked, now())
        .unwrap();
    // the revocation's version: checked again, refused
    assert_eq!(
        cache
            .check(8, &p.chain(), &anchors, &revoked, now())
            .unwrap_err(),
        InitialTrustError::Revoked(fp)
    );
    // past the path's validity: checked again, refused
    assert!(
        cache
            .check(7, &p.chain(), &anchors, &BTreeSet::new(), until + 1)
            .is_err()
    );
}
