//! Registration on the agent aggregate, for the registry service (draft §3.3, ADR 0015): who
//! is registering (an agent certificate the TLS layer verified, or a WIT with a proof by its
//! key), what it asks to be registered as (bounded, typed), and the command that decides.
//! A refusal of an authenticated agent for a security reason (a record that is not what was
//! signed, a dead credential) is recorded as `RegistrationRejected`, at most once per agent
//! per minute; anything else changes nothing.

use std::collections::BTreeSet;

use accord_events::catalogue::{
    Audience, CardFields, Endpoint, Owner, RegistrationRejected, Skill, Visibility,
};
use accord_events::{
    Actor, AgentId, AuthMethod, CallerType, CommandId, CredentialSerial, Digest, Metadata,
    SpiffeId, Timestamp, TraceParent,
};
use serde::{Deserialize, Serialize};

use crate::agent::registration::Registration;
use crate::agent::{AgentCommand, AgentError};
use crate::grant::WorkloadProof;
use crate::issue::{Authority, IssueError};

/// Largest registration body, bytes.
pub const MAX_REGISTRATION: usize = 64 * 1024;

/// An agent whose credential authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrant {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    /// The credential presented.
    pub serial: CredentialSerial,
    pub method: AuthMethod,
    /// The WIT's `jti`, when a WIT authenticated it (it must be the credential's).
    wit_jti: Option<Option<String>>,
}

impl Registrant {
    fn actor(&self) -> Actor {
        Actor {
            subject: self.spiffe_id.to_string(),
            caller_type: CallerType::Agent,
            auth_methods: vec![self.method],
        }
    }
}

/// A verified proof token, to be spent once the registration is decided.
#[derive(Debug)]
pub struct RegistrationProof(WorkloadProof);

/// What an agent asks to be registered as. Capabilities, owner and AIBOM digest must be
/// exactly what its credential's issuance signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub capabilities: BTreeSet<String>,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub aibom_digest: Option<Digest>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default)]
    pub card: CardFields,
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: AgentId,
    /// `registered` (a new record), `updated`, or `unchanged`.
    pub outcome: String,
    pub credential_serial: CredentialSerial,
    /// The log position of the record as it now stands.
    pub seq: u64,
}

/// Transports a registered endpoint may name (A2A's, and NATS).
pub const TRANSPORTS: [&str; 4] = ["JSONRPC", "GRPC", "HTTP+JSON", "NATS"];

fn bad(m: impl Into<String>) -> IssueError {
    IssueError::BadRequest(m.into())
}

