//! Benchmark of the event store against a real nats-server it starts, each figure beside a
//! baseline measured in the same run:
//!
//! 1. pipelined append of ~256-byte events (store: envelope + JCS + Ed25519 + publish) vs raw
//!    JetStream async publish of the same signed payloads;
//! 2. compare-and-set appends over many aggregates in flight vs raw synchronous publish with
//!    the same headers;
//! 3. an issuance's records: one event per command, a two-event atomic batch, group commit;
//! 4. aggregate load latency (100-event aggregates): cold from a snapshot, cold from every
//!    event, cached.
//!
//! `cargo run --release -p accord-simulations --bin bench-store`

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use accord_events::{AgentId, AggregateId, AggregateKind, CommandId, Ed25519Key, Event};
use accord_simulations::{
    Latency, Row, append_facts, bench_meta, fmt_dur, fmt_rate, print_table, rate, token_fact,
};
use accord_store::{EventStore, StoreConfig, StreamSettings, Version};
use async_nats::jetstream;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

#[derive(Parser)]
struct Args {
    /// Events in each throughput run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Producer tasks on the pipelined path (concurrent requests of a token service).
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Rounds of the pipelined comparison (raw and store alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Compare-and-set appends in each run.
    #[arg(long, default_value_t = 10_000)]
    cas_appends: usize,
    /// Aggregates appended to concurrently.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Issuances recorded per round of the issuance-records comparison.
    #[arg(long, default_value_t = 4_000)]
    issuances: usize,
    /// Only the load latencies (section 3).
    #[arg(long)]
    loads_only: bool,
    /// Loads measured per latency figure.
    #[arg(long, default_value_t = 2_000)]
    loads: usize,
}

/// The store's messages for `n` facts, signed in advance, under the raw stream's subjects.
fn presign(
    key: &Ed25519Key,
    n: usize,
    round: usize,
) -> anyhow::Result<Vec<(String, String, Bytes)>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let env = accord_events::Envelope::new(
            &domain(),
            accord_events::AggregateRef {
                kind: AggregateKind::Token,
                id: AggregateId::parse(&format!("{:03}", i % 64))?,
                seq: 0,
            },
            &bench_meta(),
            0,
            &token_fact(round * n + i),
        )?;
        let s = key.sign_event(env)?;
        let subject =
            s.envelope
                .subject()
                .to_string()
                .replacen("accord.evt.bench", "accord.evt.raw", 1);
        v.push((subject, s.envelope.id.to_string(), Bytes::from(s.bytes)));
    }
    Ok(v)
}

/// Raw JetStream async publish with the same message id header, 4,096 acks in flight.
async fn raw_async(
    js: &jetstream::Context,
    signed: Vec<(String, String, Bytes)>,
) -> anyhow::Result<f64> {
    let n = signed.len();
    let t = Instant::now();
    let mut acks = FuturesUnordered::new();
    for (subject, id, payload) in signed {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id.as_str());
        acks.push(
            js.publish_with_headers(subject, h, payload)
                .await?
                .into_future(),
        );
        while acks.len() >= 4096 {
            acks.next().await.transpose()?;
        }
    }
    while acks.next().await.transpose()?.is_some() {}
    Ok(rate(n as u64, t.elapsed()))
}

