//! The EAT profile and its appraisal, with real keys and real signatures: every refusal has a
//! test that signs a token which only that check can refuse.

use accord_events::Ed25519Key;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use super::*;
use crate::jws::MAX_TOKEN_BYTES;
use crate::signer::{DevFileSigner, Signer};

const NONCE: &str = "n-0123456789abcdefghijk";
const MAX_AGE: i64 = 300;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn ed25519() -> DevFileSigner {
    let (_, der) = Ed25519Key::generate().unwrap();
    DevFileSigner::from_pkcs8(&der, "(test)").unwrap()
}

fn p256() -> DevFileSigner {
    DevFileSigner::generate_p256().unwrap().0
}

fn kernel() -> Digest {
    Digest::sha256(b"vmlinuz-6.8.0-41")
}

fn runtime() -> Digest {
    Digest::sha256(b"model-runtime 2.3.1")
}

/// The verifier's reference values: two components, the kernel with two accepted digests
/// (a rollout in progress).
fn references() -> Vec<ReferenceValue> {
    vec![
        ReferenceValue {
            component: "kernel".into(),
            digests: vec![Digest::sha256(b"vmlinuz-6.8.0-40"), kernel()],
        },
        ReferenceValue {
            component: "model-runtime".into(),
            digests: vec![runtime()],
        },
    ]
}

/// Claims that appraise: profile, nonce, fresh times, both components measured.
fn good_claims() -> Value {
    let (k, r) = (kernel(), runtime());
    claims(
        NONCE,
        &[("kernel", &k), ("model-runtime", &r)],
        now() - 5,
        now() + 300,
    )
}

/// `good_claims()` with `f` applied.
fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut c = good_claims();
    f(c.as_object_mut().unwrap());
    c
}

fn sign(s: &DevFileSigner, c: &Value) -> String {
    jws::sign(s, TYP_EAT, c).unwrap()
}

