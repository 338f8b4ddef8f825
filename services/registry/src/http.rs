//! The registry's HTTPS API (its own listener: client certificates are asked for here only).
//! Every error is an RFC 9457 problem document; bodies are bounded JSON; clients are
//! rate-limited per address.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `PUT /v1/registry/agents/{id}` | the agent: its certificate, or WIT + proof | register, or update the record |
//! | `GET /v1/registry/agents/{id}` | an agent (certificate, WIT + proof) or the admin token | the record, if the policy shows it (`?min_seq=N`) |
//! | `POST /v1/registry/search` | the same | a page of a discovery |
//! | `GET /v1/registry/agents/{id}/card` | the same | the agent's A2A card, signed by the domain (`card.rs`) |
//! | `GET /v1/registry/agents/{id}/extendedAgentCard` | the same | the card with what only the caller may see |
//! | `POST /v1/registry/agents/{id}/suspend` | admin token | take the record out of discovery |
//! | `POST /v1/registry/agents/{id}/decommission` | admin token | decommission the agent (every live credential revoked) |
//!
//! A WIT's proof token is for the URL of the request (`aud`: the registry's public URL and
//! the path), single use.

use std::sync::Arc;

use accord_authority::IssueError;
use accord_authority::api::LifecycleRequest;
use accord_authority::http::{problem as aca_problem, trace};
use accord_authority::registrar::{MAX_REGISTRATION, RegisterRequest};
use accord_events::{Actor, AgentId};
use accord_web::{JsonBody, Problem, RateLimit, Tokens, bearer};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use axum_server::tls::TlsInfo;
use base64::Engine;
use serde::Deserialize;

use crate::{Caller, Registry, RegistryError, SearchRequest};

/// What the routes share.
#[derive(Clone)]
pub struct RegistryState {
    pub registry: Arc<Registry>,
    pub admin_token: Tokens,
    pub limit: RateLimit,
}

impl std::fmt::Debug for RegistryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryState").finish_non_exhaustive()
    }
}

type St = State<RegistryState>;
type Tls = Option<Extension<Arc<TlsInfo>>>;

pub fn router(state: RegistryState) -> Router {
    let admin =
        axum::middleware::from_fn_with_state(state.admin_token.clone(), accord_web::require_token);
    Router::new()
        .route(
            "/v1/registry/agents/{id}",
            put(register)
                .get(show)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_REGISTRATION)),
        )
        .route("/v1/registry/agents/{id}/card", get(public_card))
        .route(
            "/v1/registry/agents/{id}/extendedAgentCard",
            get(extended_card),
        )
        .route("/v1/registry/search", post(search))
        .route(
            "/v1/registry/agents/{id}/suspend",
            post(suspend).route_layer(admin.clone()),
        )
        .route(
            "/v1/registry/agents/{id}/decommission",
            post(decommission).route_layer(admin),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.limit.clone(),
            accord_web::rate_limit,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(accord_web::MAX_BODY))
        .with_state(state)
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such resource",
                "see the registry's API",
            )
        })
}

/// The problem document of a registry error.
pub fn problem(e: &RegistryError) -> Problem {
    let p = |status, kind, title| Problem::new(status, kind, title, e.to_string());
    match e {
        RegistryError::BadRequest(_) => p(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The query is not acceptable",
        ),
        RegistryError::BadPageToken => p(
            StatusCode::BAD_REQUEST,
            "bad-page-token",
            "The page token is not valid for this query",
        ),
        RegistryError::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such agent",
            "no agent with this id is visible to you",
        ),
        RegistryError::CredentialNotLive(_) => p(
            StatusCode::FORBIDDEN,
            "credential-not-live",
            "The requester's credential is not live",
        ),
        RegistryError::Stale { wanted, .. } => p(
            StatusCode::SERVICE_UNAVAILABLE,
            "stale",
            "The registry has not reached the sequence asked for",
        )
        .with("min_seq", *wanted),
        RegistryError::Unavailable(d) => {
            tracing::warn!(error = %d, "registry dependency unavailable");
            Problem::unavailable()
        }
    }
}

