//! The read models several services answer from. Each is a pure [`Projection`]: events in,
//! JSON rows out, in named tables; the runner and the store (PostgreSQL or memory) make them
//! durable and exactly-once.
//!
//! | projection | tables |
//! |---|---|
//! | `registry` | `agents` (by agent id), `by_spiffe` (SPIFFE ID → agent id) |
//! | `credentials` | `credentials` (by serial), `revocations` (by stream sequence, log order), `revocation_state` (`crl`: last revocation's sequence, count) |
//! | `trust` | `anchors`, `verifiers`, `providers`, `idps` (by material id), `revoked_environment` (by fingerprint), `aibom_deny` (`current`), `meta` (`version`: the sequence of the last trust event) |
//! | `policies` | `bundles` (by bundle name: the latest version) |
//! | `peers` | `peers` (by domain id) |

use std::sync::Arc;

use accord_events::Event;
use accord_store::StoredEvent;
use accord_store::projection::row::{object, seq_key, u64_of};
use accord_store::projection::{Projection, ProjectionError, Rows};
use async_trait::async_trait;
use serde_json::{Value, json};

/// Every read model of this crate.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(Registry),
        Arc::new(Credentials),
        Arc::new(Trust),
        Arc::new(Policies),
        Arc::new(Peers),
    ]
}

fn to_value<T: serde::Serialize>(
    projection: &str,
    seq: u64,
    v: &T,
) -> Result<Value, ProjectionError> {
    serde_json::to_value(v).map_err(|e| ProjectionError::apply(projection, seq, e))
}

/// Agents as the registry and the ACA see them.
#[derive(Debug, Clone, Copy)]
pub struct Registry;

