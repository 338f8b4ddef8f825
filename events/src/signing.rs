//! Ed25519 signatures over events by the domain's event-signing key.
//!
//! Wire form of a stored event (the NATS message payload), itself JCS-canonical:
//!
//! ```text
//! {"event":<JCS(envelope)>,"sig":{"alg":"Ed25519","kid":"<RFC 7638 thumbprint>","value":"<base64url>"}}
//! ```
//!
//! The signature is over `SIGNING_CONTEXT || JCS(envelope)`, i.e. over the exact bytes of the
//! `event` member as it appears in the payload. Verifiers read those bytes as they are (no
//! re-encoding), so a message whose `event` member is not the signer's canonical form fails.

use std::collections::{HashMap, HashSet};
use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::canonical::{self, CanonicalError};
use crate::common::DomainKey;
use crate::envelope::Envelope;
use crate::ids::KeyId;

/// Domain separation: prefixed to the canonical envelope before signing.
pub const SIGNING_CONTEXT: &[u8] = b"accord-event-v1\n";
/// Largest stored event, in bytes.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The signature member of a stored event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSignature {
    pub alg: SignatureAlgorithm,
    pub kid: KeyId,
    /// 64-byte Ed25519 signature, base64url without padding.
    pub value: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub enum SignatureAlgorithm {
    Ed25519,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material rejected: {0}")]
    Rejected(String),
    #[error("key {0} is not pinned")]
    NotPinned(KeyId),
    #[error("key {kid}: public key does not match its thumbprint")]
    ThumbprintMismatch { kid: KeyId },
    #[error("key is not an Ed25519 key")]
    WrongAlgorithm,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("event outside the canonical profile: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("signed event is {len} bytes, more than {MAX_EVENT_BYTES}")]
    TooLarge { len: usize },
}

/// Why stored bytes are not a well-formed event.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("event is {len} bytes, more than {MAX_EVENT_BYTES}")]
    TooLarge { len: usize },
    #[error("not an event message: {0}")]
    Json(String),
}

/// Why an event's signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("signed by key {0}, which is not pinned")]
    UnpinnedKey(KeyId),
    #[error("signed by pinned key {0}, whose public key is not known yet")]
    UnknownPublicKey(KeyId),
    #[error("signature by key {0} does not verify")]
    BadSignature(KeyId),
}

/// RFC 7638 thumbprint of an Ed25519 public key (as an OKP JWK).
pub fn ed25519_thumbprint(public_key: &[u8]) -> KeyId {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jwk.as_bytes());
    KeyId::parse(&URL_SAFE_NO_PAD.encode(d.as_ref()))
        .unwrap_or_else(|_| unreachable!("43 base64url characters always parse"))
}

/// An Ed25519 signing key held in software (the event-signing and audit keys: an HSM call per
/// event is too slow, design §3).
pub struct Ed25519Key {
    pair: Ed25519KeyPair,
    public: DomainKey,
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// A fresh key and its PKCS#8 v1 encoding (to store; never logged, never in an event).
    pub fn generate() -> Result<(Self, Vec<u8>), KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|e| KeyError::Rejected(e.to_string()))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|e| KeyError::Rejected(e.to_string()))?
            .as_ref()
            .to_vec();
        Ok((Self::from_pair(pair), der))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self::from_pair(pair))
    }

    /// From a raw 32-byte seed (RFC 8032 private key). For test vectors and fixtures.
    pub fn from_seed(seed: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: Ed25519KeyPair) -> Self {
        let pk = pair.public_key().as_ref();
        let public = DomainKey {
            kid: ed25519_thumbprint(pk),
            alg: "Ed25519".to_owned(),
            public_key: URL_SAFE_NO_PAD.encode(pk),
        };
        Self { pair, public }
    }

    pub fn public(&self) -> &DomainKey {
        &self.public
    }

    pub fn kid(&self) -> &KeyId {
        &self.public.kid
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }

    /// Signs an envelope and returns the stored form.
    pub fn sign_event(&self, mut envelope: Envelope) -> Result<SignedEvent, SignError> {
        // Canonicalise without deep-copying `data`: serialise the rest, then lend it `data`.
        let data = std::mem::take(&mut envelope.data);
        let mut value =
            serde_json::to_value(&envelope).map_err(|e| CanonicalError::Json(e.to_string()))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("data".to_owned(), data);
        }
        let event_bytes = canonical::canonical_bytes(&value);
        envelope.data = value
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .unwrap_or(Value::Null);
        let event_bytes = event_bytes?;
        let mut input = Vec::with_capacity(SIGNING_CONTEXT.len() + event_bytes.len());
        input.extend_from_slice(SIGNING_CONTEXT);
        input.extend_from_slice(&event_bytes);
        let signature = EventSignature {
            alg: SignatureAlgorithm::Ed25519,
            kid: self.public.kid.clone(),
            value: URL_SAFE_NO_PAD.encode(self.sign(&input)),
        };
        // JCS of the signature member, written directly: its members are already in order and
        // its values (a fixed name, a thumbprint and a signature in base64url) need no escaping.
        let sig_bytes = format!(
            r#"{{"alg":"Ed25519","kid":"{}","value":"{}"}}"#,
            signature.kid, signature.value
        );
        let sig_bytes = sig_bytes.as_bytes();
        // JCS of {"event": E, "sig": S}: members sorted ("event" < "sig"), each already JCS.
        let mut bytes = Vec::with_capacity(event_bytes.len() + sig_bytes.len() + 16);
        bytes.extend_from_slice(b"{\"event\":");
        bytes.extend_from_slice(&event_bytes);
        bytes.extend_from_slice(b",\"sig\":");
        bytes.extend_from_slice(sig_bytes);
        bytes.push(b'}');
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(SignError::TooLarge { len: bytes.len() });
        }
        Ok(SignedEvent {
            envelope,
            signature,
            bytes,
        })
    }
}

