//! The event store against a real nats-server: compare-and-set, atomic batches, idempotent
//! retries, the stream's invariants.

#![allow(clippy::unwrap_used)]

mod support;

use accord_events::subject::aggregate_filter;
use accord_events::{AggregateKind, KeyRing};
use accord_store::reader::{EntryProblem, verify_entry};
use accord_store::{StoreError, Version};
use support::*;

#[tokio::test]
async fn two_writers_on_one_aggregate_exactly_one_wins() {
    let (server, a) = fresh().await;
    // a second writer with its own connection and cache
    let b = store_on(&server.url(), key()).await;
    let (agent, id) = agent_aggregate();
    a.append(
        AggregateKind::Agent,
        &id,
        Version::EMPTY,
        &meta(),
        vec![provisioned(&agent, "x")],
    )
    .await
    .unwrap();
    let seen_a = a.load(AggregateKind::Agent, &id).await.unwrap().version;
    let seen_b = b.load(AggregateKind::Agent, &id).await.unwrap().version;
    assert_eq!(seen_a, seen_b);

    let (ma, mb) = (meta(), meta());
    let (ra, rb) = tokio::join!(
        a.append(AggregateKind::Agent, &id, seen_a, &ma, vec![suspended("a")]),
        b.append(AggregateKind::Agent, &id, seen_b, &mb, vec![suspended("b")]),
    );
    let (won, lost) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (ra, rb) => panic!("expected exactly one winner, got {ra:?} and {rb:?}"),
    };
    match lost {
        StoreError::Conflict {
            expected, actual, ..
        } => {
            assert_eq!(expected, seen_a.stream_seq);
            assert_eq!(actual, Some(won.version.stream_seq));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let history = b.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(history.events.len(), 2);
    assert_eq!(history.version, won.version);
}

#[tokio::test]
async fn retry_after_a_lost_acknowledgement_is_stored_once() {
    let (_server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    let m = meta();
    for events in [
        vec![provisioned(&agent, "x")],
        vec![suspended("1"), suspended("2")],
    ] {
        let expected = store.load(AggregateKind::Agent, &id).await.unwrap().version;
        let m = accord_events::Metadata {
            command_id: accord_events::CommandId::new_random(),
            ..m.clone()
        };
        // the server stores the events, the acknowledgement never arrives
        store.faults().lose_next_acks(1);
        let first = store
            .append(AggregateKind::Agent, &id, expected, &m, events.clone())
            .await;
        assert!(
            matches!(first, Err(StoreError::Unacknowledged(_))),
            "{first:?}"
        );
        // the client retries the same command
        let retry = store
            .append(AggregateKind::Agent, &id, expected, &m, events.clone())
            .await
            .unwrap();
        assert!(retry.replayed);
        assert_eq!(retry.events.len(), events.len());
        assert_eq!(
            retry
                .events
                .iter()
                .map(|e| e.event.clone())
                .collect::<Vec<_>>(),
            events
        );
        // and a third time: still the first result
        let again = store
            .append(AggregateKind::Agent, &id, expected, &m, events.clone())
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.version, retry.version);
    }
    // stored once each: 1 + 2 events
    let filter = aggregate_filter(store.domain(), AggregateKind::Agent, &id);
    let raw = store.read_filtered(1, &filter).await.unwrap();
    assert_eq!(raw.len(), 3);
}

#[tokio::test]
async fn a_three_event_command_is_all_or_nothing_under_a_conflict() {
    let (_server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    let v1 = store
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
    // someone else moves the aggregate on
    store
        .append(
            AggregateKind::Agent,
            &id,
            v1,
            &meta(),
            vec![suspended("other writer")],
        )
        .await
        .unwrap();
    // a stale three-event command
    let three = vec![suspended("a"), suspended("b"), suspended("c")];
    let err = store
        .append(AggregateKind::Agent, &id, v1, &meta(), three.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let filter = aggregate_filter(store.domain(), AggregateKind::Agent, &id);
    assert_eq!(store.read_filtered(1, &filter).await.unwrap().len(), 2);
    // nothing of the batch reached the stream at all
    assert_eq!(store.last_sequence().await.unwrap(), 2);

    // fresh, the same command lands whole, contiguous and in order
    let now = store.load(AggregateKind::Agent, &id).await.unwrap().version;
    let out = store
        .append(AggregateKind::Agent, &id, now, &meta(), three.clone())
        .await
        .unwrap();
    let seqs: Vec<u64> = out.events.iter().map(|e| e.stream_seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    let counts: Vec<u64> = out
        .events
        .iter()
        .map(|e| e.envelope.aggregate.seq)
        .collect();
    assert_eq!(counts, vec![3, 4, 5]);
    let loaded = store.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(loaded.events.len(), 5);
    assert_eq!(loaded.version, out.version);
}

#[tokio::test]
async fn delete_purge_and_message_removal_are_refused() {
    let (_server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    store
        .append(
            AggregateKind::Agent,
            &id,
            Version::EMPTY,
            &meta(),
            vec![provisioned(&agent, "x")],
        )
        .await
        .unwrap();
    let js = store.jetstream();
    let stream = js.get_stream(accord_store::EVENTS_STREAM).await.unwrap();
    assert!(stream.purge().await.is_err(), "purge must be refused");
    assert!(
        stream.purge().filter(">").await.is_err(),
        "subject purge must be refused"
    );
    assert!(
        stream.delete_message(1).await.is_err(),
        "message delete must be refused"
    );
    // rollup (which would purge a subject) is refused too
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Rollup", "sub");
    let rollup = js
        .publish_with_headers(
            format!("accord.evt.org-a.agent.{id}.AgentSuspended"),
            h,
            "{}".into(),
        )
        .await
        .unwrap()
        .await;
    assert!(rollup.is_err(), "rollup must be refused");
    // deny_delete only protects messages; deleting the stream is stopped by NATS
    // permissions (tested with the domain's accounts). The stream still has its event:
    assert_eq!(store.last_sequence().await.unwrap(), 1);
}

#[tokio::test]
async fn an_existing_stream_that_breaks_an_invariant_is_reported() {
    use async_nats::jetstream::stream;
    let settings = accord_store::StreamSettings::new(domain());
    // every drift the review found an update could make (finding 7), and the older ones
    type Drift = Box<dyn Fn(&mut stream::Config)>;
    let drifts: Vec<(&str, Drift)> = vec![
        ("purge allowed", Box::new(|c| c.deny_purge = false)),
        (
            "another subject",
            Box::new(|c| c.subjects.push("_INBOX.poison.>".into())),
        ),
        (
            "a source",
            Box::new(|c| {
                c.sources = Some(vec![stream::Source {
                    name: "OTHER".into(),
                    ..Default::default()
                }])
            }),
        ),
        (
            "a transform",
            Box::new(|c| {
                c.subject_transform = Some(stream::SubjectTransform {
                    source: "accord.evt.org-a.>".into(),
                    destination: "accord.evt.org-a.>".into(),
                })
            }),
        ),
        ("sealed", Box::new(|c| c.sealed = true)),
        ("message TTLs", Box::new(|c| c.allow_message_ttl = true)),
        ("a limit", Box::new(|c| c.max_messages = 10)),
        (
            "discard old",
            Box::new(|c| c.discard = stream::DiscardPolicy::Old),
        ),
        ("bigger messages", Box::new(|c| c.max_message_size *= 2)),
    ];
    for (what, drift) in drifts {
        let server = accord_testkit::NatsServer::start();
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let mut config = settings.config();
        drift(&mut config);
        // what cannot be created so (a sealed stream) is made by an update, as an operator would
        if js.create_stream(config.clone()).await.is_err() {
            js.create_stream(settings.config()).await.unwrap();
            js.update_stream(config).await.unwrap();
        }
        let err =
            accord_store::EventStore::open(client, accord_store::StoreConfig::new(domain()), key())
                .await
                .unwrap_err();
        assert!(
            matches!(err, StoreError::StreamMisconfigured { .. }),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test]
async fn genesis_goes_first_and_only_once() {
    let (_server, store) = fresh().await;
    let k = key();
    let (audit, _) = accord_events::Ed25519Key::generate().unwrap();
    let cfg = accord_events::catalogue::GenesisConfig {
        replicas: 1,
        duplicate_window_secs: 120,
        token_shards: 64,
    };
    let td = accord_events::TrustDomain::parse("org-a.example").unwrap();
    let g = accord_events::genesis::genesis_event(
        &domain(),
        &td,
        &k,
        vec![audit.public().clone()],
        cfg.clone(),
        accord_events::Timestamp::now(),
    )
    .unwrap();
    let first = store.append_genesis(&g).await.unwrap();
    assert_eq!(first.stream_seq, 1);
    // the same genesis again: recognised, not written twice
    assert_eq!(store.append_genesis(&g).await.unwrap().stream_seq, 1);
    // a different genesis: refused
    let other = accord_events::genesis::genesis_event(
        &domain(),
        &td,
        &other_key(),
        vec![],
        cfg,
        accord_events::Timestamp::now(),
    )
    .unwrap();
    assert!(matches!(
        store.append_genesis(&other).await,
        Err(StoreError::GenesisExists)
    ));
    assert_eq!(store.last_sequence().await.unwrap(), 1);
    assert_eq!(store.genesis().await.unwrap().unwrap().envelope, g.envelope);
}

#[tokio::test]
async fn invalid_appends_change_nothing() {
    let (_server, store) = fresh().await;
    let (_, id) = agent_aggregate();
    let e = store
        .append(AggregateKind::Agent, &id, Version::EMPTY, &meta(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        StoreError::Invalid(accord_store::InvalidAppend::Empty)
    ));
    let many = vec![suspended("x"); accord_store::MAX_EVENTS_PER_COMMAND + 1];
    let e = store
        .append(AggregateKind::Agent, &id, Version::EMPTY, &meta(), many)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        StoreError::Invalid(accord_store::InvalidAppend::TooManyEvents { .. })
    ));
    // an agent event on a policy aggregate
    let e = store
        .append(
            AggregateKind::Policy,
            &id,
            Version::EMPTY,
            &meta(),
            vec![suspended("x")],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        StoreError::Invalid(accord_store::InvalidAppend::WrongAggregate { .. })
    ));
    assert_eq!(store.last_sequence().await.unwrap(), 0);
}

#[tokio::test]
async fn a_signature_mismatch_is_reported_with_the_sequence() {
    let (server, store) = fresh().await;
    let (agent, id) = agent_aggregate();
    store
        .append(
            AggregateKind::Agent,
            &id,
            Version::EMPTY,
            &meta(),
            vec![provisioned(&agent, "x")],
        )
        .await
        .unwrap();
    // an intruder with stream access but another key writes a well-formed event
    let intruder = store_on(&server.url(), other_key()).await;
    let v = intruder
        .load(AggregateKind::Agent, &id)
        .await
        .unwrap()
        .version;
    intruder
        .append(
            AggregateKind::Agent,
            &id,
            v,
            &meta(),
            vec![suspended("forged")],
        )
        .await
        .unwrap();
    // and someone copies the first event under another aggregate's subject
    let first = store.read_filtered(1, ">").await.unwrap().remove(0);
    let (_, other) = agent_aggregate();
    store
        .jetstream()
        .publish(
            format!("accord.evt.org-a.agent.{other}.AgentProvisioned"),
            first.payload.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let ring = KeyRing::trusting(&[store.signing_key().clone()]).unwrap();
    let entries = store.reader().read_range(">", 1).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert!(verify_entry(&ring, &entries[0]).is_ok());
    let forged = verify_entry(&ring, &entries[1]).unwrap_err();
    assert_eq!(forged.seq, 2);
    assert!(matches!(
        forged.problem,
        EntryProblem::Signature(accord_events::VerifyError::UnpinnedKey(_))
    ));
    let moved = verify_entry(&ring, &entries[2]).unwrap_err();
    assert_eq!(moved.seq, 3);
    assert!(matches!(
        moved.problem,
        EntryProblem::SubjectMismatch { .. }
    ));

    // the domain's own store skips both (finding 1): the aggregate holds its one event, its
    // version covers the forgery (compare-and-set counts every message), and it still takes
    // commands; the copy makes the other aggregate no history at all
    store.clear_cache();
    let loaded = store.load(AggregateKind::Agent, &id).await.unwrap();
    assert_eq!(loaded.events.len(), 1);
    assert_eq!(
        loaded.version,
        Version {
            stream_seq: 2,
            count: 1
        }
    );
    let next = store
        .append(
            AggregateKind::Agent,
            &id,
            loaded.version,
            &meta(),
            vec![suspended("genuine")],
        )
        .await
        .unwrap();
    assert_eq!(next.events[0].envelope.aggregate.seq, 2);
    let copied = store.load(AggregateKind::Agent, &other).await.unwrap();
    assert!(copied.events.is_empty());
    assert_eq!(copied.version.stream_seq, 3);
    let seqs: Vec<u64> = store.foreign().entries().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(store.foreign().entries()[0].kind, "unpinned_key");
    assert_eq!(store.foreign().entries()[1].kind, "subject_mismatch");
}

#[tokio::test]
async fn a_writer_dying_before_the_batch_commit_stores_nothing() {
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
    store.faults().abandon_next_batches(1);
    let err = store
        .append(
            AggregateKind::Agent,
            &id,
            v,
            &meta(),
            vec![suspended("a"), suspended("b"), suspended("c")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unacknowledged(_)));
    // the two messages sent before the writer died are not in the stream
    assert_eq!(store.last_sequence().await.unwrap(), 1);
    let filter = aggregate_filter(store.domain(), AggregateKind::Agent, &id);
    assert_eq!(store.read_filtered(1, &filter).await.unwrap().len(), 1);
    // and the aggregate is free for the next writer at the same position
    let next = store
        .append(
            AggregateKind::Agent,
            &id,
            v,
            &meta(),
            vec![suspended("d"), suspended("e")],
        )
        .await
        .unwrap();
    assert_eq!(next.events.len(), 2);
    assert_eq!(store.last_sequence().await.unwrap(), 3);
}
