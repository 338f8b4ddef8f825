//! Verification of a domain's whole history, as an auditor runs it (`accord audit verify`).
//!
//! Entries are fed in batches, in the order they were read. For each batch, the signature
//! checks and leaf hashes run on `threads` threads; then, in order: the sequence is the next
//! one, the event is this domain's, its aggregate's own sequence follows the previous one, its
//! leaf joins the recomputed tree, and a `CheckpointSigned` event's note must verify under a
//! pinned audit key and name the root the recomputed tree has at its size. Checkpoints held
//! elsewhere (a peer's, a witness's, an earlier run's) are compared at the end: a different
//! root at their size is a fork.
//!
//! Every failure names its kind and sequence; the report's `ok` holds only when there are
//! none. Nothing here trusts the history for its keys: the pins come from outside, and the
//! genesis only supplies the public keys whose thumbprints are pinned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use accord_events::catalogue::CheckpointSigned;
use accord_events::signing::{VerifiedEvent, VerifyError};
use accord_events::{AggregateRef, DomainId, Event, KeyId, KeyRing, TrustDomain};
use accord_store::StoredEvent;
use accord_store::reader::{EntryProblem, LogEntry, verify_entry};
use serde::Serialize;
use tlog_tiles::Hash;

use crate::note::{self, NoteKey};
use crate::tree::{MemoryTree, leaf_hash};

/// Most failures listed one by one (all are counted).
pub const MAX_LISTED_FAILURES: usize = 1000;

/// Entries one thread verifies at a time (small, so that the in-order stage follows closely
/// and a batch's last pieces are waited for briefly). Tiny in unit tests, so that their short
/// histories run through the threaded pipeline too.
#[cfg(not(test))]
const PIECE: usize = 32;
#[cfg(test)]
const PIECE: usize = 3;

/// The kinds of failure, each with a stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The history does not start with this domain's genesis, or the genesis names no pinned key.
    Genesis,
    /// Stream sequences are missing (an event removed).
    MissingEvent,
    /// A sequence at or below one already seen (events reordered or repeated).
    OutOfOrder,
    /// An event's signature does not verify (an altered event).
    BadSignature,
    /// An event signed by a key that is not pinned.
    UnpinnedKey,
    /// Stored under a subject its envelope does not name, or an event that does not decode.
    MalformedEvent,
    /// Not an event at all: a message something other than the domain's services put in the
    /// log (a JetStream API answer through a reply subject, finding 1). Readers skip it.
    ForeignMessage,
    /// An event of another domain.
    WrongDomain,
    /// An aggregate's own sequence does not follow its previous event (reordered).
    AggregateOrder,
    /// A checkpoint whose note does not verify under a pinned audit key.
    ForgedCheckpoint,
    /// A checkpoint event whose fields disagree with its note, or covering events after it.
    CheckpointMismatch,
    /// A checkpoint whose root is not the root of the leaves it covers.
    CheckpointRootMismatch,
    /// A checkpoint held elsewhere whose root differs from this history's at its size.
    Fork,
    /// A checkpoint held elsewhere covers more events than this history has.
    Truncated,
    /// A rebuilt projection differs from the live one.
    ProjectionMismatch,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Genesis => "genesis",
            Self::MissingEvent => "missing_event",
            Self::OutOfOrder => "out_of_order",
            Self::BadSignature => "bad_signature",
            Self::UnpinnedKey => "unpinned_key",
            Self::MalformedEvent => "malformed_event",
            Self::ForeignMessage => "foreign_message",
            Self::WrongDomain => "wrong_domain",
            Self::AggregateOrder => "aggregate_order",
            Self::ForgedCheckpoint => "forged_checkpoint",
            Self::CheckpointMismatch => "checkpoint_mismatch",
            Self::CheckpointRootMismatch => "checkpoint_root_mismatch",
            Self::Fork => "fork",
            Self::Truncated => "truncated",
            Self::ProjectionMismatch => "projection_mismatch",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The stream sequence it concerns (none for a checkpoint held elsewhere or a projection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(f, "{} at sequence {s}: {}", self.kind, self.detail),
            None => write!(f, "{}: {}", self.kind, self.detail),
        }
    }
}

/// A checkpoint as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSeen {
    /// Sequence of the event carrying it.
    pub seq: u64,
    pub tree_size: u64,
    pub root_hash: String,
}

