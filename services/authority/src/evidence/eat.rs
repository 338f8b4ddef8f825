//! Attestation evidence (draft §3.1; RATS RFC 9334 background-check model): the agent's
//! environment signs an Entity Attestation Token (RFC 9711) in JWT form with its attestation
//! key, the key of its environment identity certificate; the ACA appraises it against the
//! reference values of one trusted attestation verifier and keeps the outcome, an attestation
//! result with an AR4SI trustworthiness vector, with the credential.
//!
//! # The Accord agent EAT profile (`tag:accord.dev,2026:agent-eat#1`)
//!
//! This is the wire contract between an agent's environment and the ACA.
//!
//! **Token.** A compact JWS (media type `application/eat+jwt`, RFC 9782), at most
//! [`jws::MAX_TOKEN_BYTES`] bytes, checked by [`jws::verify`]:
//! - header: `alg` is the attestation key's (`ES256` for P-256, `EdDSA` for Ed25519; the
//!   header never chooses it), `typ` is `eat+jwt` (or `application/eat+jwt`), `kid` may
//!   appear; no other header member is accepted;
//! - the signature verifies under the attestation key the caller passes in (the key of the
//!   environment identity certificate, already chain-checked by the caller);
//! - no duplicate member at any depth, nesting at most 16 deep.
//!
//! **Claims** (JSON names of RFC 9711 §4 unless said otherwise):
//! - `eat_profile` (required): exactly [`PROFILE`];
//! - `eat_nonce` (required): one string of 8 to 88 characters, equal to the nonce the ACA
//!   issued for this request (an array of nonces, which RFC 9711 allows, is refused in this
//!   profile). Single use is the caller's check;
//! - `iat` (required): integer Unix seconds, at most `max_age_secs` old and not more than
//!   [`jws::SKEW_SECS`] in the future; `exp` (required): integer, not passed by more than
//!   [`jws::SKEW_SECS`]; `nbf`, when present, reached (all three checked by [`jws::verify`]);
//! - `intuse` (optional): certificate issuance only: the RFC 9711 JSON name `"csr"`, its
//!   CBOR-registry integer `4`, or the alias `"certificate-issuance"`; reported as `"csr"`;
//! - `ueid` (optional): base64url without padding, 10 to 44 characters, decoding to a UEID
//!   whose first byte is a type RFC 9711 §4.2.1 defines (0x01 RAND, 0x02 IEEE EUI, 0x03 IMEI);
//! - `dbgstat` (optional): one of the five RFC 9711 JSON names `enabled`, `disabled`,
//!   `disabled-since-boot`, `disabled-permanently`, `disabled-fully-and-permanently`, or the
//!   corresponding integer 0 to 4; reported as the JSON name;
//! - `swname` (optional): a string of 1 to 128 bytes; `swversion` (optional): a string of 1 to
//!   128 bytes, or RFC 9711's `[version, ?scheme]` array (`scheme` an integer), of which the
//!   version string is kept;
//! - `measurements` (required): **a profile-specific JSON form**, not RFC 9711's typed content
//!   list (`[+ [content-type, content-format]]`), which this profile simplifies to what the
//!   reference values of [`accord_events::catalogue::AttestationVerifierAdded`] can match: an
//!   array of 1 to [`MAX_MEASUREMENTS`] objects with exactly two members,
//!   `{"component": "<1 to 64 of [a-z0-9._-]>", "digest": "sha256:<64 lowercase hex>"}`,
//!   component names unique;
//! - every other claim (`submods`, `oemid`, `hwmodel`, private claims, ...) is ignored: EAT is
//!   extensible, and the size bound above caps what may be carried. Submodules are not
//!   appraised: the profile's evidence is the top-level claims set.
//!
//! **Appraisal** against ONE verifier's reference values: every measured component has a
//! reference value (else [`EatError::UnknownComponent`]) and its digest is one of that
//! component's accepted digests (else [`EatError::MeasurementMismatch`]); every reference
//! component is measured (else [`EatError::MissingMeasurement`]). Reference values naming one
//! component twice accept the union of their digests.
//!
//! **Result** (AR4SI tiers, RFC 9334 / draft-ietf-rats-ar4si): `instance_identity` 2 (the
//! signature by the identity certificate's key verified), `executables` 2 (every component
//! matched: a mismatch is an error, never a vector value), `hardware` 2 (the identity
//! certificate chains to a manufacturer CA: the caller only appraises then), `configuration`
//! 2 when `dbgstat` is one of the `disabled*` values, 32 (warning) when `enabled`, absent
//! when `dbgstat` is absent. Nothing else is claimed. The evidence digest is SHA-256 over the
//! token as received.

