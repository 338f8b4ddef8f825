//! A world of trust material and the evidence it accepts, for tests and benchmarks (feature
//! `test-support`): a manufacturer CA with an intermediate and an environment identity
//! certificate, an attestation verifier's reference values, an agent provider, an owner
//! identity provider, and the realistic AIBOM of `tests/data/aibom/agent.cdx.json`. Every key
//! is real and fresh; every token is really signed.

use std::collections::BTreeMap;

use accord_events::{Digest, KeyId, MaterialId};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::api::TrustRequest;
use crate::evidence::{eat, endorsement};
use crate::jws;
use crate::signer::{Signer, SignerExt, SoftwareKey};

/// The realistic AIBOM the kit presents.
pub const AIBOM: &[u8] = include_bytes!("../../../tests/data/aibom/agent.cdx.json");

/// One manufacturer's PKI and the verifier, provider and IdP of a test domain.
#[derive(Debug)]
pub struct EvidenceKit {
    pub anchor_id: MaterialId,
    /// The manufacturer's root CA certificate, PEM.
    pub root_pem: String,
    /// The environment's identity certificate and the intermediate, PEM, leaf first.
    pub chain_pem: String,
    pub leaf_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    /// The intermediate CA's key, PKCS#8 (to issue more environment certificates).
    pub intermediate_pkcs8: Vec<u8>,
    /// The environment's attestation key (the leaf's), PKCS#8.
    pub environment_pkcs8: Vec<u8>,
    pub verifier_id: MaterialId,
    pub measurements: BTreeMap<String, Digest>,
    pub provider_id: MaterialId,
    pub provider_key: SoftwareKey,
    pub provider_capabilities: Vec<String>,
    pub idp_id: MaterialId,
    pub idp_issuer: String,
    pub idp_audience: String,
    pub idp_key: SoftwareKey,
    pub aibom: Vec<u8>,
    /// The AIBOM's `metadata.component.version`.
    pub agent_version: String,
}

fn id(s: &str) -> MaterialId {
    MaterialId::parse(s).unwrap_or_else(|e| panic!("test material id {s}: {e}"))
}

fn ca_params(cn: &str, days: i64) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "Acme Devices");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(days);
    p
}

/// A manufacturer root, an intermediate and an environment certificate (P-256). Returns the
/// root PEM, the leaf and intermediate DER and the leaf key's PKCS#8.
pub fn manufacturer_chain(
    name: &str,
    leaf_not_after: OffsetDateTime,
) -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (root, leaf, int, key, _) = manufacturer_chain_keys(name, leaf_not_after);
    (root, leaf, int, key)
}

/// An environment certificate under an existing intermediate (its DER and key's PKCS#8).
pub fn environment_leaf(
    intermediate_der: &[u8],
    intermediate_pkcs8: &[u8],
    name: &str,
    not_after: OffsetDateTime,
) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::try_from(intermediate_pkcs8).unwrap_or_else(|e| panic!("{e}"));
    let issuer = Issuer::from_ca_cert_der(
        &rustls_pki_types::CertificateDer::from(intermediate_der),
        key,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let leaf_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let now = OffsetDateTime::now_utc();
    let mut leaf = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{name} host {}", jws::random_jti()),
    );
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = (now - Duration::days(3)).min(not_after - Duration::days(1));
    leaf.not_after = not_after;
    let leaf = leaf
        .signed_by(&leaf_key, &issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    (leaf.der().to_vec(), leaf_key.serialize_der())
}

fn manufacturer_chain_keys(
    name: &str,
    leaf_not_after: OffsetDateTime,
) -> (String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let root_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let root_params = ca_params(&format!("{name} root"), 3650);
    let root = root_params
        .self_signed(&root_key)
        .unwrap_or_else(|e| panic!("{e}"));
    let root_issuer = Issuer::new(root_params, &root_key);
    let int_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let int_params = ca_params(&format!("{name} devices"), 1825);
    let int = int_params
        .signed_by(&int_key, &root_issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    let int_issuer = Issuer::new(int_params, &int_key);
    let leaf_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let now = OffsetDateTime::now_utc();
    let mut leaf = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{name} host {}", jws::random_jti()),
    );
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = now - Duration::minutes(5);
    leaf.not_after = leaf_not_after;
    let leaf = leaf
        .signed_by(&leaf_key, &int_issuer)
        .unwrap_or_else(|e| panic!("{e}"));
    (
        root.pem(),
        leaf.der().to_vec(),
        int.der().to_vec(),
        leaf_key.serialize_der(),
        int_key.serialize_der(),
    )
}

/// PEM of DER certificates.
pub fn pem(ders: &[&[u8]]) -> String {
    crate::ca::to_pem(
        "CERTIFICATE",
        &ders.iter().map(|d| d.to_vec()).collect::<Vec<_>>(),
    )
}

