//! The strict JSON reader of untrusted documents (token claims and headers, AIBOMs): UTF-8,
//! nesting bounded by the caller, duplicate member names refused at any depth (RFC 8725 §3.7:
//! so every reader of the same bytes sees the same document).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    TooDeep,
    Duplicate(String),
    Malformed(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooDeep => f.write_str("nested too deeply"),
            Self::Duplicate(k) => write!(f, "duplicate member {k:?}"),
            Self::Malformed(why) => f.write_str(why),
        }
    }
}

/// Parses `bytes` as one JSON value with at most `max_depth` nested arrays and objects (the
/// outermost counts as one).
pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, Refused> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refused::Malformed("not UTF-8".into()))?;
    let refused = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let reader = Reader {
        depth: 0,
        max_depth,
        refused: &refused,
    };
    let read = reader
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    // a limit the reader hit is reported as itself, not as serde's message
    read.map_err(|e| {
        refused
            .take()
            .unwrap_or_else(|| Refused::Malformed(e.to_string()))
    })
}

#[derive(Clone, Copy)]
struct Reader<'a> {
    /// Containers around the value about to be read.
    depth: usize,
    max_depth: usize,
    refused: &'a Cell<Option<Refused>>,
}

impl Reader<'_> {
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            self.refused.set(Some(Refused::TooDeep));
            return Err(E::custom("nested too deeply"));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut v = Vec::new();
        while let Some(x) = a.next_element_seed(inner)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut m = Map::new();
        while let Some(k) = a.next_key::<String>()? {
            let v = a.next_value_seed(inner)?;
            if m.contains_key(&k) {
                let err = de::Error::custom(format!("duplicate member {k:?}"));
                self.refused.set(Some(Refused::Duplicate(k)));
                return Err(err);
            }
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}
