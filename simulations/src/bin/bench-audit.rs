//! Benchmark of the audit log against a real nats-server it starts, each figure beside a
//! baseline measured in the same run:
//!
//! 1. a history of `--events` signed events seeded in bulk (pipelined token facts) while the
//!    live audit log follows it and signs checkpoints;
//! 2. verification of that history read back into memory (`Auditor::check_only`: signatures,
//!    envelope decoding, subjects, sequence and aggregate order, the recomputed tree, every
//!    checkpoint) on `--threads` threads, against the raw Ed25519 verification of the same
//!    signatures (aws-lc-rs, the verifier the auditor uses) over the same messages, same
//!    thread count, same batches, each batch verified both ways back to back (a paired
//!    measurement: a noisy machine slows both sides alike); the full job with every projection
//!    rebuilt is a separate row;
//! 3. the cost checkpointing adds to append throughput: pipelined appends into a fresh stream
//!    with the audit log following it and signing at the configured cadence, against the same
//!    appends with no audit log, rounds alternating.
//!
//! `cargo run --release -p accord-simulations --bin bench-audit -- --events 1000000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_audit::rebuild::Rebuild;
use accord_audit::verify::{Auditor, VerifyOptions};
use accord_audit::{AuditLog, CheckpointCadence, LogIdentity};
use accord_events::catalogue::GenesisConfig;
use accord_events::signing::SIGNING_CONTEXT;
use accord_events::{DomainId, Ed25519Key, Timestamp, TrustDomain};
use accord_simulations::{Row, append_facts, fmt_dur, fmt_rate, print_table, rate};
use accord_store::reader::LogEntry;
use accord_store::{EventStore, StoreConfig};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use futures::StreamExt;
use tokio::sync::watch;

#[derive(Parser)]
struct Args {
    /// Events in the history verified.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Threads for signature checks, in verification and in its baseline (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Rounds of each comparison (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pairs of rounds in the checkpoint-cost comparison (default: --rounds).
    #[arg(long)]
    cost_rounds: Option<usize>,
    /// Events appended in each round of the checkpoint-cost comparison.
    #[arg(long, default_value_t = 200_000)]
    append_events: usize,
    /// Producer tasks on the pipelined path.
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Checkpoint cadence in the cost comparison: events...
    #[arg(long, default_value_t = 1000)]
    checkpoint_every_events: u64,
    /// ...or milliseconds.
    #[arg(long, default_value_t = 1000)]
    checkpoint_every_ms: u64,
}

const BATCH: usize = 4096;

fn trust_domain() -> TrustDomain {
    TrustDomain::parse("bench.accord.test").expect("trust domain")
}

/// A domain with its own stream, genesis written.
async fn domain(
    client: &async_nats::Client,
    id: &str,
    stream: &str,
    key: &Arc<Ed25519Key>,
    audit: &Ed25519Key,
) -> anyhow::Result<EventStore> {
    let domain = DomainId::parse(id)?;
    let mut sc = StoreConfig::new(domain.clone());
    sc.stream.name = stream.into();
    let store = EventStore::open(client.clone(), sc, key.clone()).await?;
    let g = accord_events::genesis::genesis_event(
        &domain,
        &trust_domain(),
        key,
        vec![audit.public().clone()],
        GenesisConfig {
            replicas: 1,
            duplicate_window_secs: 120,
            token_shards: 64,
        },
        Timestamp::now(),
    )?;
    store.append_genesis(&g).await?;
    Ok(store)
}

async fn start_log(
    store: &EventStore,
    id: &str,
    audit: Ed25519Key,
    cadence: CheckpointCadence,
) -> anyhow::Result<(AuditLog, watch::Sender<bool>)> {
    let (stop, rx) = watch::channel(false);
    let public = audit.public().clone();
    let log = AuditLog::start(
        LogIdentity {
            domain: DomainId::parse(id)?,
            trust_domain: trust_domain(),
        },
        &[public],
        store.reader(),
        (store.checker().clone(), store.foreign().clone()),
        None,
        rx.clone(),
    )
    .await?;
    log.spawn_checkpointer(store.clone(), Arc::new(audit), cadence, rx);
    Ok((log, stop))
}

