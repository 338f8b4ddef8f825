//! A three-node cluster with an R3 stream keeps accepting appends with one node killed, and
//! loses none that were acknowledged.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use accord_events::{AggregateKind, EventId};
use accord_store::{EventStore, StoreConfig, StoreError, Version};
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
    let m = meta();
    let mut version = loop {
        // the store waited for the stream's leader; interest in its subjects may still be
        // crossing the routes to the server this client reached
        match store
            .append(
                AggregateKind::Agent,
                &id,
                Version::EMPTY,
                &m,
                vec![provisioned(&agent, "x")],
            )
            .await
        {
            Ok(out) => break out.version,
            Err(e @ (StoreError::Unacknowledged(_) | StoreError::Nats { .. })) => {
                unknown += 1;
                assert!(unknown < 50, "a fresh cluster took no append: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("first append: {e}"),
        }
    };
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
        let m = meta();
        loop {
            match store
                .append(
                    AggregateKind::Agent,
                    &id,
                    version,
                    &m,
                    vec![suspended(&i.to_string())],
                )
                .await
            {
                Ok(out) => {
                    version = out.version;
                    acknowledged.extend(out.events.iter().map(|e| e.envelope.id));
                    break;
                }
                // during the leader election: retry the same command (idempotent)
                Err(e @ (StoreError::Unacknowledged(_) | StoreError::Nats { .. })) => {
                    unknown += 1;
                    assert!(unknown < 200, "cluster did not recover: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("append {i}: {e}"),
            }
        }
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
