//! The agent side of enrollment (draft §3.1): the agent makes its own key, which never leaves
//! it, asks the ACA for a credential with a CSR (the proof of possession), and keeps the result
//! in a folder:
//!
//! ```text
//! <dir>/key.pk8       the agent's private key, PKCS#8 (0600)
//! <dir>/cert.pem      its X.509-SVID
//! <dir>/chain.pem     the CA chain the certificate verifies under
//! <dir>/wit.jwt       its workload identity token (0600: it names the agent; never a bearer token)
//! <dir>/agent.json    agent id, SPIFFE ID, serial, validity, capabilities, the ACA's URL
//! <dir>/domain.json   the domain's id and event-signing keys, as the ACA served them over
//!                     TLS at enrollment (the revocation feed checks every event against them)
//! ```
//!
//! Renewal proves the current credential with a workload proof token signed by the current key
//! (`wpt+jwt`, bound to the identity token and to the new CSR), and may move to a new key.

pub mod feed;
pub mod registry;
pub mod sidecar;
pub mod workload;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod evidence;

use accord_authority::api::{CredentialRequest, CredentialResponse, Evidence};
use accord_authority::jws::{self, TYP_WPT};
use accord_authority::signer::SoftwareKey;
use accord_events::AgentId;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("key: {0}")]
    Key(String),
    #[error("the ACA at {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    /// The ACA refused: its problem document's type, status and detail.
    #[error("the ACA refused ({status} {kind}): {detail}")]
    Refused {
        status: u16,
        kind: String,
        detail: String,
    },
    #[error("the ACA answered something unexpected: {0}")]
    Protocol(String),
    /// What the agent's side was given does not allow it (a folder without a credential, a
    /// certificate file without one certificate, ...).
    #[error("{0}")]
    Setup(String),
    /// The SPIFFE Workload API's socket or the revocation feed failed.
    #[error("{0}")]
    Service(String),
}

/// Key types an agent can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    #[default]
    P256,
    Ed25519,
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "p256" | "P-256" | "ecdsa-p256" => Ok(Self::P256),
            "ed25519" | "Ed25519" => Ok(Self::Ed25519),
            other => Err(format!("key type {other:?} (p256 or ed25519)")),
        }
    }
}

/// What an agent keeps about its credential (`agent.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    pub agent_id: AgentId,
    pub spiffe_id: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub capabilities: Vec<String>,
    /// The ACA's base URL.
    pub url: String,
    /// The owner and AIBOM digest signed into the credential (absent in folders written
    /// before the registry: a registration from those must name them itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<accord_events::catalogue::Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aibom_digest: Option<accord_events::Digest>,
}

/// What an agent pins of its domain (`domain.json`): the keys that sign its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    pub domain_id: accord_events::DomainId,
    pub trust_domain: accord_events::TrustDomain,
    pub event_signing_keys: Vec<accord_events::DomainKey>,
}

impl DomainInfo {
    /// The key ring the feed verifies events with: these keys, pinned.
    pub fn key_ring(&self) -> Result<accord_events::KeyRing, AgentError> {
        accord_events::KeyRing::trusting(&self.event_signing_keys)
            .map_err(|e| AgentError::Protocol(format!("the domain's event-signing keys: {e}")))
    }
}

/// A client of one ACA.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    http: reqwest::Client,
    /// The lifetime asked for each credential (the ACA's default when `None`).
    lifetime_secs: Option<u64>,
}

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// Writes `bytes` to `path`, readable by the owner only: into a new temporary file (0600, made
/// with O_EXCL), then renamed over `path`, so that neither an existing file's mode nor a
/// stale or planted temporary file (its mode, or a symlink) carries over.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let tmp = path.with_extension("tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(&tmp, e)),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| file_err(&tmp, e))?;
    f.sync_all().map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    std::fs::write(path, bytes).map_err(|e| file_err(path, e))
}

/// A new private key, PKCS#8 DER.
pub fn generate_key(kind: KeyType) -> Result<Vec<u8>, AgentError> {
    match kind {
        KeyType::P256 => SoftwareKey::generate_p256()
            .map(|(_, der)| der)
            .map_err(|e| AgentError::Key(e.to_string())),
        KeyType::Ed25519 => accord_events::Ed25519Key::generate()
            .map(|(_, der)| der)
            .map_err(|e| AgentError::Key(e.to_string())),
    }
}

/// A PKCS#10 request (PEM) for the key: no subject, no names, no extensions (the ACA decides
/// them); its signature is the proof of possession.
pub fn make_csr(pkcs8: &[u8]) -> Result<String, AgentError> {
    let key = rcgen::KeyPair::try_from(pkcs8).map_err(|e| AgentError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| AgentError::Key(e.to_string()))
}

