//! Benchmark of projections against real servers it starts (nats-server, a private
//! PostgreSQL), each figure beside a baseline measured in the same run:
//!
//! 1. replay of the log into the in-memory store (the `registry` read model) vs a raw
//!    ordered-consumer read of the same stream;
//! 2. replay into PostgreSQL vs a raw multi-row insert of the same rows;
//! 3. projection lag p99 under a steady append load (5,000 events/s), in memory.
//!
//! `cargo run --release -p accord-simulations --bin bench-projections`

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord_events::catalogue::{AgentProvisioned, AgentSuspended};
use accord_events::{
    Actor, AgentId, AggregateId, AggregateKind, AggregateRef, CommandId, Ed25519Key, Envelope,
    Event, Metadata, SpiffeId, Timestamp, TrustDomain,
};
use accord_simulations::{Latency, Row, fmt_dur, fmt_rate, print_table, rate};
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::postgres::{PgStore, PgTls};
use accord_store::projection::runner::{self, RunnerContext};
use accord_store::projection::{Projection, ProjectionStore};
use accord_store::{EventStore, StoreConfig, Version};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

#[derive(Parser)]
struct Args {
    /// Agents in the seeded log (each with `per_agent` events).
    #[arg(long, default_value_t = 20_000)]
    agents: usize,
    #[arg(long, default_value_t = 10)]
    per_agent: usize,
    /// Events per projection transaction.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Steady append rate for the lag measurement, events/s.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds of steady load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn domain() -> accord_events::DomainId {
    accord_events::DomainId::parse("bench").expect("domain")
}

fn meta() -> Metadata {
    Metadata::new(
        CommandId::new_random(),
        Actor::system("bench"),
        Timestamp::now(),
    )
}

/// Seeds the log fast: envelopes signed here, published pipelined (the store's compare-and-set
/// path is benchmarked elsewhere).
async fn seed(
    js: &async_nats::jetstream::Context,
    key: &Ed25519Key,
    agents: usize,
    per: usize,
) -> anyhow::Result<u64> {
    let td = TrustDomain::parse("bench.example")?;
    let mut acks = FuturesUnordered::new();
    let mut n = 0;
    for _ in 0..agents {
        let agent = AgentId::new_v7();
        let id = AggregateId::parse(&agent.to_string())?;
        for i in 0..per {
            let event = if i == 0 {
                Event::AgentProvisioned(AgentProvisioned {
                    agent_id: agent,
                    spiffe_id: SpiffeId::for_agent(&td, &agent),
                    name: "planner".into(),
                    provider_id: None,
                    requested_capabilities: ["mail.send".to_string()].into(),
                })
            } else {
                Event::AgentSuspended(AgentSuspended {
                    reason: format!("event {i}"),
                })
            };
            let env = Envelope::new(
                &domain(),
                AggregateRef {
                    kind: AggregateKind::Agent,
                    id: id.clone(),
                    seq: i as u64 + 1,
                },
                &meta(),
                0,
                &event,
            )?;
            let s = key.sign_event(env)?;
            acks.push(
                js.publish(s.envelope.subject().to_string(), Bytes::from(s.bytes))
                    .await?
                    .into_future(),
            );
            n += 1;
            while acks.len() >= 4096 {
                acks.next().await.transpose()?;
            }
        }
    }
    while acks.next().await.transpose()?.is_some() {}
    Ok(n)
}

async fn raw_ordered_read(store: &EventStore, n: u64) -> anyhow::Result<f64> {
    let reader = store.reader();
    let t = Instant::now();
    let mut entries = reader.follow("accord.evt.bench.>", 1).await?;
    let mut got = 0u64;
    while let Some(e) = entries.next().await {
        let e = e?;
        std::hint::black_box(&e.payload);
        got += 1;
        if got >= n {
            break;
        }
    }
    Ok(rate(n, t.elapsed()))
}

/// The raw read again, with each message's signature verified (aws-lc-rs Ed25519 through
/// the event key ring, on the reading task): what checking every entry costs at least.
async fn raw_read_verified(store: &EventStore, n: u64) -> anyhow::Result<f64> {
    let ring = accord_events::KeyRing::trusting(std::slice::from_ref(store.signing_key()))?;
    let reader = store.reader();
    let t = Instant::now();
    let mut entries = reader.follow("accord.evt.bench.>", 1).await?;
    let mut got = 0u64;
    while let Some(e) = entries.next().await {
        let e = e?;
        std::hint::black_box(ring.verify(&e.payload)?);
        got += 1;
        if got >= n {
            break;
        }
    }
    Ok(rate(n, t.elapsed()))
}

