//! The agent side of the revocation feed (ADR 0006): connect to the domain's NATS with the
//! workload identity token as user and a fresh workload proof token as password (one per
//! connection, so reconnects are admitted again by the ACA's auth callout), and read every
//! `CredentialRevoked` of the domain from a cursor through the agent's own push consumer
//! (`rev-<agent id>`, ephemeral: the server drops it 5 minutes after the agent goes away).
//!
//! The stream [`RevocationFeed::subscribe`] returns resumes by itself: after a reconnect, or
//! when no delivery nor heartbeat arrived for a while, it re-creates the consumer from the last
//! sequence it delivered, and it never delivers a sequence twice nor out of order.

use std::sync::Arc;
use std::time::Duration;

use accord_authority::callout::{consumer_name, feed_prefix, revocation_filter};
use accord_authority::feed::stream_seq;
pub use accord_authority::feed::{FeedDecodeError, Revocation};
use accord_authority::jws::{self, TYP_WPT};
use accord_authority::signer::SoftwareKey;
use accord_events::{AgentId, DomainId};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::json;

/// The log's stream.
pub const STREAM: &str = "ACCORD_EVENTS";
/// Heartbeat the consumer sends when idle; three missed ones re-create it.
const HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("key: {0}")]
    Key(String),
    #[error("CA certificates: {0}")]
    Ca(String),
    #[error("NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the feed's consumer: {0}")]
    Consumer(String),
    #[error(transparent)]
    Decode(#[from] FeedDecodeError),
}

/// A connection to the revocation feed of one domain, as one agent.
#[derive(Clone)]
pub struct RevocationFeed {
    client: async_nats::Client,
    agent: AgentId,
    domain: DomainId,
    /// Counts (re)connections: a new one re-creates the consumer.
    connections: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("agent", &self.agent)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// A workload proof token for NATS: `aud` = `nats:<domain>`, bound to the WIT, 60 seconds.
pub fn nats_proof(key: &SoftwareKey, wit: &str, domain: &DomainId) -> Result<String, FeedError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jws::sign(
        key,
        TYP_WPT,
        &json!({
            "aud": format!("nats:{domain}"),
            "iat": now,
            "exp": now + 60,
            "jti": jws::random_jti(),
            "wth": jws::hash_b64(wit.trim().as_bytes()),
        }),
    )
    .map_err(|e| FeedError::Key(e.to_string()))
}

