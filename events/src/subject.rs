//! Subjects of the event log: `accord.evt.<domain_id>.<aggregate_type>.<aggregate_id>.<EventType>`.
//!
//! Every token is a parsed newtype, so a subject built here is always a concrete subject with
//! exactly six tokens, and a filter built here is wild only where this module puts the wildcard.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::ids::{AggregateId, DomainId, EventTypeName, IdError};

/// The first two tokens of every event subject.
pub const PREFIX: &str = "accord.evt";

/// The kinds of aggregate in the log; the third token of a subject.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    /// The domain itself: genesis and domain-wide configuration.
    Domain,
    /// Trust material: trust anchors, attestation verifiers, providers, identity providers.
    Trust,
    /// An agent: provisioning, owner binding, credentials, registration.
    Agent,
    /// Policy bundles.
    Policy,
    /// Federation peers.
    Peer,
    /// Cross-domain identifier mappings.
    Mapping,
    /// Sharded high-volume token facts (no compare-and-set).
    Token,
    /// Audit checkpoints.
    Audit,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 8] = [
        Self::Domain,
        Self::Trust,
        Self::Agent,
        Self::Policy,
        Self::Peer,
        Self::Mapping,
        Self::Token,
        Self::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::Trust => "trust",
            Self::Agent => "agent",
            Self::Policy => "policy",
            Self::Peer => "peer",
            Self::Mapping => "mapping",
            Self::Token => "token",
            Self::Audit => "audit",
        }
    }
}

impl FromStr for AggregateKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(IdError::Malformed {
                kind: "aggregate type",
                reason: "unknown aggregate type",
            })
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JsonSchema for AggregateKind {
    fn schema_name() -> Cow<'static, str> {
        "AggregateKind".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

/// A concrete event subject.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Subject {
    pub domain: DomainId,
    pub aggregate: AggregateKind,
    pub aggregate_id: AggregateId,
    pub event_type: EventTypeName,
}

/// Why a string is not an event subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject does not start with `{PREFIX}.`")]
    Prefix,
    #[error("subject has {0} tokens, expected 6")]
    TokenCount(usize),
    #[error("subject token: {0}")]
    Token(#[from] IdError),
}

impl Subject {
    pub const MAX_LEN: usize = 512;

    pub fn new(
        domain: DomainId,
        aggregate: AggregateKind,
        aggregate_id: AggregateId,
        event_type: EventTypeName,
    ) -> Self {
        Self {
            domain,
            aggregate,
            aggregate_id,
            event_type,
        }
    }

    pub fn parse(s: &str) -> Result<Self, SubjectError> {
        if s.len() > Self::MAX_LEN {
            return Err(SubjectError::Token(IdError::TooLong {
                kind: "subject",
                max: Self::MAX_LEN,
            }));
        }
        let rest = s
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or(SubjectError::Prefix)?;
        let tokens: Vec<&str> = rest.split('.').collect();
        if tokens.len() != 4 {
            return Err(SubjectError::TokenCount(tokens.len() + 2));
        }
        Ok(Self {
            domain: DomainId::parse(tokens[0])?,
            aggregate: tokens[1].parse()?,
            aggregate_id: AggregateId::parse(tokens[2])?,
            event_type: EventTypeName::parse(tokens[3])?,
        })
    }

    /// The filter over every event of this subject's aggregate (compare-and-set scope).
    pub fn aggregate_filter(&self) -> String {
        aggregate_filter(&self.domain, self.aggregate, &self.aggregate_id)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}.{}",
            self.domain, self.aggregate, self.aggregate_id, self.event_type
        )
    }
}

impl FromStr for Subject {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, SubjectError> {
        Self::parse(s)
    }
}

/// `accord.evt.<domain>.<aggregate>.<id>.*`: every event of one aggregate.
pub fn aggregate_filter(domain: &DomainId, kind: AggregateKind, id: &AggregateId) -> String {
    format!("{PREFIX}.{domain}.{kind}.{id}.*")
}

/// `accord.evt.<domain>.>`: the domain's whole log.
pub fn domain_filter(domain: &DomainId) -> String {
    format!("{PREFIX}.{domain}.>")
}

/// `accord.evt.<domain>.*.*.<EventType>`: every event of one type.
pub fn event_type_filter(domain: &DomainId, event_type: &EventTypeName) -> String {
    format!("{PREFIX}.{domain}.*.*.{event_type}")
}

/// `accord.evt.<domain>.<aggregate>.>`: every event of one kind of aggregate.
pub fn aggregate_kind_filter(domain: &DomainId, kind: AggregateKind) -> String {
    format!("{PREFIX}.{domain}.{kind}.>")
}

#[cfg(test)]
#[path = "subject/tests.rs"]
mod tests;
