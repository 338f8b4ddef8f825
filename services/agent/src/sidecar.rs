//! The sidecar (draft §3.4, onboarding in the cloud case; ADR 0015): beside an agent process
//! that knows nothing of Accord, it enrolls (with the evidence folder), registers, renews at a
//! fraction of the lifetime and registers again, follows the revocation feed, and serves the
//! agent's identity over the SPIFFE Workload API ([`crate::workload`]).
//!
//! Its loop, one task: renewal and the feed's revocations are handled one at a time, so a
//! renewal's own `CredentialRevoked` (the superseded credential) is read after the new
//! credential is in the folder, and is about a serial that is no longer current. A revocation
//! of the current credential (or the agent's retirement) withdraws the identity: every open
//! stream ends with `PermissionDenied`, and the sidecar keeps answering so until it is stopped,
//! since nothing it can do makes a revoked agent live again. An expired credential is
//! withdrawn the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_authority::jws::VerifyingKey;
use accord_events::AgentId;
use futures::StreamExt;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::watch;
use tonic::Status;

use crate::evidence::EvidenceSource;
use crate::registry::{Auth, Description, RegistryClient, registration};
use crate::workload::{Identity, JwtKeys, JwtSvidSource, Served, WorkloadApi};
use crate::{AgentDir, AgentError, Client, KeyType};

/// How a sidecar without a credential gets its first one.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub agent_id: AgentId,
    pub token: String,
    pub key_type: KeyType,
    pub capabilities: Option<Vec<String>>,
    pub evidence: EvidenceSource,
}

/// Where and as what the sidecar registers the agent (after enrollment and each renewal).
#[derive(Debug, Clone)]
pub struct Registration {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub description: Description,
}

/// The domain's NATS servers, for the revocation feed.
#[derive(Debug, Clone)]
pub struct Feed {
    pub nats_url: String,
    pub ca_pem: Vec<u8>,
}

/// A sidecar's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: AgentDir,
    pub aca: Client,
    /// Used when `dir` holds no credential yet.
    pub enrollment: Option<Enrollment>,
    pub registration: Option<Registration>,
    pub feed: Option<Feed>,
    pub socket: PathBuf,
    /// User ids allowed to connect to the socket (empty: the sidecar's own).
    pub allowed_uids: Vec<u32>,
    /// When to renew, as a fraction of the lifetime (default two thirds).
    pub renew_at: f64,
}

/// What one step of the sidecar did, for its log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Enrolled { serial: String },
    Registered { serial: String, outcome: String },
    Serving { socket: PathBuf },
    Renewed { serial: String },
    Withdrawn { reason: String },
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // the owner of this process's /proc entry is its effective user
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// The identity in `dir`, with the domain's JWT bundle `jwks` (the ACA's token keys).
pub fn identity_of(dir: &AgentDir, jwks: &serde_json::Value) -> Result<Identity, AgentError> {
    let state = dir.read_state()?;
    let certs = |p: PathBuf| -> Result<Vec<Vec<u8>>, AgentError> {
        let bytes = std::fs::read(&p).map_err(|e| crate::file_err(&p, e))?;
        CertificateDer::pem_slice_iter(&bytes)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::file_err(&p, e))
    };
    let leaf = certs(dir.cert())?;
    let chain = certs(dir.chain())?;
    if leaf.len() != 1 || chain.is_empty() {
        return Err(AgentError::Setup(format!(
            "{}: the certificate is not one certificate with a CA chain",
            dir.root.display()
        )));
    }
    // the leaf, then every CA of the chain but the last (the anchor); the bundle is the chain
    let mut chain_der = leaf[0].clone();
    for c in &chain[..chain.len() - 1] {
        chain_der.extend_from_slice(c);
    }
    let trust_domain = dir.read_domain()?.trust_domain;
    let (jwt_bundle, jwt_keys) = jwt_bundle(jwks)?;
    Ok(Identity {
        spiffe_id: state.spiffe_id,
        trust_domain_id: format!("spiffe://{}", trust_domain.as_str()),
        chain_der,
        key_pkcs8: dir.read_key()?,
        bundle_der: chain.concat(),
        jwt_bundle,
        jwt_keys,
    })
}

