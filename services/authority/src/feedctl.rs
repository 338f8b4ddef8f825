//! The agents' revocation feed consumers, created by the ACA (ADR 0006; security review
//! 2026-12, findings 1 and 2). An admitted agent lives in the agents' account and reaches no
//! JetStream API: it asks for its feed on `accord.feed.<agent>.open` (a service the services'
//! account exports; the agent may publish on its own subject only, so the subject names the
//! asker), with the last stream sequence it has seen. The ACA then (re)creates the agent's
//! push consumer `rev-<agent>` on the log with everything fixed by the ACA: the filter (every
//! `CredentialRevoked` of the domain), the delivery subject (`accord.feed.<agent>.deliver`,
//! a stream the services' account exports to the agents' account), no acknowledgements, no
//! durable name, the whole message (never headers only), a heartbeat, and a start after the
//! agent's cursor; the server removes it a few minutes after the agent goes away. An agent can
//! therefore neither create, edit nor redirect a consumer, nor make another agent's feed
//! skip, stop or replay.
//!
//! A request must carry a reply subject (the server mints one for every request that crosses
//! the account boundary) and be exactly `{"after": <sequence>}`: an answer of the ACA that an
//! agent had delivered to another agent's request subject (a reply-subject trick) has neither.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use accord_events::AgentId;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, push};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::callout::{consumer_name, deliver_subject, revocation_filter};
use crate::issue::Authority;

/// The subject the ACA answers feed requests on (every agent's).
pub const OPEN_ALL: &str = "accord.feed.*.open";
/// Queue group of the ACA instances answering feed requests.
pub const QUEUE: &str = "accord-feed-open";
/// A consumer's heartbeat when idle (the agent re-asks after three missed ones).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long the server keeps a consumer nobody listens to.
pub const INACTIVE: Duration = Duration::from_secs(300);
/// Feed requests answered per agent and minute.
pub const OPENS_PER_MINUTE: u32 = 30;
/// Largest request accepted, bytes.
pub const MAX_REQUEST: usize = 256;

/// What an agent asks: its feed, after the last stream sequence it saw (0: from the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub after: u64,
}

/// The ACA's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAnswer {
    /// The consumer delivers from `start_seq` on `deliver_subject`.
    Opened {
        consumer: String,
        deliver_subject: String,
        start_seq: u64,
    },
    /// Refused: a stable kind and a detail.
    Refused { kind: String, detail: String },
}

/// Why a feed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenRefusal {
    #[error("the request is not {{\"after\": <sequence>}}")]
    Malformed,
    #[error("the subject names no agent")]
    NotAnAgent,
    #[error("too many feed requests by agent {0}")]
    RateLimited(AgentId),
    #[error("agent {0} holds no live credential")]
    NotLive(AgentId),
    #[error("the ACA cannot answer now: {0}")]
    Unavailable(String),
}

impl OpenRefusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotAnAgent => "not-an-agent",
            Self::RateLimited(_) => "rate-limited",
            Self::NotLive(_) => "not-live",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// The agent a feed request's subject names (`accord.feed.<agent>.open`).
pub fn agent_of(subject: &str) -> Option<AgentId> {
    let mut t = subject.split('.');
    match (t.next(), t.next(), t.next(), t.next(), t.next()) {
        (Some("accord"), Some("feed"), Some(id), Some("open"), None) => AgentId::parse(id).ok(),
        _ => None,
    }
}

/// What a JetStream delivery's `$JS.ACK` reply subject says: the stream, the consumer, and the
/// stream and consumer sequences (the v1 form
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the v2 form with
/// domain and account hash before the stream and a token after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub consumer_seq: u64,
}

pub fn delivery(reply: &str) -> Option<Delivery> {
    let t: Vec<&str> = reply.split('.').collect();
    if t.len() < 2 || t[0] != "$JS" || t[1] != "ACK" {
        return None;
    }
    let at = match t.len() {
        9 => 2,
        n if n >= 11 => 4,
        _ => return None,
    };
    Some(Delivery {
        stream: t[at].to_owned(),
        consumer: t[at + 1].to_owned(),
        stream_seq: t[at + 3].parse().ok()?,
        consumer_seq: t[at + 4].parse().ok()?,
    })
}