fn text(field: &str, v: &str, max: usize) -> Result<(), IssueError> {
    if v.len() > max {
        return Err(bad(format!("{field} is longer than {max} bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(bad(format!("{field} holds control characters")));
    }
    Ok(())
}

fn token(field: &str, v: &str) -> Result<(), IssueError> {
    if v.is_empty() || v.len() > 128 {
        return Err(bad(format!("{field} must be 1 to 128 bytes")));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_:/+*".contains(&b))
    {
        return Err(bad(format!(
            "{field} {v:?} may hold only letters, digits and . - _ : / + *"
        )));
    }
    Ok(())
}

impl RegisterRequest {
    /// Bounds and shapes, before anything is loaded.
    pub fn check(&self) -> Result<(), IssueError> {
        // the name and capabilities as provisioning and issuance check them: a record may
        // state anything the ACA could have signed
        crate::api::check_name(&self.name).map_err(bad)?;
        text("description", &self.description, 4096)?;
        if self.capabilities.len() > crate::api::MAX_CAPABILITIES {
            return Err(bad(format!(
                "at most {} capabilities",
                crate::api::MAX_CAPABILITIES
            )));
        }
        for c in &self.capabilities {
            crate::api::check_capability(c).map_err(bad)?;
        }
        if let Some(o) = &self.owner {
            text("owner.subject", &o.subject, 512)?;
            text("owner.issuer", &o.issuer, 512)?;
        }
        if self.endpoints.len() > 16 {
            return Err(bad("at most 16 endpoints"));
        }
        for e in &self.endpoints {
            if !TRANSPORTS.contains(&e.transport.as_str()) {
                return Err(bad(format!(
                    "endpoint transport {:?} is not one of {}",
                    e.transport,
                    TRANSPORTS.join(", ")
                )));
            }
            text("endpoint url", &e.url, 2048)?;
            let scheme_ok = match e.transport.as_str() {
                "NATS" => e.url.starts_with("nats://") || e.url.starts_with("tls://"),
                _ => e.url.starts_with("https://"),
            };
            if !scheme_ok || e.url.contains(char::is_whitespace) {
                return Err(bad(format!(
                    "endpoint url {:?} is not an https:// (or, for NATS, nats:// or tls://) URL",
                    e.url
                )));
            }
        }
        if self.skills.len() > 64 {
            return Err(bad("at most 64 skills"));
        }
        let mut ids = BTreeSet::new();
        for s in &self.skills {
            token("skill id", &s.id)?;
            if !ids.insert(&s.id) {
                return Err(bad(format!("skill {:?} twice", s.id)));
            }
            text("skill name", &s.name, 256)?;
            text("skill description", &s.description, 4096)?;
            if s.tags.len() > 32 {
                return Err(bad("at most 32 tags per skill"));
            }
            for t in &s.tags {
                token("tag", t)?;
            }
        }
        match (&self.audience.visibility, &self.audience.team) {
            (Visibility::Team, Some(t)) => token("audience.team", t)?,
            (Visibility::Team, None) => return Err(bad("a team audience names its team")),
            (_, Some(_)) => return Err(bad("only a team audience names a team")),
            _ => {}
        }
        text("card.version", &self.card.version, 64)?;
        if self.card.version.is_empty() {
            return Err(bad("card.version is empty"));
        }
        for m in self.card.input_modes.iter().chain(&self.card.output_modes) {
            token("media type", m)?;
        }
        if self.card.input_modes.len() > 16 || self.card.output_modes.len() > 16 {
            return Err(bad("at most 16 input and 16 output modes"));
        }
        Ok(())
    }
}

impl Authority {
    /// A MAC key the domain's replicas share, for `label` (derived from the nonce key).
    pub fn shared_mac_key(&self, label: &str) -> aws_lc_rs::hmac::Key {
        self.nonces.derive(label)
    }

    /// Signs `payload` detached with the domain's token key (the key its JWKS publishes):
    /// `(protected, signature)`, base64url, `typ` in the header.
    pub fn sign_detached(&self, typ: &str, payload: &[u8]) -> Result<(String, String), IssueError> {
        crate::jws::sign_detached(self.token_signer.as_ref(), typ, payload)
            .map_err(|e| IssueError::Signing(e.to_string()))
    }

    /// The domain's token key and its `kid`: what its signatures verify under.
    pub fn token_key(&self) -> (String, crate::jws::VerifyingKey) {
        use crate::signer::SignerExt;
        let (_, kid) = self.token_signer.jwk();
        (kid.to_string(), self.token_key.clone())
    }

    /// The CA chain agent certificates are verified against (DER, the issuing CA first).
    pub fn ca_chain(&self) -> &[Vec<u8>] {
        self.ca.chain()
    }

    /// The agent an mTLS client certificate names. The TLS layer verified its chain to this
    /// ACA's CA; here its signature is checked again under the CA's key and its SPIFFE ID and
    /// serial are read. Whether the credential is live is the aggregate's decision.
    pub fn registrant_of_certificate(&self, der: &[u8]) -> Result<Registrant, IssueError> {
        let unauthorized = |m: &str| IssueError::Unauthorized(m.to_owned());
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| unauthorized("the client certificate does not parse"))?;
        if !rest.is_empty() {
            return Err(unauthorized("the client certificate has trailing bytes"));
        }
        crate::validate::verify_signature(&cert, &self.ca)
            .map_err(|_| unauthorized("the client certificate is not this CA's"))?;
        let spiffe_id = crate::validate::spiffe_id_of(&cert)
            .ok_or_else(|| unauthorized("the client certificate names no SPIFFE ID"))?;
        let agent_id = spiffe_id
            .agent_id()
            .filter(|a| SpiffeId::for_agent(&self.cfg.trust_domain, a) == spiffe_id)
            .ok_or_else(|| {
                unauthorized("the client certificate is not an agent's of this domain")
            })?;
        let serial: String = cert
            .tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let serial = CredentialSerial::parse(&serial)
            .map_err(|_| unauthorized("the client certificate's serial is not the ACA's"))?;
        Ok(Registrant {
            agent_id,
            spiffe_id,
            serial,
            method: AuthMethod::Mtls,
            wit_jti: None,
        })
    }

    /// The agent a WIT with a proof by its key names, for a request to `audience` (the
    /// registration URL). The proof is spent by [`Authority::register`].
    pub fn registrant_of_workload(
        &self,
        agent: &AgentId,
        wit: &str,
        wpt: &str,
        audience: &str,
    ) -> Result<(Registrant, RegistrationProof), IssueError> {
        let spiffe_id = SpiffeId::for_agent(&self.cfg.trust_domain, agent);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let p = self.verify_workload(
            wit,
            wpt,
            &spiffe_id,
            audience,
            crate::proofs::Purpose::Registration,
            now,
        )?;
        Ok((
            Registrant {
                agent_id: *agent,
                spiffe_id,
                serial: p.serial.clone(),
                method: AuthMethod::JwtAssertion,
                wit_jti: Some(p.wit_jti.clone()),
            },
            RegistrationProof(p),
        ))
    }

    /// Spends the proof of a request that registers nothing (a read by WIT): single use.
    pub async fn spend_registration_proof(&self, p: &RegistrationProof) -> Result<(), IssueError> {
        self.spend_proof(&p.0).await
    }

    /// Registers (or updates) `who`'s record as `req` asks, on the agent aggregate. A
    /// security-relevant refusal is recorded (`RegistrationRejected`, at most one per agent
    /// per minute) before the error is returned.
    pub async fn register(
        &self,
        who: &Registrant,
        proof: Option<RegistrationProof>,
        req: RegisterRequest,
        trace: Option<TraceParent>,
    ) -> Result<RegisterResponse, IssueError> {
        req.check()?;
        if let Some(RegistrationProof(p)) = &proof {
            self.spend_proof(p).await?;
        }
        let request_digest = Digest::sha256(
            &accord_events::canonical::canonical_bytes(
                &serde_json::to_value(&req).map_err(|e| bad(e.to_string()))?,
            )
            .map_err(|e| bad(e.to_string()))?,
        );
        let registration = Registration {
            serial: who.serial.clone(),
            name: req.name,
            description: req.description,
            capabilities: req.capabilities,
            owner: req.owner,
            aibom_digest: req.aibom_digest,
            endpoints: req.endpoints,
            agent_card_digest: None,
            skills: req.skills,
            audience: req.audience,
            card: req.card,
            wit_jti: who.wit_jti.clone(),
        };
        let mut meta = Metadata::new(CommandId::new_random(), who.actor(), Timestamp::now());
        meta.traceparent = trace.clone();
        let id = crate::issue::aggregate_id(&who.agent_id);
        match self
            .exec
            .execute(&id, &meta, AgentCommand::Register(Box::new(registration)))
            .await
        {
            Ok(out) => {
                let outcome = match out.events.first().map(|e| &e.event) {
                    Some(accord_events::Event::AgentRegistered(_)) => "registered",
                    Some(_) => "updated",
                    None => "unchanged",
                };
                Ok(RegisterResponse {
                    agent_id: who.agent_id,
                    outcome: outcome.into(),
                    credential_serial: who.serial.clone(),
                    seq: out.version.stream_seq,
                })
            }
            Err(accord_store::cqrs::ExecuteError::Rejected(e)) => {
                if let Some(reason) = e.rejection() {
                    self.record_rejection(who, reason, request_digest, trace)
                        .await;
                }
                Err(match e {
                    AgentError::NotProvisioned => IssueError::UnknownAgent,
                    e => IssueError::Agent(e),
                })
            }
            Err(e) => Err(IssueError::from(e)),
        }
    }

    /// Appends `RegistrationRejected` unless one was recorded for this agent in this minute
    /// (across replicas: a compare-and-set create in the spent-proofs bucket). Failing to
    /// record is logged, never the caller's error.
    async fn record_rejection(
        &self,
        who: &Registrant,
        reason: accord_events::catalogue::RegistrationRejection,
        request_digest: Digest,
        trace: Option<TraceParent>,
    ) {
        let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
        let slot = format!("{}:{minute}", who.agent_id);
        match self
            .proofs
            .spend(crate::proofs::Purpose::RejectionRecord, &slot)
            .await
        {
            Ok(()) => {}
            Err(crate::proofs::SpendError::Replayed) => {
                tracing::debug!(agent = %who.agent_id, ?reason, "registration refused; already recorded this minute");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot rate-limit the rejection record; not recording it");
                return;
            }
        }
        let mut meta = Metadata::new(CommandId::new_random(), who.actor(), Timestamp::now());
        meta.traceparent = trace;
        let cmd = AgentCommand::RecordRejection(RegistrationRejected {
            requester: who.spiffe_id.clone(),
            reason,
            request_digest,
        });
        if let Err(e) = self
            .exec
            .execute(&crate::issue::aggregate_id(&who.agent_id), &meta, cmd)
            .await
        {
            tracing::warn!(error = %e, "the registration rejection could not be recorded");
        }
    }

    /// Takes an agent's record out of discovery (an operator's command).
    pub async fn suspend(
        &self,
        agent: &AgentId,
        reason: String,
        actor: Actor,
        trace: Option<TraceParent>,
    ) -> Result<u64, IssueError> {
        text("reason", &reason, 1024)?;
        if reason.trim().is_empty() {
            return Err(bad("a suspension states its reason"));
        }
        let mut meta = Metadata::new(CommandId::new_random(), actor, Timestamp::now());
        meta.traceparent = trace;
        let out = self
            .exec
            .execute(
                &crate::issue::aggregate_id(agent),
                &meta,
                AgentCommand::Suspend { reason },
            )
            .await?;
        Ok(out.version.stream_seq)
    }
}
