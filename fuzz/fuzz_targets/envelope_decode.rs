//! Stored-event decoding: parse, verify against a pinned key, decode to a typed event, and the
//! check every reader of the log applies (`EntryChecker`). Any input must give a typed error,
//! never a panic; an input that verifies must also decode.
#![no_main]

use std::sync::OnceLock;

use accord_events::{Ed25519Key, KeyRing, parse_unverified};
use libfuzzer_sys::fuzz_target;

fn ring() -> &'static (Ed25519Key, KeyRing) {
    static RING: OnceLock<(Ed25519Key, KeyRing)> = OnceLock::new();
    RING.get_or_init(|| {
        let key = Ed25519Key::from_seed(&[7u8; 32]).expect("seed");
        let ring = KeyRing::trusting(&[key.public().clone()]).expect("ring");
        (key, ring)
    })
}

fn checker() -> &'static accord_store::EntryChecker {
    static CHECKER: OnceLock<accord_store::EntryChecker> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let domain = accord_events::DomainId::parse("org-a").expect("domain");
        accord_store::EntryChecker::new(domain, ring().1.clone())
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, ring) = ring();
    // the reader's check, under the subject the bytes claim and under another one
    let claimed = parse_unverified(data)
        .map(|p| p.envelope.subject().to_string())
        .unwrap_or_default();
    let _ = checker().check(1, &claimed, data);
    let _ = checker().check(2, "accord.evt.org-a.agent.x.CredentialRevoked", data);
    let _ = checker().authentic(1, &claimed, data);
    if let Ok(parsed) = parse_unverified(data) {
        let _ = parsed.envelope.decode();
        let _ = parsed.envelope.subject().to_string();
    }
    if let Ok(v) = ring.verify(data) {
        let _ = v.envelope().decode();
    }
    // canonical encoding of arbitrary JSON must not panic either
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = accord_events::canonical::canonical_bytes(&v);
    }
});
