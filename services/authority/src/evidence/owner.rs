//! The owner binding (draft §3.1): on whose behalf the agent acts, and the scope that caps its
//! capabilities. Two proofs are accepted:
//!
//! - an **OIDC ID token** from a trusted owner identity provider (`IdentityProviderAdded`):
//!   a JWS with `typ` absent, `JWT` or `application/jwt`; the key picked by `kid` among the
//!   keys of the IdPs whose `issuer` is the token's `iss` (exact string; a token without `kid`
//!   is accepted when that IdP has one key), its algorithm from the key (ES256, EdDSA, RS256);
//!   `aud` (string or array) containing one of the IdP's audiences; `exp` and `iat` required,
//!   `iat` at most [`MAX_ID_TOKEN_AGE_SECS`] old; `sub` of 1 to 255 bytes; `nonce` required: an
//!   owner nonce the ACA issued for the agent (`POST /v1/agents/{id}/owner-nonce`), which the
//!   caller spends once the whole request's evidence verified, so that a token binds one
//!   agent, once (review 2026-12, finding 8: a bare ID token was a bearer assertion anyone who
//!   saw it could bind any agent with). The scope is the `scope` claim (space-separated, RFC
//!   6749 §3.3); an absent `scope` is an EMPTY scope, never an unconstrained one.
//! - a **role grant** signed by the domain's token key: `typ` `accord-role-grant+jwt`; claims
//!   `iss` (the domain issuer, `spiffe://<trust-domain>`), `sub` (the role name), `aud` (the
//!   one agent's SPIFFE ID), `scope`, `iat`, `exp` and `jti`, all required.
//!
//! Expiry of either surfaces as [`OwnerError::Expired`].

use std::collections::BTreeSet;

use accord_events::catalogue::{Owner, OwnerBindingKind};
use accord_events::common::PublicJwk;
use accord_events::{Digest, Jti, MaterialId, SpiffeId};
use serde_json::{Map, Value};

use crate::jws::{self, JwsError, VerifyingKey};

pub const TYP_ROLE_GRANT: &str = "accord-role-grant+jwt";
/// Longest `sub` (owner subject or role name), bytes.
pub const MAX_SUBJECT_BYTES: usize = 255;
/// Most scope tokens read, and the longest one, bytes.
pub const MAX_SCOPES: usize = 64;
pub const MAX_SCOPE_BYTES: usize = 128;
/// Most `aud` entries read.
pub const MAX_AUDIENCES: usize = 16;
/// Oldest ID token accepted (by `iat`), seconds.
pub const MAX_ID_TOKEN_AGE_SECS: i64 = 600;
/// Longest `nonce` claim read, bytes.
pub const MAX_NONCE_BYTES: usize = 128;

/// A trusted owner identity provider (`IdentityProviderAdded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idp {
    pub id: MaterialId,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: Vec<PublicJwk>,
}

/// A verified owner binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerBinding {
    pub owner: Owner,
    /// The cap on the agent's capabilities (empty when the token names none).
    pub scope: BTreeSet<String>,
    /// SHA-256 of the ID token or role grant.
    pub evidence: Digest,
    /// The identity provider that vouched for the owner (`None` for a role grant).
    pub against: Option<MaterialId>,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
    /// An ID token's `nonce`: the owner nonce the caller must spend for this agent (`None` for
    /// a role grant, which the domain signed for one agent).
    pub nonce: Option<String>,
}

/// Why an owner binding was refused; each names one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("owner token: {0}")]
    Token(JwsError),
    #[error("issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    #[error("the token is for another audience")]
    Audience,
    #[error("the owner token has expired")]
    Expired,
    #[error("the token's kid names no key of its issuer")]
    UnknownKey,
    #[error("claims: {0}")]
    Claim(String),
    #[error("the ID token carries no owner nonce (ask POST /v1/agents/{{id}}/owner-nonce)")]
    NoNonce,
    #[error("the ID token was issued more than {MAX_ID_TOKEN_AGE_SECS} s ago")]
    Stale,
}

impl OwnerError {
    /// A stable name for problem documents and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "owner-token",
            Self::UntrustedIssuer(_) => "owner-untrusted-issuer",
            Self::Audience => "owner-audience",
            Self::Expired => "owner-expired",
            Self::UnknownKey => "owner-unknown-key",
            Self::Claim(_) => "owner-claim",
            Self::NoNonce => "owner-nonce-missing",
            Self::Stale => "owner-stale",
        }
    }
}

fn token_error(e: JwsError) -> OwnerError {
    match e {
        JwsError::Expired => OwnerError::Expired,
        e => OwnerError::Token(e),
    }
}

