//! Aggregate loading by batched direct get, through a bounded cache of recent aggregates keyed
//! by their last stream sequence: a load fetches only what was appended since.

use std::sync::Arc;

use accord_events::subject::aggregate_filter;
use accord_events::{AggregateId, AggregateKind, CommandId};
use quick_cache::Weighter;

use crate::direct::RawMessage;
use crate::error::StoreError;
use crate::snapshot::{Base, SnapshotProblem};
use crate::{Counters, EventStore, StoredEvent, Version};

/// An aggregate's history as loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadedAggregate {
    /// The snapshot the history starts from (`events` are those after it), if any.
    pub base: Option<Arc<Base>>,
    pub events: Arc<Vec<StoredEvent>>,
    pub version: Version,
}

impl LoadedAggregate {
    /// The events a command already stored, if it ran before (for idempotent retries).
    ///
    /// Only the events after the snapshot, if the history starts from one: see
    /// [`LoadedAggregate::may_hide`].
    pub fn events_of(&self, command: &CommandId) -> Vec<StoredEvent> {
        self.events
            .iter()
            .filter(|e| e.envelope.command_id == *command)
            .cloned()
            .collect()
    }

    /// Whether the command's events may be folded into the snapshot this history starts from
    /// (then only the whole history tells them).
    pub fn may_hide(&self, command: &CommandId) -> bool {
        self.base.as_ref().is_some_and(|b| b.covers(command))
    }
}

/// A message read from the log and checked.
struct Read {
    seq: u64,
    subject: String,
    event: Result<StoredEvent, crate::entry::EntryError>,
}

#[derive(Clone)]
struct EventsWeighter;

impl Weighter<(AggregateKind, AggregateId), LoadedAggregate> for EventsWeighter {
    fn weight(&self, _key: &(AggregateKind, AggregateId), val: &LoadedAggregate) -> u64 {
        // a snapshot's state weighs about as much as a few events
        val.events.len() as u64 + 1 + if val.base.is_some() { 8 } else { 0 }
    }
}

pub(crate) struct Cache {
    inner: quick_cache::sync::Cache<(AggregateKind, AggregateId), LoadedAggregate, EventsWeighter>,
}

impl Cache {
    pub(crate) fn new(events: u64) -> Self {
        let items = (events / 4).max(16) as usize;
        Self {
            inner: quick_cache::sync::Cache::with_weighter(items, events.max(16), EventsWeighter),
        }
    }

    pub(crate) fn invalidate(&self, kind: AggregateKind, id: &AggregateId) {
        self.inner.remove(&(kind, id.clone()));
    }
}

impl EventStore {
    /// Loads an aggregate's whole history as it stands now. A cached history costs one
    /// round trip (the aggregate's last message, found by the server's subject index) when
    /// nothing happened since, two when something did; an uncached one two. No request
    /// searches the stream past the aggregate's last message.
    pub async fn load(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
    ) -> Result<LoadedAggregate, StoreError> {
        let cached = self
            .inner
            .cache
            .inner
            .get(&(kind, id.clone()))
            .filter(|c| c.base.is_none())
            .unwrap_or_default();
        self.refresh(kind, id, cached).await
    }

    /// Loads an aggregate as it stands now, from a snapshot where there is one (ADR 0014):
    /// `base` then holds the folded state and `events` only what came after it. For writers,
    /// which fold; [`EventStore::load`] for the whole history.
    ///
    /// `snapshots` is the aggregate type's snapshot state version (`None`: it keeps none, and
    /// the whole history is read); a snapshot of another version is not used.
    pub async fn load_latest(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        snapshots: Option<u32>,
    ) -> Result<LoadedAggregate, StoreError> {
        match self.inner.cache.inner.get(&(kind, id.clone())) {
            Some(cached) => self.refresh(kind, id, cached).await,
            None => self.load_cold(kind, id, snapshots).await,
        }
    }

    /// The cached history if there is one, without asking the server whether it is current;
    /// otherwise a [`EventStore::load_latest`]. For writers: compare-and-set rejects an
    /// append made from a stale history, and the writer then reloads. The flag says whether
    /// the history was just read from the server.
    pub async fn load_cached(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
    ) -> Result<(LoadedAggregate, bool), StoreError> {
        self.load_cached_with(kind, id, None).await
    }

