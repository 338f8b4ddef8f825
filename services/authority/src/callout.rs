//! Admission of agents to the domain's NATS by auth callout (ADR 0006). The server sends each
//! connection of a user not in `auth_users` to `$SYS.REQ.USER.AUTH` as an authorization
//! request (a NATS JWT signed by the server's nkey). The agent connected with
//!
//! - `user` = its workload identity token (`wit+jwt`, signed by the ACA's token key), and
//! - `pass` = a workload proof token (`wpt+jwt`, signed by the WIT's `cnf.jwk` key) with
//!   `aud` = `nats:<domain>`, `wth` = the WIT's hash, `exp` at most 5 minutes ahead, and a
//!   `jti` never seen before.
//!
//! The callout checks both, then that the WIT's credential (`x5t_serial`) is live in the
//! credentials projection caught up to the log's tail, and answers with a user JWT for the
//! agents' account `AGENTS` (signed by the callout issuer, whose public key is in the server
//! config) that may only ask for its own feed and read its own feed subjects
//! ([`permissions`]), expiring with the WIT or in 10 minutes, whichever comes first. The log
//! lives in another account (`ACCORD`), which agents never join (ADR 0006). Every refusal is an error answer: the
//! server then refuses the client. Nothing is appended to the log either way.

pub mod natsjwt;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use accord_events::{AgentId, CredentialSerial, DomainId, SpiffeId};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::issue::Authority;
use crate::jws::{self, JwsError, TYP_WIT, TYP_WPT, VerifyingKey};
use natsjwt::NatsJwtError;

/// The subject the server sends authorization requests to.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// Longest a proof token may live, seconds.
pub const MAX_PROOF_SECS: i64 = crate::proofs::MAX_PROOF_SECS;
/// Longest an admitted user lives before the server disconnects it, seconds.
pub const MAX_USER_SECS: i64 = 600;
/// Requests handled at once; beyond, requests wait in the subscription's bounded buffer and
/// the server refuses clients whose answer does not come within its auth timeout.
pub const MAX_IN_FLIGHT: usize = 32;

/// Why a connection was refused. The answer carries this text; the server logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("authorization request: {0}")]
    Request(NatsJwtError),
    #[error("authorization request: {0}")]
    RequestClaims(&'static str),
    #[error("no workload identity token (user) or proof token (password)")]
    NoTokens,
    #[error("workload identity token: {0}")]
    Wit(JwsError),
    #[error("workload identity token: {0}")]
    WitClaims(&'static str),
    #[error("workload proof token: {0}")]
    Proof(JwsError),
    #[error("workload proof token: {0}")]
    ProofClaims(&'static str),
    #[error("workload proof token replayed")]
    ProofReplayed,
    #[error("credential {0} is unknown")]
    UnknownCredential(CredentialSerial),
    #[error("credential {0} is {1}")]
    NotLive(CredentialSerial, String),
    #[error("too many connection attempts by agent {0}")]
    RateLimited(AgentId),
    #[error("the ACA cannot decide now: {0}")]
    Unavailable(String),
}

impl Refusal {
    /// A short stable name of the check that refused.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Request(_) | Self::RequestClaims(_) => "request",
            Self::NoTokens => "no-tokens",
            Self::Wit(_) | Self::WitClaims(_) => "wit",
            Self::Proof(_) | Self::ProofClaims(_) => "proof",
            Self::ProofReplayed => "proof-replayed",
            Self::UnknownCredential(_) => "unknown-credential",
            Self::NotLive(..) => "credential-not-live",
            Self::RateLimited(_) => "rate-limited",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// The parts of the server's request the decision uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The server's id (its public nkey): the answer's audience.
    pub server_id: String,
    /// The user nkey the server made for this connection: the subject of the answer.
    pub user_nkey: String,
    pub wit: Option<String>,
    pub wpt: Option<String>,
}

/// Verifies the server's request (signed by the server nkey it names as `iss`, for this
/// callout's issuer, not expired) and takes out what the decision needs.
pub fn parse_request(bytes: &[u8], issuer: &str, now: i64) -> Result<AuthRequest, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refusal::RequestClaims("not UTF-8"))?;
    let c = natsjwt::decode(text.trim(), 'N').map_err(Refusal::Request)?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if s(c.get("aud")).as_deref() != Some("nats-authorization-request") {
        return Err(Refusal::RequestClaims(
            "aud is not nats-authorization-request",
        ));
    }
    if s(c.get("sub")).as_deref() != Some(issuer) {
        return Err(Refusal::RequestClaims("sub is not this callout's issuer"));
    }
    if c.get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp + jws::SKEW_SECS < now)
    {
        return Err(Refusal::RequestClaims("expired"));
    }
    let nats = c
        .get("nats")
        .and_then(Value::as_object)
        .ok_or(Refusal::RequestClaims("no nats claims"))?;
    if s(nats.get("type")).as_deref() != Some("authorization_request") {
        return Err(Refusal::RequestClaims("type is not authorization_request"));
    }
    let server_id = s(nats.get("server_id").and_then(|v| v.get("id")))
        .ok_or(Refusal::RequestClaims("no server_id.id"))?;
    if s(c.get("iss")).as_deref() != Some(server_id.as_str()) {
        return Err(Refusal::RequestClaims("not signed by the server it names"));
    }
    let user_nkey = s(nats.get("user_nkey"))
        .filter(|u| u.starts_with('U') && u.len() == 56)
        .ok_or(Refusal::RequestClaims("no user_nkey"))?;
    let opts = nats.get("connect_opts");
    let non_empty = |k: &str| s(opts.and_then(|o| o.get(k))).filter(|v| !v.is_empty());
    Ok(AuthRequest {
        server_id,
        user_nkey,
        wit: non_empty("user"),
        wpt: non_empty("pass"),
    })
}

