//! Projections against real nats-server and PostgreSQL: exactly-once application with the
//! checkpoint, redelivery, rebuild and switch, readiness, "at least sequence N", and a
//! PostgreSQL restart in the middle of the stream.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use accord_events::{AggregateKind, Event};
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::postgres::{PgStore, PgTls};
use accord_store::projection::row::{object, seq_key, u64_of};
use accord_store::projection::runner::{self, ProjectionHandle, RunnerContext};
use accord_store::projection::{Projection, ProjectionError, ProjectionStore, Rows};
use accord_store::{EventStore, StoredEvent, Version};
use accord_testkit::PgServer;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};
use support::*;

/// Counts events per aggregate and keeps a log of every event it applied: any event applied
/// twice or lost shows in the counts and the log.
struct Tally;

#[async_trait]
impl Projection for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }
    async fn apply(&self, e: &StoredEvent, rows: &mut dyn Rows) -> Result<(), ProjectionError> {
        let key = e.envelope.aggregate.id.as_str();
        let mut row = object(rows.get("aggregates", key).await?);
        let n = u64_of(&Value::Object(row.clone()), "events") + 1;
        row.insert("events".into(), n.into());
        row.insert("last".into(), e.stream_seq.into());
        rows.put("aggregates", key, Value::Object(row));
        rows.put(
            "log",
            &seq_key(e.stream_seq),
            json!({"type": e.envelope.event_type.as_str()}),
        );
        if let Event::AgentDecommissioned(_) = e.event {
            rows.delete("aggregates", key);
        }
        Ok(())
    }
}

fn context(store: &EventStore, batch: usize) -> RunnerContext {
    RunnerContext::of(store, batch)
}

async fn write(store: &EventStore, aggregates: usize, per: usize) -> u64 {
    let mut last = 0;
    for _ in 0..aggregates {
        let (agent, id) = agent_aggregate();
        let mut v = store
            .append(
                AggregateKind::Agent,
                &id,
                Version::EMPTY,
                &meta(),
                vec![provisioned(&agent, "x")],
            )
            .await
            .unwrap()
            .version;
        for i in 1..per {
            v = store
                .append(
                    AggregateKind::Agent,
                    &id,
                    v,
                    &meta(),
                    vec![suspended(&i.to_string())],
                )
                .await
                .unwrap()
                .version;
        }
        last = v.stream_seq;
    }
    last
}

async fn check_tally(handle: &ProjectionHandle, total: u64) {
    let store = handle.store();
    let p = handle.progress();
    let dump = store.dump("tally", p.generation).await.unwrap();
    let log = dump.keys().filter(|(t, _)| t == "log").count() as u64;
    assert_eq!(log, total, "every event applied once");
    let counted: u64 = dump
        .iter()
        .filter(|((t, _), _)| t == "aggregates")
        .map(|(_, v)| u64_of(v, "events"))
        .sum();
    assert_eq!(counted, total, "no event applied twice");
}

