//! `accord.toml`: one versioned file, unknown keys rejected, `ACCORD_<SECTION>__<KEY>`
//! environment overrides, references to secrets (`file:PATH`, `pkcs11:URI`) and never secrets.
//! Everything is validated before anything starts.
//!
//! The environment is passed in (`load(path, env)`), so tests never touch the process's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use accord_events::{DomainId, KeyId, TrustDomain};
use serde::Deserialize;

/// The one config version this build reads.
pub const VERSION: u32 = 1;

/// Sections that environment overrides may address.
const SECTIONS: &[&str] = &[
    "audit",
    "authority",
    "policy",
    "domain",
    "keys",
    "nats",
    "postgres",
    "http",
    "telemetry",
    "projections",
    "registry",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A connection the config asks for would carry secrets or decisions in clear.
    #[error("{path}: {what}")]
    Insecure { path: PathBuf, what: Insecure },
    /// `[postgres]` would connect without verified TLS to another host (ADR 0012).
    #[error("{path}: {source}")]
    Postgres {
        path: PathBuf,
        source: accord_store::projection::postgres::PgConnectError,
    },
    /// A secret file that other users may read (or change).
    #[error(
        "{path}: {key}: the secret file {} has mode {mode:04o}; make it readable by the service only (chmod 600, or 640 owned by root)", file.display()
    )]
    SecretFileExposed {
        path: PathBuf,
        key: String,
        file: PathBuf,
        mode: u32,
    },
    /// A bearer token too weak to resist online guessing (`accord_web::check_token_strength`).
    #[error("{path}: {name}: the token {weakness}; make one with `openssl rand -base64 32`")]
    WeakToken {
        path: PathBuf,
        name: &'static str,
        weakness: accord_web::WeakToken,
    },
}

/// What [`ConfigError::Insecure`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Insecure {
    #[error("policy.url must be https:// (policy.dangerous_plaintext_http = true allows http://)")]
    PlaintextPdp,
    #[error(
        "[authority] needs HTTPS: set http.tls_cert and http.tls_key (enrollment and admin tokens cross it)"
    )]
    AuthorityWithoutTls,
    #[error("authority.public_url must be https://")]
    AuthorityPlaintextUrl,
}

/// What a config is loaded for: `accord serve` (every check) or `accord dev`, whose domain
/// lives on this machine and may run the ACA without HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Serve,
    Dev,
}

/// A reference to a secret: the config says where it is, never what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `file:/path`: a file readable only by the service.
    File(PathBuf),
    /// `pkcs11:...` (RFC 7512): a key in a PKCS#11 token.
    Pkcs11(String),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("file:") {
            if p.is_empty() {
                return Err("file: reference without a path".into());
            }
            return Ok(Self::File(PathBuf::from(p)));
        }
        if s.starts_with("pkcs11:") {
            return Ok(Self::Pkcs11(s.to_owned()));
        }
        Err(
            "is not a secret reference (file:PATH or pkcs11:URI); secrets never go in the config"
                .into(),
        )
    }

    /// The secret's bytes (files only).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
            Self::Pkcs11(uri) => Err(format!("{uri}: this secret must be a file")),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub domain: DomainSection,
    pub keys: KeysSection,
    pub nats: NatsSection,
    #[serde(default)]
    pub postgres: Option<PostgresSection>,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub projections: ProjectionsSection,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub audit: AuditSection,
    /// The Agent Credential Authority; not run when absent.
    #[serde(default)]
    pub authority: Option<AuthoritySection>,
    /// The Agent Registry Service; not run when absent.
    #[serde(default)]
    pub registry: Option<RegistrySection>,
}

