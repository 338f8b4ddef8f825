//! Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note).
//!
//! ```text
//! org-a.example/accord/events          origin: the trust domain, then /accord/events
//! 1234                                 tree size (leaves = stream sequences 1..=1234)
//! 8fK...=                              root hash, standard base64
//! domain org-a org-a.example           extension: domain id and trust domain
//! time 2026-11-26T18:00:00.000000Z     extension: when it was signed
//!
//! — org-a.example/accord/events AbCd...   Ed25519 signature by the domain's audit key
//! ```
//!
//! The key name is the origin; the key id is the first four bytes of
//! `SHA-256(name || "\n" || 0x01 || public key)`. Note parsing and formatting are
//! `signed_note`'s and `tlog_tiles`'s (Cloudflare's ports of Go's `sumdb/note` and `tlog`);
//! the Ed25519 operations are aws-lc-rs's, the same as the event signatures.

use accord_events::{DomainId, DomainKey, Ed25519Key, KeyId, Timestamp, TrustDomain};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use signed_note::{Note, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// Largest note accepted.
pub const MAX_NOTE_BYTES: usize = 4096;

/// The origin line of a domain's log.
pub fn origin_of(trust_domain: &TrustDomain) -> String {
    format!("{}/accord/events", trust_domain.as_str())
}

/// Why a note is not a valid checkpoint of this log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteProblem {
    #[error("not a checkpoint note: {0}")]
    Malformed(String),
    #[error("origin {found:?} is not this log's {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error("no signature by a pinned audit key")]
    NoKnownSignature,
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("audit key: {0}")]
    Key(String),
}

/// A pinned audit key, as a note verifier.
#[derive(Debug, Clone)]
pub struct NoteKey {
    name: String,
    id: u32,
    public: Vec<u8>,
    kid: KeyId,
}

impl NoteKey {
    /// The verifier of `key` (an Ed25519 key from the genesis' `audit_keys`) for `origin`.
    pub fn new(origin: &str, key: &DomainKey) -> Result<Self, NoteProblem> {
        if key.alg != "Ed25519" {
            return Err(NoteProblem::Key(format!("{} is not Ed25519", key.kid)));
        }
        let public = URL_SAFE_NO_PAD
            .decode(&key.public_key)
            .map_err(|e| NoteProblem::Key(e.to_string()))?;
        if public.len() != 32 {
            return Err(NoteProblem::Key("not a 32-byte key".into()));
        }
        if accord_events::signing::ed25519_thumbprint(&public) != key.kid {
            return Err(NoteProblem::Key(format!(
                "{} does not match its public key",
                key.kid
            )));
        }
        if !signed_note::is_key_name_valid(origin) {
            return Err(NoteProblem::Key(format!("{origin:?} is not a key name")));
        }
        Ok(Self {
            name: origin.to_owned(),
            id: key_id(origin, &public),
            public,
            kid: key.kid.clone(),
        })
    }

    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The verifier key in the `name+hex id+base64(0x01||key)` form other tools read.
    pub fn vkey(&self) -> String {
        let mut k = vec![1u8];
        k.extend_from_slice(&self.public);
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(k))
    }
}

fn key_id(name: &str, public: &[u8]) -> u32 {
    let mut k = vec![1u8];
    k.extend_from_slice(public);
    signed_note::key_id(name, &k)
}

impl signed_note::Verifier for NoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(msg, sig)
            .is_ok()
    }
}

struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    key: &'a Ed25519Key,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign(msg).to_vec())
    }
}

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointBody {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub domain: DomainId,
    pub trust_domain: TrustDomain,
    pub time: Timestamp,
}

/// Signs a checkpoint with the audit key; returns the whole note.
pub fn sign_checkpoint(key: &Ed25519Key, body: &CheckpointBody) -> Result<String, NoteProblem> {
    let ext = format!(
        "domain {} {}\ntime {}\n",
        body.domain.as_str(),
        body.trust_domain.as_str(),
        body.time
    );
    let cp = Checkpoint::new(&body.origin, body.size, body.root, &ext)
        .map_err(|e| NoteProblem::Malformed(e.to_string()))?;
    let mut note =
        Note::new(&cp.to_bytes(), &[]).map_err(|e| NoteProblem::Malformed(e.to_string()))?;
    let public = URL_SAFE_NO_PAD
        .decode(&key.public().public_key)
        .map_err(|e| NoteProblem::Key(e.to_string()))?;
    let signer = NoteSigner {
        name: &body.origin,
        id: key_id(&body.origin, &public),
        key,
    };
    note.add_sigs(&[&signer])
        .map_err(|e| NoteProblem::Malformed(e.to_string()))?;
    String::from_utf8(note.to_bytes()).map_err(|e| NoteProblem::Malformed(e.to_string()))
}

/// A checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The extension lines, as written.
    pub extensions: Vec<String>,
    /// The `time` extension, when present.
    pub time: Option<String>,
    /// The RFC 7638 thumbprint of the audit key that signed it.
    pub signed_by: KeyId,
}

/// Parses a note, checks it is a checkpoint of `origin`, and verifies a signature by one of
/// `keys` (signatures by other keys, e.g. witnesses, are ignored).
pub fn open_checkpoint(
    note: &str,
    origin: &str,
    keys: &[NoteKey],
) -> Result<OpenedCheckpoint, NoteProblem> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteProblem::Malformed(format!(
            "{} bytes, more than {MAX_NOTE_BYTES}",
            note.len()
        )));
    }
    let parsed =
        Note::from_bytes(note.as_bytes()).map_err(|e| NoteProblem::Malformed(e.to_string()))?;
    let cp =
        Checkpoint::from_bytes(parsed.text()).map_err(|e| NoteProblem::Malformed(e.to_string()))?;
    if cp.origin() != origin {
        return Err(NoteProblem::WrongOrigin {
            expected: origin.to_owned(),
            found: cp.origin().to_owned(),
        });
    }
    let list = VerifierList::new(
        keys.iter()
            .map(|k| Box::new(k.clone()) as Box<dyn signed_note::Verifier>)
            .collect(),
    );
    let (verified, _) = parsed.verify(&list).map_err(|e| match e {
        signed_note::NoteError::UnverifiedNote => NoteProblem::NoKnownSignature,
        signed_note::NoteError::InvalidSignature { name, id } => {
            NoteProblem::BadSignature(format!("{name}+{id:08x}"))
        }
        other => NoteProblem::Malformed(other.to_string()),
    })?;
    let signed_by = verified
        .iter()
        .find_map(|s| {
            keys.iter()
                .find(|k| k.name == s.name() && k.id == s.id())
                .map(|k| k.kid.clone())
        })
        .ok_or(NoteProblem::NoKnownSignature)?;
    let extensions: Vec<String> = cp.extension().lines().map(str::to_owned).collect();
    let time = extensions
        .iter()
        .find_map(|l| l.strip_prefix("time "))
        .map(str::to_owned);
    Ok(OpenedCheckpoint {
        origin: cp.origin().to_owned(),
        size: cp.size(),
        root: *cp.hash(),
        extensions,
        time,
        signed_by,
    })
}

/// Standard base64 of a hash, as in notes and proofs.
pub fn b64(h: &Hash) -> String {
    STANDARD.encode(h.0)
}

/// A hash from standard base64.
pub fn hash_from_b64(s: &str) -> Option<Hash> {
    let v = STANDARD.decode(s).ok()?;
    let a: [u8; 32] = v.try_into().ok()?;
    Some(Hash(a))
}

#[cfg(test)]
#[path = "note/tests.rs"]
mod tests;
