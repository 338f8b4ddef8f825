//! The envelope every event travels in (design §3).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::{DecodeError, Event};
use crate::common::{Actor, Timestamp, TraceParent};
use crate::ids::{AggregateId, CommandId, CorrelationId, DomainId, EventId, EventTypeName};
use crate::subject::{AggregateKind, Subject};

/// Which aggregate an event belongs to, and its place in that aggregate's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateRef {
    #[serde(rename = "type")]
    pub kind: AggregateKind,
    pub id: AggregateId,
    /// 1-based position in the aggregate's history; 0 on sharded aggregates, which have no
    /// per-aggregate order.
    pub seq: u64,
}

/// An event as written: identity, provenance and the event's data.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Derived from the command id and the event's index in the command's output; also the
    /// message's `Nats-Msg-Id`.
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventTypeName,
    pub version: u32,
    pub domain: DomainId,
    pub aggregate: AggregateRef,
    pub command_id: CommandId,
    pub occurred_at: Timestamp,
    pub actor: Actor,
    pub correlation_id: CorrelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
    pub data: Value,
}

/// What every event of one command shares: who asked, why, and when.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Metadata {
    pub command_id: CommandId,
    pub actor: Actor,
    pub correlation_id: CorrelationId,
    pub causation_id: Option<EventId>,
    pub traceparent: Option<TraceParent>,
    pub occurred_at: Timestamp,
}

impl Metadata {
    /// Metadata for a command that starts a new business transaction.
    pub fn new(command_id: CommandId, actor: Actor, occurred_at: Timestamp) -> Self {
        Self {
            command_id,
            actor,
            correlation_id: CorrelationId::from_uuid(*command_id.as_uuid()),
            causation_id: None,
            traceparent: None,
            occurred_at,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("event {event} belongs to {expected} aggregates, not {actual}")]
    AggregateMismatch {
        event: &'static str,
        expected: AggregateKind,
        actual: AggregateKind,
    },
}

impl Envelope {
    /// Wraps the `index`-th event of a command.
    pub fn new(
        domain: &DomainId,
        aggregate: AggregateRef,
        meta: &Metadata,
        index: u32,
        event: &Event,
    ) -> Result<Self, EnvelopeError> {
        if event.aggregate_kind() != aggregate.kind {
            return Err(EnvelopeError::AggregateMismatch {
                event: event.event_type(),
                expected: event.aggregate_kind(),
                actual: aggregate.kind,
            });
        }
        Ok(Self {
            id: EventId::derive(&meta.command_id, index),
            event_type: EventTypeName::from_catalogue(event.event_type()),
            version: event.version(),
            domain: domain.clone(),
            aggregate,
            command_id: meta.command_id,
            occurred_at: meta.occurred_at,
            actor: meta.actor.clone(),
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            traceparent: meta.traceparent.clone(),
            data: event.to_data(),
        })
    }

    /// The subject this event is stored under.
    pub fn subject(&self) -> Subject {
        Subject::new(
            self.domain.clone(),
            self.aggregate.kind,
            self.aggregate.id.clone(),
            self.event_type.clone(),
        )
    }

    /// The typed event, upcast to its current version.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        Event::from_data_ref(self.event_type.as_str(), self.version, &self.data)
    }
}