use std::collections::BTreeMap;

use accord_events::catalogue::{AttestationResult, ReferenceValue, TrustVector};
use accord_events::{Digest, MaterialId, Timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::jws::{self, JwsError, VerifyingKey};

/// `eat_profile` of the Accord agent EAT profile.
pub const PROFILE: &str = "tag:accord.dev,2026:agent-eat#1";
/// JWS `typ` of an EAT in JWT form (media type `application/eat+jwt`).
pub const TYP_EAT: &str = "eat+jwt";
/// Most entries of `measurements`.
pub const MAX_MEASUREMENTS: usize = 64;
/// Longest component name, bytes.
pub const MAX_COMPONENT_LEN: usize = 64;
/// Longest `swname` or `swversion`, bytes.
pub const MAX_SW_LEN: usize = 128;

/// The RFC 9711 `dbgstat` JSON names, in the order of their integer values 0..=4.
const DBGSTAT: [&str; 5] = [
    "enabled",
    "disabled",
    "disabled-since-boot",
    "disabled-permanently",
    "disabled-fully-and-permanently",
];

/// AR4SI: an affirming claim (the standard "approved" value).
const AFFIRMING: i8 = 2;
/// AR4SI: the lowest warning tier.
const WARNING: i8 = 32;

/// What the evidence is appraised against.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The nonce the ACA issued for this request.
    pub nonce: &'a str,
    /// The environment's attestation key (of its chain-checked identity certificate).
    pub key: &'a VerifyingKey,
    pub verifier_id: &'a MaterialId,
    /// The reference values of that verifier (`AttestationVerifierAdded.reference_values`).
    pub reference_values: &'a [ReferenceValue],
    /// Unix seconds.
    pub now: i64,
    /// Freshness window: the oldest `iat` accepted is `now - max_age_secs`.
    pub max_age_secs: i64,
}

/// Appraised evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appraisal {
    /// `evidence` is SHA-256 of the token bytes, `appraised_at` is `now`.
    pub result: AttestationResult,
    /// `dbgstat` as its RFC 9711 JSON name.
    pub dbgstat: Option<String>,
    /// `intuse` as its RFC 9711 JSON name (always `csr` in this profile).
    pub intuse: Option<String>,
    pub ueid: Option<String>,
    pub swname: Option<String>,
    pub swversion: Option<String>,
    /// The measured component names, sorted.
    pub measured: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EatError {
    #[error("attestation token: {0}")]
    Token(JwsError),
    #[error("eat_profile: {0}")]
    Profile(String),
    #[error("eat_nonce is not the nonce issued for this request")]
    Nonce,
    #[error("evidence issued {age} s ago, older than the freshness window")]
    Stale { age: i64 },
    #[error("claim {0}")]
    Claim(String),
    #[error("{0} measurements, more than {MAX_MEASUREMENTS}")]
    TooManyMeasurements(usize),
    #[error("component {0:?} is measured twice")]
    DuplicateComponent(String),
    #[error("component {0:?} has no reference value")]
    UnknownComponent(String),
    #[error("component {component:?} does not match its reference values")]
    MeasurementMismatch { component: String },
    #[error("component {0:?} of the reference values is not measured")]
    MissingMeasurement(String),
    #[error("the clock reads {0}, which is no representable instant")]
    Clock(i64),
}

impl EatError {
    /// A stable short name for problem details and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(JwsError::Signature | JwsError::Algorithm(_) | JwsError::Key(_)) => {
                "eat-signature"
            }
            Self::Token(JwsError::Expired | JwsError::NotYetValid) | Self::Stale { .. } => {
                "eat-stale"
            }
            Self::Token(_) => "eat-malformed",
            Self::Profile(_) => "eat-profile",
            Self::Nonce => "eat-nonce",
            Self::Claim(_) | Self::TooManyMeasurements(_) | Self::DuplicateComponent(_) => {
                "eat-claim"
            }
            Self::UnknownComponent(_)
            | Self::MeasurementMismatch { .. }
            | Self::MissingMeasurement(_) => "eat-measurement",
            Self::Clock(_) => "eat-clock",
        }
    }
}

