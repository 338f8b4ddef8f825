//! A domain's services, composed: the NATS connection (TLS, the services' nkey), the event
//! store and its genesis, the projections, and the HTTP endpoint. `accord serve` runs exactly
//! this; `accord dev` runs it next to the nats-server it launched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use accord_audit::{AuditLog, CheckpointCadence, LogIdentity};
use accord_events::catalogue::GenesisConfig;
use accord_events::{Actor, DomainKey, Ed25519Key, Event, Timestamp};
use accord_store::projection::ProjectionStore;
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::postgres::{PgStore, PgTls};
use accord_store::projection::runner::{self, ProjectionHandle, RunnerContext};
use accord_store::{EventStore, StoreConfig, StoredEvent};
use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::config::{Config, NatsSection, SecretRef};
use crate::telemetry::{Metrics, OutcomeLabel, ProjectionLabel};
use crate::tools::{MIN_NATS, parse_version};

/// Connects to the domain's NATS as `credentials` (an nkey seed file), over TLS.
pub async fn connect(
    url: &str,
    ca: &std::path::Path,
    credentials: &SecretRef,
    name: &str,
) -> anyhow::Result<async_nats::Client> {
    let seed = String::from_utf8(credentials.read().map_err(anyhow::Error::msg)?)
        .context("nkey seed is not text")?;
    let addrs: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("nats url {url:?}"))?;
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(ca.to_path_buf())
        .require_tls(true)
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let info = client.server_info();
    let v = parse_version(&format!("v{}", info.version));
    if v.is_none_or(|v| v < MIN_NATS) {
        bail!(
            "the NATS server at {url} is version {}; Accord needs {}.{}.{} or later",
            info.version,
            MIN_NATS.0,
            MIN_NATS.1,
            MIN_NATS.2
        );
    }
    Ok(client)
}

async fn connect_services(n: &NatsSection) -> anyhow::Result<async_nats::Client> {
    connect(&n.url, &n.ca, &n.credentials, "accord-services").await
}

fn load_key(r: &SecretRef, what: &str) -> anyhow::Result<Ed25519Key> {
    let der = r.read().map_err(anyhow::Error::msg)?;
    Ed25519Key::from_pkcs8(&der).with_context(|| format!("{what} is not an Ed25519 PKCS#8 key"))
}

/// Writes the genesis on a fresh log; on an existing log, checks it is this domain's and that
/// our event-signing key is the one it names.
pub async fn ensure_genesis(
    store: &EventStore,
    cfg: &Config,
    event_key: &Ed25519Key,
    audit_key: &DomainKey,
) -> anyhow::Result<StoredEvent> {
    if let Some(first) = store.genesis().await? {
        let Event::DomainCreated(g) = &first.event else {
            bail!(
                "the log's first event is {}, not a genesis",
                first.envelope.event_type
            );
        };
        if g.domain_id != cfg.domain.id || g.trust_domain != cfg.domain.trust_domain {
            bail!(
                "this log belongs to domain {} ({}), not {} ({})",
                g.domain_id,
                g.trust_domain,
                cfg.domain.id,
                cfg.domain.trust_domain
            );
        }
        if !g
            .event_signing_keys
            .iter()
            .any(|k| k.kid == *event_key.kid())
        {
            bail!(
                "the event-signing key {} is not one the genesis names",
                event_key.kid()
            );
        }
        return Ok(first);
    }
    let genesis = accord_events::genesis::genesis_event(
        &cfg.domain.id,
        &cfg.domain.trust_domain,
        event_key,
        vec![audit_key.clone()],
        GenesisConfig {
            replicas: cfg.nats.replicas as u8,
            duplicate_window_secs: cfg.nats.duplicate_window_secs,
            token_shards: 64,
        },
        Timestamp::now(),
    )?;
    let stored = store.append_genesis(&genesis).await?;
    tracing::info!(domain = %cfg.domain.id, kid = %event_key.kid(), "wrote the genesis event");
    Ok(stored)
}