/// A token with this header and these claims, correctly signed by `s`.
fn forge(s: &DevFileSigner, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = s.sign_raw(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

fn verifier() -> MaterialId {
    MaterialId::parse("acme-attest").unwrap()
}

/// Appraises `token` as the ACA would, against `key` and the test's reference values.
fn appraise_with(token: &str, key: &VerifyingKey) -> Result<Appraisal, EatError> {
    let refs = references();
    let id = verifier();
    appraise(
        token,
        &Expectations {
            nonce: NONCE,
            key,
            verifier_id: &id,
            reference_values: &refs,
            now: now(),
            max_age_secs: MAX_AGE,
        },
    )
}

/// Signs `c` with a fresh Ed25519 key and appraises it under that key.
fn check(c: &Value) -> Result<Appraisal, EatError> {
    let s = ed25519();
    appraise_with(&sign(&s, c), &VerifyingKey::of_signer(&s))
}

#[test]
fn valid_tokens_appraise_for_both_algorithms() {
    for s in [ed25519(), p256()] {
        let key = VerifyingKey::of_signer(&s);
        let before = now();
        let token = sign(&s, &good_claims());
        let a = appraise_with(&token, &key).unwrap();
        assert_eq!(a.result.verifier_id, verifier());
        assert_eq!(a.result.evidence, Digest::sha256(token.as_bytes()));
        assert!(a.result.appraised_at.unix_micros() >= before * 1_000_000);
        assert_eq!(a.result.appraised_at.unix_micros() % 1_000_000, 0);
        assert_eq!(
            a.result.trust_vector,
            TrustVector {
                instance_identity: Some(2),
                configuration: None,
                executables: Some(2),
                file_system: None,
                hardware: Some(2),
                runtime_opaque: None,
                storage_opaque: None,
                sourced_data: None,
            }
        );
        assert_eq!(a.measured, ["kernel", "model-runtime"]);
        assert_eq!(a.intuse.as_deref(), Some("csr"));
        assert_eq!(
            (a.dbgstat, a.ueid, a.swname, a.swversion),
            (None, None, None, None)
        );
    }
}

#[test]
fn the_vector_never_affirms_what_was_not_claimed() {
    // the vector as serialized: absent claims are absent, not 0 and not affirming
    let a = check(&good_claims()).unwrap();
    let v = serde_json::to_value(&a.result.trust_vector).unwrap();
    assert_eq!(
        v,
        json!({"instance_identity": 2, "executables": 2, "hardware": 2})
    );
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let signer = ed25519();
    let token = sign(&signer, &good_claims());
    // another key of the same type
    let e = appraise_with(&token, &VerifyingKey::of_signer(&ed25519())).unwrap_err();
    assert_eq!(e, EatError::Token(JwsError::Signature));
    assert_eq!(e.kind(), "eat-signature");
    // a key of another type: the header's alg is not the key's
    let e = appraise_with(&token, &VerifyingKey::of_signer(&p256())).unwrap_err();
    assert!(matches!(e, EatError::Token(JwsError::Algorithm(_))));
    assert_eq!(e.kind(), "eat-signature");
    // claims swapped under the signature
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = with(|c| {
        c.insert("eat_nonce".into(), json!("n-attacker-chosen-nonce"));
    });
    let swapped = format!("{h}.{}.{sig}", B64.encode(other.to_string()));
    assert_eq!(
        appraise_with(&swapped, &VerifyingKey::of_signer(&signer)).unwrap_err(),
        EatError::Token(JwsError::Signature)
    );
}

#[test]
fn alg_none_and_other_headers_are_refused() {
    let s = ed25519();
    let key = VerifyingKey::of_signer(&s);
    let c = good_claims().to_string();
    for alg in ["none", "None", "HS256", "ES256"] {
        let h = format!(r#"{{"alg":"{alg}","typ":"eat+jwt"}}"#);
        let unsigned = format!("{}.{}.", B64.encode(&h), B64.encode(&c));
        assert_eq!(
            appraise_with(&unsigned, &key).unwrap_err(),
            EatError::Token(JwsError::Format)
        );
        let e = appraise_with(&forge(&s, &h, &c), &key).unwrap_err();
        assert!(
            matches!(e, EatError::Token(JwsError::Algorithm(_))),
            "{alg}"
        );
    }
    // a header member other than alg, typ, kid
    let h = r#"{"alg":"EdDSA","typ":"eat+jwt","x5c":["AAAA"]}"#;
    let e = appraise_with(&forge(&s, h, &c), &key).unwrap_err();
    assert!(matches!(e, EatError::Token(JwsError::Header(_))));
    assert_eq!(e.kind(), "eat-malformed");
    // the media type form of typ and a kid are fine
    let h = r#"{"alg":"EdDSA","typ":"application/eat+jwt","kid":"k1"}"#;
    appraise_with(&forge(&s, h, &c), &key).unwrap();
}

#[test]
fn another_token_type_is_refused() {
    let s = ed25519();
    let key = VerifyingKey::of_signer(&s);
    let c = good_claims().to_string();
    for typ in [
        "JWT",
        "wit+jwt",
        "eat+cwt",
        "eat-jwt",
        "application/eat-ucs+json",
        "",
    ] {
        let h = format!(r#"{{"alg":"EdDSA","typ":"{typ}"}}"#);
        let e = appraise_with(&forge(&s, &h, &c), &key).unwrap_err();
        assert!(matches!(e, EatError::Token(JwsError::Type { .. })), "{typ}");
        assert_eq!(e.kind(), "eat-malformed");
    }
    let e = appraise_with(&forge(&s, r#"{"alg":"EdDSA"}"#, &c), &key).unwrap_err();
    assert!(matches!(e, EatError::Token(JwsError::Type { .. })));
}

#[test]
fn a_nonce_other_than_the_one_issued_is_refused() {
    let e = check(&with(|c| {
        c.insert("eat_nonce".into(), json!("n-0123456789abcdefghijK"));
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Nonce);
    assert_eq!(e.kind(), "eat-nonce");
    // the issued nonce inside an array, or under the JWT name, is not this profile's form
    let e = check(&with(|c| {
        c.insert("eat_nonce".into(), json!([NONCE]));
    }))
    .unwrap_err();
    assert!(matches!(e, EatError::Claim(_)));
    let e = check(&with(|c| {
        c.remove("eat_nonce");
        c.insert("nonce".into(), json!(NONCE));
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Claim("eat_nonce is required".into()));
    // too short, too long, not a string
    for bad in [json!("1234567"), json!("x".repeat(89)), json!(12345678)] {
        let e = check(&with(|c| {
            c.insert("eat_nonce".into(), bad.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Claim(_)), "{bad}");
    }
}

#[test]
fn the_nonce_bounds_are_those_of_rfc_9711() {
    for n in ["12345678".to_owned(), "y".repeat(88)] {
        let s = ed25519();
        let key = VerifyingKey::of_signer(&s);
        let c = with(|c| {
            c.insert("eat_nonce".into(), json!(n));
        });
        let refs = references();
        let id = verifier();
        let exp = Expectations {
            nonce: &n,
            key: &key,
            verifier_id: &id,
            reference_values: &refs,
            now: now(),
            max_age_secs: MAX_AGE,
        };
        appraise(&sign(&s, &c), &exp).unwrap();
    }
}

#[test]
fn stale_evidence_is_refused() {
    let e = check(&with(|c| {
        c.insert("iat".into(), json!(now() - MAX_AGE - 10));
    }))
    .unwrap_err();
    assert!(matches!(e, EatError::Stale { age } if age >= MAX_AGE + 10));
    assert_eq!(e.kind(), "eat-stale");
    // at the edge of the window it is still fresh
    check(&with(|c| {
        c.insert("iat".into(), json!(now() - MAX_AGE + 5));
    }))
    .unwrap();
    // an expired token
    let e = check(&with(|c| {
        c.insert("exp".into(), json!(now() - jws::SKEW_SECS - 5));
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Token(JwsError::Expired));
    assert_eq!(e.kind(), "eat-stale");
    // the oldest iat there is does not overflow the age
    let e = check(&with(|c| {
        c.insert("iat".into(), json!(i64::MIN));
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Stale { age: i64::MAX });
}

#[test]
fn evidence_from_the_future_is_refused() {
    let e = check(&with(|c| {
        c.insert("iat".into(), json!(now() + jws::SKEW_SECS + 30));
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Token(JwsError::NotYetValid));
    assert_eq!(e.kind(), "eat-stale");
    // within the skew it is accepted
    check(&with(|c| {
        c.insert("iat".into(), json!(now() + 10));
    }))
    .unwrap();
}

#[test]
fn iat_is_required() {
    let e = check(&with(|c| {
        c.remove("iat");
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Claim("iat is required".into()));
    let e = check(&with(|c| {
        c.insert("iat".into(), json!("yesterday"));
    }))
    .unwrap_err();
    assert!(matches!(e, EatError::Token(JwsError::Claims(_))));
}

#[test]
fn another_profile_is_refused() {
    for p in [
        json!("tag:accord.dev,2026:agent-eat#2"),
        json!("https://accord.dev/agent-eat"),
        json!("tag:ietf.org,2026:rats/ear#03"),
        json!(["tag:accord.dev,2026:agent-eat#1"]),
    ] {
        let e = check(&with(|c| {
            c.insert("eat_profile".into(), p.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Profile(_)), "{p}");
        assert_eq!(e.kind(), "eat-profile");
    }
    let e = check(&with(|c| {
        c.remove("eat_profile");
    }))
    .unwrap_err();
    assert!(matches!(e, EatError::Profile(_)));
}

#[test]
fn a_measurement_off_the_reference_values_is_refused() {
    let e = check(&with(|c| {
        c.insert(
            "measurements".into(),
            json!([
                {"component": "kernel", "digest": Digest::sha256(b"rootkit").to_string()},
                {"component": "model-runtime", "digest": runtime().to_string()},
            ]),
        );
    }))
    .unwrap_err();
    assert_eq!(
        e,
        EatError::MeasurementMismatch {
            component: "kernel".into()
        }
    );
    assert_eq!(e.kind(), "eat-measurement");
    // another component's digest is not this one's
    let e = check(&with(|c| {
        c.insert(
            "measurements".into(),
            json!([
                {"component": "kernel", "digest": kernel().to_string()},
                {"component": "model-runtime", "digest": kernel().to_string()},
            ]),
        );
    }))
    .unwrap_err();
    assert_eq!(
        e,
        EatError::MeasurementMismatch {
            component: "model-runtime".into()
        }
    );
    // the other accepted kernel digest matches too
    let (old, r) = (Digest::sha256(b"vmlinuz-6.8.0-40"), runtime());
    check(&claims(
        NONCE,
        &[("kernel", &old), ("model-runtime", &r)],
        now(),
        now() + 60,
    ))
    .unwrap();
}

#[test]
fn an_unknown_component_is_refused() {
    let (k, r, x) = (kernel(), runtime(), Digest::sha256(b"debug-shell"));
    let c = claims(
        NONCE,
        &[("kernel", &k), ("model-runtime", &r), ("debug-shell", &x)],
        now(),
        now() + 60,
    );
    let e = check(&c).unwrap_err();
    assert_eq!(e, EatError::UnknownComponent("debug-shell".into()));
    assert_eq!(e.kind(), "eat-measurement");
    // a verifier without reference values accepts nothing
    let s = ed25519();
    let key = VerifyingKey::of_signer(&s);
    let id = verifier();
    let exp = Expectations {
        nonce: NONCE,
        key: &key,
        verifier_id: &id,
        reference_values: &[],
        now: now(),
        max_age_secs: MAX_AGE,
    };
    assert_eq!(
        appraise(&sign(&s, &good_claims()), &exp).unwrap_err(),
        EatError::UnknownComponent("kernel".into())
    );
}

#[test]
fn a_missing_component_is_refused() {
    let k = kernel();
    let e = check(&claims(NONCE, &[("kernel", &k)], now(), now() + 60)).unwrap_err();
    assert_eq!(e, EatError::MissingMeasurement("model-runtime".into()));
    assert_eq!(e.kind(), "eat-measurement");
}

#[test]
fn a_component_measured_twice_is_refused() {
    let (k, r) = (kernel(), runtime());
    let c = claims(
        NONCE,
        &[("kernel", &k), ("model-runtime", &r), ("kernel", &k)],
        now(),
        now() + 60,
    );
    let e = check(&c).unwrap_err();
    assert_eq!(e, EatError::DuplicateComponent("kernel".into()));
    assert_eq!(e.kind(), "eat-claim");
}

#[test]
fn an_oversized_measurements_array_is_refused() {
    let d = kernel();
    let names: Vec<String> = (0..=MAX_MEASUREMENTS).map(|i| format!("c{i}")).collect();
    let list: Vec<(&str, &Digest)> = names.iter().map(|n| (n.as_str(), &d)).collect();
    let c = claims(NONCE, &list, now(), now() + 60);
    // as a token it is over the size bound before anything is parsed
    let e = check(&c).unwrap_err();
    assert!(matches!(e, EatError::Token(JwsError::TooLarge(n)) if n > MAX_TOKEN_BYTES));
    // the count bound holds on its own
    assert_eq!(
        measurements_of(c.as_object().unwrap()).unwrap_err(),
        EatError::TooManyMeasurements(MAX_MEASUREMENTS + 1)
    );
    let c = claims(NONCE, &list[..MAX_MEASUREMENTS], now(), now() + 60);
    assert_eq!(
        measurements_of(c.as_object().unwrap()).unwrap().len(),
        MAX_MEASUREMENTS
    );
}

#[test]
fn malformed_measurements_are_refused() {
    let k = kernel().to_string();
    let upper = k.to_uppercase().replace("SHA256", "sha256");
    for bad in [
        json!(null),
        json!({}),
        json!([]),
        json!("kernel"),
        json!([["kernel", k]]),
        json!([{"component": "kernel"}]),
        json!([{"component": "kernel", "digest": k, "extra": 1}]),
        json!([{"component": "Kernel", "digest": k}]),
        json!([{"component": "", "digest": k}]),
        json!([{"component": "a/b", "digest": k}]),
        json!([{"component": "k".repeat(65), "digest": k}]),
        json!([{"component": "kernel", "digest": upper}]),
        json!([{"component": "kernel", "digest": k.replace("sha256:", "sha384:")}]),
        json!([{"component": "kernel", "digest": &k[..60]}]),
        json!([{"component": 7, "digest": k}]),
    ] {
        let e = check(&with(|c| {
            c.insert("measurements".into(), bad.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Claim(_)), "{bad}: {e:?}");
        assert_eq!(e.kind(), "eat-claim");
    }
    let e = check(&with(|c| {
        c.remove("measurements");
    }))
    .unwrap_err();
    assert_eq!(e, EatError::Claim("measurements is required".into()));
}

#[test]
fn intuse_must_be_certificate_issuance() {
    for ok in [json!("csr"), json!("certificate-issuance"), json!(4)] {
        let a = check(&with(|c| {
            c.insert("intuse".into(), ok.clone());
        }))
        .unwrap();
        assert_eq!(a.intuse.as_deref(), Some("csr"), "{ok}");
    }
    let a = check(&with(|c| {
        c.remove("intuse");
    }))
    .unwrap();
    assert_eq!(a.intuse, None);
    for bad in [
        json!("generic"),
        json!("registration"),
        json!("pop"),
        json!(1),
        json!(5),
        json!(4.0),
        json!("4"),
        json!(["csr"]),
        json!(null),
    ] {
        let e = check(&with(|c| {
            c.insert("intuse".into(), bad.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Claim(_)), "{bad}");
    }
}

#[test]
fn dbgstat_sets_the_configuration_claim() {
    let cases = [
        (json!("enabled"), "enabled", 32),
        (json!(0), "enabled", 32),
        (json!("disabled"), "disabled", 2),
        (json!("disabled-since-boot"), "disabled-since-boot", 2),
        (json!(3), "disabled-permanently", 2),
        (
            json!("disabled-fully-and-permanently"),
            "disabled-fully-and-permanently",
            2,
        ),
    ];
    for (v, name, tier) in cases {
        let a = check(&with(|c| {
            c.insert("dbgstat".into(), v.clone());
        }))
        .unwrap();
        assert_eq!(a.dbgstat.as_deref(), Some(name), "{v}");
        assert_eq!(a.result.trust_vector.configuration, Some(tier), "{v}");
        // the rest of the vector does not move
        assert_eq!(a.result.trust_vector.executables, Some(2));
    }
    for bad in [
        json!("Enabled"),
        json!(5),
        json!(-1),
        json!(true),
        json!("off"),
    ] {
        let e = check(&with(|c| {
            c.insert("dbgstat".into(), bad.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Claim(_)), "{bad}");
    }
}

#[test]
fn ueid_and_software_claims_are_checked_and_kept() {
    let ueid = B64.encode([&[0x01u8][..], &[0xab; 16]].concat());
    let a = check(&with(|c| {
        c.insert("ueid".into(), json!(ueid));
        c.insert("swname".into(), json!("acme-agent-os"));
        c.insert("swversion".into(), json!(["4.2.0", 16384]));
    }))
    .unwrap();
    assert_eq!(a.ueid.as_deref(), Some(ueid.as_str()));
    assert_eq!(a.swname.as_deref(), Some("acme-agent-os"));
    assert_eq!(a.swversion.as_deref(), Some("4.2.0"));
    let a = check(&with(|c| {
        c.insert("swversion".into(), json!("4.2.1"));
    }))
    .unwrap();
    assert_eq!(a.swversion.as_deref(), Some("4.2.1"));

    for (name, bad) in [
        ("ueid", json!(B64.encode([0x01u8; 6]))),  // 8 characters
        ("ueid", json!(B64.encode([0x01u8; 34]))), // 46 characters
        ("ueid", json!(B64.encode([0x07u8; 17]))), // no such UEID type
        ("ueid", json!(format!("{ueid}="))),
        ("ueid", json!("AQ+rq6urq6urq6urq6urq6ur")),
        ("ueid", json!(17)),
        ("swname", json!("")),
        ("swname", json!("n".repeat(MAX_SW_LEN + 1))),
        ("swname", json!(["acme"])),
        ("swversion", json!([])),
        ("swversion", json!(["1.0", "semver"])),
        ("swversion", json!(["1.0", 1, 2])),
        ("swversion", json!(1)),
    ] {
        let e = check(&with(|c| {
            c.insert(name.into(), bad.clone());
        }))
        .unwrap_err();
        assert!(matches!(e, EatError::Claim(_)), "{name} {bad}");
    }
}

#[test]
fn unknown_claims_are_ignored() {
    let a = check(&with(|c| {
        c.insert("oemid".into(), json!(76543));
        c.insert("submods".into(), json!({"gpu": {"dbgstat": "enabled"}}));
        c.insert("ai_model_id".into(), json!("urn:acme:model:x"));
    }))
    .unwrap();
    // a submodule's debug status is not the environment's
    assert_eq!(a.dbgstat, None);
    assert_eq!(a.result.trust_vector.configuration, None);
}

#[test]
fn an_unrepresentable_clock_is_a_typed_error() {
    let s = ed25519();
    let key = VerifyingKey::of_signer(&s);
    let (k, r) = (kernel(), runtime());
    let far = i64::MAX / 2;
    let c = claims(NONCE, &[("kernel", &k), ("model-runtime", &r)], far, far);
    let refs = references();
    let id = verifier();
    let exp = Expectations {
        nonce: NONCE,
        key: &key,
        verifier_id: &id,
        reference_values: &refs,
        now: far,
        max_age_secs: MAX_AGE,
    };
    let e = appraise(&sign(&s, &c), &exp).unwrap_err();
    assert_eq!(e, EatError::Clock(far));
    assert_eq!(e.kind(), "eat-clock");
}

#[test]
fn garbage_is_a_typed_error() {
    let key = VerifyingKey::of_signer(&ed25519());
    for t in [
        "",
        ".",
        "a.b.c",
        "..",
        "eyJ9.e30.AA",
        &"A".repeat(MAX_TOKEN_BYTES + 1),
    ] {
        let e = appraise_with(t, &key).unwrap_err();
        assert!(matches!(e, EatError::Token(_)), "{t}");
    }
}

/// A token its key really signed with an `exp` near `i64::MAX` once overflowed `exp + skew` in
/// `jws::verify` (a panic where overflow checks are on; found writing this module). The
/// attester holds the key, so a compromised environment could send one.
#[test]
fn an_exp_at_the_end_of_time_is_no_panic() {
    // a far expiry is valid: freshness comes from iat and the nonce
    check(&with(|c| {
        c.insert("exp".into(), json!(i64::MAX));
    }))
    .unwrap();
}
