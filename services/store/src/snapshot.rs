//! Aggregate snapshots (ADR 0014): the folded state of an aggregate at a stream sequence, kept
//! in the KV bucket `ACCORD_SNAPSHOTS` (in the services' account: no other identity can read
//! or write it), signed with the domain's event key and anchored to the log by the id of the
//! event at that sequence.
//!
//! A cold load reads the snapshot and the aggregate's last message side by side (two literal
//! or index-served lookups, no scan), then only the events after the snapshot. Anything wrong
//! with a snapshot (signature, key, domain, aggregate, an anchor that does not match the log,
//! a state that does not decode) makes the load fall back to the whole history, never fail.

use std::time::Duration;

use accord_events::{AggregateId, AggregateKind, CommandId, DomainId, EventId, KeyId, Timestamp};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::{EventStore, StoredEvent, Version};

/// The bucket (stream `KV_ACCORD_SNAPSHOTS`).
pub const BUCKET: &str = "ACCORD_SNAPSHOTS";
/// A new snapshot is written once a load folds at least this many events beyond the last one.
pub const SNAPSHOT_AFTER: usize = 16;
/// Largest snapshot written (larger states are loaded from their events).
pub const MAX_SNAPSHOT_BYTES: usize = 512 * 1024;
/// Commands whose events a snapshot covers stay recognisable for idempotent retries this long
/// after the newest covered event (the log's duplicate window is 2 minutes).
pub const RECENT_WINDOW: Duration = Duration::from_secs(120);
/// Most recent command ids one snapshot keeps; an aggregate busier than that is not
/// snapshotted (its retries must stay recognisable).
pub const MAX_RECENT: usize = 1024;
/// What the signature covers besides the body: never an event's signing context.
const CONTEXT: &[u8] = b"accord-snapshot-v1\n";
const SIG_LEN: usize = 64;

/// A snapshot as loaded and checked: where it stands, and the state as the aggregate
/// serialised it.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    /// The aggregate type's state version it was written with (see
    /// [`crate::cqrs::JetStreamStore::with_snapshots`]).
    pub state_version: u32,
    pub version: Version,
    /// Id of the event at `version.stream_seq` (its anchor in the log).
    pub event_id: EventId,
    /// Commands of the last [`RECENT_WINDOW`] it covers, with when they happened: a retry of
    /// one of them must read the whole history to find its events.
    pub recent: Vec<(CommandId, Timestamp)>,
    pub state: serde_json::Value,
}

impl Base {
    /// Whether the command's events may be among those this snapshot folded.
    pub fn covers(&self, command: &CommandId) -> bool {
        self.recent.iter().any(|(c, _)| c == command)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    v: u32,
    /// The aggregate type's state version.
    state_version: u32,
    domain: DomainId,
    kind: String,
    id: String,
    seq: u64,
    count: u64,
    event_id: EventId,
    kid: KeyId,
    recent: Vec<(CommandId, Timestamp)>,
    state: serde_json::Value,
}

/// Why a snapshot was not used (counted, logged; the load goes on from the events).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotProblem {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("bad signature: {0}")]
    Signature(String),
    #[error("for another domain or aggregate")]
    Mismatch,
    #[error("of state version {found}, not {expected} (the aggregate's shape changed)")]
    StateVersion { found: u32, expected: u32 },
    #[error("its anchor (event at sequence {0}) is not the event the log holds there")]
    Anchor(u64),
    #[error("ahead of the log (sequence {snapshot} > last {last})")]
    Ahead { snapshot: u64, last: u64 },
}

fn key(kind: AggregateKind, id: &AggregateId) -> String {
    format!("{}.{}", kind.as_str(), id)
}

pub(crate) fn subject(kind: AggregateKind, id: &AggregateId) -> String {
    format!("$KV.{BUCKET}.{}", key(kind, id))
}

