//! `[registry]`: the Agent Registry Service (ADR 0015). It runs beside the ACA (it needs
//! `[authority]`), on its own HTTPS listener, where agents present their certificates.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, SecretRef};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    pub listen: SocketAddr,
    /// Where agents reach the registry (`https://registry.example:8444`): the audience of the
    /// proof tokens sent with a WIT.
    pub public_url: String,
    /// The listener's certificate chain and key (PEM); `[http]`'s when absent.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<SecretRef>,
    /// Requests per minute per client address.
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    /// Where discovery reads: `memory` (a copy of the registry projection in this process,
    /// the default) or `postgres` (the projection's rows in `[postgres]`, over the registry's
    /// indexes: replicas share it, nothing to rebuild at start).
    #[serde(default)]
    pub directory: DirectoryKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    #[default]
    Memory,
    Postgres,
}

fn default_rate() -> u32 {
    6000
}

impl RegistrySection {
    /// The listener's certificate and key: its own, or `[http]`'s.
    pub fn tls<'a>(&'a self, c: &'a Config) -> Option<(&'a PathBuf, &'a SecretRef)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => c.http.tls_cert.as_ref().zip(c.http.tls_key.as_ref()),
        }
    }
}

pub(super) fn validate(c: &Config) -> Result<(), String> {
    let Some(r) = &c.registry else {
        return Ok(());
    };
    if c.authority.is_none() {
        return Err("[registry] needs [authority] (registrations are the ACA's commands)".into());
    }
    if !r.public_url.starts_with("https://") {
        return Err("registry.public_url must be an https URL".into());
    }
    if r.tls_cert.is_some() != r.tls_key.is_some() {
        return Err("registry.tls_cert and registry.tls_key go together".into());
    }
    if r.tls(c).is_none() {
        return Err(
            "the registry serves HTTPS only: set registry.tls_cert and tls_key (or http's)".into(),
        );
    }
    if r.directory == DirectoryKind::Postgres && c.postgres.is_none() {
        return Err("registry.directory = \"postgres\" needs [postgres]".into());
    }
    if r.rate_limit_per_minute == 0 {
        return Err("registry.rate_limit_per_minute must be at least 1".into());
    }
    Ok(())
}
