//! Nonces: the ACA hands one out, it comes back signed into a piece of evidence, and the ACA
//! accepts it once. Two purposes, each serving no other: attestation (RFC 9711 `eat_nonce`,
//! RFC 9334 §10 freshness: the agent's environment signs it into its EAT) and the owner
//! binding (the OIDC `nonce` the owner's identity provider puts in the ID token, so that the
//! token binds this agent, once: review 2026-12, finding 8).
//!
//! A nonce is self-authenticating (ADR 0013): 16 random bytes, its purpose, the agent it is
//! for and its expiry, under an HMAC-SHA-256 tag by a key every ACA replica shares (kept in the
//! bucket, which only the services' account reaches). Handing one out stores nothing, so a
//! flood of nonce requests cannot fill anything (review 2026-12, finding 12: the cause, where
//! the first fix capped each agent at four outstanding nonces). Spending one is a
//! compare-and-set `create` of its key in a JetStream key-value bucket (file storage): of two
//! requests presenting the same nonce at once, exactly one creates it; an ACA restart, or a
//! second replica, finds it spent. The bucket keeps a spent nonce twice as long as a nonce
//! lives, so a spent one is known as spent for its whole validity.

use std::time::Duration;

use std::sync::Arc;

use accord_events::AgentId;
use async_nats::jetstream::{self, kv};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The bucket's name.
pub const BUCKET: &str = "ACCORD_EAT_NONCES";
/// Most spent nonces kept at once (the bucket refuses more; spending needs an authenticated
/// request with evidence, so this bounds what a flood of such requests could store).
pub const MAX_SPENT: i64 = 1_000_000;
/// The bucket of the replicas' shared MAC key (no `max_age`: the key must not expire).
pub const KEY_BUCKET: &str = "ACCORD_NONCE_KEY";
const KEY_ENTRY: &str = "mac-key";
/// Bytes of randomness in a nonce.
const RANDOM: usize = 16;
/// Bytes of the MAC tag (HMAC-SHA-256, truncated: 128 bits).
const TAG: usize = 16;
/// A nonce: random, purpose (1 byte), agent id (16), expiry (8, big-endian), tag.
const RAW: usize = RANDOM + 1 + 16 + 8 + TAG;
/// Its length in base64url without padding.
pub const LEN: usize = (RAW * 4).div_ceil(3);
/// What the tag covers besides the nonce's fields (never anything else's MAC input).
const CONTEXT: &[u8] = b"accord-nonce-v1\n";

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
    fn byte(self) -> u8 {
        match self {
            Self::Attestation => 1,
            Self::Owner => 2,
        }
    }

    fn of_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Attestation),
            2 => Some(Self::Owner),
            _ => None,
        }
    }

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
            (_, Self::Unavailable(_)) => "unavailable",
        }
    }
}

fn unavailable(e: impl ToString) -> NonceError {
    NonceError::Unavailable(e.to_string())
}

/// The ACA's nonces.
#[derive(Clone)]
pub struct Nonces {
    kv: kv::Store,
    ttl: Duration,
    mac: Arc<hmac::Key>,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").field("ttl", &self.ttl).finish()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A nonce's fields, as decoded (its tag checked).
struct Fields {
    purpose: Purpose,
    agent: [u8; 16],
    exp: i64,
}

impl Nonces {
    /// Opens (creating when absent) the bucket and the MAC key the replicas share. Nonces
    /// live `ttl`; the bucket keeps spent ones twice as long.
    pub async fn open(js: &jetstream::Context, ttl: Duration) -> Result<Self, NonceError> {
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    description: "spent nonces of the ACA (attestation, owner binding)".into(),
                    history: 1,
                    max_age: ttl * 2,
                    storage: jetstream::stream::StorageType::File,
                    max_bytes: MAX_SPENT * 256,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        let mac = Arc::new(Self::mac_key(js).await?);
        Ok(Self { kv, ttl, mac })
    }

