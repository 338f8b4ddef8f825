//! Initial trust (draft §3.1): the agent's execution environment proves what it is with an
//! identity certificate issued under a manufacturer CA (IDevID-style, IEEE 802.1AR). The
//! certificate's key is the environment's attestation key: it signs the EAT.
//!
//! Path building and RFC 5280 validation are rustls-webpki's: signatures, the validity of every
//! certificate at `now`, basicConstraints cA on issuers and the path length, name constraints,
//! the leaf not a CA, and an extended key usage that, when present, allows client
//! authentication. What webpki leaves out is checked here on every candidate path, so that path
//! building can still try another path: keyUsage `keyCertSign` on every issuer (webpki ignores
//! keyUsage), the anchor root's own validity and CA bit (webpki only takes its name and key),
//! and revocation by fingerprint (`EnvironmentCertificateRevoked` names a leaf or an issuer by
//! the SHA-256 of its DER; manufacturer CAs publish no CRL the ACA could fetch).
//!
//! An anchor (`TrustAnchorAdded` of purpose `ManufacturerCa`) lists its root first; further
//! certificates it lists are intermediates the domain trusts to build paths with, so an
//! environment may present its leaf alone.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use accord_events::catalogue::KeyAlgorithm;
use accord_events::common::PublicJwk;
use accord_events::{Digest, MaterialId};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::jws::VerifyingKey;

/// Most certificates an environment may present (leaf and intermediates).
pub const MAX_CERTS: usize = 4;
/// Largest certificate read, bytes of DER.
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// Largest PEM chain read, bytes (base64 grows DER by a third; headers and line breaks).
pub const MAX_PEM_BYTES: usize = MAX_CERTS * MAX_CERT_BYTES * 3 / 2;

/// A trusted manufacturer CA: its root first, then any intermediates the domain trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub id: MaterialId,
    pub certificates_der: Vec<Vec<u8>>,
}

/// The environment, as its identity certificate proves it.
#[derive(Debug, Clone)]
pub struct EnvironmentIdentity {
    /// The manufacturer CA the path ended at.
    pub anchor_id: MaterialId,
    /// SHA-256 of the leaf's DER (what `EnvironmentCertificateRevoked` names).
    pub leaf_fingerprint: Digest,
    /// The leaf's subject, RFC 4514 form.
    pub subject: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
    /// When every certificate of the path (leaf, intermediates, root) is valid: the latest
    /// notBefore and the earliest notAfter, Unix seconds. What [`ChainCache`] reuses it within.
    pub path_valid: (i64, i64),
    /// The leaf's key, which verifies the environment's attestation evidence.
    pub attestation_key: VerifyingKey,
    pub attestation_jwk: PublicJwk,
}

/// Why an identity certificate chain was refused; each names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitialTrustError {
    #[error("{0} certificates presented, at most {MAX_CERTS}")]
    TooMany(usize),
    #[error("{0} bytes presented, more than allowed")]
    TooLarge(usize),
    #[error("malformed certificate chain: {0}")]
    Malformed(String),
    #[error("no path to a trusted manufacturer CA: {0}")]
    Untrusted(String),
    #[error("a certificate of the path has expired")]
    Expired,
    #[error("a certificate of the path is not yet valid")]
    NotYetValid,
    #[error("certificate {0} is revoked")]
    Revoked(Digest),
    #[error("the identity certificate is a CA certificate")]
    LeafIsCa,
    #[error("an issuer of the path may not issue certificates: {0}")]
    IssuerNotCa(String),
    #[error("the identity certificate's extended key usage excludes client authentication")]
    Usage,
    #[error("attestation key: {0}")]
    Key(String),
}

impl InitialTrustError {
    /// A stable name for problem documents and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooMany(_) => "identity-too-many",
            Self::TooLarge(_) => "identity-too-large",
            Self::Malformed(_) => "identity-malformed",
            Self::Untrusted(_) => "identity-untrusted",
            Self::Expired => "identity-expired",
            Self::NotYetValid => "identity-not-yet-valid",
            Self::Revoked(_) => "identity-revoked",
            Self::LeafIsCa => "identity-leaf-is-ca",
            Self::IssuerNotCa(_) => "identity-issuer-not-ca",
            Self::Usage => "identity-usage",
            Self::Key(_) => "identity-key",
        }
    }
}

