//! A remote PDP for domains that already run one: OPA's REST data API
//! (`POST /v1/data/<path>` with `{"input": ...}` → `{"result": ...}`) or an OpenID AuthZEN
//! evaluation endpoint (`POST /access/v1/evaluation` → `{"decision": bool}`). Same decisions,
//! same default deny.

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

#[derive(Debug, Clone)]
pub struct RemotePdp {
    kind: RemoteKind,
    url: String,
    client: reqwest::Client,
}

impl RemotePdp {
    pub fn new(kind: RemoteKind, url: &str, client: reqwest::Client) -> Self {
        Self {
            kind,
            url: url.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// With a default client (TLS roots of the platform, 2 s timeout), or `ca` as the only root.
    pub fn with_ca(kind: RemoteKind, url: &str, ca_pem: Option<&[u8]>) -> Result<Self, PdpError> {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(2));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| PdpError::Unavailable(format!("CA: {e}")))?;
            b = b.tls_certs_only([cert]);
        }
        let client = b
            .build()
            .map_err(|e| PdpError::Unavailable(e.to_string()))?;
        Ok(Self::new(kind, url, client))
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
                let resp: Value = self
                    .client
                    .post(url)
                    .json(&json!({ "input": input }))
                    .send()
                    .await
                    .map_err(unavailable)?
                    .error_for_status()
                    .map_err(unavailable)?
                    .json()
                    .await
                    .map_err(unavailable)?;
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
                let resp: Value = self
                    .client
                    .post(format!("{}/access/v1/evaluation", self.url))
                    .json(&body)
                    .send()
                    .await
                    .map_err(unavailable)?
                    .error_for_status()
                    .map_err(unavailable)?
                    .json()
                    .await
                    .map_err(unavailable)?;
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
