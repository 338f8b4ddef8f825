use super::*;

#[test]
fn private_jwk_members_are_refused() {
    // RFC 8037 A.1: the private Ed25519 key, with its private member `d`
    let private = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    assert!(serde_json::from_str::<PublicJwk>(private).is_err());
    let public =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    assert!(serde_json::from_str::<PublicJwk>(public).is_ok());
    for member in ["p", "q", "dp", "dq", "qi", "k", "oth"] {
        let rsa = format!(r#"{{"kty":"RSA","n":"AQAB","e":"AQAB","{member}":"AQAB"}}"#);
        assert!(serde_json::from_str::<PublicJwk>(&rsa).is_err(), "{member}");
    }
}

#[test]
fn timestamps_have_one_spelling() {
    let t = Timestamp::parse("2026-11-26T09:03:19.123456Z").unwrap();
    assert_eq!(t.to_string(), "2026-11-26T09:03:19.123456Z");
    for bad in [
        "2026-11-26T09:03:19Z",
        "2026-11-26T09:03:19.123Z",
        "2026-11-26T09:03:19.123456+00:00",
        "2026-11-26 09:03:19.123456Z",
        "2026-11-26T09:03:19.1234567Z",
    ] {
        assert!(Timestamp::parse(bad).is_err(), "{bad}");
    }
    let now = Timestamp::now();
    assert_eq!(Timestamp::parse(&now.to_string()).unwrap(), now);
}

#[test]
fn digests_and_traceparents_parse_strictly() {
    let d = Digest::sha256(b"abc");
    assert_eq!(
        d.to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    assert!(
        Digest::parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")
            .is_err()
    );
    assert!(Digest::parse("sha1:abc").is_err());
    let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tp.span_id(), "00f067aa0ba902b7");
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        assert!(TraceParent::parse(bad).is_err(), "{bad}");
    }
}