/// The DER certificates of a PEM chain (`CERTIFICATE` blocks, leaf first; other blocks are
/// skipped), bounded by [`MAX_PEM_BYTES`] and [`MAX_CERTS`].
pub fn parse_chain_pem(pem: &str) -> Result<Vec<Vec<u8>>, InitialTrustError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(InitialTrustError::TooLarge(pem.len()));
    }
    let mut out = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| InitialTrustError::Malformed(format!("PEM: {e:?}")))?;
        out.push(der.to_vec());
    }
    if out.len() > MAX_CERTS {
        return Err(InitialTrustError::TooMany(out.len()));
    }
    if out.is_empty() {
        return Err(InitialTrustError::Malformed("no CERTIFICATE block".into()));
    }
    Ok(out)
}

/// Checks a presented chain (leaf first, then intermediates, DER) against the manufacturer
/// anchors and the revoked fingerprints at `now` (Unix seconds).
pub fn check(
    chain_der: &[Vec<u8>],
    anchors: &[Anchor],
    revoked: &BTreeSet<Digest>,
    now: i64,
) -> Result<EnvironmentIdentity, InitialTrustError> {
    // 1. bounds, then every certificate parses (strict enough for webpki, whole for x509-parser)
    if chain_der.len() > MAX_CERTS {
        return Err(InitialTrustError::TooMany(chain_der.len()));
    }
    if let Some(big) = chain_der.iter().find(|c| c.len() > MAX_CERT_BYTES) {
        return Err(InitialTrustError::TooLarge(big.len()));
    }
    let parsed = chain_der
        .iter()
        .map(|der| parse(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(InitialTrustError::Malformed)?;
    let (Some(leaf_der), Some(leaf)) = (chain_der.first(), parsed.first()) else {
        return Err(InitialTrustError::Malformed("no certificate".into()));
    };

    // 2. the leaf alone: its key, its revocation, no certificate signing
    let (attestation_key, attestation_jwk) = attestation_key(leaf)?;
    let leaf_fingerprint = Digest::sha256(leaf_der);
    if revoked.contains(&leaf_fingerprint) {
        return Err(InitialTrustError::Revoked(leaf_fingerprint));
    }
    if leaf
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|ku| ku.value.key_cert_sign())
    {
        return Err(InitialTrustError::LeafIsCa);
    }

    // 3. the path: webpki, plus the checks it leaves out on every candidate
    let roots: Vec<(&MaterialId, CertificateDer<'_>)> = anchors
        .iter()
        .filter_map(|a| {
            Some((
                &a.id,
                CertificateDer::from(a.certificates_der.first()?.as_slice()),
            ))
        })
        .collect();
    // an anchor whose root does not parse cannot be trusted: it is left out
    let usable: Vec<(&MaterialId, &CertificateDer<'_>, TrustAnchor<'_>)> = roots
        .iter()
        .filter_map(|(id, der)| Some((*id, der, webpki::anchor_from_trusted_cert(der).ok()?)))
        .collect();
    let trust_anchors: Vec<TrustAnchor<'_>> = usable.iter().map(|u| u.2.clone()).collect();
    let intermediates: Vec<CertificateDer<'_>> = chain_der[1..]
        .iter()
        .chain(
            anchors
                .iter()
                .flat_map(|a| a.certificates_der.iter().skip(1)),
        )
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_cert = CertificateDer::from(leaf_der.as_slice());
    let end_entity = EndEntityCert::try_from(&leaf_cert)
        .map_err(|e| InitialTrustError::Malformed(format!("{e:?}")))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));

    let refused: RefCell<Option<InitialTrustError>> = RefCell::new(None);
    let leaf_validity = leaf.validity();
    let window = RefCell::new((
        leaf_validity.not_before.timestamp(),
        leaf_validity.not_after.timestamp(),
    ));
    let narrow = |nb: i64, na: i64| {
        let mut w = window.borrow_mut();
        w.0 = w.0.max(nb);
        w.1 = w.1.min(na);
    };
    let beyond_webpki = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let refuse = |e: InitialTrustError, w: webpki::Error| {
            *refused.borrow_mut() = Some(e);
            Err(w)
        };
        for cert in path.intermediate_certificates() {
            let der = cert.der();
            let fingerprint = Digest::sha256(der.as_ref());
            if revoked.contains(&fingerprint) {
                return refuse(
                    InitialTrustError::Revoked(fingerprint),
                    webpki::Error::CertRevoked,
                );
            }
            if let Err(why) = may_sign_certificates(der.as_ref()) {
                return refuse(
                    InitialTrustError::IssuerNotCa(why),
                    webpki::Error::EndEntityUsedAsCa,
                );
            }
            let c = parse(der.as_ref()).map_err(|_| webpki::Error::BadDer)?;
            narrow(
                c.validity().not_before.timestamp(),
                c.validity().not_after.timestamp(),
            );
        }
        let Some(root) = trust_anchors
            .iter()
            .position(|t| std::ptr::eq(t, path.anchor()))
            .and_then(|i| usable.get(i))
        else {
            return Err(webpki::Error::UnknownIssuer);
        };
        let root_der = root.1.as_ref();
        let fingerprint = Digest::sha256(root_der);
        if revoked.contains(&fingerprint) {
            return refuse(
                InitialTrustError::Revoked(fingerprint),
                webpki::Error::CertRevoked,
            );
        }
        let root_cert = parse(root_der).map_err(|_| webpki::Error::BadDer)?;
        let validity = root_cert.validity();
        if now < validity.not_before.timestamp() {
            return Err(webpki::Error::CertNotValidYet {
                time,
                not_before: time,
            });
        }
        if now > validity.not_after.timestamp() {
            return Err(webpki::Error::CertExpired {
                time,
                not_after: time,
            });
        }
        if let Err(why) = may_sign_certificates(root_der) {
            return refuse(
                InitialTrustError::IssuerNotCa(why),
                webpki::Error::EndEntityUsedAsCa,
            );
        }
        narrow(
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        Ok(())
    };
    let path = end_entity
        .verify_for_usage(
            SIGNATURE_ALGORITHMS,
            &trust_anchors,
            &intermediates,
            time,
            KeyUsage::required_if_present(EKU_CLIENT_AUTH),
            None,
            Some(&beyond_webpki),
        )
        .map_err(|e| refusal(e, refused.borrow_mut().take()))?;
    let anchor_id = trust_anchors
        .iter()
        .position(|t| std::ptr::eq(t, path.anchor()))
        .and_then(|i| usable.get(i))
        .map(|u| u.0.clone())
        .ok_or_else(|| InitialTrustError::Untrusted("path ended at no known anchor".into()))?;

    Ok(EnvironmentIdentity {
        anchor_id,
        leaf_fingerprint,
        subject: leaf.subject().to_string(),
        not_after: leaf.validity().not_after.timestamp(),
        path_valid: *window.borrow(),
        attestation_key,
        attestation_jwk,
    })
}