/// The JWT bundle of the domain's JWKS: its keys of algorithms the JWT-SVID profile allows,
/// each marked `use: jwt-svid` (SPIFFE bundle format), and the same keys to verify with.
pub fn jwt_bundle(jwks: &serde_json::Value) -> Result<(Vec<u8>, JwtKeys), AgentError> {
    let bad = |m: &str| AgentError::Protocol(format!("the domain's JWKS: {m}"));
    let keys = jwks
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("no keys"))?;
    let mut out = Vec::new();
    let mut verifying = Vec::new();
    for k in keys {
        let Ok(jwk) = serde_json::from_value::<accord_events::common::PublicJwk>(k.clone()) else {
            continue;
        };
        let Ok(key) = VerifyingKey::from_jwk(&jwk) else {
            continue;
        };
        let Some(kid) = jwk.kid.clone() else { continue };
        if !matches!(key.alg(), "ES256" | "RS256") {
            continue;
        }
        let mut k = k.clone();
        if let Some(o) = k.as_object_mut() {
            o.insert("use".into(), "jwt-svid".into());
        }
        out.push(k);
        verifying.push((kid, key));
    }
    let doc =
        serde_json::to_vec(&serde_json::json!({ "keys": out })).map_err(|e| bad(&e.to_string()))?;
    Ok((doc, verifying))
}

/// JWT-SVIDs from the ACA, kept per audience set until half their life has passed (at most
/// [`JWT_CACHE`] sets).
struct AcaJwtSvids {
    aca: Client,
    dir: AgentDir,
    cache: Mutex<BTreeMap<Vec<String>, (String, i64, i64)>>,
}

/// Audience sets whose JWT-SVIDs are kept.
pub const JWT_CACHE: usize = 64;

impl JwtSvidSource for AcaJwtSvids {
    fn fetch(
        &self,
        audience: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Result<String, Status>> + Send + '_>> {
        Box::pin(async move {
            let mut key = audience.clone();
            key.sort();
            key.dedup();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if let Some((t, issued, exp)) =
                self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
                && now < issued + (exp - issued) / 2
            {
                return Ok(t);
            }
            let r = self
                .aca
                .jwt_svid(&self.dir, key.clone())
                .await
                .map_err(|e| match e {
                    AgentError::Refused {
                        status: 400,
                        detail,
                        ..
                    } => Status::invalid_argument(detail),
                    AgentError::Refused {
                        status: 401 | 403,
                        detail,
                        ..
                    } => Status::permission_denied(detail),
                    e => Status::unavailable(e.to_string()),
                })?;
            if let Ok(mut c) = self.cache.lock() {
                c.retain(|_, (_, _, exp)| *exp > now);
                if c.len() >= JWT_CACHE {
                    c.pop_first();
                }
                c.insert(key, (r.token.clone(), now, r.expires_at));
            }
            Ok(r.token)
        })
    }
}

