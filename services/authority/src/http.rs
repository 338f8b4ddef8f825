//! The enrollment API over HTTPS. Every error is an RFC 9457 problem document; bodies are
//! JSON of bounded size and nesting; clients are rate-limited per address.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/agents` | admin token | provision an agent: its id and one-time enrollment token |
//! | `POST /v1/agents/{id}/credentials` | enrollment token, or WIT + WPT | a credential for the CSR's key |
//! | `POST /v1/agents/{id}/attestation-nonce` | enrollment token or WIT (bearer) | a single-use `eat_nonce` |
//! | `POST /v1/agents/{id}/role-grants` | admin token | a role grant (owner binding) for the agent |
//! | `POST /v1/agents/{id}/lifecycle` | admin token | compromise, decommissioning, owner unbound: every live credential revoked |
//! | `GET /v1/trust`, `POST /v1/trust` | admin token | the trust material in force; one change of it |
//! | `POST /v1/revocations` | admin token | revoke an agent's credentials or one credential |
//! | `GET /v1/ca` | anyone | the CA chain, PEM |
//! | `GET /v1/jwks`, `/.well-known/jwks.json` | anyone | the token-signing key |
//! | `GET /v1/crl` | anyone | the CRL, DER (`?min_seq=N&wait_ms=W`) |
//! | `GET /v1/revocations/stream` | anyone | revocations as server-sent events (`feed.rs`) |

use std::sync::Arc;
use std::time::Duration;

use accord_events::{Actor, AgentId, TraceParent};
use accord_web::{JsonBody, Problem, RateLimit, bearer, client_ip, secret_eq};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::agent::AgentError;
use crate::api::{
    CredentialRequest, LifecycleRequest, MAX_CREDENTIAL_REQUEST, MAX_TRUST_REQUEST,
    ProvisionRequest, RevocationRequest, RoleGrantRequest, TrustRequest,
};
use crate::issue::{Authority, IssueError, Presented};

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    pub authority: Arc<Authority>,
    /// The admin bearer token (compared in constant time).
    pub admin_token: Arc<Vec<u8>>,
    pub limit: RateLimit,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

type St = State<ApiState>;

/// The ACA's routes (to merge into the domain's HTTPS endpoint).
pub fn router(state: ApiState) -> Router {
    let limited = Router::new()
        .route("/v1/agents", post(provision))
        .route(
            "/v1/agents/{id}/credentials",
            post(credentials).layer(axum::extract::DefaultBodyLimit::max(
                crate::api::MAX_CREDENTIAL_REQUEST,
            )),
        )
        .route("/v1/agents/{id}/attestation-nonce", post(nonce))
        .route("/v1/agents/{id}/role-grants", post(role_grant))
        .route("/v1/agents/{id}/lifecycle", post(lifecycle))
        .route(
            "/v1/trust",
            post(trust)
                .get(trust_list)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::api::MAX_TRUST_REQUEST,
                )),
        )
        .route("/v1/revocations", post(revoke))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ));
    let feed = crate::feed::router(crate::feed::FeedState::new(state.authority.clone()));
    Router::new()
        .merge(limited)
        .route("/v1/ca", get(ca))
        .route("/v1/jwks", get(jwks))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/crl", get(crl))
        .layer(axum::extract::DefaultBodyLimit::max(accord_web::MAX_BODY))
        .with_state(state)
        .merge(feed)
}

async fn rate_limit(State(s): St, req: Request, next: Next) -> Response {
    if let Some(ip) = client_ip(&req)
        && let Err(p) = s.limit.check(ip)
    {
        tracing::info!(%ip, "rate-limited");
        return p.into_response();
    }
    next.run(req).await
}

/// The trace context events of this request carry: the current span's when OpenTelemetry
/// traces it, else the caller's `traceparent` (a malformed one is ignored).
fn trace(headers: &HeaderMap) -> Option<TraceParent> {
    accord_store::trace::current_traceparent().or_else(|| {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| TraceParent::parse(v).ok())
    })
}

fn require_admin(s: &ApiState, headers: &HeaderMap) -> Result<(), Problem> {
    match bearer(headers) {
        // an empty token (none configured) matches nothing
        Some(t) if !s.admin_token.is_empty() && secret_eq(t.as_bytes(), &s.admin_token) => Ok(()),
        _ => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The admin token is required",
            "send Authorization: Bearer <admin token>",
        )),
    }
}

