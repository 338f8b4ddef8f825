//! The HTTP endpoint of a domain: health, readiness, metrics, projection status, state digests
//! and rebuilds. Every error is an RFC 9457 problem document; nothing internal leaks.
//!
//! Read models (`/v1/projections/{name}/tables/{table}`, `/digest`) need the admin token or
//! the read token; policy publication, decisions and rebuilds need the admin token. Both
//! groups are rate-limited per client (`http.rate_limit_per_minute`), and the token is
//! checked by a middleware before any handler reads the body. Token files are read on every
//! request (`accord_web::TokenFile`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::{Config, SecretRef};
use crate::runtime::Runtime;

/// Largest request body any endpoint reads.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest a query may wait for "at least sequence N".
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most rows of a table one request reads.
pub const MAX_PAGE: usize = 1000;

pub use accord_web::Problem;

mod read;

type Rt = State<Arc<Runtime>>;

/// A token file of the config (a `pkcs11:` reference, which validation refuses, or none:
/// a token that matches nothing).
fn token_file(r: &Option<SecretRef>) -> accord_web::TokenFile {
    accord_web::TokenFile::new(match r {
        Some(SecretRef::File(p)) => Some(p.clone()),
        _ => None,
    })
}

/// The admin token.
pub(crate) fn admin_tokens(config: &Config) -> accord_web::Tokens {
    accord_web::Tokens::new([token_file(&config.http.admin_token)])
}

/// What reads the read models: the admin token or the read token.
fn reader_tokens(config: &Config) -> accord_web::Tokens {
    accord_web::Tokens::new([
        token_file(&config.http.admin_token),
        token_file(&config.http.read_token),
    ])
}

pub fn router(rt: Arc<Runtime>) -> Router {
    let aca = rt.authority.clone().map(|authority| {
        let limit = rt
            .config
            .authority
            .as_ref()
            .map_or(600, |a| a.rate_limit_per_minute);
        accord_authority::http::router(accord_authority::http::ApiState {
            authority,
            admin_token: admin_tokens(&rt.config),
            limit: accord_web::RateLimit::per_minute(limit),
        })
    });
    let limit = accord_web::RateLimit::per_minute(rt.config.http.rate_limit_per_minute);
    // the token is checked before a handler reads anything (its extractors run after the
    // route layers); the rate limit comes first, so that guesses count
    let read = Router::new()
        .route("/v1/projections/{name}/digest", get(read::digest))
        .route("/v1/projections/{name}/tables/{table}", get(read::table))
        .route_layer(from_fn_with_state(
            (rt.clone(), reader_tokens(&rt.config)),
            authorized,
        ))
        .route_layer(from_fn_with_state(limit.clone(), accord_web::rate_limit));
    let admin = Router::new()
        .route("/v1/projections/{name}/rebuild", post(rebuild))
        .route(
            "/v1/policies/{bundle}",
            // a bundle may be up to MAX_BUNDLE_BYTES of JSON-escaped files, plus its framing
            post(publish_policy).layer(DefaultBodyLimit::max(
                accord_policy::bundle::MAX_BUNDLE_BYTES + 64 * 1024,
            )),
        )
        .route("/v1/decide/{policy}", post(decide))
        .route_layer(from_fn_with_state(
            (rt.clone(), admin_tokens(&rt.config)),
            authorized,
        ))
        .route_layer(from_fn_with_state(limit, accord_web::rate_limit));
    let audit = accord_audit::http::router(accord_audit::http::AuditApi {
        log: rt.audit.clone(),
        limit: accord_web::RateLimit::per_minute(rt.config.audit.rate_limit_per_minute),
    });
    let domain = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/domain", get(domain))
        .route("/v1/projections", get(projections))
        .route("/v1/projections/{name}", get(projection))
        .route("/v1/policies", get(policies))
        .merge(read)
        .merge(admin)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(rt);
    let domain = domain.merge(audit);
    let all = match aca {
        Some(aca) => domain.merge(aca),
        None => domain,
    };
    all.fallback(|| async {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource", "")
    })
    .layer(axum::middleware::from_fn(trace_context))
}

