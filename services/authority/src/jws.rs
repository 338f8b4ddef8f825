//! Compact JWS: signing through a [`Signer`] (so the token key can sit in an HSM, which no JWT
//! library signs through), and a strict verifier for the tokens the ACA reads back
//! (enrollment tokens, workload identity tokens, workload proof tokens), following RFC 8725:
//! the algorithm comes from the key, never from the header; `typ` is compared exactly; only
//! `alg`, `typ` and `kid` may appear in the header; duplicate members, padding, non-canonical
//! base64url, JSON serialization and oversized tokens are refused.
//!
//! Keys are ES256 (P-256), EdDSA (Ed25519) and, for tokens from outside issuers such as OIDC
//! ID tokens, RS256 (RSA of 2048 to 8192 bits). Tokens of the ACA's own kinds are typed
//! (`verify`); ID tokens are not, and go through [`verify_jwt`], which accepts only a missing
//! `typ` or `JWT`.

use std::fmt;

use accord_events::KeyId;
use accord_events::common::PublicJwk;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::signer::{Signer, SignerError, SignerExt};

/// Largest token read, bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
pub const SKEW_SECS: i64 = 60;

/// `typ` of the workload identity token (draft-ietf-wimse-workload-creds).
pub const TYP_WIT: &str = "wit+jwt";
/// `typ` of the workload proof token (draft-ietf-wimse-wpt).
pub const TYP_WPT: &str = "wpt+jwt";
/// `typ` of the ACA's enrollment tokens (one-time bootstrap credentials).
pub const TYP_ENROLLMENT: &str = "accord-enroll+jwt";

/// Smallest and largest RSA modulus accepted, bits.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("token is {0} bytes, more than {MAX_TOKEN_BYTES}")]
    TooLarge(usize),
    #[error("not a compact JWS (three base64url parts)")]
    Format,
    #[error("header: {0}")]
    Header(String),
    #[error("algorithm {0:?} is not the key's")]
    Algorithm(String),
    #[error("token type {found:?} is not {expected:?}")]
    Type {
        found: String,
        expected: &'static str,
    },
    #[error("signature does not verify")]
    Signature,
    #[error("claims: {0}")]
    Claims(String),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("unsupported key: {0}")]
    Key(String),
}

/// Signs `claims` as a compact JWS with `typ`, the signer's algorithm and its thumbprint as
/// `kid`.
pub fn sign(signer: &dyn Signer, typ: &str, claims: &Value) -> Result<String, SignerError> {
    let (_, kid) = signer.jwk();
    let header = serde_json::json!({
        "alg": signer.algorithm().jws_alg(),
        "kid": kid.as_str(),
        "typ": typ,
    });
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
    let mut input = enc(&header);
    input.push('.');
    input.push_str(&enc(claims));
    let sig = signer.sign_raw(input.as_bytes())?;
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(input)
}

/// Signs `payload` as a JWS with a detached payload (RFC 7515 Appendix F): the protected
/// header `{alg, kid, typ}` and the signature over `header "." payload`, both base64url. What
/// signs an A2A Agent Card (its payload is the canonical card).
pub fn sign_detached(
    signer: &dyn Signer,
    typ: &str,
    payload: &[u8],
) -> Result<(String, String), SignerError> {
    let (_, kid) = signer.jwk();
    let header = serde_json::json!({
        "alg": signer.algorithm().jws_alg(),
        "kid": kid.as_str(),
        "typ": typ,
    });
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let input = format!("{protected}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = signer.sign_raw(input.as_bytes())?;
    Ok((protected, URL_SAFE_NO_PAD.encode(sig)))
}

/// Verifies a JWS with a detached payload under `key`: the header's `alg` must be the key's;
/// returns the protected header. Which other header members are acceptable is the caller's
/// decision (nothing here fetches or follows anything the header names).
pub fn verify_detached(
    protected: &str,
    signature_b64: &str,
    payload: &[u8],
    key: &VerifyingKey,
) -> Result<Map<String, Value>, JwsError> {
    if protected.len() > 4096 || signature_b64.len() > 2048 {
        return Err(JwsError::Format);
    }
    let header = parse_object(&part(protected)?).map_err(JwsError::Header)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != key.alg {
        return Err(JwsError::Algorithm(alg.to_owned()));
    }
    let verifier: &'static dyn signature::VerificationAlgorithm = match key.alg {
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "EdDSA" => &signature::ED25519,
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(JwsError::Algorithm(other.to_owned())),
    };
    let input = format!("{protected}.{}", URL_SAFE_NO_PAD.encode(payload));
    UnparsedPublicKey::new(verifier, &key.raw)
        .verify(input.as_bytes(), &part(signature_b64)?)
        .map_err(|_| JwsError::Signature)?;
    Ok(header)
}

