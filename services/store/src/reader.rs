//! Reading the log in order, as projections, auditors and `accord events tail` do: an ordered
//! consumer (ephemeral, flow-controlled, self-healing) over the domain's subjects, and the
//! checks that apply where bytes cross a trust boundary.

use accord_events::KeyRing;
use accord_events::signing::VerifiedEvent;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::stream::BoxStream;
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

pub use crate::entry::{EntryError, EntryProblem};

/// Verifies an entry's signature against pinned keys, and that it is stored under the subject
/// its envelope names ([`crate::entry::authenticate`], no domain named). For readers outside
/// the domain (auditors); the domain's own readers use [`crate::EntryChecker`], which also
/// checks the domain and decodes the event.
pub fn verify_entry(ring: &KeyRing, entry: &LogEntry) -> Result<VerifiedEvent, EntryError> {
    crate::entry::authenticate(ring, None, entry.seq, &entry.subject, &entry.payload)
}

/// How a reader reaches the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The domain's services: stream info and ordered consumers (fastest in order).
    Consumers,
    /// Everyone else (auditors, the operator): batched direct get only, the one JetStream
    /// call the services' account exports to them (ADR 0006). No consumer is created.
    DirectGet,
}

/// Reads a domain's log without writing to it (no stream creation): projections, auditors,
/// `accord events tail`. Needs only read permissions.
#[derive(Debug, Clone)]
pub struct LogReader {
    js: jetstream::Context,
    stream: String,
    direct: DirectGet,
    access: Access,
}

/// How long a direct-get follower waits before asking again once it reached the tail.
const POLL_IDLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether `subject` matches the NATS subject filter `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl LogReader {
    /// A reader for the domain's services. `api_prefix` is `$JS.API`, or `$JS.<domain>.API`
    /// across a JetStream domain boundary.
    pub fn new(client: async_nats::Client, api_prefix: &str, stream: &str) -> Self {
        Self::with_access(client, api_prefix, stream, Access::Consumers)
    }

    /// A reader for an identity outside the services' account (auditor, operator).
    pub fn direct_only(client: async_nats::Client, api_prefix: &str, stream: &str) -> Self {
        Self::with_access(client, api_prefix, stream, Access::DirectGet)
    }

    pub fn with_access(
        client: async_nats::Client,
        api_prefix: &str,
        stream: &str,
        access: Access,
    ) -> Self {
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
            access,
        }
    }

    pub fn access(&self) -> Access {
        self.access
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
        if self.access == Access::DirectGet {
            return Ok(self.direct.last(">").await?.map_or(0, |m| m.seq));
        }
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

    /// Reads in order from `from` (1 = the beginning) through an ordered consumer on `filter`
    /// (or batched direct gets, for readers outside the services' account). Never ends by
    /// itself (it follows the log); see [`LogReader::read_range`].
    pub async fn follow(
        &self,
        filter: &str,
        from: u64,
    ) -> Result<BoxStream<'static, Result<LogEntry, StoreError>>, StoreError> {
        self.follow_filters(&[filter.to_owned()], from).await
    }

    /// [`LogReader::follow`] with several subject filters.
    pub async fn follow_filters(
        &self,
        filters: &[String],
        from: u64,
    ) -> Result<BoxStream<'static, Result<LogEntry, StoreError>>, StoreError> {
        match self.access {
            Access::Consumers => Ok(self.follow_consumer(filters, from).await?.boxed()),
            Access::DirectGet => Ok(self.follow_direct(filters, from).boxed()),
        }
    }

    async fn follow_consumer(
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

    /// In order by batched direct gets: one filter is asked of the server; several are read
    /// as the whole log and matched here.
    fn follow_direct(
        &self,
        filters: &[String],
        from: u64,
    ) -> impl Stream<Item = Result<LogEntry, StoreError>> + use<> {
        let asked = if filters.len() == 1 {
            filters[0].clone()
        } else {
            ">".to_owned()
        };
        let keep: Vec<String> = if filters.len() > 1 {
            filters.to_vec()
        } else {
            Vec::new()
        };
        let direct = self.direct.clone();
        let state = (
            direct,
            asked,
            keep,
            from.max(1),
            std::collections::VecDeque::<LogEntry>::new(),
        );
        futures::stream::unfold(
            state,
            |(direct, asked, keep, mut next, mut buf)| async move {
                loop {
                    if let Some(e) = buf.pop_front() {
                        return Some((Ok(e), (direct, asked, keep, next, buf)));
                    }
                    match direct.batch(next, &asked, crate::direct::MAX_BATCH).await {
                        Err(e) => return Some((Err(e), (direct, asked, keep, next, buf))),
                        Ok((got, _)) if got.is_empty() => tokio::time::sleep(POLL_IDLE).await,
                        Ok((got, _)) => {
                            for m in got {
                                next = next.max(m.seq + 1);
                                if !keep.is_empty()
                                    && !keep.iter().any(|f| subject_matches(f, &m.subject))
                                {
                                    continue;
                                }
                                buf.push_back(LogEntry {
                                    seq: m.seq,
                                    pending: m.pending.unwrap_or(0),
                                    stored_at_nanos: m.stored_at_nanos,
                                    subject: m.subject,
                                    payload: m.payload,
                                });
                            }
                        }
                    }
                }
            },
        )
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

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn filters_match_as_nats_does() {
        assert!(subject_matches(">", "a.b"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(subject_matches("a.b", "a.b"));
    }
}
