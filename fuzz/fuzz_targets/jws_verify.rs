//! The strict compact-JWS verifier and its duplicate-refusing JSON parser on outside input:
//! never a panic. Each input is also signed (as a token's claims) with the pinned key, so the
//! claim and time checks behind the signature are reached: such a token fails only on its
//! claims or its times, never on its form or its signature.
#![no_main]

use std::sync::OnceLock;

use accord_authority::jws::{self, JwsError, TYP_WIT, VerifyingKey};
use accord_authority::signer::{DevFileSigner, Signer};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

/// 2027-01-15T08:00:00Z, inside the validity of the seed tokens.
const NOW: i64 = 1_800_000_000;

/// One P-256 key for the whole run: key generation is far slower than a verification.
fn key() -> &'static (DevFileSigner, VerifyingKey) {
    static KEY: OnceLock<(DevFileSigner, VerifyingKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (signer, _) = DevFileSigner::generate_p256().expect("P-256 key");
        let key = VerifyingKey::of_signer(&signer);
        (signer, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let (signer, key) = key();
    if let Ok(m) = jws::parse_object(data) {
        // what parses re-encodes to an object that parses to the same members
        let text = serde_json::to_vec(&m).expect("encodes");
        assert_eq!(jws::parse_object(&text).as_ref(), Ok(&m));
    }
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = jws::peek_kid(token);
        let _ = jws::verify(token, TYP_WIT, key, NOW);
        let _ = jws::verify(token, jws::TYP_WPT, key, NOW);
    }

    // the input as the claims of a token the pinned key really signed
    if data.len() <= 4096 {
        let mut token = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"wit+jwt"}"#);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(data));
        let sig = signer.sign_raw(token.as_bytes()).expect("signs");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        match jws::verify(&token, TYP_WIT, key, NOW) {
            Ok(v) => {
                assert!(v.claims.contains_key("exp"));
                assert_eq!(Ok(v.claims), jws::parse_object(data));
            }
            Err(JwsError::Claims(_) | JwsError::Expired | JwsError::NotYetValid) => {}
            Err(e) => panic!("a token the key signed failed on {e:?}"),
        }
    }
});
