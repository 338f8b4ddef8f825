//! Bearer tokens an operator keeps in files: the admin token and the read-only token. A file
//! is read on every check, so a rotation takes effect on the next request; a token too weak
//! to resist online guessing is refused when the service starts and matches nothing after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Problem, bearer, secret_eq};

/// Fewest bytes in an operator-supplied token: 32 characters of base64 or hex carry 128 bits
/// or more when they are random (`openssl rand -base64 32` makes 44; `accord dev` makes 43).
pub const MIN_TOKEN_LEN: usize = 32;
/// Fewest distinct characters: a random 32-character token has far more, a repeated pattern
/// (`aaaa…`, `abababab…`) fewer.
pub const MIN_DISTINCT: usize = 8;
/// Longest token read (a header has to carry it).
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token is not strong enough to be an operator's bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakToken {
    /// Fewer than [`MIN_TOKEN_LEN`] bytes (after trimming white space).
    TooShort,
    /// More than [`MAX_TOKEN_LEN`] bytes.
    TooLong,
    /// A byte outside visible ASCII, which a header cannot carry as is.
    NotPrintable,
    /// Fewer than [`MIN_DISTINCT`] distinct characters.
    Repetitive,
}

impl std::fmt::Display for WeakToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TooShort => "shorter than 32 characters",
            Self::TooLong => "longer than 4096 characters",
            Self::NotPrintable => "holds characters other than visible ASCII",
            Self::Repetitive => "has fewer than 8 distinct characters",
        })
    }
}

impl std::error::Error for WeakToken {}

/// Checks that a token (as read from its file; surrounding white space is ignored) is long
/// and varied enough to resist online guessing. It says nothing about how random it is:
/// make tokens with a CSPRNG.
pub fn check_token_strength(raw: &[u8]) -> Result<(), WeakToken> {
    let t = raw.trim_ascii();
    if t.len() < MIN_TOKEN_LEN {
        return Err(WeakToken::TooShort);
    }
    if t.len() > MAX_TOKEN_LEN {
        return Err(WeakToken::TooLong);
    }
    if !t.iter().all(|b| b.is_ascii_graphic()) {
        return Err(WeakToken::NotPrintable);
    }
    let mut seen = [false; 128];
    for &b in t {
        seen[usize::from(b & 0x7f)] = true;
    }
    if seen.iter().filter(|s| **s).count() < MIN_DISTINCT {
        return Err(WeakToken::Repetitive);
    }
    Ok(())
}

/// A bearer token kept in a file and read on every check.
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    path: Option<Arc<Path>>,
}

impl TokenFile {
    /// The token in `path`; with `None`, a token that matches nothing.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path: path.map(Arc::from),
        }
    }

    /// Whether `presented` is the token the file holds now. A missing, unreadable or weak
    /// file matches nothing (and says so in the log).
    pub fn matches(&self, presented: &str) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "token file unreadable: no token matches");
                return false;
            }
        };
        if let Err(e) = check_token_strength(&raw) {
            tracing::error!(path = %path.display(), weakness = %e, "token file holds a weak token: no token matches");
            return false;
        }
        secret_eq(presented.as_bytes(), raw.trim_ascii())
    }
}

/// The tokens a group of routes accepts (any one of them).
#[derive(Debug, Clone, Default)]
pub struct Tokens(pub Arc<[TokenFile]>);

impl Tokens {
    pub fn new(files: impl IntoIterator<Item = TokenFile>) -> Self {
        Self(files.into_iter().collect())
    }

    /// Ok when the request's bearer token is one of these; else a 401 problem.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), Problem> {
        match bearer(headers) {
            // every file is read and compared, so that which one matched takes no more time
            Some(t) if self.0.iter().fold(false, |ok, f| f.matches(t) | ok) => Ok(()),
            _ => Err(unauthorized()),
        }
    }
}

/// The 401 problem of a missing or wrong token.
pub fn unauthorized() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "A token is required",
        "send Authorization: Bearer <the domain's admin token>",
    )
}

/// Middleware (`route_layer(from_fn_with_state(tokens, require_token))`): the request reaches
/// its handler, and its body is read, only with one of the tokens.
pub async fn require_token(State(tokens): State<Tokens>, req: Request, next: Next) -> Response {
    match tokens.authorize(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(p) => p.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn weak_tokens_are_named() {
        assert_eq!(check_token_strength(b"hunter2"), Err(WeakToken::TooShort));
        assert_eq!(
            check_token_strength(b"  0123456789abcdef0123456789abcde \n"),
            Err(WeakToken::TooShort)
        );
        assert_eq!(
            check_token_strength(&[b'a'; 64]),
            Err(WeakToken::Repetitive)
        );
        assert_eq!(
            check_token_strength("0123456789abcdef0123456789abcdé€".as_bytes()),
            Err(WeakToken::NotPrintable)
        );
        assert_eq!(
            check_token_strength(b"0123456789abcdef 0123456789abcdef"),
            Err(WeakToken::NotPrintable)
        );
        assert_eq!(
            check_token_strength(&[b'x'; MAX_TOKEN_LEN + 1]),
            Err(WeakToken::TooLong)
        );
        assert!(check_token_strength(b"0123456789abcdef0123456789abcdef\n").is_ok());
        assert!(check_token_strength(b"Xq3_9kPz-LmN0vB7tYc2RwE5uJ8hGf1sAaDd4Ke6Wo0").is_ok());
    }

    #[test]
    fn a_token_file_is_read_on_every_check() {
        let dir = std::env::temp_dir().join(format!("accord-web-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin.token");
        let old = "0ld-t0ken-0123456789abcdefghijklmnop";
        let new = "n3w-t0ken-0123456789abcdefghijklmnop";
        std::fs::write(&path, format!("{old}\n")).unwrap();
        let f = TokenFile::new(Some(path.clone()));
        assert!(f.matches(old));
        assert!(!f.matches(new));
        std::fs::write(&path, new).unwrap();
        assert!(!f.matches(old));
        assert!(f.matches(new));
        // a weak token in the file matches nothing, not even itself
        std::fs::write(&path, "short").unwrap();
        assert!(!f.matches("short"));
        std::fs::remove_file(&path).unwrap();
        assert!(!f.matches(new));
        assert!(!TokenFile::new(None).matches(""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