/// `[authority]`: the ACA's keys, certificate and issuing rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthoritySection {
    /// The agent CA's private key: `pkcs11:...` (an HSM) or `file:...` (development only).
    pub ca_key: SecretRef,
    /// The agent CA's certificate, then any certificates above it (PEM).
    pub ca_certificate: PathBuf,
    /// The key that signs workload identity and enrollment tokens: `pkcs11:` or `file:`.
    pub token_key: SecretRef,
    /// Where agents reach the ACA (`https://aca.example:8443`): the CRL distribution point
    /// and the audience of enrollment and proof tokens.
    pub public_url: String,
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    #[serde(default = "default_enrollment_ttl")]
    pub enrollment_ttl_secs: u64,
    /// Accept RSA keys (2048 bits or more, SHA-256) in requests.
    #[serde(default)]
    pub allow_rsa: bool,
    /// The OID arc of the credential extensions (your IANA PEN arc).
    #[serde(default)]
    pub extension_arc: Option<String>,
    #[serde(default = "default_crl_validity")]
    pub crl_validity_secs: u64,
    /// Requests per minute per client address on the enrollment API.
    #[serde(default = "default_rate")]
    pub rate_limit_per_minute: u32,
    /// The issuance policy (`accord.<policy>` in the bundle).
    #[serde(default = "default_issuance_policy")]
    pub policy: String,
    /// How long an attestation nonce is accepted, seconds.
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_secs: u64,
    /// After a key rotation, how long the old credential stays valid, seconds.
    #[serde(default = "default_rotation_grace")]
    pub rotation_grace_secs: u64,
    /// How often expiries are recorded and rotation grace periods ended, seconds.
    #[serde(default = "default_sweep_every")]
    pub sweep_every_secs: u64,
    /// The account nkey seed that signs the NATS auth callout's answers (its public key is
    /// `auth_callout.issuer` in the server config). With `nats_callout_credentials`, the ACA
    /// admits agents to NATS (ADR 0006).
    #[serde(default)]
    pub nats_callout_issuer: Option<SecretRef>,
    /// The nkey seed of the callout service's user (listed in `auth_users`).
    #[serde(default)]
    pub nats_callout_credentials: Option<SecretRef>,
    /// The system account's nkey seed: lets the ACA disconnect a revoked agent's live
    /// connections (optional; the user JWT's short expiry bounds them otherwise).
    #[serde(default)]
    pub nats_system_credentials: Option<SecretRef>,
}

fn default_nonce_ttl() -> u64 {
    300
}
fn default_rotation_grace() -> u64 {
    300
}
fn default_sweep_every() -> u64 {
    30
}
fn default_lifetime() -> u64 {
    3600
}
fn default_enrollment_ttl() -> u64 {
    24 * 3600
}
fn default_crl_validity() -> u64 {
    24 * 3600
}
fn default_rate() -> u32 {
    600
}
fn default_issuance_policy() -> String {
    "issuance".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEngine {
    /// regorus in-process, bundles from the log
    #[default]
    Embedded,
    /// a remote OPA (REST data API)
    Opa,
    /// a remote AuthZEN evaluation endpoint
    Authzen,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default)]
    pub engine: PolicyEngine,
    /// Base URL of the remote PDP (engine = "opa" or "authzen"): `https://`.
    #[serde(default)]
    pub url: Option<String>,
    /// Accept an `http://` url: anyone on the path can forge an allow (finding 17).
    #[serde(default)]
    pub dangerous_plaintext_http: bool,
    /// CA certificate of the remote PDP (PEM).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The bundle the domain's enforcement points decide with.
    #[serde(default = "default_bundle")]
    pub bundle: String,
    /// Fraction of allowing decisions recorded in the decision log (denies are always).
    #[serde(default = "default_sample")]
    pub decision_log_sample: f64,
    #[serde(default = "default_decision_age")]
    pub decision_log_max_age_secs: u64,
    #[serde(default = "default_decision_bytes")]
    pub decision_log_max_bytes: i64,
}

fn default_bundle() -> String {
    "default".into()
}
fn default_sample() -> f64 {
    1.0
}
fn default_decision_age() -> u64 {
    7 * 24 * 3600
}
fn default_decision_bytes() -> i64 {
    1 << 30
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            engine: PolicyEngine::Embedded,
            url: None,
            dangerous_plaintext_http: false,
            ca: None,
            bundle: default_bundle(),
            decision_log_sample: default_sample(),
            decision_log_max_age_secs: default_decision_age(),
            decision_log_max_bytes: default_decision_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    pub id: DomainId,
    pub trust_domain: TrustDomain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// The domain's Ed25519 event-signing key (PKCS#8), in software (design §3).
    pub event_signing: SecretRef,
    /// The audit checkpoint key (PKCS#8).
    pub audit: SecretRef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// Server URLs, comma-separated (`tls://host:4222,tls://host2:4222`).
    pub url: String,
    /// CA certificate(s) that signed the servers' TLS certificates (PEM).
    pub ca: PathBuf,
    /// The services' NATS identity: an nkey seed file.
    pub credentials: SecretRef,
    /// JetStream domain to address, when not the connection's own.
    #[serde(default)]
    pub js_domain: Option<String>,
    /// Replicas of ACCORD_EVENTS: 1, 3 or 5.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    #[serde(default = "default_dup_window")]
    pub duplicate_window_secs: u64,
}

fn default_replicas() -> usize {
    1
}
fn default_dup_window() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// `postgres://user@host:port/db` (no password here: see `password`); `sslmode`
    /// `verify-full` (the default), `require` (verified the same way) or `disable`.
    pub url: String,
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// CA certificate(s) that signed the server's certificate (PEM): TLS is verified against
    /// them and the URL's host name (ADR 0012).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Connect without TLS: only to a loopback address or a Unix socket.
    #[serde(default)]
    pub dangerous_plaintext_local: bool,
    #[serde(default = "default_pg_connections")]
    pub max_connections: usize,
}

