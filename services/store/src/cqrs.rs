//! cqrs-es on JetStream: [`JetStreamStore`] is the `cqrs_es::EventStore` of every aggregate
//! (so `CqrsFramework` and the `TestFramework` work as documented), and [`Executor`] runs
//! commands with what the framework lacks: idempotent retries by command id and bounded retry
//! on conflict.
//!
//! Aggregates use the catalogue's [`Event`] as their event type and ignore events that are
//! not theirs in `apply`. `Aggregate::TYPE` is the aggregate kind (`"agent"`, `"trust"`, ...).

use std::collections::HashMap;
use std::marker::PhantomData;

use accord_events::{
    Actor, AggregateId, AggregateKind, CommandId, CorrelationId, Event, EventId, Metadata,
    Timestamp, TraceParent,
};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope};

use crate::error::StoreError;
use crate::load::LoadedAggregate;
use crate::snapshot::{Base, SNAPSHOT_AFTER, SnapshotProblem, recent_commands};
use crate::{EventStore, StoredEvent, Version};

/// Keys of the cqrs-es metadata map that carry an Accord [`Metadata`].
pub mod keys {
    pub const COMMAND_ID: &str = "command_id";
    pub const ACTOR: &str = "actor";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const TRACEPARENT: &str = "traceparent";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const STREAM_SEQ: &str = "stream_seq";
    pub const EVENT_ID: &str = "event_id";
}

/// Encodes metadata for `CqrsFramework::execute_with_metadata`.
pub fn metadata_map(meta: &Metadata) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(keys::COMMAND_ID.into(), meta.command_id.to_string());
    m.insert(
        keys::ACTOR.into(),
        serde_json::to_string(&meta.actor).unwrap_or_default(),
    );
    m.insert(keys::CORRELATION_ID.into(), meta.correlation_id.to_string());
    if let Some(c) = meta.causation_id {
        m.insert(keys::CAUSATION_ID.into(), c.to_string());
    }
    if let Some(t) = &meta.traceparent {
        m.insert(keys::TRACEPARENT.into(), t.to_string());
    }
    m.insert(keys::OCCURRED_AT.into(), meta.occurred_at.to_string());
    m
}

/// Decodes metadata given to `commit`. Without a command id the command gets a fresh one
/// (and so no idempotency); without an actor it is attributed to `system:unknown`.
pub fn metadata_from_map(m: &HashMap<String, String>) -> Result<Metadata, StoreError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Invalid(crate::InvalidAppend::Unsignable(format!(
            "metadata {what}: {e}"
        )))
    };
    let command_id = match m.get(keys::COMMAND_ID) {
        Some(s) => CommandId::parse(s).map_err(|e| bad(keys::COMMAND_ID, &e))?,
        None => CommandId::new_random(),
    };
    let actor: Actor = match m.get(keys::ACTOR) {
        Some(s) => serde_json::from_str(s).map_err(|e| bad(keys::ACTOR, &e))?,
        None => Actor::system("unknown"),
    };
    let occurred_at = match m.get(keys::OCCURRED_AT) {
        Some(s) => Timestamp::parse(s).map_err(|e| bad(keys::OCCURRED_AT, &e))?,
        None => Timestamp::now(),
    };
    let mut meta = Metadata::new(command_id, actor, occurred_at);
    if let Some(s) = m.get(keys::CORRELATION_ID) {
        meta.correlation_id = CorrelationId::parse(s).map_err(|e| bad(keys::CORRELATION_ID, &e))?;
    }
    if let Some(s) = m.get(keys::CAUSATION_ID) {
        meta.causation_id = Some(EventId::parse(s).map_err(|e| bad(keys::CAUSATION_ID, &e))?);
    }
    if let Some(s) = m.get(keys::TRACEPARENT) {
        meta.traceparent = Some(TraceParent::parse(s).map_err(|e| bad(keys::TRACEPARENT, &e))?);
    }
    Ok(meta)
}

/// The cqrs-es event store of aggregates of type `A`, on the domain's log.
pub struct JetStreamStore<A> {
    store: EventStore,
    kind: AggregateKind,
    /// The state version of `A`'s snapshots, when it keeps them (ADR 0014).
    snapshots: Option<u32>,
    _a: PhantomData<fn() -> A>,
}

impl<A> std::fmt::Debug for JetStreamStore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate<Event = Event>> JetStreamStore<A> {
    pub fn new(store: EventStore) -> Result<Self, StoreError> {
        let kind: AggregateKind = A::TYPE.parse().map_err(|_| {
            StoreError::Invalid(crate::InvalidAppend::Unsignable(format!(
                "aggregate type {:?} is not an aggregate kind",
                A::TYPE
            )))
        })?;
        Ok(Self {
            store,
            kind,
            snapshots: None,
            _a: PhantomData,
        })
    }

