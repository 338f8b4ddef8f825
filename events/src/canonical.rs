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

/// JCS bytes of any serialisable value in the event profile.
pub fn to_vec<T: Serialize>(v: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(v).map_err(|e| CanonicalError::Json(e.to_string()))?;
    canonical_bytes(&value)
}

/// Checks the profile, then returns the JCS bytes of `v`.
pub fn canonical_bytes(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    check_profile(v)?;
    let mut out = Vec::with_capacity(512);
    write_value(v, &mut out)?;
    Ok(out)
}

/// RFC 8785 for the event profile (checked by the caller): members sorted by the UTF-16 code
/// units of their names (§3.2.3), strings escaped as ECMAScript's `JSON.stringify` does (which
/// is what serde_json's compact writer does: `\"`, `\\`, `\b \t \n \f \r`, other controls
/// as lowercase `\u00xx`, nothing else), integers in plain decimal. Written here rather than
/// with `serde_json_canonicalizer` because that crate is about 20 times slower on events (it
/// re-buffers every object); it stays as the reference the tests compare against. ADR 0005.
fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let json = |e: serde_json::Error| CanonicalError::Json(e.to_string());
    match v {
        Value::Object(m) => {
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push(b'{');
            for (i, (k, x)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).map_err(json)?;
                out.push(b':');
                write_value(x, out)?;
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(x, out)?;
            }
            out.push(b']');
        }
        // strings, integers (profile-checked), booleans and null: serde_json's compact form
        // is the JCS form
        other => serde_json::to_writer(&mut *out, other).map_err(json)?,
    }
    Ok(())
}

fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
#[path = "canonical/tests.rs"]
mod tests;
