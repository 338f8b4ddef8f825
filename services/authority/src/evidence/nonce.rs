//! Nonces: the ACA hands one out, it comes back signed into a piece of evidence, and the ACA
//! accepts it once. Two purposes, each serving no other: attestation (RFC 9711 `eat_nonce`,
//! RFC 9334 §10 freshness: the agent's environment signs it into its EAT) and the owner
//! binding (the OIDC `nonce` the owner's identity provider puts in the ID token, so that the
//! token binds this agent, once: review 2026-12, finding 8). They live
//! in a JetStream key-value bucket (file storage), so an ACA restart, or a second ACA replica,
//! never accepts a nonce again; the bucket's `max_age` removes spent and unused ones.
//!
//! Single use is a compare-and-set on the entry's revision: of two requests presenting the
//! same nonce at once, exactly one moves it from issued to spent.
//!
//! An agent holds at most [`MAX_PER_AGENT`] unspent, unexpired nonces of a purpose at once
//! (review 2026-12, finding 12: so that whoever may ask for an agent's nonces cannot fill the
//! bucket for everyone). The bucket keeps, per agent and purpose, the list of the nonces it
//! holds (`outstanding.<purpose>.<agent>`), updated by compare-and-set on its revision too;
//! a nonce leaves the list when it is spent or expires.

use std::time::Duration;

use accord_events::AgentId;
use async_nats::jetstream::{self, kv};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The bucket's name.
pub const BUCKET: &str = "ACCORD_EAT_NONCES";
/// Most nonces outstanding at once (the bucket refuses more: a flood of nonce requests cannot
/// grow it without bound).
pub const MAX_OUTSTANDING: i64 = 1_000_000;
/// Most unspent, unexpired nonces of one purpose one agent holds at once.
pub const MAX_PER_AGENT: usize = 4;
/// Attempts at the compare-and-set of an agent's list before giving up (503).
const CAS_ATTEMPTS: usize = 8;

/// What a nonce is for: a nonce of one purpose serves no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The `eat_nonce` of attestation evidence (entries written before purposes existed are
    /// these).
    #[default]
    Attestation,
    /// The `nonce` of an owner's OIDC ID token.
    Owner,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attestation => "attestation",
            Self::Owner => "owner",
        }
    }

    /// The last segment of the route that hands it out (`/v1/agents/{id}/<path>`).
    pub fn path(self) -> &'static str {
        match self {
            Self::Attestation => "attestation-nonce",
            Self::Owner => "owner-nonce",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    #[error("the nonce was not issued by this ACA, or has expired")]
    Unknown,
    #[error("the nonce was already used")]
    Replayed,
    #[error("the nonce was issued for another agent")]
    OtherAgent,
    #[error("the nonce has expired")]
    Expired,
    #[error("{MAX_PER_AGENT} nonces are outstanding; one frees up in {retry_after_secs} s")]
    TooMany { retry_after_secs: u64 },
    #[error("nonce store unavailable: {0}")]
    Unavailable(String),
}

impl NonceError {
    /// The problem type of an attestation nonce's refusal.
    pub fn kind(&self) -> &'static str {
        self.kind_for(Purpose::Attestation)
    }

    /// The problem type of a refusal of a nonce of `purpose`.
    pub fn kind_for(&self, purpose: Purpose) -> &'static str {
        use Purpose::{Attestation as A, Owner as O};
        match (purpose, self) {
            (A, Self::Unknown) => "eat-nonce-unknown",
            (A, Self::Replayed) => "eat-nonce-replayed",
            (A, Self::OtherAgent) => "eat-nonce-other-agent",
            (A, Self::Expired) => "eat-nonce-expired",
            (O, Self::Unknown) => "owner-nonce-unknown",
            (O, Self::Replayed) => "owner-nonce-replayed",
            (O, Self::OtherAgent) => "owner-nonce-other-agent",
            (O, Self::Expired) => "owner-nonce-expired",
            (_, Self::TooMany { .. }) => "too-many-nonces",
            (_, Self::Unavailable(_)) => "unavailable",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    agent: String,
    exp: i64,
    spent: bool,
    #[serde(default)]
    purpose: Purpose,
}

/// A nonce an agent holds (in its `outstanding.<purpose>.<agent>` list).
#[derive(Debug, Serialize, Deserialize)]
struct Held {
    nonce: String,
    exp: i64,
}

fn unavailable(e: impl ToString) -> NonceError {
    NonceError::Unavailable(e.to_string())
}

