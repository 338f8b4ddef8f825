//! Identifier newtypes. Each one parses once, at the edge; afterwards it can never hold a
//! NATS subject separator (`.`), a wildcard (`*`, `>`) or whitespace, so building a subject
//! from it cannot widen a filter or smuggle an extra token.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} bytes")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} has a forbidden character at byte {pos}")]
    BadChar { kind: &'static str, pos: usize },
    #[error("{kind} is malformed: {reason}")]
    Malformed {
        kind: &'static str,
        reason: &'static str,
    },
}

fn check_chars(
    kind: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(usize, u8) -> bool,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if let Some(pos) = s.bytes().enumerate().position(|(i, b)| !allowed(i, b)) {
        return Err(IdError::BadChar { kind, pos });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $pattern:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The regular expression every value matches (also in the JSON Schema).
            pub const PATTERN: &'static str = $pattern;
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)?;
                Ok(Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern, "description": $kind })
            }
        }
    };
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

string_id!(
    /// Subject-safe name of a trust domain (`org-a`): a DNS label, used in subjects and as the
    /// JetStream domain.
    DomainId,
    "domain id",
    "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    |s| {
        check_chars("domain id", s, 63, |_, b| is_lower_alnum(b) || b == b'-')?;
        if s.starts_with('-') || s.ends_with('-') {
            return Err(IdError::Malformed {
                kind: "domain id",
                reason: "starts or ends with '-'",
            });
        }
        Ok(())
    }
);

string_id!(
    /// DNS-style name of a trust domain (`org-a.example`), as in SPIFFE IDs.
    TrustDomain,
    "trust domain",
    "^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$",
    |s| {
        check_chars("trust domain", s, 255, |_, b| {
            is_lower_alnum(b) || b == b'-' || b == b'_' || b == b'.'
        })?;
        if s.split('.').any(str::is_empty) {
            return Err(IdError::Malformed {
                kind: "trust domain",
                reason: "empty label",
            });
        }
        Ok(())
    }
);

string_id!(
    /// The id token of an aggregate in a subject: a UUID, a shard number, a domain id.
    AggregateId,
    "aggregate id",
    "^[A-Za-z0-9_-]{1,128}$",
    |s| check_chars("aggregate id", s, 128, |_, b| b.is_ascii_alphanumeric()
        || b == b'-'
        || b == b'_')
);

string_id!(
    /// The name of an event type as it appears in a subject and an envelope (`CredentialIssued`).
    EventTypeName,
    "event type",
    "^[A-Z][A-Za-z0-9]{0,63}$",
    |s| check_chars("event type", s, 64, |i, b| if i == 0 {
        b.is_ascii_uppercase()
    } else {
        b.is_ascii_alphanumeric()
    })
);

string_id!(
    /// RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a public key: how
    /// keys are named in signatures and pinned by verifiers.
    KeyId,
    "key id",
    "^[A-Za-z0-9_-]{43}$",
    |s| {
        check_chars("key id", s, 43, |_, b| b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'_')?;
        if s.len() != 43 {
            return Err(IdError::Malformed {
                kind: "key id",
                reason: "not 43 base64url characters",
            });
        }
        Ok(())
    }
);

string_id!(
    /// Serial number of an X.509 certificate, lowercase hex without separators.
    CredentialSerial,
    "credential serial",
    "^[0-9a-f]{2,40}$",
    |s| {
        check_chars("credential serial", s, 40, |_, b| b.is_ascii_digit()
            || (b'a'..=b'f').contains(&b))?;
        if s.len() % 2 != 0 {
            return Err(IdError::Malformed {
                kind: "credential serial",
                reason: "odd number of hex digits",
            });
        }
        Ok(())
    }
);

string_id!(
    /// A token id (`jti`).
    Jti,
    "token id",
    "^[A-Za-z0-9_-]{1,128}$",
    |s| check_chars("token id", s, 128, |_, b| b.is_ascii_alphanumeric()
        || b == b'-'
        || b == b'_')
);

string_id!(
    /// Name of a trust anchor, attestation verifier, provider or identity provider, chosen by
    /// the operator (`acme-tpm-ca`).
    MaterialId,
    "material id",
    "^[a-z0-9][a-z0-9_-]{0,62}$",
    |s| check_chars("material id", s, 63, |i, b| if i == 0 {
        is_lower_alnum(b)
    } else {
        is_lower_alnum(b) || b == b'-' || b == b'_'
    })
);

/// A SPIFFE ID: `spiffe://<trust-domain>/<path>`, path segments of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    full: String,
    td_end: usize,
}

