//! Batched direct get (nats-server 2.11+, ADR-31): reads stored messages by subject filter
//! without creating a consumer. async-nats has no wrapper for the batched form, so this is a
//! request to `$JS.API.DIRECT.GET.<stream>` with `{"seq", "next_by_subj", "batch"}`, answered
//! by a run of messages that ends with a 204 (end of batch) or 404 (nothing matched) status.

use std::time::Duration;

use async_nats::{Client, StatusCode};
use bytes::Bytes;
use futures::StreamExt;

use crate::error::StoreError;

/// One stored message as the stream returned it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    /// When the server stored it (Unix nanoseconds; 0 when the answer did not say).
    pub stored_at_nanos: i128,
    /// Messages matching the filter after this one, when the answer said (batched gets).
    pub pending: Option<u64>,
}

fn raw_of(msg: &async_nats::Message, seq: u64) -> RawMessage {
    let header = |n: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(n))
            .map(|v| v.as_str().to_owned())
    };
    let stored_at_nanos = header("Nats-Time-Stamp")
        .and_then(|t| {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp_nanos());
    RawMessage {
        seq,
        subject: header("Nats-Subject").unwrap_or_default(),
        payload: msg.payload.clone(),
        stored_at_nanos,
        pending: header("Nats-Num-Pending").and_then(|p| p.parse().ok()),
    }
}

/// Largest batch asked for in one request.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub(crate) struct DirectGet {
    client: Client,
    api_subject: String,
    timeout: Duration,
}

#[derive(serde::Serialize)]
struct BatchRequest<'a> {
    seq: u64,
    next_by_subj: &'a str,
    batch: usize,
}

impl DirectGet {
    pub(crate) fn new(client: Client, api_prefix: &str, stream: &str, timeout: Duration) -> Self {
        Self {
            client,
            api_subject: format!("{api_prefix}.DIRECT.GET.{stream}"),
            timeout,
        }
    }

