//! What every HTTP edge of Accord shares: errors as RFC 9457 problem documents (nothing
//! internal leaks), JSON bodies bounded in size and nesting and checked for their content
//! type, per-client rate limits (an IPv6 client is its /64), and bearer tokens kept in files
//! (`token`).

mod token;

pub use token::{
    MIN_TOKEN_LEN, TokenFile, Tokens, WeakToken, check_token_strength, require_token, unauthorized,
};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Largest JSON body an endpoint reads, bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Deepest nesting of a JSON body.
pub const MAX_DEPTH: usize = 32;

/// An RFC 9457 problem: `application/problem+json`.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Last segment of the problem type URI (`https://accord.dev/problems/<kind>`).
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extra members (e.g. `check` naming which issuance check failed).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Seconds to send as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "see the server log",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "A dependency is unavailable",
            "the event log or a store did not answer; retry",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://accord.dev/problems/{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(o) = body.as_object_mut() {
            o.extend(self.extra);
        }
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// Depth of a JSON text's nesting, counted without parsing (strings skipped).
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A JSON request body: `Content-Type: application/json`, at most `LIMIT` bytes ([`MAX_BODY`]
/// unless the route says otherwise; the route's `DefaultBodyLimit` must allow as much), nesting
/// at most [`MAX_DEPTH`], decoded into `T` (unknown fields refused where `T` says so). Every
/// refusal is a problem document.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S>
    for JsonBody<T, LIMIT>
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be application/json",
                format!("got Content-Type {ct:?}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "The body is too large",
                format!("at most {LIMIT} bytes ({e})"),
            )
        })?;
        if bytes.len() > LIMIT {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "The body is too large",
                format!("at most {LIMIT} bytes"),
            ));
        }
        if json_depth(&bytes) > MAX_DEPTH {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "body-too-deep",
                "The body nests too deeply",
                format!("at most {MAX_DEPTH} levels"),
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "The body is not the expected JSON document",
                e.to_string(),
            )
        })
    }
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Equality of a presented secret and the expected one that tells nothing through its timing:
/// the SHA-256 digests of both (fixed size, so no length shows) are compared in constant time.
pub fn secret_eq(presented: &[u8], expected: &[u8]) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    let (a, b) = (digest(&SHA256, presented), digest(&SHA256, expected));
    let diff = a
        .as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

/// What a client is, for limits: its IPv4 address (also when it comes IPv4-mapped), or the /64
/// of its IPv6 address (one subscriber commonly holds a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

type KeyedLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// Requests per minute per client ([`client_key`]); over it, 429 with `Retry-After`.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<KeyedLimiter>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl RateLimit {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n))),
        }
    }

    /// Takes one request of `client`'s allowance.
    pub fn check(&self, client: IpAddr) -> Result<(), Problem> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter
            .check_key(&client_key(client))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    "slow down and retry later",
                );
                p.retry_after = Some(wait.as_secs().saturating_add(1));
                p
            })?;
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

/// The client's address, when the server records it (`into_make_service_with_connect_info`).
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Middleware (`from_fn_with_state(limit, rate_limit)`): one request of the client's
/// allowance, or a 429 problem before anything else runs.
pub async fn rate_limit(
    axum::extract::State(limit): axum::extract::State<RateLimit>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(ip) = client_ip(&req)
        && let Err(p) = limit.check(ip)
    {
        tracing::info!(%ip, "rate-limited");
        return p.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nesting_not_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(b"{\"a\":[1,{\"b\":[]}]}"), 4);
        assert_eq!(json_depth(b"{\"a\":\"[[[[{{{{\"}"), 1);
        assert_eq!(json_depth(b"{\"a\":\"\\\"[[[\"}"), 1);
        assert_eq!(json_depth(&[b'['; 100]), 100);
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secret_eq(b"abc", b"abc"));
        assert!(!secret_eq(b"abc", b"abd"));
        assert!(!secret_eq(b"abc", b"abcd"));
        assert!(!secret_eq(b"", b"abc"));
        assert!(secret_eq(b"", b""));
    }

    #[test]
    fn clients_are_keyed_by_their_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(client_key(ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(client_key(ip("::1")), ip("::"));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let limit = RateLimit::per_minute(2);
        // one /64 holds 2^64 addresses: they share one allowance
        assert!(limit.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(limit.check(ip("2001:db8:1:2:ffff::7")).is_ok());
        let third = limit.check(ip("2001:db8:1:2:dead:beef:0:1"));
        assert_eq!(
            third.map_err(|p| p.status),
            Err(StatusCode::TOO_MANY_REQUESTS)
        );
        // the next /64 has its own
        assert!(limit.check(ip("2001:db8:1:3::1")).is_ok());
        // IPv4 addresses stay apart, also when they come IPv4-mapped
        assert!(limit.check(ip("192.0.2.1")).is_ok());
        assert!(limit.check(ip("::ffff:192.0.2.1")).is_ok());
        assert!(limit.check(ip("192.0.2.1")).is_err());
        assert!(limit.check(ip("192.0.2.2")).is_ok());
    }
}
