//! Read models in PostgreSQL (tokio-postgres): durable, shared and queryable. A batch's rows
//! and its checkpoint are written in one transaction, which first locks the generation's
//! checkpoint row, so two writers can never apply the same events.
//!
//! Schema: `schemas/postgres/*.sql`, applied in order at start, once each.
//!
//! The connection is verified TLS, or plaintext to this machine only ([`tls`], ADR 0012).

mod tls;

pub use tls::{PgConnectError, PgTls, SslMode, check_url, is_local};

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_postgres::{NoTls, Transaction};

use super::{
    Checkpoint, Dump, Overlay, OverlayAccess, Projection, ProjectionError, ProjectionStore, Rows,
    apply_events,
};
use crate::StoredEvent;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_projections",
        include_str!("../../../../schemas/postgres/0001_projections.sql"),
    ),
    (
        2,
        "0002_audit",
        include_str!("../../../../schemas/postgres/0002_audit.sql"),
    ),
    (
        3,
        "0003_registry",
        include_str!("../../../../schemas/postgres/0003_registry.sql"),
    ),
    (
        4,
        "0004_registry_gin",
        include_str!("../../../../schemas/postgres/0004_registry_gin.sql"),
    ),
    (
        5,
        "0005_registry_terms",
        include_str!("../../../../schemas/postgres/0005_registry_terms.sql"),
    ),
];

fn storage(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Storage(e.to_string())
}

/// The PostgreSQL projection store.
pub struct PgStore {
    pool: Pool,
    migrated: OnceCell<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store on `url` (`postgres://user@host:port/db`), reached as `tls` says (its
    /// `sslmode` is checked against it: [`check_url`]). Connects lazily; the schema is applied
    /// on first use.
    pub fn new(url: &str, max_connections: usize, tls: &PgTls) -> Result<Self, PgConnectError> {
        let config = check_url(url, tls.is_plaintext())?;
        // a pooled connection is checked without a round trip (`is_closed`: its connection
        // task ended, as it does when the server goes away); a connection that fails anyway
        // fails its statement, which every caller retries or reports (the projection runner
        // retries its batch). `Verified` cost one round trip per check-out, a third of a
        // registry page's (ADR 0015).
        let mc = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls.connector() {
            Some(connector) => Manager::from_config(config, connector, mc),
            None => Manager::from_config(config, NoTls, mc),
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(2))
            .build()
            .map_err(|e| PgConnectError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            migrated: OnceCell::new(),
        })
    }

