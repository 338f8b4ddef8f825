//! cqrs-es on JetStream: the aggregate's rules with cqrs-es's TestFramework, the framework
//! itself on this store, and the executor's idempotency and conflict handling.

#![allow(clippy::unwrap_used)]

mod support;

use accord_events::{AggregateKind, Event};
use accord_store::cqrs::{ExecuteError, Executor, JetStreamStore, metadata_map};
use cqrs_es::test::TestFramework;
use cqrs_es::{AggregateError, CqrsFramework, EventStore as _};
use support::*;

#[test]
fn agent_rules_given_when_then() {
    let (agent, _) = agent_aggregate();
    TestFramework::<Agent>::with(())
        .given_no_previous_events()
        .when(AgentCommand::Provision {
            agent,
            name: "x".into(),
        })
        .then_expect_events(vec![provisioned(&agent, "x")]);
    TestFramework::<Agent>::with(())
        .given(vec![provisioned(&agent, "x")])
        .when(AgentCommand::Provision {
            agent,
            name: "x".into(),
        })
        .then_expect_error(AgentError::AlreadyProvisioned);
    TestFramework::<Agent>::with(())
        .given_no_previous_events()
        .when(AgentCommand::Suspend { reason: "r".into() })
        .then_expect_error(AgentError::NotProvisioned);
    let decommissioned = TestFramework::<Agent>::with(())
        .given(vec![provisioned(&agent, "x")])
        .when(AgentCommand::Decommission { reason: "r".into() })
        .inspect_result()
        .unwrap();
    assert_eq!(decommissioned.len(), 3);
    assert!(matches!(decommissioned[1], Event::AgentDecommissioned(_)));
}

#[tokio::test]
async fn cqrs_framework_runs_on_the_jetstream_store() {
    let (_server, store) = fresh().await;
    let es = JetStreamStore::<Agent>::new(store.clone()).unwrap();
    let cqrs = CqrsFramework::new(es, vec![], ());
    let (agent, id) = agent_aggregate();
    let m = meta();
    cqrs.execute_with_metadata(
        id.as_str(),
        AgentCommand::Provision {
            agent,
            name: "planner".into(),
        },
        metadata_map(&m),
    )
    .await
    .unwrap();
    cqrs.execute(
        id.as_str(),
        AgentCommand::Decommission {
            reason: "done".into(),
        },
    )
    .await
    .unwrap();
    let err = cqrs
        .execute(
            id.as_str(),
            AgentCommand::Suspend {
                reason: "late".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AggregateError::UserError(AgentError::Decommissioned)
    ));

    let es = JetStreamStore::<Agent>::new(store.clone()).unwrap();
    let events = es.load_events(id.as_str()).await.unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(events[0].metadata["command_id"], m.command_id.to_string());
    let ctx = es.load_aggregate(id.as_str()).await.unwrap();
    assert!(ctx.aggregate.decommissioned);
    assert_eq!(ctx.aggregate.name, "planner");

    // a stale commit through the framework's store is a conflict
    let stale = es.load_aggregate(id.as_str()).await.unwrap();
    let fresh_ctx = es.load_aggregate(id.as_str()).await.unwrap();
    es.commit(vec![suspended("a")], fresh_ctx, metadata_map(&meta()))
        .await
        .unwrap();
    let conflict = es
        .commit(vec![suspended("b")], stale, metadata_map(&meta()))
        .await
        .unwrap_err();
    assert!(matches!(conflict, AggregateError::AggregateConflict));
}

