//! The proof-of-possession check: a PKCS#10 request (PEM or DER) whose self-signature verifies,
//! with an allowed key and hash, strict DER, and nothing the agent may not ask for. The ACA
//! takes only the public key from a request: names, extensions and the subject are its own.
//!
//! `accord csr check FILE` runs exactly this.

use accord_events::catalogue::KeyAlgorithm;
use accord_events::common::PublicJwk;
use accord_events::{Digest, KeyId};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

/// Largest request accepted, bytes (PEM or DER).
pub const MAX_CSR_BYTES: usize = 16 * 1024;

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";

/// Signature algorithms refused by name, because they are weak.
const WEAK: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.3.14.3.2.29", "sha1WithRSA"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
    ("2.16.840.1.101.3.4.3.2", "dsa-with-sha256"),
];

/// What the domain accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrPolicy {
    /// RSA keys (2048 bits or more, SHA-256) only when the domain opts in.
    pub allow_rsa: bool,
}

/// Why a request was refused; each names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("request is {0} bytes, more than {MAX_CSR_BYTES}")]
    TooLarge(usize),
    #[error("not a PEM CERTIFICATE REQUEST or a DER PKCS#10 request: {0}")]
    Encoding(String),
    #[error("not strict DER: {0}")]
    NotDer(String),
    #[error("the request's version is {0}, not 0")]
    Version(u32),
    #[error("signature algorithm {0} is refused as weak")]
    WeakHash(&'static str),
    #[error("key type {0} is not accepted")]
    KeyType(String),
    #[error("RSA keys are not accepted by this domain")]
    RsaNotAllowed,
    #[error("RSA key of {0} bits is too short (2048 or more)")]
    RsaTooShort(usize),
    #[error("signature algorithm {sig} does not go with a {key} key")]
    AlgorithmMismatch { sig: String, key: String },
    #[error("the request's self-signature does not verify (no proof of possession)")]
    BadSignature,
    #[error("the request asks to be a CA")]
    RequestsCa,
    #[error("the request asks for names; the ACA assigns them")]
    RequestsNames,
    #[error("the request asks for extension {0}; the ACA decides every extension")]
    RequestsExtension(String),
    #[error("the request carries attribute {0}, which is not accepted")]
    Attribute(String),
}

impl CsrError {
    /// A stable name for problem documents and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "csr-too-large",
            Self::Encoding(_) => "csr-encoding",
            Self::NotDer(_) => "csr-not-der",
            Self::Version(_) => "csr-version",
            Self::WeakHash(_) => "csr-weak-hash",
            Self::KeyType(_) | Self::RsaNotAllowed | Self::RsaTooShort(_) => "csr-key-type",
            Self::AlgorithmMismatch { .. } => "csr-algorithm-mismatch",
            Self::BadSignature => "csr-bad-signature",
            Self::RequestsCa => "csr-requests-ca",
            Self::RequestsNames => "csr-requests-names",
            Self::RequestsExtension(_) => "csr-requests-extension",
            Self::Attribute(_) => "csr-attribute",
        }
    }
}

/// Proof that a request's self-signature verified. Only [`check`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOfPossession {
    _private: (),
}

/// A request that passed every check: what the ACA may use of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    /// The public key, as the SubjectPublicKeyInfo DER the certificate will carry.
    pub spki_der: Vec<u8>,
    /// The raw public key (EC point, Ed25519 bytes, or RSAPublicKey DER).
    pub public_key: Vec<u8>,
    pub algorithm: KeyAlgorithm,
    pub jwk: PublicJwk,
    /// RFC 7638 thumbprint of the key.
    pub thumbprint: KeyId,
    /// SHA-256 of the request's DER.
    pub digest: Digest,
    /// The request, DER.
    pub der: Vec<u8>,
    pub proof: ProofOfPossession,
}

