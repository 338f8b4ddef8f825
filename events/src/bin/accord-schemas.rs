//! Writes the generated contracts of the event catalogue:
//!
//! - `schemas/events/<Type>.v<N>.json`: JSON Schema of each event type's `data` (current
//!   versions; schemas of older versions stay as they were written);
//! - `schemas/events/envelope.json`, `schemas/events/signature.json`;
//! - `events/fixtures/<Type>.v<N>.json`: a golden signed message of each version, written only
//!   when missing (golden fixtures are never rewritten; they must keep decoding).
//!
//! Usage: `cargo run -p accord-events --features test-support --bin accord-schemas [ROOT]`

use std::path::{Path, PathBuf};

use accord_events::signing::{Ed25519Key, EventSignature};
use accord_events::{CATALOGUE, Envelope, sample};

/// RFC 8032 §7.1 test 1 seed: the fixture signing key (public and known: fixtures only).
const FIXTURE_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

fn write_json(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let root = root.canonicalize()?;
    let schemas = root.join("schemas/events");
    let fixtures = root.join("events/fixtures");
    std::fs::create_dir_all(&schemas)?;
    std::fs::create_dir_all(&fixtures)?;

    write_json(
        &schemas.join("envelope.json"),
        &serde_json::to_value(schemars::schema_for!(Envelope))?,
    )?;
    write_json(
        &schemas.join("signature.json"),
        &serde_json::to_value(schemars::schema_for!(EventSignature))?,
    )?;
    let mut index = Vec::new();
    for d in CATALOGUE {
        let file = format!("{}.v{}.json", d.name, d.version);
        let mut schema = serde_json::to_value((d.schema)())?;
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                format!("https://accord.dev/schemas/events/{file}").into(),
            );
            obj.insert("x-accord-aggregate".into(), d.aggregate.as_str().into());
            obj.insert("x-accord-version".into(), d.version.into());
        }
        write_json(&schemas.join(&file), &schema)?;
        index.push(serde_json::json!({
            "type": d.name, "version": d.version, "aggregate": d.aggregate.as_str(), "schema": file,
        }));
    }
    write_json(
        &schemas.join("catalogue.json"),
        &serde_json::Value::Array(index),
    )?;

    let key = Ed25519Key::from_seed(&FIXTURE_SEED)?;
    for d in CATALOGUE {
        let path = fixtures.join(format!("{}.v{}.json", d.name, d.version));
        if path.exists() {
            continue;
        }
        let env = sample::envelope(d.name).ok_or("catalogue entry without a sample")?;
        let signed = key.sign_event(env)?;
        std::fs::write(&path, &signed.bytes)?;
        println!("wrote golden fixture {}", path.display());
    }
    Ok(())
}
