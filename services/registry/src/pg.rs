//! The directory in PostgreSQL (ADR 0015): the `registry` projection's rows where the
//! PostgreSQL projection store keeps them (`accord_rows`), and the typed table a trigger
//! derives from them in the same transaction (`accord_registry_records`, migration
//! `0003_registry.sql`) with its terms in key order (`accord_registry_terms`, migration
//! `0005_registry_terms.sql`), queried with the requester's visibility and the query's terms
//! as SQL over those indexes, one statement and one round trip per page. The same projection
//! code writes these rows and the memory store's.
//!
//! Every value of a query is a bound parameter; the statement's shape only depends on which
//! terms the query has.

use std::sync::Arc;

use accord_store::projection::postgres::PgStore;
use tokio_postgres::types::{ToSql, Type};

use crate::RegistryError;
use crate::directory::{Entry, Index};
use crate::query::{Query, Visible};

/// The registry's rows in PostgreSQL.
pub struct PgDirectory {
    store: Arc<PgStore>,
    domain: Arc<str>,
}

impl std::fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDirectory")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(e.to_string())
}

/// `LIKE` pattern of a literal: its `%`, `_` and `\` escaped.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value of a statement, with its PostgreSQL type (statements are sent typed: one round
/// trip, planned for their values).
trait Param: ToSql + Sync + Send + 'static {
    const TYPE: Type;
}

impl Param for String {
    const TYPE: Type = Type::TEXT;
}

impl Param for Vec<String> {
    const TYPE: Type = Type::TEXT_ARRAY;
}

impl Param for i64 {
    const TYPE: Type = Type::INT8;
}

/// A statement under construction: its SQL and its parameters.
struct Sql {
    text: String,
    params: Vec<(Box<dyn ToSql + Sync + Send>, Type)>,
}

impl Sql {
    fn bind<P: Param>(&mut self, v: P) -> String {
        self.params.push((Box::new(v), P::TYPE));
        format!("${}", self.params.len())
    }
}

impl PgDirectory {
    pub fn new(store: Arc<PgStore>, domain: &str) -> Self {
        Self {
            store,
            domain: Arc::from(domain),
        }
    }