/// The W3C trace context a request came with, for the events its handler writes.
#[derive(Debug, Clone, Default)]
pub struct RequestTrace(pub Option<accord_events::TraceParent>);

impl RequestTrace {
    /// What an event written now should carry: the current span when OpenTelemetry traces
    /// it (so projections continue this request's trace), else the caller's traceparent.
    pub fn for_event(&self) -> Option<accord_events::TraceParent> {
        accord_store::trace::current_traceparent().or_else(|| self.0.clone())
    }
}

/// Opens the request's span as a child of the caller's `traceparent` (a malformed one is
/// ignored, as W3C Trace Context requires) and hands the context to the handler.
async fn trace_context(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let tp = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| accord_events::TraceParent::parse(s).ok());
    let span = tracing::info_span!(
        "http.request",
        http.method = %req.method(),
        http.route = %req.uri().path(),
    );
    if let Some(tp) = &tp {
        accord_store::trace::set_remote_parent(&span, tp);
    }
    req.extensions_mut().insert(RequestTrace(tp));
    next.run(req).instrument(span).await
}

async fn readyz(State(rt): Rt) -> Response {
    let mut waiting: Vec<String> = rt
        .projections
        .iter()
        .filter(|p| !p.progress().ready)
        .map(|p| p.name().to_owned())
        .collect();
    if rt.pdp.embedded().is_some_and(|l| l.bundle().is_none()) {
        waiting.push("policy bundle".to_owned());
    }
    if waiting.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready: projections behind the log's tail, or no policy bundle yet",
            waiting.join(", "),
        )
        .into_response()
    }
}

async fn metrics(State(rt): Rt) -> Response {
    let mut r = rt.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn domain(State(rt): Rt) -> Result<Json<serde_json::Value>, Problem> {
    let accord_events::Event::DomainCreated(g) = &rt.genesis.event else {
        return Err(internal("genesis is not DomainCreated"));
    };
    let last = rt
        .store
        .last_sequence()
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(json!({
        "domain_id": g.domain_id,
        "trust_domain": g.trust_domain,
        "event_signing_keys": g.event_signing_keys,
        "audit_keys": g.audit_keys,
        "stream": rt.store.config().stream.name,
        "genesis_seq": rt.genesis.stream_seq,
        "last_seq": last,
    })))
}

fn internal(detail: &str) -> Problem {
    tracing::error!(detail, "internal error");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "see the server log",
    )
}

fn unavailable(e: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "dependency unavailable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "A dependency is unavailable",
        "the event log or the read-model store did not answer",
    )
}

async fn projections(State(rt): Rt) -> Json<serde_json::Value> {
    let last = rt.store.last_sequence().await.unwrap_or(0);
    let mut out = json!({
        "log_last_seq": last,
        // entries of the log that are not authentic events of the domain, skipped by every
        // reader of this process (finding 1), with the readers that met them
        "foreign_messages": rt.store.foreign().entries(),
        "projections": rt.projections.iter().map(|p| {
            let pr = p.progress();
            let lag = last.saturating_sub(pr.applied);
            let mut v = serde_json::to_value(pr).unwrap_or_default();
            if let Some(o) = v.as_object_mut() { o.insert("lag".into(), lag.into()); }
            v
        }).collect::<Vec<_>>(),
    });
    // the CRL is built from the credentials projection: whether it is held stale
    if let Some(c) = rt.authority.as_ref().and_then(|a| a.crl_state())
        && let Some(o) = out.as_object_mut()
    {
        let t = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        o.insert(
            "crl".into(),
            json!({
                "number": c.crl.seq,
                "covers_seq": c.covers_seq,
                "this_update": t(c.crl.this_update),
                "next_update": t(c.crl.next_update),
                "stale": c.stale_since.is_some(),
                "stale_since": c.stale_since.map(t),
            }),
        );
    }
    Json(out)
}