/// A public key a token must verify under, with the one algorithm it is used with.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: &'static str,
    raw: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub fn of_signer(s: &dyn Signer) -> Self {
        Self {
            alg: s.algorithm().jws_alg(),
            raw: s.public_key().to_vec(),
        }
    }

    /// The key of a public JWK (EC P-256 → ES256, OKP Ed25519 → EdDSA, RSA of 2048 to 8192
    /// bits → RS256). A JWK that names another `alg` than its key type's is refused.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, JwsError> {
        let b = |s: &Option<String>| {
            s.as_deref()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or_else(|| JwsError::Key("missing or malformed member".into()))
        };
        let (alg, raw) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                let (x, y) = (b(&jwk.x)?, b(&jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwsError::Key(
                        "P-256 coordinates of the wrong length".into(),
                    ));
                }
                let mut raw = vec![4u8];
                raw.extend(x);
                raw.extend(y);
                ("ES256", raw)
            }
            ("OKP", Some("Ed25519")) => {
                let x = b(&jwk.x)?;
                if x.len() != 32 {
                    return Err(JwsError::Key("Ed25519 key of the wrong length".into()));
                }
                ("EdDSA", x)
            }
            ("RSA", None) => ("RS256", rsa_public_key_der(&b(&jwk.n)?, &b(&jwk.e)?)?),
            (kty, crv) => return Err(JwsError::Key(format!("{kty} {}", crv.unwrap_or("")))),
        };
        if jwk.alg.as_deref().is_some_and(|a| a != alg) {
            return Err(JwsError::Key(format!(
                "JWK alg {:?} for a {alg} key",
                jwk.alg
            )));
        }
        Ok(Self { alg, raw })
    }

    pub fn alg(&self) -> &'static str {
        self.alg
    }
}

/// The DER `RSAPublicKey` (RFC 8017) of a modulus and exponent, both big-endian, after the
/// size checks: a modulus of [`RSA_BITS`], an odd exponent of 3 to 2^32 - 1.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>, JwsError> {
    let strip = |v: &[u8]| -> Vec<u8> { v.iter().copied().skip_while(|b| *b == 0).collect() };
    let (n, e) = (strip(n), strip(e));
    let bits = n
        .first()
        .map_or(0, |b| (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
    if !RSA_BITS.contains(&bits) {
        return Err(JwsError::Key(format!(
            "RSA key of {bits} bits (2048 to 8192 accepted)"
        )));
    }
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || e.len() > 4 || e == [1] {
        return Err(JwsError::Key("RSA exponent out of range".into()));
    }
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(&n, true);
            w.next().write_bigint_bytes(&e, true);
        })
    }))
}

/// The RFC 7638 thumbprint of a public JWK (the form a `kid` takes when it names a key by
/// its thumbprint). The JWK must be a key [`VerifyingKey::from_jwk`] accepts.
pub fn thumbprint(jwk: &PublicJwk) -> Result<KeyId, JwsError> {
    VerifyingKey::from_jwk(jwk)?;
    // every member below decoded as base64url, so none holds a character JSON would escape
    let m = |v: &Option<String>| v.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            m(&jwk.crv),
            m(&jwk.x),
            m(&jwk.y)
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            m(&jwk.crv),
            m(&jwk.x)
        ),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, m(&jwk.e), m(&jwk.n)),
    };
    KeyId::parse(&hash_b64(canonical.as_bytes())).map_err(|e| JwsError::Key(e.to_string()))
}

/// A verified token: its header members and claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
}

fn part(s: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Format)
}

/// The `kid` a token's header names, before anything is verified (to pick the key). Nothing
/// else of an unverified token is trusted.
pub fn peek_kid(token: &str) -> Result<Option<String>, JwsError> {
    let (h, _, _) = split(token)?;
    let header = parse_object(&part(h)?).map_err(JwsError::Header)?;
    Ok(header.get("kid").and_then(Value::as_str).map(str::to_owned))
}

/// The `iss` a token's payload names, before anything is verified (to pick the issuer whose
/// keys may verify it). Callers compare the verified `iss` again afterwards.
pub fn peek_iss(token: &str) -> Result<Option<String>, JwsError> {
    let (_, p, _) = split(token)?;
    let claims = parse_object(&part(p)?).map_err(JwsError::Claims)?;
    Ok(claims.get("iss").and_then(Value::as_str).map(str::to_owned))
}

fn split(token: &str) -> Result<(&str, &str, &str), JwsError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::TooLarge(token.len()));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(JwsError::Format);
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !s.is_empty() => Ok((h, p, s)),
        _ => Err(JwsError::Format),
    }
}

/// `typ` values compare case-insensitively, with `application/` prefixed when absent
/// (RFC 7515 §4.1.9, RFC 8725 §3.11).
fn same_typ(found: &str, expected: &str) -> bool {
    let norm = |t: &str| {
        let t = t.to_ascii_lowercase();
        if t.contains('/') {
            t
        } else {
            format!("application/{t}")
        }
    };
    norm(found) == norm(expected)
}

/// Verifies a compact JWS of type `typ` under `key`, and its time claims at `now` (Unix
/// seconds): `exp` is required.
pub fn verify(
    token: &str,
    typ: &'static str,
    key: &VerifyingKey,
    now: i64,
) -> Result<Verified, JwsError> {
    verify_typed(token, Some(typ), key, now)
}

/// `typ` of a JWT that is not explicitly typed (RFC 7519 §5.1).
const TYP_JWT: &str = "JWT";

