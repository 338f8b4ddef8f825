//! RFC 8785 (JCS) canonical bytes.
//!
//! Events hold no floating-point numbers and no integers outside the I-JSON safe range
//! (|n| <= 2^53 - 1), so every JCS implementation produces the same bytes for them; this
//! module refuses anything else instead of producing bytes another implementation might not.

use serde::Serialize;
use serde_json::Value;

/// Largest integer magnitude an event may hold (I-JSON, RFC 7493 §2.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Deepest nesting an event may have.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    #[error("floating-point number at {0}")]
    Float(String),
    #[error("integer outside the I-JSON safe range at {0}")]
    UnsafeInteger(String),
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("not serialisable as JSON: {0}")]
    Json(String),
}

/// Checks that `v` is within the event profile of JSON: integers only, safe range, bounded depth.
pub fn check_profile(v: &Value) -> Result<(), CanonicalError> {
    fn walk(v: &Value, depth: usize, path: &mut String) -> Result<(), CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep);
        }
        match v {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    if u > MAX_SAFE_INTEGER {
                        return Err(CanonicalError::UnsafeInteger(path.clone()));
                    }
                } else if let Some(i) = n.as_i64() {
                    if i.unsigned_abs() > MAX_SAFE_INTEGER {
                        return Err(CanonicalError::UnsafeInteger(path.clone()));
                    }
                } else {
                    return Err(CanonicalError::Float(path.clone()));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(x, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    walk(x, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::String(_) => {}
        }
        Ok(())
    }
    walk(v, 0, &mut String::new())
}

/// JCS bytes of a value already checked against the event profile.
pub fn to_vec<T: Serialize>(v: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| CanonicalError::Json(e.to_string()))
}

/// Checks the profile, then returns the JCS bytes of `v`.
pub fn canonical_bytes(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    check_profile(v)?;
    to_vec(v)
}

#[cfg(test)]
#[path = "canonical/tests.rs"]
mod tests;