/// Opens (creating when missing) the bucket, with the log's replication.
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), StoreError> {
    if js.get_key_value(BUCKET).await.is_ok() {
        return Ok(());
    }
    js.create_key_value(kv::Config {
        bucket: BUCKET.into(),
        description: "signed aggregate snapshots (ADR 0014); written by the services only".into(),
        history: 1,
        max_value_size: (MAX_SNAPSHOT_BYTES + 4096) as i32,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| StoreError::nats("snapshot bucket", e))
}

/// The recent commands a snapshot at `events`' last one keeps: those of `prior` and of
/// `events` no older than [`RECENT_WINDOW`] before the newest. `None` when there are more than
/// [`MAX_RECENT`] (then no snapshot is written).
pub fn recent_commands(
    prior: &[(CommandId, Timestamp)],
    events: &[StoredEvent],
) -> Option<Vec<(CommandId, Timestamp)>> {
    let newest = events.last()?.envelope.occurred_at.datetime();
    let since = newest - RECENT_WINDOW;
    let mut out: Vec<(CommandId, Timestamp)> = Vec::new();
    let all = prior.iter().cloned().chain(
        events
            .iter()
            .map(|e| (e.envelope.command_id, e.envelope.occurred_at)),
    );
    for (c, at) in all {
        if at.datetime() >= since && !out.iter().any(|(x, _)| *x == c) {
            out.push((c, at));
        }
    }
    (out.len() <= MAX_RECENT).then_some(out)
}

impl EventStore {
    /// The aggregate's snapshot, if there is one that checks out (signature by a trusted key,
    /// this domain and aggregate). Its anchor is checked by the caller against the log.
    pub(crate) async fn read_snapshot(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        state_version: u32,
    ) -> Result<Option<Base>, StoreError> {
        let Some(msg) = self.inner.snapshots.last(&subject(kind, id)).await? else {
            return Ok(None);
        };
        match self.decode_snapshot(kind, id, state_version, &msg.payload) {
            Ok(b) => Ok(Some(b)),
            Err(p) => {
                self.snapshot_refused(kind, id, &p);
                Ok(None)
            }
        }
    }

    fn decode_snapshot(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        state_version: u32,
        payload: &[u8],
    ) -> Result<Base, SnapshotProblem> {
        if payload.len() <= SIG_LEN {
            return Err(SnapshotProblem::Malformed("too short".into()));
        }
        let (sig, body_bytes) = payload.split_at(SIG_LEN);
        let body: Body = serde_json::from_slice(body_bytes)
            .map_err(|e| SnapshotProblem::Malformed(e.to_string()))?;
        self.inner
            .checker
            .ring()
            .verify_detached(&body.kid, CONTEXT, body_bytes, sig)
            .map_err(|e| SnapshotProblem::Signature(e.to_string()))?;
        if body.state_version != state_version {
            return Err(SnapshotProblem::StateVersion {
                found: body.state_version,
                expected: state_version,
            });
        }
        if body.v != 1
            || body.domain != *self.domain()
            || body.kind != kind.as_str()
            || body.id != id.as_str()
            || body.count == 0
            || body.seq == 0
        {
            return Err(SnapshotProblem::Mismatch);
        }
        Ok(Base {
            state_version: body.state_version,
            version: Version {
                stream_seq: body.seq,
                count: body.count,
            },
            event_id: body.event_id,
            recent: body.recent,
            state: body.state,
        })
    }

    pub(crate) fn snapshot_refused(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        p: &SnapshotProblem,
    ) {
        crate::Counters::add(&self.inner.counters.snapshots_refused, 1);
        tracing::warn!(aggregate = %format!("{}.{id}", kind.as_str()), problem = %p,
            "snapshot not used; loading the aggregate from its events");
    }

    /// Writes a snapshot (the aggregate as folded through its event at
    /// `base.version.stream_seq`), signed with the domain's event key, in the background: a
    /// write that fails costs only a slower cold load later.
    pub fn write_snapshot(&self, kind: AggregateKind, id: &AggregateId, base: &Base) {
        let body = Body {
            v: 1,
            state_version: base.state_version,
            domain: self.domain().clone(),
            kind: kind.as_str().to_owned(),
            id: id.as_str().to_owned(),
            seq: base.version.stream_seq,
            count: base.version.count,
            event_id: base.event_id,
            kid: self.inner.signer.kid().clone(),
            recent: base.recent.clone(),
            state: base.state.clone(),
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return;
        };
        if body.len() > MAX_SNAPSHOT_BYTES {
            return;
        }
        let mut input = Vec::with_capacity(CONTEXT.len() + body.len());
        input.extend_from_slice(CONTEXT);
        input.extend_from_slice(&body);
        let mut payload = Vec::with_capacity(SIG_LEN + body.len());
        payload.extend_from_slice(&self.inner.signer.sign(&input));
        payload.extend_from_slice(&body);
        let (js, subject, store) = (self.inner.js.clone(), subject(kind, id), self.clone());
        tokio::spawn(async move {
            let acked = match js.publish(subject, Bytes::from(payload)).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match acked {
                Ok(()) => crate::Counters::add(&store.inner.counters.snapshots_written, 1),
                Err(e) => tracing::debug!(error = %e, "snapshot not written"),
            }
        });
    }
}