/// The outcome of a projection comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionCheck {
    pub projection: String,
    /// Sequence both sides reflect.
    pub at_seq: u64,
    pub rebuilt_digest: String,
    /// `None` when the live side could not be compared (see `note`).
    pub live_digest: Option<String>,
    pub matches: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub domain: Option<String>,
    pub trust_domain: Option<String>,
    pub origin: Option<String>,
    /// Events read.
    pub events: u64,
    pub last_seq: u64,
    /// Root of the recomputed tree over every event read.
    pub root_hash: Option<String>,
    pub checkpoints: u64,
    pub last_checkpoint: Option<CheckpointSeen>,
    /// Events after the last checkpoint (not yet covered by a signature of the audit key).
    pub uncovered: u64,
    pub held_checkpoints: u64,
    pub projections: Vec<ProjectionCheck>,
    pub failures_total: u64,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
}

/// What to check against.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Thumbprints of the event-signing and audit keys, pinned out of band.
    pub pins: Vec<KeyId>,
    /// Threads for signature checks (at least 1).
    pub threads: usize,
}

/// The verifier's state between batches.
#[derive(Debug)]
pub struct Auditor {
    opts: VerifyOptions,
    ring: Option<KeyRing>,
    note_keys: Vec<NoteKey>,
    domain: Option<(DomainId, TrustDomain, String)>,
    tree: MemoryTree,
    next_seq: u64,
    events: u64,
    aggregates: HashMap<(accord_events::AggregateKind, accord_events::AggregateId), u64>,
    checkpoints: u64,
    last_checkpoint: Option<CheckpointSeen>,
    failures: Vec<Failure>,
    failures_total: u64,
    by_kind: BTreeMap<String, u64>,
    held: u64,
    projections: Vec<ProjectionCheck>,
}

/// One entry after the parallel stage: its leaf hash, and the event if its signature holds.
struct Checked {
    leaf: Hash,
    verified: Result<Body, EntryProblem>,
}

/// A verified event as the in-order stage gets it: whole (its events are returned), or
/// reduced on the verifying thread to what the in-order checks read (the rest is freed there).
enum Body {
    Whole(Box<(VerifiedEvent, Result<Event, String>)>),
    Reduced {
        domain: DomainId,
        aggregate: AggregateRef,
        /// The checkpoint, for a `CheckpointSigned` event; the decoding error otherwise.
        decoded: Result<Option<CheckpointSigned>, String>,
    },
}

impl Auditor {
    pub fn new(opts: VerifyOptions) -> Self {
        Self {
            opts,
            ring: None,
            note_keys: Vec::new(),
            domain: None,
            tree: MemoryTree::new(),
            next_seq: 1,
            events: 0,
            aggregates: HashMap::new(),
            checkpoints: 0,
            last_checkpoint: None,
            failures: Vec::new(),
            failures_total: 0,
            by_kind: BTreeMap::new(),
            held: 0,
            projections: Vec::new(),
        }
    }

    /// The recomputed tree so far.
    pub fn tree(&self) -> &MemoryTree {
        &self.tree
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The domain's origin and audit keys (after the genesis was read).
    pub fn origin(&self) -> Option<&str> {
        self.domain.as_ref().map(|d| d.2.as_str())
    }

    pub fn note_keys(&self) -> &[NoteKey] {
        &self.note_keys
    }

    fn fail(&mut self, kind: FailureKind, seq: Option<u64>, detail: impl Into<String>) {
        self.failures_total += 1;
        *self.by_kind.entry(kind.as_str().to_owned()).or_default() += 1;
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures.push(Failure {
                kind,
                seq,
                detail: detail.into(),
            });
        }
    }

