//! Benchmark of the Agent Registry Service's discovery (issue 15, ADR 0015) against real
//! servers it starts (nats-server, a private PostgreSQL):
//!
//! 1. seeds `--agents` registered agents (1,000,000 by default) as signed events in bulk
//!    (`AgentProvisioned` and `AgentRegistered` each, published pipelined), with owners,
//!    teams, visibilities, capabilities, skills and tags drawn at random;
//! 2. replays them into the in-memory directory and into PostgreSQL (the `registry`
//!    projection, as `accord serve` runs it);
//! 3. open-loop discovery at `--rate` queries/s (latency from each query's scheduled start,
//!    so a stall counts against every query it delays), as agents of random owners with the
//!    shipped discovery policy: the requester's filter compiled by the PDP, the directory
//!    queried with it, each record of the page checked again by the PDP; beside the same
//!    queries without the policy (the directory alone, nothing hidden), in the same run; for
//!    the memory directory and for PostgreSQL;
//! 4. revoke-to-absence: a `CredentialRevoked` appended through the store, until discovery no
//!    longer shows the record, for `--revocations` agents; beside the append alone.
//!
//! `cargo run --release -p accord-simulations --bin bench-registry [-- --agents 1000000]`

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_events::catalogue::{
    AgentProvisioned, AgentRegistered, Audience, CardFields, CredentialRevoked, Endpoint, Owner,
    OwnerBindingKind, RevocationReason, Skill, Visibility,
};
use accord_events::{
    AgentId, AggregateId, AggregateKind, AggregateRef, CredentialSerial, Ed25519Key, Envelope,
    Event, SpiffeId, Timestamp, TrustDomain,
};
use accord_policy::inputs::Requester;
use accord_policy::{Bundle, BundleRef, LocalPdp, Pdp};
use accord_registry::directory::Index;
use accord_registry::page::PageTokens;
use accord_registry::pg::PgDirectory;
use accord_registry::query::Clause;
use accord_registry::{Directory, Discovery, Filter, SearchRequest, Visible};
use accord_simulations::{Latency, Row, fmt_dur, fmt_rate, print_table, rate};
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::postgres::{PgStore, PgTls};
use accord_store::projection::runner::{self, ProjectionHandle, RunnerContext};
use accord_store::{EventStore, StoreConfig};
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

#[derive(Parser)]
struct Args {
    /// Registered agents in the seeded log.
    #[arg(long, default_value_t = 1_000_000)]
    agents: usize,
    /// Discovery queries per second (open loop).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Seconds of each load run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Records per page.
    #[arg(long, default_value_t = 20)]
    page_size: usize,
    /// Revocations timed to their absence from discovery.
    #[arg(long, default_value_t = 200)]
    revocations: usize,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_pg: bool,
    /// An existing PostgreSQL database to replay into and query (kept afterwards, e.g. for
    /// `EXPLAIN`); default: a private server started for the run.
    #[arg(long)]
    pg_url: Option<String>,
    /// Skip the in-memory directory's load runs (its replay still runs).
    #[arg(long)]
    no_memory_load: bool,
    /// Concurrent workers of the closed-loop capacity runs (0: none).
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

const OWNERS: usize = 2_000;
const TEAMS: usize = 100;
const CAPABILITIES: usize = 400;
const TAGS: usize = 300;

fn domain() -> accord_events::DomainId {
    accord_events::DomainId::parse("bench").expect("domain")
}

fn owner_key(i: usize) -> String {
    format!("https://idp.bench.example#owner-{i}")
}

/// A small deterministic generator (the run is reproducible from `--agents`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Seeded {
    /// (agent, serial, the stream sequence of its last event) of every agent.
    agents: Vec<(AgentId, CredentialSerial, u64)>,
    events: u64,
}