/// What the tokens prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub serial: CredentialSerial,
    /// The WIT's `exp`.
    pub wit_exp: i64,
    /// The proof's `jti` and `exp` (to remember it until then).
    pub proof_jti: String,
    pub proof_exp: i64,
}

/// Checks the workload identity token under the ACA's token key and `issuer`, then the proof
/// token under the WIT's `cnf.jwk`, for `nats:<domain>` and bound to this WIT.
pub fn check_tokens(
    wit: &str,
    wpt: &str,
    token_key: &VerifyingKey,
    issuer: &str,
    domain: &DomainId,
    now: i64,
) -> Result<Proven, Refusal> {
    let w = jws::verify(wit, TYP_WIT, token_key, now).map_err(Refusal::Wit)?;
    let ws = |n: &str| w.claims.get(n).and_then(Value::as_str);
    if ws("iss") != Some(issuer) {
        return Err(Refusal::WitClaims("issued by another authority"));
    }
    let agent_id = ws("agent_id")
        .and_then(|a| AgentId::parse(a).ok())
        .ok_or(Refusal::WitClaims("no agent_id"))?;
    let spiffe_id = ws("sub")
        .and_then(|s| SpiffeId::parse(s).ok())
        .ok_or(Refusal::WitClaims("no sub"))?;
    if !spiffe_id.as_str().ends_with(&format!("/agent/{agent_id}")) {
        return Err(Refusal::WitClaims("sub does not name agent_id"));
    }
    let serial = ws("x5t_serial")
        .and_then(|s| CredentialSerial::parse(s).ok())
        .ok_or(Refusal::WitClaims("no x5t_serial"))?;
    let wit_exp = w.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let jwk: accord_events::common::PublicJwk = w
        .claims
        .get("cnf")
        .and_then(|c| c.get("jwk"))
        .cloned()
        .and_then(|j| serde_json::from_value(j).ok())
        .ok_or(Refusal::WitClaims("no cnf.jwk"))?;
    let cnf = VerifyingKey::from_jwk(&jwk).map_err(Refusal::Wit)?;

    let p = jws::verify(wpt, TYP_WPT, &cnf, now).map_err(Refusal::Proof)?;
    let ps = |n: &str| p.claims.get(n).and_then(Value::as_str);
    if ps("aud") != Some(format!("nats:{domain}").as_str()) {
        return Err(Refusal::ProofClaims("for another audience"));
    }
    if ps("wth") != Some(jws::hash_b64(wit.as_bytes()).as_str()) {
        return Err(Refusal::ProofClaims(
            "not bound to this identity token (wth)",
        ));
    }
    let proof_exp = p.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if proof_exp > now + MAX_PROOF_SECS {
        return Err(Refusal::ProofClaims("lives longer than 5 minutes"));
    }
    let proof_jti = ps("jti")
        .filter(|j| (16..=128).contains(&j.len()))
        .ok_or(Refusal::ProofClaims("no jti of 16 to 128 characters"))?
        .to_owned();
    Ok(Proven {
        agent_id,
        spiffe_id,
        serial,
        wit_exp,
        proof_jti,
        proof_exp,
    })
}

