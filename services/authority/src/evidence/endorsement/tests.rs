//! Endorsements signed here by two providers' real keys, then one defect at a time.

use accord_events::Ed25519Key;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::*;
use crate::signer::{DevFileSigner, Signer, SignerExt};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn p256() -> DevFileSigner {
    DevFileSigner::generate_p256().unwrap().0
}

fn ed25519() -> DevFileSigner {
    let (_, der) = Ed25519Key::generate().unwrap();
    DevFileSigner::from_pkcs8(&der, "provider-b").unwrap()
}

fn id(s: &str) -> MaterialId {
    MaterialId::parse(s).unwrap()
}

struct World {
    a: DevFileSigner,
    b: DevFileSigner,
    providers: Vec<Provider>,
    agent_key: KeyId,
    aibom: Digest,
}

impl World {
    fn new() -> Self {
        let (a, b) = (p256(), ed25519());
        let endorsable = |caps: &[&str]| caps.iter().map(|c| c.to_string()).collect();
        let providers = vec![
            Provider {
                id: id("provider-a"),
                keys: vec![a.jwk().0],
                endorsable: endorsable(&["tools:read", "tools:write", "mail:send"]),
            },
            Provider {
                id: id("provider-b"),
                keys: vec![b.jwk().0],
                endorsable: endorsable(&["tools:read"]),
            },
        ];
        Self {
            agent_key: p256().jwk().1,
            aibom: Digest::sha256(b"{\"bomFormat\":\"CycloneDX\"}"),
            a,
            b,
            providers,
        }
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            key_thumbprint: &self.agent_key,
            agent_name: "travel-agent",
            agent_version: "1.4.2",
            aibom_digest: &self.aibom,
        }
    }

    fn claims(&self) -> Value {
        claims(
            &id("provider-a"),
            &self.expected(),
            &["tools:read", "tools:write", "shell:exec"],
            now(),
            now() + 30 * 86_400,
        )
    }

    fn verify(&self, token: &str) -> Result<Endorsement, EndorsementError> {
        verify(token, &self.providers, &self.expected(), now())
    }
}

