//! The ACA's operations: provision an agent, issue or renew its credential, revoke. Issuance is
//! [`Authority::issue`], one function to read top to bottom.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_events::catalogue::{
    AgentProvisioned, CheckKind, CheckOutcome, CheckRecord, CredentialRequested, IssuedCredential,
    OwnerBound, RevocationReason,
};
use accord_events::{
    Actor, AgentId, AggregateId, CommandId, CredentialSerial, Metadata, SpiffeId, Timestamp,
    TraceParent, TrustDomain,
};
use accord_policy::inputs::{Attestation, CheckState, IssuanceInput, Subject};
use accord_store::EventStore;
use accord_store::cqrs::{ExecuteError, Executor};
use accord_store::projection::runner::ProjectionHandle;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::agent::{Agent, AgentCommand, AgentError, Grant};
use crate::api::{
    CredentialRequest, CredentialResponse, ProvisionRequest, ProvisionResponse, RevocationResponse,
    capability_set, check_name,
};
use crate::ca::{Ca, to_pem};
use crate::csr::{self, CheckedCsr, CsrError, CsrPolicy};
use crate::jws::{self, TYP_ENROLLMENT, TYP_WIT, VerifyingKey};
use crate::profile::{self, CredentialFacts, ExtensionArc};
use crate::signer::{Signer, SignerExt};
use crate::validate::{self, ValidationError};

/// How an ACA issues.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    pub trust_domain: TrustDomain,
    /// Where the ACA is reached (`https://host:port`): the CRL distribution point, the audience
    /// of enrollment and proof tokens.
    pub public_url: String,
    /// Credential lifetime (the policy may cap it lower).
    pub lifetime: Duration,
    pub csr: CsrPolicy,
    pub enrollment_ttl: Duration,
    pub arc: ExtensionArc,
    /// How long a CRL is valid (`nextUpdate`); it is re-signed at half of that.
    pub crl_validity: Duration,
    /// Name of the issuance policy (`accord.<policy>`).
    pub policy: String,
    /// How long an attestation nonce is accepted.
    pub nonce_ttl: Duration,
    /// After a key rotation, how long the old credential stays valid (never past its expiry).
    pub rotation_grace: Duration,
    /// How often the lifecycle sweep records expiries and ends rotation grace periods.
    pub sweep_every: std::time::Duration,
}

impl AuthorityConfig {
    pub fn new(trust_domain: TrustDomain, public_url: &str) -> Self {
        Self {
            trust_domain,
            public_url: public_url.trim_end_matches('/').to_owned(),
            lifetime: Duration::hours(1),
            csr: CsrPolicy { allow_rsa: false },
            enrollment_ttl: Duration::hours(24),
            arc: ExtensionArc::default(),
            crl_validity: Duration::hours(24),
            policy: "issuance".into(),
            nonce_ttl: Duration::minutes(5),
            rotation_grace: Duration::minutes(5),
            sweep_every: std::time::Duration::from_secs(30),
        }
    }

    pub(crate) fn issuer(&self) -> String {
        format!("spiffe://{}", self.trust_domain)
    }

    pub fn crl_url(&self) -> String {
        format!("{}/v1/crl", self.public_url)
    }

    pub fn credentials_url(&self, agent: &AgentId) -> String {
        format!("{}/v1/agents/{agent}/credentials", self.public_url)
    }
}

/// Why an operation was refused or failed. Each maps to one problem type.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("no such agent")]
    UnknownAgent,
    #[error("not authorised: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Agent(AgentError),
    #[error("the issuance policy denied it: {}", .0.join("; "))]
    Denied(Vec<String>),
    #[error(transparent)]
    Evidence(#[from] crate::checks::EvidenceError),
    #[error(transparent)]
    Trust(crate::trust::TrustError),
    #[error("no such credential")]
    UnknownCredential,
    /// The signed output failed its independent re-validation: nothing was recorded.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    /// The domain is not configured for what was asked (e.g. a JWT-SVID under an EdDSA key).
    #[error("{0}")]
    Unsupported(String),
}

impl From<ExecuteError<AgentError>> for IssueError {
    fn from(e: ExecuteError<AgentError>) -> Self {
        match e {
            ExecuteError::Rejected(AgentError::NotProvisioned) => Self::UnknownAgent,
            ExecuteError::Rejected(a) => Self::Agent(a),
            ExecuteError::Store(s) => Self::Unavailable(s.to_string()),
        }
    }
}

