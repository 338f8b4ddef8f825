//! Read models in memory: the embedded default and the hot paths. Rebuilt from the log at
//! start; a batch becomes visible all at once, with its checkpoint, under one lock.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::RwLock;

use super::{
    Checkpoint, Dump, Overlay, OverlayAccess, Projection, ProjectionError, ProjectionStore, Rows,
    apply_events,
};
use crate::StoredEvent;

/// (table, key) → row, in key order within a table (so that a page is a range).
type TableRows = BTreeMap<(String, String), Value>;

#[derive(Debug, Default)]
struct Generation {
    rows: TableRows,
    checkpoint: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generations: HashMap<u32, Generation>,
    active: u32,
}

/// Told of the committed changes to one projection's rows in a memory store: what keeps a
/// secondary index (the registry's directory) in step with the rows, batch by batch. Called
/// under the store's write lock, so it sees batches in order and never half of one; it must
/// not block.
pub trait RowObserver: Send + Sync + 'static {
    /// One committed batch of `generation`: each changed row with its new value (`None`:
    /// deleted), and the generation's new checkpoint.
    fn committed(&self, generation: u32, changes: &[(&str, &str, Option<&Value>)], checkpoint: u64);
    /// `generation` became the active one; every other generation is gone.
    fn activated(&self, generation: u32);
}

/// The in-memory projection store.
pub struct MemoryStore {
    slots: RwLock<HashMap<String, Slot>>,
    scope: String,
    observers: std::sync::RwLock<HashMap<String, Vec<Arc<dyn RowObserver>>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            slots: RwLock::default(),
            scope: format!("mem-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            observers: std::sync::RwLock::default(),
        }
    }

    /// Makes `observer` follow `projection`'s rows: first everything its generations hold
    /// now (as one committed batch each, then the active one's activation), then every
    /// batch as it commits.
    pub async fn observe(&self, projection: &str, observer: Arc<dyn RowObserver>) {
        // the write lock: no batch commits between the replay and the registration
        let slots = self.slots.write().await;
        if let Some(slot) = slots.get(projection) {
            for (g, generation) in &slot.generations {
                let changes: Vec<(&str, &str, Option<&Value>)> = generation
                    .rows
                    .iter()
                    .map(|((t, k), v)| (t.as_str(), k.as_str(), Some(v)))
                    .collect();
                observer.committed(*g, &changes, generation.checkpoint);
            }
            if slot.active != 0 {
                observer.activated(slot.active);
            }
        }
        if let Ok(mut o) = self.observers.write() {
            o.entry(projection.to_owned()).or_default().push(observer);
        }
    }

    fn observers_of(&self, projection: &str) -> Vec<Arc<dyn RowObserver>> {
        self.observers
            .read()
            .ok()
            .and_then(|o| o.get(projection).cloned())
            .unwrap_or_default()
    }
}

struct MemRows<'a> {
    base: &'a TableRows,
    overlay: Overlay,
}

#[async_trait]
impl Rows for MemRows<'_> {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Value>, ProjectionError> {
        if let Some(v) = self.overlay.lookup(table, key) {
            return Ok(v);
        }
        Ok(self.base.get(&(table.to_owned(), key.to_owned())).cloned())
    }
    fn put(&mut self, table: &str, key: &str, value: Value) {
        self.overlay.put(table, key, value);
    }
    fn delete(&mut self, table: &str, key: &str) {
        self.overlay.delete(table, key);
    }
}

impl OverlayAccess for MemRows<'_> {
    fn overlay(&mut self) -> &mut Overlay {
        &mut self.overlay
    }
}

#[async_trait]
impl ProjectionStore for MemoryStore {
    fn consumer_scope(&self) -> String {
        self.scope.clone()
    }

    fn durable(&self) -> bool {
        false
    }

    async fn lead(&self, _projection: &str) -> Result<super::Leadership, ProjectionError> {
        Ok(Box::new(()))
    }

    async fn open(&self, projection: &str) -> Result<Checkpoint, ProjectionError> {
        let mut slots = self.slots.write().await;
        let slot = slots.entry(projection.to_owned()).or_default();
        if slot.generations.is_empty() {
            slot.generations.insert(1, Generation::default());
            slot.active = 1;
        }
        let g = &slot.generations[&slot.active];
        Ok(Checkpoint {
            generation: slot.active,
            seq: g.checkpoint,
        })
    }

