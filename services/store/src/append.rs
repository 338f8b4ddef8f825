//! Appends: compare-and-set per aggregate, atomic batches, idempotent retries.

use accord_events::signing::{SignedEvent, parse_unverified};
use accord_events::subject::aggregate_filter;
use accord_events::{
    AggregateId, AggregateKind, AggregateRef, CommandId, Envelope, Event, Metadata,
};
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use bytes::Bytes;

use crate::error::{InvalidAppend, StoreError};
use crate::{Counters, EventStore, StoredEvent, Version};

/// Most events one command may yield (one atomic batch; the server allows 1,000).
pub const MAX_EVENTS_PER_COMMAND: usize = 256;

/// JetStream error code of a failed expectation on the last sequence.
const ERR_WRONG_LAST_SEQUENCE: u64 = 10071;
/// JetStream error code of an atomic batch holding a message id already in the duplicate
/// window. For batches the server checks this before the expectations, so a retried batch
/// whose first attempt was stored comes back with it.
const ERR_BATCH_DUPLICATE_MSG_ID: u64 = 10201;

/// What an append stored.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub events: Vec<StoredEvent>,
    /// Where the aggregate stands after these events.
    pub version: Version,
    /// True when this call found the command already stored by an earlier attempt and
    /// returned that attempt's result instead of writing again.
    pub replayed: bool,
}

enum PublishFailure {
    WrongLastSequence,
    Other(StoreError),
}

#[derive(serde::Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

#[derive(serde::Deserialize)]
struct BatchAck {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: u64,
}

impl EventStore {
    /// Appends the events one command yielded to an aggregate, if the aggregate still stands
    /// at `expected`. All events land or none do.
    ///
    /// Retrying with the same command id and the same `expected` after an unknown outcome is
    /// safe: when the first attempt was stored, the retry returns its events with
    /// `replayed: true` and writes nothing.
    pub async fn append(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        expected: Version,
        meta: &Metadata,
        events: Vec<Event>,
    ) -> Result<AppendOutcome, StoreError> {
        let c = &self.inner.counters;
        let out = self.append_inner(kind, id, expected, meta, events).await;
        match &out {
            Ok(o) if o.replayed => Counters::add(&c.replayed, o.events.len() as u64),
            Ok(o) => Counters::add(&c.stored, o.events.len() as u64),
            Err(StoreError::Conflict { .. }) => Counters::add(&c.conflicts, 1),
            Err(_) => Counters::add(&c.errors, 1),
        }
        out
    }

    async fn append_inner(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        expected: Version,
        meta: &Metadata,
        events: Vec<Event>,
    ) -> Result<AppendOutcome, StoreError> {
        if events.is_empty() {
            return Err(InvalidAppend::Empty.into());
        }
        if events.len() > MAX_EVENTS_PER_COMMAND {
            return Err(InvalidAppend::TooManyEvents {
                count: events.len(),
                max: MAX_EVENTS_PER_COMMAND,
            }
            .into());
        }
        if kind == AggregateKind::Token {
            return Err(InvalidAppend::WrongAggregate {
                event: events[0].event_type(),
                expected: "a compare-and-set aggregate",
                actual: "token (use append_fact)",
            }
            .into());
        }
        let domain = self.domain().clone();
        let filter = aggregate_filter(&domain, kind, id);
        let mut signed = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let aggregate = AggregateRef {
                kind,
                id: id.clone(),
                seq: expected.count + 1 + i as u64,
            };
            let env = Envelope::new(&domain, aggregate, meta, i as u32, event).map_err(|e| {
                InvalidAppend::WrongAggregate {
                    event: event.event_type(),
                    expected: event.aggregate_kind().as_str(),
                    actual: match e {
                        accord_events::envelope::EnvelopeError::AggregateMismatch {
                            actual,
                            ..
                        } => actual.as_str(),
                    },
                }
            })?;
            signed.push(self.inner.signer.sign_event(env)?);
        }

