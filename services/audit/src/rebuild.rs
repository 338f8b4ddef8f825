//! Rebuilding the domain's projections from a verified history, in memory, to compare them
//! with the live ones (`GET /v1/projections/{name}/digest`, same digest function).

use std::sync::Arc;

use accord_store::StoredEvent;
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::{Projection, ProjectionError, ProjectionStore, dump_digest};

/// The projections, rebuilt from scratch.
pub struct Rebuild {
    store: MemoryStore,
    projections: Vec<(Arc<dyn Projection>, u32)>,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuild")
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.0.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Rebuild {
    /// Every projection of the domain (`accord_readmodels::all()`), empty.
    pub async fn new() -> Result<Self, ProjectionError> {
        let store = MemoryStore::new();
        let mut projections = Vec::new();
        for p in accord_readmodels::all() {
            let cp = store.open(p.name()).await?;
            projections.push((p, cp.generation));
        }
        Ok(Self { store, projections })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.0.name()).collect()
    }

    /// Applies verified events (ascending sequences).
    pub async fn apply(&self, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        if events.is_empty() {
            return Ok(());
        }
        for (p, generation) in &self.projections {
            self.store
                .apply_batch(p.as_ref(), *generation, events, 0)
                .await?;
        }
        Ok(())
    }

    /// The digest of a projection as rebuilt.
    pub async fn digest(&self, name: &str) -> Result<String, ProjectionError> {
        let (_, generation) = self
            .projections
            .iter()
            .find(|p| p.0.name() == name)
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))?;
        let dump = self.store.dump(name, *generation).await?;
        dump_digest(&dump)
            .map(|d| d.to_string())
            .map_err(|e| ProjectionError::Storage(e.to_string()))
    }
}
