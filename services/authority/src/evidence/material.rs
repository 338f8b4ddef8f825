//! The trust material in force, as the `trust` projection holds it, decoded once into the
//! types the evidence checks take, and kept until the projection's `meta.version` row (the
//! sequence of the last trust event) moves.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use accord_events::catalogue::{
    AibomDenyListSet, AnchorPurpose, AttestationVerifierAdded, IdentityProviderAdded,
    ProviderAdded, ReferenceValue, TrustAnchorAdded,
};
use accord_events::{Digest, MaterialId};
use accord_store::projection::ProjectionStore;
use serde_json::Value;

use super::{endorsement, initial_trust, owner};

const PROJECTION: &str = "trust";

/// Trust material at one sequence.
#[derive(Debug)]
pub struct TrustSnapshot {
    /// Sequence of the last trust event it reflects (0: none yet).
    pub version: u64,
    pub anchors: Vec<initial_trust::Anchor>,
    pub revoked: BTreeSet<Digest>,
    pub verifiers: Vec<(MaterialId, Vec<ReferenceValue>)>,
    pub providers: Vec<endorsement::Provider>,
    pub idps: Vec<owner::Idp>,
    pub deny: AibomDenyListSet,
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &str,
    key: &str,
    mut v: Value,
) -> Result<T, String> {
    if let Some(o) = v.as_object_mut() {
        o.remove("seq");
    }
    serde_json::from_value(v).map_err(|e| format!("trust row {table}/{key}: {e}"))
}

impl TrustSnapshot {
    /// No material (a domain that trusts nothing yet).
    pub fn empty() -> Self {
        Self {
            version: 0,
            anchors: Vec::new(),
            revoked: BTreeSet::new(),
            verifiers: Vec::new(),
            providers: Vec::new(),
            idps: Vec::new(),
            deny: AibomDenyListSet {
                entries: Vec::new(),
            },
        }
    }

    /// Reads the whole material from the projection.
    pub async fn load(store: &dyn ProjectionStore, version: u64) -> Result<Self, String> {
        let scan = |t: &'static str| async move {
            store.scan(PROJECTION, t).await.map_err(|e| e.to_string())
        };
        let mut s = Self {
            version,
            anchors: Vec::new(),
            revoked: BTreeSet::new(),
            verifiers: Vec::new(),
            providers: Vec::new(),
            idps: Vec::new(),
            deny: AibomDenyListSet {
                entries: Vec::new(),
            },
        };
        for (k, v) in scan("anchors").await? {
            let a: TrustAnchorAdded = decode("anchors", &k, v)?;
            if a.purpose != AnchorPurpose::ManufacturerCa {
                continue;
            }
            let certificates_der = crate::trust::validate::anchor(&a)?;
            s.anchors.push(initial_trust::Anchor {
                id: a.anchor_id,
                certificates_der,
            });
        }
        for (k, v) in scan("revoked_environment").await? {
            let r: accord_events::catalogue::EnvironmentCertificateRevoked =
                decode("revoked_environment", &k, v)?;
            s.revoked.insert(r.fingerprint);
        }
        for (k, v) in scan("verifiers").await? {
            let a: AttestationVerifierAdded = decode("verifiers", &k, v)?;
            s.verifiers.push((a.verifier_id, a.reference_values));
        }
        for (k, v) in scan("providers").await? {
            let p: ProviderAdded = decode("providers", &k, v)?;
            s.providers.push(endorsement::Provider {
                id: p.provider_id,
                keys: p.endorsement_keys,
                endorsable: p.endorsable_capabilities.into_iter().collect(),
            });
        }
        for (k, v) in scan("idps").await? {
            let i: IdentityProviderAdded = decode("idps", &k, v)?;
            s.idps.push(owner::Idp {
                id: i.idp_id,
                issuer: i.issuer,
                audiences: i.audiences,
                keys: i.keys,
            });
        }
        if let Some(v) = store
            .get(PROJECTION, "aibom_deny", "current")
            .await
            .map_err(|e| e.to_string())?
        {
            s.deny = decode("aibom_deny", "current", v)?;
        }
        Ok(s)
    }
}

/// The snapshot the issuance path reads without waiting: a refresher (the ACA's
/// [`crate::Authority::follow_trust`] task, and the ACA's own trust commands) replaces it when
/// the projection's `meta.version` row moves. Requests never touch the projection store, whose
/// lock the runners hold while they apply batches.
#[derive(Debug)]
pub struct TrustCache {
    current: RwLock<Arc<TrustSnapshot>>,
}

impl Default for TrustCache {
    fn default() -> Self {
        Self {
            current: RwLock::new(Arc::new(TrustSnapshot::empty())),
        }
    }
}

impl TrustCache {
    /// The material in force, as last refreshed.
    pub fn get(&self) -> Arc<TrustSnapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the snapshot when the material changed since the last load.
    pub async fn refresh(&self, store: &dyn ProjectionStore) -> Result<u64, String> {
        let version = store
            .get(PROJECTION, "meta", "version")
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| v.get("seq").and_then(Value::as_u64))
            .unwrap_or(0);
        if self.get().version == version {
            return Ok(version);
        }
        let fresh = Arc::new(TrustSnapshot::load(store, version).await?);
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // two refreshers may race: a slower one never puts back older material
        if g.version <= version {
            *g = fresh;
        }
        Ok(version)
    }
}