async fn seed(
    js: &async_nats::jetstream::Context,
    key: &Ed25519Key,
    n: usize,
) -> anyhow::Result<Seeded> {
    let td = TrustDomain::parse("bench.example")?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut acks = FuturesUnordered::new();
    let mut agents = Vec::with_capacity(n);
    let mut events = 0;
    for _ in 0..n {
        let agent = AgentId::new_v7();
        let id = AggregateId::parse(&agent.to_string())?;
        let serial = accord_authority::profile::random_serial();
        let spiffe = SpiffeId::for_agent(&td, &agent);
        let mut caps = std::collections::BTreeSet::new();
        for _ in 0..3 + rng.below(3) {
            caps.insert(format!("cap.{}", rng.below(CAPABILITIES)));
        }
        if rng.below(10) == 0 {
            caps.insert("admin.reset".to_owned());
        }
        let owner = rng.below(OWNERS);
        let visibility = match rng.below(10) {
            0 => Visibility::Public,
            1..=6 => Visibility::Domain,
            7 | 8 => Visibility::Team,
            _ => Visibility::Owner,
        };
        let team = (visibility == Visibility::Team).then(|| format!("team-{}", rng.below(TEAMS)));
        let name = format!("agent-{}", rng.below(1_000_000));
        let provisioned = Event::AgentProvisioned(AgentProvisioned {
            agent_id: agent,
            spiffe_id: spiffe.clone(),
            name: name.clone(),
            provider_id: None,
            requested_capabilities: caps.clone(),
        });
        let registered = Event::AgentRegistered(AgentRegistered {
            spiffe_id: spiffe,
            credential_serial: serial.clone(),
            name,
            description: format!(
                "books {} trips",
                ["short", "long", "business", "family"][rng.below(4)]
            ),
            capabilities: caps,
            owner: Some(Owner {
                issuer: "https://idp.bench.example".into(),
                subject: format!("owner-{owner}"),
                kind: OwnerBindingKind::IdToken,
            }),
            aibom_digest: None,
            endpoints: vec![Endpoint {
                url: format!("https://{agent}.agents.bench.example/a2a"),
                transport: "JSONRPC".into(),
            }],
            agent_card_digest: None,
            skills: vec![Skill {
                id: format!("skill-{}", rng.below(1000)),
                name: "a skill".into(),
                description: "does one thing".into(),
                tags: [format!("tag-{}", rng.below(TAGS))].into(),
            }],
            audience: Audience { visibility, team },
            card: CardFields::default(),
        });
        let slot = agents.len();
        agents.push((agent, serial, 0));
        for (i, event) in [provisioned, registered].into_iter().enumerate() {
            let env = Envelope::new(
                &domain(),
                AggregateRef {
                    kind: AggregateKind::Agent,
                    id: id.clone(),
                    seq: i as u64 + 1,
                },
                &accord_simulations::bench_meta(),
                0,
                &event,
            )?;
            let s = key.sign_event(env)?;
            let ack = js
                .publish(s.envelope.subject().to_string(), Bytes::from(s.bytes))
                .await?
                .into_future();
            acks.push(async move { (slot, i, ack.await) });
            events += 1;
            // under async-nats's limit of acknowledgements in flight (they are released as
            // they are read)
            while acks.len() >= 4096 {
                if let Some((slot, i, ack)) = acks.next().await {
                    let seq = ack?.sequence;
                    if i == 1 {
                        agents[slot].2 = seq;
                    }
                }
            }
        }
    }
    while let Some((slot, i, ack)) = acks.next().await {
        let seq = ack?.sequence;
        if i == 1 {
            agents[slot].2 = seq;
        }
    }
    Ok(Seeded { agents, events })
}

fn pdp() -> anyhow::Result<Pdp> {
    let b = Bundle::library();
    let local = Arc::new(LocalPdp::new());
    local.load(
        &b,
        BundleRef {
            name: "default".into(),
            version: 1,
            digest: b.digest(),
            published_seq: 0,
        },
    )?;
    Ok(Pdp::local(local, None))
}

/// One query of the mix, as the agent of a random owner.
fn query(rng: &mut Rng, page_size: usize) -> (Requester, SearchRequest) {
    let shape = rng.below(4);
    query_of(rng, page_size, shape)
}

/// The kinds of query in the mix.
const SHAPES: [&str; 4] = ["one capability", "one tag", "a text", "anything"];

/// A query of one shape (an index of [`SHAPES`]).
fn query_of(rng: &mut Rng, page_size: usize, shape: usize) -> (Requester, SearchRequest) {
    let owner = rng.below(OWNERS);
    let requester = Requester {
        id: format!("spiffe://bench.example/agent/requester-{owner}"),
        domain: "bench".into(),
        owner: Some(owner_key(owner)),
        caller_type: Some("agent".into()),
        ..Requester::default()
    };
    let filter = match shape {
        0 => Filter {
            capability: vec![format!("cap.{}", rng.below(CAPABILITIES))],
            ..Filter::default()
        },
        1 => Filter {
            tag: vec![format!("tag-{}", rng.below(TAGS))],
            ..Filter::default()
        },
        2 => Filter {
            text: Some(["business", "family trips", "agent-12"][rng.below(3)].into()),
            ..Filter::default()
        },
        _ => Filter::default(),
    };
    (
        requester,
        SearchRequest {
            filter,
            page_size: Some(page_size),
            ..SearchRequest::default()
        },
    )
}

