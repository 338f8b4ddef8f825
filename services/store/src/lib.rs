//! The JetStream event store: the system of record of an Accord domain.
//!
//! - one message per event on `accord.evt.<domain>.<aggregate>.<id>.<EventType>`, signed;
//! - compare-and-set per aggregate over the aggregate's subject wildcard;
//! - multi-event commands as one atomic batch;
//! - idempotent retries by command id ([`EventStore::append`]);
//! - aggregate loading by batched direct get with a bounded cache ([`EventStore::load`]);
//! - pipelined appends of high-volume facts on sharded subjects ([`EventStore::append_fact`]);
//! - a `cqrs_es::EventStore` for aggregates ([`cqrs`]).

mod append;
pub mod cqrs;
mod direct;
pub mod entry;
pub mod error;
mod fault;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod load;
mod pipeline;
pub mod projection;
pub mod reader;
pub mod snapshot;
pub mod stream;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use accord_events::{
    AggregateId, AggregateKind, DomainId, DomainKey, Ed25519Key, Envelope, Event, KeyRing,
};
use async_nats::jetstream;

pub use append::{AppendOutcome, MAX_EVENTS_PER_COMMAND};
pub use direct::RawMessage;
pub use entry::{EntryChecker, EntryError, EntryProblem, ForeignEntry, ForeignLog, authenticate};
pub use error::{InvalidAppend, StoreError};
pub use load::LoadedAggregate;
pub use pipeline::PendingFact;
pub use stream::{EVENTS_STREAM, StreamSettings, ensure_stream};

/// Where an aggregate stands: the stream sequence of its last event and how many events it
/// has. `Version::EMPTY` is an aggregate with no events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    pub stream_seq: u64,
    pub count: u64,
}

impl Version {
    pub const EMPTY: Version = Version {
        stream_seq: 0,
        count: 0,
    };
}

/// An event as stored: its stream sequence, envelope and decoded value.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub stream_seq: u64,
    pub envelope: Envelope,
    pub event: Event,
}

/// Settings of an [`EventStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub stream: StreamSettings,
    /// JetStream domain to address (`$JS.<domain>.API`), when not the connection's own.
    pub js_domain: Option<String>,
    /// Deadline of one request to JetStream.
    pub request_timeout: Duration,
    /// Bound of the aggregate cache, in events.
    pub cache_events: u64,
    /// Most publish acknowledgements awaited at once on the pipelined path.
    pub max_acks_in_flight: usize,
    /// Number of shards for high-volume facts.
    pub token_shards: u16,
}

impl StoreConfig {
    pub fn new(domain: DomainId) -> Self {
        Self {
            stream: StreamSettings::new(domain),
            js_domain: None,
            request_timeout: Duration::from_secs(5),
            cache_events: 250_000,
            max_acks_in_flight: 4096,
            token_shards: 64,
        }
    }
}

/// The event store of one domain. Cheap to clone; clones share the connection and the cache.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