/// The problem document of an ACA error.
pub fn problem(e: &IssueError) -> Problem {
    let p = |status, kind, title| Problem::new(status, kind, title, e.to_string());
    match e {
        IssueError::BadRequest(_) => p(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is not acceptable",
        ),
        IssueError::Csr(c) => Problem::new(
            StatusCode::BAD_REQUEST,
            c.kind(),
            "The certificate request is refused",
            c.to_string(),
        )
        .with(
            "check",
            if matches!(c, crate::csr::CsrError::BadSignature) {
                "proof_of_possession"
            } else {
                "csr_profile"
            },
        ),
        IssueError::UnknownAgent => p(StatusCode::NOT_FOUND, "unknown-agent", "No such agent"),
        IssueError::UnknownCredential => p(
            StatusCode::NOT_FOUND,
            "unknown-credential",
            "No such credential",
        ),
        IssueError::Unauthorized(_) => p(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authorised for a credential",
        ),
        IssueError::Agent(AgentError::AlreadyEnrolled) => p(
            StatusCode::CONFLICT,
            "already-enrolled",
            "The enrollment token was already used",
        ),
        IssueError::Agent(AgentError::NothingToRevoke) => p(
            StatusCode::CONFLICT,
            "nothing-to-revoke",
            "Nothing to revoke",
        ),
        IssueError::Agent(AgentError::AlreadyRenewed(_)) => p(
            StatusCode::FORBIDDEN,
            "already-renewed",
            "The credential was already renewed",
        ),
        IssueError::Agent(AgentError::RotatedOut(_)) => p(
            StatusCode::FORBIDDEN,
            "rotated-out",
            "The credential was rotated out",
        ),
        IssueError::Agent(
            AgentError::Revoked(_) | AgentError::Expired(_) | AgentError::UnknownCredential(_),
        ) => p(
            StatusCode::FORBIDDEN,
            "credential-not-renewable",
            "The credential cannot be renewed",
        ),
        IssueError::Agent(AgentError::Retired(_)) => p(
            StatusCode::FORBIDDEN,
            "agent-retired",
            "The agent is retired",
        ),
        IssueError::Agent(AgentError::NoOwner) => p(
            StatusCode::CONFLICT,
            "no-owner",
            "The agent has no owner binding",
        ),
        IssueError::Agent(_) => p(
            StatusCode::CONFLICT,
            "conflict",
            "The agent's state does not allow it",
        ),
        IssueError::Denied(reasons) => p(
            StatusCode::FORBIDDEN,
            "issuance-denied",
            "The issuance policy denied the credential",
        )
        .with("reasons", reasons.clone()),
        IssueError::Evidence(ev) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ev.kind,
            "The evidence is refused",
            ev.detail.clone(),
        )
        .with(
            "check",
            serde_json::to_value(ev.check).unwrap_or(serde_json::Value::Null),
        ),
        IssueError::Trust(t) => p(
            StatusCode::CONFLICT,
            "trust-conflict",
            "The trust material does not allow it",
        )
        .with("reason", t.to_string()),
        IssueError::Validation(v) => {
            tracing::error!(error = %v, "a signed certificate failed its re-validation; nothing was recorded");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "output-revalidation-failed",
                "The signed credential failed its check",
                "nothing was recorded; see the server log",
            )
        }
        IssueError::Signing(d) => {
            tracing::error!(error = %d, "signing failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "signer-unavailable",
                "The CA key is unavailable",
                "retry later",
            )
        }
        IssueError::Unavailable(d) => {
            tracing::warn!(error = %d, "dependency unavailable");
            Problem::unavailable()
        }
    }
}