/// Verifies an OIDC ID token from one of the trusted identity providers at `now` (Unix
/// seconds).
pub fn verify_id_token(token: &str, idps: &[Idp], now: i64) -> Result<OwnerBinding, OwnerError> {
    // 1. the issuer picks the IdPs; the kid picks among their keys only
    let iss = jws::peek_iss(token)
        .map_err(OwnerError::Token)?
        .ok_or_else(|| OwnerError::Claim("iss is required".into()))?;
    let candidates: Vec<&Idp> = idps.iter().filter(|i| i.issuer == iss).collect();
    if candidates.is_empty() {
        return Err(OwnerError::UntrustedIssuer(iss));
    }
    let kid = jws::peek_kid(token).map_err(OwnerError::Token)?;
    let (idp, jwk) = pick_key(&candidates, kid.as_deref()).ok_or(OwnerError::UnknownKey)?;
    let key = VerifyingKey::from_jwk(jwk).map_err(OwnerError::Token)?;

    // 2. signature, type (an untyped JWT), time
    let claims = jws::verify_jwt(token, &key, now)
        .map_err(token_error)?
        .claims;

    // 3. issuer, audience, subject, scope
    if text(&claims, "iss")? != idp.issuer {
        return Err(OwnerError::UntrustedIssuer(iss));
    }
    let aud = audiences(&claims)?;
    if !aud.iter().any(|a| idp.audiences.iter().any(|x| x == a)) {
        return Err(OwnerError::Audience);
    }
    // fresh, and for one agent once: the nonce is looked up and spent by the caller
    if int(&claims, "iat")? < now.saturating_sub(MAX_ID_TOKEN_AGE_SECS) {
        return Err(OwnerError::Stale);
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_BYTES)
        .ok_or(OwnerError::NoNonce)?
        .to_owned();
    let subject = subject(&claims)?;
    let scope = match claims.get("scope") {
        None => BTreeSet::new(),
        Some(_) => scope(&claims)?,
    };
    Ok(OwnerBinding {
        owner: Owner {
            subject,
            issuer: idp.issuer.clone(),
            kind: OwnerBindingKind::IdToken,
        },
        scope,
        evidence: Digest::sha256(token.as_bytes()),
        against: Some(idp.id.clone()),
        expires_at: int(&claims, "exp")?,
        nonce: Some(nonce),
    })
}

/// Verifies a role grant the domain signed for `agent`, at `now` (Unix seconds). `issuer` is
/// the domain's (`spiffe://<trust-domain>`), `domain_key` the ACA's token key.
pub fn verify_role_grant(
    token: &str,
    domain_key: &VerifyingKey,
    issuer: &str,
    agent: &SpiffeId,
    now: i64,
) -> Result<OwnerBinding, OwnerError> {
    let claims = jws::verify(token, TYP_ROLE_GRANT, domain_key, now)
        .map_err(token_error)?
        .claims;
    let iss = text(&claims, "iss")?;
    if iss != issuer {
        return Err(OwnerError::UntrustedIssuer(iss.to_owned()));
    }
    // a grant is for one agent
    if audiences(&claims)? != [agent.as_str()] {
        return Err(OwnerError::Audience);
    }
    int(&claims, "iat")?;
    Jti::parse(text(&claims, "jti")?).map_err(|e| OwnerError::Claim(format!("jti: {e}")))?;
    let role = subject(&claims)?;
    let scope = scope(&claims)?;
    Ok(OwnerBinding {
        owner: Owner {
            subject: role,
            issuer: format!("role-grant:{}", agent.trust_domain().as_str()),
            kind: OwnerBindingKind::RoleGrant,
        },
        scope,
        evidence: Digest::sha256(token.as_bytes()),
        against: None,
        expires_at: int(&claims, "exp")?,
        nonce: None,
    })
}

/// The IdP and key a token names: by `kid` (the JWK's `kid` or its RFC 7638 thumbprint), or
/// the only key of the only IdP when the token has no `kid`.
fn pick_key<'a>(idps: &[&'a Idp], kid: Option<&str>) -> Option<(&'a Idp, &'a PublicJwk)> {
    let mut keys = idps
        .iter()
        .flat_map(|i| i.keys.iter().map(move |k| (*i, k)));
    match kid {
        Some(kid) => keys.find(|(_, k)| {
            k.kid.as_deref() == Some(kid) || jws::thumbprint(k).is_ok_and(|t| t.as_str() == kid)
        }),
        None => match (keys.next(), keys.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, OwnerError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| OwnerError::Claim(format!("{name} is required as a string")))
}

fn int(claims: &Map<String, Value>, name: &str) -> Result<i64, OwnerError> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| OwnerError::Claim(format!("{name} is required as an integer")))
}

fn subject(claims: &Map<String, Value>) -> Result<String, OwnerError> {
    let sub = text(claims, "sub")?;
    if sub.is_empty() || sub.len() > MAX_SUBJECT_BYTES {
        return Err(OwnerError::Claim(format!(
            "sub must be 1 to {MAX_SUBJECT_BYTES} bytes"
        )));
    }
    Ok(sub.to_owned())
}

/// `aud`: a string, or an array of strings (RFC 7519 §4.1.3). Absent → no audience.
fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, OwnerError> {
    let bad = || OwnerError::Claim("aud must be a string or an array of strings".into());
    match claims.get("aud") {
        None => Err(OwnerError::Audience),
        Some(Value::String(a)) => Ok(vec![a.as_str()]),
        Some(Value::Array(list)) if list.len() <= MAX_AUDIENCES => {
            list.iter().map(|a| a.as_str().ok_or_else(bad)).collect()
        }
        Some(_) => Err(bad()),
    }
}

/// `scope`: scope tokens separated by spaces (RFC 6749 §3.3), each of `%x21 / %x23-5B /
/// %x5D-7E`.
fn scope(claims: &Map<String, Value>) -> Result<BTreeSet<String>, OwnerError> {
    let bad = |why: &str| OwnerError::Claim(format!("scope: {why}"));
    let text = text(claims, "scope")?;
    let tokens: Vec<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
    if tokens.len() > MAX_SCOPES {
        return Err(bad("too many scope tokens"));
    }
    let char_ok = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    tokens
        .into_iter()
        .map(|t| {
            if t.len() <= MAX_SCOPE_BYTES && t.bytes().all(char_ok) {
                Ok(t.to_owned())
            } else {
                Err(bad(
                    "a scope token is too long or has a forbidden character",
                ))
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "owner/tests.rs"]
mod tests;