    /// Applies the migrations not yet applied (under an advisory lock, so concurrent starts
    /// apply each once).
    pub async fn migrate(&self) -> Result<(), ProjectionError> {
        self.migrated
            .get_or_try_init(|| async {
                let mut client = self.pool.get().await.map_err(storage)?;
                let tx = client.transaction().await.map_err(storage)?;
                tx.batch_execute(
                    "SELECT pg_advisory_xact_lock(7061977);
                     CREATE TABLE IF NOT EXISTS accord_schema_migrations (
                         version integer PRIMARY KEY,
                         name text NOT NULL,
                         applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(storage)?;
                for (version, name, sql) in MIGRATIONS {
                    let done = tx
                        .query_opt(
                            "SELECT 1 FROM accord_schema_migrations WHERE version = $1",
                            &[version],
                        )
                        .await
                        .map_err(storage)?;
                    if done.is_none() {
                        tx.batch_execute(sql).await.map_err(storage)?;
                        tx.execute(
                            "INSERT INTO accord_schema_migrations (version, name) VALUES ($1, $2)",
                            &[version, name],
                        )
                        .await
                        .map_err(storage)?;
                        tracing::info!(version, name, "applied migration");
                    }
                }
                tx.commit().await.map_err(storage)
            })
            .await
            .map(|_| ())
    }

    /// A migrated connection (for the audit log's tables, which are not rows of a projection).
    pub async fn connection(&self) -> Result<deadpool_postgres::Object, ProjectionError> {
        self.client().await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ProjectionError> {
        self.migrate().await?;
        self.pool.get().await.map_err(storage)
    }
}

struct PgRows<'a, 't> {
    tx: &'a Transaction<'t>,
    projection: &'a str,
    generation: i32,
    fetched: HashMap<(String, String), Option<Value>>,
    overlay: Overlay,
}

#[async_trait]
impl Rows for PgRows<'_, '_> {
    async fn get(&mut self, table: &str, key: &str) -> Result<Option<Value>, ProjectionError> {
        if let Some(v) = self.overlay.lookup(table, key) {
            return Ok(v);
        }
        let k = (table.to_owned(), key.to_owned());
        if let Some(v) = self.fetched.get(&k) {
            return Ok(v.clone());
        }
        let row = self
            .tx
            .query_opt(
                "SELECT value FROM accord_rows
                 WHERE projection = $1 AND generation = $2 AND tbl = $3 AND key = $4",
                &[&self.projection, &self.generation, &table, &key],
            )
            .await
            .map_err(storage)?;
        let v: Option<Value> = row.map(|r| r.get(0));
        self.fetched.insert(k, v.clone());
        Ok(v)
    }
    fn put(&mut self, table: &str, key: &str, value: Value) {
        self.overlay.put(table, key, value);
    }
    fn delete(&mut self, table: &str, key: &str) {
        self.overlay.delete(table, key);
    }
}

impl OverlayAccess for PgRows<'_, '_> {
    fn overlay(&mut self) -> &mut Overlay {
        &mut self.overlay
    }
}

#[async_trait]
impl ProjectionStore for PgStore {
    fn consumer_scope(&self) -> String {
        "pg".into()
    }

    fn durable(&self) -> bool {
        true
    }

    /// A session advisory lock on a connection held for as long as the runner leads.
    async fn lead(&self, projection: &str) -> Result<super::Leadership, ProjectionError> {
        let client = self.client().await?;
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('accord-runner:' || $1))",
                &[&projection],
            )
            .await
            .map_err(storage)?
            .get(0);
        if !got {
            return Err(ProjectionError::Standby(projection.to_owned()));
        }
        // the lock lives as long as this connection; keep it out of the pool for good
        Ok(Box::new(deadpool_postgres::Object::take(client)))
    }

    async fn open(&self, projection: &str) -> Result<Checkpoint, ProjectionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(storage)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('accord-projection:' || $1))",
            &[&projection],
        )
        .await
        .map_err(storage)?;
        let active = tx
            .query_opt(
                "SELECT generation, checkpoint FROM accord_projections WHERE name = $1 AND active",
                &[&projection],
            )
            .await
            .map_err(storage)?;
        let cp = match active {
            Some(r) => Checkpoint {
                generation: r.get::<_, i32>(0) as u32,
                seq: r.get::<_, i64>(1) as u64,
            },
            None => {
                let r = tx
                    .query_one(
                        "INSERT INTO accord_projections (name, generation, active, switched_at)
                         SELECT $1, coalesce(max(generation), 0) + 1, true, now()
                         FROM accord_projections WHERE name = $1
                         RETURNING generation",
                        &[&projection],
                    )
                    .await
                    .map_err(storage)?;
                Checkpoint {
                    generation: r.get::<_, i32>(0) as u32,
                    seq: 0,
                }
            }
        };
        tx.commit().await.map_err(storage)?;
        Ok(cp)
    }

    async fn apply_batch(
        &self,
        projection: &dyn Projection,
        generation: u32,
        events: &[StoredEvent],
        through: u64,
    ) -> Result<u64, ProjectionError> {
        let name = projection.name();
        let g = generation as i32;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(storage)?;
        // the checkpoint (locked) and every row the batch announced it reads, in one round trip
        let (mut ft, mut fk): (Vec<&str>, Vec<String>) = (vec![], vec![]);
        for e in events {
            for (t, k) in projection.prefetch(e) {
                ft.push(t);
                fk.push(k);
            }
        }
        let lock = async {
            tx.query_opt(
                "SELECT checkpoint FROM accord_projections
                 WHERE name = $1 AND generation = $2 FOR UPDATE",
                &[&name, &g],
            )
            .await
        };
        let prefetch = async {
            if ft.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(
                "SELECT w.t, w.k, r.value
                 FROM unnest($3::text[], $4::text[]) AS w(t, k)
                 JOIN LATERAL (
                     SELECT value FROM accord_rows
                     WHERE projection = $1 AND generation = $2 AND tbl = w.t AND key = w.k
                 ) r ON true",
                &[&name, &g, &ft, &fk],
            )
            .await
        };
        let (checkpoint, found) = futures::try_join!(lock, prefetch).map_err(storage)?;
        let checkpoint: i64 = checkpoint
            .ok_or_else(|| ProjectionError::Unknown(format!("{name} generation {generation}")))?
            .get(0);
        let mut fetched = HashMap::new();
        for (t, k) in ft.iter().zip(&fk) {
            fetched.insert((t.to_string(), k.clone()), None);
        }
        for r in found {
            fetched.insert((r.get(0), r.get(1)), Some(r.get::<_, Value>(2)));
        }
        let mut rows = PgRows {
            tx: &tx,
            projection: name,
            generation: g,
            fetched,
            overlay: Overlay::default(),
        };
        let last = apply_events(projection, &mut rows, checkpoint as u64, events, through).await?;
        if last == checkpoint as u64 {
            // everything was applied before (a redelivery): nothing to write
            return Ok(last);
        }
        let overlay = rows.overlay;
        let (mut pt, mut pk, mut pv, mut ps) = (vec![], vec![], vec![], vec![]);
        let (mut dt, mut dk) = (vec![], vec![]);
        for ((t, k), change) in overlay.changes {
            match change {
                Some((v, seq)) => {
                    pt.push(t);
                    pk.push(k);
                    pv.push(v);
                    ps.push(seq as i64);
                }
                None => {
                    dt.push(t);
                    dk.push(k);
                }
            }
        }
        // the batch's writes and its checkpoint, pipelined, then one commit
        let upserts = async {
            if pt.is_empty() {
                return Ok(0);
            }
            tx.execute(
                "INSERT INTO accord_rows (projection, generation, tbl, key, value, seq)
                 SELECT $1, $2, t, k, v, s
                 FROM unnest($3::text[], $4::text[], $5::jsonb[], $6::int8[]) AS u(t, k, v, s)
                 ON CONFLICT (projection, generation, tbl, key)
                 DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq",
                &[&name, &g, &pt, &pk, &pv, &ps],
            )
            .await
        };
        let deletes = async {
            if dt.is_empty() {
                return Ok(0);
            }
            tx.execute(
                "DELETE FROM accord_rows r
                 USING unnest($3::text[], $4::text[]) AS d(t, k)
                 WHERE r.projection = $1 AND r.generation = $2 AND r.tbl = d.t AND r.key = d.k",
                &[&name, &g, &dt, &dk],
            )
            .await
        };
        let last_i = last as i64;
        let advance = async {
            tx.execute(
                "UPDATE accord_projections SET checkpoint = $3 WHERE name = $1 AND generation = $2",
                &[&name, &g, &last_i],
            )
            .await
        };
        futures::try_join!(upserts, deletes, advance).map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(last)
    }

    async fn checkpoint(&self, projection: &str, generation: u32) -> Result<u64, ProjectionError> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT checkpoint FROM accord_projections WHERE name = $1 AND generation = $2",
                &[&projection, &(generation as i32)],
            )
            .await
            .map_err(storage)?
            .ok_or_else(|| ProjectionError::Unknown(projection.to_owned()))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    async fn new_generation(&self, projection: &str) -> Result<u32, ProjectionError> {
        let client = self.client().await?;
        let r = client
            .query_one(
                "INSERT INTO accord_projections (name, generation, active)
                 SELECT $1, coalesce(max(generation), 0) + 1, false
                 FROM accord_projections WHERE name = $1
                 RETURNING generation",
                &[&projection],
            )
            .await
            .map_err(storage)?;
        Ok(r.get::<_, i32>(0) as u32)
    }

    async fn activate(&self, projection: &str, generation: u32) -> Result<(), ProjectionError> {
        let g = generation as i32;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(storage)?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM accord_projections WHERE name = $1 AND generation = $2",
                &[&projection, &g],
            )
            .await
            .map_err(storage)?;
        if exists.is_none() {
            return Err(ProjectionError::Unknown(format!(
                "{projection} generation {generation}"
            )));
        }
        tx.execute(
            "UPDATE accord_projections SET active = false WHERE name = $1 AND active",
            &[&projection],
        )
        .await
        .map_err(storage)?;
        tx.execute(
            "UPDATE accord_projections SET active = true, switched_at = now()
             WHERE name = $1 AND generation = $2",
            &[&projection, &g],
        )
        .await
        .map_err(storage)?;
        tx.execute(
            "DELETE FROM accord_rows WHERE projection = $1 AND generation <> $2",
            &[&projection, &g],
        )
        .await
        .map_err(storage)?;
        tx.execute(
            "DELETE FROM accord_projections WHERE name = $1 AND generation <> $2",
            &[&projection, &g],
        )
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn get(
        &self,
        projection: &str,
        table: &str,
        key: &str,
    ) -> Result<Option<Value>, ProjectionError> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT r.value FROM accord_rows r
                 JOIN accord_projections p ON p.name = r.projection AND p.generation = r.generation
                 WHERE p.active AND r.projection = $1 AND r.tbl = $2 AND r.key = $3",
                &[&projection, &table, &key],
            )
            .await
            .map_err(storage)?;
        Ok(r.map(|r| r.get(0)))
    }

    async fn scan(
        &self,
        projection: &str,
        table: &str,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT r.key, r.value FROM accord_rows r
                 JOIN accord_projections p ON p.name = r.projection AND p.generation = r.generation
                 WHERE p.active AND r.projection = $1 AND r.tbl = $2
                 ORDER BY r.key",
                &[&projection, &table],
            )
            .await
            .map_err(storage)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn page(
        &self,
        projection: &str,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, ProjectionError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // the primary key (projection, generation, tbl, key) serves the range and the order
        let rows = match after {
            Some(after) => {
                client
                    .query(
                        "SELECT r.key, r.value FROM accord_rows r
                         JOIN accord_projections p
                           ON p.name = r.projection AND p.generation = r.generation
                         WHERE p.active AND r.projection = $1 AND r.tbl = $2 AND r.key > $3
                         ORDER BY r.key LIMIT $4",
                        &[&projection, &table, &after, &limit],
                    )
                    .await
            }
            None => {
                client
                    .query(
                        "SELECT r.key, r.value FROM accord_rows r
                         JOIN accord_projections p
                           ON p.name = r.projection AND p.generation = r.generation
                         WHERE p.active AND r.projection = $1 AND r.tbl = $2
                         ORDER BY r.key LIMIT $3",
                        &[&projection, &table, &limit],
                    )
                    .await
            }
        }
        .map_err(storage)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn dump(&self, projection: &str, generation: u32) -> Result<Dump, ProjectionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT tbl, key, value FROM accord_rows WHERE projection = $1 AND generation = $2",
                &[&projection, &(generation as i32)],
            )
            .await
            .map_err(storage)?;
        Ok(rows
            .into_iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    }
}
