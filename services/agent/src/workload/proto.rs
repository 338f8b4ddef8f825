//! The messages of the SPIFFE Workload API (`SPIFFE_Workload_API.md` §5 and §6 of the SPIFFE
//! standards; the service `SpiffeWorkloadAPI`, no package), written as prost structs from the
//! specification's field numbers and types rather than generated: the build has no `protoc`,
//! and a dozen flat messages do not justify a proto compiler in the build (ADR 0015).
//! `claims` is `google.protobuf.Struct` (prost-types).

use std::collections::HashMap;

/// `X509SVIDRequest`: no parameters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidRequest {}

/// `X509SVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidResponse {
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    /// ASN.1 DER certificate revocation lists.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub crl: Vec<Vec<u8>>,
    /// Foreign trust domains' CA certificates (concatenated DER), keyed by their SPIFFE ID.
    #[prost(map = "string, bytes", tag = "3")]
    pub federated_bundles: HashMap<String, Vec<u8>>,
}

/// `X509SVID`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509Svid {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// Concatenated DER certificates, the leaf first.
    #[prost(bytes = "vec", tag = "2")]
    pub x509_svid: Vec<u8>,
    /// PKCS#8 DER, unencrypted.
    #[prost(bytes = "vec", tag = "3")]
    pub x509_svid_key: Vec<u8>,
    /// Concatenated DER CA certificates of the trust domain.
    #[prost(bytes = "vec", tag = "4")]
    pub bundle: Vec<u8>,
    #[prost(string, tag = "5")]
    pub hint: String,
}

/// `X509BundlesRequest`: no parameters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509BundlesRequest {}

/// `X509BundlesResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct X509BundlesResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub crl: Vec<Vec<u8>>,
    #[prost(map = "string, bytes", tag = "2")]
    pub bundles: HashMap<String, Vec<u8>>,
}

/// `JWTSVIDRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtSvidRequest {
    #[prost(string, repeated, tag = "1")]
    pub audience: Vec<String>,
    /// Empty: every identity of the workload.
    #[prost(string, tag = "2")]
    pub spiffe_id: String,
}

/// `JWTSVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtSvidResponse {
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<JwtSvid>,
}

/// `JWTSVID`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtSvid {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// JWS compact serialization.
    #[prost(string, tag = "2")]
    pub svid: String,
    #[prost(string, tag = "3")]
    pub hint: String,
}

/// `JWTBundlesRequest`: no parameters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtBundlesRequest {}

/// `JWTBundlesResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtBundlesResponse {
    /// JWK Sets (JSON), keyed by the trust domain's SPIFFE ID.
    #[prost(map = "string, bytes", tag = "1")]
    pub bundles: HashMap<String, Vec<u8>>,
}

/// `ValidateJWTSVIDRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValidateJwtSvidRequest {
    #[prost(string, tag = "1")]
    pub audience: String,
    #[prost(string, tag = "2")]
    pub svid: String,
}

/// `ValidateJWTSVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValidateJwtSvidResponse {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    #[prost(message, optional, tag = "2")]
    pub claims: Option<prost_types::Struct>,
}

/// A JSON value as a `google.protobuf.Value` (numbers become doubles, as the well-known type
/// has no integers).
pub fn value_of(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(value_of).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(struct_of(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn struct_of(o: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: o.iter().map(|(k, v)| (k.clone(), value_of(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The field numbers are the specification's: a message encoded here reads back, and a
    /// hand-assembled encoding (tag 1 = spiffe_id, tag 2 = the chain, tag 5 = hint) reads as
    /// the fields it names.
    #[test]
    fn messages_use_the_specified_field_numbers() {
        let svid = X509Svid {
            spiffe_id: "spiffe://d/a".into(),
            x509_svid: vec![1, 2],
            x509_svid_key: vec![3],
            bundle: vec![4],
            hint: "h".into(),
        };
        let bytes = svid.encode_to_vec();
        assert_eq!(X509Svid::decode(bytes.as_slice()).unwrap(), svid);
        // field 1 (string), field 2 (bytes), field 5 (string), each length-delimited
        let raw = [
            0x0a, 1, b'x', //
            0x12, 2, 9, 9, //
            0x2a, 1, b'y',
        ];
        let d = X509Svid::decode(raw.as_slice()).unwrap();
        assert_eq!((d.spiffe_id.as_str(), d.hint.as_str()), ("x", "y"));
        assert_eq!(d.x509_svid, vec![9, 9]);
        let r = JwtSvidRequest::decode([0x0a, 1, b'a', 0x12, 1, b's'].as_slice()).unwrap();
        assert_eq!(
            (r.audience, r.spiffe_id),
            (vec!["a".to_owned()], "s".to_owned())
        );
    }

    #[test]
    fn claims_become_a_struct() {
        let v = serde_json::json!({"sub": "spiffe://d/a", "aud": ["x"], "exp": 5});
        let s = struct_of(v.as_object().unwrap());
        assert_eq!(s.fields.len(), 3);
        assert_eq!(
            s.fields["exp"].kind,
            Some(prost_types::value::Kind::NumberValue(5.0))
        );
    }
}