/// A token with this header and these claims, signed by `s`.
fn forge(s: &DevFileSigner, header: &Value, claims: &Value) -> String {
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", enc(header), enc(claims));
    let sig = s.sign_raw(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

#[test]
fn an_endorsement_grants_the_intersection_of_capabilities() {
    let w = World::new();
    let token = jws::sign(&w.a, TYP_ENDORSEMENT, &w.claims()).unwrap();
    let e = w.verify(&token).unwrap();
    assert_eq!(e.provider_id.as_str(), "provider-a");
    // shell:exec is not endorsable by provider-a; mail:send was not asked for
    let want: BTreeSet<String> = ["tools:read", "tools:write"].map(String::from).into();
    assert_eq!(e.capabilities, want);
    assert_eq!(e.digest, Digest::sha256(token.as_bytes()));

    // provider-b (Ed25519) may endorse less
    let mut c = w.claims();
    c["iss"] = "provider-b".into();
    let token = jws::sign(&w.b, TYP_ENDORSEMENT, &c).unwrap();
    let e = w.verify(&token).unwrap();
    assert_eq!(e.capabilities, BTreeSet::from(["tools:read".to_owned()]));
}

#[test]
fn the_kid_may_be_the_jwks_own() {
    let mut w = World::new();
    let mut jwk = w.a.jwk().0;
    jwk.kid = Some("provider-a-2026".into());
    w.providers[0].keys = vec![jwk];
    let h = json!({"alg": "ES256", "typ": TYP_ENDORSEMENT, "kid": "provider-a-2026"});
    w.verify(&forge(&w.a, &h, &w.claims())).unwrap();
    // the thumbprint still names it
    let h = json!({"alg": "ES256", "typ": TYP_ENDORSEMENT, "kid": w.a.jwk().1.as_str()});
    w.verify(&forge(&w.a, &h, &w.claims())).unwrap();
    // no kid at all
    let h = json!({"alg": "ES256", "typ": TYP_ENDORSEMENT});
    assert_eq!(
        w.verify(&forge(&w.a, &h, &w.claims())).unwrap_err(),
        EndorsementError::UnknownKey
    );
}

#[test]
fn unknown_providers_and_keys_are_refused() {
    let w = World::new();
    // an issuer that is no trusted provider
    let mut c = w.claims();
    c["iss"] = "provider-z".into();
    let e = w
        .verify(&jws::sign(&w.a, TYP_ENDORSEMENT, &c).unwrap())
        .unwrap_err();
    assert_eq!(e, EndorsementError::UnknownProvider("provider-z".into()));
    assert_eq!(e.kind(), "endorsement-unknown-provider");
    // no iss
    c.as_object_mut().unwrap().remove("iss");
    let e = w
        .verify(&jws::sign(&w.a, TYP_ENDORSEMENT, &c).unwrap())
        .unwrap_err();
    assert!(matches!(e, EndorsementError::Claim(_)), "{e:?}");
    // provider-b's key, claiming to be provider-a
    let e = w
        .verify(&jws::sign(&w.b, TYP_ENDORSEMENT, &w.claims()).unwrap())
        .unwrap_err();
    assert_eq!(e, EndorsementError::ForeignKey("provider-b".into()));
    // a key of nobody
    let e = w
        .verify(&jws::sign(&p256(), TYP_ENDORSEMENT, &w.claims()).unwrap())
        .unwrap_err();
    assert_eq!(e, EndorsementError::UnknownKey);
    // a key of nobody, naming provider-a's kid: the signature does not verify
    let h = json!({"alg": "ES256", "typ": TYP_ENDORSEMENT, "kid": w.a.jwk().1.as_str()});
    let e = w.verify(&forge(&p256(), &h, &w.claims())).unwrap_err();
    assert_eq!(e, EndorsementError::Token(JwsError::Signature));
}

#[test]
fn every_claim_about_the_agent_must_be_the_requests() {
    let w = World::new();
    let other_key = p256().jwk().1;
    let other_aibom = Digest::sha256(b"another bom");
    let cases: [(&str, Value, EndorsementError); 4] = [
        (
            "cnf",
            json!({"jkt": other_key.as_str()}),
            EndorsementError::WrongKey,
        ),
        (
            "agent_name",
            json!("mail-agent"),
            EndorsementError::WrongName,
        ),
        (
            "agent_version",
            json!("1.4.3"),
            EndorsementError::WrongVersion,
        ),
        (
            "aibom_digest",
            json!(other_aibom.to_string()),
            EndorsementError::WrongAibom,
        ),
    ];
    for (claim, value, want) in cases {
        let mut c = w.claims();
        c[claim] = value;
        let got = w
            .verify(&jws::sign(&w.a, TYP_ENDORSEMENT, &c).unwrap())
            .unwrap_err();
        assert_eq!(got, want, "{claim}");
        // and absent, or of another type
        c.as_object_mut().unwrap().remove(claim);
        let got = w
            .verify(&jws::sign(&w.a, TYP_ENDORSEMENT, &c).unwrap())
            .unwrap_err();
        assert!(
            matches!(got, EndorsementError::Claim(_)),
            "{claim}: {got:?}"
        );
    }
    for bad in [
        json!("tools:read"),
        json!([1]),
        json!([""]),
        json!(vec!["x"; 65]),
    ] {
        let mut c = w.claims();
        c["capabilities"] = bad;
        let got = w
            .verify(&jws::sign(&w.a, TYP_ENDORSEMENT, &c).unwrap())
            .unwrap_err();
        assert!(matches!(got, EndorsementError::Claim(_)), "{got:?}");
    }
}

#[test]
fn expired_long_lived_mistyped_and_unsigned_tokens_are_refused() {
    let w = World::new();
    let e = |c: &Value| {
        w.verify(&jws::sign(&w.a, TYP_ENDORSEMENT, c).unwrap())
            .unwrap_err()
    };
    let mut c = w.claims();
    c["iat"] = (now() - 7200).into();
    c["exp"] = (now() - 3600).into();
    let got = e(&c);
    assert_eq!(got, EndorsementError::Token(JwsError::Expired));
    assert_eq!(got.kind(), "endorsement-expired");
    let mut c = w.claims();
    c["exp"] = (now() + 366 * 86_400).into();
    assert!(matches!(e(&c), EndorsementError::Claim(_)));
    let mut c = w.claims();
    c.as_object_mut().unwrap().remove("iat");
    assert!(matches!(e(&c), EndorsementError::Claim(_)));

    // another token type
    let t = jws::sign(&w.a, crate::jws::TYP_WIT, &w.claims()).unwrap();
    assert!(matches!(
        w.verify(&t),
        Err(EndorsementError::Token(JwsError::Type { .. }))
    ));
    // alg none, unsigned and with the real signature
    let kid = w.a.jwk().1;
    let h = json!({"alg": "none", "typ": TYP_ENDORSEMENT, "kid": kid.as_str()});
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
    let unsigned = format!("{}.{}.", enc(&h), enc(&w.claims()));
    assert_eq!(
        w.verify(&unsigned).unwrap_err(),
        EndorsementError::Token(JwsError::Format)
    );
    assert!(matches!(
        w.verify(&forge(&w.a, &h, &w.claims())),
        Err(EndorsementError::Token(JwsError::Algorithm(_)))
    ));
    assert!(matches!(
        w.verify("not a token"),
        Err(EndorsementError::Token(JwsError::Format))
    ));
}