        let digests: Vec<[u8; 32]> = signed
            .iter()
            .map(|s| {
                self.inner
                    .checker
                    .cache()
                    .signed_here(&s.envelope.subject().to_string(), &s.bytes)
            })
            .collect();
        let published = if signed.len() == 1 {
            self.publish_one(&signed[0], expected, &filter).await
        } else {
            self.publish_batch(&signed, expected, &filter).await
        };
        match published {
            Ok(last_seq) => {
                #[cfg(feature = "fault-injection")]
                if self.inner.faults.take_lost_ack() {
                    return Err(StoreError::Unacknowledged(
                        "fault injection: acknowledgement lost".into(),
                    ));
                }
                let first_seq = last_seq + 1 - signed.len() as u64;
                // what this process signed and the server stored needs no second check
                for (i, d) in digests.into_iter().enumerate() {
                    self.inner
                        .checker
                        .cache()
                        .insert_digest(first_seq + i as u64, d);
                }
                let stored: Vec<StoredEvent> = signed
                    .into_iter()
                    .zip(events)
                    .enumerate()
                    .map(|(i, (s, event))| StoredEvent {
                        stream_seq: first_seq + i as u64,
                        envelope: s.envelope,
                        event,
                    })
                    .collect();
                let version = Version {
                    stream_seq: last_seq,
                    count: expected.count + stored.len() as u64,
                };
                self.cache_appended(kind, id, expected, &stored, version);
                Ok(AppendOutcome {
                    events: stored,
                    version,
                    replayed: false,
                })
            }
            Err(PublishFailure::WrongLastSequence) => {
                self.resolve_conflict(kind, id, &filter, expected, &meta.command_id, events.len())
                    .await
            }
            Err(PublishFailure::Other(e)) => Err(e),
        }
    }

    pub(crate) fn headers(&self, event: &SignedEvent) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", event.envelope.id.to_string().as_str());
        h.insert(
            "Nats-Expected-Stream",
            self.inner.config.stream.name.as_str(),
        );
        if let Some(tp) = &event.envelope.traceparent {
            h.insert("traceparent", tp.as_str());
        }
        h
    }

    fn expect(h: &mut HeaderMap, expected: Version, filter: &str) {
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.stream_seq.to_string().as_str(),
        );
        h.insert("Nats-Expected-Last-Subject-Sequence-Subject", filter);
    }

    async fn publish_one(
        &self,
        event: &SignedEvent,
        expected: Version,
        filter: &str,
    ) -> Result<u64, PublishFailure> {
        let mut h = self.headers(event);
        Self::expect(&mut h, expected, filter);
        let subject = event.envelope.subject().to_string();
        let ack = self
            .inner
            .js
            .publish_with_headers(subject, h, Bytes::from(event.bytes.clone()))
            .await
            .map_err(|e| PublishFailure::Other(StoreError::nats("publish", e)))?
            .await;
        match ack {
            // Passed the expectation yet deduplicated: the same event id is already stored.
            // Treat it like a failed expectation and let resolution decide.
            Ok(ack) if ack.duplicate => Err(PublishFailure::WrongLastSequence),
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(PublishFailure::WrongLastSequence)
            }
            Err(e) if e.kind() == PublishErrorKind::TimedOut => Err(PublishFailure::Other(
                StoreError::Unacknowledged(e.to_string()),
            )),
            Err(e) => Err(PublishFailure::Other(StoreError::nats("publish ack", e))),
        }
    }

    /// An atomic batch (ADR-50): every message carries `Nats-Batch-Id` and its
    /// `Nats-Batch-Sequence`; the last one `Nats-Batch-Commit: 1` and a reply subject. The
    /// first carries the compare-and-set expectation. The server stores all or none.
    async fn publish_batch(
        &self,
        events: &[SignedEvent],
        expected: Version,
        filter: &str,
    ) -> Result<u64, PublishFailure> {
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let n = events.len();
        for (i, event) in events.iter().enumerate() {
            let mut h = self.headers(event);
            if i == 0 {
                Self::expect(&mut h, expected, filter);
            }
            h.insert("Nats-Batch-Id", batch_id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            let subject = event.envelope.subject().to_string();
            let payload = Bytes::from(event.bytes.clone());
            if i + 1 < n {
                self.inner
                    .client
                    .publish_with_headers(subject, h, payload)
                    .await
                    .map_err(|e| PublishFailure::Other(StoreError::nats("batch publish", e)))?;
                continue;
            }
            #[cfg(feature = "fault-injection")]
            if self.inner.faults.take_abandoned_batch() {
                let _ = self.inner.client.flush().await;
                return Err(PublishFailure::Other(StoreError::Unacknowledged(
                    "fault injection: writer died before the batch commit".into(),
                )));
            }
            h.insert("Nats-Batch-Commit", "1");
            let reply = tokio::time::timeout(
                self.inner.config.request_timeout,
                self.inner.client.request_with_headers(subject, h, payload),
            )
            .await
            .map_err(|_| {
                PublishFailure::Other(StoreError::Unacknowledged("batch commit timed out".into()))
            })?
            .map_err(|e| PublishFailure::Other(StoreError::Unacknowledged(e.to_string())))?;
            let ack: BatchAck = serde_json::from_slice(&reply.payload)
                .map_err(|e| PublishFailure::Other(StoreError::nats("batch commit reply", e)))?;
            if let Some(err) = ack.error {
                if err.err_code == ERR_WRONG_LAST_SEQUENCE
                    || err.err_code == ERR_BATCH_DUPLICATE_MSG_ID
                {
                    return Err(PublishFailure::WrongLastSequence);
                }
                return Err(PublishFailure::Other(StoreError::nats(
                    "batch commit",
                    format!("{} (err_code {})", err.description, err.err_code),
                )));
            }
            if ack.count != n as u64 || ack.seq == 0 {
                return Err(PublishFailure::Other(StoreError::nats(
                    "batch commit",
                    format!("acknowledged {} of {n} messages", ack.count),
                )));
            }
            return Ok(ack.seq);
        }
        unreachable!("a batch has at least two events")
    }

    /// The server checks expectations before deduplication (and, for batches, duplicate ids
    /// before expectations), so a retry whose first attempt was stored fails one of them.
    /// If the first attempt landed, the aggregate stood at `expected` when it did, so its events
    /// are the first `n` of the aggregate after `expected`: read the first one from the stream
    /// leader (a follower answering a direct get may be behind) and compare command ids.
    async fn resolve_conflict(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        filter: &str,
        expected: Version,
        command: &CommandId,
        n: usize,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner.cache.invalidate(kind, id);
        let conflict = |actual: Option<u64>| StoreError::Conflict {
            aggregate: Self::aggregate_id_of(kind, id),
            expected: expected.stream_seq,
            actual,
        };
        let Some(first) = self
            .leader_read(Some(filter), expected.stream_seq + 1)
            .await?
        else {
            return Err(conflict(None));
        };
        // a foreign message after `expected` is not this command's: a plain conflict (the
        // caller reloads, skipping it, and retries on top of it)
        let first_seq = first.seq;
        let Ok(first) = self.checked(first) else {
            return Err(conflict(Some(first_seq)));
        };
        if first.envelope.command_id != *command {
            return Err(conflict(Some(first.stream_seq)));
        }
        // An atomic batch is stored at consecutive sequences.
        let mut ours = vec![first];
        for i in 1..n as u64 {
            let seq = ours[0].stream_seq + i;
            let m = self
                .leader_read(None, seq)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    seq,
                    detail: "an atomic batch is missing a message".into(),
                })?;
            let e = self.checked(m).map_err(|e| StoreError::Corrupt {
                seq,
                detail: e.to_string(),
            })?;
            if e.envelope.command_id != *command {
                return Err(StoreError::Corrupt {
                    seq,
                    detail: "an atomic batch is interleaved with another command".into(),
                });
            }
            ours.push(e);
        }
        let last = &ours[n - 1];
        let version = Version {
            stream_seq: last.stream_seq,
            count: last.envelope.aggregate.seq,
        };
        Ok(AppendOutcome {
            events: ours,
            version,
            replayed: true,
        })
    }

    /// A message read through the stream leader (`$JS.API.STREAM.MSG.GET`): the message at
    /// `seq`, or with `filter` the first matching one at or after `seq`.
    async fn leader_read(
        &self,
        filter: Option<&str>,
        seq: u64,
    ) -> Result<Option<crate::RawMessage>, StoreError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let stream = self
            .inner
            .js
            .get_stream_no_info(&self.inner.config.stream.name)
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        let got = match filter {
            Some(f) => stream.get_first_raw_message_by_subject(f, seq).await,
            None => stream.get_raw_message(seq).await,
        };
        match got {
            Ok(m) => Ok(Some(crate::RawMessage {
                seq: m.sequence,
                subject: m.subject.to_string(),
                payload: m.payload,
                stored_at_nanos: m.time.unix_timestamp_nanos(),
                pending: None,
            })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(StoreError::nats("message get", e)),
        }
    }

    /// A stored message as an authentic event of this domain, or why it is foreign (reported).
    pub(crate) fn checked(
        &self,
        m: crate::RawMessage,
    ) -> Result<StoredEvent, crate::entry::EntryError> {
        self.inner
            .checker
            .check(m.seq, &m.subject, &m.payload)
            .inspect_err(|e| {
                self.inner.foreign.report("aggregate", &m.subject, e);
            })
    }

    /// A stored message decoded as an event (parsed, its signature not checked): the genesis,
    /// which names the keys everything else is checked against.
    pub(crate) fn stored(m: crate::RawMessage) -> Result<StoredEvent, StoreError> {
        let parsed = parse_unverified(&m.payload).map_err(|e| StoreError::Corrupt {
            seq: m.seq,
            detail: e.to_string(),
        })?;
        let event = parsed.envelope.decode().map_err(|e| StoreError::Corrupt {
            seq: m.seq,
            detail: e.to_string(),
        })?;
        Ok(StoredEvent {
            stream_seq: m.seq,
            envelope: parsed.envelope,
            event,
        })
    }

    /// Appends a domain's genesis event: only into an empty stream. A retry of the same
    /// genesis returns the stored one; any other first event is `GenesisExists`.
    pub async fn append_genesis(&self, genesis: &SignedEvent) -> Result<StoredEvent, StoreError> {
        let event = genesis
            .envelope
            .decode()
            .map_err(|e| StoreError::Invalid(InvalidAppend::Unsignable(e.to_string())))?;
        if !matches!(event, Event::DomainCreated(_)) {
            return Err(InvalidAppend::WrongAggregate {
                event: event.event_type(),
                expected: "DomainCreated",
                actual: "genesis",
            }
            .into());
        }
        let mut h = self.headers(genesis);
        h.insert("Nats-Expected-Last-Sequence", "0");
        let ack = self
            .inner
            .js
            .publish_with_headers(
                genesis.envelope.subject().to_string(),
                h,
                Bytes::from(genesis.bytes.clone()),
            )
            .await
            .map_err(|e| StoreError::nats("publish genesis", e))?
            .await;
        match ack {
            Ok(ack) => Ok(StoredEvent {
                stream_seq: ack.sequence,
                envelope: genesis.envelope.clone(),
                event,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                match self.genesis().await? {
                    Some(first) if first.envelope == genesis.envelope => Ok(first),
                    _ => Err(StoreError::GenesisExists),
                }
            }
            Err(e) => Err(StoreError::nats("publish genesis", e)),
        }
    }

    /// The first event of the log, if any.
    pub async fn genesis(&self) -> Result<Option<StoredEvent>, StoreError> {
        let (msgs, _) = self
            .inner
            .direct
            .batch(1, &accord_events::subject::domain_filter(self.domain()), 1)
            .await?;
        msgs.into_iter().next().map(Self::stored).transpose()
    }
}
