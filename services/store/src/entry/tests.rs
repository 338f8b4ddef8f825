use accord_events::{Ed25519Key, KeyRing, sample};

use super::*;

fn key() -> Ed25519Key {
    Ed25519Key::generate().unwrap().0
}

fn checker(k: &Ed25519Key) -> EntryChecker {
    EntryChecker::new(
        sample::domain(),
        KeyRing::trusting(std::slice::from_ref(k.public())).unwrap(),
    )
}

fn signed(k: &Ed25519Key, name: &str) -> (String, Vec<u8>) {
    let env = sample::envelope(name).unwrap();
    let s = k.sign_event(env).unwrap();
    (s.envelope.subject().to_string(), s.bytes)
}

#[test]
fn an_authentic_event_passes_and_is_decoded() {
    let k = key();
    let c = checker(&k);
    let (subject, bytes) = signed(&k, "CredentialRevoked");
    let e = c.check(7, &subject, &bytes).unwrap();
    assert_eq!(e.stream_seq, 7);
    // the second time comes from the cache, with the same answer
    assert_eq!(c.check(7, &subject, &bytes).unwrap(), e);
}

#[test]
fn anything_else_is_named() {
    let k = key();
    let c = checker(&k);
    let (subject, bytes) = signed(&k, "CredentialRevoked");
    let kind = |seq: u64, subject: &str, payload: &[u8]| {
        c.check(seq, subject, payload).unwrap_err().problem.kind()
    };
    // a JetStream API answer, an empty message
    let api = br#"{"type":"io.nats.jetstream.api.v1.account_info_response"}"#;
    assert_eq!(kind(1, &subject, api), "not_an_event");
    assert_eq!(kind(2, &subject, b""), "not_an_event");
    // another key's signature
    let (_, other) = signed(&key(), "CredentialRevoked");
    assert_eq!(kind(3, &subject, &other), "unpinned_key");
    // the domain's key, another's signature bytes
    let mut swapped: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&other).unwrap();
    swapped["sig"]["value"] = theirs["sig"]["value"].clone();
    let swapped = accord_events::canonical::canonical_bytes(&swapped).unwrap();
    assert_eq!(kind(7, &subject, &swapped), "bad_signature");
    // a genuine event copied under another subject
    assert_eq!(
        kind(4, "accord.evt.org-a.agent.x.CredentialRevoked", &bytes),
        "subject_mismatch"
    );
    // a changed byte
    let mut altered = bytes.clone();
    let i = altered.len() / 2;
    altered[i] ^= 1;
    assert!(c.check(5, &subject, &altered).is_err());
    // the cache never vouches for other bytes at a known sequence
    c.check(6, &subject, &bytes).unwrap();
    assert!(c.check(6, &subject, api).is_err());
}

#[test]
fn an_event_of_another_domain_is_foreign() {
    let k = key();
    let c = EntryChecker::new(
        accord_events::DomainId::parse("elsewhere").unwrap(),
        KeyRing::trusting(std::slice::from_ref(k.public())).unwrap(),
    );
    let (subject, bytes) = signed(&k, "CredentialRevoked");
    assert_eq!(
        c.check(1, &subject, &bytes).unwrap_err().problem.kind(),
        "other_domain"
    );
}

#[test]
fn the_foreign_log_counts_each_reader_once_per_sequence() {
    let log = ForeignLog::default();
    let err = |seq| EntryError {
        seq,
        problem: EntryProblem::NotAnEvent("x".into()),
    };
    assert!(log.report("projection:credentials", "s", &err(5)));
    assert!(!log.report("projection:credentials", "s", &err(5)));
    assert!(log.report("aggregate", "s", &err(5)));
    assert!(log.report("aggregate", "s", &err(9)));
    assert_eq!(log.total(), 2);
    assert_eq!(log.seqs_of("aggregate"), vec![5, 9]);
    assert_eq!(log.seqs_of("projection:credentials"), vec![5]);
    let counts: std::collections::BTreeMap<_, _> = log.counts().into_iter().collect();
    assert_eq!(counts["aggregate"], 2);
    assert_eq!(counts["projection:credentials"], 1);
    for s in 100..(100 + MAX_REMEMBERED as u64 + 10) {
        log.report("aggregate", "s", &err(s));
    }
    assert_eq!(log.entries().len(), MAX_REMEMBERED);
    assert_eq!(log.total(), 2 + MAX_REMEMBERED as u64 + 10);
}
