//! Aggregate snapshots (ADR 0014): a cold load starts from a signed snapshot anchored in the
//! log and reads only what came after it; a snapshot that does not check out is never used;
//! a retry whose first run a snapshot folded is still recognised.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use accord_events::{AgentId, AggregateId, AggregateKind, CommandId, EventId, Metadata};
use accord_store::EventStore;
use accord_store::cqrs::Executor;
use accord_store::snapshot::{Base, SNAPSHOT_AFTER};
use support::*;

/// The command that provisions an agent named `long`.
fn provision(agent: AgentId) -> AgentCommand {
    AgentCommand::Provision {
        agent,
        name: "long".into(),
    }
}

/// An agent with a provisioning (by the command `first`) and `suspensions` suspensions, each
/// its own command.
async fn long_agent_from(
    store: &EventStore,
    first: &Metadata,
    suspensions: usize,
) -> (AgentId, AggregateId) {
    let exec = Executor::<Agent>::new(store.clone(), ())
        .unwrap()
        .with_snapshots(1);
    let (agent, id) = agent_aggregate();
    exec.execute(&id, first, provision(agent)).await.unwrap();
    for i in 0..suspensions {
        exec.execute(
            &id,
            &meta(),
            AgentCommand::Suspend {
                reason: i.to_string(),
            },
        )
        .await
        .unwrap();
    }
    (agent, id)
}

async fn long_agent(store: &EventStore, suspensions: usize) -> AggregateId {
    long_agent_from(store, &meta(), suspensions).await.1
}

async fn written(store: &EventStore, at_least: u64) {
    for _ in 0..100 {
        if store.counters().snapshots_written.load(Ordering::Relaxed) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no snapshot written");
}

#[tokio::test]
async fn a_cold_load_starts_from_a_signed_snapshot_and_reads_only_what_came_after() {
    let (server, store) = fresh().await;
    let id = long_agent(&store, 99).await;
    written(&store, 1).await;
    // a restarted writer: nothing cached, nothing checked yet
    let cold = store_on(&server.url(), key()).await;
    let exec = Executor::<Agent>::new(cold.clone(), ())
        .unwrap()
        .with_snapshots(1);
    let ctx = exec.store().load_context(&id).await.unwrap();
    assert_eq!(cold.counters().snapshot_loads.load(Ordering::Relaxed), 1);
    let base = ctx.history.base.as_ref().expect("started from a snapshot");
    assert!(base.version.count >= SNAPSHOT_AFTER as u64);
    assert!(
        ctx.history.events.len() < SNAPSHOT_AFTER,
        "{}",
        ctx.history.events.len()
    );
    assert_eq!(ctx.aggregate.suspensions, 99);
    assert_eq!(ctx.version.count, 100);
    // the same as folding every event
    let full = exec.store().load_context_full(&id).await.unwrap();
    assert!(full.history.base.is_none());
    assert_eq!(full.history.events.len(), 100);
    assert_eq!(full.version, ctx.version);
    assert_eq!(full.aggregate.suspensions, 99);
    assert_eq!(cold.counters().snapshots_refused.load(Ordering::Relaxed), 0);
    // and the writer goes on from it
    exec.execute(&id, &meta(), AgentCommand::Suspend { reason: "x".into() })
        .await
        .unwrap();
    let again = exec.store().load_context(&id).await.unwrap();
    assert_eq!(again.aggregate.suspensions, 100);
    // a build whose aggregate state changed shape (state version 2) does not use it
    let upgraded = store_on(&server.url(), key()).await;
    let exec = Executor::<Agent>::new(upgraded.clone(), ())
        .unwrap()
        .with_snapshots(2);
    let ctx = exec.store().load_context(&id).await.unwrap();
    assert!(ctx.history.base.is_none());
    assert_eq!(ctx.aggregate.suspensions, 100);
    assert_eq!(
        upgraded
            .counters()
            .snapshots_refused
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_snapshot_that_does_not_check_out_is_never_used() {
    let (server, store) = fresh().await;
    let id = long_agent(&store, 40).await;
    written(&store, 1).await;
    let good = store
        .load_latest(AggregateKind::Agent, &id, Some(1))
        .await
        .unwrap();
    let good = good.base.as_deref().unwrap().clone();
    let lie = |b: &Base| Base {
        state: serde_json::json!({
            "provisioned": null, "name": "forged", "suspensions": 1000, "decommissioned": false
        }),
        ..b.clone()
    };
    // 1. signed by a key that is not the domain's
    let stranger = store_on(&server.url(), other_key()).await;
    stranger.write_snapshot(AggregateKind::Agent, &id, &lie(&good));
    written(&stranger, 1).await;
    // 2. signed by the domain's key, anchored to an event the log does not hold there
    let mut unanchored = lie(&good);
    unanchored.event_id = EventId::derive(&CommandId::new_random(), 0);
    // 3. ahead of the log
    let mut ahead = lie(&good);
    ahead.version.stream_seq += 1000;
    for (i, forged) in [None, Some(unanchored), Some(ahead)]
        .into_iter()
        .enumerate()
    {
        if let Some(b) = forged {
            let before = store.counters().snapshots_written.load(Ordering::Relaxed);
            store.write_snapshot(AggregateKind::Agent, &id, &b);
            written(&store, before + 1).await;
        }
        let cold = store_on(&server.url(), key()).await;
        let exec = Executor::<Agent>::new(cold.clone(), ())
            .unwrap()
            .with_snapshots(1);
        let ctx = exec.store().load_context(&id).await.unwrap();
        assert_eq!(ctx.aggregate.suspensions, 40, "case {i}");
        assert_eq!(ctx.aggregate.name, "long", "case {i}");
        assert!(ctx.history.base.is_none(), "case {i}");
        assert_eq!(
            cold.counters().snapshots_refused.load(Ordering::Relaxed),
            1,
            "case {i}"
        );
        // the fallback folded every event and wrote a good snapshot again: let it land
        // before the next forgery replaces it
        written(&cold, 1).await;
    }
    // 4. not a snapshot at all
    store
        .jetstream()
        .publish(
            format!("$KV.ACCORD_SNAPSHOTS.agent.{id}"),
            "not a snapshot".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let cold = store_on(&server.url(), key()).await;
    let exec = Executor::<Agent>::new(cold.clone(), ())
        .unwrap()
        .with_snapshots(1);
    let ctx = exec.store().load_context(&id).await.unwrap();
    assert_eq!(ctx.aggregate.suspensions, 40);
    assert_eq!(cold.counters().snapshots_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_retry_folded_into_a_snapshot_is_still_recognised() {
    let (server, store) = fresh().await;
    let first = meta();
    let (agent, id) = long_agent_from(&store, &first, 40).await;
    written(&store, 1).await;
    let cold = store_on(&server.url(), key()).await;
    let exec = Executor::<Agent>::new(cold.clone(), ())
        .unwrap()
        .with_snapshots(1);
    let (ctx, _) = exec.store().load_context_cached(&id).await.unwrap();
    assert!(ctx.history.may_hide(&first.command_id));
    let again = exec.execute(&id, &first, provision(agent)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.events.len(), 1);
    assert_eq!(again.events[0].envelope.aggregate.seq, 1);
}
