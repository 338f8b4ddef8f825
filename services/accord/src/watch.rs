//! `accord agent watch-revocations`: the agent library's revocation feed on the command line.
//! One line per revocation (JSON with `--json`); the cursor (the last stream sequence seen) is
//! kept in `--cursor-file`, written after each revocation by an atomic rename, so a restart
//! after an outage resumes where it stopped.

use std::path::Path;
use std::process::ExitCode;

use accord_agent::AgentDir;
use accord_agent::feed::{FeedError, RevocationFeed};
use accord_events::DomainId;
use anyhow::Context;
use futures::StreamExt;

use crate::cli::WatchArgs;
use crate::commands::{tokio, usage};

fn read_cursor(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Ok(0),
        Ok(t) => t
            .trim()
            .parse()
            .with_context(|| format!("--cursor-file {}: not a sequence", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("--cursor-file {}", path.display())),
    }
}

fn write_cursor(path: &Path, seq: u64) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, seq.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("--cursor-file {}", path.display()))
}

pub fn watch_revocations(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let domain = DomainId::parse(&args.domain).map_err(|e| usage(format!("--domain: {e}")))?;
    let dir = AgentDir::new(&args.dir);
    let state = dir.read_state()?;
    let ca = std::fs::read(&args.ca).with_context(|| format!("--ca {}", args.ca.display()))?;
    let cursor = match &args.cursor_file {
        Some(p) => read_cursor(p)?,
        None => 0,
    };
    tokio()?.block_on(async move {
        // the domain's event-signing keys, pinned at enrollment (an older folder pins them now,
        // from the ACA it enrolled with, over TLS under --ca)
        let info = match dir.read_domain() {
            Ok(d) => d,
            Err(_) => {
                let client = accord_agent::Client::new(&state.url, Some(&ca))?;
                let d = client.domain().await?;
                dir.pin_domain(&d)?;
                d
            }
        };
        if info.domain_id != domain {
            anyhow::bail!(
                "{} pins domain {}, not --domain {domain}",
                dir.domain().display(),
                info.domain_id
            );
        }
        // the folder's credential is read again at every reconnection (a renewal kicks the
        // connection admitted with the one it replaces)
        let feed =
            RevocationFeed::connect_dir(&args.nats_url, &ca, &dir, &domain, info.key_ring()?)
                .await?;
        let mut revocations = Box::pin(feed.subscribe(cursor));
        let mut seen = 0u64;
        while let Some(r) = revocations.next().await {
            let r = match r {
                Ok(r) => r,
                // not delivered: reported, and the feed goes on
                Err(e @ (FeedError::Dropped { .. } | FeedError::Refused { .. })) => {
                    if args.json {
                        let seq = match &e {
                            FeedError::Dropped { seq, .. } => *seq,
                            _ => None,
                        };
                        println!(
                            "{}",
                            serde_json::json!({"dropped": {"seq": seq, "reason": e.to_string()}})
                        );
                    } else {
                        eprintln!("accord agent watch-revocations: {e}");
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let serials: Vec<&str> = r.serials.iter().map(|s| s.as_str()).collect();
                println!(
                    "{} agent {} revoked {} ({:?}) at {}",
                    r.seq,
                    r.agent_id,
                    serials.join(","),
                    r.reason,
                    r.revoked_at
                );
            }
            if let Some(p) = &args.cursor_file {
                write_cursor(p, r.seq)?;
            }
            seen += 1;
            if args.count.is_some_and(|c| seen >= c) {
                break;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
