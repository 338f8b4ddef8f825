//! The SPIFFE Workload API (`SPIFFE_Workload_API.md`, `SPIFFE_Workload_Endpoint.md`) on a Unix
//! socket, so that a workload that knows only SPIFFE gets the agent's identity unmodified: the
//! gRPC service `SpiffeWorkloadAPI` with its X.509-SVID profile (`FetchX509SVID`,
//! `FetchX509Bundles`) and JWT-SVID profile (`FetchJWTSVID`, `FetchJWTBundles`,
//! `ValidateJWTSVID`).
//!
//! - Every call must carry the `workload.spiffe.io: true` metadata, or it is refused
//!   (`InvalidArgument`), as the endpoint specification requires (a browser or a confused
//!   proxy cannot call it by accident).
//! - A connection is accepted only from the user ids allowed (the peer's credentials,
//!   `SO_PEERCRED`), by default the sidecar's own; the socket file is private to its owner
//!   unless other users are allowed.
//! - The streams push the complete current state again whenever it changes (a renewal); once
//!   the credential is revoked or expired every stream ends with `PermissionDenied` and every
//!   new call gets it, so clients stop using the SVID (§5.2.1).
//! - Bounded: requests of at most 64 KiB, 32 streams per connection, 64 connections.

pub mod authority;
pub mod proto;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use accord_authority::jws::{self, VerifyingKey};
use futures::Stream;
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;

use proto::*;

/// The metadata every Workload API call carries.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";
/// Largest request message, bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Concurrent connections served.
pub const MAX_CONNECTIONS: usize = 64;
/// Concurrent calls (streams) on one connection.
pub const MAX_STREAMS: u32 = 32;
/// The gRPC service name (the proto has no package).
pub const SERVICE: &str = "SpiffeWorkloadAPI";

/// JWT-SVID verification keys by `kid`.
pub type JwtKeys = Vec<(String, VerifyingKey)>;

/// The identity the API serves.
#[derive(Clone)]
pub struct Identity {
    pub spiffe_id: String,
    /// The trust domain's SPIFFE ID (`spiffe://example.org`): the key of its bundles.
    pub trust_domain_id: String,
    /// The leaf first, then any intermediates: concatenated DER.
    pub chain_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
    /// The trust domain's CA certificates, concatenated DER.
    pub bundle_der: Vec<u8>,
    /// The trust domain's JWT bundle (a JWK Set of the JWT-SVID keys, `use: jwt-svid`).
    pub jwt_bundle: Vec<u8>,
    /// The same keys, by `kid`, to validate JWT-SVIDs.
    pub jwt_keys: JwtKeys,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id)
            .finish_non_exhaustive()
    }
}

/// What the API serves at a moment.
#[derive(Debug, Clone)]
pub enum Served {
    /// Nothing yet (before the first credential): calls wait for it (streams) or are
    /// `Unavailable` (unary calls).
    Pending,
    Current(Arc<Identity>),
    /// Revoked or expired: `PermissionDenied`, with the reason.
    Withdrawn(String),
}

/// Where JWT-SVIDs come from (the ACA, through the sidecar's cache).
pub trait JwtSvidSource: Send + Sync + 'static {
    /// A JWT-SVID of the current identity for `audience` (checked, non-empty).
    fn fetch(
        &self,
        audience: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<String, Status>> + Send + '_>>;
}

/// The Workload API over one [`Served`] channel.
#[derive(Clone)]
pub struct WorkloadApi {
    served: watch::Receiver<Served>,
    jwt: Arc<dyn JwtSvidSource>,
}

impl std::fmt::Debug for WorkloadApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadApi").finish_non_exhaustive()
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn codec<Req, Resp>() -> tonic::server::Grpc<tonic_prost::ProstCodec<Resp, Req>>
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
        .max_decoding_message_size(MAX_REQUEST)
}

fn withdrawn(why: &str) -> Status {
    Status::permission_denied(format!("no identity to serve: {why}"))
}

impl WorkloadApi {
    pub fn new(served: watch::Receiver<Served>, jwt: Arc<dyn JwtSvidSource>) -> Self {
        Self { served, jwt }
    }

