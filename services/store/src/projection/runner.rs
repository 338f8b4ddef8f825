//! Feeds projections from the log: a durable pull consumer per projection, batches applied by
//! the store with their checkpoint, acknowledged after the commit. A crash at any point loses
//! nothing and applies nothing twice: on restart the consumer is recreated at the store's
//! checkpoint + 1, and anything at or below the checkpoint is skipped by the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_events::{DomainId, Timestamp};
use async_nats::jetstream::{self, consumer};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::{Projection, ProjectionError, ProjectionStore};
use crate::reader::{LogEntry, LogReader};
use crate::{EntryChecker, EventStore, ForeignLog, StoredEvent};

/// Where a projection stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub name: String,
    pub generation: u32,
    /// Last stream sequence applied (the checkpoint).
    pub applied: u64,
    /// The log's last sequence when the projection started.
    pub tail_at_start: u64,
    /// Reached the tail as of its start.
    pub ready: bool,
    /// Messages of the log not yet applied, as of the last batch.
    pub pending: u64,
    /// The kind of the last failure (`ProjectionError::kind`), while the runner retries; its
    /// details go to the log only.
    pub error: Option<String>,
    /// Stream sequence up to which a rebuild has replayed, while one runs.
    pub rebuilding: Option<RebuildProgress>,
    /// Entries of the log this projection skipped because they are not authentic events of
    /// the domain (finding 1), since the process started.
    pub foreign: u64,
    /// The sequences of the latest of them.
    pub foreign_seqs: Vec<u64>,
}

/// Most foreign sequences a projection's progress lists.
const LISTED_FOREIGN: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RebuildProgress {
    pub generation: u32,
    pub applied: u64,
    pub target: u64,
}

/// How the runner reaches the log.
#[derive(Clone, Debug)]
pub struct RunnerContext {
    pub js: jetstream::Context,
    pub reader: LogReader,
    pub stream: String,
    pub domain: DomainId,
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// What an entry must be to be applied; anything else is skipped and reported.
    pub checker: EntryChecker,
    pub foreign: ForeignLog,
}

impl RunnerContext {
    /// The runner context of a domain's event store.
    pub fn of(store: &EventStore, batch_size: usize) -> Self {
        Self {
            js: store.jetstream().clone(),
            reader: store.reader(),
            stream: store.config().stream.name.clone(),
            domain: store.domain().clone(),
            batch_size,
            checker: store.checker().clone(),
            foreign: store.foreign().clone(),
        }
    }

    /// The event at a delivered entry, or `None` when it is foreign (then reported as met by
    /// `reader`, once per sequence).
    fn checked(
        &self,
        reader: &str,
        seq: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<StoredEvent, crate::EntryError> {
        self.checker.check(seq, subject, payload).inspect_err(|e| {
            self.foreign.report(reader, subject, e);
        })
    }
}

fn reader_name(projection: &dyn Projection) -> String {
    format!("projection:{}", projection.name())
}

struct Inner {
    projection: Arc<dyn Projection>,
    store: Arc<dyn ProjectionStore>,
    progress: watch::Sender<Progress>,
    /// Wakes the live runner to reopen the active generation (after a rebuild switched it).
    reopen: tokio::sync::Notify,
}

/// A running projection: its progress, its store, and waits for a sequence.
#[derive(Clone)]
pub struct ProjectionHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProjectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle")
            .field("progress", &*self.inner.progress.borrow())
            .finish()
    }
}

impl ProjectionHandle {
    pub fn name(&self) -> &'static str {
        self.inner.projection.name()
    }

    pub fn progress(&self) -> Progress {
        self.inner.progress.borrow().clone()
    }

    pub fn store(&self) -> &Arc<dyn ProjectionStore> {
        &self.inner.store
    }

    /// Progress as it changes (after every batch).
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Waits until the projection has applied at least `seq`, or fails with `NotYet` at the
    /// deadline. Answers that depend on the projection can then say which sequence they reflect.
    pub async fn wait_for(&self, seq: u64, within: Duration) -> Result<u64, ProjectionError> {
        let mut rx = self.inner.progress.subscribe();
        let reached = tokio::time::timeout(within, rx.wait_for(|p| p.applied >= seq)).await;
        match reached {
            Ok(Ok(p)) => Ok(p.applied),
            _ => Err(ProjectionError::NotYet {
                projection: self.name().to_owned(),
                applied: self.inner.progress.borrow().applied,
                wanted: seq,
            }),
        }
    }

    /// Waits until the projection reached the log's tail as of its start.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let mut rx = self.inner.progress.subscribe();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|p| p.ready)).await,
            Ok(Ok(_))
        )
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.inner.progress.send_modify(f);
    }
}

