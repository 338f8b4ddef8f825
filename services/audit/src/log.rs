//! The live audit log of a domain: follows the stream in order, appends each message's leaf to
//! the tree, keeps the checkpoints the stream carries, and (with the audit key) signs a new
//! checkpoint when events exist that the last one does not cover, every `every_events` events
//! or `every` at the latest. The tree's stored hashes live in memory and, with PostgreSQL, also
//! in `accord_audit_*` tables, so a restart reads them back instead of the stream.
//!
//! Checkpoints are `CheckpointSigned` events of the `audit` aggregate (id = the domain id),
//! appended with compare-and-set: when two instances race, one wins and the other sees its
//! checkpoint. A checkpoint's own event is a leaf like any other, covered by the next one; a
//! log with nothing but checkpoints since the last checkpoint is idle and does not grow.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use accord_events::catalogue::CheckpointSigned;
use accord_events::{
    Actor, AggregateId, AggregateKind, CommandId, DomainId, Ed25519Key, Event, Metadata, Timestamp,
    TrustDomain,
};
use accord_store::projection::postgres::PgStore;
use accord_store::reader::{LogEntry, LogReader, subject_matches};
use accord_store::{EntryChecker, EventStore, ForeignLog, StoreError, Version};
use futures::StreamExt;
use serde::Serialize;
use tlog_tiles::Hash;
use tokio::sync::watch;

use crate::note::{self, CheckpointBody, NoteKey};
use crate::tree::{MemoryTree, ProofError, check_consistency, check_inclusion, leaf_hash};

/// When to sign a checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointCadence {
    /// As soon as this many leaves are not covered.
    pub every_events: u64,
    /// At the latest this long after the last checkpoint, when anything is not covered.
    pub every: Duration,
}

impl Default for CheckpointCadence {
    fn default() -> Self {
        Self {
            every_events: 1000,
            every: Duration::from_millis(1000),
        }
    }
}

/// A checkpoint the stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRecord {
    /// Sequence of its `CheckpointSigned` event.
    pub seq: u64,
    pub tree_size: u64,
    pub root_hash: String,
    pub note: String,
}

/// An inclusion proof, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub root_hash: String,
    pub hashes: Vec<String>,
    /// The signed checkpoint of `tree_size`, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// A consistency proof, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    pub first_root: String,
    pub second_root: String,
    pub hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_checkpoint: Option<String>,
}

fn hashes_of(v: &[String]) -> Result<Vec<Hash>, ProofError> {
    v.iter()
        .map(|s| note::hash_from_b64(s).ok_or(ProofError::Invalid))
        .collect()
}

impl InclusionProof {
    /// Checks the proof's hashes lead from its leaf to its root.
    pub fn check(&self) -> Result<(), ProofError> {
        let leaf = note::hash_from_b64(&self.leaf_hash).ok_or(ProofError::Invalid)?;
        let root = note::hash_from_b64(&self.root_hash).ok_or(ProofError::Invalid)?;
        if self.seq != self.leaf_index + 1 {
            return Err(ProofError::Invalid);
        }
        check_inclusion(
            &hashes_of(&self.hashes)?,
            self.tree_size,
            root,
            self.leaf_index,
            leaf,
        )
    }
}

impl ConsistencyProof {
    pub fn check(&self) -> Result<(), ProofError> {
        let a = note::hash_from_b64(&self.first_root).ok_or(ProofError::Invalid)?;
        let b = note::hash_from_b64(&self.second_root).ok_or(ProofError::Invalid)?;
        check_consistency(&hashes_of(&self.hashes)?, self.first, a, self.second, b)
    }
}

/// Who the log belongs to.
#[derive(Debug, Clone)]
pub struct LogIdentity {
    pub domain: DomainId,
    pub trust_domain: TrustDomain,
}

impl LogIdentity {
    pub fn origin(&self) -> String {
        note::origin_of(&self.trust_domain)
    }
}

#[derive(Debug, Default)]
struct State {
    tree: MemoryTree,
    checkpoints: Vec<CheckpointRecord>,
    /// Last sequence that is not a checkpoint.
    last_event: u64,
    /// When the latest checkpoint was seen (or the log was opened).
    last_checkpoint_at: Option<Instant>,
    /// Where the `audit` aggregate stands (every `CheckpointSigned` event, refused or not):
    /// the next checkpoint's compare-and-set expectation, without loading the aggregate.
    audit_version: Version,
}

impl State {
    fn covered(&self) -> u64 {
        self.checkpoints.last().map_or(0, |c| c.tree_size)
    }
}

