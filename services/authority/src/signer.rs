//! Key custody: the CA key and the token-signing key are only `Signer`s. Private material never
//! leaves the key's backend: a development file ([`DevFileSigner`]) or a PKCS#11 token
//! ([`crate::pkcs11::Pkcs11Signer`], SoftHSM2 in tests). Every backend passes one test suite.
//!
//! Signatures come out in their raw form (ECDSA: r‖s, as JWS wants; Ed25519: 64 bytes);
//! [`Signer::sign_x509`] gives the DER form X.509 wants.

use std::fmt;

use accord_events::KeyId;
use accord_events::catalogue::KeyAlgorithm;
use accord_events::common::PublicJwk;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};

/// What a signer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerAlgorithm {
    /// ECDSA on P-256 with SHA-256 (X.509 `ecdsa-with-SHA256`, JWS `ES256`).
    EcdsaP256Sha256,
    /// Ed25519 (X.509 `Ed25519`, JWS `EdDSA`).
    Ed25519,
}

impl SignerAlgorithm {
    pub fn jws_alg(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ES256",
            Self::Ed25519 => "EdDSA",
        }
    }

    pub fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => KeyAlgorithm::EcdsaP256,
            Self::Ed25519 => KeyAlgorithm::Ed25519,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("key file {path}: {detail}")]
    KeyFile { path: String, detail: String },
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("unsupported key: {0}")]
    Unsupported(String),
}

/// A key that signs without handing out its private part.
pub trait Signer: Send + Sync + fmt::Debug {
    fn algorithm(&self) -> SignerAlgorithm;
    /// The raw public key: the uncompressed EC point (65 bytes) or the Ed25519 key (32).
    fn public_key(&self) -> &[u8];
    /// Signs `msg` (the signer hashes): ECDSA as r‖s (64 bytes), Ed25519 as 64 bytes.
    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// Which backend holds the key (`file (development)`, `pkcs11:...`), for logs and status.
    fn backend(&self) -> String;
}

/// SubjectPublicKeyInfo DER prefixes of the two key types.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Everything derived from a signer's public key.
pub trait SignerExt: Signer {
    /// SubjectPublicKeyInfo DER.
    fn spki_der(&self) -> Vec<u8> {
        let mut v = match self.algorithm() {
            SignerAlgorithm::EcdsaP256Sha256 => P256_SPKI_PREFIX.to_vec(),
            SignerAlgorithm::Ed25519 => ED25519_SPKI_PREFIX.to_vec(),
        };
        v.extend_from_slice(self.public_key());
        v
    }

    /// The signature as X.509 carries it (ECDSA: DER `SEQUENCE { r, s }`).
    fn sign_x509(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        let raw = self.sign_raw(msg)?;
        match self.algorithm() {
            SignerAlgorithm::EcdsaP256Sha256 => ecdsa_raw_to_der(&raw),
            SignerAlgorithm::Ed25519 => Ok(raw),
        }
    }

    /// The public key as a JWK (with its thumbprint as `kid`), and the thumbprint.
    fn jwk(&self) -> (PublicJwk, KeyId) {
        let (mut jwk, kid) =
            crate::csr::jwk_of(self.algorithm().key_algorithm(), self.public_key())
                .unwrap_or_else(|| unreachable!("a signer's key always has a JWK form"));
        jwk.kid = Some(kid.to_string());
        jwk.alg = Some(self.algorithm().jws_alg().to_owned());
        jwk.use_ = Some("sig".to_owned());
        (jwk, kid)
    }
}

impl<T: Signer + ?Sized> SignerExt for T {}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw P-256 r‖s signature.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, SignerError> {
    if raw.len() != 64 {
        return Err(SignerError::Sign(format!(
            "ECDSA P-256 signature of {} bytes",
            raw.len()
        )));
    }
    let int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().skip_while(|b| **b == 0).copied().collect();
        let mut out = vec![0x02];
        if x.is_empty() {
            out.extend_from_slice(&[1, 0]);
        } else if x[0] & 0x80 != 0 {
            out.push(x.len() as u8 + 1);
            out.push(0);
            out.extend_from_slice(&x);
        } else {
            out.push(x.len() as u8);
            out.extend_from_slice(&x);
        }
        out
    };
    let (r, s) = (int(&raw[..32]), int(&raw[32..]));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    Ok(out)
}