/// Appraises `token` (an EAT of the Accord profile, see the module documentation) against
/// `exp`.
pub fn appraise(token: &str, exp: &Expectations<'_>) -> Result<Appraisal, EatError> {
    let claims = jws::verify(token, TYP_EAT, exp.key, exp.now)
        .map_err(EatError::Token)?
        .claims;

    match claims.get("eat_profile") {
        Some(Value::String(p)) if p == PROFILE => {}
        Some(Value::String(p)) => return Err(EatError::Profile(format!("{p:?} is not {PROFILE}"))),
        Some(_) => return Err(EatError::Profile("not a string".into())),
        None => return Err(EatError::Profile("absent".into())),
    }

    let nonce = match claims.get("eat_nonce") {
        Some(Value::String(n)) if (8..=88).contains(&n.chars().count()) => n,
        Some(Value::String(_)) => return Err(claim("eat_nonce is not 8 to 88 characters")),
        Some(Value::Array(_)) => return Err(claim("eat_nonce: an array of nonces is refused")),
        Some(_) => return Err(claim("eat_nonce is not a string")),
        None => return Err(claim("eat_nonce is required")),
    };
    if nonce != exp.nonce {
        return Err(EatError::Nonce);
    }

    // jws::verify has checked that iat, when present, is an integer not in the future
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| claim("iat is required"))?;
    let age = exp.now.saturating_sub(iat);
    if age > exp.max_age_secs {
        return Err(EatError::Stale { age });
    }

    let intuse = match claims.get("intuse") {
        None => None,
        Some(v) if v == "csr" || v == "certificate-issuance" || v == 4 => Some("csr".to_owned()),
        Some(_) => return Err(claim("intuse is not certificate issuance")),
    };
    let dbgstat = claims.get("dbgstat").map(dbgstat_of).transpose()?;
    let ueid = claims.get("ueid").map(ueid_of).transpose()?;
    let swname = claims
        .get("swname")
        .map(|v| sw_string(v, "swname"))
        .transpose()?;
    let swversion = claims.get("swversion").map(swversion_of).transpose()?;

    let measured = measurements_of(&claims)?;
    match_reference_values(&measured, exp.reference_values)?;

    let configuration = dbgstat.as_deref().map(|d| match d {
        "enabled" => WARNING,
        _ => AFFIRMING,
    });
    let appraised_at = exp
        .now
        .checked_mul(1_000_000)
        .and_then(Timestamp::from_unix_micros)
        .ok_or(EatError::Clock(exp.now))?;
    Ok(Appraisal {
        result: AttestationResult {
            verifier_id: exp.verifier_id.clone(),
            evidence: Digest::sha256(token.as_bytes()),
            trust_vector: TrustVector {
                instance_identity: Some(AFFIRMING),
                configuration,
                executables: Some(AFFIRMING),
                file_system: None,
                hardware: Some(AFFIRMING),
                runtime_opaque: None,
                storage_opaque: None,
                sourced_data: None,
            },
            appraised_at,
        },
        dbgstat,
        intuse,
        ueid,
        swname,
        swversion,
        measured: measured.into_keys().collect(),
    })
}

/// The claims of a profile-conformant EAT (for the agent side and tests): profile, nonce,
/// `iat`, `exp`, `intuse` certificate issuance and the measurements. Optional claims
/// (`dbgstat`, `ueid`, ...) can be added to the returned object.
pub fn claims(
    nonce: &str,
    measurements: &[(&str, &Digest)],
    iat: i64,
    exp: i64,
) -> serde_json::Value {
    let m: Vec<Value> = measurements
        .iter()
        .map(|(component, digest)| json!({"component": component, "digest": digest.to_string()}))
        .collect();
    json!({
        "eat_profile": PROFILE,
        "eat_nonce": nonce,
        "iat": iat,
        "exp": exp,
        "intuse": "csr",
        "measurements": m,
    })
}

