//! The token verifier against the RFC 8725 checklist (standards.md §8).

use accord_events::Ed25519Key;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use super::*;
use crate::signer::DevFileSigner;

fn es256() -> DevFileSigner {
    DevFileSigner::generate_p256().unwrap().0
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims() -> Value {
    json!({"sub": "spiffe://org-a.example/agent/x", "exp": now() + 60, "iat": now()})
}

/// A token with this header and these claims, signed correctly by `s`.
fn forge(s: &DevFileSigner, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = s.sign_raw(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

#[test]
fn tokens_round_trip_for_both_algorithms() {
    let p = es256();
    let t = sign(&p, TYP_WIT, &claims()).unwrap();
    let v = verify(&t, TYP_WIT, &VerifyingKey::of_signer(&p), now()).unwrap();
    assert_eq!(v.claims["sub"], "spiffe://org-a.example/agent/x");
    assert_eq!(v.kid.as_deref(), Some(p.jwk().1.as_str()));
    assert_eq!(peek_kid(&t).unwrap(), v.kid);
    let (_, der) = Ed25519Key::generate().unwrap();
    let ed = DevFileSigner::from_pkcs8(&der, "x").unwrap();
    let t = sign(&ed, TYP_WPT, &claims()).unwrap();
    verify(&t, TYP_WPT, &VerifyingKey::of_signer(&ed), now()).unwrap();
    // a JWK of the key verifies the same
    let key = VerifyingKey::from_jwk(&ed.jwk().0).unwrap();
    verify(&t, TYP_WPT, &key, now()).unwrap();
}

#[test]
fn the_rfc_8725_checklist_is_refused() {
    let s = es256();
    let key = VerifyingKey::of_signer(&s);
    let c = claims().to_string();
    let good = |h: &str| forge(&s, h, &c);
    let err = |t: &str| verify(t, TYP_WIT, &key, now()).unwrap_err();

    // 1, 3: alg none in every spelling, with and without a signature
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{alg}","typ":"wit+jwt"}}"#);
        let unsigned = format!("{}.{}.", B64.encode(&h), B64.encode(&c));
        assert_eq!(err(&unsigned), JwsError::Format);
        assert!(matches!(err(&good(&h)), JwsError::Algorithm(_)));
    }
    // 2, 4: the algorithm comes from the key, not the header (HS256, RS256, EdDSA, es256)
    for alg in ["HS256", "RS256", "EdDSA", "es256"] {
        let h = format!(r#"{{"alg":"{alg}","typ":"wit+jwt"}}"#);
        assert!(matches!(err(&good(&h)), JwsError::Algorithm(_)), "{alg}");
    }
    // 6, 17: five parts (JWE), JSON serialization, characters outside base64url, padding
    assert_eq!(err("a.b.c.d.e"), JwsError::Format);
    assert_eq!(err(r#"{"payload":"x","signatures":[]}"#), JwsError::Format);
    let t = good(r#"{"alg":"ES256","typ":"wit+jwt"}"#);
    assert_eq!(err(&format!("{t}=")), JwsError::Format);
    assert_eq!(err(&format!(" {t}")), JwsError::Format);
    // 8: duplicate members, in the header and the claims; invalid UTF-8
    assert!(matches!(
        err(&good(r#"{"alg":"ES256","typ":"wit+jwt","typ":"wit+jwt"}"#)),
        JwsError::Header(_)
    ));
    let dup = forge(
        &s,
        r#"{"alg":"ES256","typ":"wit+jwt"}"#,
        &format!(r#"{{"sub":"a","sub":"b","exp":{}}}"#, now() + 60),
    );
    assert!(matches!(err(&dup), JwsError::Claims(_)));
    let input = format!(
        "{}.{}",
        B64.encode(r#"{"alg":"ES256","typ":"wit+jwt"}"#),
        B64.encode([0xff, 0xfe, b'{', b'}'])
    );
    let bad_utf8 = format!(
        "{input}.{}",
        B64.encode(s.sign_raw(input.as_bytes()).unwrap())
    );
    assert!(matches!(err(&bad_utf8), JwsError::Claims(_)));
    // 10, 14, 15: another token type, or a bare JWT, is not this one
    for typ in ["wpt+jwt", "JWT", "at+jwt", "txntoken+jwt", ""] {
        let h = format!(r#"{{"alg":"ES256","typ":"{typ}"}}"#);
        assert!(matches!(err(&good(&h)), JwsError::Type { .. }), "{typ}");
    }
    assert!(
        verify(
            &good(r#"{"alg":"ES256","typ":"application/WIT+JWT"}"#),
            TYP_WIT,
            &key,
            now()
        )
        .is_ok()
    );
    // 13: jku, x5u, jwk, crit headers are refused, never followed
    for extra in [
        r#""jku":"https://evil/jwks""#,
        r#""x5u":"http://127.0.0.1/""#,
        r#""jwk":{}"#,
        r#""crit":["exp"]"#,
    ] {
        let h = format!(r#"{{"alg":"ES256","typ":"wit+jwt",{extra}}}"#);
        assert!(matches!(err(&good(&h)), JwsError::Header(_)), "{extra}");
    }
    // a kid that is an injection attempt is only a string: the key is chosen by the caller
    let h = r#"{"alg":"ES256","typ":"wit+jwt","kid":"' OR 1=1 --/../../etc/passwd"}"#;
    assert!(verify(&good(h), TYP_WIT, &key, now()).is_ok());
    // signature by another key, or over other bytes
    let other = forge(&es256(), r#"{"alg":"ES256","typ":"wit+jwt"}"#, &c);
    assert_eq!(err(&other), JwsError::Signature);
    let (h, rest) = t.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let swapped = format!(
        "{h}.{}.{sig}",
        B64.encode(r#"{"sub":"admin","exp":9999999999}"#)
    );
    assert_eq!(err(&swapped), JwsError::Signature);
    // oversized
    assert!(matches!(
        err(&"a".repeat(MAX_TOKEN_BYTES + 1)),
        JwsError::TooLarge(_)
    ));
}

#[test]
fn time_claims_are_checked_with_bounded_skew() {
    let s = es256();
    let key = VerifyingKey::of_signer(&s);
    let h = r#"{"alg":"ES256","typ":"wit+jwt"}"#;
    let at = |c: Value| verify(&forge(&s, h, &c.to_string()), TYP_WIT, &key, now());
    assert_eq!(
        at(json!({"sub": "x"})).unwrap_err(),
        JwsError::Claims("exp is required".into())
    );
    assert_eq!(
        at(json!({"exp": now() - SKEW_SECS - 5})).unwrap_err(),
        JwsError::Expired
    );
    assert!(at(json!({"exp": now() - 5})).is_ok());
    assert_eq!(
        at(json!({"exp": now() + 600, "nbf": now() + SKEW_SECS + 30})).unwrap_err(),
        JwsError::NotYetValid
    );
    assert_eq!(
        at(json!({"exp": now() + 600, "iat": now() + 3600})).unwrap_err(),
        JwsError::NotYetValid
    );
    assert!(matches!(
        at(json!({"exp": "tomorrow"})).unwrap_err(),
        JwsError::Claims(_)
    ));
}

#[test]
fn jwks_keys_map_to_one_algorithm() {
    let s = es256();
    let (mut jwk, _) = s.jwk();
    jwk.alg = Some("RS256".into());
    assert!(VerifyingKey::from_jwk(&jwk).is_err());
    jwk.alg = None;
    jwk.x = Some(B64.encode([1u8; 31]));
    assert!(VerifyingKey::from_jwk(&jwk).is_err());
    jwk.kty = "RSA".into();
    assert!(VerifyingKey::from_jwk(&jwk).is_err());
}

#[test]
fn deep_or_duplicate_json_is_refused() {
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    assert!(parse_object(format!(r#"{{"a":{deep}}}"#).as_bytes()).is_err());
    assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_err());
    assert!(parse_object(br#"{"a":1} x"#).is_err());
    assert!(parse_object(br#"[1]"#).is_err());
    assert!(parse_object(br#"{"a":{"b":[1,{"c":null}]}}"#).is_ok());
}

/// Found by the `jws_verify` fuzz target: a 33-digit number parsed, written back and parsed
/// again must be the same number (serde_json's `float_roundtrip`), or a verifier and a signer
/// could read different claims from the same text.
#[test]
fn numbers_survive_a_round_trip() {
    let text = br#"{"":277777777777777777777777777777777,"b":2.7777777777777778e32,"c":0.1}"#;
    let m = parse_object(text).unwrap();
    let again = parse_object(&serde_json::to_vec(&m).unwrap()).unwrap();
    assert_eq!(m, again);
    assert_eq!(m["b"].as_f64(), Some(2.777_777_777_777_777_8e32));
}

/// An RSA-2048 key of aws-lc-rs, its JWK (RFC 7638 thumbprint as `kid`), and a signer of
/// compact JWS with any header.
fn rsa() -> (aws_lc_rs::signature::RsaKeyPair, PublicJwk) {
    use aws_lc_rs::signature::KeyPair;
    let key = aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let (jwk, _) = crate::csr::jwk_of(
        accord_events::catalogue::KeyAlgorithm::Rsa2048,
        key.public_key().as_ref(),
    )
    .unwrap();
    (key, jwk)
}

fn forge_rs256(key: &aws_lc_rs::signature::RsaKeyPair, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64.encode(sig))
}

#[test]
fn rs256_verifies_under_an_rsa_jwk() {
    let (key, jwk) = rsa();
    let vk = VerifyingKey::from_jwk(&jwk).unwrap();
    assert_eq!(vk.alg(), "RS256");
    let c = claims().to_string();
    let t = forge_rs256(&key, r#"{"alg":"RS256","typ":"JWT"}"#, &c);
    verify_jwt(&t, &vk, now()).unwrap();
    // the algorithm still comes from the key: an RS256 token under an EC key, and back
    let ec = VerifyingKey::of_signer(&es256());
    assert!(matches!(
        verify_jwt(&t, &ec, now()),
        Err(JwsError::Algorithm(_))
    ));
    let t = forge_rs256(&key, r#"{"alg":"ES256","typ":"JWT"}"#, &c);
    assert!(matches!(
        verify_jwt(&t, &vk, now()),
        Err(JwsError::Algorithm(_))
    ));
    // another RSA key's signature
    let (other, _) = rsa();
    let t = forge_rs256(&other, r#"{"alg":"RS256","typ":"JWT"}"#, &c);
    assert_eq!(verify_jwt(&t, &vk, now()), Err(JwsError::Signature));
}

#[test]
fn rsa_jwks_are_bounded() {
    let (_, jwk) = rsa();
    let with = |n: Vec<u8>, e: Vec<u8>| PublicJwk {
        n: Some(B64.encode(n)),
        e: Some(B64.encode(e)),
        ..jwk.clone()
    };
    let mut n1024 = vec![0xc5u8; 128];
    n1024[127] |= 1;
    let e = vec![1, 0, 1];
    let err = VerifyingKey::from_jwk(&with(n1024, e.clone())).unwrap_err();
    assert!(
        matches!(err, JwsError::Key(ref w) if w.contains("1024 bits")),
        "{err:?}"
    );
    // 2047 bits: one short
    let mut n2047 = vec![0x7fu8; 256];
    n2047[255] |= 1;
    assert!(VerifyingKey::from_jwk(&with(n2047, e.clone())).is_err());
    // more than 8192 bits
    assert!(VerifyingKey::from_jwk(&with(vec![0xffu8; 1025], e)).is_err());
    // even, one, too long exponents; missing members
    let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref().unwrap()).unwrap();
    for e in [vec![1, 0, 0], vec![1], vec![], vec![1, 0, 0, 0, 1]] {
        assert!(
            VerifyingKey::from_jwk(&with(n.clone(), e.clone())).is_err(),
            "{e:?}"
        );
    }
    assert!(
        VerifyingKey::from_jwk(&PublicJwk {
            e: None,
            ..jwk.clone()
        })
        .is_err()
    );
    // an RSA JWK that names another algorithm
    assert!(
        VerifyingKey::from_jwk(&PublicJwk {
            alg: Some("PS256".into()),
            ..jwk.clone()
        })
        .is_err()
    );
    VerifyingKey::from_jwk(&PublicJwk {
        alg: Some("RS256".into()),
        ..jwk
    })
    .unwrap();
}

#[test]
fn untyped_jwts_accept_only_jwt_or_no_typ() {
    let s = es256();
    let key = VerifyingKey::of_signer(&s);
    let c = claims().to_string();
    for h in [
        r#"{"alg":"ES256"}"#,
        r#"{"alg":"ES256","typ":"JWT"}"#,
        r#"{"alg":"ES256","typ":"jwt"}"#,
        r#"{"alg":"ES256","typ":"application/jwt"}"#,
    ] {
        verify_jwt(&forge(&s, h, &c), &key, now()).unwrap();
    }
    for typ in ["at+jwt", "wit+jwt", "accord-enroll+jwt", "JOSE", ""] {
        let h = format!(r#"{{"alg":"ES256","typ":"{typ}"}}"#);
        assert!(
            matches!(
                verify_jwt(&forge(&s, &h, &c), &key, now()),
                Err(JwsError::Type { .. })
            ),
            "{typ}"
        );
    }
    let t = forge(&s, r#"{"alg":"ES256","typ":7}"#, &c);
    assert!(matches!(
        verify_jwt(&t, &key, now()),
        Err(JwsError::Header(_))
    ));
    // the typed verifier still wants its type: an untyped token, a JWT, are refused
    for h in [r#"{"alg":"ES256"}"#, r#"{"alg":"ES256","typ":"JWT"}"#] {
        assert!(matches!(
            verify(&forge(&s, h, &c), TYP_WIT, &key, now()),
            Err(JwsError::Type { .. })
        ));
    }
    // everything else is as strict as verify: extra header members, expiry
    let t = forge(&s, r#"{"alg":"ES256","jku":"https://x"}"#, &c);
    assert!(matches!(
        verify_jwt(&t, &key, now()),
        Err(JwsError::Header(_))
    ));
    let old = json!({"exp": now() - 3600}).to_string();
    let t = forge(&s, r#"{"alg":"ES256"}"#, &old);
    assert_eq!(verify_jwt(&t, &key, now()), Err(JwsError::Expired));
}

#[test]
fn thumbprints_and_issuers_are_read_before_verifying() {
    let s = es256();
    let (jwk, kid) = s.jwk();
    assert_eq!(thumbprint(&jwk).unwrap(), kid);
    let (_, der) = Ed25519Key::generate().unwrap();
    let ed = DevFileSigner::from_pkcs8(&der, "x").unwrap();
    assert_eq!(thumbprint(&ed.jwk().0).unwrap(), ed.jwk().1);
    // RFC 7638 §3.1 example key
    let example = PublicJwk {
        kty: "RSA".into(),
        n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
        e: Some("AQAB".into()),
        crv: None,
        x: None,
        y: None,
        kid: Some("2011-04-29".into()),
        alg: Some("RS256".into()),
        use_: None,
    };
    assert_eq!(
        thumbprint(&example).unwrap().as_str(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert!(thumbprint(&PublicJwk { n: None, ..example }).is_err());

    let t = sign(
        &s,
        TYP_WIT,
        &json!({"iss": "https://idp.example", "exp": now() + 60}),
    )
    .unwrap();
    assert_eq!(
        peek_iss(&t).unwrap().as_deref(),
        Some("https://idp.example")
    );
    let t = sign(&s, TYP_WIT, &claims()).unwrap();
    assert_eq!(peek_iss(&t).unwrap(), None);
    assert_eq!(peek_iss("a.b"), Err(JwsError::Format));
}
