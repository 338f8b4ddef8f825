//! The attestation-evidence appraisal on outside input: never a panic. The input is read as a
//! token (UTF-8, lossily) under a pinned attestation key and nonce; it is also signed, as a
//! token's claims, with that key, so the profile, claim and measurement checks behind the
//! signature are reached: such a token fails only on its claims, never on its form or its
//! signature, and what appraises is self-consistent.
#![no_main]

use std::sync::OnceLock;

use accord_authority::evidence::eat::{self, EatError, Expectations, TYP_EAT};
use accord_authority::jws::{self, JwsError, VerifyingKey};
use accord_authority::signer::{DevFileSigner, Signer};
use accord_events::catalogue::ReferenceValue;
use accord_events::{Digest, MaterialId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

/// 2027-01-15T08:00:00Z, inside the validity of the seed tokens.
const NOW: i64 = 1_800_000_000;
/// The nonce of the seed tokens.
const NONCE: &str = "fuzz-nonce-0123456789";
/// A fixed Ed25519 key (PKCS#8 v1, seed 0x01..=0x20), so the seed tokens verify.
const PKCS8: [u8; 48] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
];

struct Fixture {
    signer: DevFileSigner,
    key: VerifyingKey,
    verifier: MaterialId,
    references: Vec<ReferenceValue>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let signer = DevFileSigner::from_pkcs8(&PKCS8, "(fuzz)").expect("Ed25519 key");
        let key = VerifyingKey::of_signer(&signer);
        let references = vec![
            ReferenceValue {
                component: "kernel".into(),
                digests: vec![Digest::sha256(b"kernel")],
            },
            ReferenceValue {
                component: "model-runtime".into(),
                digests: vec![Digest::sha256(b"model-runtime")],
            },
        ];
        Fixture {
            signer,
            key,
            verifier: MaterialId::parse("fuzz-verifier").expect("material id"),
            references,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let exp = Expectations {
        nonce: NONCE,
        key: &f.key,
        verifier_id: &f.verifier,
        reference_values: &f.references,
        now: NOW,
        max_age_secs: 300,
    };
    let token = String::from_utf8_lossy(data);
    if let Ok(a) = eat::appraise(&token, &exp) {
        assert_eq!(a.result.evidence, Digest::sha256(token.as_bytes()));
    }

    // the input as the claims of a token the pinned key really signed
    let Ok(claims) = jws::parse_object(data) else {
        return;
    };
    if data.len() > 4096 {
        return;
    }
    let header = format!(r#"{{"alg":"EdDSA","typ":"{TYP_EAT}"}}"#);
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(data));
    let sig = f.signer.sign_raw(token.as_bytes()).expect("signs");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    match eat::appraise(&token, &exp) {
        Ok(a) => {
            assert_eq!(
                claims.get("eat_nonce").and_then(|n| n.as_str()),
                Some(NONCE)
            );
            assert_eq!(
                claims.get("eat_profile").and_then(|p| p.as_str()),
                Some(eat::PROFILE)
            );
            // every reference component measured, nothing else
            let refs: Vec<&str> = f.references.iter().map(|r| r.component.as_str()).collect();
            assert_eq!(a.measured, refs);
            let tv = &a.result.trust_vector;
            assert_eq!(
                (tv.instance_identity, tv.executables, tv.hardware),
                (Some(2), Some(2), Some(2))
            );
            assert_eq!(tv.configuration.is_some(), a.dbgstat.is_some());
            assert_eq!(tv.file_system, None);
        }
        Err(EatError::Token(
            JwsError::Format | JwsError::Header(_) | JwsError::Signature | JwsError::Algorithm(_),
        )) => panic!("a token the key signed failed on its form"),
        Err(e) => {
            let _ = e.kind();
        }
    }
});