fn claim(reason: &str) -> EatError {
    EatError::Claim(reason.to_owned())
}

fn dbgstat_of(v: &Value) -> Result<String, EatError> {
    let found = match v {
        Value::String(s) => DBGSTAT.iter().find(|d| *d == s),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| DBGSTAT.get(i)),
        _ => None,
    };
    found
        .map(|d| (*d).to_owned())
        .ok_or_else(|| claim("dbgstat is not an RFC 9711 debug status"))
}

fn ueid_of(v: &Value) -> Result<String, EatError> {
    let bad = || claim("ueid is not a base64url UEID of 10 to 44 characters");
    let s = v.as_str().ok_or_else(bad)?;
    if !(10..=44).contains(&s.len()) {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    if !matches!(raw.first(), Some(0x01..=0x03)) {
        return Err(claim("ueid type is not RAND, IEEE EUI or IMEI"));
    }
    Ok(s.to_owned())
}

fn sw_string(v: &Value, name: &str) -> Result<String, EatError> {
    match v.as_str() {
        Some(s) if (1..=MAX_SW_LEN).contains(&s.len()) => Ok(s.to_owned()),
        _ => Err(EatError::Claim(format!(
            "{name} is not a string of 1 to {MAX_SW_LEN} bytes"
        ))),
    }
}

/// `swversion`: a string, or RFC 9711's `[version, ?scheme]`.
fn swversion_of(v: &Value) -> Result<String, EatError> {
    match v {
        Value::Array(a) => match a.as_slice() {
            [version] => sw_string(version, "swversion"),
            [version, scheme] if scheme.is_i64() => sw_string(version, "swversion"),
            _ => Err(claim("swversion is not [version, ?scheme]")),
        },
        v => sw_string(v, "swversion"),
    }
}

fn component_name_ok(s: &str) -> bool {
    (1..=MAX_COMPONENT_LEN).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// The `measurements` claim: component name → digest.
fn measurements_of(claims: &Map<String, Value>) -> Result<BTreeMap<String, Digest>, EatError> {
    let list = match claims.get("measurements") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(claim("measurements is not an array")),
        None => return Err(claim("measurements is required")),
    };
    if list.is_empty() {
        return Err(claim("measurements is empty"));
    }
    if list.len() > MAX_MEASUREMENTS {
        return Err(EatError::TooManyMeasurements(list.len()));
    }
    let mut out = BTreeMap::new();
    for entry in list {
        let bad = || claim("a measurement is not {\"component\", \"digest\"}");
        let m = entry.as_object().ok_or_else(bad)?;
        if m.len() != 2 {
            return Err(bad());
        }
        let (Some(Value::String(component)), Some(Value::String(digest))) =
            (m.get("component"), m.get("digest"))
        else {
            return Err(bad());
        };
        if !component_name_ok(component) {
            return Err(claim(
                "a measurement's component is not 1 to 64 of [a-z0-9._-]",
            ));
        }
        let digest = Digest::parse(digest)
            .map_err(|_| claim("a measurement's digest is not sha256:<64 lowercase hex>"))?;
        if out.insert(component.clone(), digest).is_some() {
            return Err(EatError::DuplicateComponent(component.clone()));
        }
    }
    Ok(out)
}

/// Every measured component has a reference value its digest is one of, and every reference
/// component is measured.
fn match_reference_values(
    measured: &BTreeMap<String, Digest>,
    reference: &[ReferenceValue],
) -> Result<(), EatError> {
    let mut accepted: BTreeMap<&str, Vec<&Digest>> = BTreeMap::new();
    for r in reference {
        accepted
            .entry(r.component.as_str())
            .or_default()
            .extend(&r.digests);
    }
    for (component, digest) in measured {
        let digests = accepted
            .get(component.as_str())
            .ok_or_else(|| EatError::UnknownComponent(component.clone()))?;
        if !digests.contains(&digest) {
            return Err(EatError::MeasurementMismatch {
                component: component.clone(),
            });
        }
    }
    match accepted.keys().find(|c| !measured.contains_key(**c)) {
        Some(missing) => Err(EatError::MissingMeasurement((*missing).to_owned())),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "eat/tests.rs"]
mod tests;
