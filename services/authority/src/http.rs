//! The enrollment API over HTTPS. Every error is an RFC 9457 problem document; bodies are
//! JSON of bounded size and nesting; clients are rate-limited per address.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/agents` | admin token | provision an agent: its id and one-time enrollment token |
//! | `POST /v1/agents/{id}/credentials` | enrollment token, or WIT + WPT | a credential for the CSR's key |
//! | `POST /v1/agents/{id}/attestation-nonce` | enrollment token (until enrolled), or WIT + WPT | a single-use `eat_nonce` (at most 4 outstanding per agent) |
//! | `POST /v1/agents/{id}/owner-nonce` | the same | a single-use `nonce` for the owner's ID token (the same bound) |
//! | `POST /v1/agents/{id}/role-grants` | admin token | a role grant (owner binding) for the agent |
//! | `POST /v1/agents/{id}/lifecycle` | admin token | compromise, decommissioning, owner unbound: every live credential revoked |
//! | `GET /v1/trust`, `POST /v1/trust` | admin token | the trust material in force; one change of it |
//! | `POST /v1/revocations` | admin token | revoke an agent's credentials or one credential |
//! | `GET /v1/ca` | anyone | the CA chain, PEM |
//! | `GET /v1/jwks`, `/.well-known/jwks.json` | anyone | the token-signing key |
//! | `GET /v1/crl` | anyone | the CRL, DER (`?min_seq=N&wait_ms=W`; 503 `crl-stale` when held, see `crl.rs`) |
//! | `GET /v1/revocations/stream` | anyone | revocations as server-sent events (`feed.rs`) |
//!
//! The admin token is read from its file on every request, and checked by a middleware before
//! a handler reads the body; the routes above `GET /v1/ca` are rate-limited per client first.

use std::sync::Arc;
use std::time::Duration;

use accord_events::{Actor, AgentId, TraceParent};
use accord_web::{JsonBody, Problem, RateLimit, Tokens, bearer};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::{
    CredentialRequest, LifecycleRequest, MAX_CREDENTIAL_REQUEST, MAX_TRUST_REQUEST,
    ProvisionRequest, RevocationRequest, RoleGrantRequest, TrustRequest,
};
use crate::evidence::nonce::Purpose;
use crate::issue::{Authority, Presented};

mod problem;
pub use problem::problem;

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    pub authority: Arc<Authority>,
    /// The admin bearer token (its file, read on every request).
    pub admin_token: Tokens,
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
    // the admin token, checked before any extractor reads the body
    let admin = from_fn_with_state(state.admin_token.clone(), accord_web::require_token);
    let limited = Router::new()
        .route("/v1/agents", post(provision).route_layer(admin.clone()))
        .route(
            "/v1/agents/{id}/credentials",
            post(credentials).layer(axum::extract::DefaultBodyLimit::max(
                crate::api::MAX_CREDENTIAL_REQUEST,
            )),
        )
        .route("/v1/agents/{id}/attestation-nonce", post(nonce))
        .route("/v1/agents/{id}/owner-nonce", post(owner_nonce))
        .route("/v1/agents/{id}/jwt-svids", post(jwt_svid))
        .route(
            "/v1/agents/{id}/role-grants",
            post(role_grant).route_layer(admin.clone()),
        )
        .route(
            "/v1/agents/{id}/lifecycle",
            post(lifecycle).route_layer(admin.clone()),
        )
        .route(
            "/v1/trust",
            post(trust)
                .get(trust_list)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::api::MAX_TRUST_REQUEST,
                ))
                .route_layer(admin.clone()),
        )
        .route("/v1/revocations", post(revoke).route_layer(admin))
        .layer(from_fn_with_state(
            state.limit.clone(),
            accord_web::rate_limit,
        ));
    let feed = crate::feed::router(crate::feed::FeedState::new(
        state.authority.clone(),
        state.limit.clone(),
    ));
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

/// The trace context events of this request carry: the current span's when OpenTelemetry
/// traces it, else the caller's `traceparent` (a malformed one is ignored).
pub fn trace(headers: &HeaderMap) -> Option<TraceParent> {
    accord_store::trace::current_traceparent().or_else(|| {
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| TraceParent::parse(v).ok())
    })
}