    /// [`EventStore::load_cached`], from a snapshot of state version `snapshots` where there
    /// is one (see [`EventStore::load_latest`]).
    pub async fn load_cached_with(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        snapshots: Option<u32>,
    ) -> Result<(LoadedAggregate, bool), StoreError> {
        if let Some(c) = self.inner.cache.inner.get(&(kind, id.clone())) {
            return Ok((c, false));
        }
        Ok((self.load_cold(kind, id, snapshots).await?, true))
    }

    /// An aggregate not in the cache: its snapshot and its last message side by side, then
    /// the events after the snapshot (none when the snapshot is current).
    async fn load_cold(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        snapshots: Option<u32>,
    ) -> Result<LoadedAggregate, StoreError> {
        let Some(state_version) = snapshots else {
            return self.refresh(kind, id, LoadedAggregate::default()).await;
        };
        let filter = aggregate_filter(self.domain(), kind, id);
        let (base, last) = tokio::join!(
            self.read_snapshot(kind, id, state_version),
            self.inner.direct.last(&filter)
        );
        let (Some(base), Some(last)) = (base?, last?) else {
            return self.refresh(kind, id, LoadedAggregate::default()).await;
        };
        let at = base.version.stream_seq;
        if at > last.seq {
            let p = SnapshotProblem::Ahead {
                snapshot: at,
                last: last.seq,
            };
            self.snapshot_refused(kind, id, &p);
            return self.refresh(kind, id, LoadedAggregate::default()).await;
        }
        // the anchor: the event at the snapshot's sequence is the one it names
        let last = self.read(last);
        let reads = if at == last.seq {
            vec![last]
        } else {
            let before_anchor = base.version.count.saturating_sub(1);
            self.up_to(at, &filter, last, before_anchor).await?
        };
        let mut reads = reads.into_iter();
        let anchored = reads.next().is_some_and(|r| {
            r.seq == at
                && r.event
                    .as_ref()
                    .is_ok_and(|e| e.envelope.id == base.event_id)
        });
        if !anchored {
            self.snapshot_refused(kind, id, &SnapshotProblem::Anchor(at));
            return self.refresh(kind, id, LoadedAggregate::default()).await;
        }
        Counters::add(&self.inner.counters.snapshot_loads, 1);
        let version = base.version;
        let start = LoadedAggregate {
            base: Some(Arc::new(base)),
            events: Arc::new(Vec::new()),
            version,
        };
        let loaded = self.extend(start, reads.collect());
        self.inner
            .cache
            .inner
            .insert((kind, id.clone()), loaded.clone());
        Ok(loaded)
    }

    /// A message read from the log, checked (once).
    fn read(&self, m: RawMessage) -> Read {
        let event = self.inner.checker.check(m.seq, &m.subject, &m.payload);
        Read {
            seq: m.seq,
            subject: m.subject,
            event,
        }
    }

    /// The aggregate's messages from `from` through `last`, its last one (read already), when
    /// `before` of its events precede `from`: only those strictly before `last` are fetched,
    /// exactly as many as `last`'s count says, and none when it says none. When `last` is not
    /// an authentic event its count is unknown, and whatever lies between is fetched.
    async fn up_to(
        &self,
        from: u64,
        filter: &str,
        last: Read,
        before: u64,
    ) -> Result<Vec<Read>, StoreError> {
        let between = match &last.event {
            Ok(e) => Some(e.envelope.aggregate.seq.saturating_sub(before + 1)),
            Err(_) => None,
        };
        let mut out = Vec::new();
        if last.seq > from && between != Some(0) {
            let fetched = self
                .inner
                .direct
                .through(from, filter, last.seq - 1, between.unwrap_or(1))
                .await?;
            out.extend(fetched.into_iter().map(|m| self.read(m)));
        }
        out.push(last);
        Ok(out)
    }

