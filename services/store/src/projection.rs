//! Projections: read models kept in step with the log, exactly once.
//!
//! A [`Projection`] is pure: it turns one event into row changes (`put`/`delete` in named
//! tables, JSON values), reading earlier rows when it must. A [`ProjectionStore`] applies a
//! batch of events through a projection and stores the batch's last stream sequence as the
//! checkpoint in the same transaction; events at or below the checkpoint are skipped, so a
//! redelivered batch changes nothing. Two stores implement it: PostgreSQL (durable, shared,
//! queryable with SQL) and memory (the embedded default and the hot paths, rebuilt from the
//! log at start). The [`runner`] feeds each projection from a durable pull consumer and
//! acknowledges only after the store committed.
//!
//! Rows live in generations: the active one answers queries; a rebuild replays the log into a
//! fresh generation and then switches.

pub mod memory;
pub mod postgres;
pub mod runner;

use std::collections::{BTreeMap, HashMap};

use accord_events::DomainId;
use async_trait::async_trait;
use serde_json::Value;

use crate::StoredEvent;

/// (table, key) → value: the whole content of a generation, for comparisons and dumps.
pub type Dump = BTreeMap<(String, String), Value>;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The projection could not make sense of an event (a bug, or a log it does not expect).
    #[error("projection {projection} at sequence {seq}: {detail}")]
    Apply {
        projection: String,
        seq: u64,
        detail: String,
    },
    /// The read model's storage failed; the batch was not applied.
    #[error("projection storage: {0}")]
    Storage(String),
    /// The log could not be read (the consumer, the stream, the connection to NATS).
    #[error("log: {0}")]
    Log(String),
    #[error("projection {0} is not known")]
    Unknown(String),
    /// The runner must reopen the active generation (a rebuild switched it).
    #[error("the active generation changed")]
    Reopen,
    /// Another instance is applying this projection to the same store.
    #[error("projection {0} is applied by another instance")]
    Standby(String),
    /// A query demanded a sequence the projection has not reached by the deadline.
    #[error("projection {projection} has applied sequence {applied}, not yet {wanted}")]
    NotYet {
        projection: String,
        applied: u64,
        wanted: u64,
    },
}

impl ProjectionError {
    pub fn apply(projection: &str, seq: u64, detail: impl std::fmt::Display) -> Self {
        Self::Apply {
            projection: projection.to_owned(),
            seq,
            detail: detail.to_string(),
        }
    }

    /// The kind of the failure, which may be shown to anyone (`/v1/projections`): no detail
    /// of the database or the log (hosts, users, statements), which stays in the server's log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Apply { .. } => "apply",
            Self::Storage(_) => "storage",
            Self::Log(_) => "log",
            Self::Unknown(_) => "unknown-projection",
            Self::Reopen => "reopen",
            Self::Standby(_) => "standby",
            Self::NotYet { .. } => "not-yet",
        }
    }
}

/// Row access for a projection applying one event.
#[async_trait]
pub trait Rows: Send {
    /// The row as it stands, including this batch's earlier changes.
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Value>, ProjectionError>;
    fn put(&mut self, table: &str, key: &str, value: Value);
    fn delete(&mut self, table: &str, key: &str);
}

/// A read model of the log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Unique name; also names its consumer and its rows.
    fn name(&self) -> &'static str;
    /// Applies one event. Events of kinds the projection does not follow are ignored.
    async fn apply(&self, event: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError>;
    /// Rows the projection will read for this event, so that a store can fetch a whole
    /// batch's rows in one round trip (PostgreSQL) instead of one query per event. A row read
    /// without being announced is still fetched, one query at a time.
    fn prefetch(&self, _event: &StoredEvent) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Subject filters of the consumer. The whole domain by default, so that the checkpoint is
    /// the exact position in the log and "at least sequence N" needs no translation.
    fn filters(&self, domain: &DomainId) -> Vec<String> {
        vec![accord_events::subject::domain_filter(domain)]
    }
}

/// The digest of a generation's content: SHA-256 over the RFC 8785 form of
/// `[[table, key, value], ...]` in key order. Two stores holding the same rows give the same
/// digest (`GET /v1/projections/{name}/digest`, `accord audit verify`).
pub fn dump_digest(
    dump: &Dump,
) -> Result<accord_events::Digest, accord_events::canonical::CanonicalError> {
    let rows: Vec<Value> = dump
        .iter()
        .map(|((t, k), v)| {
            Value::Array(vec![
                Value::from(t.as_str()),
                Value::from(k.as_str()),
                v.clone(),
            ])
        })
        .collect();
    let bytes = accord_events::canonical::canonical_bytes(&Value::Array(rows))?;
    Ok(accord_events::Digest::sha256(&bytes))
}

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub generation: u32,
    pub seq: u64,
}

/// Held while a runner applies a projection; dropping it lets another instance take over.
pub type Leadership = Box<dyn std::any::Any + Send + Sync>;