/// What the store did since it opened (for metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub stored: std::sync::atomic::AtomicU64,
    pub replayed: std::sync::atomic::AtomicU64,
    pub conflicts: std::sync::atomic::AtomicU64,
    pub facts: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
    /// Aggregate snapshots written (ADR 0014).
    pub snapshots_written: std::sync::atomic::AtomicU64,
    /// Snapshots read but not used: a bad signature or anchor, another aggregate's.
    pub snapshots_refused: std::sync::atomic::AtomicU64,
    /// Cold loads that started from a snapshot.
    pub snapshot_loads: std::sync::atomic::AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &std::sync::atomic::AtomicU64, n: u64) {
        c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Inner {
    counters: Counters,
    config: StoreConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    signer: Arc<Ed25519Key>,
    direct: direct::DirectGet,
    /// Direct gets on the snapshot bucket's stream.
    snapshots: direct::DirectGet,
    cache: load::Cache,
    /// Checks what is read back: only signed events of this domain count (finding 1).
    checker: EntryChecker,
    /// Foreign entries the readers of this process met.
    foreign: ForeignLog,
    #[cfg(feature = "fault-injection")]
    faults: faults::Faults,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("stream", &self.inner.config.stream.name)
            .field("domain", &self.inner.config.stream.domain)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Opens the store on a connected client, creating or checking the log's stream.
    pub async fn open(
        client: async_nats::Client,
        config: StoreConfig,
        signer: Arc<Ed25519Key>,
    ) -> Result<Self, StoreError> {
        let api_prefix = match &config.js_domain {
            Some(d) => format!("$JS.{d}.API"),
            None => "$JS.API".to_owned(),
        };
        let js = jetstream::ContextBuilder::new()
            .api_prefix(api_prefix.clone())
            .timeout(config.request_timeout)
            .max_ack_inflight(config.max_acks_in_flight)
            .backpressure_on_inflight(true)
            .build(client.clone());
        ensure_stream(&js, &config.stream).await?;
        let direct = direct::DirectGet::new(
            client.clone(),
            &api_prefix,
            &config.stream.name,
            config.request_timeout,
        );
        snapshot::open_bucket(&js, config.stream.replicas).await?;
        let snapshots = direct::DirectGet::new(
            client.clone(),
            &api_prefix,
            &format!("KV_{}", snapshot::BUCKET),
            config.request_timeout,
        );
        let cache = load::Cache::new(config.cache_events);
        let ring = KeyRing::trusting(std::slice::from_ref(signer.public())).map_err(|e| {
            StoreError::Invalid(InvalidAppend::Unsignable(format!("event-signing key: {e}")))
        })?;
        let checker = EntryChecker::new(config.stream.domain.clone(), ring);
        Ok(Self {
            inner: Arc::new(Inner {
                counters: Counters::default(),
                config,
                client,
                js,
                signer,
                direct,
                snapshots,
                cache,
                checker,
                foreign: ForeignLog::default(),
                #[cfg(feature = "fault-injection")]
                faults: faults::Faults::default(),
            }),
        })
    }

    pub fn domain(&self) -> &DomainId {
        &self.inner.config.stream.domain
    }

    /// Appends by outcome since the store opened.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The domain's event-signing key (public part, for pinning).
    pub fn signing_key(&self) -> &accord_events::DomainKey {
        self.inner.signer.public()
    }

    /// Trusts the event-signing keys the domain's genesis names (besides this store's own):
    /// what is read back is believed only when one of them signed it.
    pub fn trust_keys(&self, keys: &[DomainKey]) -> Result<(), StoreError> {
        let mut all = keys.to_vec();
        if !all.iter().any(|k| k.kid == self.inner.signer.public().kid) {
            all.push(self.inner.signer.public().clone());
        }
        let ring = KeyRing::trusting(&all).map_err(|e| {
            StoreError::Invalid(InvalidAppend::Unsignable(format!("event-signing key: {e}")))
        })?;
        self.inner.checker.trust(ring);
        Ok(())
    }

    /// The checks every reader of this domain's log applies (finding 1).
    pub fn checker(&self) -> &EntryChecker {
        &self.inner.checker
    }

    /// Foreign entries met by the readers of this process.
    pub fn foreign(&self) -> &ForeignLog {
        &self.inner.foreign
    }

    /// Test hooks that place failures exactly.
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &faults::Faults {
        &self.inner.faults
    }

    /// Reads the messages of an aggregate kind or any filter, from `from` on (no consumer).
    pub async fn read_filtered(
        &self,
        from: u64,
        filter: &str,
    ) -> Result<Vec<RawMessage>, StoreError> {
        self.inner.direct.all(from, filter).await
    }

    /// A reader of this domain's log on the same connection.
    pub fn reader(&self) -> reader::LogReader {
        let prefix = match &self.inner.config.js_domain {
            Some(d) => format!("$JS.{d}.API"),
            None => "$JS.API".to_owned(),
        };
        reader::LogReader::new(
            self.inner.client.clone(),
            &prefix,
            &self.inner.config.stream.name,
        )
    }

    /// The last stream sequence of the log.
    pub async fn last_sequence(&self) -> Result<u64, StoreError> {
        let s = self
            .inner
            .js
            .get_stream_no_info(&self.inner.config.stream.name)
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        let info = s
            .get_info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?;
        Ok(info.state.last_sequence)
    }

    pub(crate) fn aggregate_id_of(kind: AggregateKind, id: &AggregateId) -> String {
        format!("{kind}/{id}")
    }
}