fn default_pg_connections() -> usize {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Server certificate chain (PEM). HTTPS when set together with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<SecretRef>,
    /// Bearer token for the admin endpoints (publishing policies, decisions, rebuilds, the
    /// ACA's provisioning, revocation, trust and lifecycle routes); also reads the read models.
    /// A file of at least 32 characters, read on every request.
    #[serde(default)]
    pub admin_token: Option<SecretRef>,
    /// Bearer token that only reads the read models (`/v1/projections/{name}/tables/{table}`
    /// and `/digest`), for auditors. Same rules as `admin_token`.
    #[serde(default)]
    pub read_token: Option<SecretRef>,
    /// Requests per minute per client address on the read-model and domain admin routes.
    #[serde(default = "default_http_rate")]
    pub rate_limit_per_minute: u32,
}

fn default_http_rate() -> u32 {
    600
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            admin_token: None,
            read_token: None,
            rate_limit_per_minute: default_http_rate(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    #[serde(default)]
    pub log_format: LogFormat,
    /// `tracing` filter directives (`info`, `accord=debug,info`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// OTLP/HTTP endpoint of a collector (`http://collector:4318`); traces and metrics are
    /// exported there when set.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// How often metrics are exported over OTLP, milliseconds.
    #[serde(default = "default_otlp_interval")]
    pub otlp_interval_ms: u64,
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_otlp_interval() -> u64 {
    10_000
}

fn default_log_level() -> String {
    "info".into()
}
fn default_service_name() -> String {
    "accord".into()
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: default_log_level(),
            otlp_endpoint: None,
            otlp_interval_ms: default_otlp_interval(),
            service_name: default_service_name(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionsSection {
    /// Most events applied in one transaction.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Key ids pinned for `accord events tail` and audits run with this config.
    #[serde(default)]
    pub pins: Vec<KeyId>,
}

fn default_batch() -> usize {
    500
}

impl Default for ProjectionsSection {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            pins: Vec::new(),
        }
    }
}

/// `[audit]`: the Merkle log over the stream and its signed checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Sign checkpoints with `keys.audit` (one signer per domain is enough; several race
    /// harmlessly by compare-and-set).
    #[serde(default = "yes")]
    pub checkpoints: bool,
    /// Sign as soon as this many events are not covered (1..=1000000).
    #[serde(default = "default_checkpoint_events")]
    pub checkpoint_every_events: u64,
    /// Sign at the latest this long after the last checkpoint when events are not covered
    /// (10..=3600000).
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_every_ms: u64,
    /// Requests per minute per client address on the audit routes.
    #[serde(default = "default_audit_rate")]
    pub rate_limit_per_minute: u32,
}

fn yes() -> bool {
    true
}
fn default_checkpoint_events() -> u64 {
    1000
}
fn default_checkpoint_ms() -> u64 {
    1000
}
fn default_audit_rate() -> u32 {
    600
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoints: true,
            checkpoint_every_events: default_checkpoint_events(),
            checkpoint_every_ms: default_checkpoint_ms(),
            rate_limit_per_minute: default_audit_rate(),
        }
    }
}

/// Parses an environment value as TOML when it is a valid TOML value (number, boolean, quoted
/// string, array), else as a plain string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Reads `path`, applies `ACCORD_<SECTION>__<KEY>` overrides from `env`, and validates for
/// `accord serve`.
pub fn load(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    load_for(path, env, Profile::Serve)
}

/// [`load`] for `profile`.
pub fn load_for(
    path: &Path,
    env: &[(String, String)],
    profile: Profile,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_owned(),
        message: message.replace('\n', " ").trim().to_owned(),
    };
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("ACCORD_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        if lower == "version" {
            table.insert("version".into(), env_value(v));
            continue;
        }
        let Some((section, key)) = lower.split_once("__") else {
            continue; // ACCORD_NATS_SERVER and other tool variables are not config
        };
        if !SECTIONS.contains(&section) {
            return Err(invalid(format!(
                "environment variable {k}: no section [{section}]"
            )));
        }
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(invalid(format!("[{section}] is not a table")));
        };
        t.insert(key.to_owned(), env_value(v));
    }
    let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(
        |e: serde_path_to_error::Error<toml::de::Error>| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                invalid(inner.message().to_owned())
            } else {
                invalid(format!("{path}: {}", inner.message()))
            }
        },
    )?;
    validate(&config).map_err(invalid)?;
    checks::transport(&config, profile, path)?;
    checks::secret_files(&config, path)?;
    for (name, token) in [
        ("http.admin_token", &config.http.admin_token),
        ("http.read_token", &config.http.read_token),
    ] {
        let Some(r) = token else { continue };
        let raw = r.read().map_err(|e| invalid(format!("{name}: {e}")))?;
        accord_web::check_token_strength(&raw).map_err(|weakness| ConfigError::WeakToken {
            path: path.to_owned(),
            name,
            weakness,
        })?;
    }
    Ok(config)
}