/// What the caller presented to be allowed a credential or a nonce (`grant.rs`).
#[derive(Debug, Clone)]
pub enum Presented {
    /// `Authorization: Bearer <enrollment token>`.
    Enrollment(String),
    /// `Workload-Identity-Token` and `Workload-Proof-Token` headers: a credential's WIT with a
    /// proof by its key (renewal; a nonce for one).
    Workload { wit: String, wpt: String },
}

/// The Agent Credential Authority.
pub struct Authority {
    pub(crate) cfg: AuthorityConfig,
    pub(crate) ca: Ca,
    pub(crate) token_signer: Arc<dyn Signer>,
    pub(crate) token_key: VerifyingKey,
    /// The ACA's own tokens (enrollment tokens, WITs) already verified.
    pub(crate) own_tokens: jws::VerifiedTokens,
    pub(crate) pdp: accord_policy::Pdp,
    pub(crate) exec: Executor<Agent>,
    pub(crate) trust_exec: Executor<crate::trust::Material>,
    pub(crate) credentials: ProjectionHandle,
    pub(crate) trust: ProjectionHandle,
    pub(crate) trust_cache: crate::evidence::material::TrustCache,
    /// Identity chains already checked, per trust material version.
    pub(crate) chains: crate::evidence::initial_trust::ChainCache,
    pub(crate) nonces: crate::evidence::nonce::Nonces,
    pub(crate) crl: tokio::sync::watch::Sender<Option<crate::crl::CrlState>>,
    /// `jti`s of proof tokens already used, until they expire.
    pub(crate) proofs: crate::proofs::SpentProofs,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.cfg.trust_domain)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn meta(actor: Actor, trace: Option<TraceParent>) -> Metadata {
    let mut m = Metadata::new(CommandId::new_random(), actor, Timestamp::now());
    m.traceparent = trace;
    m
}

pub(crate) fn aggregate_id(agent: &AgentId) -> AggregateId {
    AggregateId::parse(&agent.to_string())
        .unwrap_or_else(|_| unreachable!("a UUID is an aggregate id"))
}

impl Authority {
    /// The projections it reads: `credentials` (revocation, renewal) and `trust` (the trust
    /// material evidence is checked against).
    pub async fn new(
        cfg: AuthorityConfig,
        ca: Ca,
        token_signer: Arc<dyn Signer>,
        pdp: accord_policy::Pdp,
        store: EventStore,
        credentials: ProjectionHandle,
        trust: ProjectionHandle,
    ) -> Result<Arc<Self>, IssueError> {
        let nonce_ttl = std::time::Duration::from_secs(cfg.nonce_ttl.whole_seconds().max(1) as u64);
        let nonces = crate::evidence::nonce::Nonces::open(store.jetstream(), nonce_ttl)
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let proofs = crate::proofs::SpentProofs::open(store.jetstream())
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let trust_exec = Executor::<crate::trust::Material>::new(store.clone(), ())
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let exec = Executor::<Agent>::new(store, ())
            .map_err(|e| IssueError::Unavailable(e.to_string()))?
            .with_snapshots(crate::agent::STATE_VERSION);
        let token_key = VerifyingKey::of_signer(&*token_signer);
        Ok(Arc::new(Self {
            cfg,
            ca,
            token_signer,
            own_tokens: jws::VerifiedTokens::new(token_key.clone()),
            token_key,
            pdp,
            exec,
            trust_exec,
            credentials,
            trust,
            trust_cache: Default::default(),
            chains: Default::default(),
            nonces,
            crl: tokio::sync::watch::channel(None).0,
            proofs,
        }))
    }

    pub fn config(&self) -> &AuthorityConfig {
        &self.cfg
    }

    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// The token-signing key as a JWKS (what verifies workload identity tokens).
    pub fn jwks(&self) -> Value {
        let (jwk, _) = self.token_signer.jwk();
        json!({ "keys": [jwk] })
    }

