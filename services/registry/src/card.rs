//! A2A Agent Cards (A2A v1.0 §8.4, ADR 0015): each registered agent's card, built from its
//! record, signed by the domain.
//!
//! The signed payload is what A2A's reference SDK signs and checks: the card without
//! `signatures`, with every empty string, list and object removed (recursively), in the RFC
//! 8785 canonical form. The signature is a JWS with a detached payload by the domain's token
//! key, whose `kid` is in the domain's JWKS; its protected header is `{alg, kid, typ: "JOSE"}`
//! and never names a `jku`. A card presented to Accord is verified against keys Accord
//! already pins, whatever URL its header names: [`verify`] never fetches anything.
//!
//! What a card says of the record (its status and log position, the Accord capabilities the
//! caller may see) travels in one extension, `https://accord.dev/a2a/record/v1`, in
//! `capabilities.extensions`, so that it is signed with the rest.

use accord_authority::jws::VerifyingKey;
use serde_json::{Map, Value, json};

use crate::Entry;

/// The extension that carries the record.
pub const RECORD_EXTENSION: &str = "https://accord.dev/a2a/record/v1";
/// The A2A protocol version the cards describe.
pub const PROTOCOL_VERSION: &str = "1.0";
/// Deepest nesting a presented card may have (A2A's SDK's bound).
pub const MAX_DEPTH: usize = 32;
/// Most signatures a presented card may carry.
pub const MAX_SIGNATURES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("the card has no signature")]
    Unsigned,
    #[error("the card is not an object of bounded size and nesting")]
    Malformed,
    #[error("no signature verifies under the pinned keys")]
    NoValidSignature,
}

/// What of the record a card shows: the public card or the extended one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The card any requester the policy shows the record to gets.
    Public,
    /// `GET /extendedAgentCard` semantics: what only this caller may see besides (the owner,
    /// the credential, the capabilities the policy shows it).
    Extended,
}

/// The unsigned card of `e`, for a caller shown `capabilities`.
pub fn build(
    e: &Entry,
    capabilities: &[String],
    seq: u64,
    registry_url: &str,
    detail: Detail,
) -> Value {
    let interfaces: Vec<Value> = e
        .endpoints
        .iter()
        .filter(|ep| matches!(ep.transport.as_str(), "JSONRPC" | "GRPC" | "HTTP+JSON"))
        .map(|ep| {
            json!({
                "url": ep.url,
                "protocolBinding": ep.transport,
                "protocolVersion": PROTOCOL_VERSION,
            })
        })
        .collect();
    let skills: Vec<Value> = e
        .skills
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "description": s.description,
                "tags": s.tags,
            })
        })
        .collect();
    let mut record = json!({
        "agentId": e.agent_id,
        "spiffeId": e.spiffe_id,
        "domain": &*e.domain,
        "status": e.status,
        "seq": seq,
        "recordSeq": e.seq,
    });
    if detail == Detail::Extended {
        record["capabilities"] = json!(capabilities);
        record["credentialSerial"] = json!(e.credential_serial);
        if let Some(o) = &e.owner {
            record["owner"] = json!(o);
        }
        if let Some(a) = &e.aibom_digest {
            record["aibomDigest"] = json!(a);
        }
        record["visibility"] = json!(e.visibility.as_str());
        if let Some(t) = &e.team {
            record["team"] = json!(t);
        }
    }
    let mut caps = json!({
        "extendedAgentCard": true,
        "extensions": [{
            "uri": RECORD_EXTENSION,
            "description": "the Accord registry record this card was built from",
            "params": record,
        }],
    });
    if e.card.streaming {
        caps["streaming"] = json!(true);
    }
    json!({
        "name": e.name,
        "description": e.description,
        "supportedInterfaces": interfaces,
        "provider": {"organization": &*e.domain, "url": registry_url},
        "version": e.card.version,
        "capabilities": caps,
        "securitySchemes": {
            "accord-mtls": {"mtlsSecurityScheme": {
                "description": "the agent's X.509-SVID, issued by the domain's Agent Credential Authority"
            }},
        },
        "defaultInputModes": e.card.input_modes,
        "defaultOutputModes": e.card.output_modes,
        "skills": skills,
    })
}

