//! Every event type Accord writes, with its current version and its aggregate kind.
//!
//! Events are past-tense facts and never change once written. A change of shape is a new
//! version of the type plus an upcaster (in [`upcast`]) from the previous version; golden
//! fixtures of every version ever written (`events/fixtures/`) must keep decoding.

pub mod agent;
pub mod audit;
pub mod domain;
pub mod federation;
pub mod policy;
pub mod registry;
pub mod token;
pub mod trust;

use schemars::Schema;
use serde_json::Value;

use crate::subject::AggregateKind;

pub use agent::*;
pub use audit::*;
pub use domain::*;
pub use federation::*;
pub use policy::*;
pub use registry::*;
pub use token::*;
pub use trust::*;

/// Why event data could not be decoded into a known event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event type {event_type} has no version {version} (current is {current})")]
    UnknownVersion {
        event_type: &'static str,
        version: u32,
        current: u32,
    },
    #[error("event {event_type} v{version}: {source}")]
    Data {
        event_type: &'static str,
        version: u32,
        source: serde_json::Error,
    },
}

/// What the catalogue knows about one event type.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    pub name: &'static str,
    pub version: u32,
    pub aggregate: AggregateKind,
    pub schema: fn() -> Schema,
}

macro_rules! catalogue {
    ($( $variant:ident ( v $ver:literal, $kind:ident ) ),* $(,)?) => {
        /// A decoded event, at its current version.
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub enum Event {
            $( $variant($variant), )*
        }

        /// The whole catalogue, in declaration order.
        pub const CATALOGUE: &[Descriptor] = &[
            $( Descriptor {
                name: stringify!($variant),
                version: $ver,
                aggregate: AggregateKind::$kind,
                schema: || schemars::schema_for!($variant),
            }, )*
        ];

        impl Event {
            /// The event type name (also the last subject token).
            pub fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => stringify!($variant), )* }
            }

            /// The version this value is written as (always the current one).
            pub fn version(&self) -> u32 {
                match self { $( Self::$variant(_) => $ver, )* }
            }

            /// The kind of aggregate this event belongs to.
            pub fn aggregate_kind(&self) -> AggregateKind {
                match self { $( Self::$variant(_) => AggregateKind::$kind, )* }
            }

            /// The `data` member of the envelope.
            pub fn to_data(&self) -> Value {
                let v = match self {
                    $( Self::$variant(d) => serde_json::to_value(d), )*
                };
                // Serialising these plain data types into a Value cannot fail: no maps with
                // non-string keys, no custom serialisers that error.
                v.unwrap_or(Value::Null)
            }

            /// Decodes `data` written as `event_type` at `version`, upcasting older versions.
            pub fn from_data(event_type: &str, version: u32, data: Value) -> Result<Self, DecodeError> {
                Self::from_data_ref(event_type, version, &data)
            }

            /// [`Event::from_data`] without taking `data`: current versions deserialise straight
            /// from the borrowed value (no copy of the tree).
            pub fn from_data_ref(event_type: &str, version: u32, data: &Value) -> Result<Self, DecodeError> {
                use serde::Deserialize as _;
                match event_type {
                    $( stringify!($variant) => {
                        const NAME: &str = stringify!($variant);
                        let decoded = if version == $ver {
                            $variant::deserialize(data)
                        } else if version < $ver && version > 0 {
                            let upcast = upcast::to_current(NAME, version, $ver, data.clone())?;
                            $variant::deserialize(&upcast)
                        } else {
                            return Err(DecodeError::UnknownVersion { event_type: NAME, version, current: $ver });
                        };
                        decoded
                            .map(Self::$variant)
                            .map_err(|source| DecodeError::Data { event_type: NAME, version, source })
                    } )*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(d: $variant) -> Self { Self::$variant(d) }
            }
        )*
    };
}