/// Starts a projection's runner task; it runs until `shutdown` turns true.
pub fn spawn(
    projection: Arc<dyn Projection>,
    store: Arc<dyn ProjectionStore>,
    ctx: RunnerContext,
    shutdown: watch::Receiver<bool>,
) -> ProjectionHandle {
    let (tx, _) = watch::channel(Progress {
        name: projection.name().to_owned(),
        ..Default::default()
    });
    let handle = ProjectionHandle {
        inner: Arc::new(Inner {
            projection,
            store,
            progress: tx,
            reopen: tokio::sync::Notify::new(),
        }),
    };
    let h = handle.clone();
    tokio::spawn(async move { run(h, ctx, shutdown).await });
    handle
}

async fn run(handle: ProjectionHandle, ctx: RunnerContext, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(50);
    let mut tail_known = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let result = tokio::select! {
            r = run_once(&handle, &ctx, &mut tail_known) => r,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => return,
            Err(ProjectionError::Reopen) => continue,
            Err(ProjectionError::Standby(_)) => {
                tracing::debug!(
                    projection = handle.name(),
                    "another instance leads; standing by"
                );
                // the leader writes the shared store; a standby answers from it, so it reports
                // the leader's checkpoint as its own position
                tail_known_outer(&mut tail_known, &ctx, &handle).await;
                if tail_known && let Ok(cp) = handle.inner.store.open(handle.name()).await {
                    handle.update(|p| {
                        p.generation = cp.generation;
                        p.applied = cp.seq;
                        p.ready = p.ready || cp.seq >= p.tail_at_start;
                    });
                }
                handle.update(|p| p.error = Some("standby".into()));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Err(e) => {
                tracing::warn!(projection = handle.name(), error = %e, "projection runner failed; retrying");
                handle.update(|p| p.error = Some(e.kind().to_owned()));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Learns the log's tail as of start once (while the log can be asked).
async fn tail_known_outer(known: &mut bool, ctx: &RunnerContext, handle: &ProjectionHandle) {
    if !*known && let Ok(tail) = ctx.reader.last_sequence().await {
        handle.update(|p| p.tail_at_start = tail);
        *known = true;
    }
}

fn nats(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Log(e.to_string())
}

/// The durable consumer of a generation, recreated at `start` so that its position always
/// agrees with the store's checkpoint (nothing delivered-but-unacknowledged lingers).
async fn consumer_at(
    ctx: &RunnerContext,
    projection: &dyn Projection,
    store: &dyn ProjectionStore,
    generation: u32,
    start: u64,
) -> Result<consumer::PullConsumer, ProjectionError> {
    let name = format!(
        "accord-proj-{}-{}-g{generation}",
        store.consumer_scope(),
        projection.name()
    );
    let stream = ctx.js.get_stream_no_info(&ctx.stream).await.map_err(nats)?;
    match stream.delete_consumer(&name).await {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                jetstream::stream::ConsumerErrorKind::JetStream(ref je)
                    if je.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
            ) => {}
        Err(e) => return Err(nats(e)),
    }
    let deliver_policy = if start <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: start,
        }
    };
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            name: Some(name),
            description: Some(format!("Accord projection {}", projection.name())),
            filter_subjects: projection.filters(&ctx.domain),
            deliver_policy,
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: 100_000,
            // a memory store's consumer dies with its process; let the server clean it up
            inactive_threshold: if store.durable() {
                Duration::ZERO
            } else {
                Duration::from_secs(600)
            },
            ..Default::default()
        })
        .await
        .map_err(nats)
}

/// Deletes this scope's consumers of generations before `generation` (left by a rebuild).
async fn drop_older_consumers(
    ctx: &RunnerContext,
    projection: &dyn Projection,
    store: &dyn ProjectionStore,
    generation: u32,
) {
    let Ok(stream) = ctx.js.get_stream_no_info(&ctx.stream).await else {
        return;
    };
    let prefix = format!(
        "accord-proj-{}-{}-g",
        store.consumer_scope(),
        projection.name()
    );
    let mut names = stream.consumer_names();
    while let Some(Ok(name)) = names.next().await {
        let older = name
            .strip_prefix(&prefix)
            .and_then(|g| g.parse::<u32>().ok())
            .is_some_and(|g| g < generation);
        if older {
            let _ = stream.delete_consumer(&name).await;
        }
    }
}

