//! Pipelined appends of high-volume facts (tokens issued and exchanged): no compare-and-set,
//! many acknowledgements in flight (bounded by the JetStream context's ack window), on
//! `accord.evt.<domain>.token.<shard>.<EventType>` so the number of subjects stays bounded.

use accord_events::{AggregateId, AggregateKind, AggregateRef, Envelope, Event, Metadata};
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;

use crate::EventStore;
use crate::error::{InvalidAppend, StoreError};

/// An appended fact whose acknowledgement is on its way. The acknowledgement is awaited by a
/// task of its own, so the ack window frees up whether or not the caller ever awaits this.
#[derive(Debug)]
pub struct PendingFact {
    ack: tokio::task::JoinHandle<Result<u64, StoreError>>,
}

impl PendingFact {
    /// `digest` is the SHA-256 of the published bytes: once acknowledged, the entry check
    /// of this process knows its sequence as authentic (as for `append`).
    fn spawn(ack: PublishAckFuture, store: EventStore, digest: [u8; 32]) -> Self {
        Self {
            ack: tokio::spawn(async move {
                let seq = ack
                    .await
                    .map(|a| a.sequence)
                    .map_err(|e| StoreError::Unacknowledged(e.to_string()))?;
                store.inner.checker.cache().insert_digest(seq, digest);
                Ok(seq)
            }),
        }
    }

    /// Waits for the acknowledgement; returns the stream sequence.
    pub async fn acknowledged(self) -> Result<u64, StoreError> {
        self.ack
            .await
            .map_err(|e| StoreError::Unacknowledged(e.to_string()))?
    }
}

/// The shard of a key: FNV-1a, modulo the shard count.
pub fn shard_of(key: &[u8], shards: u16) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(shards.max(1))) as u16
}

impl EventStore {
    /// Signs and publishes a token fact on its shard and returns without waiting for the
    /// acknowledgement (waits only when the ack window is full). `shard_key` is usually the
    /// token's `jti`; the command id makes retries idempotent within the duplicate window.
    pub async fn append_fact(
        &self,
        shard_key: &[u8],
        meta: &Metadata,
        event: &Event,
    ) -> Result<PendingFact, StoreError> {
        if event.aggregate_kind() != AggregateKind::Token {
            return Err(InvalidAppend::WrongAggregate {
                event: event.event_type(),
                expected: event.aggregate_kind().as_str(),
                actual: "token",
            }
            .into());
        }
        let shard = shard_of(shard_key, self.inner.config.token_shards);
        let aggregate = AggregateRef {
            kind: AggregateKind::Token,
            id: AggregateId::parse(&format!("{shard:03}"))
                .unwrap_or_else(|_| unreachable!("three digits are an aggregate id")),
            seq: 0,
        };
        let env = Envelope::new(self.domain(), aggregate, meta, 0, event)
            .map_err(|e| InvalidAppend::Unsignable(e.to_string()))?;
        let signed = self.inner.signer.sign_event(env)?;
        let digest = crate::entry::digest(&signed.bytes);
        let headers = self.headers(&signed);
        let ack = self
            .inner
            .js
            .publish_with_headers(
                signed.envelope.subject().to_string(),
                headers,
                Bytes::from(signed.bytes),
            )
            .await
            .map_err(|e| StoreError::nats("publish fact", e))?;
        crate::Counters::add(&self.inner.counters.facts, 1);
        Ok(PendingFact::spawn(ack, self.clone(), digest))
    }
}
