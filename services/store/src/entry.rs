//! What every reader of the log checks before it believes an entry (security review 2026-12,
//! finding 1): the message is a signed event of this domain, under a key the reader trusts,
//! stored under the subject its envelope names, of a type and version this code decodes.
//! Anything else is **foreign**: it is skipped, counted and reported with its sequence, and it
//! never stops a reader or an aggregate (the log denies deletes, so a foreign message stays
//! for ever; a reader that stopped on it would stop for ever).
//!
//! Checking costs an Ed25519 verification per entry. The domain's own appends seed a small
//! cache of (sequence, SHA-256 of the stored bytes) as they are acknowledged, and every check
//! that passes adds to it, so the projections of one process verify an event once between
//! them, and not at all when the process wrote it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use accord_events::signing::{VerifiedEvent, VerifyError};
use accord_events::{DomainId, KeyRing, Subject};

use crate::StoredEvent;

/// Why an entry of the log is not an authentic event of this domain.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("signature: {0}")]
    Signature(VerifyError),
    #[error("{0}")]
    NotAnEvent(String),
    #[error("stored under {stored} but the envelope says {claimed}")]
    SubjectMismatch { stored: String, claimed: String },
    #[error("an event of domain {0}, not this one")]
    OtherDomain(String),
    #[error("the event's data does not decode: {0}")]
    Undecodable(String),
}

impl EntryProblem {
    /// A short stable name (metrics, reports, `audit verify`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Signature(VerifyError::UnpinnedKey(_) | VerifyError::UnknownPublicKey(_)) => {
                "unpinned_key"
            }
            Self::Signature(_) => "bad_signature",
            Self::NotAnEvent(_) => "not_an_event",
            Self::SubjectMismatch { .. } => "subject_mismatch",
            Self::OtherDomain(_) => "other_domain",
            Self::Undecodable(_) => "undecodable",
        }
    }

    pub(crate) fn of_verify(e: VerifyError) -> Self {
        match e {
            VerifyError::Parse(p) => Self::NotAnEvent(p.to_string()),
            other => Self::Signature(other),
        }
    }
}

/// A problem with the entry at `seq`.
#[derive(Debug, thiserror::Error)]
#[error("entry at sequence {seq}: {problem}")]
pub struct EntryError {
    pub seq: u64,
    pub problem: EntryProblem,
}

/// Sequences whose stored bytes were already found authentic (or written by this process):
/// sequence → SHA-256 of the bytes.
#[derive(Debug)]
pub(crate) struct VerifiedCache {
    inner: quick_cache::sync::Cache<u64, [u8; 32]>,
    /// Messages this process signed and is about to publish, before the server has given them
    /// a sequence (a reader may see one before its append's acknowledgement returns): SHA-256
    /// of the bytes → the subject they are published under.
    signed: quick_cache::sync::Cache<[u8; 32], std::sync::Arc<str>>,
}

pub(crate) fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl VerifiedCache {
    pub(crate) fn new(entries: usize) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(entries.max(16)),
            signed: quick_cache::sync::Cache::new((entries / 16).max(16)),
        }
    }

    pub(crate) fn insert_digest(&self, seq: u64, digest: [u8; 32]) {
        self.inner.insert(seq, digest);
    }

    /// Remembers bytes this process signed, to be published under `subject`; returns their
    /// digest, for [`VerifiedCache::insert_digest`] once they have a sequence.
    pub(crate) fn signed_here(&self, subject: &str, bytes: &[u8]) -> [u8; 32] {
        let d = digest(bytes);
        self.signed.insert(d, subject.into());
        d
    }

    pub(crate) fn clear(&self) {
        self.inner.clear();
        self.signed.clear();
    }
}

/// Checks entries of one domain's log against the keys the domain trusts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EntryChecker {
    domain: DomainId,
    ring: Arc<RwLock<Arc<KeyRing>>>,
    cache: Arc<VerifiedCache>,
}

impl EntryChecker {
    /// A checker trusting `ring` (pinned and learned keys) for events of `domain`.
    pub fn new(domain: DomainId, ring: KeyRing) -> Self {
        Self {
            domain,
            ring: Arc::new(RwLock::new(Arc::new(ring))),
            cache: Arc::new(VerifiedCache::new(1 << 18)),
        }
    }

    pub fn domain(&self) -> &DomainId {
        &self.domain
    }

    /// Replaces the trusted keys (after the genesis named them).
    pub fn trust(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// The keys it trusts now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    fn problem(seq: u64, problem: EntryProblem) -> EntryError {
        EntryError { seq, problem }
    }

    /// Whether the entry is an authentic event of this domain (its signature, domain and
    /// subject), without decoding its data: one SHA-256 when this process already checked or
    /// wrote it. For readers that hash every entry and decode few (the audit log).
    pub fn authentic(&self, seq: u64, subject: &str, payload: &[u8]) -> Result<(), EntryError> {
        self.authenticate(seq, subject, payload).map(|_| ())
    }

