//! Attestation nonces (RFC 9711 `eat_nonce`, RFC 9334 §10 freshness): the ACA hands one out,
//! the agent's environment signs it into its evidence, and the ACA accepts it once. They live
//! in a JetStream key-value bucket (file storage), so an ACA restart, or a second ACA replica,
//! never accepts a nonce again; the bucket's `max_age` removes spent and unused ones.
//!
//! Single use is a compare-and-set on the entry's revision: of two requests presenting the
//! same nonce at once, exactly one moves it from issued to spent.

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
    #[error("nonce store unavailable: {0}")]
    Unavailable(String),
}

impl NonceError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unknown => "eat-nonce-unknown",
            Self::Replayed => "eat-nonce-replayed",
            Self::OtherAgent => "eat-nonce-other-agent",
            Self::Expired => "eat-nonce-expired",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    agent: String,
    exp: i64,
    spent: bool,
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
                    description: "attestation nonces of the ACA (single use)".into(),
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

    /// A fresh nonce for `agent` (256 random bits, base64url: 43 characters) and when it
    /// expires (Unix seconds).
    pub async fn issue(&self, agent: &AgentId) -> Result<(String, i64), NonceError> {
        let mut b = [0u8; 32];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| NonceError::Unavailable("rng".into()))?;
        let nonce = URL_SAFE_NO_PAD.encode(b);
        let exp = now() + self.ttl.as_secs() as i64;
        let entry = Entry {
            agent: agent.to_string(),
            exp,
            spent: false,
        };
        let value =
            serde_json::to_vec(&entry).map_err(|e| NonceError::Unavailable(e.to_string()))?;
        self.kv
            .create(&nonce, value.into())
            .await
            .map_err(|e| NonceError::Unavailable(e.to_string()))?;
        Ok((nonce, exp))
    }

    /// Spends `nonce` for `agent`: it must have been issued to that agent, be unexpired and
    /// unspent.
    pub async fn consume(&self, nonce: &str, agent: &AgentId) -> Result<(), NonceError> {
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