/// The name of an agent's feed consumer (the ACA creates it; one per agent).
pub fn consumer_name(agent: &AgentId) -> String {
    format!("rev-{agent}")
}

/// The subject prefix of an agent's feed: `.open` (its requests), `.deliver` (its consumer's
/// deliveries), `.inbox` (replies to it).
pub fn feed_prefix(agent: &AgentId) -> String {
    format!("accord.feed.{agent}")
}

/// Where an agent asks the ACA for its feed (a service the services' account exports).
pub fn open_subject(agent: &AgentId) -> String {
    format!("{}.open", feed_prefix(agent))
}

/// Where an agent's consumer delivers (a stream the services' account exports).
pub fn deliver_subject(agent: &AgentId) -> String {
    format!("{}.deliver", feed_prefix(agent))
}

/// The inbox prefix of an agent's connection (replies to its requests).
pub fn inbox_prefix(agent: &AgentId) -> String {
    format!("{}.inbox", feed_prefix(agent))
}

/// The subject filter of the revocation feed: every `CredentialRevoked` of the domain.
pub fn revocation_filter(domain: &DomainId) -> String {
    format!("accord.evt.{domain}.agent.*.CredentialRevoked")
}

/// An admitted agent's permissions (publish allow, subscribe allow), in the agents' account:
/// ask for its own feed, read its own deliveries and replies; nothing else. It reaches no
/// JetStream API: the ACA creates its consumer (security review 2026-12, findings 1 and 2).
pub fn permissions(agent: &AgentId) -> (Vec<String>, Vec<String>) {
    (
        vec![open_subject(agent)],
        vec![deliver_subject(agent), format!("{}.>", inbox_prefix(agent))],
    )
}

/// The NATS user name of an admitted agent's connection (what a kick looks for).
pub fn user_name(agent: &AgentId, serial: &CredentialSerial) -> String {
    format!("agent:{agent}:{serial}")
}

/// How the callout answers.
#[derive(Clone)]
pub struct CalloutConfig {
    pub domain: DomainId,
    pub stream: String,
    /// The account the admitted users belong to.
    pub account: String,
    /// The callout issuer (an account key pair).
    pub issuer: Arc<nkeys::KeyPair>,
    /// Connection attempts allowed per agent and minute.
    pub per_agent_per_minute: u32,
}

impl std::fmt::Debug for CalloutConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalloutConfig")
            .field("domain", &self.domain)
            .field("issuer", &self.issuer.public_key())
            .finish_non_exhaustive()
    }
}

type AgentLimiter = governor::DefaultKeyedRateLimiter<AgentId>;

/// The callout service.
pub struct Callout {
    authority: Arc<Authority>,
    cfg: CalloutConfig,
    limiter: AgentLimiter,
}