fn tls_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, FeedError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| FeedError::Ca(e.to_string()))?;
        roots.add(c).map_err(|e| FeedError::Ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(FeedError::Ca("no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FeedError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl RevocationFeed {
    /// Connects as `agent_id` (its WIT and private key, PKCS#8) over TLS trusting `ca_pem`.
    pub async fn connect(
        nats_url: &str,
        ca_pem: &[u8],
        wit: &str,
        key_pkcs8: &[u8],
        domain_id: &DomainId,
        agent_id: &AgentId,
    ) -> Result<Self, FeedError> {
        let key = Arc::new(
            SoftwareKey::from_pkcs8(key_pkcs8, "agent key")
                .map_err(|e| FeedError::Key(e.to_string()))?,
        );
        let wit = Arc::new(wit.trim().to_owned());
        let domain = domain_id.clone();
        let connections = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let counter = connections.clone();
        let auth = {
            let (key, wit, domain) = (key.clone(), wit.clone(), domain.clone());
            move |_nonce: Vec<u8>| {
                let (key, wit, domain) = (key.clone(), wit.clone(), domain.clone());
                async move {
                    let mut a = async_nats::Auth::new();
                    a.username = Some(wit.to_string());
                    a.password = Some(
                        nats_proof(&key, &wit, &domain)
                            .map_err(|e| async_nats::AuthError::new(e.to_string()))?,
                    );
                    Ok(a)
                }
            }
        };
        let connect_err = |detail: String| FeedError::Connect {
            url: nats_url.to_owned(),
            detail,
        };
        let addrs: Vec<async_nats::ServerAddr> = nats_url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<_, _>>()
            .map_err(|e| connect_err(e.to_string()))?;
        let client = async_nats::ConnectOptions::with_auth_callback(auth)
            .tls_client_config(tls_config(ca_pem)?)
            .require_tls(true)
            .custom_inbox_prefix(format!("{}.inbox", feed_prefix(agent_id)))
            .name(format!("accord-agent-{agent_id}"))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |e| {
                let counter = counter.clone();
                async move {
                    if matches!(e, async_nats::Event::Connected) {
                        counter.send_modify(|n| *n += 1);
                    }
                }
            })
            .connect(addrs)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(Self {
            client,
            agent: *agent_id,
            domain,
            connections,
        })
    }

    /// The underlying connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Every revocation after `from_seq` (the cursor: the last sequence already seen; 0 for
    /// all), then each new one as it is appended. Ends only when the stream is dropped or a
    /// revocation cannot be decoded (an error item).
    pub fn subscribe(
        &self,
        from_seq: u64,
    ) -> impl Stream<Item = Result<Revocation, FeedError>> + use<> {
        let (mut tx, rx) = futures::channel::mpsc::channel(256);
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = from_seq;
            loop {
                let err = match me.run(&mut last, &mut tx).await {
                    Ok(()) => return, // the reader went away
                    Err(e) => e,
                };
                if let FeedError::Decode(_) = err {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                tracing::debug!(error = %err, "revocation feed: resuming");
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        rx
    }

    /// One consumer's life: create it after `last`, forward deliveries until the reader goes
    /// away (Ok) or the consumer looks lost (Err: the caller re-creates it).
    async fn run(
        &self,
        last: &mut u64,
        tx: &mut futures::channel::mpsc::Sender<Result<Revocation, FeedError>>,
    ) -> Result<(), FeedError> {
        let mut connections = self.connections.subscribe();
        connections.mark_unchanged();
        let deliver = format!("{}.deliver", feed_prefix(&self.agent));
        let consumer = consumer_name(&self.agent);
        let mut sub = self
            .client
            .subscribe(deliver.clone())
            .await
            .map_err(|e| FeedError::Consumer(e.to_string()))?;
        // a consumer left from an earlier life would deliver from its own position
        let _ = self
            .client
            .request(
                format!("$JS.API.CONSUMER.DELETE.{STREAM}.{consumer}"),
                "".into(),
            )
            .await;
        let filter = revocation_filter(&self.domain);
        let mut config = json!({
            "name": consumer,
            "deliver_subject": deliver,
            "filter_subject": filter,
            "ack_policy": "none",
            "inactive_threshold": 300_000_000_000u64,
            "idle_heartbeat": HEARTBEAT.as_nanos() as u64,
            "flow_control": false,
            "deliver_policy": "all",
        });
        if *last > 0 {
            config["deliver_policy"] = "by_start_sequence".into();
            config["opt_start_seq"] = (*last + 1).into();
        }
        let body = json!({"stream_name": STREAM, "config": config, "action": "create"});
        let answer = self
            .client
            .request(
                format!("$JS.API.CONSUMER.CREATE.{STREAM}.{consumer}.{filter}"),
                body.to_string().into(),
            )
            .await
            .map_err(|e| FeedError::Consumer(e.to_string()))?;
        let a: serde_json::Value = serde_json::from_slice(&answer.payload)
            .map_err(|e| FeedError::Consumer(e.to_string()))?;
        if let Some(err) = a.get("error") {
            return Err(FeedError::Consumer(err.to_string()));
        }
        loop {
            let next = tokio::select! {
                m = tokio::time::timeout(HEARTBEAT * 3, sub.next()) => m,
                _ = connections.changed() => {
                    return Err(FeedError::Consumer("reconnected".into()));
                }
            };
            let msg = match next {
                Ok(Some(m)) => m,
                Ok(None) => return Err(FeedError::Consumer("subscription closed".into())),
                Err(_) => return Err(FeedError::Consumer("no heartbeat".into())),
            };
            if tx.is_closed() {
                let _ = self
                    .client
                    .publish(
                        format!("$JS.API.CONSUMER.DELETE.{STREAM}.{consumer}"),
                        "".into(),
                    )
                    .await;
                return Ok(());
            }
            // heartbeats carry a status and no ack subject
            let Some(seq) = msg.reply.as_deref().and_then(stream_seq) else {
                continue;
            };
            if seq <= *last {
                continue;
            }
            let r = Revocation::decode(seq, &msg.payload)?;
            *last = seq;
            if tx.send(Ok(r)).await.is_err() {
                return Ok(());
            }
        }
    }
}
