//! The read models over HTTP: a projection's digest and a table a page at a time (the routes
//! that need the admin or the read token; `super::router` puts them behind it).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{MAX_PAGE, MAX_WAIT, Problem, Rt, find, internal, unavailable};
use crate::runtime::Runtime;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MinSeq {
    /// Answer only once the projection applied at least this sequence.
    min_seq: Option<u64>,
    /// How long to wait for it, milliseconds (default 2,000, at most 30,000).
    wait_ms: Option<u64>,
}

/// A well-formed query, or a 400 `bad-query` problem.
fn query<T>(
    rt: &Runtime,
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<Query<T>, Problem> {
    q.map_err(|e| {
        rt.metrics.reject("http", "bad-query");
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Malformed query",
            e.body_text(),
        )
    })
}

/// Waits (at most `wait_ms`, default 2 s, capped at [`MAX_WAIT`]) for the projection to
/// reach `min_seq`; a 409 `not-yet` problem when it does not.
async fn reach(
    h: &accord_store::projection::runner::ProjectionHandle,
    min_seq: Option<u64>,
    wait_ms: Option<u64>,
) -> Result<(), Problem> {
    let Some(seq) = min_seq else { return Ok(()) };
    let wait = Duration::from_millis(wait_ms.unwrap_or(2000)).min(MAX_WAIT);
    h.wait_for(seq, wait).await.map_err(|e| {
        Problem::new(
            StatusCode::CONFLICT,
            "not-yet",
            "The projection has not reached that sequence",
            e.to_string(),
        )
    })?;
    Ok(())
}

/// A digest of the projection's whole state: equal digests, equal read models.
pub(super) async fn digest(
    State(rt): Rt,
    Path(name): Path<String>,
    q: Result<Query<MinSeq>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = query(&rt, q)?;
    let h = find(&rt, &name)?;
    reach(h, q.min_seq, q.wait_ms).await?;
    let p = h.progress();
    let dump = h
        .store()
        .dump(&name, p.generation)
        .await
        .map_err(|e| unavailable(&e))?;
    let digest =
        accord_store::projection::dump_digest(&dump).map_err(|e| internal(&e.to_string()))?;
    let applied = h
        .store()
        .checkpoint(&name, p.generation)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(json!({
        "projection": name,
        "generation": p.generation,
        "applied": applied,
        "rows": dump.len(),
        "digest": digest.to_string(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    /// Rows with keys after this one.
    after: Option<String>,
    /// At most this many rows (default and maximum [`MAX_PAGE`]).
    limit: Option<usize>,
    min_seq: Option<u64>,
    wait_ms: Option<u64>,
}

/// Rows of a table of the active generation, by key, a page at a time.
pub(super) async fn table(
    State(rt): Rt,
    Path((name, table)): Path<(String, String)>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = query(&rt, q)?;
    let h = find(&rt, &name)?;
    reach(h, q.min_seq, q.wait_ms).await?;
    let applied = h.progress().applied;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let rows = h
        .store()
        .page(&name, &table, q.after.as_deref(), limit)
        .await
        .map_err(|e| unavailable(&e))?;
    // the key to ask `after` for the next page, when this one is full
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|(k, _)| k.clone()))
        .flatten();
    let page: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    Ok(Json(json!({
        "projection": name,
        "table": table,
        "applied": applied,
        "rows": page,
        "next": next,
    })))
}