impl std::fmt::Debug for Callout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callout")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Callout {
    pub fn new(authority: Arc<Authority>, cfg: CalloutConfig) -> Arc<Self> {
        let per = NonZeroU32::new(cfg.per_agent_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            authority,
            cfg,
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per)),
        })
    }

    /// Decides one request: the signed user JWT to admit with, or why not.
    pub async fn decide(&self, req: &AuthRequest) -> Result<String, Refusal> {
        let now = now_unix();
        let (Some(wit), Some(wpt)) = (&req.wit, &req.wpt) else {
            return Err(Refusal::NoTokens);
        };
        let a = &self.authority;
        let p = check_tokens(
            wit,
            wpt,
            &a.token_key,
            &a.cfg.issuer(),
            &self.cfg.domain,
            now,
        )?;
        if self.limiter.check_key(&p.agent_id).is_err() {
            return Err(Refusal::RateLimited(p.agent_id));
        }
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        // single use, across restarts and replicas of the ACA (finding 15): the jti is spent
        // in the bucket of spent proofs, which outlives every proof it holds
        a.proofs
            .spend(crate::proofs::Purpose::Nats, &p.proof_jti)
            .await
            .map_err(|e| match e {
                crate::proofs::SpendError::Replayed => Refusal::ProofReplayed,
                e => Refusal::Unavailable(e.to_string()),
            })?;

        // the credential, as of the log's tail: a revocation appended before this connect
        // is seen even if the projection had not applied it yet
        let store = a.exec.store().event_store();
        let tail = store
            .last_sequence()
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        a.credentials
            .wait_for(tail, Duration::from_secs(2))
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let row = a
            .credentials
            .store()
            .get("credentials", "credentials", p.serial.as_str())
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .ok_or_else(|| Refusal::UnknownCredential(p.serial.clone()))?;
        let field = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("");
        if field("agent_id") != p.agent_id.to_string() {
            return Err(Refusal::UnknownCredential(p.serial.clone()));
        }
        if field("status") != "valid" {
            return Err(Refusal::NotLive(
                p.serial.clone(),
                field("status").to_owned(),
            ));
        }
        let not_after = accord_events::Timestamp::parse(field("not_after"))
            .map(|t| t.datetime().unix_timestamp())
            .unwrap_or(0);
        if not_after <= now {
            return Err(Refusal::NotLive(p.serial.clone(), "expired".into()));
        }
        self.user_jwt(req, &p, not_after.min(p.wit_exp), now)
    }

    fn user_jwt(
        &self,
        req: &AuthRequest,
        p: &Proven,
        credential_end: i64,
        now: i64,
    ) -> Result<String, Refusal> {
        let (publish, subscribe) = permissions(&p.agent_id);
        let claims = json!({
            "sub": req.user_nkey,
            "aud": self.cfg.account,
            "name": user_name(&p.agent_id, &p.serial),
            "exp": credential_end.min(now + MAX_USER_SECS),
            "nats": {
                "pub": { "allow": publish },
                "sub": { "allow": subscribe },
                "subs": 16,
                "data": -1,
                "payload": 4096,
                "type": "user",
                "version": 2,
            },
        });
        natsjwt::encode(object(claims), &self.cfg.issuer, now)
            .map_err(|e| Refusal::Unavailable(e.to_string()))
    }

    /// The authorization response: the user JWT, or the refusal's text.
    pub fn answer(&self, req: &AuthRequest, decision: &Result<String, Refusal>) -> Option<String> {
        let now = now_unix();
        let mut nats = Map::new();
        match decision {
            Ok(jwt) => nats.insert("jwt".into(), jwt.clone().into()),
            Err(e) => nats.insert("error".into(), e.to_string().into()),
        };
        nats.insert("type".into(), "authorization_response".into());
        nats.insert("version".into(), 2.into());
        let claims = json!({
            "sub": req.user_nkey,
            "aud": req.server_id,
            "exp": now + 60,
            "nats": nats,
        });
        natsjwt::encode(object(claims), &self.cfg.issuer, now).ok()
    }

    /// Answers the server's requests on `client` (connected as the callout service's user)
    /// until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        client: async_nats::Client,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut sub = match client.subscribe(AUTH_SUBJECT).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "auth callout: cannot subscribe; agents cannot connect");
                return;
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        tracing::info!(issuer = %self.cfg.issuer.public_key(), "the NATS auth callout is answering");
        loop {
            let msg = tokio::select! {
                m = sub.next() => match m { Some(m) => m, None => return },
                _ = stop.changed() => return,
            };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (me, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let issuer = me.cfg.issuer.public_key();
                let req = match parse_request(&msg.payload, &issuer, now_unix()) {
                    Ok(r) => r,
                    Err(e) => {
                        // no subject and audience to answer to: the server times out and refuses
                        tracing::warn!(error = %e, "auth callout: malformed request");
                        return;
                    }
                };
                let decision = me.decide(&req).await;
                match &decision {
                    Ok(_) => tracing::debug!("auth callout: agent admitted"),
                    Err(e) => {
                        tracing::info!(check = e.kind(), error = %e, "auth callout: refused")
                    }
                }
                if let Some(answer) = me.answer(&req, &decision)
                    && let Err(e) = client.publish(reply, answer.into()).await
                {
                    tracing::warn!(error = %e, "auth callout: cannot answer");
                }
            });
        }
    }
}