/// The problem document of a refused registration: what was not as signed is named.
pub fn registration_problem(e: &IssueError) -> Problem {
    use accord_authority::agent::AgentError as A;
    let p = |status, kind: &'static str, title: &'static str| {
        Problem::new(status, kind, title, e.to_string())
    };
    match e {
        IssueError::Agent(A::RegistrationMismatch { field }) => p(
            StatusCode::FORBIDDEN,
            match *field {
                "capabilities" => "capabilities-mismatch",
                "owner" => "owner-mismatch",
                "aibom_digest" => "aibom-mismatch",
                _ => "name-mismatch",
            },
            "The registration is not what the credential signed",
        )
        .with("field", *field),
        IssueError::Agent(A::Revoked(_) | A::RotatedOut(_)) => p(
            StatusCode::FORBIDDEN,
            "credential-revoked",
            "The credential is revoked",
        ),
        IssueError::Agent(A::Superseded(_)) => p(
            StatusCode::FORBIDDEN,
            "credential-superseded",
            "The credential was renewed; register with its successor",
        ),
        IssueError::Agent(A::Expired(_)) => p(
            StatusCode::FORBIDDEN,
            "credential-expired",
            "The credential has expired",
        ),
        IssueError::Agent(A::UnknownCredential(_)) => p(
            StatusCode::FORBIDDEN,
            "unknown-credential",
            "The credential is not one of the agent's",
        ),
        IssueError::Agent(A::WitMismatch(_)) => p(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The workload identity token is not the credential's",
        ),
        IssueError::Agent(A::NotRegistered) => p(
            StatusCode::NOT_FOUND,
            "not-registered",
            "The agent has no registry record",
        ),
        IssueError::Agent(A::AlreadySuspended) => p(
            StatusCode::CONFLICT,
            "already-suspended",
            "The record is already suspended",
        ),
        IssueError::Unauthorized(_) => p(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authenticated as this agent",
        ),
        other => aca_problem(other),
    }
}

fn agent_id(id: &str) -> Result<AgentId, Problem> {
    AgentId::parse(id).map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such agent",
            "no agent with this id is visible to you",
        )
    })
}

fn unauthenticated(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Not authenticated",
        detail,
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The agent a WIT names (its `sub`), read before it is verified: only to know which agent
/// to verify it for.
fn wit_agent(wit: &str) -> Option<AgentId> {
    let payload = wit.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    accord_events::SpiffeId::parse(v.get("sub")?.as_str()?)
        .ok()?
        .agent_id()
}

/// Who calls: the client certificate, a WIT with its proof (for `path`), or the admin token.
fn caller(
    s: &RegistryState,
    headers: &HeaderMap,
    tls: &Tls,
    path: &str,
    admin_allowed: bool,
) -> Result<
    (
        Caller,
        Option<accord_authority::registrar::RegistrationProof>,
    ),
    Problem,
> {
    let reg = &s.registry;
    if let Some(Extension(info)) = tls
        && let Some(leaf) = info.peer_certificates.first()
    {
        let r = reg
            .authority
            .registrant_of_certificate(leaf)
            .map_err(|e| registration_problem(&e))?;
        return Ok((Caller::Agent(r), None));
    }
    if let (Some(wit), Some(wpt)) = (
        header(headers, "workload-identity-token"),
        header(headers, "workload-proof-token"),
    ) {
        let agent = wit_agent(wit).ok_or_else(|| {
            unauthenticated("the workload identity token names no agent of this domain")
        })?;
        let audience = format!("{}{path}", reg.public_url);
        let (r, proof) = reg
            .authority
            .registrant_of_workload(&agent, wit, wpt, &audience)
            .map_err(|e| registration_problem(&e))?;
        return Ok((Caller::Agent(r), Some(proof)));
    }
    if admin_allowed && bearer(headers).is_some() {
        s.admin_token.authorize(headers)?;
        return Ok((Caller::Operator, None));
    }
    Err(unauthenticated(
        "present the agent's certificate, or Workload-Identity-Token and Workload-Proof-Token",
    ))
}

/// Reads and drops what is left of a refused request's body (at most `limit` bytes) before the
/// refusal is sent: over HTTP/2, an answer that leaves the body unread resets the stream,
/// which clients report as a transport error instead of the problem document.
async fn drained(req: axum::extract::Request, limit: usize, p: Problem) -> Problem {
    let _ = axum::body::to_bytes(req.into_body(), limit).await;
    p
}

/// Who registers, and that it registers itself.
fn registrant(
    s: &RegistryState,
    id: &str,
    headers: &HeaderMap,
    tls: &Tls,
) -> Result<
    (
        accord_authority::registrar::Registrant,
        Option<accord_authority::registrar::RegistrationProof>,
    ),
    Problem,
> {
    let agent = agent_id(id)?;
    let path = format!("/v1/registry/agents/{agent}");
    let (who, proof) = match caller(s, headers, tls, &path, false)? {
        (Caller::Agent(r), proof) => (r, proof),
        (Caller::Operator, _) => return Err(unauthenticated("only the agent registers itself")),
    };
    if who.agent_id != agent {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not-this-agent",
            "An agent registers only itself",
            "the credential presented is another agent's",
        ));
    }
    Ok((who, proof))
}