    /// Keeps snapshots of `A` (ADR 0014), written and read as `state_version`: the version
    /// of `A`'s serialised state, to be bumped whenever a change to `A`'s fields would make
    /// an old snapshot deserialise to anything but what its events fold to.
    pub fn with_snapshots(mut self, state_version: u32) -> Self {
        self.snapshots = Some(state_version);
        self
    }

    pub fn kind(&self) -> AggregateKind {
        self.kind
    }

    pub fn event_store(&self) -> &EventStore {
        &self.store
    }

    /// Loads (as it stands now, from its snapshot where there is one) and folds an
    /// aggregate.
    pub async fn load_context(&self, id: &AggregateId) -> Result<JetStreamContext<A>, StoreError> {
        let history = self
            .store
            .load_latest(self.kind, id, self.snapshots)
            .await?;
        self.fold_or_reload(id, history).await
    }

    /// Loads the whole history (no snapshot) and folds it.
    pub async fn load_context_full(
        &self,
        id: &AggregateId,
    ) -> Result<JetStreamContext<A>, StoreError> {
        let history = self.store.load(self.kind, id).await?;
        self.fold_or_reload(id, history).await
    }

    /// Folds the cached history without asking the server (see [`EventStore::load_cached`]);
    /// the flag says whether the history was just read from the server.
    pub async fn load_context_cached(
        &self,
        id: &AggregateId,
    ) -> Result<(JetStreamContext<A>, bool), StoreError> {
        let (history, fresh) = self
            .store
            .load_cached_with(self.kind, id, self.snapshots)
            .await?;
        Ok((self.fold_or_reload(id, history).await?, fresh))
    }

    async fn fold_or_reload(
        &self,
        id: &AggregateId,
        history: LoadedAggregate,
    ) -> Result<JetStreamContext<A>, StoreError> {
        match self.fold(id, history) {
            Ok(ctx) => Ok(ctx),
            // a snapshot this build cannot read (an older shape of the aggregate): the events
            Err(p) => {
                self.store.snapshot_refused(self.kind, id, &p);
                let history = self.store.load(self.kind, id).await?;
                self.fold(id, history).map_err(|p| StoreError::Corrupt {
                    seq: 0,
                    detail: p.to_string(),
                })
            }
        }
    }

    fn fold(
        &self,
        id: &AggregateId,
        history: LoadedAggregate,
    ) -> Result<JetStreamContext<A>, SnapshotProblem> {
        let mut aggregate = match &history.base {
            Some(b) => A::deserialize(&b.state)
                .map_err(|e| SnapshotProblem::Malformed(format!("state: {e}")))?,
            None => A::default(),
        };
        for e in history.events.iter() {
            aggregate.apply(e.event.clone());
        }
        if let Some(v) = self.snapshots
            && history.events.len() >= SNAPSHOT_AFTER
        {
            self.snapshot(v, id, &aggregate, &history);
        }
        Ok(JetStreamContext {
            aggregate_id: id.clone(),
            aggregate,
            version: history.version,
            history,
        })
    }

    /// Writes a snapshot of a history just folded (in the background), and lets the cache
    /// start later folds from it.
    fn snapshot(
        &self,
        state_version: u32,
        id: &AggregateId,
        aggregate: &A,
        history: &LoadedAggregate,
    ) {
        let Some(last) = history.events.last() else {
            return;
        };
        let prior = history.base.as_ref().map_or(&[][..], |b| &b.recent[..]);
        let Some(recent) = recent_commands(prior, &history.events) else {
            return;
        };
        let Ok(state) = serde_json::to_value(aggregate) else {
            return;
        };
        let base = Base {
            state_version,
            version: history.version,
            event_id: last.envelope.id,
            recent,
            state,
        };
        self.store.write_snapshot(self.kind, id, &base);
        self.store.rebase(self.kind, id, base);
    }
}

/// A loaded aggregate and where it stands.
#[derive(Debug)]
pub struct JetStreamContext<A> {
    pub aggregate_id: AggregateId,
    pub aggregate: A,
    pub version: Version,
    pub history: LoadedAggregate,
}

impl<A: Aggregate> AggregateContext<A> for JetStreamContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

fn to_cqrs<A: Aggregate<Event = Event>>(e: &StoredEvent) -> EventEnvelope<A> {
    let mut metadata = HashMap::new();
    metadata.insert(keys::STREAM_SEQ.into(), e.stream_seq.to_string());
    metadata.insert(keys::EVENT_ID.into(), e.envelope.id.to_string());
    metadata.insert(keys::COMMAND_ID.into(), e.envelope.command_id.to_string());
    EventEnvelope {
        aggregate_id: e.envelope.aggregate.id.to_string(),
        sequence: e.envelope.aggregate.seq as usize,
        payload: e.event.clone(),
        metadata,
    }
}

fn store_err<E: std::error::Error>(e: StoreError) -> AggregateError<E> {
    match e {
        StoreError::Conflict { .. } => AggregateError::AggregateConflict,
        StoreError::Corrupt { .. } => AggregateError::DeserializationError(Box::new(e)),
        StoreError::Nats { .. } | StoreError::Unacknowledged(_) => {
            AggregateError::DatabaseConnectionError(Box::new(e))
        }
        other => AggregateError::UnexpectedError(Box::new(other)),
    }
}