/// Identity chains already checked against one version of the trust material, so that the
/// many agents of one environment (one identity certificate) cost one path validation:
/// keyed by the SHA-256 of the trust material's version and every certificate presented,
/// reused only while every certificate of the path is valid. A new trust event (an anchor
/// added or removed, a certificate revoked) is a new version, so nothing checked before it is
/// reused after it.
#[derive(Debug)]
pub struct ChainCache {
    inner: quick_cache::sync::Cache<[u8; 32], EnvironmentIdentity>,
}

impl Default for ChainCache {
    fn default() -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(4096),
        }
    }
}

impl ChainCache {
    /// [`check`], remembered for `trust_version`.
    pub fn check(
        &self,
        trust_version: u64,
        chain_der: &[Vec<u8>],
        anchors: &[Anchor],
        revoked: &BTreeSet<Digest>,
        now: i64,
    ) -> Result<EnvironmentIdentity, InitialTrustError> {
        let mut d = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        d.update(&trust_version.to_be_bytes());
        for c in chain_der.iter().take(MAX_CERTS + 1) {
            d.update(&(c.len() as u64).to_be_bytes());
            d.update(c);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(d.finish().as_ref());
        if let Some(id) = self.inner.get(&key)
            && (id.path_valid.0..=id.path_valid.1).contains(&now)
        {
            return Ok(id);
        }
        let id = check(chain_der, anchors, revoked, now)?;
        self.inner.insert(key, id.clone());
        Ok(id)
    }
}

/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2), DER contents of the OID.
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// What may sign a certificate of the path: ECDSA P-256/P-384, Ed25519 and RSA (manufacturer
/// CAs often are RSA; only the leaf's own key must be EC or Ed25519). No SHA-1.
static SIGNATURE_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after a certificate", rest.len()));
    }
    Ok(cert)
}