async fn replay(
    store: &EventStore,
    ps: Arc<dyn ProjectionStore>,
    batch: usize,
    n: u64,
) -> anyhow::Result<(f64, u32)> {
    let ctx = RunnerContext::of(store, batch);
    // a runner that is stopped at once: rebuild drives the replay itself
    let (_stop_tx, stop) = tokio::sync::watch::channel(true);
    let handle = runner::spawn(
        Arc::new(accord_readmodels::Registry),
        ps.clone(),
        ctx.clone(),
        stop,
    );
    let t = Instant::now();
    let g = runner::rebuild(&handle, &ctx, |_, _| {}).await?;
    Ok((rate(n, t.elapsed()), g))
}

/// Inserts rows straight into a table shaped like the projection store's, `batch` per
/// statement; returns how long it took.
async fn raw_insert(
    url: &str,
    all: Vec<((String, String), serde_json::Value)>,
    batch: usize,
) -> anyhow::Result<Duration> {
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    db.batch_execute(
        "CREATE TABLE raw_rows (projection text, generation int, tbl text, key text, value jsonb,
         seq bigint, PRIMARY KEY (projection, generation, tbl, key))",
    )
    .await?;
    let t = Instant::now();
    for chunk in all.chunks(batch) {
        let mut tb = Vec::with_capacity(chunk.len());
        let mut k = Vec::with_capacity(chunk.len());
        let mut v = Vec::with_capacity(chunk.len());
        for ((t, key), value) in chunk {
            tb.push(t.clone());
            k.push(key.clone());
            v.push(value.clone());
        }
        let s: Vec<i64> = (0..chunk.len() as i64).collect();
        db.execute(
            "INSERT INTO raw_rows (projection, generation, tbl, key, value, seq)
             SELECT 'registry', 1, t, k, v, s
             FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int8[]) AS u(t, k, v, s)
             ON CONFLICT (projection, generation, tbl, key) DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq",
            &[&tb, &k, &v, &s],
        )
        .await?;
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = accord_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await?;
    let key = Arc::new(Ed25519Key::generate()?.0);
    let store = EventStore::open(client.clone(), StoreConfig::new(domain()), key.clone()).await?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let t = Instant::now();
    let n = seed(&js, &key, args.agents, args.per_agent).await?;
    eprintln!("seeded {n} events in {:.1}s", t.elapsed().as_secs_f64());
    let mut rows = Vec::new();

    // 1. memory replay vs raw ordered read (median of 3 alternating rounds)
    let mut pairs = Vec::new();
    for round in 0..3 {
        let raw = raw_ordered_read(&store, n).await?;
        // a store of its own per round, as after a restart: every entry's signature is
        // checked (the check's cache of what this process wrote or verified is empty)
        let cold =
            EventStore::open(client.clone(), StoreConfig::new(domain()), key.clone()).await?;
        let (ours, _) = replay(&cold, Arc::new(MemoryStore::new()), args.batch, n).await?;
        eprintln!(
            "round {round}: raw {} memory {}",
            fmt_rate(raw),
            fmt_rate(ours)
        );
        pairs.push((ours / raw, ours, raw));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, ours, raw) = pairs[1];
    let verified = raw_read_verified(&store, n).await?;
    eprintln!("raw read + verify {}", fmt_rate(verified));
    rows.push(Row {
        name: format!(
            "replay {n} events into memory (registry read model, batches of {}, every signature checked)",
            args.batch
        ),
        value: fmt_rate(ours),
        baseline: format!(
            "{} raw ordered-consumer read of the same stream",
            fmt_rate(raw)
        ),
        ratio: format!("{ratio:.2}"),
        goal: ">= 0.5".into(),
    });
    rows.push(Row {
        name: "  the same replay against a read that verifies each signature (one thread)".into(),
        value: fmt_rate(ours),
        baseline: format!(
            "{} raw ordered-consumer read + Ed25519 verify of each message",
            fmt_rate(verified)
        ),
        ratio: format!("{:.2}", ours / verified),
        goal: String::new(),
    });

    // 2. PostgreSQL replay vs raw multi-row insert of the same rows, on two logs: the one
    //    above (10 events per agent row) and one where every event writes its own rows
    //    (provisioning only)
    let pg = accord_testkit::PgServer::start();
    let one_server = accord_testkit::NatsServer::start();
    let one_store = EventStore::open(
        async_nats::connect(one_server.url()).await?,
        StoreConfig::new(domain()),
        key.clone(),
    )
    .await?;
    let one_js = async_nats::jetstream::ContextBuilder::new()
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(one_store.client().clone());
    let one_n = seed(&one_js, &key, args.agents * args.per_agent / 2, 1).await?;
    for (label, log, events) in [
        (format!("{} events per agent", args.per_agent), &store, n),
        ("1 event per agent".to_owned(), &one_store, one_n),
    ] {
        let url = pg.create_database(&format!("bench{}", events));
        let pgs = Arc::new(PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local())?);
        pgs.migrate().await?;
        let (ours, generation) = replay(log, pgs.clone(), args.batch, events).await?;
        let dump = pgs.dump("registry", generation).await?;
        let raw_elapsed = raw_insert(&url, dump.into_iter().collect(), args.batch).await?;
        let rows_n = pgs.dump("registry", generation).await?.len();
        let ours_elapsed = Duration::from_secs_f64(events as f64 / ours);
        rows.push(Row {
            name: format!("replay {events} events ({label}) into PostgreSQL, {rows_n} rows result"),
            value: format!("{} ({:.2} s)", fmt_rate(ours), ours_elapsed.as_secs_f64()),
            baseline: format!(
                "{:.2} s raw multi-row insert of the same {rows_n} rows, {} per statement",
                raw_elapsed.as_secs_f64(),
                args.batch
            ),
            ratio: format!(
                "{:.2}",
                raw_elapsed.as_secs_f64() / ours_elapsed.as_secs_f64()
            ),
            goal: ">= 0.5".into(),
        });
    }

    // 3. lag under a steady load, in memory
    let ps: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    let ctx = RunnerContext::of(&store, args.batch);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let projection: Arc<dyn Projection> = Arc::new(accord_readmodels::Registry);
    let handle = runner::spawn(projection, ps, ctx, stop);
    handle.wait_ready(Duration::from_secs(120)).await;
    // watcher: the wall-clock instant each applied sequence became visible to queries
    let applied_at: Arc<Mutex<Vec<(u64, i128)>>> = Arc::default();
    {
        let applied_at = applied_at.clone();
        let mut rx = handle.watch();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow_and_update().applied;
                let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
                applied_at.lock().map(|mut v| v.push((p, now))).ok();
            }
        });
    }
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let tasks = 50u64;
    let per_task_interval = Duration::from_micros(1_000_000 * tasks / args.rate);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut producers = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        let sent = sent.clone();
        producers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_task_interval);
            while Instant::now() < deadline {
                tick.tick().await;
                let agent = AgentId::new_v7();
                let id = AggregateId::parse(&agent.to_string())?;
                let t0 = Instant::now();
                let out = store
                    .append(
                        AggregateKind::Agent,
                        &id,
                        Version::EMPTY,
                        &meta(),
                        vec![Event::AgentSuspended(AgentSuspended {
                            reason: "load".into(),
                        })],
                    )
                    .await?;
                sent.lock()
                    .map(|mut s| s.insert(out.version.stream_seq, t0))
                    .ok();
            }
            anyhow::Ok(())
        }));
    }
    let t = Instant::now();
    for p in producers {
        p.await??;
    }
    let achieved = rate(
        sent.lock().map(|s| s.len()).unwrap_or(0) as u64,
        t.elapsed(),
    );
    let last_sent = sent
        .lock()
        .map(|s| *s.keys().max().unwrap_or(&0))
        .unwrap_or(0);
    handle.wait_for(last_sent, Duration::from_secs(30)).await?;
    let _ = stop_tx.send(true);
    let applied = applied_at.lock().map(|v| v.clone()).unwrap_or_default();
    // lag = from the moment the server stored an event to the moment the projection's answer
    // includes it (both wall clock, same machine)
    let first_sent = sent
        .lock()
        .map(|s| *s.keys().min().unwrap_or(&1))
        .unwrap_or(1);
    let stored = store
        .reader()
        .read_range("accord.evt.bench.>", first_sent)
        .await?;
    let mut lag = Latency::new();
    for e in stored.iter().filter(|e| e.seq <= last_sent) {
        let i = applied.partition_point(|(a, _)| *a < e.seq);
        if let Some((_, at)) = applied.get(i) {
            lag.record(Duration::from_nanos((at - e.stored_at_nanos).max(0) as u64));
        }
    }
    rows.push(Row {
        name: format!(
            "projection lag, in memory, steady {} events/s for {}s (stored to visible in the read model)",
            achieved.round(),
            args.seconds
        ),
        value: format!("p50 {} / p99 {} ({} events)", fmt_dur(lag.p(0.5)), fmt_dur(lag.p(0.99)), lag.count()),
        baseline: "n/a".into(),
        ratio: String::new(),
        goal: "p99 < 10 ms".into(),
    });
    print_table(&rows);
    drop(pg);
    drop(one_server);
    drop(server);
    Ok(())
}