    /// The event at `seq`, stored under `subject` as `payload`, if it is an authentic event of
    /// this domain; otherwise why not.
    pub fn check(
        &self,
        seq: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<StoredEvent, EntryError> {
        let err = |p| Self::problem(seq, p);
        let envelope = match self.authenticate(seq, subject, payload)? {
            Some(e) => e,
            None => {
                accord_events::parse_unverified(payload)
                    .map_err(|e| err(EntryProblem::NotAnEvent(e.to_string())))?
                    .envelope
            }
        };
        let event = envelope
            .decode()
            .map_err(|e| err(EntryProblem::Undecodable(e.to_string())))?;
        Ok(StoredEvent {
            stream_seq: seq,
            envelope,
            event,
        })
    }

    /// Signature, domain and subject, once per sequence in this process: a hit in the cache
    /// is the same bytes already found authentic (`None`: the caller parses them); otherwise
    /// this call verifies (returning the envelope it parsed), while concurrent readers of the
    /// same sequence wait for its answer instead of verifying again.
    fn authenticate(
        &self,
        seq: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<Option<accord_events::Envelope>, EntryError> {
        use quick_cache::sync::GuardResult;
        let d = digest(payload);
        let guard = match self.cache.inner.get_value_or_guard(&seq, None) {
            GuardResult::Value(v) if v == d => return Ok(None),
            GuardResult::Guard(g) => Some(g),
            // other bytes than those found authentic at this sequence: check these
            GuardResult::Value(_) | GuardResult::Timeout => None,
        };
        // bytes this process signed itself, under the subject it published them to: authentic
        // by construction (read before the append's acknowledgement put them in the cache)
        if guard.is_some() && self.cache.signed.get(&d).is_some_and(|s| &*s == subject) {
            if let Some(g) = guard {
                let _ = g.insert(d);
            }
            return Ok(None);
        }
        let envelope = self.verify(seq, subject, payload)?;
        if let Some(g) = guard {
            let _ = g.insert(d);
        }
        Ok(Some(envelope))
    }

    fn verify(
        &self,
        seq: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<accord_events::Envelope, EntryError> {
        let ring = self
            .ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        authenticate(&ring, Some(&self.domain), seq, subject, payload)
            .map(VerifiedEvent::into_envelope)
    }
}

/// What every reader of a log checks of one stored entry, whoever it is (the domain's own
/// readers, auditors, agents): the signature is by a key of `ring`, the event is of `domain`
/// (when given; an auditor names a wrong domain itself), and it is stored under the subject its
/// envelope names (an event moved to another aggregate is not authentic there).
pub fn authenticate(
    ring: &KeyRing,
    domain: Option<&DomainId>,
    seq: u64,
    subject: &str,
    payload: &[u8],
) -> Result<VerifiedEvent, EntryError> {
    let err = |problem| EntryError { seq, problem };
    let verified = ring
        .verify(payload)
        .map_err(|e| err(EntryProblem::of_verify(e)))?;
    let envelope = verified.envelope();
    if let Some(d) = domain
        && envelope.domain != *d
    {
        return Err(err(EntryProblem::OtherDomain(envelope.domain.to_string())));
    }
    let claimed = envelope.subject().to_string();
    if claimed != subject || Subject::parse(subject).is_err() {
        return Err(err(EntryProblem::SubjectMismatch {
            stored: subject.to_owned(),
            claimed,
        }));
    }
    Ok(verified)
}

/// A foreign entry as reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignEntry {
    pub seq: u64,
    pub subject: String,
    /// [`EntryProblem::kind`].
    pub kind: &'static str,
    pub detail: String,
    /// The readers that met it (`projection:credentials`, `aggregate`, `feed`, ...).
    pub readers: BTreeSet<String>,
}

/// Most distinct foreign entries remembered (the lowest sequences are forgotten first; the
/// counters keep counting).
pub const MAX_REMEMBERED: usize = 256;

#[derive(Debug, Default)]
struct ForeignState {
    entries: BTreeMap<u64, ForeignEntry>,
    /// Entries met, by reader (each reader counts a sequence once).
    counts: BTreeMap<String, u64>,
    /// Distinct sequences met.
    distinct: u64,
}

/// The foreign entries this process's readers met: counted per reader
/// (`accord_log_foreign_messages`), the latest remembered with their sequences. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ForeignLog {
    state: Arc<Mutex<ForeignState>>,
}

impl ForeignLog {
    /// Records that `reader` skipped the entry of `err`, stored under `subject`. Returns true
    /// the first time this reader meets this sequence (log it then, not at every redelivery).
    pub fn report(&self, reader: &str, subject: &str, err: &EntryError) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.entries.contains_key(&err.seq) {
            s.distinct += 1;
        }
        let entry = s.entries.entry(err.seq).or_insert_with(|| ForeignEntry {
            seq: err.seq,
            subject: subject.to_owned(),
            kind: err.problem.kind(),
            detail: err.problem.to_string(),
            readers: BTreeSet::new(),
        });
        let first = entry.readers.insert(reader.to_owned());
        if first {
            *s.counts.entry(reader.to_owned()).or_default() += 1;
            tracing::warn!(
                reader,
                seq = err.seq,
                subject,
                kind = err.problem.kind(),
                problem = %err.problem,
                "skipped a foreign message in the log"
            );
        }
        while s.entries.len() > MAX_REMEMBERED {
            s.entries.pop_first();
        }
        first
    }

    /// The remembered entries, by sequence.
    pub fn entries(&self) -> Vec<ForeignEntry> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.entries.values().cloned().collect()
    }

    /// Sequences `reader` skipped (of those remembered).
    pub fn seqs_of(&self, reader: &str) -> Vec<u64> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.entries
            .values()
            .filter(|e| e.readers.contains(reader))
            .map(|e| e.seq)
            .collect()
    }

    /// Entries met, by reader.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Distinct sequences met by any reader.
    pub fn total(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .distinct
    }
}

#[cfg(test)]
#[path = "entry/tests.rs"]
mod tests;