/// Turns a delivered message into a stored event, or `None` when the entry is foreign.
fn stored(
    ctx: &RunnerContext,
    reader: &str,
    m: &jetstream::Message,
) -> Result<(Option<StoredEvent>, u64, u64), ProjectionError> {
    let info = m.info().map_err(nats)?;
    let (seq, pending) = (info.stream_sequence, info.pending);
    let event = ctx.checked(reader, seq, &m.subject, &m.payload).ok();
    Ok((event, seq, pending))
}

async fn run_once(
    handle: &ProjectionHandle,
    ctx: &RunnerContext,
    tail_known: &mut bool,
) -> Result<(), ProjectionError> {
    let projection = handle.inner.projection.clone();
    let store = handle.inner.store.clone();
    let _leadership = store.lead(projection.name()).await?;
    let cp = store.open(projection.name()).await?;
    if !*tail_known {
        let tail = ctx.reader.last_sequence().await.map_err(nats)?;
        handle.update(|p| p.tail_at_start = tail);
        *tail_known = true;
    }
    handle.update(|p| {
        p.generation = cp.generation;
        p.applied = cp.seq;
        p.ready = p.ready || cp.seq >= p.tail_at_start;
    });
    let consumer = consumer_at(
        ctx,
        projection.as_ref(),
        store.as_ref(),
        cp.generation,
        cp.seq + 1,
    )
    .await?;
    drop_older_consumers(ctx, projection.as_ref(), store.as_ref(), cp.generation).await;
    if consumer.cached_info().num_pending == 0 {
        handle.update(|p| p.ready = true);
    }
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(ctx.batch_size.max(1))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(nats)?;
    let mut applied = cp.seq;
    let mut next_delivery = 1;
    let reader = reader_name(projection.as_ref());
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            _ = handle.inner.reopen.notified() => return Err(ProjectionError::Reopen),
        };
        let Some(first) = first else {
            return Err(nats("consumer stream ended"));
        };
        let mut batch = vec![first.map_err(nats)?];
        // take what is already here, up to the batch size: low latency when quiet, big
        // transactions under load
        while batch.len() < ctx.batch_size {
            match messages.next().now_or_never() {
                Some(Some(m)) => batch.push(m.map_err(nats)?),
                _ => break,
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut pending = 0;
        let mut through = 0;
        let mut skipped = 0u64;
        for m in &batch {
            // every delivery of this consumer must reach this runner: a gap means another
            // client pulled from it (and our acknowledge-all would cover what we never saw)
            let info = m.info().map_err(nats)?;
            if info.delivered == 1 && info.consumer_sequence != next_delivery {
                return Err(ProjectionError::Storage(format!(
                    "consumer delivered sequence {} but {next_delivery} was expected: another client pulled from it",
                    info.consumer_sequence
                )));
            }
            next_delivery = info.consumer_sequence + 1;
            let (e, seq, p) = stored(ctx, &reader, m)?;
            pending = p;
            through = seq;
            match e {
                Some(e) => events.push(e),
                None => skipped += 1,
            }
        }
        // the checkpoint moves past foreign entries too: a restart does not meet them again,
        // and "at least sequence N" is answered when N is one of them
        let new_cp = store
            .apply_batch(projection.as_ref(), cp.generation, &events, through)
            .await?;
        // AckPolicy::All: the last acknowledges the batch
        if let Some(last) = batch.last() {
            last.ack().await.map_err(nats)?;
        }
        if new_cp > applied {
            applied = new_cp;
        }
        handle.update(|p| {
            p.applied = applied;
            p.pending = pending;
            p.error = None;
            if skipped > 0 {
                p.foreign += skipped;
                p.foreign_seqs = ctx.foreign.seqs_of(&reader);
                let n = p.foreign_seqs.len();
                p.foreign_seqs.drain(..n.saturating_sub(LISTED_FOREIGN));
            }
            if applied >= p.tail_at_start || pending == 0 {
                p.ready = true;
            }
        });
    }
}

/// Checks a batch of entries on every core, keeping the authentic events in log order (the
/// others are skipped and reported, as everywhere).
async fn check_batch(
    ctx: &RunnerContext,
    reader: &str,
    batch: Vec<LogEntry>,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let check = |ctx: &RunnerContext, reader: &str, part: &[LogEntry]| -> Vec<StoredEvent> {
        part.iter()
            .filter_map(|e| ctx.checked(reader, e.seq, &e.subject, &e.payload).ok())
            .collect()
    };
    if threads == 1 || batch.len() < 64 {
        return Ok(check(ctx, reader, &batch));
    }
    let (ctx, reader) = (ctx.clone(), reader.to_owned());
    tokio::task::spawn_blocking(move || {
        let size = batch.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = batch
                .chunks(size)
                .map(|part| s.spawn(|| check(&ctx, &reader, part)))
                .collect();
            let mut out = Vec::with_capacity(batch.len());
            for p in parts {
                out.extend(
                    p.join()
                        .map_err(|_| ProjectionError::Storage("checking a batch failed".into()))?,
                );
            }
            Ok(out)
        })
    })
    .await
    .map_err(|e| ProjectionError::Storage(format!("checking a batch: {e}")))?
}