    /// The shared MAC key, in a bucket of its own that never expires it: read, or made by
    /// the first replica to start (create is a compare-and-set: of two replicas starting at
    /// once, one key wins and both use it).
    async fn mac_key(js: &jetstream::Context) -> Result<hmac::Key, NonceError> {
        let kv = match js.get_key_value(KEY_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: KEY_BUCKET.into(),
                    description: "the ACA replicas' nonce MAC key".into(),
                    history: 1,
                    max_bytes: 64 * 1024,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        for _ in 0..4 {
            if let Some(v) = kv.get(KEY_ENTRY).await.map_err(unavailable)?
                && let Ok(k) = URL_SAFE_NO_PAD.decode(&v)
                && k.len() == 32
            {
                return Ok(hmac::Key::new(hmac::HMAC_SHA256, &k));
            }
            let mut k = [0u8; 32];
            aws_lc_rs::rand::fill(&mut k).map_err(|_| unavailable("rng"))?;
            match kv.create(KEY_ENTRY, URL_SAFE_NO_PAD.encode(k).into()).await {
                Ok(_) => return Ok(hmac::Key::new(hmac::HMAC_SHA256, &k)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(unavailable("the nonce MAC key could not be read or made"))
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A key of its own for another MAC the replicas must agree on (the registry's page
    /// tokens): HMAC-SHA-256 under the shared key of a label no nonce tag starts with.
    pub fn derive(&self, label: &str) -> hmac::Key {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(b"accord-derived-key\n");
        ctx.update(label.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref())
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(CONTEXT);
        ctx.update(body);
        let full = ctx.sign();
        let mut t = [0u8; TAG];
        t.copy_from_slice(&full.as_ref()[..TAG]);
        t
    }

    /// A fresh nonce of `purpose` for `agent` (base64url, [`LEN`] characters) and when it
    /// expires (Unix seconds). Nothing is stored.
    pub fn issue(&self, agent: &AgentId, purpose: Purpose) -> Result<(String, i64), NonceError> {
        let ttl = i64::try_from(self.ttl.as_secs()).map_err(unavailable)?;
        let exp = now().saturating_add(ttl);
        let mut raw = [0u8; RAW];
        aws_lc_rs::rand::fill(&mut raw[..RANDOM]).map_err(|_| unavailable("rng"))?;
        raw[RANDOM] = purpose.byte();
        raw[RANDOM + 1..RANDOM + 17].copy_from_slice(agent.as_uuid().as_bytes());
        raw[RANDOM + 17..RAW - TAG].copy_from_slice(&exp.to_be_bytes());
        let tag = self.tag(&raw[..RAW - TAG]);
        raw[RAW - TAG..].copy_from_slice(&tag);
        Ok((URL_SAFE_NO_PAD.encode(raw), exp))
    }

    /// The fields of a nonce this ACA issued (its tag checked in constant time), or `None`.
    fn decode(&self, nonce: &str) -> Option<Fields> {
        if nonce.len() != LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != RAW {
            return None;
        }
        let (body, tag) = raw.split_at(RAW - TAG);
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.tag(body), tag).ok()?;
        let mut agent = [0u8; 16];
        agent.copy_from_slice(&body[RANDOM + 1..RANDOM + 17]);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&body[RANDOM + 17..]);
        Some(Fields {
            purpose: Purpose::of_byte(body[RANDOM])?,
            agent,
            exp: i64::from_be_bytes(exp),
        })
    }

    /// Spends `nonce` of `purpose` for `agent`: it must have been issued for that purpose to
    /// that agent, be unexpired and unspent.
    pub async fn consume(
        &self,
        nonce: &str,
        agent: &AgentId,
        purpose: Purpose,
    ) -> Result<(), NonceError> {
        // only a nonce this ACA made reaches the store (its key is also a subject token)
        let f = self.decode(nonce).ok_or(NonceError::Unknown)?;
        // a nonce of another purpose is not one of this purpose's
        if f.purpose != purpose {
            return Err(NonceError::Unknown);
        }
        let key = format!("spent.{nonce}");
        if f.agent != *agent.as_uuid().as_bytes() {
            // another agent's: refused either way, named as a replay when it was spent
            let spent = self
                .kv
                .entry(&key)
                .await
                .map_err(unavailable)?
                .is_some_and(|e| e.operation == kv::Operation::Put);
            return Err(if spent {
                NonceError::Replayed
            } else {
                NonceError::OtherAgent
            });
        }
        if f.exp < now() {
            return Err(NonceError::Expired);
        }
        match self.kv.create(&key, Bytes::from_static(b"1")).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(NonceError::Replayed),
            Err(e) => Err(unavailable(e)),
        }
    }
}