    /// Creates an agent identity and its one-time enrollment token.
    pub async fn provision(
        &self,
        req: ProvisionRequest,
        actor: Actor,
        trace: Option<TraceParent>,
    ) -> Result<ProvisionResponse, IssueError> {
        check_name(&req.name).map_err(IssueError::BadRequest)?;
        let capabilities = capability_set(&req.capabilities).map_err(IssueError::BadRequest)?;
        let agent_id = AgentId::new_v7();
        let spiffe_id = SpiffeId::for_agent(&self.cfg.trust_domain, &agent_id);
        let out = self
            .exec
            .execute(
                &aggregate_id(&agent_id),
                &meta(actor, trace),
                AgentCommand::Provision(AgentProvisioned {
                    agent_id,
                    spiffe_id: spiffe_id.clone(),
                    name: req.name,
                    provider_id: req.provider_id,
                    requested_capabilities: capabilities,
                }),
            )
            .await?;
        let now = now_unix();
        let exp = now + self.cfg.enrollment_ttl.whole_seconds();
        let token = jws::sign(
            &*self.token_signer,
            TYP_ENROLLMENT,
            &json!({
                "iss": self.cfg.issuer(),
                "sub": spiffe_id.as_str(),
                "aud": self.cfg.credentials_url(&agent_id),
                "iat": now,
                "exp": exp,
                "jti": jws::random_jti(),
            }),
        )
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok(ProvisionResponse {
            credentials_url: self.cfg.credentials_url(&agent_id),
            agent_id,
            spiffe_id,
            enrollment_token: token,
            enrollment_expires_at: Timestamp::from_datetime(
                OffsetDateTime::from_unix_timestamp(exp).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ),
            seq: out.version.stream_seq,
        })
    }