fn validate(c: &Config) -> Result<(), String> {
    if c.version != VERSION {
        return Err(format!(
            "version = {} is not supported (this build reads version {VERSION})",
            c.version
        ));
    }
    if !matches!(c.nats.replicas, 1 | 3 | 5) {
        return Err(format!(
            "nats.replicas = {} (must be 1, 3 or 5)",
            c.nats.replicas
        ));
    }
    if c.nats.url.split(',').any(|u| u.trim().is_empty()) {
        return Err("nats.url has an empty server URL".into());
    }
    if c.nats.duplicate_window_secs == 0 {
        return Err("nats.duplicate_window_secs must be positive".into());
    }
    if c.projections.batch_size == 0 || c.projections.batch_size > 10_000 {
        return Err("projections.batch_size must be 1..=10000".into());
    }
    if !(1..=1_000_000).contains(&c.audit.checkpoint_every_events) {
        return Err("audit.checkpoint_every_events must be 1..=1000000".into());
    }
    if !(10..=3_600_000).contains(&c.audit.checkpoint_every_ms) {
        return Err("audit.checkpoint_every_ms must be 10..=3600000".into());
    }
    if c.audit.rate_limit_per_minute == 0 {
        return Err("audit.rate_limit_per_minute must be at least 1".into());
    }
    if let Some(pg) = &c.postgres {
        let userinfo = pg
            .url
            .split_once("//")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(u, _)| u)
            .unwrap_or("");
        if userinfo.contains(':') {
            return Err(
                "postgres.url holds a password; use postgres.password = \"file:...\"".into(),
            );
        }
        if pg.max_connections == 0 {
            return Err("postgres.max_connections must be positive".into());
        }
    }
    if c.policy.engine != PolicyEngine::Embedded && c.policy.url.is_none() {
        return Err("policy.url is required for a remote policy engine".into());
    }
    if !(0.0..=1.0).contains(&c.policy.decision_log_sample) {
        return Err("policy.decision_log_sample must be within 0.0..=1.0".into());
    }
    if accord_events::AggregateId::parse(&c.policy.bundle).is_err() {
        return Err(format!(
            "policy.bundle {:?} is not a bundle name",
            c.policy.bundle
        ));
    }
    if let Some(a) = &c.authority {
        if !(60..=30 * 24 * 3600).contains(&a.lifetime_secs) {
            return Err("authority.lifetime_secs must be 60..=2592000".into());
        }
        if !(60..=30 * 24 * 3600).contains(&a.enrollment_ttl_secs) {
            return Err("authority.enrollment_ttl_secs must be 60..=2592000".into());
        }
        if !(60..=30 * 24 * 3600).contains(&a.crl_validity_secs) {
            return Err("authority.crl_validity_secs must be 60..=2592000".into());
        }
        if a.rate_limit_per_minute == 0 {
            return Err("authority.rate_limit_per_minute must be positive".into());
        }
        if !a.public_url.starts_with("https://") && !a.public_url.starts_with("http://") {
            return Err("authority.public_url must be an http(s) URL".into());
        }
        if let Some(arc) = &a.extension_arc {
            accord_authority::profile::ExtensionArc::parse(arc)
                .map_err(|e| format!("authority.extension_arc: {e}"))?;
        }
        accord_policy::check_policy_name(&a.policy)
            .map_err(|e| format!("authority.policy: {e}"))?;
        if !a.ca_certificate.exists() {
            return Err(format!(
                "authority.ca_certificate: {} does not exist",
                a.ca_certificate.display()
            ));
        }
        for (name, r) in [
            ("authority.ca_key", &a.ca_key),
            ("authority.token_key", &a.token_key),
        ] {
            if let SecretRef::File(p) = r
                && !p.exists()
            {
                return Err(format!("{name}: {} does not exist", p.display()));
            }
        }
    }
    if c.http.tls_cert.is_some() != c.http.tls_key.is_some() {
        return Err("http.tls_cert and http.tls_key go together".into());
    }
    if c.http.rate_limit_per_minute == 0 {
        return Err("http.rate_limit_per_minute must be at least 1".into());
    }
    for (name, r) in [
        ("keys.event_signing", &c.keys.event_signing),
        ("keys.audit", &c.keys.audit),
        ("nats.credentials", &c.nats.credentials),
    ] {
        if let SecretRef::File(p) = r
            && !p.exists()
        {
            return Err(format!("{name}: {} does not exist", p.display()));
        }
    }
    if !c.nats.ca.exists() {
        return Err(format!("nats.ca: {} does not exist", c.nats.ca.display()));
    }
    registry::validate(c)
}

mod checks;
mod registry;
pub use registry::{DirectoryKind, RegistrySection};

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