/// Disconnects the live NATS connections of revoked credentials (ADR 0006, step 5): follows the
/// log's new `CredentialRevoked` events and, for each serial, asks every server for the
/// connections of that user (`$SYS.REQ.SERVER.PING.CONNZ`, filtered by the user name the
/// callout gave it) and kicks them (`$SYS.REQ.SERVER.<id>.KICK`). `system` is a connection as
/// the system account's user (none: no kicks). A missed kick is bounded by the user JWT's
/// expiry. An agent left with no live credential also loses its feed consumer.
pub async fn kick_revoked(
    authority: Arc<Authority>,
    system: Option<async_nats::Client>,
    feeds: Arc<crate::feedctl::FeedConsumers>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use async_nats::jetstream::consumer::{DeliverPolicy, push};
    let store = authority.exec.store().event_store().clone();
    let consumer = store
        .jetstream()
        .create_consumer_on_stream(
            push::OrderedConfig {
                deliver_subject: store.client().new_inbox(),
                filter_subject: revocation_filter(store.domain()),
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            },
            store.config().stream.name.as_str(),
        )
        .await;
    let mut messages = match consumer {
        Ok(c) => match c.messages().await {
            Ok(m) => m,
            Err(e) => return tracing::error!(error = %e, "kicking revoked agents: reading"),
        },
        Err(e) => return tracing::error!(error = %e, "kicking revoked agents: consumer"),
    };
    loop {
        let m = tokio::select! {
            m = messages.next() => match m { Some(Ok(m)) => m, _ => return },
            _ = stop.changed() => return,
        };
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        // only an authentic revocation of this domain kicks anyone (finding 1)
        let stored = match store.checker().check(seq, &m.subject, &m.payload) {
            Ok(e) => e,
            Err(e) => {
                store.foreign().report("kick", &m.subject, &e);
                continue;
            }
        };
        let Ok(r) = crate::feed::Revocation::of(seq, &stored.envelope, stored.event) else {
            continue;
        };
        if let Some(system) = &system {
            for serial in &r.serials {
                let kicked = kick(system, &user_name(&r.agent_id, serial)).await;
                tracing::info!(agent = %r.agent_id, %serial, kicked, "revoked credential's connections kicked");
            }
        }
        // an agent left without a live credential loses its feed consumer too
        feeds.revoked(&r.agent_id).await;
    }
}

/// Kicks every connection of NATS user `user` on every server that answers within 500 ms.
async fn kick(system: &async_nats::Client, user: &str) -> usize {
    let inbox = system.new_inbox();
    let Ok(mut replies) = system.subscribe(inbox.clone()).await else {
        return 0;
    };
    let query = json!({ "user": user, "auth": true, "limit": 1024 }).to_string();
    if system
        .publish_with_reply("$SYS.REQ.SERVER.PING.CONNZ", inbox, query.into())
        .await
        .is_err()
    {
        return 0;
    }
    let mut kicked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await {
        let Ok(v) = serde_json::from_slice::<Value>(&reply.payload) else {
            continue;
        };
        let Some(server) = v["server"]["id"].as_str() else {
            continue;
        };
        for c in v["data"]["connections"].as_array().into_iter().flatten() {
            if c["authorized_user"].as_str() != Some(user) {
                continue;
            }
            let Some(cid) = c["cid"].as_u64() else {
                continue;
            };
            let ok = system
                .request(
                    format!("$SYS.REQ.SERVER.{server}.KICK"),
                    json!({ "cid": cid }).to_string().into(),
                )
                .await
                .is_ok();
            kicked += usize::from(ok);
        }
    }
    kicked
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
#[path = "callout/tests.rs"]
mod tests;