struct Inner {
    id: LogIdentity,
    origin: String,
    state: RwLock<State>,
    applied: watch::Sender<u64>,
    pg: Option<Arc<PgStore>>,
    error: RwLock<Option<String>>,
    /// The domain's audit keys (from the genesis), for checkpoints read from the stream.
    keys: Vec<NoteKey>,
    /// Checkpoints in the stream that were refused.
    refused: std::sync::atomic::AtomicU64,
    /// The audit aggregate's subjects (`accord.evt.<d>.audit.<d>.*`).
    audit_filter: String,
    /// Which entries are authentic events of the domain; the others are reported here.
    checker: EntryChecker,
    foreign: ForeignLog,
}

/// The running audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.inner.origin)
            .field("applied", &*self.inner.applied.borrow())
            .finish()
    }
}

/// Where the audit log stands.
#[derive(Debug, Clone, Serialize)]
pub struct AuditStatus {
    pub origin: String,
    /// Leaves in the tree = the last stream sequence applied.
    pub tree_size: u64,
    pub root_hash: String,
    pub checkpoints: usize,
    pub latest: Option<CheckpointRecord>,
    /// Checkpoints found in the stream that do not verify against this tree (see the log).
    pub refused_checkpoints: u64,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("no checkpoint covers event {0} yet")]
    NoCheckpoint(u64),
    #[error("audit storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the checkpoint: {0}")]
    Sign(String),
}

