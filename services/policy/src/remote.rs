//! A remote PDP for domains that already run one: OPA's REST data API
//! (`POST /v1/data/<path>` with `{"input": ...}` → `{"result": ...}`) or an OpenID AuthZEN
//! evaluation endpoint (`POST /access/v1/evaluation` → `{"decision": bool}`). Same decisions,
//! same default deny.
//!
//! The transport is part of the decision: a forged answer is an allow. So the URL must be
//! `https://` (plaintext only through [`RemotePdp::dangerous_plaintext`]), redirects are not
//! followed, only a 2xx answer is read, and at most [`MAX_ANSWER_BYTES`] of it.

use std::time::{Duration, Instant};

use accord_events::Digest;
use serde_json::{Value, json};

use crate::decision::{BundleRef, Decision};
use crate::pdp::{PdpError, check_policy_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    Opa,
    Authzen,
}

/// The largest answer read from a remote PDP; a larger one is [`PdpError::Malformed`].
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct RemotePdp {
    kind: RemoteKind,
    url: String,
    client: reqwest::Client,
}

impl RemotePdp {
    /// Over `https://` only, with the platform's roots or `ca` as the only root; 2 s timeout;
    /// redirects are never followed.
    pub fn with_ca(kind: RemoteKind, url: &str, ca_pem: Option<&[u8]>) -> Result<Self, PdpError> {
        if !has_scheme(url, "https://") {
            return Err(PdpError::InsecureUrl(url.to_owned()));
        }
        let mut b = builder().https_only(true);
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| PdpError::Unavailable(format!("CA: {e}")))?;
            b = b.tls_certs_only([cert]);
        }
        Self::build(kind, url, b)
    }

    /// Also over plaintext `http://`, where anyone on the path can forge an allow: only for a
    /// PDP on the same host or in tests (`policy.dangerous_plaintext_http`).
    pub fn dangerous_plaintext(kind: RemoteKind, url: &str) -> Result<Self, PdpError> {
        if !has_scheme(url, "https://") && !has_scheme(url, "http://") {
            return Err(PdpError::InsecureUrl(url.to_owned()));
        }
        Self::build(kind, url, builder())
    }

    fn build(kind: RemoteKind, url: &str, b: reqwest::ClientBuilder) -> Result<Self, PdpError> {
        let client = b
            .build()
            .map_err(|e| PdpError::Unavailable(e.to_string()))?;
        Ok(Self {
            kind,
            url: url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    fn bundle(&self) -> BundleRef {
        BundleRef {
            name: format!(
                "remote:{}",
                match self.kind {
                    RemoteKind::Opa => "opa",
                    RemoteKind::Authzen => "authzen",
                }
            ),
            version: 0,
            digest: Digest::sha256(self.url.as_bytes()),
            published_seq: 0,
        }
    }

    pub async fn decide(&self, policy: &str, input: &Value) -> Result<Decision, PdpError> {
        check_policy_name(policy)?;
        let started = Instant::now();
        let unavailable = |e: reqwest::Error| PdpError::Unavailable(e.to_string());
        let result = match self.kind {
            RemoteKind::Opa => {
                let url = format!("{}/v1/data/accord/{policy}/decision", self.url);
                let resp = answer(
                    self.client
                        .post(url)
                        .json(&json!({ "input": input }))
                        .send()
                        .await
                        .map_err(unavailable)?,
                )
                .await?;
                // no "result": the decision is undefined, a deny
                resp.get("result").cloned().unwrap_or(Value::Null)
            }
            RemoteKind::Authzen => {
                let subject = input
                    .get("subject")
                    .or_else(|| input.get("requester"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let resource = input
                    .get("resource")
                    .or_else(|| input.get("record"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let action = input
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or(policy)
                    .to_owned();
                let body = json!({
                    "subject": {"type": subject.get("type").cloned().unwrap_or(json!("agent")), "id": subject.get("id").cloned().unwrap_or(json!("")), "properties": subject},
                    "action": {"name": action},
                    "resource": {"type": resource.get("type").cloned().unwrap_or(json!(policy)), "id": resource.get("id").or_else(|| resource.get("agent_id")).cloned().unwrap_or(json!("")), "properties": resource},
                    "context": {"policy": policy, "input": input},
                });
                let resp = answer(
                    self.client
                        .post(format!("{}/access/v1/evaluation", self.url))
                        .json(&body)
                        .send()
                        .await
                        .map_err(unavailable)?,
                )
                .await?;
                match resp.get("decision") {
                    Some(Value::Bool(allow)) => {
                        let mut r = json!({ "allow": allow });
                        if let Some(reasons) = resp.pointer("/context/reasons") {
                            r["reasons"] = reasons.clone();
                        }
                        r
                    }
                    _ => Value::Null,
                }
            }
        };
        Ok(Decision::new(
            policy,
            result,
            self.bundle(),
            0,
            started.elapsed().as_micros() as u64,
        ))
    }
}

/// The client every remote PDP uses: 2 s timeout, no redirects (a redirect could send the
/// question, and take the answer, elsewhere).
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
}

fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        && url.len() > scheme.len()
}

/// A 2xx answer's JSON, read up to [`MAX_ANSWER_BYTES`]. Anything else (a redirect included)
/// is an error, which the caller treats as a deny.
async fn answer(mut resp: reqwest::Response) -> Result<Value, PdpError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(PdpError::Unavailable(format!("answered {status}")));
    }
    let too_big = || PdpError::Malformed(format!("answer above {MAX_ANSWER_BYTES} bytes"));
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| PdpError::Unavailable(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| PdpError::Malformed(format!("not JSON: {e}")))
}