impl Client {
    /// A client of the ACA at `url` (`https://host:port`), trusting the CA certificates of
    /// `ca_pem` for its TLS (the system roots when `None`).
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, AgentError> {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| AgentError::Protocol(format!("CA file: {e}")))?;
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| AgentError::Protocol(e.to_string()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http,
            lifetime_secs: None,
        })
    }

    /// Asks for credentials of this lifetime (the ACA bounds it; its default when `None`).
    pub fn with_lifetime(mut self, secs: Option<u64>) -> Self {
        self.lifetime_secs = secs;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The domain the ACA serves, with its event-signing keys (`GET /v1/domain`, over the TLS
    /// connection authenticated by the domain's CA).
    pub async fn domain(&self) -> Result<DomainInfo, AgentError> {
        self.get("/v1/domain").await
    }

    /// The domain's JWK Set of token keys (`GET /v1/jwks`): what verifies the JWT-SVIDs it
    /// issues.
    pub async fn jwks(&self) -> Result<serde_json::Value, AgentError> {
        self.get("/v1/jwks").await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, AgentError> {
        let url = format!("{}{path}", self.url);
        send(&url, self.http.get(&url)).await
    }

    /// A JWT-SVID for `audience`, proved by the credential in `dir` (its WIT and a fresh proof
    /// by its key).
    pub async fn jwt_svid(
        &self,
        dir: &AgentDir,
        audience: Vec<String>,
    ) -> Result<accord_authority::svid::JwtSvidResponse, AgentError> {
        let state = dir.read_state()?;
        let wit = dir.read_wit()?;
        let url = format!("{}/v1/agents/{}/jwt-svids", self.url, state.agent_id);
        let wpt = proof_token(&dir.read_key()?, &wit, &url, None)?;
        let req = self
            .http
            .post(&url)
            .header("workload-identity-token", wit.trim())
            .header("workload-proof-token", wpt)
            .json(&accord_authority::svid::JwtSvidRequest { audience });
        send(&url, req).await
    }

    fn credentials_url(&self, agent: &AgentId) -> String {
        format!("{}/v1/agents/{agent}/credentials", self.url)
    }

    async fn post(
        &self,
        agent: &AgentId,
        req: &CredentialRequest,
        headers: &[(&str, String)],
    ) -> Result<CredentialResponse, AgentError> {
        let url = self.credentials_url(agent);
        let mut r = self.http.post(&url).json(req);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        send(&url, r).await
    }

    /// The first credential, with the enrollment token of the agent's provisioning.
    pub async fn enroll(
        &self,
        agent: &AgentId,
        enrollment_token: &str,
        pkcs8: &[u8],
        capabilities: Option<Vec<String>>,
    ) -> Result<CredentialResponse, AgentError> {
        self.enroll_with(agent, enrollment_token, pkcs8, capabilities, None)
            .await
    }

    /// [`Client::enroll`] with evidence (see [`evidence::gather`]).
    pub async fn enroll_with(
        &self,
        agent: &AgentId,
        enrollment_token: &str,
        pkcs8: &[u8],
        capabilities: Option<Vec<String>>,
        evidence: Option<Evidence>,
    ) -> Result<CredentialResponse, AgentError> {
        let req = CredentialRequest {
            csr: make_csr(pkcs8)?,
            capabilities,
            lifetime_secs: self.lifetime_secs,
            evidence,
        };
        self.post(
            agent,
            &req,
            &[(
                "authorization",
                format!("Bearer {}", enrollment_token.trim()),
            )],
        )
        .await
    }

    /// A new credential for `new_pkcs8` (the current key again, or a new one), proved by the
    /// current key and its identity token.
    pub async fn renew(
        &self,
        agent: &AgentId,
        current_pkcs8: &[u8],
        wit: &str,
        new_pkcs8: &[u8],
    ) -> Result<CredentialResponse, AgentError> {
        self.renew_with(agent, current_pkcs8, wit, new_pkcs8, None)
            .await
    }

    /// [`Client::renew`] with evidence (re-attestation, when the domain's policy asks).
    pub async fn renew_with(
        &self,
        agent: &AgentId,
        current_pkcs8: &[u8],
        wit: &str,
        new_pkcs8: &[u8],
        evidence: Option<Evidence>,
    ) -> Result<CredentialResponse, AgentError> {
        let csr = make_csr(new_pkcs8)?;
        let csr_der = pem_body(&csr)?;
        let wpt = proof_token(
            current_pkcs8,
            wit,
            &self.credentials_url(agent),
            Some(&csr_der),
        )?;
        let req = CredentialRequest {
            csr,
            capabilities: None,
            lifetime_secs: self.lifetime_secs,
            evidence,
        };
        self.post(
            agent,
            &req,
            &[
                ("workload-identity-token", wit.trim().to_owned()),
                ("workload-proof-token", wpt),
            ],
        )
        .await
    }
}

/// A workload proof token (`wpt+jwt`) by the agent's key: for `aud`, bound to `wit` (and to the
/// request's CSR, when one is given), living one minute, with a fresh `jti`.
pub fn proof_token(
    pkcs8: &[u8],
    wit: &str,
    aud: &str,
    csr_der: Option<&[u8]>,
) -> Result<String, AgentError> {
    let key =
        SoftwareKey::from_pkcs8(pkcs8, "agent key").map_err(|e| AgentError::Key(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = serde_json::json!({
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": jws::random_jti(),
        "wth": jws::hash_b64(wit.trim().as_bytes()),
    });
    if let (Some(der), Some(o)) = (csr_der, claims.as_object_mut()) {
        o.insert("csr".into(), jws::hash_b64(der).into());
    }
    jws::sign(&key, TYP_WPT, &claims).map_err(|e| AgentError::Key(e.to_string()))
}

/// Sends `req` to `url` and reads its answer ([`answer`]).
pub(crate) async fn send<T: serde::de::DeserializeOwned>(
    url: &str,
    req: reqwest::RequestBuilder,
) -> Result<T, AgentError> {
    let resp = req.send().await.map_err(|e| AgentError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    answer(url, resp).await
}

/// A JSON answer of the ACA, or its problem document as [`AgentError::Refused`].
pub(crate) async fn answer<T: serde::de::DeserializeOwned>(
    url: &str,
    resp: reqwest::Response,
) -> Result<T, AgentError> {
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| AgentError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    if !status.is_success() {
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return Err(AgentError::Refused {
            status: status.as_u16(),
            kind: p["type"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned(),
            detail: p["detail"].as_str().unwrap_or("").to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| AgentError::Protocol(e.to_string()))
}

fn pem_body(pem: &str) -> Result<Vec<u8>, AgentError> {
    accord_authority::csr::der_of(pem.as_bytes()).map_err(|e| AgentError::Key(e.to_string()))
}

/// The files of an agent's folder.
#[derive(Debug, Clone)]
pub struct AgentDir {
    pub root: PathBuf,
}

impl AgentDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("key.pk8")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("cert.pem")
    }
    pub fn chain(&self) -> PathBuf {
        self.root.join("chain.pem")
    }
    pub fn wit(&self) -> PathBuf {
        self.root.join("wit.jwt")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("agent.json")
    }
    pub fn domain(&self) -> PathBuf {
        self.root.join("domain.json")
    }

    /// The domain's pinned event-signing keys, when the folder has them.
    pub fn read_domain(&self) -> Result<DomainInfo, AgentError> {
        let b = std::fs::read(self.domain()).map_err(|e| file_err(&self.domain(), e))?;
        serde_json::from_slice(&b).map_err(|e| file_err(&self.domain(), e))
    }

    /// Keeps the domain's keys (first use: an existing file is not replaced, so keys pinned
    /// once stay pinned).
    pub fn pin_domain(&self, d: &DomainInfo) -> Result<(), AgentError> {
        if self.domain().exists() {
            return Ok(());
        }
        write_public(
            &self.domain(),
            &serde_json::to_vec_pretty(d).map_err(|e| AgentError::Protocol(e.to_string()))?,
        )
    }

    /// The agent's key, made (and kept, 0600) when the folder has none yet; returns the
    /// PKCS#8.
    pub fn ensure_key(&self, kind: KeyType) -> Result<Vec<u8>, AgentError> {
        if self.key().exists() {
            return self.read_key();
        }
        std::fs::create_dir_all(&self.root).map_err(|e| file_err(&self.root, e))?;
        let key = generate_key(kind)?;
        write_private(&self.key(), &key)?;
        Ok(key)
    }

    pub fn read_key(&self) -> Result<Vec<u8>, AgentError> {
        std::fs::read(self.key()).map_err(|e| file_err(&self.key(), e))
    }

    pub fn read_state(&self) -> Result<AgentState, AgentError> {
        let b = std::fs::read(self.state()).map_err(|e| file_err(&self.state(), e))?;
        serde_json::from_slice(&b).map_err(|e| file_err(&self.state(), e))
    }

    pub fn read_wit(&self) -> Result<String, AgentError> {
        std::fs::read_to_string(self.wit()).map_err(|e| file_err(&self.wit(), e))
    }

    /// Stores a credential (and the key it is for, when new).
    pub fn store(
        &self,
        url: &str,
        key: Option<&[u8]>,
        c: &CredentialResponse,
    ) -> Result<AgentState, AgentError> {
        std::fs::create_dir_all(&self.root).map_err(|e| file_err(&self.root, e))?;
        if let Some(k) = key {
            write_private(&self.key(), k)?;
        }
        write_public(&self.cert(), c.certificate.as_bytes())?;
        write_public(&self.chain(), c.chain.as_bytes())?;
        write_private(&self.wit(), c.wit.as_bytes())?;
        let state = AgentState {
            agent_id: c.agent_id,
            spiffe_id: c.spiffe_id.to_string(),
            serial: c.serial.to_string(),
            not_before: c.not_before.to_string(),
            not_after: c.not_after.to_string(),
            capabilities: c.capabilities.clone(),
            url: url.to_owned(),
            owner: c.owner.clone(),
            aibom_digest: c.aibom_digest.clone(),
        };
        write_public(
            &self.state(),
            &serde_json::to_vec_pretty(&state).map_err(|e| AgentError::Protocol(e.to_string()))?,
        )?;
        Ok(state)
    }
}

/// Makes a key, enrolls it and stores everything in `dir`.
pub async fn enroll_into(
    client: &Client,
    dir: &AgentDir,
    agent: &AgentId,
    enrollment_token: &str,
    key_type: KeyType,
    capabilities: Option<Vec<String>>,
) -> Result<AgentState, AgentError> {
    enroll_with_evidence(
        client,
        dir,
        agent,
        enrollment_token,
        key_type,
        capabilities,
        &evidence::EvidenceSource::default(),
    )
    .await
}

/// [`enroll_into`] with evidence. A key already in `dir` (made by [`AgentDir::ensure_key`], so
/// that the provider could endorse it) is used; otherwise one is made.
pub async fn enroll_with_evidence(
    client: &Client,
    dir: &AgentDir,
    agent: &AgentId,
    enrollment_token: &str,
    key_type: KeyType,
    capabilities: Option<Vec<String>>,
    src: &evidence::EvidenceSource,
) -> Result<AgentState, AgentError> {
    let key = dir.ensure_key(key_type)?;
    let ev = evidence::gather(
        client,
        agent,
        evidence::NonceAuth::Enrollment(enrollment_token),
        src,
    )
    .await?;
    let ev = (ev != Evidence::default()).then_some(ev);
    let c = client
        .enroll_with(agent, enrollment_token, &key, capabilities, ev)
        .await?;
    let state = dir.store(client.url(), Some(&key), &c)?;
    dir.pin_domain(&client.domain().await?)?;
    Ok(state)
}

/// Renews the credential in `dir`, with the same key or a new one.
pub async fn renew_in(
    client: &Client,
    dir: &AgentDir,
    new_key: Option<KeyType>,
) -> Result<AgentState, AgentError> {
    let state = dir.read_state()?;
    let current = dir.read_key()?;
    let wit = dir.read_wit()?;
    let next = match new_key {
        Some(t) => generate_key(t)?,
        None => current.clone(),
    };
    let c = client.renew(&state.agent_id, &current, &wit, &next).await?;
    let state = dir.store(client.url(), new_key.map(|_| next.as_slice()), &c)?;
    dir.pin_domain(&client.domain().await?)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use accord_authority::csr::{CsrPolicy, check};

    /// The agent's requests pass the ACA's own check, for both key types.
    #[test]
    fn the_agents_csrs_pass_the_acas_check() {
        for t in [KeyType::P256, KeyType::Ed25519] {
            let key = generate_key(t).unwrap();
            let csr = make_csr(&key).unwrap();
            let checked = check(csr.as_bytes(), &CsrPolicy { allow_rsa: false }).unwrap();
            let signer = SoftwareKey::from_pkcs8(&key, "k").unwrap();
            use accord_authority::signer::SignerExt;
            assert_eq!(checked.thumbprint, signer.jwk().1);
        }
    }

    #[test]
    fn files_are_private_where_they_must_be() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        write_private(&p, b"secret").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_secret_is_private_whatever_was_at_its_paths_before() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key.pem");
        // an existing file readable by all
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        // a stale temporary file readable by all (a crash between open and rename)
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, b"stale").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"secret 2").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret 2");
        // a temporary path planted as a symlink is not followed
        let elsewhere = d.path().join("elsewhere");
        std::fs::write(&elsewhere, b"").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &tmp).unwrap();
        write_private(&p, b"secret 3").unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"");
        assert_eq!(std::fs::read(&p).unwrap(), b"secret 3");
        assert_eq!(mode(&p), 0o600);
    }
}
