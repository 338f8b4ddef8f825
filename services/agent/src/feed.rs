//! The agent side of the revocation feed (ADR 0006): connect to the domain's NATS with the
//! workload identity token as user and a fresh workload proof token as password (one per
//! connection, so reconnects are admitted again by the ACA's auth callout), ask the ACA for
//! the feed after a cursor (`accord.feed.<agent>.open`; the ACA creates the agent's consumer,
//! the agent reaches no JetStream API), and read every `CredentialRevoked` of the domain from
//! `accord.feed.<agent>.deliver`.
//!
//! Nothing on the delivery subject is believed for being there. A delivery counts only when
//! its `$JS.ACK` reply names this agent's consumer with the next consumer sequence, and its
//! payload is an event of this domain, signed by one of the domain's pinned event-signing keys,
//! stored under the subject its envelope names. Anything else is **dropped and reported** (an
//! `Err(FeedError::Dropped)` item; the stream goes on); a gap in the consumer sequence (a
//! delivery lost) reopens the feed from the last revocation delivered. The stream
//! [`RevocationFeed::subscribe`] returns resumes by itself after a reconnect or when no
//! delivery nor heartbeat arrived for a while, and it never delivers a sequence twice nor out
//! of order.

use std::sync::Arc;
use std::time::Duration;

use accord_authority::callout::{consumer_name, deliver_subject, inbox_prefix, open_subject};
pub use accord_authority::feed::{FeedDecodeError, Revocation};
use accord_authority::feedctl::{self, OpenAnswer, OpenRequest};
use accord_authority::jws::{self, TYP_WPT};
use accord_authority::signer::SoftwareKey;
use accord_events::{AgentId, DomainId, KeyRing};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::json;

/// The log's stream.
pub const STREAM: &str = "ACCORD_EVENTS";

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("key: {0}")]
    Key(String),
    #[error("CA certificates: {0}")]
    Ca(String),
    #[error("NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the feed: {0}")]
    Consumer(String),
    /// The ACA refused to open the feed (its kind and detail).
    #[error("the ACA refused the feed ({kind}): {detail}")]
    Refused { kind: String, detail: String },
    /// A message on the feed that is not an authentic revocation of the domain from this
    /// agent's consumer: dropped, not delivered. Not an end of the stream.
    #[error("dropped a delivery{}: {reason}", seq.map(|s| format!(" at sequence {s}")).unwrap_or_default())]
    Dropped { seq: Option<u64>, reason: String },
    #[error(transparent)]
    Decode(#[from] FeedDecodeError),
}

/// A connection to the revocation feed of one domain, as one agent.
#[derive(Clone)]
pub struct RevocationFeed {
    client: async_nats::Client,
    agent: AgentId,
    domain: DomainId,
    /// The domain's event-signing keys, pinned: only events they signed are delivered.
    ring: Arc<KeyRing>,
    /// Counts (re)connections: a new one re-opens the feed.
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

/// Where the feed's connection gets the agent's WIT and key, at every (re)connection.
type Credentials =
    Arc<dyn Fn() -> Result<(String, Arc<SoftwareKey>), FeedError> + Send + Sync + 'static>;

/// What one delivery is, as this agent's feed sees it.
#[derive(Debug)]
enum Seen {
    /// A heartbeat (status 100): the consumer is alive; `last_cseq` is what it last sent.
    Heartbeat { last_cseq: Option<u64> },
    /// The next revocation.
    Revocation(Revocation),
    /// A delivery of our consumer whose payload is not an authentic revocation: skip past it.
    Foreign { seq: u64, reason: String },
    /// Not from our consumer at all (no ack reply, or another consumer's): ignore it.
    Stray { reason: String },
    /// Our consumer skipped a delivery (or repeated one): reopen from the cursor.
    Gap { expected: u64, got: u64 },
}

impl RevocationFeed {
    /// Connects as `agent_id` (its WIT and private key, PKCS#8) over TLS trusting `ca_pem`;
    /// `ring` holds the domain's event-signing keys the agent pinned (`AgentDir::read_domain`).
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        nats_url: &str,
        ca_pem: &[u8],
        wit: &str,
        key_pkcs8: &[u8],
        domain_id: &DomainId,
        agent_id: &AgentId,
        ring: KeyRing,
    ) -> Result<Self, FeedError> {
        let key = Arc::new(
            SoftwareKey::from_pkcs8(key_pkcs8, "agent key")
                .map_err(|e| FeedError::Key(e.to_string()))?,
        );
        let wit = wit.trim().to_owned();
        let credentials: Credentials = Arc::new(move || Ok((wit.clone(), key.clone())));
        Self::connect_with(nats_url, ca_pem, credentials, domain_id, agent_id, ring).await
    }