impl EvidenceKit {
    /// Fresh material; `tag` keeps ids apart when a test needs several kits.
    pub fn new(tag: &str) -> Self {
        let (root_pem, leaf_der, intermediate_der, environment_pkcs8, intermediate_pkcs8) =
            manufacturer_chain_keys("Acme", OffsetDateTime::now_utc() + Duration::days(365));
        let chain_pem = pem(&[&leaf_der, &intermediate_der]);
        let measurements = BTreeMap::from([
            ("kernel".to_owned(), Digest::sha256(b"kernel 6.12.4")),
            ("model-runtime".to_owned(), Digest::sha256(b"runtime 2.3.1")),
            ("agent".to_owned(), Digest::sha256(b"travel-planner 1.4.0")),
        ]);
        let aibom = AIBOM.to_vec();
        let agent_version = serde_json::from_slice::<Value>(&aibom)
            .ok()
            .and_then(|v| {
                v.pointer("/metadata/component/version")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let key = || {
            SoftwareKey::generate_p256()
                .unwrap_or_else(|e| panic!("{e}"))
                .0
        };
        Self {
            anchor_id: id(&format!("acme-devices{tag}")),
            root_pem,
            chain_pem,
            leaf_der,
            intermediate_der,
            intermediate_pkcs8,
            environment_pkcs8,
            verifier_id: id(&format!("acme-verifier{tag}")),
            measurements,
            provider_id: id(&format!("acme-agents{tag}")),
            provider_key: key(),
            provider_capabilities: vec![
                "calendar.read".into(),
                "mail.send".into(),
                "travel.book".into(),
            ],
            idp_id: id(&format!("corp-idp{tag}")),
            idp_issuer: format!("https://idp{tag}.org-a.example"),
            idp_audience: "accord-aca".into(),
            idp_key: key(),
            aibom,
            agent_version,
        }
    }

    fn jwks_of(k: &SoftwareKey) -> Value {
        let (mut jwk, kid) = k.jwk();
        jwk.kid = Some(kid.to_string());
        jwk.alg = Some(k.algorithm().jws_alg().to_owned());
        json!([jwk])
    }

    /// Another environment certificate of this manufacturer, PEM chain with the intermediate,
    /// and its key.
    pub fn another_environment(&self, not_after: OffsetDateTime) -> (String, Vec<u8>) {
        let (leaf, key) = environment_leaf(
            &self.intermediate_der,
            &self.intermediate_pkcs8,
            "Acme",
            not_after,
        );
        (pem(&[&leaf, &self.intermediate_der]), key)
    }

    /// The trust requests that make a domain trust this kit.
    pub fn trust_requests(&self) -> Vec<TrustRequest> {
        let de = |v: Value| serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        vec![
            TrustRequest::AddAnchor {
                anchor_id: self.anchor_id.clone(),
                certificates_pem: self.root_pem.clone(),
            },
            de(json!({"op": "add_verifier", "material": {
                "verifier_id": self.verifier_id,
                "keys": [],
                "reference_values": self.measurements.iter()
                    .map(|(c, d)| json!({"component": c, "digests": [d]}))
                    .collect::<Vec<_>>(),
            }})),
            de(json!({"op": "add_provider", "material": {
                "provider_id": self.provider_id,
                "name": "Acme Agents",
                "endorsement_keys": Self::jwks_of(&self.provider_key),
                "endorsable_capabilities": self.provider_capabilities,
            }})),
            de(json!({"op": "add_identity_provider", "material": {
                "idp_id": self.idp_id,
                "issuer": self.idp_issuer,
                "audiences": [self.idp_audience],
                "keys": Self::jwks_of(&self.idp_key),
            }})),
        ]
    }

    /// The provider's endorsement of an agent key.
    pub fn endorsement(&self, key: &KeyId, agent_name: &str, capabilities: &[&str]) -> String {
        let digest = Digest::sha256(&self.aibom);
        self.endorsement_for(key, agent_name, &self.agent_version, &digest, capabilities)
    }

    pub fn endorsement_for(
        &self,
        key: &KeyId,
        agent_name: &str,
        version: &str,
        aibom_digest: &Digest,
        capabilities: &[&str],
    ) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expected = endorsement::Expected {
            key_thumbprint: key,
            agent_name,
            agent_version: version,
            aibom_digest,
        };
        let claims = endorsement::claims(
            &self.provider_id,
            &expected,
            capabilities,
            now,
            now + 30 * 24 * 3600,
        );
        jws::sign(&self.provider_key, endorsement::TYP_ENDORSEMENT, &claims)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// An ID token of the owner at the kit's IdP, carrying `nonce` (an owner nonce of the ACA,
    /// `POST /v1/agents/{id}/owner-nonce`).
    pub fn id_token(&self, nonce: &str, sub: &str, scope: &[&str], lifetime_secs: i64) -> String {
        self.id_token_with(
            &self.idp_issuer,
            &self.idp_audience,
            nonce,
            sub,
            scope,
            lifetime_secs,
        )
    }

    pub fn id_token_with(
        &self,
        issuer: &str,
        audience: &str,
        nonce: &str,
        sub: &str,
        scope: &[&str],
        lifetime_secs: i64,
    ) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.sign_id_token(&json!({
            "iss": issuer,
            "sub": sub,
            "aud": audience,
            "iat": now - 10,
            "exp": now + lifetime_secs,
            "scope": scope.join(" "),
            "nonce": nonce,
        }))
    }

    /// An ID token with exactly these claims, signed by the kit's IdP key.
    pub fn sign_id_token(&self, claims: &Value) -> String {
        jws::sign(&self.idp_key, "JWT", claims).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An EAT over `nonce` by the environment's key, with the kit's measurements.
    pub fn eat(&self, nonce: &str) -> String {
        self.eat_with(nonce, &self.measurements, None)
    }

    /// An EAT with other measurements, or signed by another key.
    pub fn eat_with(
        &self,
        nonce: &str,
        measurements: &BTreeMap<String, Digest>,
        key: Option<&SoftwareKey>,
    ) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let m: Vec<(&str, &Digest)> = measurements.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut claims = eat::claims(nonce, &m, now, now + 120);
        if let Some(o) = claims.as_object_mut() {
            o.insert("dbgstat".into(), "disabled-permanently".into());
        }
        let own;
        let signer = match key {
            Some(k) => k,
            None => {
                own = SoftwareKey::from_pkcs8(&self.environment_pkcs8, "environment")
                    .unwrap_or_else(|e| panic!("{e}"));
                &own
            }
        };
        jws::sign(signer, eat::TYP_EAT, &claims).unwrap_or_else(|e| panic!("{e}"))
    }
}