    /// Reads the genesis: the domain, and the pinned keys among those it names.
    fn genesis(&mut self, e: &LogEntry) {
        let mut ring = KeyRing::new(self.opts.pins.iter().cloned());
        let parsed = match accord_events::parse_unverified(&e.payload) {
            Ok(p) => p,
            Err(err) => {
                self.fail(FailureKind::Genesis, Some(e.seq), err.to_string());
                self.ring = Some(ring);
                return;
            }
        };
        let Ok(Event::DomainCreated(g)) = parsed.envelope.decode() else {
            self.fail(
                FailureKind::Genesis,
                Some(e.seq),
                format!(
                    "the first event is {}, not DomainCreated",
                    parsed.envelope.event_type
                ),
            );
            self.ring = Some(ring);
            return;
        };
        let origin = note::origin_of(&g.trust_domain);
        let mut learned = 0;
        for k in &g.event_signing_keys {
            if ring.is_pinned(&k.kid) && ring.learn(k).is_ok() {
                learned += 1;
            }
        }
        if learned == 0 {
            self.fail(
                FailureKind::Genesis,
                Some(e.seq),
                "the genesis names no event-signing key that is pinned (is this the domain you meant?)",
            );
        }
        for k in &g.audit_keys {
            if ring.is_pinned(&k.kid)
                && let Ok(nk) = NoteKey::new(&origin, k)
            {
                self.note_keys.push(nk);
            }
        }
        if self.note_keys.is_empty() {
            self.fail(
                FailureKind::Genesis,
                Some(e.seq),
                "the genesis names no audit key that is pinned: checkpoints cannot be verified",
            );
        }
        self.domain = Some((g.domain_id.clone(), g.trust_domain.clone(), origin));
        self.ring = Some(ring);
    }

    /// Verifies a batch of entries (in read order). Returns the events that verified, in
    /// order, for projections to be rebuilt from.
    pub fn check_batch(&mut self, entries: &[LogEntry]) -> Vec<StoredEvent> {
        self.run(entries, true)
    }

    /// [`Auditor::check_batch`] for a caller that rebuilds nothing: the same checks, and the
    /// decoded events are freed on the threads that verified them.
    pub fn check_only(&mut self, entries: &[LogEntry]) {
        self.run(entries, false);
    }

    fn run(&mut self, entries: &[LogEntry], keep: bool) -> Vec<StoredEvent> {
        if entries.is_empty() {
            return Vec::new();
        }
        if self.ring.is_none() {
            if entries[0].seq != 1 {
                self.fail(
                    FailureKind::Genesis,
                    Some(entries[0].seq),
                    "the history does not start at sequence 1",
                );
            }
            self.genesis(&entries[0]);
        }
        let ring = self
            .ring
            .take()
            .unwrap_or_else(|| unreachable!("set above"));
        let out = self.pipeline(&ring, entries, keep);
        self.ring = Some(ring);
        out
    }

