//! Golden fixtures: every version ever written keeps decoding, and an independent
//! implementation (Python `rfc8785` + pyca `cryptography` + `jsonschema`) agrees with our
//! canonical bytes, signatures and schemas.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use accord_events::signing::Ed25519Key;
use accord_events::{CATALOGUE, KeyRing, sample};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const FIXTURE_SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn fixture_key() -> Ed25519Key {
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&FIXTURE_SEED_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    Ed25519Key::from_seed(&seed).unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("events/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_verifies_and_decodes() {
    let key = fixture_key();
    let ring = KeyRing::trusting(&[key.public().clone()]).unwrap();
    let files = fixture_files();
    assert!(!files.is_empty());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let verified = ring
            .verify(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let env = verified.envelope();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            format!("{}.v{}.json", env.event_type, env.version),
            "fixture file name must match its type and version"
        );
        let event = env
            .decode()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(event.event_type(), env.event_type.as_str());
        assert_eq!(env.subject().aggregate, event.aggregate_kind());
    }
}

#[test]
fn every_current_version_has_a_fixture() {
    for d in CATALOGUE {
        let p = root().join(format!("events/fixtures/{}.v{}.json", d.name, d.version));
        assert!(
            p.exists(),
            "{} v{} has no golden fixture: run `cargo run -p accord-events --features test-support --bin accord-schemas`",
            d.name,
            d.version
        );
    }
}

#[test]
fn independent_implementation_agrees_on_fixtures() {
    let out = accord_testkit::python()
        .arg(root().join("tests/python/check_events.py"))
        .arg("--key")
        .arg(&fixture_key().public().public_key)
        .arg("--schemas")
        .arg(root().join("schemas/events"))
        .args(fixture_files())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "independent check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Random text in every string the envelope carries: the independent JCS must still agree.
#[test]
fn independent_implementation_agrees_on_random_events() {
    let key = fixture_key();
    let dir = tempfile::tempdir().unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        prop::sample::select(CATALOGUE.iter().map(|d| d.name).collect::<Vec<_>>()),
        "\\PC{0,40}",
        "[\\u{0}-\\u{1f}\\u{7f}-\\u{ffff}]{0,20}",
    );
    let mut files = Vec::new();
    for i in 0..200 {
        let (name, s1, s2) = strategy.new_tree(&mut runner).unwrap().current();
        let mut env = sample::envelope(name).unwrap();
        env.actor.subject = format!("{s1}{s2}");
        if let Some(obj) = env.data.as_object_mut() {
            obj.insert("\u{e9}x\u{1F600}".into(), s2.clone().into());
            obj.insert(s1.clone(), serde_json::json!([i, -i, s2]));
        }
        let signed = key.sign_event(env).unwrap();
        let p = dir.path().join(format!("{i}.json"));
        std::fs::write(&p, &signed.bytes).unwrap();
        files.push(p);
    }
    let out = accord_testkit::python()
        .arg(root().join("tests/python/check_events.py"))
        .arg("--key")
        .arg(&key.public().public_key)
        .args(&files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "independent check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

proptest! {
    /// Canonical bytes do not depend on member order or on a decode/encode round trip.
    #[test]
    fn canonical_bytes_are_stable(keys in prop::collection::btree_set("\\PC{1,12}", 1..12), n in 0i64..1_000_000) {
        let keys: Vec<String> = keys.into_iter().collect();
        let mut forward = serde_json::Map::new();
        for (i, k) in keys.iter().enumerate() {
            forward.insert(k.clone(), serde_json::json!({"n": n + i as i64, "s": k}));
        }
        let mut backward = serde_json::Map::new();
        for (i, k) in keys.iter().enumerate().rev() {
            backward.insert(k.clone(), serde_json::json!({"s": k, "n": n + i as i64}));
        }
        let a = accord_events::canonical::canonical_bytes(&forward.into()).unwrap();
        let b = accord_events::canonical::canonical_bytes(&backward.into()).unwrap();
        prop_assert_eq!(&a, &b);
        let reparsed: serde_json::Value = serde_json::from_slice(&a).unwrap();
        prop_assert_eq!(accord_events::canonical::canonical_bytes(&reparsed).unwrap(), a);
    }
}