/// Raw r‖s of a DER P-256 ECDSA signature (strict DER), or `None`.
pub fn ecdsa_der_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    crate::der::strict(der).ok()?;
    let (_, obj) = x509_parser::der_parser::parse_der(der).ok()?;
    let seq = obj.as_sequence().ok()?;
    if seq.len() != 2 {
        return None;
    }
    let mut out = [0u8; 64];
    for (i, item) in seq.iter().enumerate() {
        if item.header.tag() != x509_parser::der_parser::asn1_rs::Tag::Integer {
            return None;
        }
        let v = item.as_slice().ok()?;
        // r and s are positive: a set high bit is a negative INTEGER
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            return None;
        }
        let v: Vec<u8> = v.iter().skip_while(|b| **b == 0).copied().collect();
        if v.len() > 32 {
            return None;
        }
        out[i * 32 + 32 - v.len()..(i + 1) * 32].copy_from_slice(&v);
    }
    Some(out)
}

enum FileKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A key in a PKCS#8 file, held in this process's memory. An agent's own key is one of these,
/// on the agent's host. As the CA's or the token-signing key it is for development only
/// ([`DevFileSigner`]): production keeps those in a PKCS#11 token.
pub struct SoftwareKey {
    key: FileKey,
    public: Vec<u8>,
    path: String,
}

/// The CA's and the token key's file-backed signer: development only.
pub type DevFileSigner = SoftwareKey;

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// A new P-256 key and its PKCS#8 bytes (to write to a file only the service reads).
    pub fn generate_p256() -> Result<(Self, Vec<u8>), SignerError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| SignerError::Sign(e.to_string()))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der, "(generated)")?, der))
    }

    /// A key from PKCS#8 DER (P-256 or Ed25519).
    pub fn from_pkcs8(der: &[u8], path: &str) -> Result<Self, SignerError> {
        let err = |d: String| SignerError::KeyFile {
            path: path.to_owned(),
            detail: d,
        };
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let public = k.public_key().as_ref().to_vec();
            return Ok(Self {
                key: FileKey::Ecdsa(k),
                public,
                path: path.to_owned(),
            });
        }
        let k = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| err(format!("neither a P-256 nor an Ed25519 PKCS#8 key: {e}")))?;
        let public = k.public_key().as_ref().to_vec();
        Ok(Self {
            key: FileKey::Ed25519(k),
            public,
            path: path.to_owned(),
        })
    }

    pub fn open(path: &std::path::Path) -> Result<Self, SignerError> {
        let der = std::fs::read(path).map_err(|e| SignerError::KeyFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_pkcs8(&der, &path.display().to_string())
    }
}

impl Signer for SoftwareKey {
    fn algorithm(&self) -> SignerAlgorithm {
        match self.key {
            FileKey::Ecdsa(_) => SignerAlgorithm::EcdsaP256Sha256,
            FileKey::Ed25519(_) => SignerAlgorithm::Ed25519,
        }
    }

    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        match &self.key {
            FileKey::Ecdsa(k) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                k.sign(&rng, msg)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|e| SignerError::Sign(e.to_string()))
            }
            FileKey::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }

    fn backend(&self) -> String {
        format!("file: {}", self.path)
    }
}

/// A signer as rcgen's signing key (for certificates and CRLs).
pub struct RcgenKey<'a>(pub &'a dyn Signer);

impl fmt::Debug for RcgenKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RcgenKey").field(&self.0).finish()
    }
}

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.0.algorithm() {
            SignerAlgorithm::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SignerAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0
            .sign_x509(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

#[cfg(test)]
#[path = "signer/tests.rs"]
pub(crate) mod tests;