/// Open-loop load: `rate` queries/s for `secs`, each timed from its scheduled start.
async fn load<F, Fut>(rate_qps: u64, secs: u64, page_size: usize, run: F) -> (Latency, u64, u64)
where
    F: Fn(Requester, SearchRequest) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let total = rate_qps * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate_qps.max(1));
    let start = Instant::now();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut tasks = FuturesUnordered::new();
    for i in 0..total {
        let at = start + interval * i as u32;
        let (req, q) = query(&mut rng, page_size);
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let r = run(req, q).await;
            (at.elapsed(), r)
        }));
    }
    let mut lat = Latency::new();
    let (mut errors, mut results) = (0, 0u64);
    while let Some(j) = tasks.next().await {
        match j {
            Ok((d, Ok(n))) => {
                lat.record(d);
                results += n as u64;
            }
            _ => errors += 1,
        }
    }
    (lat, errors, results)
}

/// Closed loop: `workers` tasks each asking the next query as soon as the last is answered,
/// for `secs`; queries answered per second.
async fn capacity<F, Fut>(workers: usize, secs: u64, page_size: usize, run: F) -> f64
where
    F: Fn(Requester, SearchRequest) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let until = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1));
            let mut n = 0u64;
            while Instant::now() < until {
                let (req, q) = query(&mut rng, page_size);
                if run(req, q).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap_or(0);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Each shape of query alone, one at a time without the policy (the directory's own time):
/// mean and p99 over `n` queries each.
async fn per_shape(index: &Arc<dyn Index>, page_size: usize, n: usize) -> Vec<(String, Latency)> {
    let mut out = Vec::new();
    for (shape, name) in SHAPES.iter().enumerate() {
        let mut rng = Rng(0x51_7cc1_b727_220a ^ shape as u64);
        let mut lat = Latency::new();
        for _ in 0..n {
            let (_, q) = query_of(&mut rng, page_size, shape);
            let Ok((query, size)) = q.query() else {
                continue;
            };
            let t = Instant::now();
            if index
                .scan(&query, &unfiltered(), None, size + 1)
                .await
                .is_ok()
            {
                lat.since(t);
            }
        }
        out.push(((*name).to_owned(), lat));
    }
    out
}

/// The same query without the policy: the directory alone, every record visible.
fn unfiltered() -> Visible {
    Visible {
        clauses: vec![Clause::default()],
        statuses: vec!["registered".into()],
        hidden_prefixes: Vec::new(),
    }
}

async fn wait_applied(h: &ProjectionHandle, seq: u64, what: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    h.wait_for(seq, Duration::from_secs(3600))
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(t.elapsed())
}

#[allow(clippy::too_many_arguments)]
async fn discovery_rows(
    label: &str,
    index: Arc<dyn Index>,
    pdp: &Pdp,
    args: &Args,
    goal_p99: &str,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        b"bench page-token key, 32 bytes!!",
    );
    let d = Arc::new(Discovery::new(
        pdp.clone(),
        index.clone(),
        None,
        PageTokens::new(key),
        "bench",
    ));
    // the whole path, and the directory alone (every record visible, no PDP)
    let policy = {
        let d = d.clone();
        move |r: Requester, q: SearchRequest| {
            let d = d.clone();
            async move { Ok(d.search(&r, &q).await?.agents.len()) }
        }
    };
    let raw = {
        let index = index.clone();
        move |_r: Requester, q: SearchRequest| {
            let index = index.clone();
            async move {
                let (query, size) = q.query()?;
                Ok(index
                    .scan(&query, &unfiltered(), None, size + 1)
                    .await?
                    .0
                    .len())
            }
        }
    };
    // warm up (the PDP's per-thread evaluators, PostgreSQL's caches)
    let _ = load(200, 1, args.page_size, policy.clone()).await;
    let (raw_lat, raw_err, raw_n) =
        load(args.rate, args.seconds, args.page_size, raw.clone()).await;
    let (pol, pol_err, pol_n) = load(args.rate, args.seconds, args.page_size, policy.clone()).await;
    for (name, lat) in per_shape(&index, args.page_size, 200).await {
        rows.push(Row {
            name: format!("{label}: {name}, one query at a time without the policy, p50 / p99"),
            value: format!("{} / {}", fmt_dur(lat.p(0.5)), fmt_dur(lat.p(0.99))),
            baseline: String::new(),
            ratio: String::new(),
            goal: String::new(),
        });
    }
    if args.workers > 0 {
        let raw_cap = capacity(args.workers, args.seconds, args.page_size, raw).await;
        let pol_cap = capacity(args.workers, args.seconds, args.page_size, policy).await;
        rows.push(Row {
            name: format!(
                "{label}: closed-loop capacity, {} workers, with the policy (unfiltered beside)",
                args.workers
            ),
            value: format!("{pol_cap:.0} queries/s"),
            baseline: format!("{raw_cap:.0} queries/s"),
            ratio: format!("{:.2}", pol_cap / raw_cap.max(1e-9)),
            goal: format!(">= {} queries/s", args.rate),
        });
    }
    let total = args.rate * args.seconds;
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        rows.push(Row {
            name: format!("{label}: discovery {name} with the policy (unfiltered beside)"),
            value: fmt_dur(pol.p(q)),
            baseline: fmt_dur(raw_lat.p(q)),
            ratio: format!(
                "{:.2}",
                pol.p(q).as_secs_f64() / raw_lat.p(q).as_secs_f64().max(1e-9)
            ),
            goal: if name == "p99" {
                format!("{goal_p99}; filtered <= 2x unfiltered")
            } else {
                "filtered <= 2x unfiltered".into()
            },
        });
    }
    rows.push(Row {
        name: format!("{label}: queries answered / errors (results per query)"),
        value: format!(
            "{}/{} / {pol_err} ({:.1})",
            total - pol_err,
            total,
            pol_n as f64 / total as f64
        ),
        baseline: format!(
            "{}/{} / {raw_err} ({:.1})",
            total - raw_err,
            total,
            raw_n as f64 / total as f64
        ),
        ratio: String::new(),
        goal: format!(">= {} queries/s open loop", args.rate),
    });
    Ok(())
}

