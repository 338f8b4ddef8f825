//! What entitles a caller to ask the ACA for something on an agent's behalf (ADR 0009,
//! "Enrollment and renewal"): the enrollment token of the agent's provisioning, while the agent
//! is not enrolled; or the workload identity token (WIT) of a live credential of the agent,
//! with a fresh proof by its key: a `wpt+jwt` signed by the WIT's `cnf` key, for one URL
//! (`aud`), bound to the WIT (`wth`), living at most 5 minutes, its `jti` accepted once. A WIT
//! alone is never enough: it is public (relying parties see it) and its signature outlives a
//! revocation. The same two grants serve a credential (`POST .../credentials`) and a nonce
//! (`POST .../attestation-nonce`; review 2026-12, finding 12).

use accord_events::{
    Actor, AgentId, AggregateId, AuthMethod, CallerType, CredentialSerial, SpiffeId, Timestamp,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::agent::{Agent, AgentError, Grant};
use crate::api::NonceResponse;
use crate::csr::CheckedCsr;
use crate::evidence::nonce::Purpose;
use crate::issue::{Authority, IssueError, Presented};
use crate::jws::{self, TYP_ENROLLMENT, TYP_WIT, TYP_WPT, VerifyingKey};

/// Longest a proof token may live, seconds.
pub const MAX_PROOF_SECS: i64 = 300;

/// A WIT of this ACA with a verified proof by its key.
#[derive(Debug)]
pub(crate) struct WorkloadProof {
    /// The credential the WIT was issued with.
    pub serial: CredentialSerial,
    /// The WIT's own `jti` (the credential records it).
    pub wit_jti: Option<String>,
    /// The proof's claims (what binds it to its request, e.g. `csr`).
    pub claims: Map<String, Value>,
    purpose: crate::proofs::Purpose,
    jti: String,
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn unauthorized(m: impl Into<String>) -> IssueError {
    IssueError::Unauthorized(m.into())
}

impl Authority {
    /// The URL a nonce of `purpose` is asked at (the `aud` of its proof token).
    pub fn nonce_url(&self, agent: &AgentId, purpose: Purpose) -> String {
        format!(
            "{}/v1/agents/{agent}/{}",
            self.cfg.public_url,
            purpose.path()
        )
    }

    /// Checks an enrollment token of this ACA for the agent `spiffe_id` names.
    fn check_enrollment_token(
        &self,
        token: &str,
        spiffe_id: &SpiffeId,
        agent_id: &AgentId,
        now: i64,
    ) -> Result<(), IssueError> {
        let v = self
            .own_tokens
            .verify(token, TYP_ENROLLMENT, now)
            .map_err(|e| unauthorized(format!("enrollment token: {e}")))?;
        let claim = |n: &str| v.claims.get(n).and_then(Value::as_str);
        if claim("sub") != Some(spiffe_id.as_str())
            || claim("aud") != Some(self.cfg.credentials_url(agent_id).as_str())
            || claim("iss") != Some(self.cfg.issuer().as_str())
        {
            return Err(unauthorized("enrollment token is for another agent"));
        }
        Ok(())
    }

    /// Verifies a WIT of this ACA for `spiffe_id` and a proof by its `cnf` key for `audience`.
    /// The proof's `jti` must not have been accepted before; it is not remembered here
    /// ([`Authority::spend_proof`] does, once the request is granted), so a retry on a fresher
    /// history is not taken for a replay.
    pub(crate) fn verify_workload(
        &self,
        wit: &str,
        wpt: &str,
        spiffe_id: &SpiffeId,
        audience: &str,
        purpose: crate::proofs::Purpose,
        now: i64,
    ) -> Result<WorkloadProof, IssueError> {
        let w = self
            .own_tokens
            .verify(wit, TYP_WIT, now)
            .map_err(|e| unauthorized(format!("workload identity token: {e}")))?;
        let ws = |n: &str| w.claims.get(n).and_then(Value::as_str);
        if ws("sub") != Some(spiffe_id.as_str()) || ws("iss") != Some(self.cfg.issuer().as_str()) {
            return Err(unauthorized("workload identity token is for another agent"));
        }
        let serial = ws("x5t_serial")
            .and_then(|s| CredentialSerial::parse(s).ok())
            .ok_or_else(|| unauthorized("workload identity token names no credential"))?;
        let jwk: accord_events::common::PublicJwk = w
            .claims
            .get("cnf")
            .and_then(|c| c.get("jwk"))
            .cloned()
            .and_then(|j| serde_json::from_value(j).ok())
            .ok_or_else(|| unauthorized("workload identity token has no cnf.jwk"))?;
        let cnf_key = VerifyingKey::from_jwk(&jwk).map_err(|e| unauthorized(e.to_string()))?;
        let p = jws::verify(wpt, TYP_WPT, &cnf_key, now)
            .map_err(|e| unauthorized(format!("workload proof token: {e}")))?;
        let claim = |n: &str| p.claims.get(n).and_then(Value::as_str);
        if claim("aud") != Some(audience) {
            return Err(unauthorized("workload proof token is for another audience"));
        }
        if claim("wth") != Some(jws::hash_b64(wit.as_bytes()).as_str()) {
            return Err(unauthorized(
                "workload proof token is not bound to this identity token (wth)",
            ));
        }
        let exp = p.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp > now + MAX_PROOF_SECS {
            return Err(unauthorized(
                "workload proof token lives longer than 5 minutes",
            ));
        }
        let jti = claim("jti")
            .filter(|j| (16..=128).contains(&j.len()))
            .ok_or_else(|| unauthorized("workload proof token has no jti"))?
            .to_owned();
        // a replay this process saw is refused before anything else is read; the durable
        // decision is the spend (`spend_proof`), once the request is granted
        if self.proofs.spent_here(purpose, &jti) {
            return Err(unauthorized("workload proof token replayed"));
        }
        Ok(WorkloadProof {
            purpose,
            serial,
            wit_jti: ws("jti").map(str::to_owned),
            claims: p.claims,
            jti,
        })
    }

    /// Spends a granted proof's `jti` (in the ACA's bucket of spent proofs, across restarts and
    /// replicas): of two requests with one proof, exactly one gets past here.
    pub(crate) async fn spend_proof(&self, p: &WorkloadProof) -> Result<(), IssueError> {
        self.proofs
            .spend(p.purpose, &p.jti)
            .await
            .map_err(|e| match e {
                crate::proofs::SpendError::Replayed => {
                    unauthorized("workload proof token replayed")
                }
                e => IssueError::Unavailable(e.to_string()),
            })
    }

    /// Checks what entitles the caller to a credential for `spiffe_id`: authentication first
    /// (the token, the proof), then what the agent's history allows.
    pub(crate) fn check_grant(
        &self,
        agent: &Agent,
        spiffe_id: &SpiffeId,
        presented: &Presented,
        csr: &CheckedCsr,
        agent_id: &AgentId,
    ) -> Result<(Grant, Actor, Option<WorkloadProof>), IssueError> {
        let now = now_unix();
        let actor = |method| Actor {
            subject: spiffe_id.to_string(),
            caller_type: CallerType::Agent,
            auth_methods: vec![method],
        };
        match presented {
            Presented::Enrollment(token) => {
                self.check_enrollment_token(token, spiffe_id, agent_id, now)?;
                if agent.enrolled {
                    return Err(IssueError::Agent(AgentError::AlreadyEnrolled));
                }
                Ok((Grant::Enrollment, actor(AuthMethod::PreSharedSecret), None))
            }
            Presented::Workload { wit, wpt } => {
                let audience = self.cfg.credentials_url(agent_id);
                let p = self.verify_workload(
                    wit,
                    wpt,
                    spiffe_id,
                    &audience,
                    crate::proofs::Purpose::Renewal,
                    now,
                )?;
                // a proof for this request only: the new key is vouched for by the old one
                if p.claims.get("csr").and_then(Value::as_str)
                    != Some(jws::hash_b64(&csr.der).as_str())
                {
                    return Err(unauthorized(
                        "workload proof token is not bound to this request (csr)",
                    ));
                }
                // authenticated: now whether that credential may be renewed (once, while live)
                self.check_credential(agent, &p)?;
                Ok((
                    Grant::Renewal {
                        previous: p.serial.clone(),
                        rotation_grace: self.cfg.rotation_grace,
                    },
                    actor(AuthMethod::JwtAssertion),
                    // the caller spends it once the grant stands
                    Some(p),
                ))
            }
        }
    }

    /// The WIT's credential is the agent's, renewable (live, never renewed), and the one the
    /// WIT was issued with.
    fn check_credential(&self, agent: &Agent, p: &WorkloadProof) -> Result<(), IssueError> {
        let held = agent
            .check_renewable(&p.serial, Timestamp::now())
            .map_err(IssueError::Agent)?;
        if held.wit_jti != p.wit_jti {
            return Err(unauthorized(
                "workload identity token is not the one issued with that credential",
            ));
        }
        Ok(())
    }

    /// A single-use nonce of `purpose` for `agent`: for the holder of its enrollment token
    /// (until it enrolled), or of a WIT of a renewable credential with a proof for this URL.
    pub async fn nonce(
        &self,
        agent_id: &AgentId,
        presented: &Presented,
        purpose: Purpose,
    ) -> Result<NonceResponse, IssueError> {
        let now = now_unix();
        let spiffe_id = SpiffeId::for_agent(&self.cfg.trust_domain, agent_id);
        // 1. who asks, before anything is read
        let proof = match presented {
            Presented::Enrollment(token) => {
                self.check_enrollment_token(token, &spiffe_id, agent_id, now)?;
                None
            }
            Presented::Workload { wit, wpt } => {
                let audience = self.nonce_url(agent_id, purpose);
                Some(self.verify_workload(
                    wit,
                    wpt,
                    &spiffe_id,
                    &audience,
                    crate::proofs::Purpose::Nonce,
                    now,
                )?)
            }
        };
        // 2. what the agent's history allows (a refusal is final on a history just read)
        let store = self.exec.store();
        let id = AggregateId::parse(&agent_id.to_string())
            .map_err(|e| IssueError::BadRequest(e.to_string()))?;
        let unavailable = |e: accord_store::StoreError| IssueError::Unavailable(e.to_string());
        let (mut ctx, mut fresh) = store.load_context_cached(&id).await.map_err(unavailable)?;
        loop {
            match self.nonce_allowed(&ctx.aggregate, proof.as_ref()) {
                Ok(()) => break,
                Err(_) if !fresh => {
                    ctx = store.load_context(&id).await.map_err(unavailable)?;
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(p) = &proof {
            self.spend_proof(p).await?;
        }
        // 3. the nonce (self-authenticating: nothing is stored until it is spent)
        let (nonce, expires_at) = self
            .nonces
            .issue(agent_id, purpose)
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        Ok(NonceResponse { nonce, expires_at })
    }

    fn nonce_allowed(
        &self,
        agent: &Agent,
        proof: Option<&WorkloadProof>,
    ) -> Result<(), IssueError> {
        agent.provisioned().map_err(|_| IssueError::UnknownAgent)?;
        if let Some(why) = &agent.retired {
            return Err(IssueError::Agent(AgentError::Retired(why.clone())));
        }
        match proof {
            // the enrollment token is spent once the agent enrolled
            None if agent.enrolled => Err(IssueError::Agent(AgentError::AlreadyEnrolled)),
            None => Ok(()),
            Some(p) => self.check_credential(agent, p),
        }
    }
}
