//! The NATS JWT encoding (nats-io/jwt v2), written by hand over the `nkeys` crate: a compact
//! JWS with header `{"typ":"JWT","alg":"ed25519-nkey"}`, signed by an nkey, whose `jti` is the
//! base32 SHA-256 of the claims without it. Only what the auth callout needs: verify the
//! server's authorization request, sign the answer and the user it admits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Largest NATS JWT read, bytes (an authorization request carries the client's CONNECT
/// options: the identity and proof tokens, and any TLS certificates).
pub const MAX_JWT_BYTES: usize = 32 * 1024;

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsJwtError {
    #[error("JWT is {0} bytes, more than {MAX_JWT_BYTES}")]
    TooLarge(usize),
    #[error("not a compact JWT (three base64url parts)")]
    Format,
    #[error("header is not {{\"typ\":\"JWT\",\"alg\":\"ed25519-nkey\"}}: {0}")]
    Header(String),
    #[error("claims: {0}")]
    Claims(String),
    #[error("issuer {0:?} is not a {1} nkey")]
    Issuer(String, &'static str),
    #[error("signature does not verify under the issuer's key")]
    Signature,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// RFC 4648 base32, upper case, no padding (what nats-io/jwt uses for `jti`).
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Signs `claims` (an object without `jti`, `iss` or `iat`): sets `iss` to the signer's
/// public key, `iat` to `now`, and `jti` to the hash of the rest, as nats-io/jwt does.
pub fn encode(
    mut claims: Map<String, Value>,
    signer: &nkeys::KeyPair,
    now: i64,
) -> Result<String, NatsJwtError> {
    claims.insert("iss".into(), signer.public_key().into());
    claims.insert("iat".into(), now.into());
    claims.remove("jti");
    let unhashed = serde_json::to_vec(&claims).map_err(|e| NatsJwtError::Claims(e.to_string()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &unhashed);
    claims.insert("jti".into(), base32(digest.as_ref()).into());
    let body = serde_json::to_vec(&claims).map_err(|e| NatsJwtError::Claims(e.to_string()))?;
    let mut token = URL_SAFE_NO_PAD.encode(HEADER);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(body));
    let sig = signer
        .sign(token.as_bytes())
        .map_err(|e| NatsJwtError::Signing(e.to_string()))?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(token)
}

/// Verifies a NATS JWT signed by the nkey its `iss` names, which must be of `kind` (`'N'` a
/// server, `'A'` an account, `'U'` a user); returns its claims. Times are the caller's to check.
pub fn decode(token: &str, kind: char) -> Result<Map<String, Value>, NatsJwtError> {
    if token.len() > MAX_JWT_BYTES {
        return Err(NatsJwtError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NatsJwtError::Format);
    };
    let b64 = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| NatsJwtError::Format);
    let header = crate::jws::parse_object(&b64(h)?).map_err(NatsJwtError::Header)?;
    let member = |k: &str| header.get(k).and_then(Value::as_str);
    if member("alg") != Some("ed25519-nkey")
        || !member("typ").is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
    {
        return Err(NatsJwtError::Header(format!("{header:?}")));
    }
    let claims = crate::jws::parse_object(&b64(p)?).map_err(NatsJwtError::Claims)?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let kind_name = match kind {
        'N' => "server",
        'A' => "account",
        _ => "user",
    };
    if !iss.starts_with(kind) {
        return Err(NatsJwtError::Issuer(iss.to_owned(), kind_name));
    }
    let key = nkeys::KeyPair::from_public_key(iss)
        .map_err(|_| NatsJwtError::Issuer(iss.to_owned(), kind_name))?;
    key.verify(&token.as_bytes()[..h.len() + 1 + p.len()], &b64(s)?)
        .map_err(|_| NatsJwtError::Signature)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn base32_is_rfc4648() {
        // RFC 4648 §10 test vectors, without padding
        for (i, o) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(i.as_bytes()), o);
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let account = nkeys::KeyPair::new_account();
        let claims = json!({"sub": "UABC", "nats": {"type": "user", "version": 2}});
        let Value::Object(m) = claims else { panic!() };
        let t = encode(m, &account, 1_700_000_000).unwrap();
        let c = decode(&t, 'A').unwrap();
        assert_eq!(c["iss"], account.public_key());
        assert_eq!(c["iat"], 1_700_000_000);
        // jti: the hash of the claims without it
        let mut rest = c.clone();
        rest.remove("jti");
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &serde_json::to_vec(&rest).unwrap(),
        );
        assert_eq!(c["jti"], base32(d.as_ref()));

        // the wrong kind of issuer
        assert!(matches!(decode(&t, 'N'), Err(NatsJwtError::Issuer(..))));
        // another key's signature under this issuer
        let other = nkeys::KeyPair::new_account();
        let forged = encode(
            serde_json::from_value(json!({"sub": "UABC"})).unwrap(),
            &other,
            1,
        )
        .unwrap();
        let mut parts: Vec<&str> = forged.split('.').collect();
        let tp: Vec<&str> = t.split('.').collect();
        parts[1] = tp[1];
        assert_eq!(decode(&parts.join("."), 'A'), Err(NatsJwtError::Signature));
        // a tampered payload
        let mut bad = t.clone();
        bad.replace_range(40..41, if &t[40..41] == "A" { "B" } else { "A" });
        assert!(decode(&bad, 'A').is_err());
        assert!(matches!(
            decode(&"a".repeat(MAX_JWT_BYTES + 1), 'A'),
            Err(NatsJwtError::TooLarge(_))
        ));
        assert_eq!(decode("a.b", 'A'), Err(NatsJwtError::Format));
    }
}
