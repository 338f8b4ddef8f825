use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use super::*;

fn vectors(name: &str) -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/wycheproof")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn point(group: &serde_json::Value) -> Vec<u8> {
    hex(group["publicKey"]["uncompressed"].as_str().unwrap())
}

/// Raw r‖s → DER keeps every valid Wycheproof signature valid for the DER verifier.
#[test]
fn raw_to_der_agrees_with_wycheproof() {
    let v = vectors("ecdsa_secp256r1_sha256_p1363_test.json");
    let mut checked = 0;
    for g in v["testGroups"].as_array().unwrap() {
        let key = point(g);
        for t in g["tests"].as_array().unwrap() {
            let (msg, sig) = (
                hex(t["msg"].as_str().unwrap()),
                hex(t["sig"].as_str().unwrap()),
            );
            let valid = t["result"] == "valid";
            let raw_ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
                .verify(&msg, &sig)
                .is_ok();
            assert_eq!(raw_ok, valid, "tc {}", t["tcId"]);
            if sig.len() == 64 {
                let der = ecdsa_raw_to_der(&sig).unwrap();
                let der_ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
                    .verify(&msg, &der)
                    .is_ok();
                assert_eq!(der_ok, valid, "tc {} through DER", t["tcId"]);
                assert_eq!(
                    ecdsa_der_to_raw(&der).map(|r| r.to_vec()),
                    Some(sig.clone())
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}

/// DER → raw refuses every BER trick the Wycheproof DER file carries, and keeps valid ones valid.
#[test]
fn der_to_raw_agrees_with_wycheproof() {
    let v = vectors("ecdsa_secp256r1_sha256_test.json");
    for g in v["testGroups"].as_array().unwrap() {
        let key = point(g);
        for t in g["tests"].as_array().unwrap() {
            let (msg, sig) = (
                hex(t["msg"].as_str().unwrap()),
                hex(t["sig"].as_str().unwrap()),
            );
            let accepted = ecdsa_der_to_raw(&sig).is_some_and(|raw| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
                    .verify(&msg, &raw)
                    .is_ok()
            });
            match t["result"].as_str().unwrap() {
                "valid" => assert!(accepted, "tc {} valid but refused", t["tcId"]),
                "invalid" => assert!(
                    !accepted,
                    "tc {} invalid but accepted: {}",
                    t["tcId"], t["comment"]
                ),
                _ => {} // "acceptable": either is fine
            }
        }
    }
}

/// The suite every signer backend passes.
pub(crate) fn signer_suite(s: &dyn Signer) {
    let msg = b"accord signer suite";
    let raw = s.sign_raw(msg).unwrap();
    let x509 = s.sign_x509(msg).unwrap();
    match s.algorithm() {
        SignerAlgorithm::EcdsaP256Sha256 => {
            assert_eq!(raw.len(), 64);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, s.public_key())
                .verify(msg, &raw)
                .unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, s.public_key())
                .verify(msg, &x509)
                .unwrap();
            assert!(
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, s.public_key())
                    .verify(b"other", &raw)
                    .is_err()
            );
        }
        SignerAlgorithm::Ed25519 => {
            assert_eq!(raw, x509);
            UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, s.public_key())
                .verify(msg, &raw)
                .unwrap();
        }
    }
    // the SPKI parses as the key it names
    let spki = s.spki_der();
    let (_, parsed) = <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
        _,
    >>::from_der(&spki)
    .unwrap();
    assert_eq!(parsed.subject_public_key.data.as_ref(), s.public_key());
    // a certificate rcgen signs with it verifies under its key
    let mut params = rcgen::CertificateParams::new(vec!["suite.example".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&RcgenKey(s)).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    c.verify_signature(None).unwrap();
    // and its JWK thumbprint names it
    let (jwk, kid) = s.jwk();
    assert_eq!(jwk.kid.as_deref(), Some(kid.as_str()));
}

#[test]
fn the_development_file_signer_passes_the_suite() {
    let (p256, der) = DevFileSigner::generate_p256().unwrap();
    signer_suite(&p256);
    let again = DevFileSigner::from_pkcs8(&der, "x").unwrap();
    assert_eq!(again.public_key(), p256.public_key());
    let (_, ed) = accord_events::Ed25519Key::generate().unwrap();
    signer_suite(&DevFileSigner::from_pkcs8(&ed, "x").unwrap());
    assert!(DevFileSigner::from_pkcs8(b"not a key", "x").is_err());
}
