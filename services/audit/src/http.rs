//! The audit routes: checkpoints and proofs, public (like a CT log's) and rate-limited per
//! client address. They serve hashes and signed notes only; the events themselves are read
//! from the log with NATS credentials (`accord audit export`).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/audit` | tree size, root, the latest checkpoint |
//! | `GET /v1/audit/checkpoint` | the latest checkpoint, as its signed note (`text/plain`) |
//! | `GET /v1/audit/checkpoints?after=SEQ&limit=N` | checkpoints in log order (at most 1,000) |
//! | `GET /v1/audit/proof/inclusion?seq=N[&tree_size=M]` | RFC 9162 inclusion proof of event N |
//! | `GET /v1/audit/proof/consistency?first=A&second=B` | RFC 9162 consistency proof |

use accord_web::{Problem, RateLimit, client_ip};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::log::{AuditError, AuditLog};
use crate::tree::ProofError;

#[derive(Clone, Debug)]
pub struct AuditApi {
    pub log: AuditLog,
    pub limit: RateLimit,
}

pub fn router(state: AuditApi) -> Router {
    Router::new()
        .route("/v1/audit", get(status))
        .route("/v1/audit/checkpoint", get(latest))
        .route("/v1/audit/checkpoints", get(list))
        .route("/v1/audit/proof/inclusion", get(inclusion))
        .route("/v1/audit/proof/consistency", get(consistency))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .with_state(state)
}

type St = State<AuditApi>;

async fn rate_limit(State(s): St, req: Request, next: Next) -> Response {
    if let Some(ip) = client_ip(&req)
        && let Err(p) = s.limit.check(ip)
    {
        return p.into_response();
    }
    next.run(req).await
}

fn bad_query(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "The query is not valid",
        e.to_string(),
    )
}

fn problem(e: AuditError) -> Problem {
    match e {
        AuditError::Proof(p @ (ProofError::BeyondTree { .. } | ProofError::LeafOutside { .. })) => {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-in-tree",
                "Not in the audit tree (yet)",
                p.to_string(),
            )
        }
        AuditError::Proof(p @ ProofError::BadRange { .. }) => bad_query(p),
        e @ AuditError::NoCheckpoint(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "no-checkpoint",
            "No checkpoint covers it yet",
            e.to_string(),
        ),
        e => {
            tracing::warn!(error = %e, "audit route failed");
            Problem::internal()
        }
    }
}

async fn status(State(s): St) -> Json<crate::log::AuditStatus> {
    Json(s.log.status())
}

async fn latest(State(s): St) -> Result<Response, Problem> {
    match s.log.status().latest {
        Some(c) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            c.note,
        )
            .into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-checkpoint",
            "No checkpoint yet",
            "the log has no checkpoint yet",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn list(
    State(s): St,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    let items = s.log.checkpoints(q.after.unwrap_or(0), limit);
    Ok(Json(serde_json::json!({ "checkpoints": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    seq: u64,
    tree_size: Option<u64>,
}

async fn inclusion(
    State(s): St,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::log::InclusionProof>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    s.log
        .inclusion(q.seq, q.tree_size)
        .map(Json)
        .map_err(problem)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    first: u64,
    second: u64,
}

async fn consistency(
    State(s): St,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::log::ConsistencyProof>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    s.log
        .consistency(q.first, q.second)
        .map(Json)
        .map_err(problem)
}
