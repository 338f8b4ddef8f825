//! The HTTP endpoint of a domain: health, readiness, metrics, projection status, state digests
//! and rebuilds. Every error is an RFC 9457 problem document; nothing internal leaks.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::runtime::Runtime;

/// Largest request body any endpoint reads.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest a query may wait for "at least sequence N".
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub use accord_web::Problem;

type Rt = State<Arc<Runtime>>;

pub fn router(rt: Arc<Runtime>) -> Router {
    let aca = rt.authority.clone().map(|authority| {
        let admin_token = rt
            .config
            .http
            .admin_token
            .as_ref()
            .and_then(|r| r.read().ok())
            .map(|b| String::from_utf8_lossy(&b).trim().as_bytes().to_vec())
            // without a configured admin token nothing matches it
            .unwrap_or_default();
        let limit = rt
            .config
            .authority
            .as_ref()
            .map_or(600, |a| a.rate_limit_per_minute);
        accord_authority::http::router(accord_authority::http::ApiState {
            authority,
            admin_token: Arc::new(admin_token),
            limit: accord_web::RateLimit::per_minute(limit),
        })
    });
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
        .route("/v1/projections/{name}/digest", get(digest))
        .route("/v1/projections/{name}/tables/{table}", get(table))
        .route("/v1/projections/{name}/rebuild", post(rebuild))
        .route("/v1/policies", get(policies))
        .route(
            "/v1/policies/{bundle}",
            // a bundle may be up to MAX_BUNDLE_BYTES of JSON-escaped files, plus its framing
            post(publish_policy).layer(DefaultBodyLimit::max(
                accord_policy::bundle::MAX_BUNDLE_BYTES + 64 * 1024,
            )),
        )
        .route("/v1/decide/{policy}", post(decide))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MinSeq {
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
async fn digest(
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
struct Page {
    /// Rows with keys after this one.
    after: Option<String>,
    /// At most this many rows (default and maximum 1,000).
    limit: Option<usize>,
    min_seq: Option<u64>,
    wait_ms: Option<u64>,
}

/// Rows of a table of the active generation, by key, a page at a time.
async fn table(
    State(rt): Rt,
    Path((name, table)): Path<(String, String)>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = query(&rt, q)?;
    let h = find(&rt, &name)?;
    reach(h, q.min_seq, q.wait_ms).await?;
    let applied = h.progress().applied;
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    let rows = h
        .store()
        .scan(&name, &table)
        .await
        .map_err(|e| unavailable(&e))?;
    let page: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|(k, _)| q.after.as_ref().is_none_or(|a| k > a))
        .take(limit)
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    Ok(Json(
        json!({"projection": name, "table": table, "applied": applied, "rows": page}),
    ))
}

/// Checks the admin bearer token (constant-time).
fn require_admin(rt: &Runtime, headers: &HeaderMap) -> Result<(), Problem> {
    let expected = rt
        .config
        .http
        .admin_token
        .as_ref()
        .and_then(|r| r.read().ok())
        .map(|b: Vec<u8>| String::from_utf8_lossy(&b).trim().as_bytes().to_vec());
    let authorized = match (accord_web::bearer(headers), &expected) {
        (Some(t), Some(e)) => !e.is_empty() && accord_web::secret_eq(t.as_bytes(), e),
        _ => false,
    };
    if authorized {
        return Ok(());
    }
    rt.metrics.reject("http", "unauthorized");
    Err(Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Admin token required",
        "send Authorization: Bearer <the domain's admin token>",
    ))
}

async fn rebuild(
    State(rt): Rt,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_admin(&rt, &headers)?;
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
    headers: HeaderMap,
    body: Result<Json<PublishRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    require_admin(&rt, &headers)?;
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
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    require_admin(&rt, &headers)?;
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
