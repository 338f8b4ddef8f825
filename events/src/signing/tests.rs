use super::*;
use crate::sample;

/// RFC 8032 §7.1 test 1 / RFC 8037 Appendix A.1 key.
const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

pub(crate) fn fixture_key() -> Ed25519Key {
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&SEED_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    Ed25519Key::from_seed(&seed).unwrap()
}

#[test]
fn thumbprint_matches_rfc8037() {
    // RFC 8037 Appendix A.3: the thumbprint of the A.2 public key.
    let key = fixture_key();
    assert_eq!(
        key.public().public_key,
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(
        key.kid().as_str(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn signs_and_verifies_every_event_type() {
    let key = fixture_key();
    let ring = KeyRing::trusting(&[key.public().clone()]).unwrap();
    for d in crate::CATALOGUE {
        let env = sample::envelope(d.name).unwrap();
        let signed = key.sign_event(env.clone()).unwrap();
        let verified = ring.verify(&signed.bytes).unwrap();
        assert_eq!(verified.envelope(), &env);
        assert_eq!(verified.kid(), key.kid());
        // the typed event survives the trip
        assert_eq!(
            verified.envelope().decode().unwrap(),
            sample::event(d.name).unwrap()
        );
    }
}

#[test]
fn wire_bytes_are_the_jcs_of_the_message() {
    let key = fixture_key();
    let signed = key
        .sign_event(sample::envelope("CredentialIssued").unwrap())
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&signed.bytes).unwrap();
    assert_eq!(crate::canonical::canonical_bytes(&v).unwrap(), signed.bytes);
}

#[test]
fn any_changed_byte_fails() {
    let key = fixture_key();
    let ring = KeyRing::trusting(&[key.public().clone()]).unwrap();
    let signed = key
        .sign_event(sample::envelope("CredentialRevoked").unwrap())
        .unwrap();
    let text = String::from_utf8(signed.bytes.clone()).unwrap();
    // alter the reason inside the signed envelope
    let tampered = text.replace("keyCompromise", "superseded");
    assert_ne!(tampered, text);
    assert!(matches!(
        ring.verify(tampered.as_bytes()),
        Err(VerifyError::BadSignature(_))
    ));
    // re-encoding (whitespace) changes the signed bytes too
    let v: serde_json::Value = serde_json::from_slice(&signed.bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert!(matches!(
        ring.verify(&pretty),
        Err(VerifyError::BadSignature(_))
    ));
}

#[test]
fn only_pinned_keys_count() {
    let key = fixture_key();
    let (other, _) = Ed25519Key::generate().unwrap();
    let signed = other
        .sign_event(sample::envelope("AgentSuspended").unwrap())
        .unwrap();
    let ring = KeyRing::trusting(&[key.public().clone()]).unwrap();
    assert!(matches!(
        ring.verify(&signed.bytes),
        Err(VerifyError::UnpinnedKey(_))
    ));

    // pinned but never learned
    let ring = KeyRing::new([other.kid().clone()]);
    assert!(matches!(
        ring.verify(&signed.bytes),
        Err(VerifyError::UnknownPublicKey(_))
    ));

    // a key whose public part does not hash to the pinned thumbprint is refused
    let mut ring = KeyRing::new([key.kid().clone()]);
    let mut forged = other.public().clone();
    forged.kid = key.kid().clone();
    assert!(matches!(
        ring.learn(&forged),
        Err(KeyError::ThumbprintMismatch { .. })
    ));
}

#[test]
fn garbage_is_a_parse_error() {
    let ring = KeyRing::trusting(&[fixture_key().public().clone()]).unwrap();
    for bad in [
        &b""[..],
        b"{}",
        b"[]",
        b"{\"event\":{},\"sig\":{}}",
        b"{\"event\":1,\"sig\":{\"alg\":\"Ed25519\",\"kid\":\"x\",\"value\":\"\"}}",
        b"\xff\xfe",
    ] {
        assert!(matches!(ring.verify(bad), Err(VerifyError::Parse(_))));
        assert!(parse_unverified(bad).is_err());
    }
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        parse_unverified(&big),
        Err(ParseError::TooLarge { .. })
    ));
}
