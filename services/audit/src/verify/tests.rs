use accord_events::catalogue::GenesisConfig;
use accord_events::genesis::genesis_event;
use accord_events::{Ed25519Key, Envelope, Timestamp, sample};

use super::*;
use crate::note::{CheckpointBody, sign_checkpoint};

struct History {
    key: Ed25519Key,
    audit: Ed25519Key,
    entries: Vec<LogEntry>,
    tree: MemoryTree,
    checkpoints: u64,
}

fn entry(seq: u64, subject: String, payload: Vec<u8>) -> LogEntry {
    LogEntry {
        seq,
        subject,
        payload: payload.into(),
        stored_at_nanos: 0,
        pending: 0,
    }
}

impl History {
    fn new() -> Self {
        let key = Ed25519Key::from_seed(&[1; 32]).expect("key");
        let audit = Ed25519Key::from_seed(&[2; 32]).expect("key");
        let g = genesis_event(
            &sample::domain(),
            &sample::trust_domain(),
            &key,
            vec![audit.public().clone()],
            GenesisConfig {
                replicas: 1,
                duplicate_window_secs: 120,
                token_shards: 64,
            },
            Timestamp::parse("2026-11-26T09:00:00.000000Z").expect("time"),
        )
        .expect("genesis");
        let mut h = Self {
            key,
            audit,
            entries: Vec::new(),
            tree: MemoryTree::new(),
            checkpoints: 0,
        };
        h.push_signed(g.envelope.subject().to_string(), g.bytes);
        h
    }

    fn push_signed(&mut self, subject: String, bytes: Vec<u8>) {
        self.tree.push(&bytes);
        let seq = self.entries.len() as u64 + 1;
        self.entries.push(entry(seq, subject, bytes));
    }

    fn push_envelope(&mut self, env: Envelope) {
        let s = self.key.sign_event(env).expect("sign");
        self.push_signed(s.envelope.subject().to_string(), s.bytes);
    }

    /// A token fact (no per-aggregate order) or, every third, an agent event in order.
    fn push_events(&mut self, n: usize) {
        for i in 0..n {
            let mut env = sample::envelope("TokenIssued").expect("sample");
            env.command_id = accord_events::CommandId::from_uuid(uuid::Uuid::now_v7());
            env.id = accord_events::EventId::derive(&env.command_id, i as u32);
            self.push_envelope(env);
        }
    }

    fn note(&self, signer: &Ed25519Key, size: u64, root: Hash) -> String {
        sign_checkpoint(
            signer,
            &CheckpointBody {
                origin: "org-a.example/accord/events".into(),
                size,
                root,
                domain: sample::domain(),
                trust_domain: sample::trust_domain(),
                time: Timestamp::parse("2026-11-26T09:00:01.000000Z").expect("time"),
            },
        )
        .expect("note")
    }

    fn push_checkpoint_with(&mut self, signer_seed: u8, size: u64, root: Hash) {
        let signer = Ed25519Key::from_seed(&[signer_seed; 32]).expect("key");
        let note = self.note(&signer, size, root);
        self.checkpoints += 1;
        let event = Event::CheckpointSigned(CheckpointSigned {
            tree_size: size,
            root_hash: crate::note::b64(&root),
            note,
            key: signer.kid().clone(),
            signed_at: Timestamp::parse("2026-11-26T09:00:01.000000Z").expect("time"),
        });
        let meta = accord_events::Metadata::new(
            accord_events::CommandId::from_uuid(uuid::Uuid::now_v7()),
            accord_events::Actor::system("audit-checkpointer"),
            Timestamp::parse("2026-11-26T09:00:01.000000Z").expect("time"),
        );
        let env = Envelope::new(
            &sample::domain(),
            sample::aggregate(accord_events::AggregateKind::Audit, self.checkpoints),
            &meta,
            0,
            &event,
        )
        .expect("envelope");
        self.push_envelope(env);
    }

    fn push_checkpoint(&mut self) {
        let size = self.tree.leaves();
        let root = self.tree.root(size).expect("root");
        self.push_checkpoint_with(2, size, root);
    }

    fn pins(&self) -> Vec<KeyId> {
        vec![self.key.kid().clone(), self.audit.kid().clone()]
    }
}

fn standard() -> History {
    let mut h = History::new();
    h.push_events(20);
    h.push_checkpoint();
    h.push_events(15);
    h.push_checkpoint();
    h.push_events(3);
    h
}

/// Verifies in every mode (batch sizes, thread counts, kept or freed events) and checks that
/// each gives the same report and, where events are kept, the same events.
fn verify(entries: &[LogEntry], pins: Vec<KeyId>, held: &[String]) -> Report {
    let run = |threads: usize, batch: usize, keep: bool| {
        let mut a = Auditor::new(VerifyOptions {
            pins: pins.clone(),
            threads,
        });
        let mut kept = Vec::new();
        for chunk in entries.chunks(batch) {
            if keep {
                kept.extend(a.check_batch(chunk).into_iter().map(|e| e.stream_seq));
            } else {
                a.check_only(chunk);
            }
        }
        for n in held {
            a.held_checkpoint(n);
        }
        (a.report(), keep.then_some(kept))
    };
    let (first, kept) = run(2, 7, true);
    let json = |r: &Report| serde_json::to_value(r).expect("report");
    for (threads, batch, keep) in [
        (1, 7, true),
        (1, usize::MAX, true),
        (2, usize::MAX, true),
        (3, usize::MAX, false),
        (2, 20, false),
    ] {
        let (r, k) = run(threads, batch, keep);
        assert_eq!(
            json(&r),
            json(&first),
            "{threads} threads, batches of {batch}, keep {keep}"
        );
        if let Some(k) = k {
            assert_eq!(Some(k), kept, "{threads} threads, batches of {batch}");
        }
    }
    first
}