/// The DER of a PEM or DER request.
pub fn der_of(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(input.len()));
    }
    let text = std::str::from_utf8(input).ok().map(str::trim);
    match text {
        Some(t) if t.starts_with("-----BEGIN") => {
            let mut lines = t.lines().map(str::trim);
            let first = lines.next().unwrap_or("");
            if first != "-----BEGIN CERTIFICATE REQUEST-----"
                && first != "-----BEGIN NEW CERTIFICATE REQUEST-----"
            {
                return Err(CsrError::Encoding(format!("PEM label {first:?}")));
            }
            let mut b64 = String::new();
            let mut ended = false;
            for line in lines {
                if line.starts_with("-----END") {
                    ended = true;
                    break;
                }
                b64.push_str(line);
            }
            if !ended {
                return Err(CsrError::Encoding("PEM without END line".into()));
            }
            STANDARD
                .decode(b64)
                .map_err(|e| CsrError::Encoding(format!("base64: {e}")))
        }
        _ => Ok(input.to_vec()),
    }
}

fn rsa_modulus_bits(rsa_public_key_der: &[u8]) -> Option<usize> {
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (_, seq) = x509_parser::der_parser::parse_der(rsa_public_key_der).ok()?;
    let items = seq.as_sequence().ok()?;
    let n = items.first()?.as_slice().ok()?;
    let n = n.iter().skip_while(|b| **b == 0).collect::<Vec<_>>();
    let lead = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
    Some((n.len().saturating_sub(1)) * 8 + lead)
}

fn rsa_parts(rsa_public_key_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, seq) = x509_parser::der_parser::parse_der(rsa_public_key_der).ok()?;
    let items = seq.as_sequence().ok()?;
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    Some((
        strip(items.first()?.as_slice().ok()?),
        strip(items.get(1)?.as_slice().ok()?),
    ))
}

/// The JWK and RFC 7638 thumbprint of a public key.
pub fn jwk_of(algorithm: KeyAlgorithm, public_key: &[u8]) -> Option<(PublicJwk, KeyId)> {
    let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    let (jwk, canonical) = match algorithm {
        KeyAlgorithm::Ed25519 => {
            let x = b(public_key);
            let c = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (
                PublicJwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(x),
                    y: None,
                    n: None,
                    e: None,
                    kid: None,
                    alg: None,
                    use_: None,
                },
                c,
            )
        }
        KeyAlgorithm::EcdsaP256 => {
            if public_key.len() != 65 || public_key[0] != 4 {
                return None;
            }
            let (x, y) = (b(&public_key[1..33]), b(&public_key[33..65]));
            let c = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                PublicJwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(x),
                    y: Some(y),
                    n: None,
                    e: None,
                    kid: None,
                    alg: None,
                    use_: None,
                },
                c,
            )
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let (n, e) = rsa_parts(public_key)?;
            let (n, e) = (b(&n), b(&e));
            let c = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (
                PublicJwk {
                    kty: "RSA".into(),
                    crv: None,
                    x: None,
                    y: None,
                    n: Some(n),
                    e: Some(e),
                    kid: None,
                    alg: None,
                    use_: None,
                },
                c,
            )
        }
    };
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    let kid = KeyId::parse(&b(d.as_ref())).ok()?;
    Some((jwk, kid))
}

