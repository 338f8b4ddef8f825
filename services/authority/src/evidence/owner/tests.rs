//! ID tokens and role grants signed here with real keys (RSA-2048 from aws-lc-rs, P-256), then
//! one defect at a time.

use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use super::*;
use crate::signer::{DevFileSigner, Signer, SignerExt};

const ISSUER: &str = "https://login.acme.example/realms/staff";
const CLIENT: &str = "accord-aca";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn id(s: &str) -> MaterialId {
    MaterialId::parse(s).unwrap()
}

/// A key that signs compact JWS with any header.
enum Key {
    Rsa(RsaKeyPair),
    Ec(DevFileSigner),
}

impl Key {
    fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }
    fn ec() -> Self {
        Self::Ec(DevFileSigner::generate_p256().unwrap().0)
    }
    fn jwk(&self, kid: &str) -> PublicJwk {
        let mut jwk = match self {
            Self::Rsa(k) => {
                crate::csr::jwk_of(
                    accord_events::catalogue::KeyAlgorithm::Rsa2048,
                    k.public_key().as_ref(),
                )
                .unwrap()
                .0
            }
            Self::Ec(s) => s.jwk().0,
        };
        jwk.kid = Some(kid.into());
        jwk
    }
    fn alg(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "RS256",
            Self::Ec(_) => "ES256",
        }
    }
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", enc(header), enc(claims));
        let sig = match self {
            Self::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            Self::Ec(s) => s.sign_raw(input.as_bytes()).unwrap(),
        };
        format!("{input}.{}", B64.encode(sig))
    }
    /// An ID token: `typ` JWT, `kid` as given.
    fn id_token(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = kid {
            h["kid"] = kid.into();
        }
        self.sign(&h, claims)
    }
}

fn id_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "aud": CLIENT,
        "iat": now(),
        "exp": now() + 300,
        "scope": "tools:read mail:send",
        "email": "alice@acme.example",
        "nonce": NONCE,
    })
}

/// The owner nonce the ACA issued for the agent (its format; the bucket is not here).
const NONCE: &str = "n0nce-n0nce-n0nce-n0nce-n0nce-n0nce-n0nce-x";

struct World {
    rsa: Key,
    ec: Key,
    other: Key,
    idps: Vec<Idp>,
}

fn world() -> World {
    let (rsa, ec, other) = (Key::rsa(), Key::ec(), Key::ec());
    let idps = vec![
        Idp {
            id: id("acme-staff"),
            issuer: ISSUER.into(),
            audiences: vec![CLIENT.into(), "another-client".into()],
            keys: vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")],
        },
        Idp {
            id: id("partner"),
            issuer: "https://idp.partner.example".into(),
            audiences: vec![CLIENT.into()],
            keys: vec![other.jwk("partner-1")],
        },
    ];
    World {
        rsa,
        ec,
        other,
        idps,
    }
}