    /// The registry projection's active generation and its checkpoint.
    async fn active(
        &self,
        client: &deadpool_postgres::Object,
    ) -> Result<Option<(i32, u64)>, RegistryError> {
        let stmt = client
            .prepare_cached(
                "SELECT generation, checkpoint FROM accord_projections
                 WHERE name = 'registry' AND active",
            )
            .await
            .map_err(unavailable)?;
        let row = client.query_opt(&stmt, &[]).await.map_err(unavailable)?;
        Ok(row.map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1).max(0) as u64)))
    }

    /// The query as one statement over the active generation (read in the same statement, so
    /// in the same snapshot as the rows): it answers `(checkpoint, value)` rows, one row with a
    /// null value when nothing matches, none when the projection has no active generation.
    fn statement(&self, q: &Query, v: &Visible, after: Option<u128>, limit: usize) -> Option<Sql> {
        let mut s = Sql {
            text: String::new(),
            params: Vec::new(),
        };
        // every record here is of this domain
        if !q.domains.is_empty() && !q.domains.iter().any(|d| **d == *self.domain) {
            return None;
        }
        let mut w = vec!["g.generation = a.generation".to_owned()];
        let after_key = after.map(|a| s.bind(uuid::Uuid::from_u128(a).to_string()));
        if let Some(p) = &after_key {
            w.push(format!("g.key > {p}"));
        }
        for list in [&v.statuses, &q.statuses] {
            if !list.is_empty() {
                let p = s.bind(list.to_vec());
                w.push(format!("g.status = ANY({p})"));
            }
        }
        // the terms an index answers: the rarest drives, as a set of keys taken first
        let mut terms = Vec::new();
        if !q.capabilities.is_empty() {
            let p = s.bind(q.capabilities.clone());
            terms.push(format!("capabilities && {p}"));
        }
        if !q.skills.is_empty() {
            let p = s.bind(q.skills.clone());
            terms.push(format!("skills && {p}"));
        }
        if !q.tags.is_empty() {
            let p = s.bind(q.tags.clone());
            terms.push(format!("tags && {p}"));
        }
        if !q.owners.is_empty() {
            let p = s.bind(q.owners.clone());
            terms.push(format!("owner = ANY({p})"));
        }
        if let Some(t) = &q.text {
            let p = s.bind(format!("%{}%", like_literal(t)));
            w.push(format!("g.search LIKE {p}"));
        }
        if let Some(after_seq) = q.after_seq {
            let p = s.bind(i64::try_from(after_seq).unwrap_or(i64::MAX));
            w.push(format!("g.last_seq > {p}"));
        }
        // the requester's visibility: any clause; a clause naming another domain matches none
        let mut clauses = Vec::new();
        for c in &v.clauses {
            if c.domain.as_deref().is_some_and(|d| d != &*self.domain) {
                continue;
            }
            let mut parts = Vec::new();
            if let Some(vis) = c.visibility {
                let p = s.bind(vis.as_str().to_owned());
                parts.push(format!("g.visibility = {p}"));
            }
            if let Some(t) = &c.team {
                let p = s.bind(t.clone());
                parts.push(format!("g.team = {p}"));
            }
            if let Some(o) = &c.owner {
                let p = s.bind(o.clone());
                parts.push(format!("g.owner = {p}"));
            }
            clauses.push(if parts.is_empty() {
                "true".to_owned()
            } else {
                format!("({})", parts.join(" AND "))
            });
        }
        if clauses.is_empty() {
            return None;
        }
        w.push(format!("({})", clauses.join(" OR ")));
        // at least one capability shown: not hidden, and sought when the query seeks any
        let hidden: Vec<String> = v
            .hidden_prefixes
            .iter()
            .map(|p| format!("{}%", like_literal(p)))
            .collect();
        let hp = s.bind(hidden);
        let sought = if q.capabilities.is_empty() {
            String::new()
        } else {
            let p = s.bind(q.capabilities.clone());
            format!(" AND c = ANY({p})")
        };
        w.push(format!(
            "EXISTS (SELECT 1 FROM unnest(g.capabilities) c WHERE NOT (c LIKE ANY({hp})){sought})"
        ));
        let l = s.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        // one capability, tag or skill: walk that term's keys in order (migration 0005) and
        // stop after a page
        let driver = match (&q.capabilities[..], &q.tags[..], &q.skills[..]) {
            ([c], _, _) => Some(('c', c)),
            (_, [t], _) => Some(('t', t)),
            (_, _, [k]) => Some(('s', k)),
            _ => None,
        };
        let from = if let Some((kind, term)) = driver {
            let p = s.bind(term.clone());
            let after = after_key
                .as_ref()
                .map(|a| format!(" AND t.key > {a}"))
                .unwrap_or_default();
            let mut all = w.clone();
            all.extend(terms.iter().map(|t| format!("g.{t}")));
            let inner = format!(
                "(SELECT g.* FROM accord_registry_terms t \
                   JOIN accord_registry_records g ON g.generation = t.generation AND g.key = t.key \
                   WHERE t.generation = a.generation AND t.kind = '{kind}' AND t.term = {p}{after} \
                     AND {} ORDER BY t.key LIMIT {l}) g",
                all.join(" AND ")
            );
            w = vec!["true".to_owned()];
            inner
        } else if terms.is_empty() {
            "accord_registry_records g".to_owned()
        } else {
            // a term's index gives the candidates first, then they are ordered (the planner
            // would otherwise walk the key order hoping to meet a rare term early); OFFSET 0
            // keeps the subquery from being merged into the outer one
            let inner = format!(
                "(SELECT * FROM (SELECT * FROM accord_registry_records g WHERE {} AND {} \
                   OFFSET 0) g ORDER BY g.key LIMIT {l}) g",
                w.join(" AND "),
                terms
                    .iter()
                    .map(|t| format!("g.{t}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            );
            w = vec!["true".to_owned()];
            inner
        };
        s.text = format!(
            "WITH a AS (SELECT generation, checkpoint FROM accord_projections \
                        WHERE name = 'registry' AND active) \
             SELECT a.checkpoint, x.value FROM a LEFT JOIN LATERAL (\
               SELECT g.key, r.value FROM {from} \
               JOIN accord_rows r ON r.projection = 'registry' AND r.generation = g.generation \
                 AND r.tbl = 'agents' AND r.key = g.key \
               WHERE {} ORDER BY g.key LIMIT {l}) x ON true \
             ORDER BY x.key",
            w.join(" AND ")
        );
        Some(s)
    }
}

#[async_trait::async_trait]
impl Index for PgDirectory {
    async fn get(&self, agent_id: &str) -> Result<Option<Arc<Entry>>, RegistryError> {
        let client = self.store.connection().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT r.value FROM accord_rows r JOIN accord_projections p
                   ON p.name = r.projection AND p.generation = r.generation AND p.active
                 WHERE r.projection = 'registry' AND r.tbl = 'agents' AND r.key = $1",
                &[&agent_id],
            )
            .await
            .map_err(unavailable)?;
        Ok(row
            .and_then(|r| Entry::of_row(&self.domain, &r.get::<_, serde_json::Value>(0)))
            .map(Arc::new))
    }

    async fn scan(
        &self,
        q: &Query,
        v: &Visible,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<Arc<Entry>>, u64), RegistryError> {
        let client = self.store.connection().await.map_err(unavailable)?;
        let Some(stmt) = self.statement(q, v, after, limit) else {
            // nothing this requester may see here: only the position
            return Ok((
                Vec::new(),
                self.active(&client).await?.map_or(0, |(_, s)| s),
            ));
        };
        // a text is planned for its value (sent typed and unnamed, one round trip): how common
        // it is decides between the trigram index and a walk in key order, and a generic plan
        // cannot tell; every other shape has one good plan (a term's index first, else the key
        // order), so it is prepared once per connection and planned once
        let rows = if q.text.is_some() {
            let params: Vec<(&(dyn ToSql + Sync), Type)> = stmt
                .params
                .iter()
                .map(|(p, t)| (p.as_ref() as &(dyn ToSql + Sync), t.clone()))
                .collect();
            client.query_typed(&stmt.text, &params).await
        } else {
            let params: Vec<&(dyn ToSql + Sync)> = stmt
                .params
                .iter()
                .map(|(p, _)| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let prepared = client
                .prepare_cached(&stmt.text)
                .await
                .map_err(unavailable)?;
            client.query(&prepared, &params).await
        }
        .map_err(unavailable)?;
        let seq = rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64);
        let entries = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<serde_json::Value>>(1))
            .filter_map(|v| Entry::of_row(&self.domain, &v))
            .map(Arc::new)
            .collect();
        Ok((entries, seq))
    }

    async fn seq(&self) -> Result<u64, RegistryError> {
        let client = self.store.connection().await.map_err(unavailable)?;
        Ok(self.active(&client).await?.map_or(0, |(_, s)| s))
    }
}