#[async_trait]
impl Projection for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }

    fn prefetch(&self, e: &StoredEvent) -> Vec<(&'static str, String)> {
        let creates =
            matches!(e.event, Event::AgentProvisioned(_)) && e.envelope.aggregate.seq == 1;
        if e.envelope.aggregate.kind == accord_events::AggregateKind::Agent && !creates {
            vec![("agents", e.envelope.aggregate.id.to_string())]
        } else {
            Vec::new()
        }
    }

    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        if e.envelope.aggregate.kind != accord_events::AggregateKind::Agent {
            return Ok(());
        }
        let key = e.envelope.aggregate.id.as_str();
        let seq = e.stream_seq;
        // provisioning creates the row; everything later reads it
        let mut a = match &e.event {
            Event::AgentProvisioned(_) if e.envelope.aggregate.seq == 1 => serde_json::Map::new(),
            _ => object(rows.get("agents", key).await?),
        };
        let status = |a: &mut serde_json::Map<String, Value>, s: &str| {
            a.insert("status".into(), s.into());
        };
        match &e.event {
            Event::AgentProvisioned(p) => {
                a.insert("agent_id".into(), p.agent_id.to_string().into());
                a.insert("spiffe_id".into(), p.spiffe_id.to_string().into());
                a.insert("name".into(), p.name.clone().into());
                a.insert(
                    "provider_id".into(),
                    to_value(self.name(), seq, &p.provider_id)?,
                );
                a.insert(
                    "requested_capabilities".into(),
                    to_value(self.name(), seq, &p.requested_capabilities)?,
                );
                a.insert("provisioned_seq".into(), seq.into());
                status(&mut a, "provisioned");
                rows.put(
                    "by_spiffe",
                    p.spiffe_id.as_str(),
                    json!(p.agent_id.to_string()),
                );
            }
            Event::OwnerBound(o) => {
                a.insert("owner".into(), to_value(self.name(), seq, &o.owner)?);
                a.insert("owner_scope".into(), to_value(self.name(), seq, &o.scope)?);
            }
            Event::OwnerUnbound(_) => {
                a.insert("owner".into(), Value::Null);
                a.insert("owner_scope".into(), Value::Null);
            }
            Event::CredentialIssued(c) => {
                if let Some(o) = &c.owner_bound {
                    a.insert("owner".into(), to_value(self.name(), seq, &o.owner)?);
                    a.insert("owner_scope".into(), to_value(self.name(), seq, &o.scope)?);
                }
                a.insert("credential".into(), json!(c.credential.serial.to_string()));
                a.insert(
                    "capabilities".into(),
                    to_value(self.name(), seq, &c.credential.capabilities)?,
                );
                a.insert(
                    "aibom_digest".into(),
                    to_value(self.name(), seq, &c.credential.aibom_digest)?,
                );
            }
            Event::CredentialRenewed(c) => {
                if let Some(o) = &c.owner_bound {
                    a.insert("owner".into(), to_value(self.name(), seq, &o.owner)?);
                    a.insert("owner_scope".into(), to_value(self.name(), seq, &o.scope)?);
                }
                a.insert("credential".into(), json!(c.credential.serial.to_string()));
                a.insert(
                    "capabilities".into(),
                    to_value(self.name(), seq, &c.credential.capabilities)?,
                );
                a.insert(
                    "aibom_digest".into(),
                    to_value(self.name(), seq, &c.credential.aibom_digest)?,
                );
            }
            Event::AgentRegistered(r) => {
                a.insert("registration".into(), to_value(self.name(), seq, r)?);
                a.insert("registered_seq".into(), seq.into());
                status(&mut a, "registered");
            }
            Event::AgentUpdated(u) => {
                let signed: Vec<(&str, Option<Value>)> = ["capabilities", "aibom_digest", "owner"]
                    .into_iter()
                    .map(|f| (f, a.get(f).filter(|v| !v.is_null()).cloned()))
                    .collect();
                if let Some(Value::Object(reg)) = a.get_mut("registration") {
                    if let Some(d) = &u.description {
                        reg.insert("description".into(), d.clone().into());
                    }
                    if let Some(ep) = &u.endpoints {
                        reg.insert("endpoints".into(), to_value(self.name(), seq, ep)?);
                    }
                    if let Some(s) = &u.credential_serial {
                        reg.insert("credential_serial".into(), s.to_string().into());
                        // the record carries what the renewed credential signed (the
                        // aggregate accepted nothing else)
                        for (f, v) in signed {
                            match v {
                                Some(v) => reg.insert(f.into(), v),
                                None => reg.remove(f),
                            };
                        }
                    }
                    if let Some(s) = &u.skills {
                        reg.insert("skills".into(), to_value(self.name(), seq, s)?);
                    }
                    if let Some(au) = &u.audience {
                        reg.insert("audience".into(), to_value(self.name(), seq, au)?);
                    }
                    if let Some(c) = &u.card {
                        reg.insert("card".into(), to_value(self.name(), seq, c)?);
                    }
                }
                // on a live credential again (the aggregate accepts nothing else)
                if u.credential_serial.is_some()
                    && matches!(
                        a.get("status").and_then(Value::as_str),
                        Some("revoked" | "expired")
                    )
                {
                    status(&mut a, "registered");
                    a.insert("status_seq".into(), seq.into());
                }
            }
            // records follow credentials (issue 15): a registered record whose credential is
            // revoked or expires leaves discovery at that event's sequence; it comes back only
            // on a credential the agent registers again with
            Event::CredentialRevoked(r)
                if registered_on(&a).is_some_and(|s| r.serials.iter().any(|x| x.as_str() == s)) =>
            {
                status(&mut a, "revoked");
                a.insert("status_seq".into(), seq.into());
            }
            Event::CredentialExpired(x)
                if registered_on(&a).is_some_and(|s| s == x.serial.as_str()) =>
            {
                status(&mut a, "expired");
                a.insert("status_seq".into(), seq.into());
            }
            Event::AgentSuspended(s) => {
                status(&mut a, "suspended");
                a.insert("status_reason".into(), s.reason.clone().into());
            }
            Event::AgentDecommissioned(d) => {
                status(&mut a, "decommissioned");
                a.insert("status_reason".into(), d.reason.clone().into());
            }
            _ => {}
        }
        // every agent event counts, so a double application is visible
        let events = u64_of(&Value::Object(a.clone()), "events") + 1;
        a.insert("events".into(), events.into());
        a.insert("last_seq".into(), seq.into());
        rows.put("agents", key, Value::Object(a));
        Ok(())
    }
}