/// Revokes `n` agents' credentials one at a time, each timed until discovery no longer shows
/// the record (polled every 100 µs); beside the append alone.
async fn revoke_to_absence(
    store: &EventStore,
    index: &Arc<dyn Index>,
    agents: &[(AgentId, CredentialSerial, u64)],
) -> anyhow::Result<(Latency, Latency)> {
    let mut absent = Latency::new();
    let mut append = Latency::new();
    for (agent, serial, last) in agents {
        let id = AggregateId::parse(&agent.to_string())?;
        let event = Event::CredentialRevoked(CredentialRevoked {
            serials: vec![serial.clone()],
            reason: RevocationReason::KeyCompromise,
            revoked_at: Timestamp::now(),
            triggered_by: None,
        });
        let t = Instant::now();
        store
            .append(
                AggregateKind::Agent,
                &id,
                accord_store::Version {
                    stream_seq: *last,
                    count: 2,
                },
                &accord_simulations::bench_meta(),
                vec![event],
            )
            .await?;
        append.since(t);
        loop {
            let e = index.get(&agent.to_string()).await?;
            if e.is_none_or(|e| e.status != "registered") {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("agent {agent} still registered 10 s after its revocation");
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        absent.since(t);
    }
    Ok((absent, append))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nats = accord_testkit::NatsServer::start();
    let key = Arc::new(Ed25519Key::generate()?.0);
    let client = async_nats::connect(nats.url()).await?;
    let store = EventStore::open(client.clone(), StoreConfig::new(domain()), key.clone()).await?;
    let js = async_nats::jetstream::new(client);
    let mut rows = Vec::new();

    eprintln!("seeding {} registered agents…", args.agents);
    let t = Instant::now();
    let seeded = seed(&js, &key, args.agents).await?;
    let seed_time = t.elapsed();
    let last = store.last_sequence().await?;
    rows.push(Row {
        name: format!(
            "seed: {} agents as {} signed events, pipelined",
            args.agents, seeded.events
        ),
        value: fmt_rate(rate(seeded.events, seed_time)) + " events/s",
        baseline: fmt_dur(seed_time),
        ratio: String::new(),
        goal: String::new(),
    });

    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let ctx = RunnerContext::of(&store, 1_000);
    // the memory directory, fed as accord serve feeds it
    let dir = Arc::new(Directory::new("bench"));
    let mem = Arc::new(MemoryStore::new());
    mem.observe("registry", dir.clone()).await;
    let t = Instant::now();
    let mem_h = runner::spawn(
        Arc::new(accord_readmodels::Registry),
        mem,
        ctx.clone(),
        stop.clone(),
    );
    wait_applied(&mem_h, last, "memory replay").await?;
    rows.push(Row {
        name: "replay into the memory directory".into(),
        value: fmt_rate(rate(seeded.events, t.elapsed())) + " events/s",
        baseline: fmt_dur(t.elapsed()),
        ratio: String::new(),
        goal: String::new(),
    });
    eprintln!("memory directory: {} records", dir.len());
    let pdp = pdp()?;
    let mem_index: Arc<dyn Index> = dir.clone();
    let n = args.revocations.min(seeded.agents.len() / 2);
    if !args.no_memory_load {
        discovery_rows(
            "memory",
            mem_index.clone(),
            &pdp,
            &args,
            "p99 < 5 ms",
            &mut rows,
        )
        .await?;

        // revoke-to-absence, memory
        let (absent, append) = revoke_to_absence(&store, &mem_index, &seeded.agents[..n]).await?;
        rows.push(Row {
        name: "memory: revoke call to the record's absence from discovery, p50 / p99 (append alone beside)".into(),
        value: format!("{} / {}", fmt_dur(absent.p(0.5)), fmt_dur(absent.p(0.99))),
        baseline: format!("{} / {}", fmt_dur(append.p(0.5)), fmt_dur(append.p(0.99))),
        ratio: format!("{:.2}", absent.p(0.99).as_secs_f64() / append.p(0.99).as_secs_f64().max(1e-9)),
        goal: "p99 < 10 ms".into(),
    });
    }

    if !args.no_pg {
        let mut _private = None;
        let url = match &args.pg_url {
            Some(u) => u.clone(),
            None => {
                let pg = accord_testkit::PgServer::start();
                let url = pg.create_database("registry");
                _private = Some(pg);
                url
            }
        };
        let pgs = Arc::new(PgStore::new(&url, 8, &PgTls::dangerous_plaintext_local())?);
        pgs.migrate().await?;
        let t = Instant::now();
        let pg_h = runner::spawn(
            Arc::new(accord_readmodels::Registry),
            pgs.clone(),
            ctx.clone(),
            stop.clone(),
        );
        let last = store.last_sequence().await?;
        wait_applied(&pg_h, last, "PostgreSQL replay").await?;
        rows.push(Row {
            name: "replay into PostgreSQL (with the registry's indexes)".into(),
            value: fmt_rate(rate(last, t.elapsed())) + " events/s",
            baseline: fmt_dur(t.elapsed()),
            ratio: String::new(),
            goal: String::new(),
        });
        let c = pgs.connection().await?;
        c.batch_execute("ANALYZE accord_rows; ANALYZE accord_registry_records")
            .await?;
        let pg_index: Arc<dyn Index> = Arc::new(PgDirectory::new(pgs.clone(), "bench"));
        discovery_rows(
            "PostgreSQL",
            pg_index.clone(),
            &pdp,
            &args,
            "p99 < 25 ms",
            &mut rows,
        )
        .await?;
        let (absent, append) =
            revoke_to_absence(&store, &pg_index, &seeded.agents[n..2 * n]).await?;
        rows.push(Row {
            name: "PostgreSQL: revoke call to the record's absence from discovery, p50 / p99 (append alone beside)".into(),
            value: format!("{} / {}", fmt_dur(absent.p(0.5)), fmt_dur(absent.p(0.99))),
            baseline: format!("{} / {}", fmt_dur(append.p(0.5)), fmt_dur(append.p(0.99))),
            ratio: format!("{:.2}", absent.p(0.99).as_secs_f64() / append.p(0.99).as_secs_f64().max(1e-9)),
            goal: "p99 < 10 ms".into(),
        });
    }
    print_table(&rows);
    Ok(())
}