    async fn apply_batch(
        &self,
        projection: &dyn Projection,
        generation: u32,
        events: &[StoredEvent],
        through: u64,
    ) -> Result<u64, ProjectionError> {
        // The write lock is held for the batch: its changes and its checkpoint become visible
        // together, and queries never see half a batch.
        let mut slots = self.slots.write().await;
        let g = slots
            .get_mut(projection.name())
            .and_then(|s| s.generations.get_mut(&generation))
            .ok_or_else(|| ProjectionError::Unknown(projection.name().to_owned()))?;
        let checkpoint = g.checkpoint;
        let mut rows = MemRows {
            base: &g.rows,
            overlay: Overlay::default(),
        };
        let last = apply_events(projection, &mut rows, checkpoint, events, through).await?;
        let overlay = rows.overlay;
        let observers = self.observers_of(projection.name());
        if !observers.is_empty() {
            let changes: Vec<(&str, &str, Option<&Value>)> = overlay
                .changes
                .iter()
                .map(|((t, k), c)| (t.as_str(), k.as_str(), c.as_ref().map(|(v, _)| v)))
                .collect();
            for o in &observers {
                o.committed(generation, &changes, last);
            }
        }
        for (k, change) in overlay.changes {
            match change {
                Some((v, _)) => {
                    g.rows.insert(k, v);
                }
                None => {
                    g.rows.remove(&k);
                }
            }
        }
        g.checkpoint = last;
        Ok(last)
    }

    async fn checkpoint(&self, projection: &str, generation: u32) -> Result<u64, ProjectionError> {
        let slots = self.slots.read().await;
        slots
            .get(projection)
            .and_then(|s| s.generations.get(&generation))
            .map(|g| g.checkpoint)
            .ok_or_else(|| ProjectionError::Unknown(projection.to_owned()))
    }

    async fn new_generation(&self, projection: &str) -> Result<u32, ProjectionError> {
        let mut slots = self.slots.write().await;
        let slot = slots.entry(projection.to_owned()).or_default();
        let g = slot.generations.keys().max().copied().unwrap_or(0) + 1;
        slot.generations.insert(g, Generation::default());
        if slot.active == 0 {
            slot.active = g;
        }
        Ok(g)
    }

    async fn activate(&self, projection: &str, generation: u32) -> Result<(), ProjectionError> {
        let mut slots = self.slots.write().await;
        let slot = slots
            .get_mut(projection)
            .ok_or_else(|| ProjectionError::Unknown(projection.to_owned()))?;
        if !slot.generations.contains_key(&generation) {
            return Err(ProjectionError::Unknown(format!(
                "{projection} generation {generation}"
            )));
        }
        slot.active = generation;
        slot.generations.retain(|g, _| *g == generation);
        for o in self.observers_of(projection) {
            o.activated(generation);
        }
        Ok(())
    }

    async fn get(
        &self,
        projection: &str,
        table: &str,
        key: &str,
    ) -> Result<Option<Value>, ProjectionError> {
        let slots = self.slots.read().await;
        Ok(slots
            .get(projection)
            .and_then(|s| s.generations.get(&s.active))
            .and_then(|g| g.rows.get(&(table.to_owned(), key.to_owned())))
            .cloned())
    }

    async fn scan(
        &self,
        projection: &str,
        table: &str,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        self.page(projection, table, None, usize::MAX).await
    }

    async fn page(
        &self,
        projection: &str,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let slots = self.slots.read().await;
        let Some(g) = slots
            .get(projection)
            .and_then(|s| s.generations.get(&s.active))
        else {
            return Ok(Vec::new());
        };
        let from = match after {
            Some(a) => Bound::Excluded((table.to_owned(), a.to_owned())),
            None => Bound::Included((table.to_owned(), String::new())),
        };
        Ok(g.rows
            .range((from, Bound::Unbounded))
            .take_while(|((t, _), _)| t == table)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn dump(&self, projection: &str, generation: u32) -> Result<Dump, ProjectionError> {
        let slots = self.slots.read().await;
        let g = slots
            .get(projection)
            .and_then(|s| s.generations.get(&generation))
            .ok_or_else(|| ProjectionError::Unknown(projection.to_owned()))?;
        Ok(g.rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}
