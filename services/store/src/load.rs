//! Aggregate loading by batched direct get, through a bounded cache of recent aggregates keyed
//! by their last stream sequence: a load fetches only what was appended since.

use std::sync::Arc;

use accord_events::subject::aggregate_filter;
use accord_events::{AggregateId, AggregateKind, CommandId};
use quick_cache::Weighter;

use crate::error::StoreError;
use crate::{EventStore, StoredEvent, Version};

/// An aggregate's history as loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadedAggregate {
    pub events: Arc<Vec<StoredEvent>>,
    pub version: Version,
}

impl LoadedAggregate {
    /// The events a command already stored, if it ran before (for idempotent retries).
    pub fn events_of(&self, command: &CommandId) -> Vec<StoredEvent> {
        self.events
            .iter()
            .filter(|e| e.envelope.command_id == *command)
            .cloned()
            .collect()
    }
}

#[derive(Clone)]
struct EventsWeighter;

impl Weighter<(AggregateKind, AggregateId), LoadedAggregate> for EventsWeighter {
    fn weight(&self, _key: &(AggregateKind, AggregateId), val: &LoadedAggregate) -> u64 {
        val.events.len() as u64 + 1
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
    /// Loads an aggregate's events as they stand now. A cached aggregate costs one direct-get
    /// round trip ("anything after my last sequence?"); an uncached one a batched direct get.
    pub async fn load(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
    ) -> Result<LoadedAggregate, StoreError> {
        let key = (kind, id.clone());
        let cached = self.inner.cache.inner.get(&key).unwrap_or_default();
        let filter = aggregate_filter(self.domain(), kind, id);
        let from = cached.version.stream_seq + 1;
        if cached.version.stream_seq > 0 && self.inner.direct.next(from, &filter).await?.is_none() {
            return Ok(cached);
        }
        let fresh = self.inner.direct.all(from, &filter).await?;
        let Some(last_seq) = fresh.last().map(|m| m.seq) else {
            return Ok(cached);
        };
        let mut events = Vec::with_capacity(cached.events.len() + fresh.len());
        events.extend(cached.events.iter().cloned());
        for m in fresh {
            // a message that is not an authentic event of this domain is skipped (and
            // reported), never fatal: the aggregate stays loadable, revocable and renewable
            match self.inner.checker.check(m.seq, &m.subject, &m.payload) {
                Ok(e) => events.push(e),
                Err(e) => {
                    self.inner.foreign.report("aggregate", &m.subject, &e);
                }
            }
        }
        // compare-and-set counts every message on the aggregate's subjects, foreign or not
        let version = Version {
            stream_seq: last_seq,
            count: events.len() as u64,
        };
        let loaded = LoadedAggregate {
            events: Arc::new(events),
            version,
        };
        self.inner.cache.inner.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// The cached history if there is one, without asking the server whether it is current;
    /// otherwise a [`EventStore::load`]. For writers: compare-and-set rejects an append made
    /// from a stale history, and the writer then reloads with [`EventStore::load`]. The flag
    /// says whether the history was just read from the server.
    pub async fn load_cached(
        &self,
        kind: AggregateKind,
        id: &AggregateId,
    ) -> Result<(LoadedAggregate, bool), StoreError> {
        if let Some(c) = self.inner.cache.inner.get(&(kind, id.clone())) {
            return Ok((c, false));
        }
        Ok((self.load(kind, id).await?, true))
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