    /// The identity now, for a unary call.
    fn current(&self) -> Result<Arc<Identity>, Status> {
        match &*self.served.borrow() {
            Served::Current(i) => Ok(i.clone()),
            Served::Pending => Err(Status::unavailable("no identity yet")),
            Served::Withdrawn(why) => Err(withdrawn(why)),
        }
    }

    /// A stream of `f(identity)` now and at every change, ending with `PermissionDenied` once
    /// the identity is withdrawn.
    fn stream<T: Send + 'static>(&self, f: fn(&Identity) -> T) -> BoxStream<T> {
        let rx = self.served.clone();
        Box::pin(futures::stream::unfold(
            (rx, true, false),
            move |(mut rx, first, done)| async move {
                if done {
                    return None;
                }
                if !first && rx.changed().await.is_err() {
                    return None;
                }
                loop {
                    let now = rx.borrow_and_update().clone();
                    match now {
                        Served::Current(i) => return Some((Ok(f(&i)), (rx, false, false))),
                        Served::Withdrawn(why) => {
                            return Some((Err(withdrawn(&why)), (rx, false, true)));
                        }
                        Served::Pending => {
                            if rx.changed().await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            },
        ))
    }

    /// Answers one HTTP/2 request.
    pub async fn call(&self, req: Request<Incoming>) -> Response<Body> {
        if req
            .headers()
            .get(SECURITY_HEADER)
            .and_then(|v| v.to_str().ok())
            != Some("true")
        {
            return Status::invalid_argument("security header missing from request").into_http();
        }
        let path = req.uri().path().to_owned();
        let Some(method) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(SERVICE))
            .and_then(|p| p.strip_prefix('/'))
        else {
            return Status::unimplemented(format!("no service at {path}")).into_http();
        };
        match method {
            "FetchX509SVID" => {
                self.streaming::<X509SvidRequest, _>(req, x509_svid_response)
                    .await
            }
            "FetchX509Bundles" => {
                self.streaming::<X509BundlesRequest, _>(req, x509_bundles_response)
                    .await
            }
            "FetchJWTBundles" => {
                self.streaming::<JwtBundlesRequest, _>(req, jwt_bundles_response)
                    .await
            }
            "FetchJWTSVID" => {
                let api = self.clone();
                let svc = tower::service_fn(move |r: tonic::Request<JwtSvidRequest>| {
                    let api = api.clone();
                    async move { api.fetch_jwt_svid(r.into_inner()).await }
                });
                codec::<JwtSvidRequest, JwtSvidResponse>()
                    .unary(svc, req)
                    .await
            }
            "ValidateJWTSVID" => {
                let api = self.clone();
                let svc = tower::service_fn(move |r: tonic::Request<ValidateJwtSvidRequest>| {
                    let out = api.validate_jwt_svid(&r.into_inner());
                    async move { out.map(tonic::Response::new) }
                });
                codec::<ValidateJwtSvidRequest, ValidateJwtSvidResponse>()
                    .unary(svc, req)
                    .await
            }
            other => Status::unimplemented(format!("no method {other}")).into_http(),
        }
    }

    /// A server-streaming call whose messages are `f` of the identity ([`WorkloadApi::stream`]).
    async fn streaming<Req, Resp>(
        &self,
        req: Request<Incoming>,
        f: fn(&Identity) -> Resp,
    ) -> Response<Body>
    where
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        let api = self.clone();
        let svc = tower::service_fn(move |_: tonic::Request<Req>| {
            let s = api.stream(f);
            async move { Ok::<_, Status>(tonic::Response::new(s)) }
        });
        codec::<Req, Resp>().server_streaming(svc, req).await
    }

    async fn fetch_jwt_svid(
        &self,
        r: JwtSvidRequest,
    ) -> Result<tonic::Response<JwtSvidResponse>, Status> {
        let id = self.current()?;
        if r.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if !r.spiffe_id.is_empty() && r.spiffe_id != id.spiffe_id {
            return Err(Status::permission_denied(format!(
                "no identity {} for this workload",
                r.spiffe_id
            )));
        }
        let svid = self.jwt.fetch(r.audience).await?;
        Ok(tonic::Response::new(JwtSvidResponse {
            svids: vec![JwtSvid {
                spiffe_id: id.spiffe_id.clone(),
                svid,
                hint: String::new(),
            }],
        }))
    }