fn parse_id<E: std::error::Error>(id: &str) -> Result<AggregateId, AggregateError<E>> {
    AggregateId::parse(id).map_err(|e| AggregateError::UnexpectedError(Box::new(e)))
}

impl<A> cqrs_es::EventStore<A> for JetStreamStore<A>
where
    A: Aggregate<Event = Event>,
    A::Error: Send,
{
    type AC = JetStreamContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let id = parse_id(aggregate_id)?;
        let history = self.store.load(self.kind, &id).await.map_err(store_err)?;
        Ok(history.events.iter().map(to_cqrs::<A>).collect())
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let id = parse_id(aggregate_id)?;
        self.load_context(&id).await.map_err(store_err)
    }

    async fn commit(
        &self,
        events: Vec<Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let meta = metadata_from_map(&metadata).map_err(store_err)?;
        let out = self
            .store
            .append(
                self.kind,
                &context.aggregate_id,
                context.version,
                &meta,
                events,
            )
            .await
            .map_err(store_err)?;
        Ok(out.events.iter().map(to_cqrs::<A>).collect())
    }
}

/// Why a command did not produce its events.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command (business rule).
    #[error("command rejected: {0}")]
    Rejected(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed {
    pub events: Vec<StoredEvent>,
    /// Where the aggregate stands after the command.
    pub version: Version,
    /// True when the command had already run (same command id) and this returns that run's
    /// events; nothing was written.
    pub replayed: bool,
}

/// Runs commands against aggregates of type `A`: load, check the command id against the
/// history, handle, append with compare-and-set, retry a bounded number of times on conflict.
pub struct Executor<A: Aggregate<Event = Event>> {
    store: JetStreamStore<A>,
    services: A::Services,
    conflict_retries: u32,
}

impl<A: Aggregate<Event = Event>> std::fmt::Debug for Executor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("kind", &self.store.kind)
            .field("conflict_retries", &self.conflict_retries)
            .finish_non_exhaustive()
    }
}

impl<A> Executor<A>
where
    A: Aggregate<Event = Event>,
    A::Command: Clone,
{
    pub fn new(store: EventStore, services: A::Services) -> Result<Self, StoreError> {
        Ok(Self {
            store: JetStreamStore::new(store)?,
            services,
            conflict_retries: 3,
        })
    }

    /// Keeps snapshots of `A` (see [`JetStreamStore::with_snapshots`]).
    pub fn with_snapshots(mut self, state_version: u32) -> Self {
        self.store = self.store.with_snapshots(state_version);
        self
    }

    /// How many times a command is re-run after a conflict before the conflict is returned.
    pub fn with_conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }

    pub fn store(&self) -> &JetStreamStore<A> {
        &self.store
    }

    /// Runs a command. The aggregate comes from the cache without a round trip when it is
    /// cached; a stale cache shows up as a conflict (compare-and-set) or, for a refusal, is
    /// ruled out by re-reading before the refusal is returned. So every answer reflects the
    /// aggregate as stored.
    pub async fn execute(
        &self,
        id: &AggregateId,
        meta: &Metadata,
        command: A::Command,
    ) -> Result<Executed, ExecuteError<A::Error>> {
        let mut attempts = 0;
        let mut must_read = false;
        loop {
            let (mut ctx, fresh) = if must_read {
                (self.store.load_context(id).await?, true)
            } else {
                self.store.load_context_cached(id).await?
            };
            // a retry whose first run may be folded into the snapshot: the whole history
            if ctx.history.may_hide(&meta.command_id) {
                ctx = self.store.load_context_full(id).await?;
            }
            let earlier = ctx.history.events_of(&meta.command_id);
            if let Some(last) = earlier.last() {
                let version = Version {
                    stream_seq: last.stream_seq,
                    count: last.envelope.aggregate.seq,
                };
                return Ok(Executed {
                    events: earlier,
                    version,
                    replayed: true,
                });
            }
            let sink = EventSink::default();
            if let Err(refusal) = ctx
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await
            {
                if fresh {
                    return Err(ExecuteError::Rejected(refusal));
                }
                must_read = true;
                continue;
            }
            let events = sink.collect().await;
            if events.is_empty() {
                if !fresh {
                    must_read = true;
                    continue;
                }
                return Ok(Executed {
                    events: Vec::new(),
                    version: ctx.version,
                    replayed: false,
                });
            }
            match self
                .store
                .store
                .append(self.store.kind, id, ctx.version, meta, events)
                .await
            {
                Ok(out) => {
                    return Ok(Executed {
                        events: out.events,
                        version: out.version,
                        replayed: out.replayed,
                    });
                }
                Err(StoreError::Conflict { .. }) if !fresh || attempts < self.conflict_retries => {
                    if fresh {
                        attempts += 1;
                    }
                    must_read = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