    /// `cached` brought up to date: its last sequence against the aggregate's last message,
    /// then exactly the messages in between.
    async fn refresh(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        cached: LoadedAggregate,
    ) -> Result<LoadedAggregate, StoreError> {
        let filter = aggregate_filter(self.domain(), kind, id);
        let Some(last) = self.inner.direct.last(&filter).await? else {
            return Ok(LoadedAggregate::default());
        };
        if last.seq == cached.version.stream_seq {
            return Ok(cached);
        }
        // a cache ahead of the log (a stream restored from an older backup): read it all
        let cached = if cached.version.stream_seq > last.seq {
            LoadedAggregate::default()
        } else {
            cached
        };
        let from = cached.version.stream_seq + 1;
        let last = self.read(last);
        let fresh = self
            .up_to(from, &filter, last, cached.version.count)
            .await?;
        let loaded = self.extend(cached, fresh);
        self.inner
            .cache
            .inner
            .insert((kind, id.clone()), loaded.clone());
        Ok(loaded)
    }

    /// `loaded` with the messages read after it: each checked, foreign ones skipped and
    /// reported, never fatal (the aggregate stays loadable, revocable and renewable).
    fn extend(&self, loaded: LoadedAggregate, fresh: Vec<Read>) -> LoadedAggregate {
        let Some(last_seq) = fresh.last().map(|r| r.seq) else {
            return loaded;
        };
        let mut events = Vec::with_capacity(loaded.events.len() + fresh.len());
        events.extend(loaded.events.iter().cloned());
        let mut count = loaded.version.count;
        for r in fresh {
            match r.event {
                Ok(e) => {
                    count += 1;
                    events.push(e);
                }
                Err(e) => {
                    self.inner.foreign.report("aggregate", &r.subject, &e);
                }
            }
        }
        LoadedAggregate {
            base: loaded.base,
            events: Arc::new(events),
            version: Version {
                stream_seq: last_seq,
                count,
            },
        }
    }

    /// Replaces a cached history by the snapshot just written of it, if the cache still
    /// stands where the snapshot does (later folds start from the snapshot).
    pub(crate) fn rebase(&self, kind: AggregateKind, id: &AggregateId, base: Base) {
        let key = (kind, id.clone());
        if let Some(c) = self.inner.cache.inner.get(&key)
            && c.version == base.version
        {
            let version = base.version;
            self.inner.cache.inner.insert(
                key,
                LoadedAggregate {
                    base: Some(Arc::new(base)),
                    events: Arc::new(Vec::new()),
                    version,
                },
            );
        }
    }

    /// After a successful append, extend the cached history if it was current.
    pub(crate) fn cache_appended(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
        expected: Version,
        stored: &[StoredEvent],
        version: Version,
    ) {
        let key = (kind, id.clone());
        match self.inner.cache.inner.get(&key) {
            Some(c) if c.version == expected => {
                let mut events = Vec::with_capacity(c.events.len() + stored.len());
                events.extend(c.events.iter().cloned());
                events.extend(stored.iter().cloned());
                self.inner.cache.inner.insert(
                    key,
                    LoadedAggregate {
                        base: c.base.clone(),
                        events: Arc::new(events),
                        version,
                    },
                );
            }
            Some(_) => self.inner.cache.invalidate(kind, id),
            // a new aggregate: compare-and-set on "nothing yet" succeeded, so what was just
            // stored is its whole history (a writer's next command needs no round trip)
            None if expected == Version::EMPTY => {
                self.inner.cache.inner.insert(
                    key,
                    LoadedAggregate {
                        base: None,
                        events: Arc::new(stored.to_vec()),
                        version,
                    },
                );
            }
            None => {}
        }
    }

    /// Drops every cached aggregate, and what the entry check remembers (tests, benchmarks of
    /// cold loads: as after a restart).
    pub fn clear_cache(&self) {
        self.inner.cache.inner.clear();
        self.inner.checker.cache().clear();
    }

    /// Drops every cached aggregate but keeps what the entry check remembers (benchmarks: a
    /// cold load of events this process already checked, to tell the check's cost apart).
    pub fn clear_aggregate_cache(&self) {
        self.inner.cache.inner.clear();
    }
}
