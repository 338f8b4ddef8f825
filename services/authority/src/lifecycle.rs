//! What the ACA does besides issuing: role grants, trust material, the events that end an
//! agent's credentials (compromise, decommissioning, owner unbound), and the sweep that
//! records expiries and ends key-rotation grace periods. (Nonces: `grant.rs`.)

use std::sync::Arc;
use std::time::Duration as StdDuration;

use accord_events::catalogue::{AgentDecommissioned, CompromiseReported, RevocationReason};
use accord_events::{
    Actor, AgentId, AggregateId, CommandId, CredentialSerial, EventId, Metadata, SpiffeId,
    Timestamp, TraceParent,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::agent::{AgentCommand, LifecycleFact};
use crate::api::{
    LifecycleRequest, LifecycleResponse, RoleGrantRequest, RoleGrantResponse, capability_set,
    check_name,
};
use crate::evidence::owner::TYP_ROLE_GRANT;
use crate::issue::{Authority, IssueError};
use crate::jws;
use crate::trust::{TrustCommand, TrustError};

/// Longest role grant, seconds (30 days).
pub const MAX_ROLE_GRANT_SECS: u64 = 30 * 24 * 3600;
/// Longest lifecycle reason or details, bytes.
pub const MAX_REASON: usize = 1024;
/// How long a trust command waits for the `trust` projection to show it.
const TRUST_VISIBLE_WITHIN: StdDuration = StdDuration::from_secs(10);

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn aggregate_id(s: &str) -> Result<AggregateId, IssueError> {
    AggregateId::parse(s).map_err(|e| IssueError::BadRequest(e.to_string()))
}

fn reason(s: &str) -> Result<(), IssueError> {
    if s.is_empty() || s.len() > MAX_REASON || s.chars().any(char::is_control) {
        return Err(IssueError::BadRequest(format!(
            "reason: 1 to {MAX_REASON} bytes, no control characters"
        )));
    }
    Ok(())
}

/// What a trust command left in the log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrustResponse {
    pub material_id: String,
    pub event: String,
    pub seq: u64,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: Vec<CredentialSerial>,
    pub superseded: Vec<CredentialSerial>,
}

impl Authority {
    fn spiffe_of(&self, agent: &AgentId) -> SpiffeId {
        SpiffeId::for_agent(&self.cfg.trust_domain, agent)
    }

    /// A role grant for `agent`, signed with the domain's token key (an owner binding for
    /// agents that act for a role rather than a person).
    pub fn role_grant(
        &self,
        agent: &AgentId,
        req: &RoleGrantRequest,
    ) -> Result<RoleGrantResponse, IssueError> {
        check_name(&req.role).map_err(|e| IssueError::BadRequest(format!("role: {e}")))?;
        let scope = capability_set(&req.scope).map_err(IssueError::BadRequest)?;
        if req.lifetime_secs < 60 || req.lifetime_secs > MAX_ROLE_GRANT_SECS {
            return Err(IssueError::BadRequest(format!(
                "lifetime_secs {} outside 60..={MAX_ROLE_GRANT_SECS}",
                req.lifetime_secs
            )));
        }
        let now = now_unix();
        let exp = now + req.lifetime_secs as i64;
        let scope: Vec<String> = scope.into_iter().collect();
        let token = jws::sign(
            &*self.token_signer,
            TYP_ROLE_GRANT,
            &json!({
                "iss": format!("spiffe://{}", self.cfg.trust_domain),
                "sub": req.role,
                "aud": self.spiffe_of(agent).as_str(),
                "scope": scope.join(" "),
                "iat": now,
                "exp": exp,
                "jti": jws::random_jti(),
            }),
        )
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok(RoleGrantResponse {
            role_grant: token,
            expires_at: exp,
        })
    }

    /// Records a compromise report, a decommissioning or the end of the owner binding, and in
    /// the same atomic batch the revocation of every live credential of the agent.
    pub async fn lifecycle(
        &self,
        agent: &AgentId,
        req: LifecycleRequest,
        actor: Actor,
        trace: Option<TraceParent>,
    ) -> Result<LifecycleResponse, IssueError> {
        let fact = match req {
            LifecycleRequest::CompromiseReported { details } => {
                reason(&details)?;
                LifecycleFact::Compromise(CompromiseReported {
                    reported_by: actor.subject.clone(),
                    details,
                })
            }
            LifecycleRequest::Decommissioned { reason: r } => {
                reason(&r)?;
                LifecycleFact::Decommission(AgentDecommissioned { reason: r })
            }
            LifecycleRequest::OwnerUnbound { reason: r } => {
                reason(&r)?;
                LifecycleFact::OwnerUnbound { reason: r }
            }
        };
        let mut meta = Metadata::new(CommandId::new_random(), actor, Timestamp::now());
        meta.traceparent = trace;
        let trigger = EventId::derive(&meta.command_id, 0);
        let out = self
            .exec
            .execute(
                &aggregate_id(&agent.to_string())?,
                &meta,
                AgentCommand::Lifecycle {
                    fact,
                    trigger,
                    at: Timestamp::now(),
                },
            )
            .await?;
        Ok(LifecycleResponse {
            agent_id: *agent,
            revoked: crate::issue::revoked_serials(&out),
            seq: out.version.stream_seq,
        })
    }