/// An issuer must be a CA (basicConstraints cA) whose keyUsage is present and allows
/// `keyCertSign` (RFC 5280 §4.2.1.3: CAs MUST include keyUsage).
fn may_sign_certificates(der: &[u8]) -> Result<(), String> {
    let cert = parse(der)?;
    let name = cert.subject().to_string();
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => return Err(format!("{name}: basicConstraints cA is not set")),
        Err(e) => return Err(format!("{name}: basicConstraints: {e}")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(()),
        Ok(Some(_)) => Err(format!("{name}: keyUsage lacks keyCertSign")),
        Ok(None) => Err(format!("{name}: no keyUsage")),
        Err(e) => Err(format!("{name}: keyUsage: {e}")),
    }
}

/// The leaf's key as a JWS verifying key: P-256 (ES256) or Ed25519 (EdDSA).
fn attestation_key(
    leaf: &X509Certificate<'_>,
) -> Result<(VerifyingKey, PublicJwk), InitialTrustError> {
    let spki = leaf.public_key();
    let algorithm = match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_ED25519 => KeyAlgorithm::Ed25519,
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            if curve != OID_P256 {
                return Err(InitialTrustError::Key(format!("EC curve {curve}")));
            }
            KeyAlgorithm::EcdsaP256
        }
        OID_RSA => {
            return Err(InitialTrustError::Key(
                "RSA: attestation keys must be EC P-256 or Ed25519".into(),
            ));
        }
        other => return Err(InitialTrustError::Key(format!("key type {other}"))),
    };
    let (jwk, _) = crate::csr::jwk_of(algorithm, spki.subject_public_key.data.as_ref())
        .ok_or_else(|| InitialTrustError::Key("malformed public key".into()))?;
    let key = VerifyingKey::from_jwk(&jwk).map_err(|e| InitialTrustError::Key(e.to_string()))?;
    Ok((key, jwk))
}

/// The typed refusal of a webpki error; `recorded` is what the checks beyond webpki refused.
#[allow(deprecated)] // RequiredEkuNotFound: still returned by older paths of webpki
fn refusal(e: webpki::Error, recorded: Option<InitialTrustError>) -> InitialTrustError {
    use webpki::Error as W;
    match e {
        W::CertExpired { .. } => InitialTrustError::Expired,
        W::CertNotValidYet { .. } => InitialTrustError::NotYetValid,
        W::CertRevoked => match recorded {
            Some(r @ InitialTrustError::Revoked(_)) => r,
            _ => InitialTrustError::Untrusted("revoked".into()),
        },
        W::CaUsedAsEndEntity => InitialTrustError::LeafIsCa,
        W::EndEntityUsedAsCa => match recorded {
            Some(r @ InitialTrustError::IssuerNotCa(_)) => r,
            _ => InitialTrustError::IssuerNotCa("basicConstraints cA is not set".into()),
        },
        W::PathLenConstraintViolated => {
            InitialTrustError::IssuerNotCa("path length constraint violated".into())
        }
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension => {
            InitialTrustError::Usage
        }
        other => InitialTrustError::Untrusted(format!("{other:?}")),
    }
}

#[cfg(test)]
#[path = "initial_trust/tests.rs"]
mod tests;