#[test]
fn rs256_and_es256_id_tokens_bind_the_owner() {
    let w = world();
    for (key, kid) in [(&w.rsa, "rsa-1"), (&w.ec, "ec-1")] {
        let token = key.id_token(Some(kid), &id_claims());
        let b = verify_id_token(&token, &w.idps, now()).unwrap();
        assert_eq!(b.owner.subject, "f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
        assert_eq!(b.owner.issuer, ISSUER);
        assert_eq!(b.owner.kind, OwnerBindingKind::IdToken);
        assert_eq!(
            b.scope,
            BTreeSet::from(["tools:read".to_owned(), "mail:send".to_owned()])
        );
        assert_eq!(b.evidence, Digest::sha256(token.as_bytes()));
        assert_eq!(b.against, Some(id("acme-staff")));
        assert_eq!(b.expires_at, id_claims()["exp"].as_i64().unwrap());
    }
    // the kid may also be the key's thumbprint; typ may be absent or application/jwt
    let thumb = jws::thumbprint(&w.rsa.jwk("rsa-1")).unwrap();
    let t = w.rsa.id_token(Some(thumb.as_str()), &id_claims());
    verify_id_token(&t, &w.idps, now()).unwrap();
    for h in [
        json!({"alg": "ES256", "kid": "ec-1"}),
        json!({"alg": "ES256", "kid": "ec-1", "typ": "application/jwt"}),
    ] {
        verify_id_token(&w.ec.sign(&h, &id_claims()), &w.idps, now()).unwrap();
    }
}

#[test]
fn audiences_may_be_an_array() {
    let w = world();
    let mut c = id_claims();
    c["aud"] = json!(["https://other.example", CLIENT]);
    verify_id_token(&w.ec.id_token(Some("ec-1"), &c), &w.idps, now()).unwrap();
    c["aud"] = json!(["https://other.example", "https://third.example"]);
    let e = verify_id_token(&w.ec.id_token(Some("ec-1"), &c), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::Audience);
    c["aud"] = json!([7]);
    let e = verify_id_token(&w.ec.id_token(Some("ec-1"), &c), &w.idps, now()).unwrap_err();
    assert!(matches!(e, OwnerError::Claim(_)), "{e:?}");
}

#[test]
fn id_tokens_from_untrusted_issuers_or_keys_are_refused() {
    let w = world();
    // an issuer no IdP has; one that differs only in a trailing slash
    for iss in ["https://evil.example", &format!("{ISSUER}/")] {
        let mut c = id_claims();
        c["iss"] = iss.into();
        let e = verify_id_token(&w.ec.id_token(Some("ec-1"), &c), &w.idps, now()).unwrap_err();
        assert_eq!(e, OwnerError::UntrustedIssuer(iss.to_owned()));
        assert_eq!(e.kind(), "owner-untrusted-issuer");
    }
    // the right issuer, signed with the partner IdP's key, naming it
    let e = verify_id_token(
        &w.other.id_token(Some("partner-1"), &id_claims()),
        &w.idps,
        now(),
    )
    .unwrap_err();
    assert_eq!(e, OwnerError::UnknownKey);
    // ... or naming one of the issuer's own kids
    let e = verify_id_token(
        &w.other.id_token(Some("ec-1"), &id_claims()),
        &w.idps,
        now(),
    )
    .unwrap_err();
    assert_eq!(e, OwnerError::Token(JwsError::Signature));
    // no kid, and the IdP has two keys
    let e = verify_id_token(&w.ec.id_token(None, &id_claims()), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::UnknownKey);
    // no kid, one key: that key
    let mut idps = w.idps.clone();
    idps[0].keys.truncate(1);
    verify_id_token(&w.rsa.id_token(None, &id_claims()), &idps, now()).unwrap();
}

#[test]
fn expired_or_other_audience_id_tokens_are_refused() {
    let w = world();
    let mut c = id_claims();
    c["iat"] = (now() - 7200).into();
    c["exp"] = (now() - 3600).into();
    let e = verify_id_token(&w.rsa.id_token(Some("rsa-1"), &c), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::Expired);
    assert_eq!(e.kind(), "owner-expired");
    let mut c = id_claims();
    c["aud"] = "https://other.example".into();
    let e = verify_id_token(&w.rsa.id_token(Some("rsa-1"), &c), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::Audience);
    c.as_object_mut().unwrap().remove("aud");
    let e = verify_id_token(&w.rsa.id_token(Some("rsa-1"), &c), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::Audience);
}

#[test]
fn id_token_claims_are_checked() {
    let w = world();
    let refused =
        |c: &Value| verify_id_token(&w.ec.id_token(Some("ec-1"), c), &w.idps, now()).unwrap_err();
    let without = |name: &str| {
        let mut c = id_claims();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    // exp, iat, sub required; iat not in the future
    assert!(matches!(
        refused(&without("exp")),
        OwnerError::Token(JwsError::Claims(_))
    ));
    assert!(matches!(refused(&without("iat")), OwnerError::Claim(_)));
    assert!(matches!(refused(&without("sub")), OwnerError::Claim(_)));
    let mut c = id_claims();
    c["iat"] = (now() + 3600).into();
    assert_eq!(refused(&c), OwnerError::Token(JwsError::NotYetValid));
    for sub in [json!(""), json!("x".repeat(256)), json!(42)] {
        let mut c = id_claims();
        c["sub"] = sub;
        assert!(matches!(refused(&c), OwnerError::Claim(_)));
    }
    // scope: absent is empty, never unconstrained; malformed is refused
    let b = verify_id_token(
        &w.ec.id_token(Some("ec-1"), &without("scope")),
        &w.idps,
        now(),
    )
    .unwrap();
    assert!(b.scope.is_empty());
    for scope in [
        json!(["tools:read"]),
        json!("tools:read \"quoted\""),
        json!("a\\b"),
    ] {
        let mut c = id_claims();
        c["scope"] = scope;
        assert!(matches!(refused(&c), OwnerError::Claim(_)));
    }
    let mut c = id_claims();
    c["scope"] = "a  b ".into();
    let b = verify_id_token(&w.ec.id_token(Some("ec-1"), &c), &w.idps, now()).unwrap();
    assert_eq!(b.scope, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
}

/// Finding 8: an ID token is bound to one agent and one use by the owner nonce it carries
/// (the caller spends it), and is at most ten minutes old.
#[test]
fn id_tokens_carry_the_owner_nonce_and_are_recent() {
    let w = world();
    let sign = |c: &Value| w.ec.id_token(Some("ec-1"), c);
    let b = verify_id_token(&sign(&id_claims()), &w.idps, now()).unwrap();
    assert_eq!(b.nonce.as_deref(), Some(NONCE));
    // no nonce, or not a string, or not one of the ACA's: refused before any lookup
    for nonce in [
        None,
        Some(json!(42)),
        Some(json!("")),
        Some(json!("x".repeat(129))),
    ] {
        let mut c = id_claims();
        match nonce {
            Some(n) => c["nonce"] = n,
            None => {
                c.as_object_mut().unwrap().remove("nonce");
            }
        }
        let e = verify_id_token(&sign(&c), &w.idps, now()).unwrap_err();
        assert_eq!(e, OwnerError::NoNonce, "{c}");
        assert_eq!(e.kind(), "owner-nonce-missing");
    }
    // issued more than ten minutes ago: stale, however long it lives
    let mut c = id_claims();
    c["iat"] = (now() - MAX_ID_TOKEN_AGE_SECS - 5).into();
    let e = verify_id_token(&sign(&c), &w.idps, now()).unwrap_err();
    assert_eq!(e, OwnerError::Stale);
    assert_eq!(e.kind(), "owner-stale");
    c["iat"] = (now() - MAX_ID_TOKEN_AGE_SECS + 30).into();
    verify_id_token(&sign(&c), &w.idps, now()).unwrap();
    // a role grant is bound to its agent by the domain's signature: no nonce
    let key = DevFileSigner::generate_p256().unwrap().0;
    let grant = crate::jws::sign(&key, TYP_ROLE_GRANT, &grant_claims()).unwrap();
    let dk = crate::jws::VerifyingKey::of_signer(&key);
    let b = verify_role_grant(&grant, &dk, DOMAIN, &agent(1), now()).unwrap();
    assert_eq!(b.nonce, None);
}

#[test]
fn rsa_1024_idp_keys_are_refused() {
    let w = world();
    // a 1024-bit modulus (aws-lc-rs does not generate keys this short)
    let mut n = vec![0xd3u8; 128];
    n[127] |= 1;
    let mut idps = w.idps.clone();
    idps[0].keys = vec![PublicJwk {
        n: Some(B64.encode(&n)),
        ..w.rsa.jwk("rsa-1")
    }];
    let e =
        verify_id_token(&w.rsa.id_token(Some("rsa-1"), &id_claims()), &idps, now()).unwrap_err();
    assert!(matches!(e, OwnerError::Token(JwsError::Key(_))), "{e:?}");
}

#[test]
fn other_token_types_are_not_id_tokens() {
    let w = world();
    for typ in ["at+jwt", TYP_ROLE_GRANT, "wit+jwt"] {
        let h = json!({"alg": "ES256", "kid": "ec-1", "typ": typ});
        let e = verify_id_token(&w.ec.sign(&h, &id_claims()), &w.idps, now()).unwrap_err();
        assert!(
            matches!(e, OwnerError::Token(JwsError::Type { .. })),
            "{typ}: {e:?}"
        );
    }
    let h = json!({"alg": "none", "kid": "ec-1", "typ": "JWT"});
    let e = verify_id_token(&w.ec.sign(&h, &id_claims()), &w.idps, now()).unwrap_err();
    assert!(
        matches!(e, OwnerError::Token(JwsError::Algorithm(_))),
        "{e:?}"
    );
}

const DOMAIN: &str = "spiffe://org-a.example";

fn agent(n: u32) -> SpiffeId {
    SpiffeId::parse(&format!("{DOMAIN}/agent/a{n}")).unwrap()
}

fn grant_claims() -> Value {
    json!({
        "iss": DOMAIN,
        "sub": "travel-desk",
        "aud": agent(1).as_str(),
        "scope": "tools:read",
        "iat": now(),
        "exp": now() + 3600,
        "jti": jws::random_jti(),
    })
}

#[test]
fn role_grants_bind_one_agent_to_a_role() {
    let domain = DevFileSigner::generate_p256().unwrap().0;
    let key = VerifyingKey::of_signer(&domain);
    let grant = |c: &Value| jws::sign(&domain, TYP_ROLE_GRANT, c).unwrap();
    let t = grant(&grant_claims());
    let b = verify_role_grant(&t, &key, DOMAIN, &agent(1), now()).unwrap();
    assert_eq!(b.owner.subject, "travel-desk");
    assert_eq!(b.owner.issuer, "role-grant:org-a.example");
    assert_eq!(b.owner.kind, OwnerBindingKind::RoleGrant);
    assert_eq!(b.scope, BTreeSet::from(["tools:read".to_owned()]));
    assert_eq!(b.evidence, Digest::sha256(t.as_bytes()));
    assert_eq!(b.against, None);

    // for another agent
    let e = verify_role_grant(&t, &key, DOMAIN, &agent(2), now()).unwrap_err();
    assert_eq!(e, OwnerError::Audience);
    assert_eq!(e.kind(), "owner-audience");
    let mut c = grant_claims();
    c["aud"] = json!([agent(1).as_str(), agent(2).as_str()]);
    let e = verify_role_grant(&grant(&c), &key, DOMAIN, &agent(1), now()).unwrap_err();
    assert_eq!(e, OwnerError::Audience);
    // signed by another key
    let other = DevFileSigner::generate_p256().unwrap().0;
    let forged = jws::sign(&other, TYP_ROLE_GRANT, &grant_claims()).unwrap();
    let e = verify_role_grant(&forged, &key, DOMAIN, &agent(1), now()).unwrap_err();
    assert_eq!(e, OwnerError::Token(JwsError::Signature));
    // from another domain's issuer
    let e = verify_role_grant(&t, &key, "spiffe://org-b.example", &agent(1), now()).unwrap_err();
    assert_eq!(e, OwnerError::UntrustedIssuer(DOMAIN.into()));
    // expired
    let mut c = grant_claims();
    c["exp"] = (now() - 3600).into();
    let e = verify_role_grant(&grant(&c), &key, DOMAIN, &agent(1), now()).unwrap_err();
    assert_eq!(e, OwnerError::Expired);
    // every claim required
    for name in ["sub", "scope", "iat", "jti"] {
        let mut c = grant_claims();
        c.as_object_mut().unwrap().remove(name);
        let e = verify_role_grant(&grant(&c), &key, DOMAIN, &agent(1), now()).unwrap_err();
        assert!(matches!(e, OwnerError::Claim(_)), "{name}: {e:?}");
    }
    // an ID token (typ JWT) signed by the domain key is no role grant
    let h = json!({"alg": "ES256", "typ": "JWT"});
    let t = Key::Ec(domain).sign(&h, &grant_claims());
    let e = verify_role_grant(&t, &key, DOMAIN, &agent(1), now()).unwrap_err();
    assert!(
        matches!(e, OwnerError::Token(JwsError::Type { .. })),
        "{e:?}"
    );
}
