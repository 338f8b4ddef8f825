//! The agent CA: its certificate (and the chain above it), the [`Signer`] that holds its key,
//! and what issuing under it needs.

use std::sync::Arc;

use accord_events::{KeyId, TrustDomain};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::signer::{RcgenKey, Signer, SignerExt};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA certificate: {0}")]
    Certificate(String),
    #[error("the CA key does not match the CA certificate's public key")]
    KeyMismatch,
    #[error("generating the CA certificate: {0}")]
    Generate(String),
}

/// The CA an ACA issues under.
#[derive(Clone)]
pub struct Ca {
    signer: Arc<dyn Signer>,
    /// The CA certificate, DER.
    cert_der: Vec<u8>,
    /// The chain to serve: the CA certificate first, then any certificates above it.
    chain: Vec<Vec<u8>>,
    /// The CA's subject, DER, as issued certificates must name it.
    subject_der: Vec<u8>,
    /// Its subject key identifier, which issued certificates' AKI must carry.
    key_id: Vec<u8>,
    signer_kid: KeyId,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("backend", &self.signer.backend())
            .field("kid", &self.signer_kid)
            .finish_non_exhaustive()
    }
}

/// DER certificates of a PEM bundle (`CERTIFICATE` blocks only, in order).
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b64 = cur
                .take()
                .ok_or_else(|| CaError::Certificate("END without BEGIN".into()))?;
            out.push(
                STANDARD
                    .decode(b64)
                    .map_err(|e| CaError::Certificate(format!("base64: {e}")))?,
            );
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    if out.is_empty() {
        return Err(CaError::Certificate(
            "no CERTIFICATE in the PEM file".into(),
        ));
    }
    Ok(out)
}

/// PEM of DER certificates.
pub fn to_pem(label: &str, ders: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for d in ders {
        s.push_str(&format!("-----BEGIN {label}-----\n"));
        let b = STANDARD.encode(d);
        for chunk in b.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
    }
    s
}

impl Ca {
    /// The CA of `chain` (its first certificate), whose key `signer` holds. The certificate must
    /// be a CA allowed to sign certificates and CRLs, and carry the signer's public key.
    pub fn new(signer: Arc<dyn Signer>, chain: Vec<Vec<u8>>) -> Result<Self, CaError> {
        let first = chain
            .first()
            .ok_or_else(|| CaError::Certificate("empty chain".into()))?;
        let (rest, cert) = x509_parser::parse_x509_certificate(first)
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CaError::Certificate("trailing bytes".into()));
        }
        if cert.public_key().raw != signer.spki_der().as_slice() {
            return Err(CaError::KeyMismatch);
        }
        let bc = cert
            .basic_constraints()
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        if !bc.is_some_and(|b| b.value.ca) {
            return Err(CaError::Certificate(
                "not a CA certificate (cA is not true)".into(),
            ));
        }
        let ku = cert
            .key_usage()
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        if !ku.is_some_and(|k| k.value.key_cert_sign() && k.value.crl_sign()) {
            return Err(CaError::Certificate(
                "the CA certificate's key usage lacks keyCertSign or cRLSign".into(),
            ));
        }
        let key_id = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .ok_or_else(|| {
                CaError::Certificate("the CA certificate has no subject key identifier".into())
            })?;
        let subject_der = cert.subject().as_raw().to_vec();
        let (_, signer_kid) = signer.jwk();
        Ok(Self {
            signer,
            cert_der: first.clone(),
            chain,
            subject_der,
            key_id,
            signer_kid,
        })
    }

    /// A new self-signed agent CA for `trust_domain` (its SPIFFE ID without a path, as SPIFFE
    /// signing certificates have), valid for `lifetime`.
    pub fn generate(
        signer: Arc<dyn Signer>,
        trust_domain: &TrustDomain,
        lifetime: Duration,
    ) -> Result<Self, CaError> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain.as_str());
        dn.push(
            DnType::CommonName,
            format!("Accord agent CA {trust_domain}"),
        );
        p.distinguished_name = dn;
        p.subject_alt_names = vec![SanType::URI(
            format!("spiffe://{trust_domain}")
                .as_str()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::Generate(e.to_string()))?,
        )];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + lifetime;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(
            &crate::profile::serial_bytes(&crate::profile::random_serial()),
        ));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.key_identifier_method = KeyIdMethod::Sha256;
        let cert = p
            .self_signed(&RcgenKey(&*signer))
            .map_err(|e| CaError::Generate(e.to_string()))?;
        Self::new(signer, vec![cert.der().to_vec()])
    }

    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    pub fn chain_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.chain)
    }

    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// The thumbprint of the CA key (recorded as `issuer_key`).
    pub fn kid(&self) -> &KeyId {
        &self.signer_kid
    }

    /// The rcgen issuer of this CA, signing through the [`Signer`].
    pub fn issuer(&self) -> Result<rcgen::Issuer<'static, RcgenKey<'_>>, rcgen::Error> {
        rcgen::Issuer::from_ca_cert_der(
            &CertificateDer::from(self.cert_der.as_slice()),
            RcgenKey(&*self.signer),
        )
    }
}