/// Runs the sidecar until `shutdown` resolves; each step is sent to `steps` (when given).
pub async fn run(
    cfg: Config,
    steps: Option<tokio::sync::mpsc::UnboundedSender<Step>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let note = |s: Step| {
        tracing::info!(step = ?s, "sidecar");
        if let Some(tx) = &steps {
            let _ = tx.send(s);
        }
    };
    let dir = cfg.dir.clone();
    // 1. a credential: the folder's, or a first one
    if !dir.state().exists() {
        let e = cfg.enrollment.as_ref().ok_or_else(|| {
            AgentError::Setup(format!(
                "{} holds no credential and no enrollment was given",
                dir.root.display()
            ))
        })?;
        let s = crate::enroll_with_evidence(
            &cfg.aca,
            &dir,
            &e.agent_id,
            &e.token,
            e.key_type,
            e.capabilities.clone(),
            &e.evidence,
        )
        .await?;
        note(Step::Enrolled { serial: s.serial });
    }
    let registry = cfg
        .registration
        .as_ref()
        .map(|r| RegistryClient::new(&r.url, &r.ca_pem, &dir, Auth::Wit).map(|c| (c, r)))
        .transpose()?;
    let register = async |note: &dyn Fn(Step)| -> Result<(), AgentError> {
        if let Some((client, r)) = &registry {
            let state = dir.read_state()?;
            let out = client
                .register(&registration(&state, r.description.clone()))
                .await?;
            note(Step::Registered {
                serial: state.serial,
                outcome: out.outcome.to_string(),
            });
        }
        Ok(())
    };
    register(&note).await?;
    // 2. the Workload API
    let jwks = cfg.aca.jwks().await?;
    let (tx, rx) = watch::channel(Served::Current(Arc::new(identity_of(&dir, &jwks)?)));
    let me = current_uid();
    let mut allowed = cfg.allowed_uids.clone();
    if allowed.is_empty() {
        allowed.push(me);
    }
    let others = allowed.iter().any(|u| *u != me);
    let listener =
        crate::workload::bind(&cfg.socket, others).map_err(|e| crate::file_err(&cfg.socket, e))?;
    let api = WorkloadApi::new(
        rx,
        Arc::new(AcaJwtSvids {
            aca: cfg.aca.clone(),
            dir: dir.clone(),
            cache: Mutex::new(BTreeMap::new()),
        }),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::workload::serve(listener, api, allowed, async {
        let _ = stop_rx.await;
    }));
    note(Step::Serving {
        socket: cfg.socket.clone(),
    });
    // 3. the feed
    let mut feed = match &cfg.feed {
        Some(f) => {
            let domain = dir.read_domain()?;
            let ring = domain.key_ring()?;
            let feed = crate::feed::RevocationFeed::connect_dir(
                &f.nats_url,
                &f.ca_pem,
                &dir,
                &domain.domain_id,
                ring,
            )
            .await
            .map_err(|e| AgentError::Service(format!("the revocation feed: {e}")))?;
            Some(feed.subscribe(0).boxed())
        }
        None => None,
    };
    // 4. renewals and revocations, one at a time
    tokio::pin!(shutdown);
    let mut withdrawn = false;
    let mut failures = 0u32;
    loop {
        let wait = if withdrawn {
            Duration::from_secs(3600)
        } else {
            renew_wait(&dir, cfg.renew_at, failures)?
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(wait) => {
                if expired(&dir)? {
                    tx.send_replace(Served::Withdrawn("the credential expired".into()));
                    note(Step::Withdrawn { reason: "expired".into() });
                    withdrawn = true;
                    feed = None;
                    continue;
                }
                match crate::renew_in(&cfg.aca, &dir, None).await {
                    Ok(s) => {
                        failures = 0;
                        note(Step::Renewed { serial: s.serial.clone() });
                        let jwks = cfg.aca.jwks().await.unwrap_or(jwks.clone());
                        tx.send_replace(Served::Current(Arc::new(identity_of(&dir, &jwks)?)));
                        if let Err(e) = register(&note).await {
                            tracing::warn!(error = %e, "sidecar: registering the renewed credential failed");
                        }
                    }
                    Err(AgentError::Refused { status: 403, kind, detail }) => {
                        // the ACA will never renew it (revoked, retired, renewed elsewhere)
                        tx.send_replace(Served::Withdrawn(format!("{kind}: {detail}")));
                        note(Step::Withdrawn { reason: kind });
                        withdrawn = true;
                        feed = None;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, failures, "sidecar: renewal failed; trying again");
                    }
                }
            }
            Some(r) = async { match feed.as_mut() { Some(f) => f.next().await, None => std::future::pending().await } } => {
                match r {
                    Ok(rev) => {
                        let state = dir.read_state()?;
                        if rev.agent_id == state.agent_id
                            && rev.serials.iter().any(|s| s.as_str() == state.serial)
                            && !withdrawn
                        {
                            let why = format!("credential {} revoked ({:?})", state.serial, rev.reason);
                            tx.send_replace(Served::Withdrawn(why));
                            note(Step::Withdrawn { reason: "revoked".into() });
                            withdrawn = true;
                            // nothing more to follow (its connection would be refused)
                            feed = None;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sidecar: revocation feed"),
                }
            }
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

fn validity(dir: &AgentDir) -> Result<(i64, i64), AgentError> {
    let s = dir.read_state()?;
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| AgentError::Setup(format!("agent.json: time {t}: {e}")))
    };
    Ok((parse(&s.not_before)?, parse(&s.not_after)?))
}

fn expired(dir: &AgentDir) -> Result<bool, AgentError> {
    let (_, not_after) = validity(dir)?;
    Ok(time::OffsetDateTime::now_utc().unix_timestamp() >= not_after)
}

/// How long until the next renewal attempt: `renew_at` of the lifetime after `not_before`;
/// after failures, a backoff (2 s doubling, at most a minute) but never past expiry.
fn renew_wait(dir: &AgentDir, renew_at: f64, failures: u32) -> Result<Duration, AgentError> {
    let (nb, na) = validity(dir)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    let at = nb as f64 + (na - nb) as f64 * renew_at.clamp(0.1, 0.95);
    let mut wait = (at - now).max(0.0);
    if failures > 0 {
        wait = wait.max(f64::from(2u32.saturating_pow(failures.min(5)).min(60)));
        wait = wait.min((na as f64 - now).max(0.0));
    }
    Ok(Duration::from_secs_f64(wait))
}