/// The running services of a domain.
pub struct Runtime {
    pub pdp: accord_policy::Pdp,
    /// The Agent Credential Authority, when `[authority]` is configured.
    pub authority: Option<Arc<accord_authority::Authority>>,
    /// The Agent Registry Service, when `[registry]` is configured.
    pub registry: Option<Arc<accord_registry::Registry>>,
    pub config: Config,
    pub store: EventStore,
    pub genesis: StoredEvent,
    pub projections: Vec<ProjectionHandle>,
    pub context: RunnerContext,
    pub metrics: Arc<Metrics>,
    pub projection_store: Arc<dyn ProjectionStore>,
    /// The Merkle log over the stream and its checkpoints.
    pub audit: AuditLog,
    audit_tail: u64,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("domain", &self.config.domain.id)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub async fn start(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let event_key = Arc::new(load_key(&config.keys.event_signing, "keys.event_signing")?);
        let audit_key = load_key(&config.keys.audit, "keys.audit")?;
        let client = connect_services(&config.nats).await?;
        let mut sc = StoreConfig::new(config.domain.id.clone());
        sc.stream.replicas = config.nats.replicas;
        sc.stream.duplicate_window = Duration::from_secs(config.nats.duplicate_window_secs);
        sc.js_domain = config.nats.js_domain.clone();
        let store = EventStore::open(client, sc, event_key.clone())
            .await
            .context("opening the event log")?;
        let genesis = ensure_genesis(&store, &config, &event_key, audit_key.public()).await?;
        // what the readers believe: events signed by a key the genesis names (finding 1)
        if let Event::DomainCreated(g) = &genesis.event {
            store
                .trust_keys(&g.event_signing_keys)
                .context("the genesis's event-signing keys")?;
        }

        let pg_store: Option<Arc<PgStore>> = match &config.postgres {
            Some(pg) => {
                let mut url = pg.url.clone();
                if let Some(pw) = &pg.password {
                    let pw = String::from_utf8(pw.read().map_err(anyhow::Error::msg)?)?;
                    url = with_password(&url, pw.trim_end_matches(['\n', '\r']))?;
                }
                let tls = match (&pg.ca, pg.dangerous_plaintext_local) {
                    (_, true) => PgTls::dangerous_plaintext_local(),
                    (Some(ca), false) => {
                        let pem = std::fs::read(ca)
                            .with_context(|| format!("postgres.ca {}", ca.display()))?;
                        PgTls::verify_full(&pem)?
                    }
                    (None, false) => {
                        return Err(accord_store::projection::postgres::PgConnectError::NoCa.into());
                    }
                };
                let s = PgStore::new(&url, pg.max_connections, &tls)?;
                s.migrate().await.context("PostgreSQL")?;
                Some(Arc::new(s))
            }
            None => None,
        };
        let (projection_store, memory_store): (Arc<dyn ProjectionStore>, _) = match &pg_store {
            Some(pg) => (pg.clone(), None),
            None => {
                let m = Arc::new(MemoryStore::new());
                (m.clone(), Some(m))
            }
        };
        let context = RunnerContext::of(&store, config.projections.batch_size);
        let (shutdown, rx) = watch::channel(false);
        let projections: Vec<ProjectionHandle> = accord_readmodels::all()
            .into_iter()
            .map(|p| {
                crate::telemetry::register_projection(p.name());
                runner::spawn(p, projection_store.clone(), context.clone(), rx.clone())
            })
            .collect();
        let audit_tail = store.last_sequence().await?;
        let genesis_audit_keys = match &genesis.event {
            accord_events::Event::DomainCreated(g) => g.audit_keys.clone(),
            _ => Vec::new(),
        };
        let audit = AuditLog::start(
            LogIdentity {
                domain: config.domain.id.clone(),
                trust_domain: config.domain.trust_domain.clone(),
            },
            &genesis_audit_keys,
            store.reader(),
            (store.checker().clone(), store.foreign().clone()),
            pg_store.clone(),
            rx.clone(),
        )
        .await
        .context("opening the audit log")?;
        if config.audit.checkpoints {
            audit.spawn_checkpointer(
                store.clone(),
                Arc::new(audit_key),
                CheckpointCadence {
                    every_events: config.audit.checkpoint_every_events,
                    every: Duration::from_millis(config.audit.checkpoint_every_ms),
                },
                rx.clone(),
            );
        }
        let pdp = start_pdp(&config, &store, &projections).await?;
        let authority = match &config.authority {
            Some(a) => {
                Some(start_authority(&config, a, &pdp, &store, &projections, rx.clone()).await?)
            }
            None => None,
        };
        let registry = match (&config.registry, &authority) {
            (Some(r), Some(a)) => Some(
                crate::registry::start(
                    &config,
                    r,
                    a,
                    &pdp,
                    memory_store.as_ref(),
                    pg_store.as_ref(),
                    &context,
                    &projections,
                    rx.clone(),
                )
                .await?,
            ),
            _ => None,
        };
        let rt = Self {
            audit,
            audit_tail,
            pdp,
            authority,
            registry,
            config,
            store,
            genesis,
            projections,
            context,
            metrics,
            projection_store,
            shutdown,
        };
        rt.spawn_metrics_refresher();
        Ok(rt)
    }