/// Authenticates first, then reads the body: an unauthenticated request is a 401 whatever it
/// sends.
async fn register(
    State(s): St,
    Path(id): Path<String>,
    tls: Tls,
    req: axum::extract::Request,
) -> Result<Response, Problem> {
    let headers = req.headers().clone();
    let (who, proof) = match registrant(&s, &id, &headers, &tls) {
        Ok(r) => r,
        Err(p) => return Err(drained(req, MAX_REGISTRATION, p).await),
    };
    let body = <JsonBody<RegisterRequest, { MAX_REGISTRATION }> as axum::extract::FromRequest<
        (),
    >>::from_request(req, &())
    .await?;
    let out = s
        .registry
        .authority
        .register(&who, proof, body.0, trace(&headers))
        .await
        .map_err(|e| registration_problem(&e))?;
    tracing::info!(agent = %out.agent_id, outcome = %out.outcome, seq = out.seq, "registration");
    let status = if out.outcome == "registered" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

/// Spends a WIT's proof of a read request (single use, like every proof).
async fn spend(
    s: &RegistryState,
    proof: Option<accord_authority::registrar::RegistrationProof>,
) -> Result<(), Problem> {
    if let Some(p) = proof {
        s.registry
            .authority
            .spend_registration_proof(&p)
            .await
            .map_err(|e| registration_problem(&e))?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowParams {
    min_seq: Option<u64>,
}

async fn show(
    State(s): St,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
    headers: HeaderMap,
    tls: Tls,
) -> Result<Response, Problem> {
    let (who, proof) = caller(
        &s,
        &headers,
        &tls,
        &format!("/v1/registry/agents/{id}"),
        true,
    )?;
    spend(&s, proof).await?;
    let out = s
        .registry
        .show(&who, &id, params.min_seq)
        .await
        .map_err(|e| problem(&e))?;
    Ok(Json(out).into_response())
}

async fn search(State(s): St, tls: Tls, req: axum::extract::Request) -> Result<Response, Problem> {
    let headers = req.headers().clone();
    let (who, proof) = match caller(&s, &headers, &tls, "/v1/registry/search", true) {
        Ok(c) => c,
        Err(p) => return Err(drained(req, accord_web::MAX_BODY, p).await),
    };
    let body =
        <JsonBody<SearchRequest> as axum::extract::FromRequest<()>>::from_request(req, &()).await?;
    spend(&s, proof).await?;
    let out = s
        .registry
        .search(&who, &body.0)
        .await
        .map_err(|e| problem(&e))?;
    Ok(Json(out).into_response())
}

async fn card(
    s: RegistryState,
    id: String,
    headers: HeaderMap,
    tls: Tls,
    path: String,
    detail: crate::card::Detail,
) -> Result<Response, Problem> {
    let (who, proof) = caller(&s, &headers, &tls, &path, true)?;
    spend(&s, proof).await?;
    let (card, status, seq) = s
        .registry
        .card(&who, &id, detail)
        .await
        .map_err(|e| problem(&e))?;
    let mut r = Json(card).into_response();
    let h = r.headers_mut();
    // what the card says of the record, also as headers (the card's extension signs it)
    if let Ok(v) = axum::http::HeaderValue::from_str(&status) {
        h.insert("accord-record-status", v);
    }
    h.insert("accord-record-seq", axum::http::HeaderValue::from(seq));
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

async fn public_card(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    tls: Tls,
) -> Result<Response, Problem> {
    let path = format!("/v1/registry/agents/{id}/card");
    card(s, id, headers, tls, path, crate::card::Detail::Public).await
}

async fn extended_card(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    tls: Tls,
) -> Result<Response, Problem> {
    let path = format!("/v1/registry/agents/{id}/extendedAgentCard");
    card(s, id, headers, tls, path, crate::card::Detail::Extended).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn suspend(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Reason>,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let seq = s
        .registry
        .authority
        .suspend(
            &agent,
            body.0.reason,
            Actor::operator("admin-token"),
            trace(&headers),
        )
        .await
        .map_err(|e| registration_problem(&e))?;
    Ok(
        Json(serde_json::json!({"agent_id": agent, "status": "suspended", "seq": seq}))
            .into_response(),
    )
}

async fn decommission(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<Reason>,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let out = s
        .registry
        .authority
        .lifecycle(
            &agent,
            LifecycleRequest::Decommissioned {
                reason: body.0.reason,
            },
            Actor::operator("admin-token"),
            trace(&headers),
        )
        .await
        .map_err(|e| registration_problem(&e))?;
    Ok(Json(out).into_response())
}