/// Verifies a compact JWS that is not explicitly typed: `typ` absent, `JWT` or
/// `application/jwt` (OIDC ID tokens). Every other check is [`verify`]'s. Only for tokens
/// whose issuer types them this way; the ACA's own kinds always go through [`verify`].
pub fn verify_jwt(token: &str, key: &VerifyingKey, now: i64) -> Result<Verified, JwsError> {
    verify_typed(token, None, key, now)
}

/// `typ`: `Some` compares exactly (after normalization); `None` accepts only an untyped JWT.
fn verify_typed(
    token: &str,
    typ: Option<&'static str>,
    key: &VerifyingKey,
    now: i64,
) -> Result<Verified, JwsError> {
    let (h, p, s) = split(token)?;
    let header = parse_object(&part(h)?).map_err(JwsError::Header)?;
    for k in header.keys() {
        if !matches!(k.as_str(), "alg" | "typ" | "kid") {
            return Err(JwsError::Header(format!("member {k:?} is not accepted")));
        }
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != key.alg {
        return Err(JwsError::Algorithm(alg.to_owned()));
    }
    let found = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(JwsError::Header("typ is not a string".into())),
    };
    let typ_ok = match typ {
        Some(expected) => found.is_some_and(|f| same_typ(f, expected)),
        None => found.is_none_or(|f| same_typ(f, TYP_JWT)),
    };
    if !typ_ok {
        return Err(JwsError::Type {
            found: found.unwrap_or("").to_owned(),
            expected: typ.unwrap_or(TYP_JWT),
        });
    }
    let sig = part(s)?;
    let verifier: &'static dyn signature::VerificationAlgorithm = match key.alg {
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "EdDSA" => &signature::ED25519,
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(JwsError::Algorithm(other.to_owned())),
    };
    let signing_input = &token[..h.len() + 1 + p.len()];
    UnparsedPublicKey::new(verifier, &key.raw)
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| JwsError::Signature)?;
    let claims = parse_object(&part(p)?).map_err(JwsError::Claims)?;
    check_times(&claims, now)?;
    Ok(Verified {
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        claims,
    })
}

/// The time claims of a token whose signature holds: `exp` required and not passed, `nbf` and
/// `iat` not in the future (each with [`SKEW_SECS`] of leeway).
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), JwsError> {
    let int = |name: &str| -> Result<Option<i64>, JwsError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| JwsError::Claims(format!("{name} is not an integer"))),
        }
    };
    let exp = int("exp")?.ok_or_else(|| JwsError::Claims("exp is required".into()))?;
    if now > exp.saturating_add(SKEW_SECS) {
        return Err(JwsError::Expired);
    }
    if int("nbf")?.is_some_and(|nbf| nbf > now + SKEW_SECS) {
        return Err(JwsError::NotYetValid);
    }
    if int("iat")?.is_some_and(|iat| iat > now + SKEW_SECS) {
        return Err(JwsError::NotYetValid);
    }
    Ok(())
}

/// Tokens of one key already verified, so that a token presented again (an enrollment token
/// that asks for its nonces, then for its credential) costs no second signature check: keyed
/// by the SHA-256 of its expected type and the whole token, kept at most [`CACHED_TOKENS`].
/// A hit skips the signature and the parsing, never the time checks; a token that differs in
/// one byte is another key.
pub struct VerifiedTokens {
    key: VerifyingKey,
    cache: quick_cache::sync::Cache<[u8; 32], std::sync::Arc<Verified>>,
}

/// Most tokens a [`VerifiedTokens`] remembers.
pub const CACHED_TOKENS: usize = 16_384;

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

impl VerifiedTokens {
    pub fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            cache: quick_cache::sync::Cache::new(CACHED_TOKENS),
        }
    }

    /// [`verify`] with this key, remembered.
    pub fn verify(
        &self,
        token: &str,
        typ: &'static str,
        now: i64,
    ) -> Result<std::sync::Arc<Verified>, JwsError> {
        let mut d = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        d.update(typ.as_bytes());
        d.update(b"\0");
        d.update(token.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(d.finish().as_ref());
        if let Some(v) = self.cache.get(&k) {
            check_times(&v.claims, now)?;
            return Ok(v);
        }
        let v = std::sync::Arc::new(verify(token, typ, &self.key, now)?);
        self.cache.insert(k, v.clone());
        Ok(v)
    }
}

/// SHA-256 of `data`, base64url (the `wth`, `ath` form).
pub fn hash_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// A fresh 128-bit random token id, base64url.
pub fn random_jti() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_else(|_| unreachable!("the system RNG failed"));
    URL_SAFE_NO_PAD.encode(b)
}

/// Parses a UTF-8 JSON object, refusing duplicate member names at any depth (RFC 8725 §3.7:
/// so every reader sees the same claims) and nesting deeper than 16.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match crate::json::parse(bytes, MAX_DEPTH) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(r) => Err(r.to_string()),
    }
}

const MAX_DEPTH: usize = 16;

#[cfg(test)]
#[path = "jws/tests.rs"]
mod tests;