fn created(body: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn provision(
    State(s): St,
    headers: HeaderMap,
    body: JsonBody<ProvisionRequest>,
) -> Result<Response, Problem> {
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
    let presented = match presented(&headers, "Not authorised for a credential") {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let out = s
        .authority
        .issue(&agent, presented, body.0, trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(agent = %out.agent_id, serial = %out.serial, kind = %out.kind, "credential issued");
    Ok(created(out))
}

/// What the caller presents: `Authorization: Bearer <enrollment token>`, or the
/// `Workload-Identity-Token` and `Workload-Proof-Token` headers (a WIT never goes alone: it is
/// public). Anything else is a 401 problem.
// the refusal is the response itself (with its WWW-Authenticate header), built once per
// refused request: its size does not matter
#[allow(clippy::result_large_err)]
fn presented(headers: &HeaderMap, title: &'static str) -> Result<Presented, Response> {
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match (
        header_str("workload-identity-token"),
        header_str("workload-proof-token"),
        bearer(headers),
    ) {
        (Some(wit), Some(wpt), None) => Ok(Presented::Workload { wit, wpt }),
        (None, None, Some(t)) => Ok(Presented::Enrollment(t.to_owned())),
        (Some(_), None, _) => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            title,
            "a workload identity token needs a Workload-Proof-Token",
        )
        .into_response()),
        _ => {
            let mut p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                title,
                "send Authorization: Bearer <enrollment token>, or Workload-Identity-Token and Workload-Proof-Token",
            )
            .into_response();
            p.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(p)
        }
    }
}

async fn revoke(
    State(s): St,
    headers: HeaderMap,
    body: JsonBody<RevocationRequest>,
) -> Result<Response, Problem> {
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
        // held while the credentials projection is stuck: it will not get there
        Some(c) if c.covers_seq < q.min_seq => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "crl-stale",
            "The CRL is stale",
            format!(
                "the revocation read model is stuck at sequence {}; the CRL is not signed again until it recovers",
                c.covers_seq
            ),
        )
        .with("covers_seq", c.covers_seq)),
        Some(c) => {
            let mut r = (
                [(header::CONTENT_TYPE, "application/pkix-crl")],
                c.crl.der.clone(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&c.covers_seq.to_string()) {
                r.headers_mut().insert("accord-applied-seq", v);
            }
            // a relying party (or a monitor) can tell that no fresher CRL is coming
            if let Some(since) = c.stale_since
                && let Ok(t) = since.format(&time::format_description::well_known::Rfc3339)
                && let Ok(v) = HeaderValue::from_str(&t)
            {
                r.headers_mut().insert("accord-crl-stale", v);
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
    nonce_of(s, id, headers, Purpose::Attestation).await
}

async fn owner_nonce(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    nonce_of(s, id, headers, Purpose::Owner).await
}

async fn nonce_of(
    s: ApiState,
    id: String,
    headers: HeaderMap,
    purpose: Purpose,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let presented = match presented(&headers, "Not authorised for a nonce") {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    match s.authority.nonce(&agent, &presented, purpose).await {
        Ok(out) => Ok(created(out)),
        Err(e) => Ok(problem(&e).into_response()),
    }
}

/// A JWT-SVID for the agent whose WIT and proof the headers carry (`svid.rs`).
async fn jwt_svid(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<crate::svid::JwtSvidRequest>,
) -> Result<Response, Problem> {
    let agent = agent_id(&id)?;
    let (wit, wpt) = match presented(&headers, "Not authorised for a JWT-SVID") {
        Ok(Presented::Workload { wit, wpt }) => (wit, wpt),
        Ok(Presented::Enrollment(_)) => {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authorised for a JWT-SVID",
                "a JWT-SVID needs a workload identity token and a proof, not an enrollment token",
            ));
        }
        Err(r) => return Ok(r),
    };
    let out = s
        .authority
        .jwt_svid(&agent, &wit, &wpt, &body.0, trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    Ok(created(out))
}

async fn role_grant(
    State(s): St,
    Path(id): Path<String>,
    body: JsonBody<RoleGrantRequest>,
) -> Result<Response, Problem> {
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
    let cmd = Authority::trust_request(body.0).map_err(|e| problem(&e))?;
    let out = s
        .authority
        .trust_command(cmd, Actor::operator("admin-token"), trace(&headers))
        .await
        .map_err(|e| problem(&e))?;
    tracing::info!(material = %out.material_id, event = %out.event, "trust material changed");
    Ok(created(out))
}

async fn trust_list(State(s): St) -> Result<Response, Problem> {
    let v = s
        .authority
        .trust_material()
        .await
        .map_err(|e| problem(&e))?;
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}
