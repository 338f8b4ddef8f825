//! Proof tokens are single use (security review 2026-12, finding 15). A workload proof token
//! (`wpt+jwt`) lives at most [`MAX_PROOF_SECS`]; its `jti` is spent in a JetStream key-value
//! bucket with compare-and-set create, so a proof is accepted once across ACA restarts and
//! replicas, and no flood of other proofs can make the ACA forget one (an in-process cache
//! evicts without regard to expiry). The bucket's `max_age` outlives every proof it holds; a
//! full bucket refuses new entries, and the proof is then refused too (fail closed).
//!
//! Each purpose (a renewal, a nonce request, a NATS connection) spends in its own key space;
//! a proof is bound to one audience anyway.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

/// The bucket's name.
pub const BUCKET: &str = "ACCORD_PROOFS";
/// Longest a proof token may live, seconds.
pub const MAX_PROOF_SECS: i64 = 300;
/// Most bytes the bucket holds (about a million spent proofs).
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;

/// What a proof is spent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A credential renewal.
    Renewal,
    /// A nonce request.
    Nonce,
    /// A NATS connection (the auth callout).
    Nats,
    /// A registration in the registry.
    Registration,
    /// A JWT-SVID (`svid.rs`).
    JwtSvid,
    /// The slot of an agent's `RegistrationRejected` record in one minute (the rate limit of
    /// those records): spent once per agent per minute.
    RejectionRecord,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Renewal => "renewal",
            Self::Nonce => "nonce",
            Self::Nats => "nats",
            Self::Registration => "registration",
            Self::JwtSvid => "jwt-svid",
            Self::RejectionRecord => "rejection-record",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    #[error("the proof token was already used")]
    Replayed,
    #[error("the store of spent proofs is unavailable: {0}")]
    Unavailable(String),
}

/// The spent proofs of a domain's ACA.
pub struct SpentProofs {
    kv: kv::Store,
    /// What this process spent (a replay is refused without a round trip).
    local: quick_cache::sync::Cache<String, ()>,
}

impl std::fmt::Debug for SpentProofs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpentProofs").finish_non_exhaustive()
    }
}

fn key(purpose: Purpose, jti: &str) -> String {
    // a jti is the client's text; the key is its digest, which is always a valid key token
    format!(
        "{}.{}",
        purpose.as_str(),
        crate::jws::hash_b64(jti.as_bytes())
    )
}

impl SpentProofs {
    /// Opens (or creates) the bucket.
    pub async fn open(js: &jetstream::Context) -> Result<Self, SpendError> {
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    description: "jtis of spent workload proof tokens (single use)".into(),
                    history: 1,
                    // a proof lives at most 5 minutes, plus the verifier's clock skew
                    max_age: Duration::from_secs(
                        (MAX_PROOF_SECS + 2 * crate::jws::SKEW_SECS) as u64,
                    ),
                    storage: jetstream::stream::StorageType::File,
                    max_bytes: MAX_BYTES,
                    ..Default::default()
                })
                .await
                .map_err(|e| SpendError::Unavailable(e.to_string()))?,
        };
        Ok(Self {
            kv,
            local: quick_cache::sync::Cache::new(100_000),
        })
    }

    /// Whether this process already spent the proof (a cheap early refusal; [`Self::spend`]
    /// decides).
    pub fn spent_here(&self, purpose: Purpose, jti: &str) -> bool {
        self.local.get(&key(purpose, jti)).is_some()
    }

    /// Spends a proof: Ok the first time anywhere, `Replayed` after.
    pub async fn spend(&self, purpose: Purpose, jti: &str) -> Result<(), SpendError> {
        let k = key(purpose, jti);
        if self.local.get(&k).is_some() {
            return Err(SpendError::Replayed);
        }
        match self.kv.create(&k, Vec::<u8>::new().into()).await {
            Ok(_) => {
                self.local.insert(k, ());
                Ok(())
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.local.insert(k, ());
                Err(SpendError::Replayed)
            }
            Err(e) => Err(SpendError::Unavailable(e.to_string())),
        }
    }
}
