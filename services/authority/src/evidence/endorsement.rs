//! The provider's endorsement (draft §3.1): a JWS by a trusted agent provider vouching for one
//! agent build (its key, name, version and AI bill of materials) and naming the capabilities
//! the provider endorses for it. The ACA grants only those the provider may endorse
//! (`ProviderAdded.endorsable_capabilities`).
//!
//! # Wire contract
//!
//! A compact JWS (RFC 7515), checked by [`crate::jws::verify`]:
//!
//! - header: `alg` = the provider key's algorithm (ES256, EdDSA or RS256); `typ` =
//!   `accord-endorsement+jwt`; `kid` (required) = the key's JWK `kid`, or its RFC 7638
//!   thumbprint; no other member.
//! - claims, all required (others are ignored):
//!
//! | claim | value |
//! |---|---|
//! | `iss` | the provider id (`ProviderAdded.provider_id`); the key must be one of its keys |
//! | `cnf` | `{"jkt": "<RFC 7638 thumbprint of the agent's public key, base64url>"}` |
//! | `agent_name` | the agent's name |
//! | `agent_version` | the agent's version |
//! | `aibom_digest` | `sha256:<64 lowercase hex>` of the AIBOM document |
//! | `capabilities` | array of strings (at most [`MAX_CAPABILITIES`], each 1 to [`MAX_CAPABILITY_BYTES`] bytes) |
//! | `iat`, `exp` | NumericDate; `exp - iat` at most one year |

use std::collections::BTreeSet;

use accord_events::common::PublicJwk;
use accord_events::{Digest, KeyId, MaterialId};
use serde_json::{Map, Value, json};

use crate::jws::{self, JwsError, VerifyingKey};

pub const TYP_ENDORSEMENT: &str = "accord-endorsement+jwt";
/// Longest endorsement accepted, `exp - iat`, seconds.
pub const MAX_LIFETIME_SECS: i64 = 365 * 24 * 3600;
pub const MAX_CAPABILITIES: usize = 64;
pub const MAX_CAPABILITY_BYTES: usize = 128;

/// A trusted agent provider (`ProviderAdded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub id: MaterialId,
    pub keys: Vec<PublicJwk>,
    pub endorsable: BTreeSet<String>,
}

/// What the endorsement must be about: the agent as its request presents it.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// RFC 7638 thumbprint of the key the agent asks a certificate for.
    pub key_thumbprint: &'a KeyId,
    pub agent_name: &'a str,
    pub agent_version: &'a str,
    pub aibom_digest: &'a Digest,
}

/// A verified endorsement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorsement {
    pub provider_id: MaterialId,
    /// The token's capabilities that the provider may endorse.
    pub capabilities: BTreeSet<String>,
    /// SHA-256 of the token.
    pub digest: Digest,
}

/// Why an endorsement was refused; each names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndorsementError {
    #[error("endorsement token: {0}")]
    Token(JwsError),
    #[error("provider {0:?} is not trusted")]
    UnknownProvider(String),
    #[error("the token's kid names no key of its provider")]
    UnknownKey,
    #[error("the token's key belongs to provider {0}, not to its issuer")]
    ForeignKey(String),
    #[error("the endorsement is for another agent key (cnf.jkt)")]
    WrongKey,
    #[error("the endorsement is for another agent name")]
    WrongName,
    #[error("the endorsement is for another agent version")]
    WrongVersion,
    #[error("the endorsement is for another AIBOM")]
    WrongAibom,
    #[error("claims: {0}")]
    Claim(String),
}

impl EndorsementError {
    /// A stable name for problem documents and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(JwsError::Expired) => "endorsement-expired",
            Self::Token(_) => "endorsement-token",
            Self::UnknownProvider(_) => "endorsement-unknown-provider",
            Self::UnknownKey => "endorsement-unknown-key",
            Self::ForeignKey(_) => "endorsement-foreign-key",
            Self::WrongKey => "endorsement-wrong-key",
            Self::WrongName => "endorsement-wrong-name",
            Self::WrongVersion => "endorsement-wrong-version",
            Self::WrongAibom => "endorsement-wrong-aibom",
            Self::Claim(_) => "endorsement-claim",
        }
    }
}