    /// Up to `batch` messages matching `filter` with sequence >= `from`, and how many more
    /// match after them.
    pub(crate) async fn batch(
        &self,
        from: u64,
        filter: &str,
        batch: usize,
    ) -> Result<(Vec<RawMessage>, u64), StoreError> {
        let req = serde_json::to_vec(&BatchRequest {
            seq: from.max(1),
            next_by_subj: filter,
            batch: batch.clamp(1, MAX_BATCH),
        })
        .map_err(|e| StoreError::nats("direct get", e))?;
        let inbox = self.client.new_inbox();
        let mut sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| StoreError::nats("direct get subscribe", e))?;
        self.client
            .publish_with_reply(self.api_subject.clone(), inbox, Bytes::from(req))
            .await
            .map_err(|e| StoreError::nats("direct get request", e))?;
        let mut out = Vec::new();
        loop {
            let msg = tokio::time::timeout(self.timeout, sub.next())
                .await
                .map_err(|_| StoreError::nats("direct get", "timed out"))?
                .ok_or_else(|| StoreError::nats("direct get", "subscription closed"))?;
            match msg.status {
                Some(code) if code.as_u16() == 204 => {
                    // End of batch: Nats-Num-Pending says how many more match.
                    let pending = header_u64(&msg, "Nats-Num-Pending").unwrap_or(0);
                    return Ok((out, pending));
                }
                Some(StatusCode::NOT_FOUND) => return Ok((out, 0)),
                Some(StatusCode::NO_RESPONDERS) => {
                    return Err(StoreError::nats(
                        "direct get",
                        "no responders (stream missing?)",
                    ));
                }
                Some(code) if code != StatusCode::OK => {
                    return Err(StoreError::nats(
                        "direct get",
                        format!("status {code}: {:?}", msg.description),
                    ));
                }
                _ => {}
            }
            let seq = header_u64(&msg, "Nats-Sequence").ok_or_else(|| StoreError::Corrupt {
                seq: 0,
                detail: "direct get reply without Nats-Sequence".into(),
            })?;
            out.push(raw_of(&msg, seq));
        }
    }

    /// The last message of the stream matching `filter` (`>` for the whole stream), if any.
    pub(crate) async fn last(&self, filter: &str) -> Result<Option<RawMessage>, StoreError> {
        #[derive(serde::Serialize)]
        struct Last<'a> {
            last_by_subj: &'a str,
        }
        let req = serde_json::to_vec(&Last {
            last_by_subj: filter,
        })
        .map_err(|e| StoreError::nats("direct get", e))?;
        self.one(req).await
    }

    async fn one(&self, req: Vec<u8>) -> Result<Option<RawMessage>, StoreError> {
        let msg = tokio::time::timeout(
            self.timeout,
            self.client
                .request(self.api_subject.clone(), Bytes::from(req)),
        )
        .await
        .map_err(|_| StoreError::nats("direct get", "timed out"))?
        .map_err(|e| StoreError::nats("direct get", e))?;
        match msg.status {
            Some(StatusCode::NOT_FOUND) => Ok(None),
            Some(code) if code != StatusCode::OK => Err(StoreError::nats(
                "direct get",
                format!("status {code}: {:?}", msg.description),
            )),
            _ => {
                let seq = header_u64(&msg, "Nats-Sequence").ok_or_else(|| StoreError::Corrupt {
                    seq: 0,
                    detail: "direct get reply without Nats-Sequence".into(),
                })?;
                Ok(Some(raw_of(&msg, seq)))
            }
        }
    }

    /// The first message matching `filter` with sequence >= `from`, if any: one request on
    /// the client's shared reply subscription (no subscribe/unsubscribe per call).
    pub(crate) async fn next(
        &self,
        from: u64,
        filter: &str,
    ) -> Result<Option<RawMessage>, StoreError> {
        #[derive(serde::Serialize)]
        struct Next<'a> {
            seq: u64,
            next_by_subj: &'a str,
        }
        let req = serde_json::to_vec(&Next {
            seq: from.max(1),
            next_by_subj: filter,
        })
        .map_err(|e| StoreError::nats("direct get", e))?;
        self.one(req).await
    }

    /// The messages matching `filter` from `from` through `until` (the filter's last message,
    /// read just before), about `expected` of them. Each request asks for exactly as many as
    /// are still expected, so the server stops at the last one instead of searching the rest
    /// of the stream for another; unexpected extra messages (foreign ones) cost another
    /// request, never a wrong answer.
    pub(crate) async fn through(
        &self,
        from: u64,
        filter: &str,
        until: u64,
        expected: u64,
    ) -> Result<Vec<RawMessage>, StoreError> {
        let mut out = Vec::new();
        let mut next = from;
        let mut want = expected.max(1);
        while next <= until {
            let ask = usize::try_from(want).unwrap_or(MAX_BATCH).min(MAX_BATCH);
            let (got, _) = self.batch(next, filter, ask).await?;
            let Some(last) = got.last().map(|m| m.seq) else {
                break;
            };
            want = want.saturating_sub(got.len() as u64).max(1);
            out.extend(got.into_iter().filter(|m| m.seq <= until));
            next = last + 1;
        }
        Ok(out)
    }

    /// Every message matching `filter` with sequence >= `from`.
    pub(crate) async fn all(&self, from: u64, filter: &str) -> Result<Vec<RawMessage>, StoreError> {
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let (mut got, pending) = self.batch(next, filter, MAX_BATCH).await?;
            let last = got.last().map(|m| m.seq);
            out.append(&mut got);
            match last {
                Some(seq) if pending > 0 => next = seq + 1,
                _ => return Ok(out),
            }
        }
    }
}

fn header_u64(msg: &async_nats::Message, name: &str) -> Option<u64> {
    msg.headers
        .as_ref()?
        .get(name)
        .and_then(|v| v.as_str().parse().ok())
}