/// Runs every check on a request, PEM or DER.
pub fn check(input: &[u8], policy: &CsrPolicy) -> Result<CheckedCsr, CsrError> {
    let der = der_of(input)?;
    crate::der::strict(&der).map_err(CsrError::NotDer)?;
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrError::NotDer(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::NotDer(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::Version(info.version.0));
    }

    // 1. the algorithms: only what is allowed, checked before any signature work
    let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
    if let Some((_, name)) = WEAK.iter().find(|(oid, _)| *oid == sig_oid) {
        return Err(CsrError::WeakHash(name));
    }
    let spki = &info.subject_pki;
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let key_bytes = spki.subject_public_key.data.as_ref();
    let (algorithm, verifier): (KeyAlgorithm, &'static dyn signature::VerificationAlgorithm) =
        match key_oid.as_str() {
            OID_ED25519 => {
                if sig_oid != OID_ED25519 {
                    return Err(CsrError::AlgorithmMismatch {
                        sig: sig_oid,
                        key: "Ed25519".into(),
                    });
                }
                if key_bytes.len() != 32 {
                    return Err(CsrError::KeyType("Ed25519 with a malformed key".into()));
                }
                (KeyAlgorithm::Ed25519, &signature::ED25519)
            }
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                if curve != OID_P256 {
                    return Err(CsrError::KeyType(format!("EC curve {curve}")));
                }
                if sig_oid != OID_ECDSA_SHA256 {
                    return Err(CsrError::AlgorithmMismatch {
                        sig: sig_oid,
                        key: "P-256".into(),
                    });
                }
                (KeyAlgorithm::EcdsaP256, &signature::ECDSA_P256_SHA256_ASN1)
            }
            OID_RSA => {
                if !policy.allow_rsa {
                    return Err(CsrError::RsaNotAllowed);
                }
                let bits = rsa_modulus_bits(key_bytes)
                    .ok_or_else(|| CsrError::KeyType("RSA with a malformed key".into()))?;
                if bits < 2048 {
                    return Err(CsrError::RsaTooShort(bits));
                }
                if sig_oid != OID_RSA_SHA256 {
                    return Err(CsrError::AlgorithmMismatch {
                        sig: sig_oid,
                        key: "RSA".into(),
                    });
                }
                let alg = match bits {
                    ..=2048 => KeyAlgorithm::Rsa2048,
                    2049..=3072 => KeyAlgorithm::Rsa3072,
                    _ => KeyAlgorithm::Rsa4096,
                };
                (alg, &signature::RSA_PKCS1_2048_8192_SHA256)
            }
            other => {
                let name = match other {
                    "1.2.840.10040.4.1" => "DSA".to_owned(),
                    o => o.to_owned(),
                };
                return Err(CsrError::KeyType(name));
            }
        };

    // 2. proof of possession: the request is signed by the key it carries
    UnparsedPublicKey::new(verifier, key_bytes)
        .verify(info.raw, csr.signature_value.data.as_ref())
        .map_err(|_| CsrError::BadSignature)?;

    // 3. nothing the agent may not ask for
    for attr in info.iter_attributes() {
        let oid = attr.oid.to_id_string();
        if oid != OID_EXTENSION_REQUEST {
            let name = if oid == "1.2.840.113549.1.9.7" {
                "challengePassword".to_owned()
            } else {
                oid
            };
            return Err(CsrError::Attribute(name));
        }
    }
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            use x509_parser::extensions::ParsedExtension;
            match ext {
                ParsedExtension::BasicConstraints(bc) if bc.ca => return Err(CsrError::RequestsCa),
                ParsedExtension::SubjectAlternativeName(_) => return Err(CsrError::RequestsNames),
                _ => {}
            }
        }
        // the raw list, to name what was asked for (also extensions the parser did not parse)
        if let Some(attr) = info
            .iter_attributes()
            .find(|a| a.oid.to_id_string() == OID_EXTENSION_REQUEST)
            && let x509_parser::cri_attributes::ParsedCriAttribute::ExtensionRequest(req) =
                attr.parsed_attribute()
        {
            for e in &req.extensions {
                let oid = e.oid.to_id_string();
                if oid == OID_BASIC_CONSTRAINTS {
                    continue; // cA=false asked for: harmless, and ignored
                }
                if oid == OID_SUBJECT_ALT_NAME {
                    return Err(CsrError::RequestsNames);
                }
                return Err(CsrError::RequestsExtension(oid));
            }
        }
    }

    let (jwk, thumbprint) = jwk_of(algorithm, key_bytes)
        .ok_or_else(|| CsrError::KeyType("key without a JWK form".into()))?;
    Ok(CheckedCsr {
        spki_der: spki.raw.to_vec(),
        public_key: key_bytes.to_vec(),
        algorithm,
        jwk,
        thumbprint,
        digest: Digest::sha256(&der),
        der,
        proof: ProofOfPossession { _private: () },
    })
}

#[cfg(test)]
#[path = "csr/tests.rs"]
mod tests;