fn kinds(r: &Report) -> Vec<(FailureKind, Option<u64>)> {
    r.failures.iter().map(|f| (f.kind, f.seq)).collect()
}

#[test]
fn a_clean_history_verifies() {
    let h = standard();
    let r = verify(&h.entries, h.pins(), &[]);
    assert!(r.ok, "{:?}", r.failures);
    assert_eq!(r.events, 41);
    assert_eq!(r.checkpoints, 2);
    assert_eq!(r.last_checkpoint.as_ref().map(|c| c.tree_size), Some(37));
    assert_eq!(r.uncovered, 4);
    assert_eq!(r.origin.as_deref(), Some("org-a.example/accord/events"));
    // one thread gives the same answer
    let mut a = Auditor::new(VerifyOptions {
        pins: h.pins(),
        threads: 1,
    });
    a.check_batch(&h.entries);
    assert_eq!(a.report().root_hash, r.root_hash);
}

#[test]
fn an_altered_event_is_named() {
    let mut h = standard();
    let mut p = h.entries[9].payload.to_vec();
    let at = p.len() / 2;
    p[at] = if p[at] == b'a' { b'b' } else { b'a' };
    h.entries[9].payload = p.into();
    let r = verify(&h.entries, h.pins(), &[]);
    assert!(!r.ok);
    let k = kinds(&r);
    assert!(k.contains(&(FailureKind::BadSignature, Some(10))), "{k:?}");
    assert!(
        k.contains(&(FailureKind::CheckpointRootMismatch, Some(22))),
        "{k:?}"
    );
}

#[test]
fn a_removed_event_is_named() {
    let mut h = standard();
    h.entries.remove(4);
    let r = verify(&h.entries, h.pins(), &[]);
    let k = kinds(&r);
    assert!(k.contains(&(FailureKind::MissingEvent, Some(5))), "{k:?}");
    assert!(
        k.contains(&(FailureKind::CheckpointRootMismatch, Some(22))),
        "{k:?}"
    );
}

#[test]
fn swapped_events_are_named() {
    // the two messages trade places; each keeps a valid signature
    let mut h = standard();
    let (a, b) = (h.entries[5].payload.clone(), h.entries[6].payload.clone());
    h.entries[5].payload = b;
    h.entries[6].payload = a;
    let r = verify(&h.entries, h.pins(), &[]);
    let k = kinds(&r);
    assert!(
        k.contains(&(FailureKind::CheckpointRootMismatch, Some(22))),
        "{k:?}"
    );
    // and lines reordered with their sequence numbers
    let mut h = standard();
    h.entries.swap(5, 6);
    let k = kinds(&verify(&h.entries, h.pins(), &[]));
    assert!(k.contains(&(FailureKind::MissingEvent, Some(6))), "{k:?}");
    assert!(k.contains(&(FailureKind::OutOfOrder, Some(6))), "{k:?}");
}

#[test]
fn a_forged_checkpoint_is_named() {
    let mut h = History::new();
    h.push_events(5);
    let root = h.tree.root(6).expect("root");
    h.push_checkpoint_with(9, 6, root); // not the pinned audit key
    let k = kinds(&verify(&h.entries, h.pins(), &[]));
    assert_eq!(k, vec![(FailureKind::ForgedCheckpoint, Some(7))]);
}

#[test]
fn a_checkpoint_with_another_root_is_named() {
    let mut h = History::new();
    h.push_events(5);
    let wrong = h.tree.root(5).expect("root");
    h.push_checkpoint_with(2, 6, wrong);
    let k = kinds(&verify(&h.entries, h.pins(), &[]));
    assert_eq!(k, vec![(FailureKind::CheckpointRootMismatch, Some(7))]);
}

#[test]
fn a_fork_from_a_held_checkpoint_is_named() {
    // someone holds a checkpoint of the history as it was; the history shown now differs
    let h = standard();
    let held = h.note(&h.audit, 30, h.tree.root(30).expect("root"));
    let mut other = History::new();
    other.push_events(20);
    other.push_checkpoint();
    other.push_events(15);
    other.push_checkpoint();
    let r = verify(&other.entries, other.pins(), std::slice::from_ref(&held));
    let k = kinds(&r);
    assert_eq!(k, vec![(FailureKind::Fork, Some(30))], "{:?}", r.failures);
    // the same held checkpoint agrees with the original history
    assert!(verify(&h.entries, h.pins(), &[held]).ok);
    // one beyond the history shown
    let beyond = h.note(&h.audit, 100, h.tree.root(41).expect("root"));
    let k = kinds(&verify(&h.entries, h.pins(), &[beyond]));
    assert_eq!(k, vec![(FailureKind::Truncated, None)]);
}

#[test]
fn a_log_whose_key_is_not_pinned_fails() {
    let h = standard();
    let other = Ed25519Key::from_seed(&[7; 32]).expect("key");
    let r = verify(&h.entries, vec![other.kid().clone()], &[]);
    assert!(!r.ok);
    assert_eq!(
        r.failures.first().map(|f| (f.kind, f.seq)),
        Some((FailureKind::Genesis, Some(1)))
    );
    assert!(r.failures_by_kind.get("unpinned_key").copied().unwrap_or(0) >= 40);
    // the event key pinned but not the audit key: checkpoints cannot be trusted
    let r = verify(&h.entries, vec![h.key.kid().clone()], &[]);
    let k = kinds(&r);
    assert!(k.contains(&(FailureKind::Genesis, Some(1))), "{k:?}");
    assert!(
        k.contains(&(FailureKind::ForgedCheckpoint, Some(22))),
        "{k:?}"
    );
}
