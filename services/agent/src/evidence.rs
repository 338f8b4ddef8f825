//! The agent side of the evidence (draft §3.1): the execution environment signs an EAT over a
//! nonce from the ACA with its identity certificate's key; the AIBOM, the provider's
//! endorsement and the owner binding come from elsewhere and travel as they are.
//!
//! An evidence folder (`accord agent enroll --evidence-dir`) holds any of:
//!
//! ```text
//! environment.pk8         the environment's attestation key (its identity certificate's), PKCS#8
//! environment-chain.pem   its identity certificate, then intermediates
//! measurements.json       {"<component>": "sha256:<hex>", ...}
//! eat-claims.json         other claims the environment asserts ({"dbgstat": "disabled", "ueid": ...})
//! aibom.cdx.json          the CycloneDX 1.6 AI bill of materials
//! endorsement.jwt         the provider's endorsement of this agent's key
//! owner-id-token.jwt      an ID token of the owner, carrying an owner nonce of the ACA for
//!                         this agent ([`Client::owner_nonce`], `accord agent owner-nonce`), or
//! role-grant.jwt          a role grant of the domain
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use accord_authority::api::{Evidence, NonceResponse};
use accord_authority::evidence::eat;
use accord_authority::jws;
use accord_authority::signer::SoftwareKey;
use accord_events::{AgentId, Digest};
use base64::Engine;

use crate::{AgentError, Client};

/// The environment's part: its key and certificate chain, and what it measured.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub key_pkcs8: Vec<u8>,
    pub chain_pem: String,
    pub measurements: BTreeMap<String, Digest>,
    /// Further claims of the environment (`dbgstat`, `ueid`, `swname`, ...).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Everything the agent can present.
#[derive(Debug, Clone, Default)]
pub struct EvidenceSource {
    pub environment: Option<Environment>,
    pub aibom: Option<Vec<u8>>,
    pub endorsement: Option<String>,
    pub owner_id_token: Option<String>,
    pub owner_role_grant: Option<String>,
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, AgentError> {
    let p = dir.join(name);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::file_err(&p, e)),
    }
}

fn text(dir: &Path, name: &str) -> Result<Option<String>, AgentError> {
    read_opt(dir, name)?
        .map(|b| {
            String::from_utf8(b)
                .map(|s| s.trim().to_owned())
                .map_err(|e| crate::file_err(&dir.join(name), e))
        })
        .transpose()
}

impl EvidenceSource {
    /// Reads an evidence folder (see the module documentation).
    pub fn from_dir(dir: &Path) -> Result<Self, AgentError> {
        let environment = match (
            read_opt(dir, "environment.pk8")?,
            text(dir, "environment-chain.pem")?,
        ) {
            (Some(key_pkcs8), Some(chain_pem)) => {
                let measurements = match read_opt(dir, "measurements.json")? {
                    Some(b) => serde_json::from_slice(&b)
                        .map_err(|e| crate::file_err(&dir.join("measurements.json"), e))?,
                    None => BTreeMap::new(),
                };
                let claims = match read_opt(dir, "eat-claims.json")? {
                    Some(b) => serde_json::from_slice(&b)
                        .map_err(|e| crate::file_err(&dir.join("eat-claims.json"), e))?,
                    None => serde_json::Map::new(),
                };
                Some(Environment {
                    key_pkcs8,
                    chain_pem,
                    measurements,
                    claims,
                })
            }
            (None, None) => None,
            _ => {
                return Err(crate::file_err(
                    dir,
                    "environment.pk8 and environment-chain.pem go together",
                ));
            }
        };
        Ok(Self {
            environment,
            aibom: read_opt(dir, "aibom.cdx.json")?,
            endorsement: text(dir, "endorsement.jwt")?,
            owner_id_token: text(dir, "owner-id-token.jwt")?,
            owner_role_grant: text(dir, "role-grant.jwt")?,
        })
    }
}

/// What the agent shows the ACA to be given a nonce: a workload identity token alone is not
/// enough (it is public).
#[derive(Debug, Clone, Copy)]
pub enum NonceAuth<'a> {
    /// The enrollment token (before the first credential).
    Enrollment(&'a str),
    /// A credential: its key (PKCS#8) and workload identity token; each request carries a
    /// fresh proof token by the key, for the nonce's URL.
    Credential { key: &'a [u8], wit: &'a str },
}

impl Client {
    /// A single-use attestation nonce (`eat_nonce`).
    pub async fn attestation_nonce(
        &self,
        agent: &AgentId,
        auth: NonceAuth<'_>,
    ) -> Result<NonceResponse, AgentError> {
        self.nonce(agent, "attestation-nonce", auth).await
    }

    /// A single-use owner nonce: the `nonce` the owner's identity provider puts in the ID token
    /// that binds the agent to its owner (an OIDC authentication request with `nonce=<it>`).
    pub async fn owner_nonce(
        &self,
        agent: &AgentId,
        auth: NonceAuth<'_>,
    ) -> Result<NonceResponse, AgentError> {
        self.nonce(agent, "owner-nonce", auth).await
    }

    async fn nonce(
        &self,
        agent: &AgentId,
        route: &str,
        auth: NonceAuth<'_>,
    ) -> Result<NonceResponse, AgentError> {
        let url = format!("{}/v1/agents/{agent}/{route}", self.url);
        let req = match auth {
            NonceAuth::Enrollment(token) => self.http.post(&url).bearer_auth(token.trim()),
            NonceAuth::Credential { key, wit } => {
                let wpt = crate::proof_token(key, wit, &url, None)?;
                self.http
                    .post(&url)
                    .header("workload-identity-token", wit.trim())
                    .header("workload-proof-token", wpt)
            }
        };
        crate::send(&url, req).await
    }
}

/// Signs an EAT (the Accord agent profile) over `nonce` with the environment's key.
pub fn sign_eat(env: &Environment, nonce: &str) -> Result<String, AgentError> {
    let key = SoftwareKey::from_pkcs8(&env.key_pkcs8, "environment key")
        .map_err(|e| AgentError::Key(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let m: Vec<(&str, &Digest)> = env
        .measurements
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let mut claims = eat::claims(nonce, &m, now, now + 120);
    if let Some(o) = claims.as_object_mut() {
        for (k, v) in &env.claims {
            // the profile's own claims are not the environment's to change
            if !o.contains_key(k) {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    jws::sign(&key, eat::TYP_EAT, &claims).map_err(|e| AgentError::Key(e.to_string()))
}

/// The evidence of one request: asks the ACA for a nonce (with `auth`) when the environment
/// attests.
pub async fn gather(
    client: &Client,
    agent: &AgentId,
    auth: NonceAuth<'_>,
    src: &EvidenceSource,
) -> Result<Evidence, AgentError> {
    let (identity_chain, eat) = match &src.environment {
        Some(env) => {
            let n = client.attestation_nonce(agent, auth).await?;
            (Some(env.chain_pem.clone()), Some(sign_eat(env, &n.nonce)?))
        }
        None => (None, None),
    };
    Ok(Evidence {
        identity_chain,
        eat,
        aibom: src
            .aibom
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        endorsement: src.endorsement.clone(),
        owner_id_token: src.owner_id_token.clone(),
        owner_role_grant: src.owner_role_grant.clone(),
    })
}