/// Removes empty strings, lists and objects, recursively (what A2A's SDK does before
/// canonicalizing); `None` when nothing is left, or when nesting exceeds [`MAX_DEPTH`].
fn clean(v: &Value, depth: usize) -> Result<Option<Value>, CardError> {
    if depth > MAX_DEPTH && (v.is_object() || v.is_array()) {
        return Err(CardError::Malformed);
    }
    Ok(match v {
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                if let Some(c) = clean(x, depth + 1)? {
                    out.push(c);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                if let Some(c) = clean(x, depth + 1)? {
                    out.insert(k.clone(), c);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    })
}

/// The bytes a card's signatures sign.
pub fn payload(card: &Value) -> Result<Vec<u8>, CardError> {
    let mut c = card.as_object().ok_or(CardError::Malformed)?.clone();
    c.remove("signatures");
    let cleaned = clean(&Value::Object(c), 1)?.unwrap_or(Value::Object(Map::new()));
    accord_events::canonical::canonical_bytes(&cleaned).map_err(|_| CardError::Malformed)
}

/// Signs `card` with `sign` (detached JWS over [`payload`]), replacing its signatures.
pub fn sign(
    mut card: Value,
    sign: impl FnOnce(&[u8]) -> Result<(String, String), String>,
) -> Result<Value, String> {
    let p = payload(&card).map_err(|e| e.to_string())?;
    let (protected, signature) = sign(&p)?;
    if let Some(o) = card.as_object_mut() {
        o.insert(
            "signatures".into(),
            json!([{"protected": protected, "signature": signature}]),
        );
    }
    Ok(card)
}

/// Verifies a card: at least one signature whose `kid` names a key `key_of` pins verifies
/// over the card's payload. The header's `jku` (or any URL) is never followed: a `kid` Accord
/// does not already hold is no key at all. Returns the `kid` that verified.
pub fn verify(
    card: &Value,
    key_of: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<String, CardError> {
    let sigs = card
        .get("signatures")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or(CardError::Unsigned)?;
    if sigs.len() > MAX_SIGNATURES {
        return Err(CardError::Malformed);
    }
    let p = payload(card)?;
    for s in sigs {
        let (Some(protected), Some(signature)) = (
            s.get("protected").and_then(Value::as_str),
            s.get("signature").and_then(Value::as_str),
        ) else {
            continue;
        };
        // the kid picks a pinned key; the signature then decides
        let Some(kid) = peek_kid(protected) else {
            continue;
        };
        let Some(key) = key_of(&kid) else {
            continue;
        };
        if let Ok(h) = accord_authority::jws::verify_detached(protected, signature, &p, &key)
            && h.get("kid").and_then(Value::as_str) == Some(kid.as_str())
            && h.get("typ").is_none_or(|t| t == "JOSE")
        {
            return Ok(kid);
        }
    }
    Err(CardError::NoValidSignature)
}

fn peek_kid(protected: &str) -> Option<String> {
    use base64::Engine;
    if protected.len() > 4096 {
        return None;
    }
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(protected)
        .ok()?;
    let h: Value = serde_json::from_slice(&b).ok()?;
    h.get("kid")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use accord_authority::jws::{self, VerifyingKey};
    use accord_authority::signer::{SignerExt, SoftwareKey};

    use super::*;

    fn signed_by(key: &SoftwareKey, card: Value, jku: Option<&str>) -> Value {
        sign(card, |p| {
            match jku {
                // a header naming a URL to fetch the key from, re-signed with the same key
                Some(u) => {
                    let (_, kid) = key.jwk();
                    let h = json!({"alg": "ES256", "kid": kid.as_str(), "typ": "JOSE", "jku": u});
                    use base64::Engine;
                    let hb = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(&h).unwrap());
                    let input = format!(
                        "{hb}.{}",
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p)
                    );
                    let sig =
                        accord_authority::signer::Signer::sign_raw(key, input.as_bytes()).unwrap();
                    Ok((
                        hb,
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
                    ))
                }
                None => Ok(jws::sign_detached(key, "JOSE", p).unwrap()),
            }
        })
        .unwrap()
    }

    #[test]
    fn only_pinned_keys_verify_a_card_whatever_url_it_names() {
        let (domain, _) = SoftwareKey::generate_p256().unwrap();
        let (attacker, _) = SoftwareKey::generate_p256().unwrap();
        let (_, domain_kid) = domain.jwk();
        let pinned =
            |kid: &str| (kid == domain_kid.as_str()).then(|| VerifyingKey::of_signer(&domain));
        let card = json!({"name": "a", "description": "b", "version": "1"});
        let good = signed_by(&domain, card.clone(), None);
        assert_eq!(verify(&good, pinned), Ok(domain_kid.to_string()));
        // the same card signed by another key that names where to fetch it: no key, no card
        let forged = signed_by(
            &attacker,
            card.clone(),
            Some("https://attacker.example/jwks"),
        );
        assert_eq!(verify(&forged, pinned), Err(CardError::NoValidSignature));
        // the domain's own signature with a jku still verifies only under the pinned key
        let with_jku = signed_by(&domain, card.clone(), Some("https://attacker.example/jwks"));
        assert_eq!(verify(&with_jku, pinned), Ok(domain_kid.to_string()));
        // a changed card, an unsigned one
        let mut changed = good.clone();
        changed["description"] = json!("c");
        assert_eq!(verify(&changed, pinned), Err(CardError::NoValidSignature));
        assert_eq!(verify(&card, pinned), Err(CardError::Unsigned));
    }

    #[test]
    fn empty_members_leave_the_payload_and_signatures_never_enter_it() {
        let card = json!({
            "name": "x", "description": "", "skills": [{"id": "a", "tags": []}],
            "securitySchemes": {"m": {"mtlsSecurityScheme": {}}},
            "signatures": [{"protected": "p", "signature": "s"}],
        });
        let p = String::from_utf8(payload(&card).unwrap()).unwrap();
        assert_eq!(p, r#"{"name":"x","skills":[{"id":"a"}]}"#);
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert_eq!(payload(&json!({"deep": deep})), Err(CardError::Malformed));
    }
}