    /// Issues (first enrollment) or renews a credential for the key of the request's CSR:
    /// check → ask the issuance policy → build the template → sign → re-validate the signed
    /// output → append → return. Nothing is appended or returned unless every step passed.
    pub async fn issue(
        &self,
        agent_id: &AgentId,
        presented: Presented,
        req: CredentialRequest,
        trace: Option<TraceParent>,
    ) -> Result<CredentialResponse, IssueError> {
        // 1. the request: proof of possession and the CSR profile
        let csr = csr::check(req.csr.as_bytes(), &self.cfg.csr)?;

        // 2. the agent, and what entitles the caller (initial trust): the enrollment token,
        //    or a live credential with a proof by its key. Optimistic, as the executor is: the
        //    writer's cached history decides a grant, since the append below is made against
        //    that history's version and compare-and-set refuses it if anything happened since
        //    (a revocation elsewhere, say; the executor then re-reads and the aggregate refuses);
        //    a refusal is only final on a history just read from the server.
        let store = self.exec.store();
        let id = aggregate_id(agent_id);
        let unavailable = |e: accord_store::StoreError| IssueError::Unavailable(e.to_string());
        let (mut ctx, mut fresh) = store.load_context_cached(&id).await.map_err(unavailable)?;
        let (provisioned, grant, actor, proof) = loop {
            let granted = ctx
                .aggregate
                .provisioned()
                .map_err(|_| IssueError::UnknownAgent)
                .and_then(|p| {
                    let (grant, actor, proof) =
                        self.check_grant(&ctx.aggregate, &p.spiffe_id, &presented, &csr, agent_id)?;
                    Ok((p.clone(), grant, actor, proof))
                });
            match granted {
                Ok(g) => break g,
                Err(_) if !fresh => {
                    ctx = store.load_context(&id).await.map_err(unavailable)?;
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        };
        // a renewal's proof is single use: spent once the grant stands (finding 15)
        if let Some(p) = &proof {
            self.spend_proof(p).await?;
        }

        // 3. the issuance policy (default deny): which checks this domain requires, which
        //    capabilities the credential may carry, how long it may live
        let requested = match &req.capabilities {
            Some(c) => capability_set(c).map_err(IssueError::BadRequest)?,
            None => provisioned.capabilities.clone(),
        };
        if let Some(extra) = requested.difference(&provisioned.capabilities).next() {
            return Err(IssueError::BadRequest(format!(
                "capability {extra:?} was not provisioned for this agent"
            )));
        }
        let lifetime = requested_lifetime(req.lifetime_secs, self.cfg.lifetime)?;
        // 3. the evidence: each part present is checked (a bad one refuses the request), the
        //    policy learns which passed and which are absent
        let trust = self.trust_cache.get();
        let evidence = req.evidence.clone().unwrap_or_default();
        let checked = crate::checks::check(
            &evidence,
            &trust,
            &self.chains,
            &self.nonces,
            &crate::checks::Subject {
                agent_id,
                spiffe_id: &provisioned.spiffe_id,
                name: &provisioned.name,
                provider_id: provisioned.provider_id.as_ref(),
                key_thumbprint: &csr.thumbprint,
                issuer: &self.cfg.issuer(),
                domain_key: &self.token_key,
                now: now_unix(),
            },
        )
        .await
        .map_err(|e| {
            if e.unavailable {
                IssueError::Unavailable(e.detail)
            } else {
                IssueError::Evidence(e)
            }
        })?;
        // a renewal carries over what was checked for the credential it renews, unless new
        // evidence replaces it: never more capabilities, the same AIBOM, the same owner binding
        // (while it lasts)
        let mut checked = checked;
        let owner_bound = match (
            &checked.owner,
            &checked.owner_scope,
            &checked.owner_evidence,
        ) {
            (Some(owner), Some(scope), Some(evidence)) => Some(OwnerBound {
                owner: owner.clone(),
                scope: scope.clone(),
                evidence: evidence.clone(),
                expires_at: checked.owner_expires_at.and_then(|t| {
                    OffsetDateTime::from_unix_timestamp(t)
                        .ok()
                        .map(Timestamp::from_datetime)
                }),
            }),
            _ => None,
        };
        let renewing = match &grant {
            Grant::Renewal { previous, .. } => ctx.aggregate.credentials.get(previous).cloned(),
            Grant::Enrollment => None,
        };
        if let Some(prev) = &renewing {
            if checked.endorsed.is_none() {
                checked.endorsed = Some(prev.capabilities.clone());
            }
            if checked.aibom_digest.is_none() {
                checked.aibom_digest = prev.aibom_digest.clone();
            }
            if checked.owner.is_none()
                && let Some(b) = &ctx.aggregate.owner
            {
                let exp = b.expires_at.map(|t| t.datetime().unix_timestamp());
                if exp.is_some_and(|e| e <= now_unix() + 60) {
                    return Err(IssueError::Evidence(crate::checks::EvidenceError {
                        check: CheckKind::OwnerBinding,
                        kind: "owner-expired",
                        detail:
                            "the owner binding has ended: renew with a new ID token or role grant"
                                .into(),
                        unavailable: false,
                    }));
                }
                checked.owner = Some(b.owner.clone());
                checked.owner_scope = Some(b.scope.clone());
                checked.owner_expires_at = exp;
            }
        }
        // a credential never outlives the owner binding it acts under
        let lifetime = match checked.owner_expires_at {
            Some(exp) => {
                let left = Duration::seconds(exp - now_unix());
                if left < Duration::seconds(60) {
                    return Err(IssueError::Evidence(crate::checks::EvidenceError {
                        check: CheckKind::OwnerBinding,
                        kind: "owner-expired",
                        detail: "the owner binding ends within a minute".into(),
                        unavailable: false,
                    }));
                }
                lifetime.min(left)
            }
            None => lifetime,
        };
        let mut checks = checked.states.clone();
        checks.insert("proof_of_possession".to_owned(), CheckState::Passed);
        let input = IssuanceInput {
            checks,
            requested_capabilities: requested.iter().cloned().collect(),
            endorsed_capabilities: checked
                .endorsed
                .as_ref()
                .map(|e| e.iter().cloned().collect()),
            owner_scope: checked
                .owner_scope
                .as_ref()
                .map(|e| e.iter().cloned().collect()),
            attestation: checked.attestation.as_ref().map(|_| Attestation {
                trust_vector: checked.trust_vector.clone(),
            }),
            // at least 60 s here (checked above, and capped by the owner binding's end)
            lifetime_secs: lifetime.whole_seconds().unsigned_abs(),
            renewal: renewing.is_some(),
            subject: Some(Subject {
                id: provisioned.spiffe_id.to_string(),
                kind: Some("agent".into()),
                ..Subject::default()
            }),
        };
        let input =
            serde_json::to_value(&input).map_err(|e| IssueError::BadRequest(e.to_string()))?;
        let decision = self
            .pdp
            .decide(&self.cfg.policy, &input)
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let Some(_allow) = decision.allowed() else {
            return Err(IssueError::Denied(decision.reasons().to_vec()));
        };
        // never more than was asked for, whatever the policy answers
        let granted: BTreeSet<String> = decision
            .result()
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        // never more than was asked for, endorsed and in the owner's scope, whatever the
        // policy answers
        let capabilities: BTreeSet<String> = granted
            .intersection(&requested)
            .filter(|c| checked.endorsed.as_ref().is_none_or(|e| e.contains(*c)))
            .filter(|c| checked.owner_scope.as_ref().is_none_or(|o| o.contains(*c)))
            .cloned()
            .collect();

        // 4. the template
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let facts = CredentialFacts {
            agent_id: *agent_id,
            spiffe_id: provisioned.spiffe_id.clone(),
            serial: profile::random_serial(),
            not_before: Timestamp::from_datetime(now - Duration::seconds(profile::BACKDATE_SECS)),
            not_after: Timestamp::from_datetime(now + lifetime),
            capabilities,
            owner: checked.owner.clone(),
            aibom_digest: checked.aibom_digest.clone(),
            attestation: checked.attestation.clone(),
        };
        let crl_url = self.cfg.crl_url();
        let params = profile::certificate_params(&facts, &self.cfg.arc, Some(&crl_url))
            .map_err(|e| IssueError::Signing(e.to_string()))?;

        // 5. sign, through the CA's signer, and 6. re-validate what was signed, independently
        //    of what built it; on a blocking thread, since an HSM answers at its own pace
        let (cert_der, wit_jti, wit) = {
            let (ca, token_signer, facts, csr, arc) = (
                self.ca.clone(),
                self.token_signer.clone(),
                facts.clone(),
                csr.clone(),
                self.cfg.arc.clone(),
            );
            let issuer_name = self.cfg.issuer();
            tokio::task::spawn_blocking(move || -> Result<_, IssueError> {
                let subject_key = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)
                    .map_err(|e| IssueError::Signing(e.to_string()))?;
                let issuer = ca
                    .issuer()
                    .map_err(|e| IssueError::Signing(e.to_string()))?;
                let cert = params
                    .signed_by(&subject_key, &issuer)
                    .map_err(|e| IssueError::Signing(e.to_string()))?;
                let cert_der = cert.der().to_vec();
                validate::issued_certificate(
                    &cert_der,
                    &ca,
                    &facts,
                    &csr.spki_der,
                    &arc,
                    Some(&crl_url),
                )?;
                // the workload identity token: the same facts, bound to the same key
                let wit_jti = jws::random_jti();
                let wit = sign_wit(&*token_signer, &issuer_name, &facts, &csr, &wit_jti)?;
                Ok((cert_der, wit_jti, wit))
            })
            .await
            .map_err(|e| IssueError::Signing(e.to_string()))??
        };

        // 7. append what was checked and issued
        let policy = decision.policy_ref();
        let record = |check, evidence| CheckRecord {
            check,
            outcome: CheckOutcome::Passed,
            evidence,
            against: None,
        };
        let mut check_records = vec![
            record(CheckKind::ProofOfPossession, Some(csr.digest.clone())),
            record(CheckKind::CsrProfile, Some(csr.digest.clone())),
        ];
        check_records.extend(checked.records.iter().cloned());
        check_records.extend([
            record(CheckKind::IssuancePolicy, None),
            record(
                CheckKind::OutputRevalidation,
                Some(accord_events::Digest::sha256(&cert_der)),
            ),
        ]);
        let renewal = matches!(grant, Grant::Renewal { .. });
        let out = self
            .exec
            .execute(
                &aggregate_id(agent_id),
                &meta(actor, trace),
                AgentCommand::RecordCredential {
                    grant,
                    requested: CredentialRequested {
                        csr_digest: csr.digest.clone(),
                        key_thumbprint: csr.thumbprint.clone(),
                        key_algorithm: csr.algorithm,
                        requested_capabilities: requested,
                    },
                    credential: Box::new(IssuedCredential {
                        serial: facts.serial.clone(),
                        spiffe_id: facts.spiffe_id.clone(),
                        key_thumbprint: csr.thumbprint.clone(),
                        key_algorithm: csr.algorithm,
                        not_before: facts.not_before,
                        not_after: facts.not_after,
                        capabilities: facts.capabilities.clone(),
                        owner: facts.owner.clone(),
                        aibom_digest: facts.aibom_digest.clone(),
                        attestation: facts.attestation.clone(),
                        certificate_der: STANDARD.encode(&cert_der),
                        wit_jti: Some(wit_jti),
                        issuer_key: self.ca.kid().clone(),
                    }),
                    checks: check_records,
                    policy,
                    owner_bound: owner_bound.map(Box::new),
                },
            )
            .await?;

        // 8. return
        Ok(CredentialResponse {
            agent_id: *agent_id,
            spiffe_id: facts.spiffe_id,
            serial: facts.serial,
            certificate: to_pem("CERTIFICATE", &[cert_der]),
            chain: self.ca.chain_pem(),
            wit,
            not_before: facts.not_before,
            not_after: facts.not_after,
            capabilities: facts.capabilities.into_iter().collect(),
            kind: if renewal { "renewed" } else { "issued" }.into(),
            seq: out.version.stream_seq,
            owner: facts.owner,
            aibom_digest: facts.aibom_digest,
        })
    }

    /// Revokes all live credentials of an agent, or one credential by serial.
    pub async fn revoke(
        &self,
        target: &str,
        reason: RevocationReason,
        actor: Actor,
        trace: Option<TraceParent>,
    ) -> Result<RevocationResponse, IssueError> {
        let (agent_id, serials) = if let Ok(a) = AgentId::parse(target) {
            (a, Vec::new())
        } else if let Ok(serial) = CredentialSerial::parse(target) {
            let row = self
                .credentials
                .store()
                .get("credentials", "credentials", serial.as_str())
                .await
                .map_err(|e| IssueError::Unavailable(e.to_string()))?
                .ok_or(IssueError::UnknownCredential)?;
            let agent = row
                .get("agent_id")
                .and_then(Value::as_str)
                .and_then(|s| AgentId::parse(s).ok())
                .ok_or(IssueError::UnknownCredential)?;
            (agent, vec![serial])
        } else {
            return Err(IssueError::BadRequest(format!(
                "{target:?} is neither an agent id nor a credential serial"
            )));
        };
        let out = self
            .exec
            .execute(
                &aggregate_id(&agent_id),
                &meta(actor, trace),
                AgentCommand::Revoke {
                    serials,
                    reason,
                    at: Timestamp::now(),
                },
            )
            .await?;
        Ok(RevocationResponse {
            agent_id,
            serials: revoked_serials(&out),
            seq: out.version.stream_seq,
        })
    }
}

/// The credential lifetime a request asks for (the domain's when it asks none): whole seconds
/// in 60 ..= `max`. Converted without a cast: a `u64` beyond `i64` is out of range, never a
/// negative lifetime that passes the bound (review 2026-12, finding 16).
pub(crate) fn requested_lifetime(
    asked: Option<u64>,
    max: Duration,
) -> Result<Duration, IssueError> {
    let Some(s) = asked else { return Ok(max) };
    match i64::try_from(s) {
        Ok(secs) if (60..=max.whole_seconds()).contains(&secs) => Ok(Duration::seconds(secs)),
        _ => Err(IssueError::BadRequest(format!(
            "lifetime_secs {s} outside 60..={}",
            max.whole_seconds()
        ))),
    }
}

/// The serials a command's `CredentialRevoked` took (none when it revoked nothing).
pub(crate) fn revoked_serials(out: &accord_store::cqrs::Executed) -> Vec<CredentialSerial> {
    out.events
        .iter()
        .find_map(|e| match &e.event {
            accord_events::Event::CredentialRevoked(r) => Some(r.serials.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The workload identity token of a credential: the certificate's facts, `cnf.jwk` the agent's
/// key (with its `alg`, as WIMSE requires).
fn sign_wit(
    signer: &dyn Signer,
    issuer: &str,
    f: &CredentialFacts,
    csr: &CheckedCsr,
    jti: &str,
) -> Result<String, IssueError> {
    let mut cnf = serde_json::to_value(&csr.jwk).map_err(|e| IssueError::Signing(e.to_string()))?;
    let alg = match csr.algorithm {
        accord_events::catalogue::KeyAlgorithm::Ed25519 => "EdDSA",
        accord_events::catalogue::KeyAlgorithm::EcdsaP256 => "ES256",
        _ => "RS256",
    };
    if let Some(o) = cnf.as_object_mut() {
        o.insert("alg".into(), alg.into());
    }
    jws::sign(
        signer,
        TYP_WIT,
        &json!({
            "iss": issuer,
            "sub": f.spiffe_id.as_str(),
            "iat": f.not_before.datetime().unix_timestamp() + profile::BACKDATE_SECS,
            "nbf": f.not_before.datetime().unix_timestamp(),
            "exp": f.not_after.datetime().unix_timestamp(),
            "jti": jti,
            "cnf": { "jwk": cnf },
            "agent_id": f.agent_id.to_string(),
            "x5t_serial": f.serial.as_str(),
            "capabilities": f.capabilities,
        }),
    )
    .map_err(|e| IssueError::Signing(e.to_string()))
}

#[cfg(test)]
#[path = "issue/tests.rs"]
mod tests;