impl SpiffeId {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "SPIFFE ID";
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind: KIND,
                max: Self::MAX_LEN,
            });
        }
        let rest = s.strip_prefix("spiffe://").ok_or(IdError::Malformed {
            kind: KIND,
            reason: "scheme is not spiffe://",
        })?;
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        TrustDomain::parse(td)?;
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return Err(IdError::Malformed {
                        kind: KIND,
                        reason: "empty or dot path segment",
                    });
                }
                if !seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
                {
                    return Err(IdError::Malformed {
                        kind: KIND,
                        reason: "forbidden character in path",
                    });
                }
            }
        }
        Ok(Self {
            full: s.to_owned(),
            td_end: "spiffe://".len() + td.len(),
        })
    }

    /// The SPIFFE ID the ACA gives an agent: `spiffe://<trust-domain>/agent/<id>`.
    pub fn for_agent(td: &TrustDomain, agent: &AgentId) -> Self {
        let full = format!("spiffe://{td}/agent/{agent}");
        Self {
            td_end: "spiffe://".len() + td.as_str().len(),
            full,
        }
    }

    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.full["spiffe://".len()..self.td_end].to_owned())
    }

    pub fn path(&self) -> &str {
        &self.full[self.td_end..]
    }

    /// The agent id, when this is an agent's SPIFFE ID.
    pub fn agent_id(&self) -> Option<AgentId> {
        self.path()
            .strip_prefix("/agent/")
            .and_then(|id| AgentId::parse(id).ok())
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<SpiffeId> for String {
    fn from(v: SpiffeId) -> String {
        v.full
    }
}
impl FromStr for SpiffeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}
impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", self.full)
    }
}
impl JsonSchema for SpiffeId {
    fn schema_name() -> Cow<'static, str> {
        "SpiffeId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "uri", "pattern": "^spiffe://", "maxLength": 2048 })
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $version:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the hyphenated lowercase form only (one spelling per id).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let u = parse_uuid($kind, s)?;
                let required: Option<usize> = $version;
                if let Some(v) = required {
                    if u.get_version_num() != v {
                        return Err(IdError::Malformed { kind: $kind, reason: "wrong UUID version" });
                    }
                }
                Ok(Self(u))
            }
            pub fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.to_string()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": $kind,
                    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
                })
            }
        }
    };
}

fn parse_uuid(kind: &'static str, s: &str) -> Result<Uuid, IdError> {
    let ok_shape = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if !ok_shape {
        return Err(IdError::Malformed {
            kind,
            reason: "not a lowercase hyphenated UUID",
        });
    }
    Uuid::parse_str(s).map_err(|_| IdError::Malformed {
        kind,
        reason: "not a UUID",
    })
}

uuid_id!(
    /// An agent's identifier, a UUIDv7 assigned by the ACA at provisioning.
    AgentId,
    "agent id",
    Some(7)
);
uuid_id!(
    /// The id of a command; the ids of the events it yields are derived from it.
    CommandId,
    "command id",
    None
);
uuid_id!(
    /// An event's id; also its `Nats-Msg-Id`.
    EventId,
    "event id",
    None
);
uuid_id!(
    /// Groups the events of one business transaction across aggregates and domains.
    CorrelationId,
    "correlation id",
    None
);

/// Namespace of derived event ids (UUIDv5 over the command id and the event's index).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_bytes([
    0x6a, 0x1c, 0x4e, 0x02, 0x9b, 0x57, 0x4d, 0x8e, 0xa1, 0x30, 0x3f, 0x0c, 0x5e, 0x77, 0x21, 0xd4,
]);

impl EventTypeName {
    /// A name from the catalogue; every catalogue name is checked to parse by a unit test.
    pub(crate) fn from_catalogue(name: &'static str) -> Self {
        Self(name.to_owned())
    }
}

impl AgentId {
    /// A fresh UUIDv7 (time-ordered).
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

impl CommandId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl CorrelationId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl EventId {
    /// The id of the `index`-th event yielded by `command`. Deterministic, so a retried command
    /// produces the same `Nats-Msg-Id`s and JetStream's duplicate window can recognise them.
    pub fn derive(command: &CommandId, index: u32) -> Self {
        let mut name = [0u8; 20];
        name[..16].copy_from_slice(command.0.as_bytes());
        name[16..].copy_from_slice(&index.to_be_bytes());
        Self(Uuid::new_v5(&EVENT_ID_NAMESPACE, &name))
    }
}

#[cfg(test)]
#[path = "ids/tests.rs"]
mod tests;
