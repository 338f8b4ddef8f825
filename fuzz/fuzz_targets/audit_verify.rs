//! The auditor's side on outside input: never a panic, never an accepted forgery.
//!
//! The input is read three ways: as an export file (header, lines, messages) fed to the
//! verifier, with the keys of its own genesis pinned so that mutations reach the signature,
//! tree and checkpoint checks; as a signed note opened under a fixed audit key; and as an
//! inclusion or consistency proof (JSON) checked on its own. A note the fixed key never signed
//! must not open.
#![no_main]

use accord_audit::export::ExportReader;
use accord_audit::log::{ConsistencyProof, InclusionProof};
use accord_audit::note::{NoteKey, open_checkpoint};
use accord_audit::verify::{Auditor, VerifyOptions};
use accord_events::{Ed25519Key, Event};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "dev.accord.test/accord/events";

fuzz_target!(|data: &[u8]| {
    // 1. an export
    if let Ok((_, mut reader)) = ExportReader::open(std::io::Cursor::new(data)) {
        let mut entries = Vec::new();
        while let Ok(Some(e)) = reader.next_entry() {
            entries.push(e);
            if entries.len() > 64 {
                break;
            }
        }
        let mut pins = Vec::new();
        if let Some(first) = entries.first()
            && let Ok(p) = accord_events::parse_unverified(&first.payload)
            && let Ok(Event::DomainCreated(g)) = p.envelope.decode()
        {
            pins.extend(g.event_signing_keys.iter().map(|k| k.kid.clone()));
            pins.extend(g.audit_keys.iter().map(|k| k.kid.clone()));
        }
        let mut a = Auditor::new(VerifyOptions { pins, threads: 1 });
        a.check_batch(&entries);
        if let Ok(text) = std::str::from_utf8(data) {
            a.held_checkpoint(text);
        }
        let _ = a.report();
    }
    // 2. a note under a key that never signed anything here
    if let Ok(text) = std::str::from_utf8(data) {
        let key = Ed25519Key::from_seed(&[7; 32]).expect("fixed seed");
        let nk = NoteKey::new(ORIGIN, key.public()).expect("an Ed25519 key");
        assert!(
            open_checkpoint(text, ORIGIN, &[nk]).is_err(),
            "a note the key never signed opened"
        );
    }
    // 3. proofs
    if let Ok(p) = serde_json::from_slice::<InclusionProof>(data) {
        let _ = p.check();
    }
    if let Ok(p) = serde_json::from_slice::<ConsistencyProof>(data) {
        let _ = p.check();
    }
});