fn domain() -> accord_events::DomainId {
    accord_events::DomainId::parse("bench").expect("domain")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_len = serde_json::to_vec(&token_fact(0).to_data())?.len();
    let server = accord_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await?;
    let key = Arc::new(Ed25519Key::generate()?.0);
    let store = EventStore::open(client.clone(), StoreConfig::new(domain()), key.clone()).await?;
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client.clone());
    // the baseline writes to a stream with the same configuration, other subjects
    let mut raw_settings = StreamSettings::new(accord_events::DomainId::parse("raw")?);
    raw_settings.name = "RAW".into();
    js.create_stream(raw_settings.config()).await?;
    let mut rows = Vec::new();

    if !args.loads_only {
        // 1. pipelined appends: rounds alternate raw and store; the median ratio is reported
        let mut pairs = Vec::new();
        let mut payload_len = 0;
        for round in 0..args.rounds {
            let signed = presign(&key, args.events, round)?;
            payload_len = signed[0].2.len();
            let raw = raw_async(&js, signed).await?;
            let ours =
                append_facts(&store, args.events, args.producers, round * args.events).await?;
            eprintln!(
                "round {round}: raw {} store {}",
                fmt_rate(raw),
                fmt_rate(ours)
            );
            pairs.push((ours / raw, ours, raw));
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ratio, ours, raw) = pairs[pairs.len() / 2];
        rows.push(Row {
            name: format!(
                "pipelined append, {data_len}-byte event data ({payload_len}-byte signed message), {} producers, median of {} rounds",
                args.producers, args.rounds
            ),
            value: fmt_rate(ours),
            baseline: format!("{} raw JetStream async publish of the same signed payloads", fmt_rate(raw)),
            ratio: format!("{ratio:.2}"),
            goal: ">= 0.5".into(),
        });

        // 2. compare-and-set over many aggregates
        let t = Instant::now();
        for i in 0..args.cas_appends {
            let agent = AgentId::new_v7();
            let subject = format!("accord.evt.raw.agent.{agent}.AgentSuspended");
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", CommandId::new_random().to_string().as_str());
            h.insert("Nats-Expected-Last-Subject-Sequence", "0");
            h.insert(
                "Nats-Expected-Last-Subject-Sequence-Subject",
                format!("accord.evt.raw.agent.{agent}.*").as_str(),
            );
            h.insert("Nats-Expected-Stream", "RAW");
            js.publish_with_headers(subject, h, Bytes::from(vec![b'x'; 700 + i % 2]))
                .await?
                .await?;
        }
        let raw_sync = rate(args.cas_appends as u64, t.elapsed());

        let t = Instant::now();
        let per = args.cas_appends / args.in_flight;
        let mut tasks = Vec::new();
        for _ in 0..args.in_flight {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..per {
                    let agent = AgentId::new_v7();
                    let id = AggregateId::parse(&agent.to_string())?;
                    store
                        .append(
                            AggregateKind::Agent,
                            &id,
                            Version::EMPTY,
                            &bench_meta(),
                            vec![Event::AgentSuspended(
                                accord_events::catalogue::AgentSuspended {
                                    reason: "bench".into(),
                                },
                            )],
                        )
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let store_cas = rate((per * args.in_flight) as u64, t.elapsed());
        rows.push(Row {
            name: format!(
                "compare-and-set appends, {} aggregates in flight",
                args.in_flight
            ),
            value: fmt_rate(store_cas),
            baseline: format!(
                "{} raw synchronous publish, same headers",
                fmt_rate(raw_sync)
            ),
            ratio: format!("{:.2}", store_cas / raw_sync),
            goal: ">= 2".into(),
        });

        // 3. how an issuance is recorded (ADR 0013): one event per command, a two-event atomic
        //    batch per command, or group commit (many commands' events in one atomic batch)
        let rounds = args.rounds.max(1);
        let mut one = Vec::new();
        let mut two = Vec::new();
        let mut group = Vec::new();
        for _ in 0..rounds {
            one.push(issuance_records(&store, args.issuances, 16, false).await?);
            two.push(issuance_records(&store, args.issuances, 16, true).await?);
            group.push(group_commit(&client, &key, args.issuances, 16).await?);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (one, two, group) = (median(&mut one), median(&mut two), median(&mut group));
        rows.push(Row {
            name: format!(
                "an issuance recorded as one CredentialIssued (v2), compare-and-set, 16 writers, median of {rounds} rounds"
            ),
            value: fmt_rate(one),
            baseline: format!(
                "{} as CredentialRequested + CredentialIssued in one atomic batch per issuance (before)",
                fmt_rate(two)
            ),
            ratio: format!("{:.2}", one / two),
            goal: ">= 1,000/s".into(),
        });
        rows.push(Row {
            name: "group commit prototype: 16 issuances' two events in one atomic batch, each with its aggregate's expectation".into(),
            value: fmt_rate(group),
            baseline: format!("{} one event per issuance (above)", fmt_rate(one)),
            ratio: format!("{:.2}", group / one),
            goal: String::new(),
        });
    }

    // 4. load latency of 100-event aggregates
    let mut ids = Vec::new();
    for _ in 0..200 {
        let agent = AgentId::new_v7();
        let id = AggregateId::parse(&agent.to_string())?;
        let mut v = Version::EMPTY;
        for chunk in 0..4 {
            let events = (0..25)
                .map(|i| {
                    Event::AgentSuspended(accord_events::catalogue::AgentSuspended {
                        reason: format!("event {} of a long-lived agent", chunk * 25 + i),
                    })
                })
                .collect();
            v = store
                .append(AggregateKind::Agent, &id, v, &bench_meta(), events)
                .await?
                .version;
        }
        ids.push(id);
    }
    // a writer folds each once: that writes its snapshot at its 100th event (ADR 0014)
    let writer =
        accord_store::cqrs::JetStreamStore::<LongLived>::new(store.clone())?.with_snapshots(1);
    for id in &ids {
        writer.load_context(id).await?;
    }
    while store
        .counters()
        .snapshots_written
        .load(std::sync::atomic::Ordering::Relaxed)
        < ids.len() as u64
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // a reader with its own (empty) cache, as another service instance would be
    let reader = EventStore::open(
        async_nats::connect(server.url()).await?,
        StoreConfig::new(domain()),
        key.clone(),
    )
    .await?;
    let folder =
        accord_store::cqrs::JetStreamStore::<LongLived>::new(reader.clone())?.with_snapshots(1);
    let mut snap = Latency::new();
    let mut cold = Latency::new();
    let mut checked = Latency::new();
    let mut warm = Latency::new();
    let mut optimistic = Latency::new();
    // each kind of load in its own loop over the aggregates, so that one kind's bursts (a
    // 100-message batch) do not land in another's latencies
    for i in 0..args.loads {
        let id = &ids[i % ids.len()];
        // as after a restart, from the snapshot: nothing cached, nothing checked
        reader.clear_cache();
        let t = Instant::now();
        let ctx = folder.load_context(id).await?;
        snap.since(t);
        anyhow::ensure!(ctx.history.base.is_some() && ctx.aggregate.reasons.len() == 100);
    }
    for i in 0..args.loads {
        let id = &ids[i % ids.len()];
        // as after a restart, every event read and its signature checked (no snapshot)
        reader.clear_cache();
        let t = Instant::now();
        let a = reader.load(AggregateKind::Agent, id).await?;
        cold.since(t);
        assert_eq!(a.events.len(), 100);
        // the same, with the events already checked by this process (what the check costs)
        reader.clear_aggregate_cache();
        let t = Instant::now();
        let a = reader.load(AggregateKind::Agent, id).await?;
        checked.since(t);
        assert_eq!(a.events.len(), 100);
    }
    for i in 0..args.loads {
        let id = &ids[i % ids.len()];
        let t = Instant::now();
        let a = reader.load(AggregateKind::Agent, id).await?;
        warm.since(t);
        assert_eq!(a.events.len(), 100);
        let t = Instant::now();
        let (a, _) = reader.load_cached(AggregateKind::Agent, id).await?;
        optimistic.since(t);
        assert_eq!(a.events.len(), 100);
    }
    let refused = reader
        .counters()
        .snapshots_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(refused == 0, "{refused} snapshots refused");
    rows.push(Row {
        name: "aggregate load and fold, 100 events, cold, from its snapshot (snapshot + last event side by side, one signature checked)".into(),
        value: format!("p50 {} / p99 {}", fmt_dur(snap.p(0.5)), fmt_dur(snap.p(0.99))),
        baseline: format!(
            "p50 {} / p99 {} every event read and its signature checked",
            fmt_dur(cold.p(0.5)),
            fmt_dur(cold.p(0.99))
        ),
        ratio: format!(
            "{:.2}",
            snap.p(0.99).as_secs_f64() / cold.p(0.99).as_secs_f64().max(1e-9)
        ),
        goal: "p99 < 1 ms".into(),
    });
    rows.push(Row {
        name: "aggregate load, 100 events, cold, no snapshot (batched direct get of exactly its events + decode + every signature checked)".into(),
        value: format!(
            "p50 {} / p99 {}",
            fmt_dur(cold.p(0.5)),
            fmt_dur(cold.p(0.99))
        ),
        baseline: format!(
            "p50 {} / p99 {} the same loads, events already checked by this process",
            fmt_dur(checked.p(0.5)),
            fmt_dur(checked.p(0.99))
        ),
        ratio: format!(
            "{:.2}",
            cold.p(0.5).as_secs_f64() / checked.p(0.5).as_secs_f64().max(1e-9)
        ),
        goal: String::new(),
    });
    rows.push(Row {
        name: "aggregate load, 100 events, cached, reader path (one direct get of its last event: anything new?)"
            .into(),
        value: format!(
            "p50 {} / p99 {}",
            fmt_dur(warm.p(0.5)),
            fmt_dur(warm.p(0.99))
        ),
        baseline: "n/a".into(),
        ratio: String::new(),
        goal: "p99 < 1 ms".into(),
    });
    rows.push(Row {
        name: "aggregate load, 100 events, cached, writer path (no round trip; compare-and-set catches staleness)".into(),
        value: format!("p50 {} / p99 {}", fmt_dur(optimistic.p(0.5)), fmt_dur(optimistic.p(0.99))),
        baseline: "n/a".into(),
        ratio: String::new(),
        goal: "p99 < 1 ms".into(),
    });
    print_table(&rows);
    drop(server);
    Ok(())
}

/// A long-lived aggregate for the load figures: it keeps something of every event (as an
/// agent keeps its credentials), so its snapshot grows with its history.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct LongLived {
    reasons: Vec<String>,
}

impl cqrs_es::Aggregate for LongLived {
    const TYPE: &'static str = "agent";
    type Command = ();
    type Event = Event;
    type Error = std::io::Error;
    type Services = ();

    async fn handle(
        &mut self,
        _: (),
        _: &(),
        _: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn apply(&mut self, event: Event) {
        if let Event::AgentSuspended(s) = event {
            self.reasons.push(s.reason);
        }
    }
}

/// The events of one issuance, as recorded before (`CredentialRequested`, then a v1-shaped
/// `CredentialIssued`) or now (one `CredentialIssued` carrying the request).
fn issuance_events(two: bool) -> anyhow::Result<Vec<Event>> {
    let issued = accord_events::sample::event("CredentialIssued")
        .ok_or_else(|| anyhow::anyhow!("no sample CredentialIssued"))?;
    Ok(match (two, issued) {
        (true, Event::CredentialIssued(mut i)) => {
            let request = i
                .request
                .take()
                .ok_or_else(|| anyhow::anyhow!("no request"))?;
            i.owner_bound = None;
            vec![
                Event::CredentialRequested(request),
                Event::CredentialIssued(i),
            ]
        }
        (false, Event::CredentialIssued(mut i)) => {
            i.owner_bound = None;
            vec![Event::CredentialIssued(i)]
        }
        _ => anyhow::bail!("not a CredentialIssued"),
    })
}

/// Issuances per second when `writers` tasks each record issuances for new agents, one
/// command at a time, through the store.
async fn issuance_records(
    store: &EventStore,
    n: usize,
    writers: usize,
    two: bool,
) -> anyhow::Result<f64> {
    let events = issuance_events(two)?;
    let per = n / writers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, events) = (store.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let id = AggregateId::parse(&AgentId::new_v7().to_string())?;
                store
                    .append(
                        AggregateKind::Agent,
                        &id,
                        Version::EMPTY,
                        &bench_meta(),
                        events.clone(),
                    )
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(rate((per * writers) as u64, t.elapsed()))
}

/// Group commit as a prototype (not in the store): `group` issuances (two events each, new
/// agents) signed, then published as one atomic batch in which each issuance's first message
/// carries its aggregate's compare-and-set expectation; one batch in flight at a time, as a
/// committer that gathers the next group while one commits. Issuances per second.
async fn group_commit(
    client: &async_nats::Client,
    key: &Ed25519Key,
    n: usize,
    group: usize,
) -> anyhow::Result<f64> {
    let events = issuance_events(true)?;
    let d = domain();
    let t = Instant::now();
    let mut done = 0;
    while done + group <= n {
        let batch_id = uuid_like();
        let mut msgs = Vec::with_capacity(group * events.len());
        for _ in 0..group {
            let id = AggregateId::parse(&AgentId::new_v7().to_string())?;
            let meta = bench_meta();
            for (i, e) in events.iter().enumerate() {
                let agg = accord_events::AggregateRef {
                    kind: AggregateKind::Agent,
                    id: id.clone(),
                    seq: 1 + i as u64,
                };
                let env = accord_events::Envelope::new(&d, agg, &meta, i as u32, e)?;
                let s = key.sign_event(env)?;
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", s.envelope.id.to_string().as_str());
                if i == 0 {
                    h.insert("Nats-Expected-Last-Subject-Sequence", "0");
                    h.insert(
                        "Nats-Expected-Last-Subject-Sequence-Subject",
                        accord_events::subject::aggregate_filter(&d, AggregateKind::Agent, &id)
                            .as_str(),
                    );
                }
                msgs.push((s.envelope.subject().to_string(), h, Bytes::from(s.bytes)));
            }
        }
        let last = msgs.len();
        let mut commit = None;
        for (i, (subject, mut h, payload)) in msgs.into_iter().enumerate() {
            h.insert("Nats-Batch-Id", batch_id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            if i + 1 == last {
                h.insert("Nats-Batch-Commit", "1");
                commit = Some(client.request_with_headers(subject, h, payload).await?);
            } else {
                client.publish_with_headers(subject, h, payload).await?;
            }
        }
        let ack: serde_json::Value =
            serde_json::from_slice(&commit.ok_or_else(|| anyhow::anyhow!("no commit"))?.payload)?;
        anyhow::ensure!(ack.get("error").is_none(), "group commit refused: {ack}");
        done += group;
    }
    Ok(rate(done as u64, t.elapsed()))
}

fn uuid_like() -> String {
    CommandId::new_random().to_string().replace('-', "")
}