/// The ACA's nonces.
#[derive(Clone)]
pub struct Nonces {
    kv: kv::Store,
    ttl: Duration,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").field("ttl", &self.ttl).finish()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Nonces {
    /// Opens (creating when absent) the bucket. Nonces live `ttl`; the bucket keeps entries
    /// twice as long, so a spent nonce is known as spent for its whole validity.
    pub async fn open(js: &jetstream::Context, ttl: Duration) -> Result<Self, NonceError> {
        let unavailable = |e: String| NonceError::Unavailable(e);
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    description: "nonces of the ACA (attestation, owner binding; single use)"
                        .into(),
                    history: 1,
                    max_age: ttl * 2,
                    storage: jetstream::stream::StorageType::File,
                    max_bytes: MAX_OUTSTANDING * 256,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(e.to_string()))?,
        };
        Ok(Self { kv, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh nonce of `purpose` for `agent` (256 random bits, base64url: 43 characters) and
    /// when it expires (Unix seconds); [`NonceError::TooMany`] when the agent already holds
    /// [`MAX_PER_AGENT`] of them.
    pub async fn issue(
        &self,
        agent: &AgentId,
        purpose: Purpose,
    ) -> Result<(String, i64), NonceError> {
        let mut b = [0u8; 32];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| unavailable("rng"))?;
        let nonce = URL_SAFE_NO_PAD.encode(b);
        let ttl = i64::try_from(self.ttl.as_secs()).map_err(unavailable)?;
        let exp = now().saturating_add(ttl);
        self.reserve(agent, purpose, &nonce, exp).await?;
        let entry = Entry {
            agent: agent.to_string(),
            exp,
            spent: false,
            purpose,
        };
        let value = serde_json::to_vec(&entry).map_err(unavailable)?;
        self.kv
            .create(&nonce, value.into())
            .await
            .map_err(unavailable)?;
        Ok((nonce, exp))
    }

    /// Adds `nonce` to the agent's list of outstanding ones, unless it holds enough already
    /// (spent and expired ones are dropped from the list on the way).
    async fn reserve(
        &self,
        agent: &AgentId,
        purpose: Purpose,
        nonce: &str,
        exp: i64,
    ) -> Result<(), NonceError> {
        let key = format!("outstanding.{}.{agent}", purpose.as_str());
        for _ in 0..CAS_ATTEMPTS {
            let current = self.kv.entry(&key).await.map_err(unavailable)?;
            let (revision, listed) = match current {
                Some(e) if e.operation == kv::Operation::Put => (
                    Some(e.revision),
                    serde_json::from_slice::<Vec<Held>>(&e.value).unwrap_or_default(),
                ),
                Some(e) => (Some(e.revision), Vec::new()),
                None => (None, Vec::new()),
            };
            let now = now();
            let mut held = Vec::with_capacity(MAX_PER_AGENT);
            for h in listed.into_iter().filter(|h| h.exp >= now) {
                if self.unspent(&h.nonce).await? {
                    held.push(h);
                }
            }
            if held.len() >= MAX_PER_AGENT {
                let frees = held.iter().map(|h| h.exp).min().unwrap_or(now);
                return Err(NonceError::TooMany {
                    retry_after_secs: frees.saturating_sub(now).saturating_add(1).unsigned_abs(),
                });
            }
            held.push(Held {
                nonce: nonce.to_owned(),
                exp,
            });
            let value = serde_json::to_vec(&held).map_err(unavailable)?;
            // Ok(false): another request moved the list first; read it again
            let written = match revision {
                Some(r) => match self.kv.update(&key, value.into(), r).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                    Err(e) => Err(unavailable(e)),
                },
                None => match self.kv.create(&key, value.into()).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(unavailable(e)),
                },
            };
            if written? {
                return Ok(());
            }
        }
        Err(unavailable("the agent's nonce list is contended; retry"))
    }

    /// Whether `nonce` is in the bucket and not spent.
    async fn unspent(&self, nonce: &str) -> Result<bool, NonceError> {
        let e = self.kv.entry(nonce).await.map_err(unavailable)?;
        Ok(e.filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| serde_json::from_slice::<Entry>(&e.value).ok())
            .is_some_and(|e| !e.spent))
    }

    /// Spends `nonce` of `purpose` for `agent`: it must have been issued for that purpose to
    /// that agent, be unexpired and unspent.
    pub async fn consume(
        &self,
        nonce: &str,
        agent: &AgentId,
        purpose: Purpose,
    ) -> Result<(), NonceError> {
        // only our own format reaches the store (a KV key is also a subject token)
        if nonce.len() != 43
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(NonceError::Unknown);
        }
        let e = self
            .kv
            .entry(nonce)
            .await
            .map_err(|e| NonceError::Unavailable(e.to_string()))?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or(NonceError::Unknown)?;
        let mut entry: Entry = serde_json::from_slice(&e.value).map_err(|_| NonceError::Unknown)?;
        // a nonce of another purpose is not one of this purpose's
        if entry.purpose != purpose {
            return Err(NonceError::Unknown);
        }
        if entry.spent {
            return Err(NonceError::Replayed);
        }
        if entry.agent != agent.to_string() {
            return Err(NonceError::OtherAgent);
        }
        if entry.exp < now() {
            return Err(NonceError::Expired);
        }
        entry.spent = true;
        let value =
            serde_json::to_vec(&entry).map_err(|e| NonceError::Unavailable(e.to_string()))?;
        match self.kv.update(nonce, value.into(), e.revision).await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(NonceError::Replayed)
            }
            Err(err) => Err(NonceError::Unavailable(err.to_string())),
        }
    }
}
