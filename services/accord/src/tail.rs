//! `accord events tail`: the log as an auditor reads it. Every event's signature is verified
//! against key ids pinned out of band (`--pin`, `--trust-file`); the public keys come from the
//! genesis, and count only when their thumbprints are pinned.

use std::collections::HashSet;
use std::io::Write;

use accord_events::signing::ed25519_thumbprint;
use accord_events::{Event, KeyId, KeyRing};
use accord_store::reader::{LogReader, verify_entry};
use anyhow::{Context, bail};
use futures::StreamExt;

/// What to read and how to check it.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub from: u64,
    pub types: Vec<String>,
    pub follow: bool,
    pub json: bool,
    pub pins: Vec<KeyId>,
    pub stream: String,
    pub api_prefix: String,
}

/// Key ids from a trust file: one per line (`#` comments), or a JSON `{"pins": [...]}`.
pub fn read_trust_file(path: &std::path::Path) -> anyhow::Result<Vec<KeyId>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    if text.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Trust {
            pins: Vec<KeyId>,
        }
        let t: Trust =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        return Ok(t.pins);
    }
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            KeyId::parse(l).with_context(|| format!("{}: {l:?} is not a key id", path.display()))
        })
        .collect()
}

/// The key id of a PKCS#8 Ed25519 key file (for pinning a domain's own key in development).
pub fn pin_of_key_file(path: &std::path::Path) -> anyhow::Result<KeyId> {
    let der = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let key = accord_events::Ed25519Key::from_pkcs8(&der)?;
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &key.public().public_key,
    )?;
    Ok(ed25519_thumbprint(&raw))
}

/// Reads (and with `follow`, keeps reading) the log, printing one line per event. Returns how
/// many events failed verification.
pub async fn run(
    client: async_nats::Client,
    opts: &TailOptions,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    if opts.pins.is_empty() {
        bail!(
            "no pinned key ids: give --pin KID (or --trust-file FILE); a log cannot vouch for its own keys"
        );
    }
    // auditors are outside the services' account: direct get is what it exports to them
    let reader = LogReader::direct_only(client, &opts.api_prefix, &opts.stream);
    let mut ring = KeyRing::new(opts.pins.iter().cloned());
    // the genesis names the domain and carries the public keys; learn the pinned ones
    let genesis = reader
        .first_from(1, "accord.evt.>")
        .await?
        .context("the log is empty: no genesis")?;
    let parsed = accord_events::parse_unverified(&genesis.payload)
        .map_err(|e| anyhow::anyhow!("genesis at sequence {}: {e}", genesis.seq))?;
    let domain = parsed.envelope.domain.clone();
    if let Ok(Event::DomainCreated(g)) = parsed.envelope.decode() {
        for k in &g.event_signing_keys {
            if ring.is_pinned(&k.kid) {
                ring.learn(k)?;
            }
        }
    }
    let filters: Vec<String> = if opts.types.is_empty() {
        vec![accord_events::subject::domain_filter(&domain)]
    } else {
        opts.types
            .iter()
            .map(|t| {
                accord_events::EventTypeName::parse(t)
                    .map(|t| accord_events::subject::event_type_filter(&domain, &t))
                    .with_context(|| format!("--type {t:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let last_at_start = reader.last_sequence().await?;
    let mut failures = 0u64;
    let mut seen = HashSet::new();
    if !opts.follow {
        let any = reader.first_from(opts.from.max(1), &filters[0]).await?;
        let any_other = if filters.len() > 1 {
            let mut found = false;
            for f in &filters[1..] {
                found |= reader
                    .first_from(opts.from.max(1), f)
                    .await?
                    .is_some_and(|m| m.seq <= last_at_start);
            }
            found
        } else {
            false
        };
        if any.is_none_or(|m| m.seq > last_at_start) && !any_other {
            return Ok(0);
        }
    }
    let mut entries = reader.follow_filters(&filters, opts.from.max(1)).await?;
    while let Some(entry) = entries.next().await {
        let entry = entry?;
        if !opts.follow && entry.seq > last_at_start {
            break;
        }
        if !seen.insert(entry.seq) {
            continue;
        }
        let stored_at = time::OffsetDateTime::from_unix_timestamp_nanos(entry.stored_at_nanos)
            .map(|t| accord_events::Timestamp::from_datetime(t).to_string())
            .unwrap_or_default();
        match verify_entry(&ring, &entry) {
            Ok(v) => {
                let env = v.envelope();
                if opts.json {
                    let line = serde_json::json!({
                        "seq": entry.seq, "stored_at": stored_at, "subject": entry.subject,
                        "verified": true, "kid": v.kid(), "event": env,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(
                        out,
                        "{:>8}  {}  {:<28} {}/{}  ok",
                        entry.seq, stored_at, env.event_type, env.aggregate.kind, env.aggregate.id
                    )?;
                }
            }
            Err(e) => {
                failures += 1;
                if opts.json {
                    let line = serde_json::json!({
                        "seq": entry.seq, "stored_at": stored_at, "subject": entry.subject,
                        "verified": false, "problem_kind": e.problem.kind(),
                        "problem": e.problem.to_string(),
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(
                        out,
                        "{:>8}  {}  {}  FAILED: {}",
                        entry.seq, stored_at, entry.subject, e.problem
                    )?;
                }
            }
        }
        out.flush()?;
        if !opts.follow && (entry.seq >= last_at_start || entry.pending == 0) {
            break;
        }
    }
    Ok(failures)
}
