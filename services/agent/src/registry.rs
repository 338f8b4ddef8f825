//! The agent side of the registry (draft §3.3–3.5): register the agent's record with its
//! credential (its certificate as TLS client certificate, or its WIT with a proof by its key
//! for agents behind a TLS-terminating proxy), and discover other agents.
//!
//! The record's capabilities, owner and AIBOM digest come from the credential (`agent.json`):
//! the registry accepts exactly what the ACA signed, nothing else.

use accord_authority::registrar::{RegisterRequest, RegisterResponse};
use accord_events::catalogue::{Audience, CardFields, Endpoint, Skill};
use accord_registry::{SearchRequest, SearchResponse, ShowResponse};

use crate::{AgentDir, AgentError, AgentState, proof_token};

/// How the agent proves itself to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Its X.509-SVID as TLS client certificate.
    Certificate,
    /// Its WIT and a single-use proof token for each request.
    Wit,
}

/// A client of one domain's registry, as one agent.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    url: String,
    http: reqwest::Client,
    dir: AgentDir,
    auth: Auth,
}

/// What an agent says about itself beyond what its credential signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// The name it was provisioned under.
    pub name: String,
    pub description: String,
    pub endpoints: Vec<Endpoint>,
    pub skills: Vec<Skill>,
    pub audience: Audience,
    pub card: Option<CardFields>,
}

/// The registration of the credential in `state`, described as `d`.
pub fn registration(state: &AgentState, d: Description) -> RegisterRequest {
    RegisterRequest {
        name: d.name,
        description: d.description,
        capabilities: state.capabilities.iter().cloned().collect(),
        owner: state.owner.clone(),
        aibom_digest: state.aibom_digest.clone(),
        endpoints: d.endpoints,
        skills: d.skills,
        audience: d.audience,
        card: d.card.unwrap_or_default(),
    }
}

/// PEM of a PKCS#8 key.
fn key_pem(pkcs8: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

impl RegistryClient {
    /// A client of the registry at `url` (`https://host:port`), trusting `ca_pem` for its
    /// server certificate, as the agent whose folder is `dir`.
    pub fn new(url: &str, ca_pem: &[u8], dir: &AgentDir, auth: Auth) -> Result<Self, AgentError> {
        let mut b = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)
                .map_err(|e| AgentError::Protocol(format!("the registry's CA: {e}")))?]);
        if auth == Auth::Certificate {
            let cert = std::fs::read(dir.cert()).map_err(|e| crate::file_err(&dir.cert(), e))?;
            let mut pem = key_pem(&dir.read_key()?).into_bytes();
            pem.extend_from_slice(&cert);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| AgentError::Key(format!("the agent's certificate and key: {e}")))?;
            b = b.identity(id);
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http: b.build().map_err(|e| AgentError::Protocol(e.to_string()))?,
            dir: dir.clone(),
            auth,
        })
    }

    /// The WIT headers for a request to `path`, when the client proves itself that way.
    fn headers(&self, path: &str) -> Result<Vec<(&'static str, String)>, AgentError> {
        if self.auth == Auth::Certificate {
            return Ok(Vec::new());
        }
        let wit = self.dir.read_wit()?;
        let wpt = proof_token(
            &self.dir.read_key()?,
            &wit,
            &format!("{}{path}", self.url),
            None,
        )?;
        Ok(vec![
            ("workload-identity-token", wit.trim().to_owned()),
            ("workload-proof-token", wpt),
        ])
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, AgentError> {
        let url = format!("{}{path}", self.url);
        let mut req = req;
        for (k, v) in self.headers(path)? {
            req = req.header(k, v);
        }
        crate::send(&url, req).await
    }

    /// Registers (or updates) the agent's record.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, AgentError> {
        let state = self.dir.read_state()?;
        let path = format!("/v1/registry/agents/{}", state.agent_id);
        let url = format!("{}{path}", self.url);
        self.send(&path, self.http.put(url).json(req)).await
    }

    /// One page of a discovery.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResponse, AgentError> {
        let path = "/v1/registry/search";
        let url = format!("{}{path}", self.url);
        self.send(path, self.http.post(url).json(req)).await
    }

    /// One record, when the policy shows it to this agent.
    pub async fn show(&self, agent_id: &str) -> Result<ShowResponse, AgentError> {
        let path = format!("/v1/registry/agents/{agent_id}");
        let url = format!("{}{path}", self.url);
        self.send(&path, self.http.get(url)).await
    }
}