    pub fn projection(&self, name: &str) -> Option<&ProjectionHandle> {
        self.projections.iter().find(|p| p.name() == name)
    }

    /// Whether every projection reached the log's tail as of its start, and the embedded PDP
    /// has a bundle.
    pub fn ready(&self) -> bool {
        self.projections.iter().all(|p| p.progress().ready)
            && self.audit.applied() >= self.audit_tail
            && self.pdp.embedded().is_none_or(|l| l.bundle().is_some())
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    fn spawn_metrics_refresher(&self) {
        let store = self.store.clone();
        let handles = self.projections.clone();
        let audit = self.audit.clone();
        let authority = self.authority.clone();
        let m = self.metrics.clone();
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                let last = store.last_sequence().await.unwrap_or(0);
                m.log_last_seq.set(last);
                crate::telemetry::set_foreign(
                    &m,
                    &store.foreign().counts(),
                    store.foreign().total(),
                );
                let c = store.counters();
                for (outcome, v) in [
                    ("stored", &c.stored),
                    ("replayed", &c.replayed),
                    ("conflict", &c.conflicts),
                    ("fact", &c.facts),
                    ("error", &c.errors),
                ] {
                    m.appends
                        .get_or_create(&OutcomeLabel {
                            outcome: outcome.into(),
                        })
                        .set(crate::telemetry::load(v));
                }
                for h in &handles {
                    let p = h.progress();
                    let l = ProjectionLabel {
                        projection: p.name.clone(),
                    };
                    m.projection_applied.get_or_create(&l).set(p.applied);
                    m.projection_lag
                        .get_or_create(&l)
                        .set(last.saturating_sub(p.applied));
                    m.projection_ready.get_or_create(&l).set(i64::from(p.ready));
                }
                let a = audit.status();
                let checkpointed = a.latest.as_ref().map_or(0, |c| c.tree_size);
                m.audit.tree_size.set(a.tree_size);
                m.audit.lag.set(last.saturating_sub(a.tree_size));
                m.audit.checkpoints.set(a.checkpoints as u64);
                m.audit.checkpointed_size.set(checkpointed);
                m.audit
                    .uncovered
                    .set(a.tree_size.saturating_sub(checkpointed));
                m.audit.refused_checkpoints.set(a.refused_checkpoints);
                if let Some(c) = authority.as_ref().and_then(|a| a.crl_state()) {
                    m.crl_stale.set(i64::from(c.stale_since.is_some()));
                    m.crl_next_update.set(c.crl.next_update.unix_timestamp());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

/// The domain's PDP: embedded (following the policies projection, publishing the shipped
/// library on a log that has no bundle yet) or remote; with the decision log.
async fn start_pdp(
    config: &Config,
    store: &EventStore,
    projections: &[ProjectionHandle],
) -> anyhow::Result<accord_policy::Pdp> {
    use crate::config::PolicyEngine;
    let p = &config.policy;
    let log = accord_policy::DecisionLog::open(
        store.client().clone(),
        store.jetstream(),
        &config.domain.id,
        &accord_policy::DecisionLogConfig {
            max_age: Duration::from_secs(p.decision_log_max_age_secs),
            max_bytes: p.decision_log_max_bytes,
            sample: p.decision_log_sample,
            replicas: config.nats.replicas,
        },
    )
    .await
    .map_err(anyhow::Error::msg)?;
    match p.engine {
        PolicyEngine::Embedded => {
            let local = Arc::new(accord_policy::LocalPdp::new());
            let policies = projections
                .iter()
                .find(|h| h.name() == "policies")
                .cloned()
                .context("the policies projection is not running")?;
            accord_policy::follow_bundle(local.clone(), policies.clone(), p.bundle.clone());
            // a log without the bundle gets the shipped library as its version 1
            let store = store.clone();
            let bundle = p.bundle.clone();
            tokio::spawn(async move {
                if !policies.wait_ready(Duration::from_secs(300)).await {
                    return;
                }
                match policies.store().get("policies", "bundles", &bundle).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if let Err(e) = publish_bundle(
                            &store,
                            accord_policy::Bundle::library(),
                            &bundle,
                            Actor::system("accord"),
                        )
                        .await
                        {
                            tracing::error!(error = %e, "publishing the shipped policy library");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading policy bundles"),
                }
            });
            Ok(accord_policy::Pdp::local(local, Some(log)))
        }
        PolicyEngine::Opa | PolicyEngine::Authzen => {
            let kind = if p.engine == PolicyEngine::Opa {
                accord_policy::RemoteKind::Opa
            } else {
                accord_policy::RemoteKind::Authzen
            };
            let ca = match &p.ca {
                Some(path) => Some(
                    std::fs::read(path).with_context(|| format!("policy.ca {}", path.display()))?,
                ),
                None => None,
            };
            let url = p.url.clone().unwrap_or_default();
            let remote = if p.dangerous_plaintext_http && !url.starts_with("https://") {
                tracing::warn!(%url, "remote PDP over plaintext http (policy.dangerous_plaintext_http)");
                accord_policy::RemotePdp::dangerous_plaintext(kind, &url)?
            } else {
                accord_policy::RemotePdp::with_ca(kind, &url, ca.as_deref())?
            };
            Ok(accord_policy::Pdp::remote(remote, Some(log)))
        }
    }
}

/// Opens a key named by the config: a PKCS#11 token, or a file (development only).
pub fn open_signer(
    r: &SecretRef,
    what: &str,
) -> anyhow::Result<Arc<dyn accord_authority::signer::Signer>> {
    Ok(match r {
        SecretRef::File(p) => {
            tracing::warn!(key = what, path = %p.display(), "key held in a file: for development only; use pkcs11: in production");
            Arc::new(
                accord_authority::signer::DevFileSigner::open(p)
                    .with_context(|| what.to_string())?,
            )
        }
        SecretRef::Pkcs11(uri) => Arc::new(
            accord_authority::pkcs11::Pkcs11Signer::open(uri).with_context(|| what.to_string())?,
        ),
    })
}

/// The ACA: its CA and token keys, its issuing rules, the CRL it keeps current.
async fn start_authority(
    config: &Config,
    a: &crate::config::AuthoritySection,
    pdp: &accord_policy::Pdp,
    store: &EventStore,
    projections: &[ProjectionHandle],
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Arc<accord_authority::Authority>> {
    use accord_authority::{AuthorityConfig, ca};
    let ca_signer = open_signer(&a.ca_key, "authority.ca_key")?;
    let token_signer = open_signer(&a.token_key, "authority.token_key")?;
    let pem = std::fs::read_to_string(&a.ca_certificate)
        .with_context(|| format!("authority.ca_certificate {}", a.ca_certificate.display()))?;
    let chain = ca::pem_certificates(&pem).context("authority.ca_certificate")?;
    let ca = ca::Ca::new(ca_signer, chain).context("authority.ca_certificate")?;
    let mut cfg = AuthorityConfig::new(config.domain.trust_domain.clone(), &a.public_url);
    cfg.lifetime = time::Duration::seconds(a.lifetime_secs as i64);
    cfg.enrollment_ttl = time::Duration::seconds(a.enrollment_ttl_secs as i64);
    cfg.crl_validity = time::Duration::seconds(a.crl_validity_secs as i64);
    cfg.csr.allow_rsa = a.allow_rsa;
    cfg.policy = a.policy.clone();
    cfg.nonce_ttl = time::Duration::seconds(a.nonce_ttl_secs.clamp(10, 3600) as i64);
    cfg.rotation_grace = time::Duration::seconds(a.rotation_grace_secs.min(30 * 24 * 3600) as i64);
    cfg.sweep_every = std::time::Duration::from_secs(a.sweep_every_secs.clamp(1, 3600));
    if let Some(arc) = &a.extension_arc {
        cfg.arc =
            accord_authority::profile::ExtensionArc::parse(arc).map_err(anyhow::Error::msg)?;
    }
    let credentials = projections
        .iter()
        .find(|h| h.name() == "credentials")
        .cloned()
        .context("the credentials projection is not running")?;
    let trust = projections
        .iter()
        .find(|h| h.name() == "trust")
        .cloned()
        .context("the trust projection is not running")?;
    let authority = accord_authority::Authority::new(
        cfg,
        ca,
        token_signer,
        pdp.clone(),
        store.clone(),
        credentials,
        trust,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(ca = ?authority.ca(), "the Agent Credential Authority is running");
    tokio::spawn(authority.clone().maintain_crl(stop.clone()));
    tokio::spawn(authority.clone().run_sweep(stop.clone()));
    tokio::spawn(authority.clone().follow_trust(stop.clone()));
    start_callout(config, a, &authority, store, stop)?;
    Ok(authority)
}

/// The NATS auth callout that admits agents (ADR 0006), when `[authority]` names its keys.
fn start_callout(
    config: &Config,
    a: &crate::config::AuthoritySection,
    authority: &Arc<accord_authority::Authority>,
    store: &EventStore,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use accord_authority::callout::{Callout, CalloutConfig};
    let (Some(issuer), Some(creds)) = (&a.nats_callout_issuer, &a.nats_callout_credentials) else {
        tracing::warn!(
            "no nats_callout_issuer/credentials in [authority]: agents cannot connect to NATS"
        );
        return Ok(());
    };
    let seed = String::from_utf8(issuer.read().map_err(anyhow::Error::msg)?)
        .context("authority.nats_callout_issuer is not text")?;
    let issuer = nkeys::KeyPair::from_seed(seed.trim())
        .map_err(|e| anyhow::anyhow!("authority.nats_callout_issuer: {e}"))?;
    let callout = Callout::new(
        authority.clone(),
        CalloutConfig {
            domain: config.domain.id.clone(),
            stream: store.config().stream.name.clone(),
            account: crate::natsconf::AGENTS_ACCOUNT.into(),
            issuer: Arc::new(issuer),
            per_agent_per_minute: 60,
        },
    );
    // agents ask for their feed; the ACA creates their consumers (findings 1 and 2)
    let feeds = accord_authority::feedctl::FeedConsumers::new(authority.clone());
    tokio::spawn(feeds.clone().serve(store.client().clone(), stop.clone()));
    {
        let system = a.nats_system_credentials.clone();
        let (url, ca, authority, stop) = (
            config.nats.url.clone(),
            config.nats.ca.clone(),
            authority.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let system = match system {
                Some(creds) => match connect(&url, &ca, &creds, "accord-aca-kick").await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "revoked agents will not be kicked");
                        None
                    }
                },
                None => None,
            };
            accord_authority::callout::kick_revoked(authority, system, feeds, stop).await
        });
    }
    let (url, ca, creds) = (
        config.nats.url.clone(),
        config.nats.ca.clone(),
        creds.clone(),
    );
    tokio::spawn(async move {
        // the callout's own connection; retried until it is up, since agents depend on it
        let client = loop {
            match connect(&url, &ca, &creds, "accord-auth-callout").await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "auth callout: connecting to NATS");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        callout.serve(client, stop).await;
    });
    Ok(())
}

/// Publishes `bundle` as the next version of `name` (checked first; nothing when unchanged).
pub async fn publish_bundle(
    store: &EventStore,
    mut bundle: accord_policy::Bundle,
    name: &str,
    actor: Actor,
) -> Result<
    accord_store::cqrs::Executed,
    accord_store::cqrs::ExecuteError<accord_policy::aggregate::PolicyError>,
> {
    use accord_policy::aggregate::{PolicyBundle, PolicyCommand};
    bundle.name = name.to_owned();
    let exec = accord_store::cqrs::Executor::<PolicyBundle>::new(store.clone(), ())?;
    let id = accord_events::AggregateId::parse(name).map_err(|e| {
        accord_store::cqrs::ExecuteError::Rejected(
            accord_policy::aggregate::PolicyError::WrongName(e.to_string()),
        )
    })?;
    let meta = accord_events::Metadata::new(
        accord_events::CommandId::new_random(),
        actor,
        Timestamp::now(),
    );
    exec.execute(&id, &meta, PolicyCommand::Publish(bundle))
        .await
}

/// Puts a password into a `postgres://user@host/db` URL, percent-encoded.
pub fn with_password(url: &str, password: &str) -> anyhow::Result<String> {
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    match url.split_once("://").and_then(|(scheme, rest)| {
        rest.split_once('@')
            .map(|(user, host)| format!("{scheme}://{user}:{encoded}@{host}"))
    }) {
        Some(u) => Ok(u),
        None => anyhow::bail!(
            "postgres.password is set but postgres.url names no user (postgres://USER@host/db)"
        ),
    }
}

/// Serves HTTP until the runtime shuts down.
pub async fn serve_http(rt: Arc<Runtime>) -> anyhow::Result<SocketAddr> {
    let cfg = rt.config.http.clone();
    let router = crate::http::router(rt.clone());
    let handle = axum_server::Handle::new();
    let mut stop = rt.shutdown_signal();
    let h = handle.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        h.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let addr = cfg.listen;
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let key = key.read().map_err(anyhow::Error::msg)?;
            let cert =
                std::fs::read(cert).with_context(|| format!("http.tls_cert {}", cert.display()))?;
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key)
                .await
                .context("http TLS certificate and key")?;
            let server = axum_server::bind_rustls(addr, tls).handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = server
                    .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            });
        }
        _ => {
            tracing::warn!(%addr, "HTTP without TLS (http.tls_cert/tls_key not set)");
            let server = axum_server::bind(addr).handle(handle.clone());
            tokio::spawn(async move {
                if let Err(e) = server
                    .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            });
        }
    }
    handle
        .listening()
        .await
        .ok_or_else(|| anyhow::anyhow!("HTTP server could not listen on {addr}"))
}