/// The serial a registered (not suspended or decommissioned) record rests on.
fn registered_on(a: &serde_json::Map<String, Value>) -> Option<&str> {
    if a.get("status").and_then(Value::as_str) != Some("registered") {
        return None;
    }
    a.get("registration")?.get("credential_serial")?.as_str()
}

/// Credentials by serial, and the revocation list in log order (its watermark is the
/// projection's checkpoint).
#[derive(Debug, Clone, Copy)]
pub struct Credentials;

#[async_trait]
impl Projection for Credentials {
    fn name(&self) -> &'static str {
        "credentials"
    }

    fn prefetch(&self, e: &StoredEvent) -> Vec<(&'static str, String)> {
        match &e.event {
            Event::CredentialRevoked(r) => r
                .serials
                .iter()
                .map(|s| ("credentials", s.to_string()))
                .chain([("revocation_state", "crl".to_owned())])
                .collect(),
            Event::CredentialExpired(x) => vec![("credentials", x.serial.to_string())],
            Event::KeyRotated(k) => vec![("credentials", k.old_serial.to_string())],
            _ => Vec::new(),
        }
    }

    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        let seq = e.stream_seq;
        let agent = e.envelope.aggregate.id.as_str();
        let issued = |c: &accord_events::catalogue::IssuedCredential,
                      previous: Option<String>|
         -> Result<Value, ProjectionError> {
            Ok(json!({
                "serial": c.serial.to_string(),
                "agent_id": agent,
                "spiffe_id": c.spiffe_id.to_string(),
                "status": "valid",
                "not_before": c.not_before.to_string(),
                "not_after": c.not_after.to_string(),
                "key_thumbprint": c.key_thumbprint.to_string(),
                "capabilities": to_value("credentials", seq, &c.capabilities)?,
                "issuer_key": c.issuer_key.to_string(),
                "issued_seq": seq,
                "renews": previous,
            }))
        };
        match &e.event {
            Event::CredentialIssued(c) => {
                rows.put(
                    "credentials",
                    c.credential.serial.as_str(),
                    issued(&c.credential, None)?,
                );
            }
            Event::CredentialRenewed(c) => {
                rows.put(
                    "credentials",
                    c.credential.serial.as_str(),
                    issued(&c.credential, Some(c.previous_serial.to_string()))?,
                );
            }
            Event::CredentialRevoked(r) => {
                for serial in &r.serials {
                    let mut not_after = None;
                    if let Some(Value::Object(mut c)) =
                        rows.get("credentials", serial.as_str()).await?
                    {
                        not_after = c.get("not_after").cloned();
                        c.insert("status".into(), "revoked".into());
                        c.insert("revoked_seq".into(), seq.into());
                        c.insert("reason".into(), to_value(self.name(), seq, &r.reason)?);
                        rows.put("credentials", serial.as_str(), Value::Object(c));
                    }
                    rows.put(
                        "revocations",
                        &format!("{}:{serial}", seq_key(seq)),
                        json!({
                            "serial": serial.to_string(),
                            "agent_id": agent,
                            "reason": to_value(self.name(), seq, &r.reason)?,
                            "reason_code": r.reason.code(),
                            "revoked_at": r.revoked_at.to_string(),
                            "not_after": not_after,
                            "seq": seq,
                        }),
                    );
                }
                // what the CRL signer watches: one row, so it need not scan on every batch
                let count = rows
                    .get("revocation_state", "crl")
                    .await?
                    .and_then(|v| v.get("count").and_then(Value::as_u64))
                    .unwrap_or(0);
                rows.put(
                    "revocation_state",
                    "crl",
                    json!({"last_seq": seq, "count": count + r.serials.len() as u64}),
                );
            }
            Event::CredentialExpired(x) => {
                if let Some(Value::Object(mut c)) =
                    rows.get("credentials", x.serial.as_str()).await?
                    && c.get("status").and_then(Value::as_str) == Some("valid")
                {
                    c.insert("status".into(), "expired".into());
                    c.insert("expired_seq".into(), seq.into());
                    rows.put("credentials", x.serial.as_str(), Value::Object(c));
                }
            }
            // a key rotation: the old credential is superseded, valid until the grace ends
            Event::KeyRotated(k) => {
                if let Some(Value::Object(mut c)) =
                    rows.get("credentials", k.old_serial.as_str()).await?
                {
                    c.insert("grace_until".into(), k.grace_until.to_string().into());
                    c.insert("superseded_by".into(), k.new_serial.to_string().into());
                    rows.put("credentials", k.old_serial.as_str(), Value::Object(c));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Trust material in force.
#[derive(Debug, Clone, Copy)]
pub struct Trust;

#[async_trait]
impl Projection for Trust {
    fn name(&self) -> &'static str {
        "trust"
    }

    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        let seq = e.stream_seq;
        let with_seq = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.insert("seq".into(), seq.into());
            }
            v
        };
        match &e.event {
            Event::TrustAnchorAdded(a) => rows.put(
                "anchors",
                a.anchor_id.as_str(),
                with_seq(to_value(self.name(), seq, a)?),
            ),
            Event::TrustAnchorRemoved(a) => rows.delete("anchors", a.anchor_id.as_str()),
            Event::AttestationVerifierAdded(v) => rows.put(
                "verifiers",
                v.verifier_id.as_str(),
                with_seq(to_value(self.name(), seq, v)?),
            ),
            Event::AttestationVerifierRemoved(v) => {
                rows.delete("verifiers", v.verifier_id.as_str())
            }
            Event::ProviderAdded(p) => rows.put(
                "providers",
                p.provider_id.as_str(),
                with_seq(to_value(self.name(), seq, p)?),
            ),
            Event::ProviderRemoved(p) => rows.delete("providers", p.provider_id.as_str()),
            Event::IdentityProviderAdded(i) => rows.put(
                "idps",
                i.idp_id.as_str(),
                with_seq(to_value(self.name(), seq, i)?),
            ),
            Event::IdentityProviderRemoved(i) => rows.delete("idps", i.idp_id.as_str()),
            Event::EnvironmentCertificateRevoked(r) => rows.put(
                "revoked_environment",
                &r.fingerprint.to_string(),
                with_seq(to_value(self.name(), seq, r)?),
            ),
            Event::AibomDenyListSet(l) => rows.put(
                "aibom_deny",
                "current",
                with_seq(to_value(self.name(), seq, l)?),
            ),
            _ => return Ok(()),
        }
        // one row readers compare to know whether the material changed since they looked
        rows.put("meta", "version", json!({ "seq": seq }));
        Ok(())
    }
}

/// The latest published version of each policy bundle.
#[derive(Debug, Clone, Copy)]
pub struct Policies;

#[async_trait]
impl Projection for Policies {
    fn name(&self) -> &'static str {
        "policies"
    }

    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        if let Event::PolicyBundlePublished(b) = &e.event {
            let mut v = to_value(self.name(), e.stream_seq, b)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("seq".into(), e.stream_seq.into());
            }
            rows.put("bundles", &b.bundle, v);
        }
        Ok(())
    }
}

/// Federation peers and the keys pinned for them.
#[derive(Debug, Clone, Copy)]
pub struct Peers;

#[async_trait]
impl Projection for Peers {
    fn name(&self) -> &'static str {
        "peers"
    }

    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        match &e.event {
            Event::PeerAdded(p) => {
                let mut v = to_value(self.name(), e.stream_seq, p)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("seq".into(), e.stream_seq.into());
                }
                rows.put("peers", p.peer.as_str(), v);
            }
            Event::PeerRemoved(p) => rows.delete("peers", p.peer.as_str()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
