//! Page tokens (ADR 0015): opaque to clients, a cursor the registry can trust. A token is
//! `base64url(version ‖ seq ‖ last key ‖ binding ‖ tag)`: the log position of the first
//! page, the last agent id returned, 16 bytes of SHA-256 over what decides the matches (the
//! filter, the requester, the policy bundle), and an HMAC-SHA-256 tag (16 bytes) under a key
//! the registry replicas share. A token from another requester, filter or policy version does
//! not verify: a cursor never carries one requester's visibility to another, and a new policy
//! starts paging over.

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: u8 = 1;
const BINDING: usize = 16;
const TAG: usize = 16;
const LEN: usize = 1 + 8 + 16 + BINDING + TAG;
const CONTEXT: &[u8] = b"accord-page-token-v1\n";

/// A decoded, verified cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The log position the paging started at.
    pub seq: u64,
    /// The last record returned.
    pub last: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page token is not valid for this query")]
pub struct BadToken;

/// Makes and checks tokens.
pub struct PageTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTokens").finish_non_exhaustive()
    }
}

/// The binding of a query: SHA-256 over its parts, each length-prefixed.
pub fn binding(parts: &[&[u8]]) -> [u8; BINDING] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; BINDING];
    out.copy_from_slice(&ctx.finish().as_ref()[..BINDING]);
    out
}

impl PageTokens {
    pub fn new(key: hmac::Key) -> Self {
        Self { key }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(CONTEXT);
        ctx.update(body);
        let mut t = [0u8; TAG];
        t.copy_from_slice(&ctx.sign().as_ref()[..TAG]);
        t
    }

    pub fn make(&self, c: Cursor, binding: &[u8; BINDING]) -> String {
        let mut b = Vec::with_capacity(LEN);
        b.push(VERSION);
        b.extend_from_slice(&c.seq.to_be_bytes());
        b.extend_from_slice(&c.last.to_be_bytes());
        b.extend_from_slice(binding);
        let tag = self.tag(&b);
        b.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn check(&self, token: &str, binding: &[u8; BINDING]) -> Result<Cursor, BadToken> {
        if token.len() > 2 * LEN {
            return Err(BadToken);
        }
        let b = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadToken)?;
        if b.len() != LEN || b[0] != VERSION {
            return Err(BadToken);
        }
        let (body, tag) = b.split_at(LEN - TAG);
        // the tag is truncated: compared in constant time
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.tag(body), tag)
            .map_err(|_| BadToken)?;
        if &body[25..25 + BINDING] != binding {
            return Err(BadToken);
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&body[1..9]);
        let mut last = [0u8; 16];
        last.copy_from_slice(&body[9..25]);
        Ok(Cursor {
            seq: u64::from_be_bytes(seq),
            last: u128::from_be_bytes(last),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            b"0123456789abcdef0123456789abcdef",
        ))
    }

    #[test]
    fn a_token_verifies_for_its_binding_only() {
        let t = tokens();
        let b = binding(&[b"filter", b"requester"]);
        let c = Cursor { seq: 42, last: 7 };
        let tok = t.make(c, &b);
        assert_eq!(t.check(&tok, &b), Ok(c));
        let other = binding(&[b"filter", b"someone else"]);
        assert_eq!(t.check(&tok, &other), Err(BadToken));
        // any flipped character fails
        let mut bytes = tok.clone().into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            t.check(&String::from_utf8(bytes).unwrap(), &b),
            Err(BadToken)
        );
        // another key's token fails
        let k2 = PageTokens::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            b"another key of thirty-two bytes!",
        ));
        assert_eq!(k2.check(&tok, &b), Err(BadToken));
        assert_eq!(t.check("", &b), Err(BadToken));
        assert_eq!(t.check(&"A".repeat(10_000), &b), Err(BadToken));
    }
}
