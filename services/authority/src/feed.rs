//! The revocation feed: every `CredentialRevoked` of the domain, in log order, with its stream
//! sequence as the cursor. Agents read it over NATS (their own push consumer, admitted by the
//! auth callout, `callout.rs`) or over HTTPS as server-sent events:
//!
//! `GET /v1/revocations/stream` (public, as the CRL is: revocations are public information):
//! the cursor is the `Last-Event-ID` header or `?from=` (the last sequence seen; 0 or none = from
//! the start); each event is `id: <seq>`, `event: revocation`, `data: <SseRevocation as JSON>`:
//! the decoded [`Revocation`], the message's subject, and `signed`, the exact stored bytes of
//! the `CredentialRevoked` message (base64), whose Ed25519 signature a client checks with the
//! domain's pinned event-signing key (`accord_events::signing`, wire form there); a keep-alive
//! comment every 15 s. Opening a stream takes one request of the client's rate allowance; a
//! client ([`accord_web::client_key`]: an address, an IPv6 /64) holds at most
//! [`MAX_STREAMS_PER_CLIENT`] streams (429 beyond), the process [`MAX_STREAMS`] (503 beyond).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use accord_events::catalogue::RevocationReason;
use accord_events::{AgentId, CredentialSerial, DomainId, Event, Timestamp};
use accord_web::{Problem, RateLimit};
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::issue::Authority;

/// Server-sent event streams open at once.
pub const MAX_STREAMS: usize = 256;
/// Server-sent event streams one client holds at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 4;

/// One revocation, as the feed delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The event's stream sequence: the cursor.
    pub seq: u64,
    /// The agent whose credentials were revoked.
    pub agent_id: AgentId,
    pub serials: Vec<CredentialSerial>,
    pub reason: RevocationReason,
    pub revoked_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedDecodeError {
    #[error("not a stored event: {0}")]
    Event(String),
    #[error("event {0} is not a CredentialRevoked")]
    NotRevocation(String),
    #[error("the event's aggregate is not an agent id")]
    Agent,
}

impl Revocation {
    /// Decodes a stored `CredentialRevoked` (the bytes of the log's message) at `seq`. Nothing
    /// here says who signed it: readers check the entry first (`accord_store::EntryChecker`,
    /// `accord_store::authenticate`) and then take [`Revocation::of`] from what they checked.
    pub fn decode(seq: u64, payload: &[u8]) -> Result<Self, FeedDecodeError> {
        let e = accord_events::signing::parse_unverified(payload)
            .map_err(|e| FeedDecodeError::Event(e.to_string()))?;
        let event = e
            .envelope
            .decode()
            .map_err(|e| FeedDecodeError::Event(e.to_string()))?;
        Self::of(seq, &e.envelope, event)
    }

    /// The revocation an event at `seq` records, or why it is none.
    pub fn of(
        seq: u64,
        env: &accord_events::Envelope,
        event: Event,
    ) -> Result<Self, FeedDecodeError> {
        let Event::CredentialRevoked(r) = event else {
            return Err(FeedDecodeError::NotRevocation(
                env.event_type.as_str().to_owned(),
            ));
        };
        let agent_id =
            AgentId::parse(env.aggregate.id.as_str()).map_err(|_| FeedDecodeError::Agent)?;
        Ok(Self {
            seq,
            agent_id,
            serials: r.serials,
            reason: r.reason,
            revoked_at: r.revoked_at,
        })
    }
}

/// One revocation as a server-sent event carries it: the decoded fields, and the signed event
/// they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseRevocation {
    #[serde(flatten)]
    pub revocation: Revocation,
    /// The log subject the event is stored under (`accord.evt.<domain>.agent.<id>.CredentialRevoked`).
    pub subject: String,
    /// The stored message, byte for byte, in standard base64: `{"event":…,"sig":…}`.
    pub signed: String,
}

/// The subject filter of the feed.
pub fn filter(domain: &DomainId) -> String {
    crate::callout::revocation_filter(domain)
}

/// What the SSE route shares.
#[derive(Clone)]
pub struct FeedState {
    pub authority: Arc<Authority>,
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Streams open per client.
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Opening a stream takes one request of the client's allowance.
    limit: RateLimit,
}

