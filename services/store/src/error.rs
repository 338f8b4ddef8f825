//! Errors of the event store: the caller's fault, a stale writer, or the infrastructure.

use accord_events::signing::SignError;

/// Why an append was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAppend {
    #[error("a command must yield at least one event")]
    Empty,
    #[error("a command may yield at most {max} events, not {count}")]
    TooManyEvents { count: usize, max: usize },
    #[error("event {event} belongs to {expected} aggregates, not {actual}")]
    WrongAggregate {
        event: &'static str,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("event could not be signed: {0}")]
    Unsignable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stale writer: the aggregate moved on since the writer read it. Reload and retry.
    #[error("conflict on {aggregate}: expected last sequence {expected}, found {actual:?}")]
    Conflict {
        aggregate: String,
        expected: u64,
        actual: Option<u64>,
    },
    /// The caller asked for something the store will never do.
    #[error("invalid append: {0}")]
    Invalid(#[from] InvalidAppend),
    /// The log's stream exists but its configuration breaks an invariant.
    #[error("stream {stream} is misconfigured: {problem}")]
    StreamMisconfigured { stream: String, problem: String },
    #[error("stream {0} does not exist")]
    StreamMissing(String),
    /// The domain already has a genesis event (or the stream is not empty).
    #[error("the log already has a genesis event")]
    GenesisExists,
    /// The outcome of an append is unknown (acknowledgement lost or timed out). Retrying the
    /// same command (same command id, same expected version) is safe: it is stored once.
    #[error("outcome of the append is unknown: {0}")]
    Unacknowledged(String),
    /// A stored message could not be read as an event.
    #[error("stored message at sequence {seq} is unreadable: {detail}")]
    Corrupt { seq: u64, detail: String },
    /// NATS or JetStream failed; usually transient.
    #[error("{op}: {detail}")]
    Nats { op: &'static str, detail: String },
}

impl StoreError {
    pub(crate) fn nats(op: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Nats {
            op,
            detail: e.to_string(),
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. } | Self::Unacknowledged(_) | Self::Nats { .. }
        )
    }
}

impl From<SignError> for StoreError {
    fn from(e: SignError) -> Self {
        Self::Invalid(InvalidAppend::Unsignable(e.to_string()))
    }
}