/// Storage of read models behind one interface.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Distinguishes the consumers of stores that do not share state: every memory store has
    /// its own, every runner on one PostgreSQL database shares one.
    fn consumer_scope(&self) -> String;
    /// Whether consumers of this scope outlive the process (a memory store's do not).
    fn durable(&self) -> bool;
    /// Becomes the one runner applying `projection` to this store, or fails with
    /// `ProjectionError::Standby` when another instance is.
    async fn lead(&self, projection: &str) -> Result<Leadership, ProjectionError>;
    /// Prepares storage for a projection and returns its active generation's checkpoint,
    /// creating generation 1 when there is none.
    async fn open(&self, projection: &str) -> Result<Checkpoint, ProjectionError>;
    /// Applies `events` (ascending stream sequences) through `projection` to `generation` and
    /// stores the batch's last sequence as its checkpoint, all in one transaction: `through`,
    /// the last entry the batch covered (entries the reader skipped as foreign included), or
    /// the last event's when that is higher. Events at or below the stored checkpoint are
    /// skipped. Returns the new checkpoint.
    async fn apply_batch(
        &self,
        projection: &dyn Projection,
        generation: u32,
        events: &[StoredEvent],
        through: u64,
    ) -> Result<u64, ProjectionError>;
    /// The checkpoint of a generation.
    async fn checkpoint(&self, projection: &str, generation: u32) -> Result<u64, ProjectionError>;
    /// A new, empty, inactive generation (for a rebuild).
    async fn new_generation(&self, projection: &str) -> Result<u32, ProjectionError>;
    /// Makes `generation` the active one and drops the others.
    async fn activate(&self, projection: &str, generation: u32) -> Result<(), ProjectionError>;
    /// A row of the active generation.
    async fn get(
        &self,
        projection: &str,
        table: &str,
        key: &str,
    ) -> Result<Option<Value>, ProjectionError>;
    /// Rows of a table of the active generation, by key.
    async fn scan(
        &self,
        projection: &str,
        table: &str,
    ) -> Result<Vec<(String, Value)>, ProjectionError>;
    /// At most `limit` rows of a table of the active generation whose keys come after `after`
    /// (from the first when `None`), by key: one page, read as such from storage (what the
    /// HTTP edge serves, never a whole table).
    async fn page(
        &self,
        projection: &str,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, ProjectionError>;
    /// Everything in a generation.
    async fn dump(&self, projection: &str, generation: u32) -> Result<Dump, ProjectionError>;
}

/// A batch's changes, applied at commit. Later writes to a row replace earlier ones.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    pub(crate) changes: HashMap<(String, String), Option<(Value, u64)>>,
    pub(crate) seq: u64,
}

impl Overlay {
    fn lookup(&self, table: &str, key: &str) -> Option<Option<Value>> {
        self.changes
            .get(&(table.to_owned(), key.to_owned()))
            .map(|c| c.as_ref().map(|(v, _)| v.clone()))
    }
    fn put(&mut self, table: &str, key: &str, value: Value) {
        self.changes
            .insert((table.to_owned(), key.to_owned()), Some((value, self.seq)));
    }
    fn delete(&mut self, table: &str, key: &str) {
        self.changes
            .insert((table.to_owned(), key.to_owned()), None);
    }
}

/// Runs the events of a batch above `checkpoint` through a projection into `rows`. Returns the
/// new checkpoint: the last sequence applied or `through` (the last entry the batch covered),
/// whichever is higher, and `checkpoint` when everything was at or below it.
pub(crate) async fn apply_events<R: Rows + OverlayAccess>(
    projection: &dyn Projection,
    rows: &mut R,
    checkpoint: u64,
    events: &[StoredEvent],
    through: u64,
) -> Result<u64, ProjectionError> {
    let mut last = checkpoint;
    for e in events {
        if e.stream_seq <= last {
            continue;
        }
        if crate::fault::stalled(projection.name(), e.stream_seq) {
            return Err(ProjectionError::Storage(format!(
                "fault injection: stalled at sequence {}",
                e.stream_seq
            )));
        }
        rows.overlay().seq = e.stream_seq;
        match &e.envelope.traceparent {
            // the trace of the request that wrote the event continues here
            Some(tp) => {
                let span = tracing::info_span!(
                    "projection.apply",
                    projection = projection.name(),
                    seq = e.stream_seq,
                    event_type = e.envelope.event_type.as_str(),
                    traceparent = tp.as_str(),
                );
                crate::trace::set_remote_parent(&span, tp);
                tracing::Instrument::instrument(projection.apply(e, rows), span).await?;
            }
            None => projection.apply(e, rows).await?,
        }
        last = e.stream_seq;
        crate::fault::mid_batch(projection.name(), e.stream_seq);
    }
    Ok(last.max(through))
}

pub(crate) trait OverlayAccess {
    fn overlay(&mut self) -> &mut Overlay;
}

/// Helpers for projections written against JSON rows.
pub mod row {
    use serde_json::Value;

    /// `row[field]` as u64 (0 when absent).
    pub fn u64_of(row: &Value, field: &str) -> u64 {
        row.get(field).and_then(Value::as_u64).unwrap_or(0)
    }

    /// The object of a row, created when absent.
    pub fn object(row: Option<Value>) -> serde_json::Map<String, Value> {
        match row {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// A zero-padded sequence, so keys sort in log order.
    pub fn seq_key(seq: u64) -> String {
        format!("{seq:020}")
    }
}
