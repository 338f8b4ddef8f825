//! Aggregate loading by direct get, the cache, and the pipelined path.

#![allow(clippy::unwrap_used)]

mod support;

use accord_events::catalogue::TokenIssued;
use accord_events::{AggregateKind, Event, Jti, Timestamp};
use accord_store::Version;
use support::*;

#[tokio::test]
async fn loads_long_aggregates_and_only_fetches_what_is_new() {
    let (server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    let (_, noise) = agent_aggregate();
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
    let mut nv = store
        .append(
            AggregateKind::Agent,
            &noise,
            Version::EMPTY,
            &meta(),
            vec![provisioned(&agent, "n")],
        )
        .await
        .unwrap()
        .version;
    for i in 0..1500 {
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
        if i % 3 == 0 {
            nv = store
                .append(
                    AggregateKind::Agent,
                    &noise,
                    nv,
                    &meta(),
                    vec![suspended("n")],
                )
                .await
                .unwrap()
                .version;
        }
    }
    // a cold reader (its own cache) sees all 1,501 events, past the 1,000-message batch limit
    let cold = store_on(&server.url(), key()).await;
    let loaded = cold.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(loaded.events.len(), 1501);
    assert_eq!(loaded.version, v);
    let counts: Vec<u64> = loaded
        .events
        .iter()
        .map(|e| e.envelope.aggregate.seq)
        .collect();
    assert_eq!(counts, (1..=1501).collect::<Vec<_>>());
    assert!(
        loaded
            .events
            .windows(2)
            .all(|w| w[0].stream_seq < w[1].stream_seq)
    );

    // another writer appends; the cached reader picks up exactly the new event
    let v2 = store
        .append(
            AggregateKind::Agent,
            &id,
            v,
            &meta(),
            vec![suspended("last")],
        )
        .await
        .unwrap()
        .version;
    let again = cold.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(again.events.len(), 1502);
    assert_eq!(again.version, v2);
    assert_eq!(again.events[..1501], loaded.events[..]);
}

#[tokio::test]
async fn an_unknown_aggregate_loads_empty() {
    let (_server, store) = fresh().await;
    let (_, id) = agent_aggregate();
    let loaded = store.load(AggregateKind::Agent, &id).await.unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.version, Version::EMPTY);
}

#[tokio::test]
async fn a_new_aggregate_is_cached_by_its_first_append() {
    let (_server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    let v = store
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
    // the writer's cache holds the whole history without asking the server
    let (cached, fresh_read) = store.load_cached(AggregateKind::Agent, &id).await.unwrap();
    assert!(!fresh_read);
    assert_eq!(cached.version, v);
    assert_eq!(cached.events.len(), 1);
    // and it is the history the server has
    store.clear_cache();
    let loaded = store.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(loaded.version, cached.version);
    assert_eq!(loaded.events[0].envelope.id, cached.events[0].envelope.id);
    // a second writer that lost the race to create it does not poison the cache
    let lost = store
        .append(
            AggregateKind::Agent,
            &id,
            Version::EMPTY,
            &meta(),
            vec![provisioned(&agent, "y")],
        )
        .await;
    assert!(lost.is_err());
    let (again, _) = store.load_cached(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(again.version, v);
}

fn token(i: usize) -> Event {
    let t = Timestamp::now();
    Event::TokenIssued(TokenIssued {
        jti: Jti::parse(&format!("t{i}")).unwrap(),
        token_digest: accord_events::Digest::sha256(i.to_string().as_bytes()),
        token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
        subject: "spiffe://org-a.example/agent/x".into(),
        client_id: "c".into(),
        audience: Default::default(),
        scope: Default::default(),
        issued_at: t,
        expires_at: t,
    })
}

#[tokio::test]
async fn pipelined_facts_land_on_bounded_shards() {
    let (_server, store) = fresh().await;
    let mut pending = Vec::new();
    for i in 0..5000 {
        let m = meta();
        pending.push(
            store
                .append_fact(format!("t{i}").as_bytes(), &m, &token(i))
                .await
                .unwrap(),
        );
    }
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.acknowledged().await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=5000).collect::<Vec<u64>>());
    let entries = store
        .reader()
        .read_range("accord.evt.org-a.token.>", 1)
        .await
        .unwrap();
    assert_eq!(entries.len(), 5000);
    let shards: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| e.subject.split('.').nth(4).unwrap().to_owned())
        .collect();
    assert!(shards.len() <= 64 && shards.len() > 32, "{}", shards.len());
    // a token fact cannot go through the compare-and-set path, nor an agent fact through this
    assert!(
        store
            .append(
                AggregateKind::Token,
                &"001".parse().unwrap(),
                Version::EMPTY,
                &meta(),
                vec![token(0)]
            )
            .await
            .is_err()
    );
    assert!(
        store
            .append_fact(b"x", &meta(), &suspended("x"))
            .await
            .is_err()
    );
}