/// Fewest events per transaction during a rebuild.
pub const REBUILD_BATCH: usize = 2000;

/// Stops a task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Replays the whole log into a fresh generation, then makes it the active one. The live
/// runner notices the switch (its generation is gone), reopens the active generation and
/// continues from its checkpoint. `on_progress` is called after each batch.
pub async fn rebuild(
    handle: &ProjectionHandle,
    ctx: &RunnerContext,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<u32, ProjectionError> {
    let projection = handle.inner.projection.clone();
    let store = handle.inner.store.clone();
    store.open(projection.name()).await?;
    let generation = store.new_generation(projection.name()).await?;
    let target = ctx.reader.last_sequence().await.map_err(nats)?;
    let started = Instant::now();
    handle.update(|p| {
        p.rebuilding = Some(RebuildProgress {
            generation,
            applied: 0,
            target,
        })
    });
    let result = async {
        if target > 0 {
            let filters = projection.filters(&ctx.domain);
            let filter = filters
                .first()
                .cloned()
                .unwrap_or_else(|| accord_events::subject::domain_filter(&ctx.domain));
            let entries = ctx.reader.follow(&filter, 1).await.map_err(nats)?;
            // read and decode on one task while the store applies on another: a replay is
            // bound by parsing, which then overlaps with applying
            let (tx, mut rx) =
                tokio::sync::mpsc::channel::<Result<(Vec<StoredEvent>, u64), ProjectionError>>(4);
            let (rctx, reader) = (ctx.clone(), reader_name(projection.as_ref()));
            // bigger transactions than live batches: a replay pays per round trip, not latency
            let batch_size = ctx.batch_size.max(REBUILD_BATCH);
            let reader_task = tokio::spawn(async move {
                let mut entries = entries;
                loop {
                    let Some(first) = entries.next().await else {
                        let _ = tx.send(Err(nats("log ended during rebuild"))).await;
                        return;
                    };
                    let mut batch = match first {
                        Ok(e) => vec![e],
                        Err(e) => {
                            let _ = tx.send(Err(nats(e))).await;
                            return;
                        }
                    };
                    // a replay has no latency to keep: fill the batch unless the log pauses
                    while batch.len() < batch_size && batch.last().is_some_and(|e| e.seq < target) {
                        match tokio::time::timeout(Duration::from_millis(20), entries.next()).await
                        {
                            Ok(Some(Ok(e))) => batch.push(e),
                            Ok(Some(Err(e))) => {
                                let _ = tx.send(Err(nats(e))).await;
                                return;
                            }
                            _ => break,
                        }
                    }
                    let done = batch.last().is_some_and(|e| e.seq >= target);
                    let through = batch
                        .iter()
                        .map(|e| e.seq)
                        .filter(|s| *s <= target)
                        .max()
                        .unwrap_or(0);
                    let batch: Vec<LogEntry> =
                        batch.into_iter().filter(|e| e.seq <= target).collect();
                    // a replay's cost is the signatures: every core checks a part of the batch
                    let decoded = check_batch(&rctx, &reader, batch)
                        .await
                        .map(|events| (events, through));
                    let failed = decoded.is_err();
                    if tx.send(decoded).await.is_err() || failed || done {
                        return;
                    }
                }
            });
            let _abort = AbortOnDrop(reader_task);
            let mut applied = 0;
            while applied < target {
                let Some(events) = rx.recv().await else {
                    return Err(nats("log ended during rebuild"));
                };
                let (events, through) = events?;
                if through == 0 {
                    break;
                }
                let last = through;
                store
                    .apply_batch(projection.as_ref(), generation, &events, through)
                    .await?;
                applied = last;
                on_progress(applied, target);
                handle.update(|p| {
                    if let Some(r) = p.rebuilding.as_mut() {
                        r.applied = applied;
                    }
                });
            }
        }
        store.activate(projection.name(), generation).await
    }
    .await;
    handle.update(|p| p.rebuilding = None);
    result?;
    handle.inner.reopen.notify_one();
    tracing::info!(
        projection = projection.name(),
        generation,
        target,
        secs = started.elapsed().as_secs_f64(),
        at = %Timestamp::now(),
        "rebuild switched"
    );
    Ok(generation)
}
