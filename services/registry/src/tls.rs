//! The registry's TLS: agents present their X.509-SVID as client certificate (optional at the
//! handshake, so that the WIT path shares the listener; required by the routes that need it).
//!
//! The chain is verified by webpki against the domain's agent CA only. One difference from a
//! plain verifier: a certificate past its `notAfter` is verified as of its last valid second,
//! so that the request reaches the registry and is refused there with a typed answer (and, for
//! a registration, a `RegistrationRejected`), instead of a bare TLS alert. Every handler then
//! decides liveness itself: registration on the agent aggregate (revoked, expired,
//! superseded), discovery in the credentials read model. A certificate from any other CA, or
//! not yet valid, fails the handshake.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, Error, RootCertStore, ServerConfig, SignatureScheme};

#[derive(Debug)]
struct AgentCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

/// The certificate's `notAfter`, seconds since the epoch.
fn not_after(der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

impl ClientCertVerifier for AgentCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let at = match not_after(end_entity) {
            Some(end) if end < now.as_secs() => {
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(end.saturating_sub(1)))
            }
            _ => now,
        };
        self.inner.verify_client_cert(end_entity, intermediates, at)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the agent CA certificate: {0}")]
    Roots(String),
    #[error("the server certificate and key: {0}")]
    Server(String),
}

/// The server configuration of the registry's listener: `chain` and `key` (PEM) are its own
/// certificate; `agent_ca` (DER, the issuing CA first) is what client certificates chain to.
pub fn server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    agent_ca: &[Vec<u8>],
) -> Result<ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    // the issuing CA is the anchor: certificates of the agent CA's own issuers do not count
    let issuing = agent_ca
        .first()
        .ok_or_else(|| TlsError::Roots("no CA certificate".into()))?;
    roots
        .add(CertificateDer::from(issuing.clone()))
        .map_err(|e| TlsError::Roots(e.to_string()))?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Roots(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Server(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Server(e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Server(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AgentCertVerifier { inner }))
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Server(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
