//! The Agent Registry Service in a domain's process (ADR 0015): its directory follows the
//! `registry` projection (the memory store's rows when the read models are in memory; its own
//! memory copy of that one projection when they are in PostgreSQL), and it serves its own
//! HTTPS listener, where agents present their certificates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use accord_registry::directory::Index;
use accord_registry::pg::PgDirectory;
use accord_registry::{Directory, Registry};
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::runner::{self, ProjectionHandle, RunnerContext};
use anyhow::Context;
use tokio::sync::watch;

use crate::config::{Config, DirectoryKind, RegistrySection};
use crate::runtime::Runtime;

fn handle(projections: &[ProjectionHandle], name: &str) -> anyhow::Result<ProjectionHandle> {
    projections
        .iter()
        .find(|h| h.name() == name)
        .cloned()
        .with_context(|| format!("the {name} projection is not running"))
}

/// Starts the registry's directory and service.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    config: &Config,
    section: &RegistrySection,
    authority: &Arc<accord_authority::Authority>,
    pdp: &accord_policy::Pdp,
    memory: Option<&Arc<MemoryStore>>,
    postgres: Option<&Arc<accord_store::projection::postgres::PgStore>>,
    context: &RunnerContext,
    projections: &[ProjectionHandle],
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Arc<Registry>> {
    let domain = config.domain.id.as_str();
    let rows = handle(projections, "registry")?;
    let (directory, feeding): (Arc<dyn Index>, ProjectionHandle) =
        match (section.directory, memory, postgres) {
            // the projection's rows in PostgreSQL, over the registry's indexes
            (DirectoryKind::Postgres, _, Some(pg)) => {
                (Arc::new(PgDirectory::new(pg.clone(), domain)), rows.clone())
            }
            // the read models are in memory: the directory follows the same rows
            (_, Some(m), _) => {
                let d = Arc::new(Directory::new(domain));
                m.observe("registry", d.clone()).await;
                (d, rows.clone())
            }
            // in PostgreSQL: the directory keeps its own memory copy of the registry
            // projection
            _ => {
                let d = Arc::new(Directory::new(domain));
                let m = Arc::new(MemoryStore::new());
                m.observe("registry", d.clone()).await;
                let h = runner::spawn(
                    Arc::new(accord_readmodels::Registry),
                    m,
                    context.clone(),
                    stop,
                );
                (d, h)
            }
        };
    let registry = Registry::new(
        authority.clone(),
        pdp.clone(),
        directory,
        feeding,
        handle(projections, "credentials")?,
        rows,
        config.domain.id.as_str(),
        &section.public_url,
    );
    tracing::info!(listen = %section.listen, "the Agent Registry Service is running");
    Ok(Arc::new(registry))
}

/// Serves the registry's HTTPS listener until the runtime shuts down.
pub async fn serve(rt: Arc<Runtime>) -> anyhow::Result<Option<SocketAddr>> {
    let (Some(registry), Some(section)) = (rt.registry.clone(), rt.config.registry.clone()) else {
        return Ok(None);
    };
    let (cert, key) = section
        .tls(&rt.config)
        .context("the registry serves HTTPS only")?;
    let chain =
        std::fs::read(cert).with_context(|| format!("TLS certificate {}", cert.display()))?;
    let key = key.read().map_err(anyhow::Error::msg)?;
    let tls = accord_registry::tls::server_config(&chain, &key, registry.authority.ca_chain())
        .context("the registry's TLS")?;
    let router = accord_registry::http::router(accord_registry::http::RegistryState {
        registry,
        admin_token: crate::http::admin_tokens(&rt.config),
        limit: accord_web::RateLimit::per_minute(section.rate_limit_per_minute),
    });
    let handle = axum_server::Handle::new();
    let mut stop = rt.shutdown_signal();
    let h = handle.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        h.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let server = axum_server::bind_rustls(
        section.listen,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
    )
    .handle(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = server
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(error = %e, "registry server stopped");
        }
    });
    handle
        .listening()
        .await
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("the registry could not listen on {}", section.listen))
}