/// Verifies an endorsement token against the trusted providers and what the request
/// presents, at `now` (Unix seconds).
pub fn verify(
    token: &str,
    providers: &[Provider],
    expected: &Expected<'_>,
    now: i64,
) -> Result<Endorsement, EndorsementError> {
    // 1. the issuer names the provider; the kid picks among that provider's keys only
    let iss = jws::peek_iss(token)
        .map_err(EndorsementError::Token)?
        .ok_or_else(|| EndorsementError::Claim("iss is required".into()))?;
    let provider = providers
        .iter()
        .find(|p| p.id.as_str() == iss)
        .ok_or_else(|| EndorsementError::UnknownProvider(iss.clone()))?;
    let kid = jws::peek_kid(token)
        .map_err(EndorsementError::Token)?
        .ok_or(EndorsementError::UnknownKey)?;
    let names = |jwk: &PublicJwk| {
        jwk.kid.as_deref() == Some(kid.as_str())
            || jws::thumbprint(jwk).is_ok_and(|t| t.as_str() == kid)
    };
    let Some(jwk) = provider.keys.iter().find(|k| names(k)) else {
        return Err(match providers.iter().find(|p| p.keys.iter().any(names)) {
            Some(other) => EndorsementError::ForeignKey(other.id.to_string()),
            None => EndorsementError::UnknownKey,
        });
    };
    let key = VerifyingKey::from_jwk(jwk).map_err(EndorsementError::Token)?;

    // 2. the signature, type and time
    let claims = jws::verify(token, TYP_ENDORSEMENT, &key, now)
        .map_err(EndorsementError::Token)?
        .claims;

    // 3. every claim about the agent is the request's
    let text = |name: &str| -> Result<&str, EndorsementError> {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| EndorsementError::Claim(format!("{name} is required as a string")))
    };
    if text("iss")? != provider.id.as_str() {
        return Err(EndorsementError::UnknownProvider(iss));
    }
    let jkt = claims
        .get("cnf")
        .and_then(Value::as_object)
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str)
        .ok_or_else(|| EndorsementError::Claim("cnf.jkt is required".into()))?;
    if jkt != expected.key_thumbprint.as_str() {
        return Err(EndorsementError::WrongKey);
    }
    if text("agent_name")? != expected.agent_name {
        return Err(EndorsementError::WrongName);
    }
    if text("agent_version")? != expected.agent_version {
        return Err(EndorsementError::WrongVersion);
    }
    if text("aibom_digest")? != expected.aibom_digest.to_string() {
        return Err(EndorsementError::WrongAibom);
    }
    lifetime(&claims)?;
    let capabilities = capabilities(&claims)?
        .intersection(&provider.endorsable)
        .cloned()
        .collect();

    Ok(Endorsement {
        provider_id: provider.id.clone(),
        capabilities,
        digest: Digest::sha256(token.as_bytes()),
    })
}

/// The claims of an endorsement (for the provider's side, and tests).
pub fn claims(
    provider: &MaterialId,
    expected: &Expected<'_>,
    capabilities: &[&str],
    iat: i64,
    exp: i64,
) -> Value {
    json!({
        "iss": provider.as_str(),
        "cnf": {"jkt": expected.key_thumbprint.as_str()},
        "agent_name": expected.agent_name,
        "agent_version": expected.agent_version,
        "aibom_digest": expected.aibom_digest.to_string(),
        "capabilities": capabilities,
        "iat": iat,
        "exp": exp,
    })
}

fn lifetime(claims: &Map<String, Value>) -> Result<(), EndorsementError> {
    let int = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| EndorsementError::Claim(format!("{name} is required as an integer")))
    };
    let (iat, exp) = (int("iat")?, int("exp")?);
    if exp.saturating_sub(iat) > MAX_LIFETIME_SECS {
        return Err(EndorsementError::Claim(
            "exp is more than a year after iat".into(),
        ));
    }
    Ok(())
}

fn capabilities(claims: &Map<String, Value>) -> Result<BTreeSet<String>, EndorsementError> {
    let bad = |why: &str| EndorsementError::Claim(format!("capabilities: {why}"));
    let list = claims
        .get("capabilities")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("required as an array"))?;
    if list.len() > MAX_CAPABILITIES {
        return Err(bad("too many"));
    }
    list.iter()
        .map(|c| match c.as_str() {
            Some(s) if !s.is_empty() && s.len() <= MAX_CAPABILITY_BYTES => Ok(s.to_owned()),
            _ => Err(bad("each must be a string of 1 to 128 bytes")),
        })
        .collect()
}

#[cfg(test)]
#[path = "endorsement/tests.rs"]
mod tests;