catalogue! {
    DomainCreated(v 1, Domain),
    TrustAnchorAdded(v 1, Trust),
    TrustAnchorRemoved(v 1, Trust),
    AttestationVerifierAdded(v 1, Trust),
    AttestationVerifierRemoved(v 1, Trust),
    ProviderAdded(v 1, Trust),
    ProviderRemoved(v 1, Trust),
    IdentityProviderAdded(v 1, Trust),
    IdentityProviderRemoved(v 1, Trust),
    AibomDenyListSet(v 1, Trust),
    EnvironmentCertificateRevoked(v 1, Trust),
    AgentProvisioned(v 1, Agent),
    CredentialRequested(v 1, Agent),
    CredentialIssued(v 2, Agent),
    CredentialRenewed(v 2, Agent),
    CredentialRevoked(v 1, Agent),
    CredentialExpired(v 1, Agent),
    KeyRotated(v 1, Agent),
    OwnerBound(v 1, Agent),
    OwnerUnbound(v 1, Agent),
    CompromiseReported(v 1, Agent),
    AgentRegistered(v 2, Agent),
    AgentUpdated(v 2, Agent),
    AgentSuspended(v 1, Agent),
    AgentDecommissioned(v 1, Agent),
    RegistrationRejected(v 1, Agent),
    PolicyBundlePublished(v 1, Policy),
    TokenIssued(v 1, Token),
    TokenExchanged(v 1, Token),
    PeerAdded(v 1, Peer),
    PeerRemoved(v 1, Peer),
    IdentifierMapped(v 1, Mapping),
    CheckpointSigned(v 1, Audit),
}

/// As a value (for cqrs-es and tools): `{"type": T, "version": N, "data": {...}}`.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Event", 3)?;
        st.serialize_field("type", self.event_type())?;
        st.serialize_field("version", &self.version())?;
        st.serialize_field("data", &self.to_data())?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Tagged {
            #[serde(rename = "type")]
            event_type: String,
            version: u32,
            data: Value,
        }
        let t = Tagged::deserialize(d)?;
        Event::from_data(&t.event_type, t.version, t.data).map_err(serde::de::Error::custom)
    }
}

impl cqrs_es::DomainEvent for Event {
    fn event_type(&self) -> String {
        Event::event_type(self).to_owned()
    }
    fn event_version(&self) -> String {
        self.version().to_string()
    }
}

impl Event {
    /// The catalogue entry of a type name.
    pub fn descriptor(event_type: &str) -> Option<&'static Descriptor> {
        CATALOGUE.iter().find(|d| d.name == event_type)
    }
}

/// Upcasters: each turns version N of a type into version N+1; a change of shape adds an arm
/// here, and the old version's golden fixture stays under `events/fixtures/`.
pub mod upcast {
    use serde_json::Value;

    use super::DecodeError;

    /// Applies the chain of upcasters from `from` to `current`.
    pub fn to_current(
        event_type: &'static str,
        from: u32,
        current: u32,
        data: Value,
    ) -> Result<Value, DecodeError> {
        let mut data = data;
        let mut v = from;
        while v < current {
            data = step(event_type, v, data)?;
            v += 1;
        }
        Ok(data)
    }

    fn step(event_type: &'static str, version: u32, data: Value) -> Result<Value, DecodeError> {
        match (event_type, version) {
            // v2 added the optional `request` and `owner_bound` (ADR 0013). A v1 event has
            // neither: they were events of their own then, recorded just before it in the same
            // atomic batch, so its data is a v2 with both absent.
            ("CredentialIssued" | "CredentialRenewed", 1) => Ok(data),
            // v2 added `skills`, `audience` and `card` (ADR 0015), each with a default: a v1
            // registration is one without skills, visible to its domain, with the default card
            // fields; a v1 update changed none of them
            ("AgentRegistered" | "AgentUpdated", 1) => Ok(data),
            _ => Err(DecodeError::UnknownVersion {
                event_type,
                version,
                current: version + 1,
            }),
        }
    }
}