    /// Checks trust material's contents, appends it, and waits until the `trust` projection
    /// shows it (so the next request is checked against it).
    pub async fn trust_command(
        &self,
        cmd: TrustCommand,
        actor: Actor,
        trace: Option<TraceParent>,
    ) -> Result<TrustResponse, IssueError> {
        use crate::trust::validate;
        let bad = |e: String| IssueError::BadRequest(e);
        let id = match &cmd {
            TrustCommand::AddAnchor(a) => {
                validate::anchor(a).map_err(bad)?;
                a.anchor_id.to_string()
            }
            TrustCommand::RemoveAnchor(a) => a.anchor_id.to_string(),
            TrustCommand::RevokeEnvironmentCertificate(r) => {
                reason(&r.reason)?;
                r.anchor_id.to_string()
            }
            TrustCommand::AddVerifier(v) => {
                validate::verifier(v).map_err(bad)?;
                v.verifier_id.to_string()
            }
            TrustCommand::RemoveVerifier(v) => v.verifier_id.to_string(),
            TrustCommand::AddProvider(p) => {
                validate::provider(p).map_err(bad)?;
                p.provider_id.to_string()
            }
            TrustCommand::RemoveProvider(p) => p.provider_id.to_string(),
            TrustCommand::AddIdentityProvider(i) => {
                validate::identity_provider(i).map_err(bad)?;
                i.idp_id.to_string()
            }
            TrustCommand::RemoveIdentityProvider(i) => i.idp_id.to_string(),
            TrustCommand::SetDenyList(l) => {
                validate::deny_list(l).map_err(bad)?;
                crate::trust::DENY_LIST_ID.to_owned()
            }
        };
        match &cmd {
            TrustCommand::RemoveAnchor(accord_events::catalogue::TrustAnchorRemoved {
                reason: r,
                ..
            })
            | TrustCommand::RemoveVerifier(
                accord_events::catalogue::AttestationVerifierRemoved { reason: r, .. },
            )
            | TrustCommand::RemoveProvider(accord_events::catalogue::ProviderRemoved {
                reason: r,
                ..
            })
            | TrustCommand::RemoveIdentityProvider(
                accord_events::catalogue::IdentityProviderRemoved { reason: r, .. },
            ) => reason(r)?,
            _ => {}
        }
        let mut meta = Metadata::new(CommandId::new_random(), actor, Timestamp::now());
        meta.traceparent = trace;
        let out = self
            .trust_exec
            .execute(&aggregate_id(&id)?, &meta, cmd)
            .await
            .map_err(|e| match e {
                accord_store::cqrs::ExecuteError::Rejected(r) => IssueError::Trust(r),
                accord_store::cqrs::ExecuteError::Store(s) => {
                    IssueError::Unavailable(s.to_string())
                }
            })?;
        let seq = out.version.stream_seq;
        self.trust
            .wait_for(seq, TRUST_VISIBLE_WITHIN)
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        self.trust_cache
            .refresh(&**self.trust.store())
            .await
            .map_err(IssueError::Unavailable)?;
        Ok(TrustResponse {
            material_id: id,
            event: out
                .events
                .first()
                .map(|e| e.event.event_type().to_owned())
                .unwrap_or_default(),
            seq,
        })
    }