/// Every message of the log, read back in order.
async fn read_all(store: &EventStore) -> anyhow::Result<Vec<LogEntry>> {
    let reader = store.reader();
    let last = reader.last_sequence().await?;
    let mut out = Vec::with_capacity(last as usize);
    let mut chunks = reader.follow("accord.evt.>", 1).await?.ready_chunks(BATCH);
    while let Some(chunk) = chunks.next().await {
        for e in chunk {
            let e = e?;
            let done = e.seq >= last;
            out.push(e);
            if done {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// (signature input, signature) of every message: parsing, done before the baseline is timed.
fn extract(entries: &[LogEntry]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    #[derive(serde::Deserialize)]
    struct Wire<'a> {
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
        sig: Sig,
    }
    #[derive(serde::Deserialize)]
    struct Sig {
        value: String,
    }
    entries
        .iter()
        .map(|e| {
            let w: Wire = serde_json::from_slice(&e.payload)?;
            let mut input = SIGNING_CONTEXT.to_vec();
            input.extend_from_slice(w.event.get().as_bytes());
            Ok((input, URL_SAFE_NO_PAD.decode(w.sig.value)?))
        })
        .collect()
}

/// Raw Ed25519 verification of one batch of signatures on `threads` threads.
fn raw_batch(batch: &[(Vec<u8>, Vec<u8>)], public: &[u8], threads: usize) -> anyhow::Result<()> {
    let chunk = batch.len().div_ceil(threads);
    let ok = std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter().all(|(m, sig)| {
                        UnparsedPublicKey::new(&ED25519, public)
                            .verify(m, sig)
                            .is_ok()
                    })
                })
            })
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    });
    anyhow::ensure!(ok, "a signature of the history does not verify");
    Ok(())
}

/// One paired round: every batch is verified by Accord's auditor and, back to back, by raw
/// Ed25519 verification of its signatures (alternating which goes first), so that both see the
/// same machine at the same moment; returns (Accord's rate, the raw rate, checkpoints).
async fn paired(
    entries: &[LogEntry],
    sigs: &[(Vec<u8>, Vec<u8>)],
    public: &[u8],
    opts: &VerifyOptions,
    projections: bool,
) -> anyhow::Result<(f64, f64, u64)> {
    let rebuild = if projections {
        Some(Rebuild::new().await?)
    } else {
        None
    };
    let (mut ours, mut raw) = (Duration::ZERO, Duration::ZERO);
    let mut a = Auditor::new(opts.clone());
    for (i, (batch, sig_batch)) in entries.chunks(BATCH).zip(sigs.chunks(BATCH)).enumerate() {
        let raw_first = i.is_multiple_of(2);
        if raw_first {
            let t = Instant::now();
            raw_batch(sig_batch, public, opts.threads)?;
            raw += t.elapsed();
        }
        let t = Instant::now();
        match &rebuild {
            Some(r) => r.apply(&a.check_batch(batch)).await?,
            None => a.check_only(batch),
        }
        ours += t.elapsed();
        if !raw_first {
            let t = Instant::now();
            raw_batch(sig_batch, public, opts.threads)?;
            raw += t.elapsed();
        }
    }
    let r = a.report();
    anyhow::ensure!(r.ok, "the history did not verify: {:?}", r.failures);
    let n = entries.len() as u64;
    Ok((rate(n, ours), rate(n, raw), r.checkpoints))
}