/// A signed event, ready to publish: `bytes` is the message payload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedEvent {
    pub envelope: Envelope,
    pub signature: EventSignature,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    event: &'a RawValue,
    sig: EventSignature,
}

fn split(bytes: &[u8]) -> Result<Wire<'_>, ParseError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len() });
    }
    serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))
}

/// An event parsed from stored bytes whose signature was NOT checked. The domain's own
/// projections read their own stream, which NATS permissions guard (design §3); anything that
/// crosses a trust boundary goes through [`KeyRing::verify`] instead.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnverifiedEvent {
    pub envelope: Envelope,
    pub signature: EventSignature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOwned {
    event: Envelope,
    sig: EventSignature,
}

/// Parses stored bytes without checking the signature (see [`UnverifiedEvent`]). One pass
/// over the bytes: the hot path of projections and aggregate loads.
pub fn parse_unverified(bytes: &[u8]) -> Result<UnverifiedEvent, ParseError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len() });
    }
    let wire: WireOwned =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    Ok(UnverifiedEvent {
        envelope: wire.event,
        signature: wire.sig,
    })
}

/// An event whose signature verified against a pinned key. Only [`KeyRing::verify`] makes one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedEvent {
    envelope: Envelope,
    kid: KeyId,
}

impl VerifiedEvent {
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }
    /// The key that signed it.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }
}

/// The keys a verifier trusts: fingerprints pinned out of band, and the public keys learned for
/// them (from a genesis event, or given directly). A log cannot vouch for its own keys: a key
/// is only usable when its thumbprint was pinned.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    pins: HashSet<KeyId>,
    keys: HashMap<KeyId, Vec<u8>>,
}

impl KeyRing {
    pub fn new(pins: impl IntoIterator<Item = KeyId>) -> Self {
        Self {
            pins: pins.into_iter().collect(),
            keys: HashMap::new(),
        }
    }

    /// Pins `key` and learns it in one step (for a domain verifying its own keys).
    pub fn trusting(keys: &[DomainKey]) -> Result<Self, KeyError> {
        let mut ring = Self::new(keys.iter().map(|k| k.kid.clone()));
        for k in keys {
            ring.learn(k)?;
        }
        Ok(ring)
    }

    pub fn is_pinned(&self, kid: &KeyId) -> bool {
        self.pins.contains(kid)
    }

    pub fn pins(&self) -> impl Iterator<Item = &KeyId> {
        self.pins.iter()
    }

    /// Learns a public key, if its thumbprint is pinned and matches.
    pub fn learn(&mut self, key: &DomainKey) -> Result<(), KeyError> {
        if key.alg != "Ed25519" {
            return Err(KeyError::WrongAlgorithm);
        }
        if !self.pins.contains(&key.kid) {
            return Err(KeyError::NotPinned(key.kid.clone()));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(&key.public_key)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        if raw.len() != 32 {
            return Err(KeyError::Rejected(
                "Ed25519 public key is not 32 bytes".into(),
            ));
        }
        if ed25519_thumbprint(&raw) != key.kid {
            return Err(KeyError::ThumbprintMismatch {
                kid: key.kid.clone(),
            });
        }
        self.keys.insert(key.kid.clone(), raw);
        Ok(())
    }

    /// Verifies stored bytes and returns the event they carry.
    pub fn verify(&self, bytes: &[u8]) -> Result<VerifiedEvent, VerifyError> {
        let wire = split(bytes)?;
        let kid = wire.sig.kid;
        self.check(&kid, wire.event.get().as_bytes(), &wire.sig.value)?;
        let envelope: Envelope =
            serde_json::from_str(wire.event.get()).map_err(|e| ParseError::Json(e.to_string()))?;
        Ok(VerifiedEvent { envelope, kid })
    }

    /// Verifies a detached signature over `context || msg` by the pinned key `kid` (what
    /// [`Ed25519Key::sign`] made over the same bytes). For signed blobs that are not events
    /// (aggregate snapshots); `context` keeps them from ever verifying as an event.
    pub fn verify_detached(
        &self,
        kid: &KeyId,
        context: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), VerifyError> {
        if context == SIGNING_CONTEXT {
            return Err(VerifyError::BadSignature(kid.clone()));
        }
        let public = self.public_key(kid)?;
        verify_ed25519(public, kid, context, msg, sig)
    }

    fn check(&self, kid: &KeyId, event_bytes: &[u8], sig_b64: &str) -> Result<(), VerifyError> {
        let public = self.public_key(kid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| VerifyError::BadSignature(kid.clone()))?;
        verify_ed25519(public, kid, SIGNING_CONTEXT, event_bytes, &sig)
    }

    /// The public key of `kid`, if it is pinned and known.
    fn public_key(&self, kid: &KeyId) -> Result<&[u8], VerifyError> {
        if !self.pins.contains(kid) {
            return Err(VerifyError::UnpinnedKey(kid.clone()));
        }
        self.keys
            .get(kid)
            .map(|k| k.as_slice())
            .ok_or_else(|| VerifyError::UnknownPublicKey(kid.clone()))
    }
}

/// An Ed25519 signature by `public` over `context || msg`.
fn verify_ed25519(
    public: &[u8],
    kid: &KeyId,
    context: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), VerifyError> {
    let mut input = Vec::with_capacity(context.len() + msg.len());
    input.extend_from_slice(context);
    input.extend_from_slice(msg);
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&input, sig)
        .map_err(|_| VerifyError::BadSignature(kid.clone()))
}

#[cfg(test)]
#[path = "signing/tests.rs"]
mod tests;
