//! The proof-of-possession check on outside input (PEM or DER PKCS#10), under both CSR
//! policies. Any input gives a typed error, never a panic; whatever is accepted is
//! self-consistent: its DER is the input's, digest and thumbprint are those of that DER and
//! key, the key type is one the policy allows, and checking the stored DER again accepts the
//! same request.
#![no_main]

use accord_authority::csr::{self, CsrPolicy};
use accord_events::Digest;
use accord_events::catalogue::KeyAlgorithm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // the strict-DER walk alone, on raw input
    let _ = accord_authority::der::strict(data);

    let mut accepted = [false; 2];
    for (i, allow_rsa) in [false, true].into_iter().enumerate() {
        let policy = CsrPolicy { allow_rsa };
        let Ok(c) = csr::check(data, &policy) else {
            continue;
        };
        accepted[i] = true;
        assert_eq!(csr::der_of(data).as_ref(), Ok(&c.der), "DER is the input's");
        assert_eq!(accord_authority::der::strict(&c.der), Ok(()));
        assert_eq!(c.digest, Digest::sha256(&c.der));
        let (jwk, thumbprint) = csr::jwk_of(c.algorithm, &c.public_key).expect("a JWK form");
        assert_eq!(jwk, c.jwk);
        assert_eq!(thumbprint, c.thumbprint);
        match c.algorithm {
            KeyAlgorithm::Ed25519 | KeyAlgorithm::EcdsaP256 => {}
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                assert!(allow_rsa, "an RSA key accepted by a domain that refuses RSA")
            }
        }
        assert!(!c.spki_der.is_empty() && !c.public_key.is_empty());
        // the stored DER is itself an acceptable request, and the same one
        let again = csr::check(&c.der, &policy).expect("the stored DER checks again");
        assert_eq!(again, c);
    }
    // allowing RSA only widens what is accepted
    assert!(!accepted[0] || accepted[1], "allow_rsa refused what the strict policy accepted");
});