#[tokio::test]
async fn executor_returns_the_first_result_for_a_repeated_command() {
    let (_server, store) = fresh().await;
    let exec = Executor::<Agent>::new(store.clone(), ()).unwrap();
    let (agent, id) = agent_aggregate();
    let provision = AgentCommand::Provision {
        agent,
        name: "x".into(),
    };
    let m = meta();
    let first = exec.execute(&id, &m, provision.clone()).await.unwrap();
    assert!(!first.replayed);
    // the same command again (a client retry): same events, nothing written, no rule error
    let again = exec.execute(&id, &m, provision.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.events, first.events);
    // a new command doing the same thing is a rule violation
    let err = exec.execute(&id, &meta(), provision).await.unwrap_err();
    assert!(matches!(
        err,
        ExecuteError::Rejected(AgentError::AlreadyProvisioned)
    ));
    // a lost acknowledgement on a three-event command, then the retry
    store.faults().lose_next_acks(1);
    let m3 = meta();
    let lost = exec
        .execute(&id, &m3, AgentCommand::Decommission { reason: "r".into() })
        .await
        .unwrap_err();
    assert!(matches!(
        lost,
        ExecuteError::Store(accord_store::StoreError::Unacknowledged(_))
    ));
    let retried = exec
        .execute(&id, &m3, AgentCommand::Decommission { reason: "r".into() })
        .await
        .unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.events.len(), 3);
    assert_eq!(
        store
            .load(AggregateKind::Agent, &id)
            .await
            .unwrap()
            .events
            .len(),
        4
    );
}

#[tokio::test]
async fn executor_retries_a_conflict_by_rerunning_the_command() {
    let (server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    let exec = Executor::<Agent>::new(store.clone(), ()).unwrap();
    exec.execute(
        &id,
        &meta(),
        AgentCommand::Provision {
            agent,
            name: "x".into(),
        },
    )
    .await
    .unwrap();
    // many concurrent writers, each on its own connection: all succeed after retries, and
    // every suspension is recorded exactly once
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = server.url();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let s = store_on(&url, key()).await;
            let exec = Executor::<Agent>::new(s, ())
                .unwrap()
                .with_conflict_retries(50);
            exec.execute(
                &id,
                &meta(),
                AgentCommand::Suspend {
                    reason: format!("{i}"),
                },
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap().replayed);
    }
    let ctx = exec.store().load_context(&id).await.unwrap();
    assert_eq!(ctx.aggregate.suspensions, 8);
    // without retries the loser sees the typed conflict
    let a = Executor::<Agent>::new(store_on(&server.url(), key()).await, ())
        .unwrap()
        .with_conflict_retries(0);
    let b = Executor::<Agent>::new(store_on(&server.url(), key()).await, ())
        .unwrap()
        .with_conflict_retries(0);
    let (ma, mb) = (meta(), meta());
    let (ra, rb) = tokio::join!(
        a.execute(&id, &ma, AgentCommand::Suspend { reason: "a".into() }),
        b.execute(&id, &mb, AgentCommand::Suspend { reason: "b".into() }),
    );
    let outcomes = [ra.is_ok(), rb.is_ok()];
    // both may succeed if they did not overlap; if one failed it is a conflict
    for r in [ra, rb] {
        if let Err(e) = r {
            assert!(matches!(
                e,
                ExecuteError::Store(accord_store::StoreError::Conflict { .. })
            ));
        }
    }
    assert!(outcomes.iter().any(|ok| *ok));
}

#[tokio::test]
async fn a_stale_cache_never_decides_a_command() {
    let (server, store) = fresh().await;
    let a = Executor::<Agent>::new(store.clone(), ()).unwrap();
    let b = Executor::<Agent>::new(store_on(&server.url(), key()).await, ()).unwrap();
    let (agent, id) = agent_aggregate();
    a.execute(
        &id,
        &meta(),
        AgentCommand::Provision {
            agent,
            name: "x".into(),
        },
    )
    .await
    .unwrap();
    // a now has the aggregate cached as live; b decommissions it behind a's back
    b.execute(
        &id,
        &meta(),
        AgentCommand::Decommission { reason: "r".into() },
    )
    .await
    .unwrap();
    // from its stale cache a would accept the suspension; the store makes it re-read
    let err = a
        .execute(
            &id,
            &meta(),
            AgentCommand::Suspend {
                reason: "late".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExecuteError::Rejected(AgentError::Decommissioned)),
        "{err:?}"
    );
    assert_eq!(
        store
            .load(AggregateKind::Agent, &id)
            .await
            .unwrap()
            .events
            .len(),
        4
    );
}