/// Parses a request body strictly.
pub fn parse_request(body: &[u8]) -> Result<OpenRequest, OpenRefusal> {
    if body.len() > MAX_REQUEST {
        return Err(OpenRefusal::Malformed);
    }
    serde_json::from_slice(body).map_err(|_| OpenRefusal::Malformed)
}

type Limiter = governor::DefaultKeyedRateLimiter<AgentId>;

/// The service that creates agents' feed consumers.
pub struct FeedConsumers {
    authority: Arc<Authority>,
    limiter: Limiter,
    /// One open at a time per agent (a stripe of locks), so two requests of one agent never
    /// interleave their delete and create.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for FeedConsumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConsumers").finish_non_exhaustive()
    }
}

impl FeedConsumers {
    pub fn new(authority: Arc<Authority>) -> Arc<Self> {
        let per = NonZeroU32::new(OPENS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            authority,
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per)),
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    fn stripe(&self, agent: &AgentId) -> &tokio::sync::Mutex<()> {
        let b = agent.as_uuid().as_bytes();
        &self.stripes[usize::from(b[15]) % self.stripes.len()]
    }

    /// Whether `agent` holds a credential that is neither revoked nor expired.
    async fn live(&self, agent: &AgentId) -> Result<bool, OpenRefusal> {
        let id = accord_events::AggregateId::parse(&agent.to_string())
            .map_err(|_| OpenRefusal::NotAnAgent)?;
        let ctx = self
            .authority
            .exec
            .store()
            .load_context(&id)
            .await
            .map_err(|e| OpenRefusal::Unavailable(e.to_string()))?;
        let now = accord_events::Timestamp::now();
        Ok(ctx
            .aggregate
            .credentials
            .values()
            .any(|c| !c.revoked && !c.expired && c.not_after > now))
    }

    /// Opens (or reopens) `agent`'s feed after `after`.
    pub async fn open(&self, agent: &AgentId, after: u64) -> Result<OpenAnswer, OpenRefusal> {
        if self.limiter.check_key(agent).is_err() {
            return Err(OpenRefusal::RateLimited(*agent));
        }
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        if !self.live(agent).await? {
            return Err(OpenRefusal::NotLive(*agent));
        }
        let _one = self.stripe(agent).lock().await;
        let store = self.authority.exec.store().event_store();
        let stream_name = store.config().stream.name.clone();
        let name = consumer_name(agent);
        let unavailable = |e: &dyn std::fmt::Display| OpenRefusal::Unavailable(e.to_string());
        let stream = store
            .jetstream()
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|e| unavailable(&e))?;
        // a consumer from an earlier request delivers from its own position: replace it
        delete_quietly(&stream, &name).await;
        let start_seq = after.saturating_add(1);
        let deliver_policy = if after == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: start_seq,
            }
        };
        let deliver = deliver_subject(agent);
        stream
            .create_consumer(push::Config {
                name: Some(name.clone()),
                durable_name: None,
                description: Some(format!("revocation feed of agent {agent}")),
                deliver_subject: deliver.clone(),
                filter_subject: revocation_filter(store.domain()),
                deliver_policy,
                ack_policy: AckPolicy::None,
                headers_only: false,
                flow_control: false,
                idle_heartbeat: HEARTBEAT,
                inactive_threshold: INACTIVE,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(OpenAnswer::Opened {
            consumer: name,
            deliver_subject: deliver,
            start_seq,
        })
    }

    /// Removes `agent`'s consumer (its credentials are all revoked).
    pub async fn close(&self, agent: &AgentId) {
        let store = self.authority.exec.store().event_store();
        let stream_name = store.config().stream.name.clone();
        if let Ok(stream) = store.jetstream().get_stream_no_info(&stream_name).await {
            delete_quietly(&stream, &consumer_name(agent)).await;
        }
    }

    /// After a revocation of `agent`: remove its consumer when it holds no live credential
    /// any more (a superseded credential leaves the feed of its successor alone).
    pub async fn revoked(&self, agent: &AgentId) {
        match self.live(agent).await {
            Ok(false) => self.close(agent).await,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(%agent, error = %e, "feed consumer: cannot tell whether to remove it")
            }
        }
    }

    /// Decides one request (subject, reply, body): the answer to send, or `None` when there is
    /// nobody to answer (no reply subject: ignored).
    pub async fn handle(&self, subject: &str, reply: Option<&str>, body: &[u8]) -> Option<String> {
        reply?;
        let answer = match (agent_of(subject), parse_request(body)) {
            (None, _) => Err(OpenRefusal::NotAnAgent),
            (_, Err(e)) => Err(e),
            (Some(agent), Ok(req)) => self.open(&agent, req.after).await,
        };
        let answer = answer.unwrap_or_else(|e| {
            tracing::info!(subject, kind = e.kind(), error = %e, "feed request refused");
            OpenAnswer::Refused {
                kind: e.kind().to_owned(),
                detail: e.to_string(),
            }
        });
        serde_json::to_string(&answer).ok()
    }

    /// Answers feed requests on `client` (the services' connection) until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        client: async_nats::Client,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut sub = match client.queue_subscribe(OPEN_ALL, QUEUE.to_owned()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "feed requests: cannot subscribe; agents get no feed");
                return;
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(32));
        loop {
            let msg = tokio::select! {
                m = sub.next() => match m { Some(m) => m, None => return },
                _ = stop.changed() => return,
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (me, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let reply = msg.reply.as_ref().map(|r| r.to_string());
                if let Some(answer) = me
                    .handle(msg.subject.as_str(), reply.as_deref(), &msg.payload)
                    .await
                    && let Some(reply) = reply
                    && let Err(e) = client.publish(reply, answer.into()).await
                {
                    tracing::warn!(error = %e, "feed requests: cannot answer");
                }
            });
        }
    }
}