    /// Turns an API request into a trust command (PEM decoded, fingerprints computed).
    pub fn trust_request(req: crate::api::TrustRequest) -> Result<TrustCommand, IssueError> {
        use crate::api::TrustRequest as R;
        use accord_events::catalogue::{
            AnchorPurpose, EnvironmentCertificateRevoked, TrustAnchorAdded,
        };
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        Ok(match req {
            R::AddAnchor {
                anchor_id,
                certificates_pem,
            } => {
                let ders = crate::ca::pem_certificates(&certificates_pem)
                    .map_err(|e| IssueError::BadRequest(format!("certificates_pem: {e}")))?;
                TrustCommand::AddAnchor(TrustAnchorAdded {
                    anchor_id,
                    purpose: AnchorPurpose::ManufacturerCa,
                    fingerprints: ders
                        .iter()
                        .map(|d| accord_events::Digest::sha256(d))
                        .collect(),
                    certificates_der: ders.iter().map(|d| b64(d)).collect(),
                })
            }
            R::RemoveAnchor(a) => TrustCommand::RemoveAnchor(a),
            R::RevokeEnvironmentCertificate {
                anchor_id,
                certificate_pem,
                fingerprint,
                reason,
            } => {
                let fingerprint = match (certificate_pem, fingerprint) {
                    (Some(pem), None) => {
                        let ders = crate::ca::pem_certificates(&pem)
                            .map_err(|e| IssueError::BadRequest(format!("certificate_pem: {e}")))?;
                        match ders.as_slice() {
                            [one] => accord_events::Digest::sha256(one),
                            _ => {
                                return Err(IssueError::BadRequest(
                                    "certificate_pem: exactly one certificate".into(),
                                ));
                            }
                        }
                    }
                    (None, Some(f)) => f,
                    _ => {
                        return Err(IssueError::BadRequest(
                            "name the certificate by certificate_pem or by fingerprint".into(),
                        ));
                    }
                };
                TrustCommand::RevokeEnvironmentCertificate(EnvironmentCertificateRevoked {
                    anchor_id,
                    fingerprint,
                    reason,
                })
            }
            R::AddVerifier(v) => TrustCommand::AddVerifier(v),
            R::RemoveVerifier(v) => TrustCommand::RemoveVerifier(v),
            R::AddProvider(p) => TrustCommand::AddProvider(p),
            R::RemoveProvider(p) => TrustCommand::RemoveProvider(p),
            R::AddIdentityProvider(i) => TrustCommand::AddIdentityProvider(i),
            R::RemoveIdentityProvider(i) => TrustCommand::RemoveIdentityProvider(i),
            R::SetAibomDenyList(l) => TrustCommand::SetDenyList(l),
        })
    }

    /// The trust material in force (for `accord trust list`).
    pub async fn trust_material(&self) -> Result<Value, IssueError> {
        let store = self.trust.store();
        let mut out = serde_json::Map::new();
        for t in [
            "anchors",
            "revoked_environment",
            "verifiers",
            "providers",
            "idps",
            "aibom_deny",
        ] {
            let rows = store
                .scan("trust", t)
                .await
                .map_err(|e| IssueError::Unavailable(e.to_string()))?;
            out.insert(t.to_owned(), Value::Object(rows.into_iter().collect()));
        }
        out.insert("applied_seq".into(), self.trust.progress().applied.into());
        Ok(Value::Object(out))
    }

    /// One pass of the lifecycle sweep: records `CredentialExpired` for every valid credential
    /// past its `not_after`, and revokes (superseded) the old credential of a key rotation
    /// whose grace period ended.
    pub async fn sweep_once(&self) -> Result<SweepReport, IssueError> {
        let now = Timestamp::now();
        let rows = self
            .credentials
            .store()
            .scan("credentials", "credentials")
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let mut report = SweepReport::default();
        for (serial, row) in rows {
            if row.get("status").and_then(Value::as_str) != Some("valid") {
                continue;
            }
            let at = |f: &str| {
                row.get(f)
                    .and_then(Value::as_str)
                    .and_then(|t| Timestamp::parse(t).ok())
            };
            let (Some(agent), Ok(serial)) = (
                row.get("agent_id")
                    .and_then(Value::as_str)
                    .and_then(|a| AgentId::parse(a).ok()),
                CredentialSerial::parse(&serial),
            ) else {
                continue;
            };
            let id = aggregate_id(&agent.to_string())?;
            let meta = Metadata::new(
                CommandId::new_random(),
                Actor::system("authority-sweep"),
                Timestamp::now(),
            );
            let command = if at("not_after").is_some_and(|t| t <= now) {
                report.expired.push(serial.clone());
                AgentCommand::Expire { serial, at: now }
            } else if at("grace_until").is_some_and(|t| t <= now) {
                report.superseded.push(serial.clone());
                AgentCommand::Revoke {
                    serials: vec![serial],
                    reason: RevocationReason::Superseded,
                    at: now,
                }
            } else {
                continue;
            };
            match self.exec.execute(&id, &meta, command).await {
                Ok(_) => {}
                // another replica or a revocation got there first: nothing to record
                Err(accord_store::cqrs::ExecuteError::Rejected(_)) => {}
                Err(accord_store::cqrs::ExecuteError::Store(e)) => {
                    return Err(IssueError::Unavailable(e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// Keeps the trust material the issuance path reads current: refreshes it whenever the
    /// `trust` projection moves (at most every 20 ms), until `stop`.
    pub async fn follow_trust(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut progress = self.trust.watch();
        loop {
            if let Err(e) = self.trust_cache.refresh(&**self.trust.store()).await {
                tracing::warn!(error = %e, "reading the trust material");
            }
            tokio::select! {
                r = progress.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    /// Runs the sweep every `sweep_every` until `stop`.
    pub async fn run_sweep(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.cfg.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.sweep_once().await {
                Ok(r) if !r.expired.is_empty() || !r.superseded.is_empty() => {
                    tracing::info!(
                        expired = r.expired.len(),
                        superseded = r.superseded.len(),
                        "lifecycle sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lifecycle sweep failed"),
            }
        }
    }
}

impl From<TrustError> for IssueError {
    fn from(e: TrustError) -> Self {
        IssueError::Trust(e)
    }
}