fn peak_rss_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb / 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let server = accord_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await?;
    let key = Arc::new(Ed25519Key::generate()?.0);
    let audit_pk8 = Ed25519Key::generate()?.1;
    let audit = || Ed25519Key::from_pkcs8(&audit_pk8);
    let mut rows = Vec::new();

    // 1. the history, seeded in bulk while the live log follows and checkpoints
    let store = domain(&client, "bench", "ACCORD_EVENTS", &key, &audit()?).await?;
    let seed_cadence = CheckpointCadence {
        every_events: (args.events as u64 / 10).max(1),
        every: Duration::from_secs(3600),
    };
    let (log, stop) = start_log(&store, "bench", audit()?, seed_cadence).await?;
    let t = Instant::now();
    let seeded = append_facts(&store, args.events - 1, args.producers, 0).await?;
    let seed_time = t.elapsed();
    let last = store.last_sequence().await?;
    anyhow::ensure!(
        log.wait_for(last, Duration::from_secs(600)).await,
        "the live audit log did not reach {last}"
    );
    let behind = t.elapsed() - seed_time;
    // one last checkpoint over everything, so that verification checks the whole tree
    // (the background checkpointer may append one first: then the tree reads it and we retry)
    let mut attempts = 0;
    let cp = loop {
        let size = log.applied();
        match log.sign_checkpoint(&store, &audit()?, size).await {
            Ok(cp) => break cp,
            Err(accord_audit::log::AuditError::Store(accord_store::StoreError::Conflict {
                ..
            })) if attempts < 100 => {
                attempts += 1;
                let tail = store.last_sequence().await?;
                log.wait_for(tail, Duration::from_secs(60)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    log.wait_for(cp, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    let status = log.status();
    eprintln!(
        "seeded {last} events in {} ({}); the live log applied them {} after the last append; {} checkpoints",
        fmt_dur(seed_time),
        fmt_rate(seeded),
        fmt_dur(behind),
        status.checkpoints
    );
    rows.push(Row {
        name: format!(
            "seeding: pipelined signed appends, {} producers, live audit log following",
            args.producers
        ),
        value: fmt_rate(seeded),
        baseline: String::new(),
        ratio: String::new(),
        goal: String::new(),
    });

    // 2. verification, from memory
    let t = Instant::now();
    let entries = read_all(&store).await?;
    let read = t.elapsed();
    eprintln!(
        "read {} messages back in {} ({})",
        entries.len(),
        fmt_dur(read),
        fmt_rate(rate(entries.len() as u64, read))
    );
    let sigs = extract(&entries)?;
    let public = URL_SAFE_NO_PAD.decode(&key.public().public_key)?;
    let opts = VerifyOptions {
        pins: vec![key.kid().clone(), audit()?.kid().clone()],
        threads,
    };
    let (mut ours, mut raw, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut checkpoints = 0;
    for round in 0..args.rounds {
        let (o, r, c) = paired(&entries, &sigs, &public, &opts, false).await?;
        checkpoints = c;
        eprintln!(
            "round {round}: raw Ed25519 {} accord verify {} (ratio {:.3})",
            fmt_rate(r),
            fmt_rate(o),
            r / o
        );
        ours.push(o);
        raw.push(r);
        ratios.push(r / o);
    }
    let (ours, raw, ratio) = (median(ours), median(raw), median(ratios));
    rows.push(Row {
        name: format!(
            "accord audit verify of {} events from memory ({checkpoints} checkpoints), {threads} threads, median of {} paired rounds",
            entries.len(),
            args.rounds
        ),
        value: fmt_rate(ours),
        baseline: format!(
            "{} raw Ed25519 verification of the same signatures, same threads, each batch back to back",
            fmt_rate(raw)
        ),
        ratio: format!("{ratio:.2}x slower"),
        goal: "<= 1.25x".into(),
    });
    let (full, full_raw, _) = paired(&entries, &sigs, &public, &opts, true).await?;
    eprintln!(
        "with projections: raw Ed25519 {} accord verify {} (ratio {:.3})",
        fmt_rate(full_raw),
        fmt_rate(full),
        full_raw / full
    );
    rows.push(Row {
        name: "the same with every projection rebuilt (the whole verify job, no network), one paired round".into(),
        value: fmt_rate(full),
        baseline: format!("{} raw Ed25519", fmt_rate(full_raw)),
        ratio: format!("{:.2}x slower", full_raw / full),
        goal: String::new(),
    });
    rows.push(Row {
        name: "reading the history back from nats-server (ordered consumer)".into(),
        value: fmt_rate(rate(entries.len() as u64, read)),
        baseline: String::new(),
        ratio: String::new(),
        goal: String::new(),
    });
    let rss = peak_rss_mb();
    drop(entries);
    drop(sigs);

    // 3. what checkpointing costs appends: fresh streams, each round a pair (off then on, or on
    //    then off: the order alternates, so that neither side always runs on the warmer
    //    server); the cost is the median of the pairs' ratios
    let cadence = CheckpointCadence {
        every_events: args.checkpoint_every_events,
        every: Duration::from_millis(args.checkpoint_every_ms),
    };
    let (mut off, mut on, mut made, mut lag) = (Vec::new(), Vec::new(), 0, Duration::ZERO);
    // CPU time (this process and the server, user + system) per append: steadier than the
    // rates on a shared 2-core machine, since time spent waiting for a neighbour is not counted
    let (mut cpu_off, mut cpu_on) = (Vec::new(), Vec::new());
    let cost_rounds = args.cost_rounds.unwrap_or(args.rounds).max(1);
    for round in 0..cost_rounds {
        let order = if round.is_multiple_of(2) {
            [false, true]
        } else {
            [true, false]
        };
        for with_log in order {
            let id = format!("c{round}{}", u8::from(with_log));
            let stream = format!("COST_{round}_{}", u8::from(with_log));
            let s = domain(&client, &id, &stream, &key, &audit()?).await?;
            let running = if with_log {
                Some(start_log(&s, &id, audit()?, cadence.clone()).await?)
            } else {
                None
            };
            let cpu0 = cpu_ticks(None)? + cpu_ticks(server.pid())?;
            let r =
                append_facts(&s, args.append_events, args.producers, round * 10_000_000).await?;
            let with_cpu = |cpu: &mut Vec<f64>| -> anyhow::Result<()> {
                let used = cpu_ticks(None)? + cpu_ticks(server.pid())? - cpu0;
                cpu.push(used as f64 / args.append_events as f64);
                Ok(())
            };
            match running {
                Some((log, stop)) => {
                    let t = Instant::now();
                    let last = s.last_sequence().await?;
                    log.wait_for(last, Duration::from_secs(120)).await;
                    lag = lag.max(t.elapsed());
                    made += log.status().checkpoints;
                    let _ = stop.send(true);
                    with_cpu(&mut cpu_on)?;
                    on.push(r);
                }
                None => {
                    with_cpu(&mut cpu_off)?;
                    off.push(r);
                }
            }
            eprintln!(
                "round {round}: appends {} audit log: {}",
                fmt_rate(r),
                if with_log { "on" } else { "off" }
            );
        }
    }
    let costs: Vec<f64> = on
        .iter()
        .zip(&off)
        .map(|(a, b)| (1.0 - a / b) * 100.0)
        .collect();
    eprintln!(
        "cost per pair: {}",
        costs
            .iter()
            .map(|c| format!("{c:.1} %"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cost = median(costs);
    let (off, on) = (median(off), median(on));
    let cpu_costs: Vec<f64> = cpu_on
        .iter()
        .zip(&cpu_off)
        .map(|(a, b)| (a / b - 1.0) * 100.0)
        .collect();
    eprintln!(
        "CPU cost per pair: {}",
        cpu_costs
            .iter()
            .map(|c| format!("{c:.1} %"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (cpu_lo, cpu_hi) = {
        let mut c = cpu_costs.clone();
        c.sort_by(f64::total_cmp);
        (c[c.len() / 4], c[(c.len() * 3) / 4])
    };
    let cpu_cost = median(cpu_costs);
    let (cpu_off, cpu_on) = (median(cpu_off), median(cpu_on));
    let tick_us = 1e6 / clock_ticks_per_sec();
    rows.push(Row {
        name: format!(
            "pipelined appends with the audit log following and checkpointing (every {} events or {} ms; {made} checkpoints in {cost_rounds} rounds; it trailed the last append by at most {})",
            args.checkpoint_every_events,
            args.checkpoint_every_ms,
            fmt_dur(lag)
        ),
        value: fmt_rate(on),
        baseline: format!("{} without the audit log (median rates)", fmt_rate(off)),
        ratio: format!("cost {cost:.1} % (median of {cost_rounds} pairs)"),
        goal: "< 5 %".into(),
    });
    rows.push(Row {
        name: "the same rounds: CPU time (benchmark process and nats-server, user + system) per append, with the audit log following and checkpointing".into(),
        value: format!("{:.1} µs", cpu_on * tick_us),
        baseline: format!("{:.1} µs without the audit log (medians)", cpu_off * tick_us),
        ratio: format!(
            "cost {cpu_cost:.1} % (median of {cost_rounds} pairs; quartiles {cpu_lo:.1} … {cpu_hi:.1} %)"
        ),
        goal: "< 5 %".into(),
    });
    print_table(&rows);
    if let Some(mb) = rss {
        println!("peak resident memory during verification: {mb} MB");
    }
    println!(
        "verification {ratio:.2}x the raw Ed25519 time (goal <= 1.25x); checkpointing costs appends {cost:.1} % of their rate, {cpu_cost:.1} % of their CPU time (goal < 5 %)"
    );
    Ok(())
}

/// User + system CPU time of a process (this one when `None`), in clock ticks, from
/// `/proc/<pid>/stat` (fields 14 and 15, counted after the command name's closing paren).
fn cpu_ticks(pid: Option<u32>) -> anyhow::Result<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(&path)?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("{path}: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // after ")": state is field 3, so utime (14) and stime (15) are at 11 and 12
    let num = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("{path}: short"))?
            .parse()?)
    };
    Ok(num(11)? + num(12)?)
}

/// `USER_HZ` as the kernel reports times in `/proc` (100 on Linux).
fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