    fn validate_jwt_svid(
        &self,
        r: &ValidateJwtSvidRequest,
    ) -> Result<ValidateJwtSvidResponse, Status> {
        let id = self.current()?;
        if r.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if r.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (spiffe_id, claims) = validate_jwt_svid(&id.jwt_keys, &r.svid, &r.audience, now)
            .map_err(Status::invalid_argument)?;
        Ok(ValidateJwtSvidResponse {
            spiffe_id,
            claims: Some(struct_of(&claims)),
        })
    }
}

/// Validates a JWT-SVID (the JWT-SVID profile): its `kid` names a key of the bundle, `alg` is
/// that key's and one the profile allows (ES256, RS256), `typ` absent or `JWT`, only `alg`,
/// `kid` and `typ` in the header, `exp` required and not passed, `sub` a SPIFFE ID, `aud`
/// (a string or an array) containing `audience`. Returns the SPIFFE ID and the claims.
pub fn validate_jwt_svid(
    keys: &JwtKeys,
    token: &str,
    audience: &str,
    now: i64,
) -> Result<(String, serde_json::Map<String, Value>), String> {
    let kid = jws::peek_kid(token)
        .map_err(|e| format!("malformed token: {e}"))?
        .ok_or("the token names no key (kid)")?;
    let key = keys
        .iter()
        .find(|(k, _)| *k == kid)
        .map(|(_, key)| key)
        .ok_or_else(|| format!("no key {kid} in the trust domain's JWT bundle"))?;
    if !matches!(key.alg(), "ES256" | "RS256") {
        return Err(format!(
            "algorithm {} is not allowed for JWT-SVIDs",
            key.alg()
        ));
    }
    let v = jws::verify_jwt(token, key, now).map_err(|e| e.to_string())?;
    let sub = v
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("spiffe://"))
        .ok_or("the token's sub is not a SPIFFE ID")?
        .to_owned();
    let aud_ok = match v.claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience)),
        _ => return Err("the token has no audience".into()),
    };
    if !aud_ok {
        return Err(format!("the token is not for audience {audience}"));
    }
    Ok((sub, v.claims))
}

fn x509_svid_response(i: &Identity) -> X509SvidResponse {
    X509SvidResponse {
        svids: vec![X509Svid {
            spiffe_id: i.spiffe_id.clone(),
            x509_svid: i.chain_der.clone(),
            x509_svid_key: i.key_pkcs8.clone(),
            bundle: i.bundle_der.clone(),
            hint: String::new(),
        }],
        crl: Vec::new(),
        federated_bundles: HashMap::new(),
    }
}

fn x509_bundles_response(i: &Identity) -> X509BundlesResponse {
    X509BundlesResponse {
        crl: Vec::new(),
        bundles: HashMap::from([(i.trust_domain_id.clone(), i.bundle_der.clone())]),
    }
}

fn jwt_bundles_response(i: &Identity) -> JwtBundlesResponse {
    JwtBundlesResponse {
        bundles: HashMap::from([(i.trust_domain_id.clone(), i.jwt_bundle.clone())]),
    }
}

/// Binds the socket at `path`: a stale socket file is replaced (anything else there is an
/// error), and the file is made private to its owner when only its owner may connect.
pub fn bind(path: &Path, others_allowed: bool) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    let mode = if others_allowed { 0o666 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(l)
}