    /// The two stages, overlapped: the batch is cut into pieces of [`PIECE`] entries that
    /// `threads` threads verify in any order (signature, event decoding, leaf hash); the
    /// calling thread is one of them, and whenever the next piece in log order is done it runs
    /// the in-order checks over it instead of verifying more. No thread waits for the in-order
    /// stage, and only the last pieces of a batch are waited for.
    fn pipeline(&mut self, ring: &KeyRing, entries: &[LogEntry], keep: bool) -> Vec<StoredEvent> {
        let check = |e: &LogEntry| Checked {
            leaf: leaf_hash(&e.payload),
            verified: verify_entry(ring, e)
                .map(|v| {
                    let event = v.envelope().decode().map_err(|e| e.to_string());
                    if keep {
                        return Body::Whole(Box::new((v, event)));
                    }
                    let env = v.into_envelope();
                    Body::Reduced {
                        domain: env.domain,
                        aggregate: env.aggregate,
                        decoded: event.map(|ev| match ev {
                            Event::CheckpointSigned(cp) => Some(cp),
                            _ => None,
                        }),
                    }
                })
                .map_err(|err| err.problem),
        };
        let mut out = Vec::with_capacity(entries.len());
        let threads = self.opts.threads.max(1);
        if threads == 1 || entries.len() < 2 * PIECE {
            for e in entries {
                let c = check(e);
                out.extend(self.sequential(e, c));
            }
            return out;
        }
        let pieces: Vec<&[LogEntry]> = entries.chunks(PIECE).collect();
        let slots: Vec<Mutex<Option<Vec<Checked>>>> =
            pieces.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let slot = |i: usize| {
            slots[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // claims the next unverified piece and verifies it; false when none is left
        let verify_one = || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(piece) = pieces.get(i) else {
                return false;
            };
            let checked: Vec<Checked> = piece.iter().map(check).collect();
            *slot(i) = Some(checked);
            true
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| s.spawn(|| while verify_one() {}))
                .collect();
            let mut done = 0;
            while done < pieces.len() {
                let ready = slot(done).take();
                if let Some(checked) = ready {
                    for (e, c) in pieces[done].iter().zip(checked) {
                        out.extend(self.sequential(e, c));
                    }
                    done += 1;
                } else if !verify_one() {
                    // the rest is being verified by the other threads; if they all ended
                    // without delivering it, one panicked: the scope's join re-raises it
                    let stuck = helpers.iter().all(|h| h.is_finished()) && slot(done).is_none();
                    if stuck {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        });
        out
    }

    fn sequential(&mut self, e: &LogEntry, c: Checked) -> Option<StoredEvent> {
        if e.seq < self.next_seq {
            self.fail(
                FailureKind::OutOfOrder,
                Some(e.seq),
                format!("read after sequence {}", self.next_seq - 1),
            );
            return None;
        }
        if e.seq > self.next_seq {
            let (a, b) = (self.next_seq, e.seq - 1);
            self.fail(
                FailureKind::MissingEvent,
                Some(a),
                if a == b {
                    format!("sequence {a} is missing")
                } else {
                    format!("sequences {a}..={b} are missing")
                },
            );
        }
        self.next_seq = e.seq + 1;
        self.events += 1;
        self.tree.push_hash(c.leaf);
        let body = match c.verified {
            Ok(b) => b,
            Err(p) => {
                let kind = match &p {
                    EntryProblem::Signature(VerifyError::BadSignature(_)) => {
                        FailureKind::BadSignature
                    }
                    EntryProblem::Signature(
                        VerifyError::UnpinnedKey(_) | VerifyError::UnknownPublicKey(_),
                    ) => FailureKind::UnpinnedKey,
                    EntryProblem::NotAnEvent(_) => FailureKind::ForeignMessage,
                    _ => FailureKind::MalformedEvent,
                };
                self.fail(kind, Some(e.seq), p.to_string());
                return None;
            }
        };
        let (domain, aggregate) = match &body {
            Body::Whole(w) => (&w.0.envelope().domain, &w.0.envelope().aggregate),
            Body::Reduced {
                domain, aggregate, ..
            } => (domain, aggregate),
        };
        if let Some((d, _, _)) = &self.domain
            && domain != d
        {
            let detail = format!("an event of domain {domain}");
            self.fail(FailureKind::WrongDomain, Some(e.seq), detail);
            return None;
        }
        if aggregate.seq > 0 {
            let key = (aggregate.kind, aggregate.id.clone());
            let prev = self.aggregates.get(&key).copied().unwrap_or(0);
            if aggregate.seq != prev + 1 {
                let detail = format!(
                    "{}/{} event {} follows its event {prev}",
                    aggregate.kind, aggregate.id, aggregate.seq
                );
                self.fail(FailureKind::AggregateOrder, Some(e.seq), detail);
            }
            self.aggregates.insert(key, aggregate.seq.max(prev));
        }
        match body {
            Body::Whole(w) => {
                let (v, decoded) = *w;
                let event = match decoded {
                    Ok(ev) => ev,
                    Err(err) => {
                        self.fail(FailureKind::MalformedEvent, Some(e.seq), err);
                        return None;
                    }
                };
                if let Event::CheckpointSigned(cp) = &event {
                    self.checkpoint(e.seq, cp);
                }
                Some(StoredEvent {
                    stream_seq: e.seq,
                    envelope: v.into_envelope(),
                    event,
                })
            }
            Body::Reduced { decoded, .. } => {
                match decoded {
                    Ok(Some(cp)) => self.checkpoint(e.seq, &cp),
                    Ok(None) => {}
                    Err(err) => self.fail(FailureKind::MalformedEvent, Some(e.seq), err),
                }
                None
            }
        }
    }

    fn checkpoint(&mut self, seq: u64, cp: &CheckpointSigned) {
        self.checkpoints += 1;
        let Some(origin) = self.origin().map(str::to_owned) else {
            return;
        };
        let opened = match note::open_checkpoint(&cp.note, &origin, &self.note_keys) {
            Ok(o) => o,
            Err(p) => {
                self.fail(FailureKind::ForgedCheckpoint, Some(seq), p.to_string());
                return;
            }
        };
        if opened.size != cp.tree_size
            || note::b64(&opened.root) != cp.root_hash
            || opened.signed_by != cp.key
        {
            self.fail(
                FailureKind::CheckpointMismatch,
                Some(seq),
                "the event's tree_size, root_hash or key differ from its signed note",
            );
            return;
        }
        if cp.tree_size >= seq {
            self.fail(
                FailureKind::CheckpointMismatch,
                Some(seq),
                format!(
                    "covers {} events, but stands at sequence {seq}",
                    cp.tree_size
                ),
            );
            return;
        }
        if let Some(prev) = &self.last_checkpoint
            && cp.tree_size < prev.tree_size
        {
            self.fail(
                FailureKind::CheckpointMismatch,
                Some(seq),
                format!(
                    "covers {} events, fewer than the checkpoint at sequence {} ({})",
                    cp.tree_size, prev.seq, prev.tree_size
                ),
            );
        }
        match self.tree.root(cp.tree_size) {
            Ok(root) if root == opened.root => {}
            Ok(root) => self.fail(
                FailureKind::CheckpointRootMismatch,
                Some(seq),
                format!(
                    "signed root {} for {} events, recomputed {}",
                    cp.root_hash,
                    cp.tree_size,
                    note::b64(&root)
                ),
            ),
            Err(e) => self.fail(
                FailureKind::CheckpointRootMismatch,
                Some(seq),
                e.to_string(),
            ),
        }
        self.last_checkpoint = Some(CheckpointSeen {
            seq,
            tree_size: cp.tree_size,
            root_hash: cp.root_hash.clone(),
        });
    }

    /// Compares a checkpoint someone else holds (a signed note) with this history.
    pub fn held_checkpoint(&mut self, note_text: &str) {
        self.held += 1;
        let Some(origin) = self.origin().map(str::to_owned) else {
            self.fail(
                FailureKind::Genesis,
                None,
                "no genesis read: held checkpoints cannot be checked",
            );
            return;
        };
        let opened = match note::open_checkpoint(note_text, &origin, &self.note_keys) {
            Ok(o) => o,
            Err(p) => {
                self.fail(
                    FailureKind::ForgedCheckpoint,
                    None,
                    format!("held checkpoint: {p}"),
                );
                return;
            }
        };
        if opened.size > self.tree.leaves() {
            self.fail(
                FailureKind::Truncated,
                None,
                format!(
                    "a held checkpoint covers {} events; this history has {}",
                    opened.size,
                    self.tree.leaves()
                ),
            );
            return;
        }
        match self.tree.root(opened.size) {
            Ok(root) if root == opened.root => {}
            Ok(root) => self.fail(
                FailureKind::Fork,
                Some(opened.size),
                format!(
                    "a held checkpoint signs root {} for {} events; this history's is {}",
                    note::b64(&opened.root),
                    opened.size,
                    note::b64(&root)
                ),
            ),
            Err(e) => self.fail(FailureKind::Fork, Some(opened.size), e.to_string()),
        }
    }

    /// Records a projection comparison.
    pub fn projection(&mut self, check: ProjectionCheck) {
        if check.matches == Some(false) {
            self.fail(
                FailureKind::ProjectionMismatch,
                None,
                format!(
                    "{} at sequence {}: rebuilt {}, live {}",
                    check.projection,
                    check.at_seq,
                    check.rebuilt_digest,
                    check.live_digest.as_deref().unwrap_or("-")
                ),
            );
        }
        self.projections.push(check);
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let leaves = self.tree.leaves();
        Report {
            ok: self.failures_total == 0 && self.ring.is_some(),
            domain: self.domain.as_ref().map(|d| d.0.to_string()),
            trust_domain: self.domain.as_ref().map(|d| d.1.to_string()),
            origin: self.origin().map(str::to_owned),
            events: self.events,
            last_seq: self.last_seq(),
            root_hash: self.tree.root(leaves).ok().map(|h| note::b64(&h)),
            checkpoints: self.checkpoints,
            last_checkpoint: self.last_checkpoint.clone(),
            uncovered: leaves
                - self
                    .last_checkpoint
                    .as_ref()
                    .map_or(0, |c| c.tree_size.min(leaves)),
            held_checkpoints: self.held,
            projections: self.projections.clone(),
            failures_total: self.failures_total,
            failures_by_kind: self.by_kind.clone(),
            failures: self.failures.clone(),
        }
    }
}

#[cfg(test)]
#[path = "verify/tests.rs"]
mod tests;
