//! The Policy Decision Point of every Accord enforcement point (draft §5.2): an embedded Rego
//! engine (regorus) with default deny, policy bundles published as events and hot-reloaded from
//! the `policies` projection, a shipped policy library (RBAC, ABAC, ReBAC, issuance,
//! discovery), an optional remote PDP (OPA REST, AuthZEN), and a sampled decision log.
//!
//! Every package answers `data.accord.<policy>.decision`: `{"allow": bool, "reasons": [...]}`
//! plus policy-specific members. Anything else, or nothing, is a deny.

pub mod aggregate;
pub mod bundle;
pub mod decision;
pub mod inputs;
pub mod library;
pub mod log;
pub mod pdp;
pub mod remote;

use std::sync::Arc;

use accord_events::Digest;
use accord_store::projection::runner::ProjectionHandle;
use serde_json::Value;

pub use bundle::{Bundle, BundleError, TestReport};
pub use decision::{Allow, BundleRef, Decision};
pub use log::{DecisionLog, DecisionLogConfig};
pub use pdp::{LocalPdp, PdpError, check_policy_name};
pub use remote::{RemoteKind, RemotePdp};

enum Backend {
    Local(Arc<LocalPdp>),
    Remote(RemotePdp),
}

/// A PDP as enforcement points use it: embedded or remote, with the decision log.
#[derive(Clone)]
pub struct Pdp {
    backend: Arc<Backend>,
    log: Option<DecisionLog>,
}

impl std::fmt::Debug for Pdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend.as_ref() {
            Backend::Local(l) => format!("local {:?}", l.bundle()),
            Backend::Remote(r) => format!("{r:?}"),
        };
        f.debug_struct("Pdp").field("backend", &kind).finish()
    }
}

impl Pdp {
    pub fn local(pdp: Arc<LocalPdp>, log: Option<DecisionLog>) -> Self {
        Self {
            backend: Arc::new(Backend::Local(pdp)),
            log,
        }
    }

    pub fn remote(pdp: RemotePdp, log: Option<DecisionLog>) -> Self {
        Self {
            backend: Arc::new(Backend::Remote(pdp)),
            log,
        }
    }

    /// The embedded engine, when this PDP has one.
    pub fn embedded(&self) -> Option<&Arc<LocalPdp>> {
        match self.backend.as_ref() {
            Backend::Local(l) => Some(l),
            Backend::Remote(_) => None,
        }
    }

    /// Asks `data.accord.<policy>.decision`; records the decision in the log.
    pub async fn decide(&self, policy: &str, input: &Value) -> Result<Decision, PdpError> {
        let d = match self.backend.as_ref() {
            Backend::Local(l) => l.decide(policy, input)?,
            Backend::Remote(r) => r.decide(policy, input).await?,
        };
        if let Some(log) = &self.log {
            log.record(&d, input).await;
        }
        Ok(d)
    }
}

/// A bundle version as the `policies` projection holds it.
fn row_bundle(row: &Value) -> Option<(Bundle, BundleRef)> {
    let name = row.get("bundle")?.as_str()?;
    let files: Vec<accord_events::catalogue::BundleFile> =
        serde_json::from_value(row.get("files")?.clone()).ok()?;
    let bundle = Bundle::new(name, files).ok()?;
    let meta = BundleRef {
        name: name.to_owned(),
        version: row.get("version")?.as_u64()?,
        digest: Digest::parse(row.get("digest")?.as_str()?).ok()?,
        published_seq: row.get("seq").and_then(Value::as_u64).unwrap_or(0),
    };
    Some((bundle, meta))
}

/// Keeps `pdp` on the newest version of `bundle` the `policies` projection holds: a published
/// update changes decisions without a restart. A version that does not compile here (it
/// passed its checks before publication) is logged and skipped; the loaded one stays.
pub fn follow_bundle(
    pdp: Arc<LocalPdp>,
    policies: ProjectionHandle,
    bundle: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rx = policies.watch();
        loop {
            let applied = rx.borrow_and_update().applied;
            let loaded = pdp.bundle().map(|b| b.version).unwrap_or(0);
            match policies.store().get("policies", "bundles", &bundle).await {
                Ok(Some(row)) => match row_bundle(&row) {
                    Some((b, meta)) if meta.version > loaded => {
                        let version = meta.version;
                        match pdp.load(&b, meta) {
                            Ok(()) => tracing::info!(bundle, version, "policy bundle loaded"),
                            Err(e) => {
                                tracing::error!(bundle, version, error = %e, "policy bundle does not load; keeping the current one")
                            }
                        }
                    }
                    Some(_) => {}
                    None => tracing::error!(bundle, "policy bundle row is malformed"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading policy bundles"),
            }
            pdp.set_at_seq(applied);
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_lists_every_file_of_its_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("library");
        let on_disk = Bundle::load_dir("default", &dir).unwrap();
        assert_eq!(
            on_disk,
            Bundle::library(),
            "library.rs is out of date with library/"
        );
    }

    #[test]
    fn the_library_compiles_and_its_tests_pass() {
        let report = Bundle::library().check().unwrap();
        assert!(report.passed.len() >= 20, "{report:?}");
    }
}