fn created(body: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn provision(
    State(s): St,
    headers: HeaderMap,
    body: JsonBody<ProvisionRequest>,
) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let out = s
        .authority
        .provision(body.0, Actor::operator("admin-token"), trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(agent = %out.agent_id, "agent provisioned");
    Ok(created(out))
}

async fn credentials(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<CredentialRequest, { MAX_CREDENTIAL_REQUEST }>,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let presented = match (
        header_str("workload-identity-token"),
        header_str("workload-proof-token"),
        bearer(&headers),
    ) {
        (Some(wit), Some(wpt), None) => Presented::Renewal { wit, wpt },
        (None, None, Some(t)) => Presented::Enrollment(t.to_owned()),
        (Some(_), None, _) => {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authorised for a credential",
                "a workload identity token needs a Workload-Proof-Token",
            ));
        }
        _ => {
            let mut p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authorised for a credential",
                "send Authorization: Bearer <enrollment token>, or Workload-Identity-Token and Workload-Proof-Token",
            )
            .into_response();
            p.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(p);
        }
    };
    let out = s
        .authority
        .issue(&agent, presented, body.0, trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(agent = %out.agent_id, serial = %out.serial, kind = %out.kind, "credential issued");
    Ok(created(out))
}

async fn revoke(
    State(s): St,
    headers: HeaderMap,
    body: JsonBody<RevocationRequest>,
) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let r = body.0;
    let out = s
        .authority
        .revoke(
            &r.target,
            r.reason,
            Actor::operator("admin-token"),
            trace(&headers),
        )
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(agent = %out.agent_id, serials = out.serials.len(), "credentials revoked");
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

async fn ca(State(s): St) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        s.authority.ca().chain_pem(),
    )
        .into_response()
}

async fn jwks(State(s): St) -> Response {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        s.authority.jwks().to_string(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrlQuery {
    #[serde(default)]
    min_seq: u64,
    #[serde(default)]
    wait_ms: u64,
}

async fn crl(
    State(s): St,
    q: Result<Query<CrlQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Malformed query",
            e.body_text(),
        )
    })?;
    let wait = Duration::from_millis(q.wait_ms.min(30_000));
    match s.authority.crl(q.min_seq, wait).await {
        Some(c) => {
            let mut r = (
                [(header::CONTENT_TYPE, "application/pkix-crl")],
                c.crl.der.clone(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&c.covers_seq.to_string()) {
                r.headers_mut().insert("accord-applied-seq", v);
            }
            Ok(r)
        }
        None => Err(Problem::new(
            StatusCode::CONFLICT,
            "not-yet",
            "The CRL does not reflect that sequence yet",
            format!("the CRL does not cover sequence {} yet; retry", q.min_seq),
        )),
    }
}

fn agent_id(id: &str) -> Result<AgentId, Problem> {
    AgentId::parse(id).map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-agent",
            "No such agent",
            "not an agent id",
        )
    })
}

async fn nonce(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let token = bearer(&headers).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authorised for a nonce",
            "send Authorization: Bearer <enrollment token or workload identity token>",
        )
    })?;
    let out = s
        .authority
        .attestation_nonce(&agent, token)
        .await
        .map_err(|e| problem(&e))?;
    Ok(created(out))
}

async fn role_grant(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<RoleGrantRequest>,
) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let agent = agent_id(&id)?;
    let out = s
        .authority
        .role_grant(&agent, &body.0)
        .map_err(|e| problem(&e))?;
    Ok(created(out))
}

async fn lifecycle(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<LifecycleRequest>,
) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let agent = agent_id(&id)?;
    let out = s
        .authority
        .lifecycle(
            &agent,
            body.0,
            Actor::operator("admin-token"),
            trace(&headers),
        )
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(agent = %out.agent_id, revoked = out.revoked.len(), "agent lifecycle event");
    Ok((StatusCode::OK, axum::Json(out)).into_response())
}

async fn trust(
    State(s): St,
    headers: HeaderMap,
    body: JsonBody<TrustRequest, { MAX_TRUST_REQUEST }>,
) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let cmd = Authority::trust_request(body.0).map_err(|e| problem(&e))?;
    let out = s
        .authority
        .trust_command(cmd, Actor::operator("admin-token"), trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(material = %out.material_id, event = %out.event, "trust material changed");
    Ok(created(out))
}

async fn trust_list(State(s): St, headers: HeaderMap) -> Result<Response, Problem> {
    require_admin(&s, &headers)?;
    let v = s
        .authority
        .trust_material()
        .await
        .map_err(|e| problem(&e))?;
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}