    /// [`RevocationFeed::connect`] with the credentials of an agent's folder, read again at
    /// every (re)connection: after a renewal (which revokes the credential the connection was
    /// admitted with, and so kicks it), the feed reconnects with the new one.
    pub async fn connect_dir(
        nats_url: &str,
        ca_pem: &[u8],
        dir: &crate::AgentDir,
        domain_id: &DomainId,
        ring: KeyRing,
    ) -> Result<Self, FeedError> {
        let agent = dir
            .read_state()
            .map_err(|e| FeedError::Key(e.to_string()))?
            .agent_id;
        let dir = dir.clone();
        let credentials: Credentials = Arc::new(move || {
            let wit = dir.read_wit().map_err(|e| FeedError::Key(e.to_string()))?;
            let key = dir.read_key().map_err(|e| FeedError::Key(e.to_string()))?;
            let key = SoftwareKey::from_pkcs8(&key, "agent key")
                .map_err(|e| FeedError::Key(e.to_string()))?;
            Ok((wit.trim().to_owned(), Arc::new(key)))
        });
        Self::connect_with(nats_url, ca_pem, credentials, domain_id, &agent, ring).await
    }

    async fn connect_with(
        nats_url: &str,
        ca_pem: &[u8],
        credentials: Credentials,
        domain_id: &DomainId,
        agent_id: &AgentId,
        ring: KeyRing,
    ) -> Result<Self, FeedError> {
        credentials()?;
        let domain = domain_id.clone();
        let connections = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let counter = connections.clone();
        let auth = {
            let domain = domain.clone();
            move |_nonce: Vec<u8>| {
                let (credentials, domain) = (credentials.clone(), domain.clone());
                async move {
                    let (wit, key) =
                        credentials().map_err(|e| async_nats::AuthError::new(e.to_string()))?;
                    let mut a = async_nats::Auth::new();
                    a.password = Some(
                        nats_proof(&key, &wit, &domain)
                            .map_err(|e| async_nats::AuthError::new(e.to_string()))?,
                    );
                    a.username = Some(wit);
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
            .custom_inbox_prefix(inbox_prefix(agent_id))
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
            ring: Arc::new(ring),
            connections,
        })
    }

    /// The underlying connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Every revocation after `from_seq` (the cursor: the last sequence already seen; 0 for
    /// all), then each new one as it is appended. `Err(FeedError::Dropped)` items report
    /// messages that were not delivered (see the module); the stream ends only when it is
    /// dropped.
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
                if tx.is_closed() {
                    return;
                }
                if let FeedError::Refused { .. } = err {
                    // the ACA said no (not live, rate-limited): tell the reader, ask again later
                    if tx.send(Err(err)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
                tracing::debug!(error = %err, "revocation feed: resuming");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        rx
    }

    /// Asks the ACA for the feed after `after`.
    async fn open(&self, after: u64) -> Result<(), FeedError> {
        let body = serde_json::to_vec(&OpenRequest { after })
            .map_err(|e| FeedError::Consumer(e.to_string()))?;
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            self.client.request(open_subject(&self.agent), body.into()),
        )
        .await
        .map_err(|_| FeedError::Consumer("the ACA did not answer the feed request".into()))?
        .map_err(|e| FeedError::Consumer(e.to_string()))?;
        match serde_json::from_slice::<OpenAnswer>(&answer.payload) {
            Ok(OpenAnswer::Opened { consumer, .. }) if consumer == consumer_name(&self.agent) => {
                Ok(())
            }
            Ok(OpenAnswer::Opened { consumer, .. }) => Err(FeedError::Consumer(format!(
                "the ACA opened consumer {consumer}, not this agent's"
            ))),
            Ok(OpenAnswer::Refused { kind, detail }) => Err(FeedError::Refused { kind, detail }),
            Err(e) => Err(FeedError::Consumer(format!("the ACA's answer: {e}"))),
        }
    }

    /// Classifies one message of the delivery subject; `next_cseq` is the consumer sequence
    /// expected next, `last` the last stream sequence delivered.
    fn see(&self, msg: &async_nats::Message, next_cseq: u64, last: u64) -> Seen {
        if msg.status.is_some_and(|s| s.as_u16() == 100) {
            let last_cseq = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Last-Consumer"))
                .and_then(|v| v.as_str().parse().ok());
            return Seen::Heartbeat { last_cseq };
        }
        let Some(d) = msg.reply.as_deref().and_then(feedctl::delivery) else {
            return Seen::Stray {
                reason: "not a delivery of the log (no acknowledgement subject)".into(),
            };
        };
        if d.stream != STREAM || d.consumer != consumer_name(&self.agent) {
            return Seen::Stray {
                reason: format!("a delivery of consumer {} of {}", d.consumer, d.stream),
            };
        }
        if d.consumer_seq != next_cseq {
            return Seen::Gap {
                expected: next_cseq,
                got: d.consumer_seq,
            };
        }
        if d.stream_seq <= last {
            // cannot happen with the next consumer sequence; never deliver it twice
            return Seen::Stray {
                reason: format!("sequence {} again", d.stream_seq),
            };
        }
        let foreign = |reason: String| Seen::Foreign {
            seq: d.stream_seq,
            reason,
        };
        // the check every reader of the log applies: signed by a pinned key of the domain,
        // an event of this domain, stored under the subject it names
        let env = match accord_store::authenticate(
            &self.ring,
            Some(&self.domain),
            d.stream_seq,
            msg.subject.as_str(),
            &msg.payload,
        ) {
            Ok(v) => v.into_envelope(),
            Err(e) => return foreign(e.problem.to_string()),
        };
        let revocation = env
            .decode()
            .map_err(|e| FeedDecodeError::Event(e.to_string()))
            .and_then(|event| Revocation::of(d.stream_seq, &env, event));
        match revocation {
            Ok(r) => Seen::Revocation(r),
            Err(e) => foreign(e.to_string()),
        }
    }

    /// One feed's life: open it after `last`, forward revocations until the reader goes away
    /// (Ok) or the feed looks lost (Err: the caller opens it again).
    async fn run(
        &self,
        last: &mut u64,
        tx: &mut futures::channel::mpsc::Sender<Result<Revocation, FeedError>>,
    ) -> Result<(), FeedError> {
        let mut connections = self.connections.subscribe();
        connections.mark_unchanged();
        // a literal subscription: deliveries reach the agents' account through a stream
        // import, and a wildcard one was seen to miss a consumer's first burst
        let mut sub = self
            .client
            .subscribe(deliver_subject(&self.agent))
            .await
            .map_err(|e| FeedError::Consumer(e.to_string()))?;
        self.open(*last).await?;
        let mut next_cseq = 1;
        loop {
            let next = tokio::select! {
                m = tokio::time::timeout(feedctl::HEARTBEAT * 3, sub.next()) => m,
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
                return Ok(());
            }
            let item = match self.see(&msg, next_cseq, *last) {
                Seen::Heartbeat { last_cseq } => {
                    if last_cseq.is_some_and(|c| c >= next_cseq) {
                        return Err(FeedError::Consumer(format!(
                            "the consumer sent up to {} and {next_cseq} never arrived",
                            last_cseq.unwrap_or_default()
                        )));
                    }
                    continue;
                }
                Seen::Gap { expected, got } => {
                    return Err(FeedError::Consumer(format!(
                        "consumer sequence {got} where {expected} was next"
                    )));
                }
                Seen::Stray { reason } => {
                    tracing::warn!(agent = %self.agent, %reason, "revocation feed: dropped a message");
                    Err(FeedError::Dropped { seq: None, reason })
                }
                Seen::Foreign { seq, reason } => {
                    next_cseq += 1;
                    *last = seq;
                    tracing::warn!(agent = %self.agent, seq, %reason, "revocation feed: dropped a delivery");
                    Err(FeedError::Dropped {
                        seq: Some(seq),
                        reason,
                    })
                }
                Seen::Revocation(r) => {
                    next_cseq += 1;
                    *last = r.seq;
                    Ok(r)
                }
            };
            if tx.send(item).await.is_err() {
                return Ok(());
            }
        }
    }
}