async fn delete_quietly(stream: &async_nats::jetstream::stream::Stream<()>, name: &str) {
    use async_nats::jetstream::{ErrorCode, stream::ConsumerErrorKind};
    match stream.delete_consumer(name).await {
        Ok(_) => {}
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref je)
                if je.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {}
        Err(e) => tracing::warn!(consumer = name, error = %e, "feed consumer: delete failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_strictly() {
        assert_eq!(
            parse_request(br#"{"after": 7}"#),
            Ok(OpenRequest { after: 7 })
        );
        for bad in [
            &b""[..],
            br#"{}"#,
            br#"{"after": -1}"#,
            br#"{"after": 1, "deliver_subject": "x"}"#,
            // an answer of the ACA, delivered as a request by a reply-subject trick
            br#"{"opened":{"consumer":"rev-x","deliver_subject":"y","start_seq":1}}"#,
        ] {
            assert_eq!(parse_request(bad), Err(OpenRefusal::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_request(&[b' '; MAX_REQUEST + 1]),
            Err(OpenRefusal::Malformed)
        );
    }

    #[test]
    fn deliveries_name_their_consumer_and_sequences() {
        let v1 = delivery("$JS.ACK.ACCORD_EVENTS.rev-a.1.7.3.1796392188552153781.0").unwrap();
        assert_eq!(
            (
                v1.stream.as_str(),
                v1.consumer.as_str(),
                v1.stream_seq,
                v1.consumer_seq
            ),
            ("ACCORD_EVENTS", "rev-a", 7, 3)
        );
        let v2 = delivery("$JS.ACK.dev.ABC.ACCORD_EVENTS.rev-a.1.9.4.1796392188552153781.0.xyz")
            .unwrap();
        assert_eq!((v2.stream_seq, v2.consumer_seq), (9, 4));
        assert_eq!(delivery("_INBOX.x"), None);
        assert_eq!(delivery("$JS.ACK.a.b.c"), None);
        assert_eq!(delivery("$JS.ACK.S.c.1.x.3.4.0"), None);
    }

    #[test]
    fn the_subject_names_the_agent() {
        let a = AgentId::new_v7();
        assert_eq!(agent_of(&format!("accord.feed.{a}.open")), Some(a));
        assert_eq!(agent_of(&format!("accord.feed.{a}.deliver")), None);
        assert_eq!(agent_of(&format!("accord.feed.{a}.open.x")), None);
        assert_eq!(agent_of("accord.feed.not-an-id.open"), None);
    }
}