/// Serves `api` on `listener` until `shutdown` resolves: connections from the user ids in
/// `allowed_uids` only, HTTP/2 (gRPC), bounded as the module says.
pub async fn serve(
    listener: UnixListener,
    api: WorkloadApi,
    allowed_uids: Vec<u32>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "workload API: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if !uid.is_some_and(|u| allowed_uids.contains(&u)) {
            tracing::warn!(
                ?uid,
                "workload API: connection from a user not allowed, closed"
            );
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("workload API: too many connections, one refused");
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.call(req).await) }
            });
            // the server reads through the relay that makes `:authority` one (authority.rs)
            let (relay_side, server_side) = tokio::io::duplex(64 * 1024);
            let conn =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .max_concurrent_streams(MAX_STREAMS)
                    .max_header_list_size(authority::MAX_HEADER_LIST as u32)
                    .serve_connection(hyper_util::rt::TokioIo::new(server_side), svc);
            let relay = authority::relay(stream, relay_side);
            let (c, r) = tokio::join!(conn, relay);
            if let Err(e) = c {
                tracing::debug!(error = %e, "workload API: connection ended");
            }
            if let Err(e) = r {
                tracing::debug!(error = %e, "workload API: relay ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct NoJwt;
    impl JwtSvidSource for NoJwt {
        fn fetch(
            &self,
            _: Vec<String>,
        ) -> Pin<Box<dyn Future<Output = Result<String, Status>> + Send + '_>> {
            Box::pin(async { Err(Status::unavailable("no ACA in this test")) })
        }
    }

    fn uid() -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid()
    }

    /// Serves on a fresh socket for the users `allowed`; its path.
    fn serving(d: &tempfile::TempDir, allowed: Vec<u32>) -> std::path::PathBuf {
        let path = d.path().join("api.sock");
        let l = bind(&path, false).unwrap();
        let (_tx, rx) = watch::channel(Served::Pending);
        let api = WorkloadApi::new(rx, Arc::new(NoJwt));
        tokio::spawn(async move {
            let _tx = _tx;
            serve(l, api, allowed, std::future::pending()).await;
        });
        path
    }

    /// A connection from a user that is not allowed is closed before a byte is read.
    #[tokio::test]
    async fn a_connection_from_another_user_is_closed() {
        let d = tempfile::tempdir().unwrap();
        let path = serving(&d, vec![uid().wrapping_add(1)]);
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the server answered a user it does not allow");
        // its own user is answered (the server's SETTINGS frame)
        let d2 = tempfile::tempdir().unwrap();
        let path = serving(&d2, vec![uid()]);
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n >= 9 && buf[3] == 0x4,
            "no SETTINGS frame: {:?}",
            &buf[..n]
        );
    }

    #[tokio::test]
    async fn the_socket_is_its_owners_and_nothing_else_is_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("api.sock");
        drop(bind(&path, false).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // a stale socket is replaced
        drop(bind(&path, true).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        // a file that is not a socket is refused and left alone
        let file = d.path().join("file");
        std::fs::write(&file, b"keep").unwrap();
        assert!(bind(&file, false).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[test]
    fn a_jwt_svid_is_checked_for_its_key_audience_and_subject() {
        use accord_authority::signer::SignerExt;
        let (signer, _) = accord_authority::signer::SoftwareKey::generate_p256().unwrap();
        let (jwk, kid) = signer.jwk();
        let keys: JwtKeys = vec![(kid.to_string(), VerifyingKey::from_jwk(&jwk).unwrap())];
        let now = 1_800_000_000;
        let sign = |claims: serde_json::Value| jws::sign(&signer, "JWT", &claims).unwrap();
        let good = sign(serde_json::json!({"sub": "spiffe://d/a", "aud": ["x"], "exp": now + 60}));
        let (sub, _) = validate_jwt_svid(&keys, &good, "x", now).unwrap();
        assert_eq!(sub, "spiffe://d/a");
        assert!(validate_jwt_svid(&keys, &good, "y", now).is_err());
        assert!(validate_jwt_svid(&keys, &good, "x", now + 3600).is_err());
        let one = sign(serde_json::json!({"sub": "spiffe://d/a", "aud": "x", "exp": now + 60}));
        assert!(validate_jwt_svid(&keys, &one, "x", now).is_ok());
        let no_aud = sign(serde_json::json!({"sub": "spiffe://d/a", "exp": now + 60}));
        assert!(validate_jwt_svid(&keys, &no_aud, "x", now).is_err());
        let not_spiffe = sign(serde_json::json!({"sub": "a", "aud": "x", "exp": now + 60}));
        assert!(validate_jwt_svid(&keys, &not_spiffe, "x", now).is_err());
        let wit = jws::sign(
            &signer,
            jws::TYP_WIT,
            &serde_json::json!({"sub": "spiffe://d/a", "aud": "x", "exp": now + 60}),
        )
        .unwrap();
        assert!(
            validate_jwt_svid(&keys, &wit, "x", now).is_err(),
            "a WIT is no JWT-SVID"
        );
        assert!(validate_jwt_svid(&Vec::new(), &good, "x", now).is_err());
    }
}