impl AuditLog {
    /// Opens the log: reads the stored tree back (PostgreSQL) or starts empty (memory), then
    /// follows the stream from there until `shutdown`.
    pub async fn start(
        id: LogIdentity,
        audit_keys: &[accord_events::DomainKey],
        reader: LogReader,
        entries: (EntryChecker, ForeignLog),
        pg: Option<Arc<PgStore>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, AuditError> {
        let state = match &pg {
            Some(pg) => load(pg).await?,
            None => State::default(),
        };
        let applied = state.tree.leaves();
        let origin = id.origin();
        let keys = audit_keys
            .iter()
            .map(|k| NoteKey::new(&origin, k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::Sign(e.to_string()))?;
        let audit_filter = accord_events::subject::aggregate_filter(
            &id.domain,
            AggregateKind::Audit,
            &AggregateId::parse(id.domain.as_str())
                .unwrap_or_else(|_| unreachable!("a domain id is an aggregate id")),
        );
        let log = Self {
            inner: Arc::new(Inner {
                origin,
                audit_filter,
                checker: entries.0,
                foreign: entries.1,
                id,
                keys,
                refused: std::sync::atomic::AtomicU64::new(0),
                state: RwLock::new(State {
                    last_checkpoint_at: Some(Instant::now()),
                    ..state
                }),
                applied: watch::channel(applied).0,
                pg,
                error: RwLock::new(None),
            }),
        };
        tokio::spawn(log.clone().follow(reader, shutdown));
        Ok(log)
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    pub fn identity(&self) -> &LogIdentity {
        &self.inner.id
    }

    /// Leaves applied (= last stream sequence applied).
    pub fn applied(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Waits until the log has applied `seq`.
    pub async fn wait_for(&self, seq: u64, within: Duration) -> bool {
        let mut rx = self.inner.applied.subscribe();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|a| *a >= seq)).await,
            Ok(Ok(_))
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> AuditStatus {
        let st = self.read();
        let n = st.tree.leaves();
        AuditStatus {
            origin: self.inner.origin.clone(),
            tree_size: n,
            root_hash: st.tree.root(n).map(|h| note::b64(&h)).unwrap_or_default(),
            checkpoints: st.checkpoints.len(),
            latest: st.checkpoints.last().cloned(),
            refused_checkpoints: self
                .inner
                .refused
                .load(std::sync::atomic::Ordering::Relaxed),
            error: self
                .inner
                .error
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// Checkpoints, in log order, those with event sequence after `after`, at most `limit`.
    pub fn checkpoints(&self, after: u64, limit: usize) -> Vec<CheckpointRecord> {
        let st = self.read();
        let start = st.checkpoints.partition_point(|c| c.seq <= after);
        st.checkpoints[start..]
            .iter()
            .take(limit)
            .cloned()
            .collect()
    }

    fn checkpoint_of(st: &State, size: u64) -> Option<String> {
        st.checkpoints
            .iter()
            .rev()
            .find(|c| c.tree_size == size)
            .map(|c| c.note.clone())
    }

    /// The inclusion proof of the event at `seq` in the tree of `tree_size` (default: the
    /// latest checkpoint's, which must cover it).
    pub fn inclusion(
        &self,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, AuditError> {
        let st = self.read();
        let size = match tree_size {
            Some(s) => s,
            None => {
                let c = st.covered();
                if c < seq {
                    return Err(AuditError::NoCheckpoint(seq));
                }
                c
            }
        };
        if seq == 0 {
            return Err(ProofError::LeafOutside { index: 0, size }.into());
        }
        let index = seq - 1;
        let hashes = st.tree.inclusion(index, size)?;
        Ok(InclusionProof {
            seq,
            leaf_index: index,
            tree_size: size,
            leaf_hash: note::b64(&st.tree.leaf(index)?),
            root_hash: note::b64(&st.tree.root(size)?),
            hashes: hashes.iter().map(note::b64).collect(),
            checkpoint: Self::checkpoint_of(&st, size),
        })
    }

    /// The consistency proof between the trees of `first` and `second` leaves.
    pub fn consistency(&self, first: u64, second: u64) -> Result<ConsistencyProof, AuditError> {
        let st = self.read();
        let hashes = st.tree.consistency(first, second)?;
        Ok(ConsistencyProof {
            first,
            second,
            first_root: note::b64(&st.tree.root(first)?),
            second_root: note::b64(&st.tree.root(second)?),
            hashes: hashes.iter().map(note::b64).collect(),
            first_checkpoint: Self::checkpoint_of(&st, first),
            second_checkpoint: Self::checkpoint_of(&st, second),
        })
    }

    async fn follow(self, reader: LogReader, mut shutdown: watch::Receiver<bool>) {
        let filter = accord_events::subject::domain_filter(&self.inner.id.domain);
        let mut backoff = Duration::from_millis(100);
        loop {
            let from = self.applied() + 1;
            let run = async {
                let entries = reader.follow(&filter, from).await?;
                let mut chunks = entries.ready_chunks(1024);
                while let Some(chunk) = chunks.next().await {
                    let batch: Vec<LogEntry> = chunk.into_iter().collect::<Result<_, _>>()?;
                    self.apply(&batch).await?;
                }
                Ok::<(), AuditError>(())
            };
            let r = tokio::select! {
                r = run => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "audit log: following the stream failed; retrying");
                *self
                    .inner
                    .error
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Appends a batch of entries (consecutive, from `applied + 1`) to the tree.
    async fn apply(&self, batch: &[LogEntry]) -> Result<(), AuditError> {
        let (first_new_hash, leaves, last_event, audit_version, new_checkpoints) = {
            let mut st = self
                .inner
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let first_new_hash = st.tree.stored().len();
            let mut new_checkpoints = Vec::new();
            for e in batch {
                let have = st.tree.leaves();
                if e.seq <= have {
                    continue; // redelivered
                }
                if e.seq != have + 1 {
                    return Err(AuditError::Storage(format!(
                        "the stream skipped from sequence {have} to {}",
                        e.seq
                    )));
                }
                st.tree.push_hash(leaf_hash(&e.payload));
                // every message is a leaf (the tree is over the stream as stored); only
                // authentic events of the domain count as events, and only the audit
                // aggregate's as checkpoints (finding 1: a foreign message is skipped, reported)
                let on_audit = subject_matches(&self.inner.audit_filter, &e.subject);
                if on_audit {
                    // compare-and-set counts every message on the aggregate's subjects
                    st.audit_version.stream_seq = e.seq;
                }
                let cp = match self.inner.checker.authentic(e.seq, &e.subject, &e.payload) {
                    Err(err) => {
                        self.inner.foreign.report("audit", &e.subject, &err);
                        st.last_event = e.seq;
                        continue;
                    }
                    Ok(()) if on_audit => {
                        st.audit_version.count += 1;
                        checkpoint_of_entry(e)
                    }
                    Ok(()) => None,
                };
                match cp {
                    Some(cp) => match self.accept(&st, &cp) {
                        Ok(()) => {
                            st.last_checkpoint_at = Some(Instant::now());
                            new_checkpoints.push(cp.clone());
                            st.checkpoints.push(cp);
                        }
                        Err(why) => {
                            // written by someone with publish rights on the stream, but not
                            // a checkpoint of this tree: never served, never counted as cover
                            tracing::error!(seq = e.seq, %why, "audit: a checkpoint in the log is refused");
                            self.inner
                                .refused
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            st.last_event = e.seq;
                        }
                    },
                    None => st.last_event = e.seq,
                }
            }
            (
                first_new_hash,
                st.tree.leaves(),
                st.last_event,
                st.audit_version,
                new_checkpoints,
            )
        };
        if let Some(pg) = &self.inner.pg {
            let hashes: Vec<Vec<u8>> = self.read().tree.stored()[first_new_hash..]
                .iter()
                .map(|h| h.0.to_vec())
                .collect();
            persist(
                pg,
                first_new_hash as i64,
                &hashes,
                (leaves, last_event, audit_version),
                &new_checkpoints,
            )
            .await?;
        }
        self.inner.applied.send_replace(leaves);
        Ok(())
    }

    /// A checkpoint read from the stream counts only when its note verifies under the domain's
    /// audit key, it covers only earlier events, and its root is this tree's at its size.
    fn accept(&self, st: &State, cp: &CheckpointRecord) -> Result<(), String> {
        let opened = note::open_checkpoint(&cp.note, &self.inner.origin, &self.inner.keys)
            .map_err(|e| e.to_string())?;
        if opened.size != cp.tree_size || note::b64(&opened.root) != cp.root_hash {
            return Err("the event and its note disagree".into());
        }
        if cp.tree_size >= cp.seq || cp.tree_size < st.covered() {
            return Err(format!(
                "covers {} events at sequence {}",
                cp.tree_size, cp.seq
            ));
        }
        match st.tree.root(cp.tree_size) {
            Ok(r) if r == opened.root => Ok(()),
            _ => Err("its root is not this tree's".into()),
        }
    }

    /// Whether a checkpoint is due now: leaves exist that the last checkpoint does not cover,
    /// some of them are not checkpoints, and enough of them or enough time.
    fn due(&self, cadence: &CheckpointCadence) -> Option<u64> {
        let st = self.read();
        let n = st.tree.leaves();
        let covered = st.covered();
        if n == 0 || st.last_event <= covered {
            return None;
        }
        let old = st
            .last_checkpoint_at
            .is_none_or(|t| t.elapsed() >= cadence.every);
        (n - covered >= cadence.every_events || old).then_some(n)
    }

    /// Signs the checkpoint of `size` leaves and appends it. Returns its event's sequence.
    pub async fn sign_checkpoint(
        &self,
        store: &EventStore,
        key: &Ed25519Key,
        size: u64,
    ) -> Result<u64, AuditError> {
        let root = self.read().tree.root(size)?;
        let body = CheckpointBody {
            origin: self.inner.origin.clone(),
            size,
            root,
            domain: self.inner.id.domain.clone(),
            trust_domain: self.inner.id.trust_domain.clone(),
            time: Timestamp::now(),
        };
        let text =
            note::sign_checkpoint(key, &body).map_err(|e| AuditError::Sign(e.to_string()))?;
        let event = Event::CheckpointSigned(CheckpointSigned {
            tree_size: size,
            root_hash: note::b64(&root),
            note: text,
            key: key.kid().clone(),
            signed_at: body.time,
        });
        let agg = AggregateId::parse(self.inner.id.domain.as_str())
            .unwrap_or_else(|_| unreachable!("a domain id is an aggregate id"));
        // the tree has read every checkpoint event up to `size`; a later one makes this a
        // conflict, and the next attempt starts from there
        let expected = self.read().audit_version;
        let meta = Metadata::new(
            CommandId::from_uuid(uuid::Uuid::now_v7()),
            Actor::system("audit-checkpointer"),
            body.time,
        );
        let out = store
            .append(AggregateKind::Audit, &agg, expected, &meta, vec![event])
            .await?;
        Ok(out.version.stream_seq)
    }

    /// Signs checkpoints at `cadence` until `shutdown`.
    pub fn spawn_checkpointer(
        &self,
        store: EventStore,
        key: Arc<Ed25519Key>,
        cadence: CheckpointCadence,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let log = self.clone();
        tokio::spawn(async move {
            let tick =
                (cadence.every / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
            let mut applied = log.inner.applied.subscribe();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = applied.changed() => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let Some(size) = log.due(&cadence) else {
                    continue;
                };
                match log.sign_checkpoint(&store, &key, size).await {
                    Ok(seq) => {
                        tracing::debug!(size, seq, "audit checkpoint signed");
                        // wait until the tree holds it, so that it is not signed twice
                        log.wait_for(seq, Duration::from_secs(10)).await;
                    }
                    // another instance signed first: its checkpoint arrives through the stream
                    Err(AuditError::Store(StoreError::Conflict { .. })) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "audit checkpoint failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
}

fn checkpoint_of_entry(e: &LogEntry) -> Option<CheckpointRecord> {
    let parsed = accord_events::parse_unverified(&e.payload).ok()?;
    match parsed.envelope.decode().ok()? {
        Event::CheckpointSigned(c) => Some(CheckpointRecord {
            seq: e.seq,
            tree_size: c.tree_size,
            root_hash: c.root_hash,
            note: c.note,
        }),
        _ => None,
    }
}

fn storage(e: impl std::fmt::Display) -> AuditError {
    AuditError::Storage(e.to_string())
}

async fn load(pg: &PgStore) -> Result<State, AuditError> {
    let client = pg.connection().await.map_err(storage)?;
    let row = client
        .query_opt(
            "SELECT leaves, last_event, audit_events, last_audit_seq FROM accord_audit_tree WHERE id = 1",
            &[],
        )
        .await
        .map_err(storage)?;
    let Some(row) = row else {
        return Ok(State::default());
    };
    let leaves: i64 = row.get(0);
    let last_event: i64 = row.get(1);
    let audit_version = Version {
        count: row.get::<_, i64>(2) as u64,
        stream_seq: row.get::<_, i64>(3) as u64,
    };
    let count = tlog_tiles::stored_hash_count(leaves as u64) as i64;
    let rows = client
        .query(
            "SELECT hash FROM accord_audit_hashes WHERE idx < $1 ORDER BY idx",
            &[&count],
        )
        .await
        .map_err(storage)?;
    let mut hashes = Vec::with_capacity(rows.len());
    for r in rows {
        let h: Vec<u8> = r.get(0);
        hashes.push(Hash(
            h.try_into()
                .map_err(|_| storage("a stored hash is not 32 bytes"))?,
        ));
    }
    let tree = MemoryTree::from_stored(hashes, leaves as u64)
        .ok_or_else(|| storage("the stored hashes do not match the stored leaf count"))?;
    let cps = client
        .query(
            "SELECT seq, tree_size, root, note FROM accord_audit_checkpoints WHERE seq <= $1 ORDER BY seq",
            &[&leaves],
        )
        .await
        .map_err(storage)?;
    let checkpoints = cps
        .into_iter()
        .map(|r| {
            let root: Vec<u8> = r.get(2);
            CheckpointRecord {
                seq: r.get::<_, i64>(0) as u64,
                tree_size: r.get::<_, i64>(1) as u64,
                root_hash: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root),
                note: r.get(3),
            }
        })
        .collect();
    Ok(State {
        tree,
        checkpoints,
        last_event: last_event as u64,
        last_checkpoint_at: None,
        audit_version,
    })
}

async fn persist(
    pg: &PgStore,
    first_idx: i64,
    hashes: &[Vec<u8>],
    (leaves, last_event, audit): (u64, u64, Version),
    checkpoints: &[CheckpointRecord],
) -> Result<(), AuditError> {
    let mut client = pg.connection().await.map_err(storage)?;
    let tx = client.transaction().await.map_err(storage)?;
    let idx: Vec<i64> = (0..hashes.len() as i64).map(|i| first_idx + i).collect();
    tx.execute(
        "INSERT INTO accord_audit_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[]) ON CONFLICT (idx) DO NOTHING",
        &[&idx, &hashes],
    )
    .await
    .map_err(storage)?;
    for c in checkpoints {
        let root = note::hash_from_b64(&c.root_hash)
            .map(|h| h.0.to_vec())
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO accord_audit_checkpoints (seq, tree_size, root, note) VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
            &[&(c.seq as i64), &(c.tree_size as i64), &root, &c.note],
        )
        .await
        .map_err(storage)?;
    }
    // a writer that is behind never moves the row back
    tx.execute(
        "INSERT INTO accord_audit_tree (id, leaves, last_event, audit_events, last_audit_seq)
         VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET leaves = EXCLUDED.leaves, last_event = EXCLUDED.last_event,
             audit_events = EXCLUDED.audit_events, last_audit_seq = EXCLUDED.last_audit_seq
         WHERE accord_audit_tree.leaves < EXCLUDED.leaves",
        &[
            &(leaves as i64),
            &(last_event as i64),
            &(audit.count as i64),
            &(audit.stream_seq as i64),
        ],
    )
    .await
    .map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Checks that `proof`'s checkpoint (if any) is signed by one of `keys` and names its root.
pub fn check_served_checkpoint(
    note_text: &str,
    origin: &str,
    keys: &[NoteKey],
    size: u64,
    root: &str,
) -> Result<(), String> {
    let o = note::open_checkpoint(note_text, origin, keys).map_err(|e| e.to_string())?;
    if o.size != size || note::b64(&o.root) != root {
        return Err("the checkpoint names another tree".into());
    }
    Ok(())
}