async fn exercise(store: Arc<dyn ProjectionStore>) {
    let (_server, events) = fresh().await;
    let before = write(&events, 5, 20).await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = runner::spawn(
        Arc::new(Tally),
        store.clone(),
        context(&events, 7),
        stop.clone(),
    );
    assert!(
        handle.wait_ready(Duration::from_secs(20)).await,
        "ready at the tail as of start"
    );
    assert!(handle.progress().applied >= before);
    check_tally(&handle, handle.progress().applied).await;

    // more events while running; a query demands the newest sequence
    let after = write(&events, 3, 10).await;
    assert_eq!(
        handle
            .wait_for(after, Duration::from_secs(20))
            .await
            .unwrap(),
        after
    );
    check_tally(&handle, after).await;
    // a table comes a page at a time, by key, from storage: the pages make up the scan
    let all = store.scan("tally", "log").await.unwrap();
    let mut paged = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let page = store
            .page("tally", "log", from.as_deref(), 7)
            .await
            .unwrap();
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        from = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged.len() as u64, after);
    assert_eq!(paged, all);
    let aggregates = store.page("tally", "aggregates", None, 3).await.unwrap();
    assert_eq!(aggregates.len(), 3, "only that table's rows");
    assert!(
        store
            .page("tally", "none", None, 7)
            .await
            .unwrap()
            .is_empty()
    );
    // a sequence far ahead: a typed error at the deadline
    let err = handle
        .wait_for(after + 1000, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProjectionError::NotYet { applied, wanted, .. } if applied == after && wanted == after + 1000)
    );

    // a redelivered batch changes nothing
    let generation = handle.progress().generation;
    let replay: Vec<StoredEvent> = {
        let (_, id) = agent_aggregate();
        let _ = id;
        let loaded = events.reader().read_range(">", 1).await.unwrap();
        loaded
            .into_iter()
            .take(30)
            .map(|e| {
                let p = accord_events::parse_unverified(&e.payload).unwrap();
                StoredEvent {
                    stream_seq: e.seq,
                    event: p.envelope.decode().unwrap(),
                    envelope: p.envelope,
                }
            })
            .collect()
    };
    let cp = store
        .apply_batch(&Tally, generation, &replay, 0)
        .await
        .unwrap();
    assert_eq!(cp, after);
    check_tally(&handle, after).await;

    // rebuild into a fresh generation, then switch: same content
    let old = store.dump("tally", generation).await.unwrap();
    let mut seen = Vec::new();
    let g2 = runner::rebuild(&handle, &context(&events, 50), |applied, target| {
        seen.push((applied, target))
    })
    .await
    .unwrap();
    assert!(g2 > generation);
    assert_eq!(seen.last().map(|s| s.0), Some(after));
    assert_eq!(store.dump("tally", g2).await.unwrap(), old);
    // the live runner follows the switch and keeps applying
    let more = write(&events, 1, 5).await;
    assert_eq!(
        handle
            .wait_for(more, Duration::from_secs(20))
            .await
            .unwrap(),
        more
    );
    assert_eq!(handle.progress().generation, g2);
    check_tally(&handle, more).await;
    let _ = stop_tx.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_applies_exactly_once_and_rebuilds() {
    exercise(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_applies_exactly_once_and_rebuilds() {
    let pg = PgServer::start();
    let url = pg.create_database("accord");
    exercise(Arc::new(
        PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local()).unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_over_verified_tls_applies_exactly_once_and_rebuilds() {
    let pki = test_pki(&["db.accord.test"]);
    let pg = PgServer::start_tls(&pki.server_cert, &pki.server_key);
    pg.create_database("accord");
    let tls = PgTls::verify_full(pki.ca_pem.as_bytes()).unwrap();
    // the certificate names db.accord.test; hostaddr says where that is
    let url = |mode: &str| {
        format!(
            "postgres://postgres@db.accord.test:{}/accord?hostaddr=127.0.0.1&sslmode={mode}",
            pg.port()
        )
    };
    for mode in ["verify-full", "require"] {
        let store = PgStore::new(&url(mode), 2, &tls).unwrap();
        let c = store.connection().await.unwrap();
        let row = c
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "sslmode={mode}: the server sees TLS");
    }
    exercise(Arc::new(
        PgStore::new(&url("verify-full"), 4, &tls).unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_stream_the_projection_recovers() {
    let mut pg = PgServer::start();
    let url = pg.create_database("accord");
    let store: Arc<dyn ProjectionStore> =
        Arc::new(PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local()).unwrap());
    let (_server, events) = fresh().await;
    let first = write(&events, 4, 25).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = runner::spawn(Arc::new(Tally), store.clone(), context(&events, 10), stop);
    handle
        .wait_for(first, Duration::from_secs(20))
        .await
        .unwrap();

    // PostgreSQL goes away (immediate stop: as after a crash) while events keep coming
    pg.stop();
    let writer = {
        let events = events.clone();
        tokio::spawn(async move { write(&events, 4, 25).await })
    };
    let target = writer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        handle.progress().applied < target,
        "nothing applied without the database"
    );
    pg.restart();
    assert_eq!(
        handle
            .wait_for(target, Duration::from_secs(30))
            .await
            .unwrap(),
        target
    );
    check_tally(&handle, target).await;
}

#[tokio::test]
async fn an_empty_log_is_ready_at_once() {
    let (_server, events) = fresh().await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = runner::spawn(
        Arc::new(Tally),
        Arc::new(MemoryStore::new()),
        context(&events, 10),
        stop,
    );
    assert!(handle.wait_ready(Duration::from_secs(10)).await);
    assert_eq!(handle.progress().applied, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_delivery_is_detected_and_nothing_is_lost() {
    let (_server, events) = fresh().await;
    let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    let first = write(&events, 2, 5).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = runner::spawn(Arc::new(Tally), store.clone(), context(&events, 5), stop);
    handle
        .wait_for(first, Duration::from_secs(20))
        .await
        .unwrap();
    // another client pulls from the runner's consumer (an auditor with MSG.NEXT rights could)
    let name = format!("accord-proj-{}-tally-g1", store.consumer_scope());
    let stream = events
        .jetstream()
        .get_stream(accord_store::EVENTS_STREAM)
        .await
        .unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&name).await.unwrap();
    let mut stolen = consumer
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let writer = {
        let events = events.clone();
        tokio::spawn(async move { write(&events, 3, 5).await })
    };
    let mut took = 0;
    while let Some(Ok(_m)) = stolen.next().await {
        took += 1; // taken and never acknowledged
    }
    let last = writer.await.unwrap();
    assert!(took > 0, "the thief got deliveries");
    assert_eq!(
        handle
            .wait_for(last, Duration::from_secs(30))
            .await
            .unwrap(),
        last
    );
    check_tally(&handle, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_instance_reports_the_leaders_position() {
    let pg = PgServer::start();
    let url = pg.create_database("accord");
    let (_server, events) = fresh().await;
    let last = write(&events, 3, 5).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let a = runner::spawn(
        Arc::new(Tally),
        Arc::new(PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local()).unwrap()),
        context(&events, 10),
        stop.clone(),
    );
    let b = runner::spawn(
        Arc::new(Tally),
        Arc::new(PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local()).unwrap()),
        context(&events, 10),
        stop,
    );
    // one leads and applies; the other stands by yet answers with the shared position
    a.wait_for(last, Duration::from_secs(20)).await.unwrap();
    b.wait_for(last, Duration::from_secs(20)).await.unwrap();
    assert!(
        a.wait_ready(Duration::from_secs(10)).await && b.wait_ready(Duration::from_secs(10)).await
    );
    let standby = [a.progress(), b.progress()]
        .iter()
        .filter(|p| p.error.as_deref().is_some_and(|e| e.starts_with("standby")))
        .count();
    assert_eq!(standby, 1, "exactly one stands by");
    check_tally(&a, last).await;
}
