//! Value types shared by many events: timestamps, digests, keys, actors, trace context.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ids::{IdError, KeyId};

/// A UTC instant with microsecond precision, written `2026-11-26T09:03:19.123456Z` (always six
/// fractional digits, always `Z`), so that one instant has exactly one spelling in canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Truncates to microseconds and converts to UTC.
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let micros = t.microsecond();
        Self(t.replace_nanosecond(micros * 1000).unwrap_or(t))
    }
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }
    /// Seconds since the Unix epoch, micros truncated.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
            .ok()
            .map(Self)
    }
    pub fn unix_micros(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1000) as i64
    }
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "timestamp";
        let b = s.as_bytes();
        // YYYY-MM-DDTHH:MM:SS.ffffffZ
        if b.len() != 27 || b[19] != b'.' || b[26] != b'Z' || b[10] != b'T' {
            return Err(IdError::Malformed {
                kind: KIND,
                reason: "not YYYY-MM-DDTHH:MM:SS.ffffffZ",
            });
        }
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| IdError::Malformed {
            kind: KIND,
            reason: "not an RFC 3339 instant",
        })?;
        Ok(Self(t))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}
impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}
impl TryFrom<String> for Timestamp {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}
impl FromStr for Timestamp {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
            "description": "UTC instant, microseconds, always six fractional digits"
        })
    }
}

/// A SHA-256 digest, written `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn sha256(data: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "digest";
        let hex = s.strip_prefix("sha256:").ok_or(IdError::Malformed {
            kind: KIND,
            reason: "does not start with sha256:",
        })?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IdError::Malformed {
                kind: KIND,
                reason: "not 64 lowercase hex digits",
            });
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16).unwrap_or(0) as u8;
            let lo = (chunk[1] as char).to_digit(16).unwrap_or(0) as u8;
            out[i] = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}
impl TryFrom<String> for Digest {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}
impl JsonSchema for Digest {
    fn schema_name() -> Cow<'static, str> {
        "Digest".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^sha256:[0-9a-f]{64}$" })
    }
}

/// A public key as a JSON Web Key (RFC 7517). Only public members; private members (`d`,
/// `p`, `q`, ...) are rejected by `deny_unknown_fields`, so a private key cannot be recorded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// An Ed25519 public key of the domain (event signing, audit checkpoints), named by its
/// RFC 7638 thumbprint.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainKey {
    pub kid: KeyId,
    /// Always `Ed25519`.
    pub alg: String,
    /// The raw 32-byte public key, base64url without padding (the JWK `x`).
    pub public_key: String,
}

/// How the caller of a command was classified (draft §4.4: human via browser, human via API,
/// AI agent, device), plus the domain's own services.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerType {
    HumanBrowser,
    HumanApi,
    Agent,
    Device,
    /// Another service of this domain.
    Service,
    /// The domain itself (genesis, sweeps, policy-triggered revocations).
    System,
    /// A local operator using the `accord` CLI with the domain's service credentials.
    Operator,
}

/// How the caller authenticated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Mtls,
    OauthBearer,
    JwtAssertion,
    ApiKey,
    Password,
    PreSharedSecret,
    NatsCredentials,
    /// Holder of the domain's service credentials on the local machine.
    LocalOperator,
    /// No authentication (only for `System` actions taken by the domain itself).
    None,
}

/// Who caused an event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// A SPIFFE ID, an OAuth `sub`, `operator:<name>` or `system:<component>`; at most 512 bytes.
    pub subject: String,
    pub caller_type: CallerType,
    pub auth_methods: Vec<AuthMethod>,
}

impl Actor {
    pub fn system(component: &str) -> Self {
        Self {
            subject: format!("system:{component}"),
            caller_type: CallerType::System,
            auth_methods: vec![AuthMethod::None],
        }
    }
    pub fn operator(name: &str) -> Self {
        Self {
            subject: format!("operator:{name}"),
            caller_type: CallerType::Operator,
            auth_methods: vec![AuthMethod::LocalOperator],
        }
    }
}

/// A W3C Trace Context `traceparent` header value (version 00).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent(String);

impl TraceParent {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "traceparent";
        let bad = IdError::Malformed {
            kind: KIND,
            reason: "not 00-<32 hex>-<16 hex>-<2 hex>",
        };
        let parts: Vec<&str> = s.split('-').collect();
        let hex = |p: &str, n: usize| {
            p.len() == n
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if parts.len() != 4
            || parts[0] != "00"
            || !hex(parts[1], 32)
            || !hex(parts[2], 16)
            || !hex(parts[3], 2)
        {
            return Err(bad);
        }
        if parts[1].bytes().all(|b| b == b'0') || parts[2].bytes().all(|b| b == b'0') {
            return Err(IdError::Malformed {
                kind: KIND,
                reason: "all-zero trace or span id",
            });
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }
    pub fn span_id(&self) -> &str {
        &self.0[36..52]
    }
}
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.0)
    }
}
impl TryFrom<String> for TraceParent {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<TraceParent> for String {
    fn from(t: TraceParent) -> String {
        t.0
    }
}
impl JsonSchema for TraceParent {
    fn schema_name() -> Cow<'static, str> {
        "TraceParent".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" })
    }
}

#[cfg(test)]
#[path = "common/tests.rs"]
mod tests;
