//! How the store reaches PostgreSQL (ADR 0012). The read models it carries decide admission
//! and the CRL, so the connection is TLS with the server's certificate chain checked against
//! the configured CA and its name against the URL's host (libpq's `verify-full`), always. The
//! one exception is plaintext to a loopback address or a Unix socket, and only when the
//! caller asks for it by name ([`PgTls::dangerous_plaintext_local`]).
//!
//! The URL's `sslmode` is honoured: `verify-full` (the default when absent) and `require`
//! both mean verified TLS (Accord never makes an unverified TLS connection); `disable` means
//! plaintext and needs the plaintext transport; `allow`, `prefer` (a silent downgrade) and
//! `verify-ca` (no host name check) are refused.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode as PgSslMode};

/// Why a PostgreSQL connection cannot be set up. Nothing was connected.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    /// The URL does not parse (its text is not repeated: it may hold a password).
    #[error("postgres url: {0}")]
    Url(String),
    /// An `sslmode` that could end in an unverified or plaintext connection.
    #[error("postgres url: sslmode={0} is not supported (use verify-full, require or disable)")]
    SslMode(String),
    /// TLS was asked for, but no CA to verify the server with was given.
    #[error("TLS to PostgreSQL needs the CA certificate that signed the server's (postgres.ca)")]
    NoCa,
    /// The CA certificates do not parse.
    #[error("postgres CA: {0}")]
    Ca(String),
    /// TLS was asked for a Unix socket, where there is no host name to verify.
    #[error("TLS to PostgreSQL needs a TCP host, not the Unix socket {0}")]
    TlsOverSocket(String),
    /// Plaintext to a host that is not this machine.
    #[error(
        "plaintext to PostgreSQL host {0}: only a loopback address or a Unix socket may be reached without TLS"
    )]
    PlaintextNotLocal(String),
    /// `sslmode=disable` without the plaintext opt-in.
    #[error(
        "postgres url: sslmode=disable needs the explicit opt-in (postgres.dangerous_plaintext_local)"
    )]
    PlaintextNotChosen,
    /// The connection pool could not be built.
    #[error("postgres connection pool: {0}")]
    Pool(String),
}

/// What the URL's `sslmode` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyFull,
}

/// How the store reaches PostgreSQL. Only [`PgTls::verify_full`] and
/// [`PgTls::dangerous_plaintext_local`] make one.
#[derive(Clone)]
pub struct PgTls(Transport);

#[derive(Clone)]
enum Transport {
    Verified(Arc<rustls::ClientConfig>),
    PlaintextLocal,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Transport::Verified(_) => "PgTls(verify-full)",
            Transport::PlaintextLocal => "PgTls(dangerous plaintext, local only)",
        })
    }
}

impl PgTls {
    /// TLS, the server's chain checked against the certificates in `ca_pem` (and nothing
    /// else) and its name against the URL's host; aws-lc-rs as the crypto provider.
    pub fn verify_full(ca_pem: &[u8]) -> Result<Self, PgConnectError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| PgConnectError::Ca(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| PgConnectError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(PgConnectError::Ca("no certificate in the PEM".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PgConnectError::Ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // PostgreSQL 17's direct TLS negotiation requires it; older servers ignore it
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self(Transport::Verified(Arc::new(config))))
    }

    /// No TLS: anyone on the path reads and changes every row. Accepted only for hosts on
    /// this machine (loopback addresses, `localhost`, Unix sockets), for development.
    pub fn dangerous_plaintext_local() -> Self {
        Self(Transport::PlaintextLocal)
    }

    pub fn is_plaintext(&self) -> bool {
        matches!(self.0, Transport::PlaintextLocal)
    }

    /// The TLS connector, when this is TLS.
    pub fn connector(&self) -> Option<tokio_postgres_rustls::MakeRustlsConnect> {
        match &self.0 {
            Transport::Verified(c) => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                c.as_ref().clone(),
            )),
            Transport::PlaintextLocal => None,
        }
    }
}

/// Parses `url` (`postgres://user@host:port/db?...`) and checks its `sslmode` and hosts
/// against the transport (`plaintext`: [`PgTls::dangerous_plaintext_local`]). The config it
/// returns requires TLS when the transport is TLS, and never tries TLS when it is plaintext.
pub fn check_url(url: &str, plaintext: bool) -> Result<tokio_postgres::Config, PgConnectError> {
    let (rest, mode) = split_sslmode(url)?;
    let mut config =
        tokio_postgres::Config::from_str(&rest).map_err(|e| PgConnectError::Url(e.to_string()))?;
    match (plaintext, mode) {
        (false, Some(SslMode::Disable)) => return Err(PgConnectError::PlaintextNotChosen),
        (false, _) => {
            if let Some(Host::Unix(p)) = config
                .get_hosts()
                .iter()
                .find(|h| matches!(h, Host::Unix(_)))
            {
                return Err(PgConnectError::TlsOverSocket(p.display().to_string()));
            }
            config.ssl_mode(PgSslMode::Require);
        }
        (true, Some(SslMode::Require | SslMode::VerifyFull)) => return Err(PgConnectError::NoCa),
        (true, _) => {
            for h in config.get_hosts() {
                if let Host::Tcp(name) = h
                    && !is_local(name)
                {
                    return Err(PgConnectError::PlaintextNotLocal(name.clone()));
                }
            }
            if let Some(a) = config.get_hostaddrs().iter().find(|a| !a.is_loopback()) {
                return Err(PgConnectError::PlaintextNotLocal(a.to_string()));
            }
            config.ssl_mode(PgSslMode::Disable);
        }
    }
    Ok(config)
}

/// Whether a host name is this machine: `localhost` or a loopback address.
pub fn is_local(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

/// The URL without its `sslmode` parameter (tokio-postgres knows neither `verify-full` nor
/// `verify-ca`), and that parameter.
fn split_sslmode(url: &str) -> Result<(String, Option<SslMode>), PgConnectError> {
    let scheme_ok = ["postgres://", "postgresql://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    if !scheme_ok {
        return Err(PgConnectError::Url(
            "not a postgres://user@host:port/db URL".into(),
        ));
    }
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut mode = None;
    let mut kept = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("sslmode", v)) => {
                if mode.is_some() {
                    return Err(PgConnectError::Url("sslmode is given twice".into()));
                }
                mode = Some(match v {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => return Err(PgConnectError::SslMode(other.chars().take(32).collect())),
                });
            }
            _ => kept.push(part),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_and_removed() {
        let (rest, mode) =
            split_sslmode("postgres://a@db:5432/x?sslmode=verify-full&application_name=z").unwrap();
        assert_eq!(rest, "postgres://a@db:5432/x?application_name=z");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(
            split_sslmode("postgresql://a@db/x").unwrap(),
            ("postgresql://a@db/x".to_owned(), None)
        );
        for bad in ["prefer", "allow", "verify-ca", "VERIFY-FULL", ""] {
            assert!(matches!(
                split_sslmode(&format!("postgres://a@db/x?sslmode={bad}")),
                Err(PgConnectError::SslMode(_))
            ));
        }
        assert!(matches!(
            split_sslmode("postgres://a@db/x?sslmode=require&sslmode=disable"),
            Err(PgConnectError::Url(_))
        ));
        assert!(matches!(
            split_sslmode("host=db user=a sslmode=disable"),
            Err(PgConnectError::Url(_))
        ));
    }

    #[test]
    fn local_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.3.4.5",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_local(h), "{h}");
        }
        for h in [
            "db.example",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example",
            "::",
        ] {
            assert!(!is_local(h), "{h}");
        }
    }
}
