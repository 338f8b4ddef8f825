//! Reading the log in order, as projections, auditors and `accord events tail` do: an ordered
//! consumer (ephemeral, flow-controlled, self-healing) over the domain's subjects, and the
//! checks that apply where bytes cross a trust boundary.

use accord_events::signing::{VerifiedEvent, VerifyError};
use accord_events::{KeyRing, Subject};
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::direct::DirectGet;
use crate::error::StoreError;

/// One message of the log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    /// When the server stored it (Unix nanoseconds).
    pub stored_at_nanos: i128,
    /// Messages after this one that match the reader's filter, when it was delivered.
    pub pending: u64,
}

/// Why an entry of the log is not an authentic event of this domain.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("signature: {0}")]
    Signature(#[from] VerifyError),
    #[error("stored under {stored} but the envelope says {claimed}")]
    SubjectMismatch { stored: String, claimed: String },
}

/// A problem with the entry at `seq`.
#[derive(Debug, thiserror::Error)]
#[error("event at sequence {seq}: {problem}")]
pub struct EntryError {
    pub seq: u64,
    pub problem: EntryProblem,
}

/// Verifies an entry's signature against pinned keys, and that it is stored under the subject
/// its envelope names (an event moved to another aggregate is not authentic there).
pub fn verify_entry(ring: &KeyRing, entry: &LogEntry) -> Result<VerifiedEvent, EntryError> {
    let err = |problem| EntryError {
        seq: entry.seq,
        problem,
    };
    let verified = ring
        .verify(&entry.payload)
        .map_err(|e| err(EntryProblem::Signature(e)))?;
    let claimed = verified.envelope().subject().to_string();
    if claimed != entry.subject || Subject::parse(&entry.subject).is_err() {
        return Err(err(EntryProblem::SubjectMismatch {
            stored: entry.subject.clone(),
            claimed,
        }));
    }
    Ok(verified)
}

/// Reads a domain's log without writing to it (no stream creation): projections, auditors,
/// `accord events tail`. Needs only read permissions.
#[derive(Debug, Clone)]
pub struct LogReader {
    js: jetstream::Context,
    stream: String,
    direct: DirectGet,
}

impl LogReader {
    /// `api_prefix` is `$JS.API`, or `$JS.<domain>.API` across a JetStream domain boundary.
    pub fn new(client: async_nats::Client, api_prefix: &str, stream: &str) -> Self {
        let js = jetstream::ContextBuilder::new()
            .api_prefix(api_prefix)
            .build(client.clone());
        Self {
            direct: DirectGet::new(
                client,
                api_prefix,
                stream,
                std::time::Duration::from_secs(5),
            ),
            js,
            stream: stream.to_owned(),
        }
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The first message matching `filter` at or after `from` (one direct get).
    pub async fn first_from(
        &self,
        from: u64,
        filter: &str,
    ) -> Result<Option<crate::RawMessage>, StoreError> {
        self.direct.next(from, filter).await
    }

    /// The log's last sequence now.
    pub async fn last_sequence(&self) -> Result<u64, StoreError> {
        let s = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        Ok(s.get_info()
            .await
            .map_err(|e| StoreError::nats("stream info", e))?
            .state
            .last_sequence)
    }

    /// Reads in order from `from` (1 = the beginning) through an ordered consumer on `filter`.
    /// Never ends by itself (it follows the log); see [`LogReader::read_range`].
    pub async fn follow(
        &self,
        filter: &str,
        from: u64,
    ) -> Result<impl Stream<Item = Result<LogEntry, StoreError>> + Unpin + use<>, StoreError> {
        self.follow_filters(&[filter.to_owned()], from).await
    }

    /// [`LogReader::follow`] with several subject filters.
    pub async fn follow_filters(
        &self,
        filters: &[String],
        from: u64,
    ) -> Result<impl Stream<Item = Result<LogEntry, StoreError>> + Unpin + use<>, StoreError> {
        let s = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| StoreError::nats("get stream", e))?;
        let deliver_policy = if from <= 1 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            }
        };
        let c = s
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: if filters.len() == 1 {
                    filters[0].clone()
                } else {
                    String::new()
                },
                filter_subjects: if filters.len() > 1 {
                    filters.to_vec()
                } else {
                    Vec::new()
                },
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError::nats("create ordered consumer", e))?;
        let messages = c
            .messages()
            .await
            .map_err(|e| StoreError::nats("ordered consumer", e))?;
        Ok(messages.map(|m| {
            let m = m.map_err(|e| StoreError::nats("ordered consumer", e))?;
            let info = m.info().map_err(|e| StoreError::nats("message info", e))?;
            Ok(LogEntry {
                seq: info.stream_sequence,
                pending: info.pending,
                stored_at_nanos: info.published.unix_timestamp_nanos(),
                subject: m.subject.to_string(),
                payload: m.payload.clone(),
            })
        }))
    }

    /// Every entry matching `filter` from `from` up to the log's last sequence as of the call.
    pub async fn read_range(&self, filter: &str, from: u64) -> Result<Vec<LogEntry>, StoreError> {
        let last = self.last_sequence().await?;
        let mut out = Vec::new();
        // An ordered consumer waits forever when nothing matches: ask first.
        let (first, _) = self.direct.batch(from, filter, 1).await?;
        if first.first().is_none_or(|m| m.seq > last) {
            return Ok(out);
        }
        let mut entries = self.follow(filter, from).await?;
        while let Some(e) = entries.next().await {
            let e = e?;
            if e.seq > last {
                break;
            }
            let done = e.seq == last || e.pending == 0;
            out.push(e);
            if done {
                break;
            }
        }
        Ok(out)
    }
}
