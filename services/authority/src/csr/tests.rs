use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

use super::*;

const STRICT: CsrPolicy = CsrPolicy { allow_rsa: false };

fn csr(alg: &'static rcgen::SignatureAlgorithm, sans: Vec<String>, ca: bool) -> (KeyPair, Vec<u8>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(sans).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let req = params.serialize_request(&key).unwrap();
    (key, req.der().to_vec())
}

#[test]
fn p256_and_ed25519_requests_pass_with_their_key() {
    for alg in [&PKCS_ECDSA_P256_SHA256, &PKCS_ED25519] {
        let (key, der) = csr(alg, vec![], false);
        let checked = check(&der, &STRICT).unwrap();
        assert_eq!(checked.public_key, key.public_key_raw());
        assert_eq!(checked.digest, Digest::sha256(&der));
        // PEM works the same
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(check(pem.as_bytes(), &STRICT).unwrap(), checked);
    }
}

#[test]
fn a_tampered_signature_is_no_proof() {
    let (_, mut der) = csr(&PKCS_ECDSA_P256_SHA256, vec![], false);
    let last = der.len() - 3;
    der[last] ^= 0x01;
    assert!(matches!(
        check(&der, &STRICT),
        Err(CsrError::BadSignature | CsrError::NotDer(_))
    ));
    let (_, mut der) = csr(&PKCS_ED25519, vec![], false);
    let last = der.len() - 1;
    der[last] ^= 0x80;
    assert_eq!(check(&der, &STRICT), Err(CsrError::BadSignature));
}

#[test]
fn names_and_ca_requests_are_refused() {
    let (_, der) = csr(&PKCS_ECDSA_P256_SHA256, vec!["evil.example".into()], false);
    assert_eq!(check(&der, &STRICT), Err(CsrError::RequestsNames));
    let (_, der) = csr(&PKCS_ECDSA_P256_SHA256, vec![], true);
    assert_eq!(check(&der, &STRICT), Err(CsrError::RequestsCa));
}

#[test]
fn not_strict_der_is_refused() {
    let (_, der) = csr(&PKCS_ED25519, vec![], false);
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        check(&trailing, &STRICT),
        Err(CsrError::NotDer(_))
    ));
    // the outer length in a longer form than needed
    assert_eq!(der[0], 0x30);
    let (len, header) = match der[1] {
        0x81 => (der[2] as usize, 3),
        0x82 => ((der[2] as usize) << 8 | der[3] as usize, 4),
        n => (n as usize, 2),
    };
    let mut long = vec![0x30, 0x84, 0, 0, (len >> 8) as u8, len as u8];
    long.extend_from_slice(&der[header..]);
    assert!(check(&long, &STRICT).is_err());
}

#[test]
fn garbage_and_oversized_input_are_typed_errors() {
    for bad in [
        &b""[..],
        b"hello",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        assert!(check(bad, &STRICT).is_err());
    }
    assert!(matches!(
        check(&vec![b'A'; MAX_CSR_BYTES + 1], &STRICT),
        Err(CsrError::TooLarge(_))
    ));
}

#[test]
fn thumbprints_follow_rfc7638() {
    // RFC 7638 §3.1's example is RSA; RFC 8037 A.3 gives the Ed25519 one
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let (_, kid) = jwk_of(KeyAlgorithm::Ed25519, &x).unwrap();
    assert_eq!(kid.as_str(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let _ = check(&bytes, &CsrPolicy { allow_rsa: true });
    }
}
