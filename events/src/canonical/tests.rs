use serde_json::json;

use super::*;

#[test]
fn refuses_floats_and_unsafe_integers() {
    assert!(matches!(
        canonical_bytes(&json!({"a": 1.5})),
        Err(CanonicalError::Float(p)) if p == "/a"
    ));
    assert!(matches!(
        canonical_bytes(&json!({"a": [1, 9007199254740992u64]})),
        Err(CanonicalError::UnsafeInteger(p)) if p == "/a/1"
    ));
    assert!(canonical_bytes(&json!({"a": 9007199254740991u64})).is_ok());
    assert!(canonical_bytes(&json!({"a": -9007199254740991i64})).is_ok());
    assert!(matches!(
        canonical_bytes(&json!({"a": -9007199254740992i64})),
        Err(CanonicalError::UnsafeInteger(_))
    ));
}

#[test]
fn refuses_deep_nesting() {
    let mut v = json!(1);
    for _ in 0..40 {
        v = json!([v]);
    }
    assert_eq!(canonical_bytes(&v), Err(CanonicalError::TooDeep));
}

#[test]
fn sorts_members_by_utf16_code_units() {
    // RFC 8785 §3.2.3: sorting is by UTF-16 code units, so U+1F600 (surrogates D83D DE00)
    // sorts before U+FB33 even though its code point is larger.
    let v: serde_json::Value =
        serde_json::from_str(r#"{"\ufb33":1,"\ud83d\ude00":2,"a":3,"\u0080":4}"#).unwrap();
    let out = String::from_utf8(canonical_bytes(&v).unwrap()).unwrap();
    assert_eq!(out, "{\"a\":3,\"\u{80}\":4,\"\u{1F600}\":2,\"\u{FB33}\":1}");
}

#[test]
fn escapes_strings_as_rfc8785() {
    // From RFC 8785 §3.2.2.2's example string.
    let v = json!({"string": "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/"});
    let out = String::from_utf8(canonical_bytes(&v).unwrap()).unwrap();
    assert_eq!(out, r#"{"string":"€$\u000f\nA'B\"\\\\\"/"}"#);
}

use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64).prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
        "[\\u{0}-\\u{1f}\\u{7f}\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}]{0,6}"
            .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                "[a-zA-Z\\u{80}-\\u{ff}\\u{e000}-\\u{ffff}\\u{10000}-\\u{1ffff}]{0,5}",
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The hand-written writer agrees with serde_json_canonicalizer (a JCS implementation we
    /// did not write) on every value of the event profile, including the surrogate-ordering
    /// corner of RFC 8785 §3.2.3 (keys above U+E000 against keys above U+FFFF).
    #[test]
    fn writer_matches_reference_jcs(v in json_value()) {
        let ours = canonical_bytes(&v).unwrap();
        let reference = serde_json_canonicalizer::to_vec(&v).unwrap();
        prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(reference).unwrap());
    }
}
