//! A three-node cluster with an R3 stream keeps accepting appends with one node killed, and
//! loses none that were acknowledged.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use accord_events::{AggregateKind, EventId};
use accord_store::{AppendOutcome, EventStore, StoreConfig, StoreError, Version};
use accord_testkit::NatsCluster;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_survives_a_killed_node_without_losing_acknowledged_appends() {
    let mut cluster = NatsCluster::start(3);
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(
            cluster
                .urls()
                .split(',')
                .map(|u| u.parse::<async_nats::ServerAddr>().unwrap())
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let mut config = StoreConfig::new(domain());
    config.stream.replicas = 3;
    config.request_timeout = Duration::from_secs(10);
    let store = EventStore::open(client, config, key()).await.unwrap();

    let (agent, id) = agent_aggregate();
    let mut unknown = 0;
    // the store waited for the stream's leader; interest in its subjects may still be crossing
    // the routes to the server this client reached, so the first append retries too
    let mut version = append_retrying(
        &store,
        &id,
        Version::EMPTY,
        provisioned(&agent, "x"),
        (&mut unknown, 50),
    )
    .await
    .version;
    let mut acknowledged: Vec<EventId> = Vec::new();
    let mut killed = usize::MAX;
    for i in 0..300 {
        if i == 100 {
            // SIGKILL the server that leads the stream, forcing an election mid-run
            let info = store
                .jetstream()
                .get_stream(accord_store::EVENTS_STREAM)
                .await
                .unwrap()
                .get_info()
                .await
                .unwrap();
            let leader = info.cluster.unwrap().leader.unwrap();
            killed = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
            cluster.servers[killed].kill();
        }
        let out = append_retrying(
            &store,
            &id,
            version,
            suspended(&i.to_string()),
            (&mut unknown, 200),
        )
        .await;
        version = out.version;
        acknowledged.extend(out.events.iter().map(|e| e.envelope.id));
    }
    assert_eq!(acknowledged.len(), 300);
    let stored = store.load(AggregateKind::Agent, &id).await.unwrap();
    let stored_ids: Vec<EventId> = stored
        .events
        .iter()
        .skip(1)
        .map(|e| e.envelope.id)
        .collect();
    assert_eq!(
        stored_ids, acknowledged,
        "every acknowledged append is stored, once, in order"
    );

    // the killed node comes back and catches up
    assert!(killed < 3);
    cluster.servers[killed].relaunch_no_wait();
    cluster.wait_healthy(killed, Duration::from_secs(60));
}

/// Appends one event, retrying the same command (idempotent) while the cluster has no leader
/// for the stream; `unknown` counts the retries of the whole test, which fails at `limit`.
async fn append_retrying(
    store: &EventStore,
    id: &accord_events::AggregateId,
    version: Version,
    event: accord_events::Event,
    (unknown, limit): (&mut u32, u32),
) -> AppendOutcome {
    let m = meta();
    loop {
        match store
            .append(AggregateKind::Agent, id, version, &m, vec![event.clone()])
            .await
        {
            Ok(out) => return out,
            Err(e @ (StoreError::Unacknowledged(_) | StoreError::Nats { .. })) => {
                *unknown += 1;
                assert!(*unknown < limit, "cluster did not recover: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("append at {version:?}: {e}"),
        }
    }
}