impl std::fmt::Debug for FeedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedState").finish_non_exhaustive()
    }
}

impl FeedState {
    pub fn new(authority: Arc<Authority>, limit: RateLimit) -> Self {
        Self {
            authority,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            clients: Arc::default(),
            limit,
        }
    }

    /// One of `client`'s stream places, or none when it holds them all.
    fn client_slot(&self, client: IpAddr) -> Option<ClientSlot> {
        let key = accord_web::client_key(client);
        let mut open = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= MAX_STREAMS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clients.clone(),
            key,
        })
    }
}

/// A client's place for one stream, given back when the stream ends.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The SSE route (to merge into the ACA's router).
pub fn router(state: FeedState) -> axum::Router {
    axum::Router::new()
        .route("/v1/revocations/stream", axum::routing::get(stream))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    from: Option<u64>,
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-cursor",
        "The cursor is not a stream sequence",
        detail,
    )
}

async fn stream(State(s): State<FeedState>, req: Request) -> Result<Response, Problem> {
    let client = accord_web::client_ip(&req);
    if let Some(ip) = client {
        s.limit.check(ip)?;
    }
    let Query(q) = Query::<StreamQuery>::try_from_uri(req.uri()).map_err(|e| bad(e.body_text()))?;
    let header = match req.headers().get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| bad("Last-Event-ID is not a stream sequence"))?,
        ),
        None => None,
    };
    // a reconnecting EventSource sends Last-Event-ID; it wins over the URL's first cursor
    let cursor = header.or(q.from).unwrap_or(0);
    let slot = match client {
        Some(ip) => Some(s.client_slot(ip).ok_or_else(|| {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams-per-client",
                "Too many revocation streams from this client",
                format!("at most {MAX_STREAMS_PER_CLIENT} at once; close one first"),
            )
        })?),
        None => None,
    };
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            "Too many revocation streams are open",
            "retry later, with Last-Event-ID",
        )
    })?;
    let store = s.authority.exec.store().event_store().clone();
    let deliver_policy = if cursor == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: cursor.saturating_add(1),
        }
    };
    let consumer = store
        .jetstream()
        .create_consumer_on_stream(
            push::OrderedConfig {
                deliver_subject: store.client().new_inbox(),
                filter_subject: filter(store.domain()),
                deliver_policy,
                ..Default::default()
            },
            store.config().stream.name.as_str(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "revocation stream: creating the consumer");
            Problem::unavailable()
        })?;
    let messages = consumer.messages().await.map_err(|e| {
        tracing::warn!(error = %e, "revocation stream: reading");
        Problem::unavailable()
    })?;
    let checker = (store.checker().clone(), store.foreign().clone());
    let events = messages
        .take_while(|m| futures::future::ready(m.is_ok()))
        .filter_map(move |m| {
            let (checker, foreign) = checker.clone();
            async move {
            use base64::Engine;
            let m = m.ok()?;
            let seq = m.info().ok()?.stream_sequence;
            // only authentic revocations of the domain are served (finding 1): anything else
            // in the log is skipped and reported, and the stream goes on
            let stored = match checker.check(seq, &m.subject, &m.payload) {
                Ok(e) => e,
                Err(e) => {
                    foreign.report("sse", &m.subject, &e);
                    return None;
                }
            };
            match Revocation::of(seq, &stored.envelope, stored.event) {
                Ok(revocation) => Some(SseRevocation {
                    revocation,
                    subject: m.subject.to_string(),
                    signed: base64::engine::general_purpose::STANDARD.encode(&m.payload),
                }),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "revocation stream: undecodable event skipped");
                    None
                }
            }
            }
        })
        .map(move |r| {
            let _held = (&permit, &slot);
            Ok::<_, Infallible>(
                axum::response::sse::Event::default()
                    .id(r.revocation.seq.to_string())
                    .event("revocation")
                    .json_data(&r)
                    .unwrap_or_default(),
            )
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_revocations_decode() {
        assert!(matches!(
            Revocation::decode(1, b"{}"),
            Err(FeedDecodeError::Event(_))
        ));
        assert!(matches!(
            Revocation::decode(1, b"not json"),
            Err(FeedDecodeError::Event(_))
        ));
    }
}