fn find<'a>(
    rt: &'a Runtime,
    name: &str,
) -> Result<&'a accord_store::projection::runner::ProjectionHandle, Problem> {
    rt.projection(name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-projection",
            "No such projection",
            name.to_owned(),
        )
    })
}

async fn projection(
    State(rt): Rt,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let h = find(&rt, &name)?;
    Ok(Json(serde_json::to_value(h.progress()).unwrap_or_default()))
}

/// Middleware: the request goes on only with one of the tokens (read from their files now);
/// a refusal is counted and is a 401 problem.
async fn authorized(
    State((rt, tokens)): State<(Arc<Runtime>, accord_web::Tokens)>,
    req: Request,
    next: Next,
) -> Response {
    match tokens.authorize(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(p) => {
            rt.metrics.reject("http", "unauthorized");
            p.into_response()
        }
    }
}

async fn rebuild(State(rt): Rt, Path(name): Path<String>) -> Result<Response, Problem> {
    let h = find(&rt, &name)?.clone();
    if h.progress().rebuilding.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "rebuild-running",
            "A rebuild is already running",
            name,
        ));
    }
    let ctx = rt.context.clone();
    tokio::spawn(async move {
        if let Err(e) = accord_store::projection::runner::rebuild(&h, &ctx, |_, _| {}).await {
            tracing::error!(projection = h.name(), error = %e, "rebuild failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"projection": name, "status": "rebuilding"})),
    )
        .into_response())
}

async fn policies(State(rt): Rt) -> Json<serde_json::Value> {
    match rt.pdp.embedded() {
        Some(l) => Json(json!({
            "engine": "embedded",
            "bundle": l.bundle(),
            "at_seq": l.at_seq(),
        })),
        None => Json(json!({"engine": "remote"})),
    }
}

/// A bundle to publish: its files, as `accord policy publish` sends them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    files: Vec<accord_events::catalogue::BundleFile>,
}

fn json_body<T: serde::de::DeserializeOwned>(
    rt: &Runtime,
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Problem> {
    body.map(|Json(b)| b).map_err(|e| {
        rt.metrics.reject("http", "bad-body");
        Problem::new(
            e.status(),
            "bad-body",
            "Malformed request body",
            e.body_text(),
        )
    })
}

async fn publish_policy(
    State(rt): Rt,
    Path(bundle): Path<String>,
    body: Result<Json<PublishRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let req = json_body(&rt, body)?;
    let refused = |detail: String| {
        rt.metrics.reject("http", "bundle-refused");
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bundle-refused",
            "The policy bundle was refused",
            detail,
        )
    };
    let b = accord_policy::Bundle::new(&bundle, req.files).map_err(|e| refused(e.to_string()))?;
    let digest = b.digest();
    let actor = accord_events::Actor::operator("admin-token");
    match crate::runtime::publish_bundle(&rt.store, b, &bundle, actor).await {
        Ok(out) => Ok(Json(json!({
            "bundle": bundle,
            "digest": digest,
            "published": !out.events.is_empty(),
            "seq": out.version.stream_seq,
            "version": out.version.count,
        }))),
        Err(accord_store::cqrs::ExecuteError::Rejected(e)) => Err(refused(e.to_string())),
        Err(accord_store::cqrs::ExecuteError::Store(e)) => Err(unavailable(&e)),
    }
}

async fn decide(
    State(rt): Rt,
    Path(policy): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let input = json_body(&rt, body)?;
    match rt.pdp.decide(&policy, &input).await {
        Ok(d) => Ok(Json(serde_json::to_value(&d).unwrap_or_default())),
        Err(accord_policy::PdpError::BadPolicyName(p)) => {
            rt.metrics.reject("http", "bad-policy-name");
            Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-policy-name",
                "No such policy name",
                p,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "policy decision unavailable");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pdp-unavailable",
                "The policy decision point cannot decide now",
                e.to_string(),
            ))
        }
    }
}
