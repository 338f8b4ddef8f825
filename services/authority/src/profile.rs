//! The credential profiles: the X.509-SVID an agent gets, and the facts it and the workload
//! identity token carry ([ADR 0009](../../../docs/adr/0009-credential-profile.md)).
//!
//! The certificate: an empty subject, exactly one URI SAN (`spiffe://<td>/agent/<id>`, critical
//! because the subject is empty), key usage `digitalSignature` (critical), EKU client and server
//! authentication, `cA=false` (critical), subject and authority key identifiers, the CRL
//! distribution point, a random 128-bit serial, and four non-critical extensions under the
//! domain's private arc:
//!
//! ```text
//! arc.1 owner          SEQUENCE { subject UTF8String, issuer UTF8String,
//!                                 kind ENUMERATED { idToken(0), roleGrant(1) } }
//! arc.2 capabilities   SEQUENCE OF UTF8String            -- sorted, unique
//! arc.3 aibomDigest    SEQUENCE { algorithm OBJECT IDENTIFIER (id-sha256),
//!                                 digest OCTET STRING (SIZE (32)) }
//! arc.4 attestation    SEQUENCE { verifier UTF8String,
//!                                 evidence SEQUENCE { OBJECT IDENTIFIER, OCTET STRING },
//!                                 appraisedAt GeneralizedTime }
//! ```
//!
//! `capabilities` is always present (possibly empty); the others only when the credential has
//! that fact.

use std::collections::BTreeSet;

use accord_events::catalogue::{AttestationResult, Owner, OwnerBindingKind};
use accord_events::{AgentId, CredentialSerial, Digest, MaterialId, SpiffeId, Timestamp};
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use yasna::models::{GeneralizedTime, ObjectIdentifier};

/// `id-sha256` (NIST), the hash of every digest the extensions carry.
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// How far `notBefore` is set back, for relying parties whose clocks run slightly behind.
pub const BACKDATE_SECS: i64 = 30;

/// The OID arc under which the ACA's own extensions live. A domain sets its own (under its
/// IANA Private Enterprise Number); the default sits under 1.3.6.1.4.1.32473, the PEN RFC 5612
/// reserves for documentation, and is meant to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionArc(Vec<u64>);

impl Default for ExtensionArc {
    fn default() -> Self {
        Self(vec![1, 3, 6, 1, 4, 1, 32473, 7, 1])
    }
}

impl ExtensionArc {
    /// A dotted OID (`1.3.6.1.4.1.<pen>.<n>`): at least three arcs, at most 20.
    pub fn parse(s: &str) -> Result<Self, String> {
        let arcs: Vec<u64> = s
            .split('.')
            .map(|a| {
                if a.is_empty() || (a.len() > 1 && a.starts_with('0')) {
                    return Err(format!("{s:?} is not a dotted OID"));
                }
                a.parse::<u64>()
                    .map_err(|_| format!("{s:?} is not a dotted OID"))
            })
            .collect::<Result<_, _>>()?;
        if arcs.len() < 3 || arcs.len() > 20 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
            return Err(format!("{s:?} is not a usable OID arc"));
        }
        Ok(Self(arcs))
    }

    pub fn child(&self, n: u64) -> Vec<u64> {
        let mut v = self.0.clone();
        v.push(n);
        v
    }

    pub fn owner(&self) -> Vec<u64> {
        self.child(1)
    }
    pub fn capabilities(&self) -> Vec<u64> {
        self.child(2)
    }
    pub fn aibom(&self) -> Vec<u64> {
        self.child(3)
    }
    pub fn attestation(&self) -> Vec<u64> {
        self.child(4)
    }
}

impl std::fmt::Display for ExtensionArc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))
    }
}

/// What a credential says about its agent: the same facts go into the certificate, the token
/// and the `CredentialIssued` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFacts {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub serial: CredentialSerial,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub capabilities: BTreeSet<String>,
    pub owner: Option<Owner>,
    pub aibom_digest: Option<Digest>,
    pub attestation: Option<AttestationResult>,
}

/// A fresh serial: 16 random bytes, positive and without a leading zero byte, so that its DER
/// INTEGER is exactly those bytes (RFC 5280 §4.1.2.2: at most 20 octets, unpredictable).
pub fn random_serial() -> CredentialSerial {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_else(|_| unreachable!("the system RNG failed"));
    b[0] = (b[0] & 0x7f) | 0x40;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    CredentialSerial::parse(&hex).unwrap_or_else(|_| unreachable!("32 lowercase hex digits"))
}

/// The bytes of a serial.
pub fn serial_bytes(s: &CredentialSerial) -> Vec<u8> {
    let h = s.as_str().as_bytes();
    (0..h.len() / 2)
        .map(|i| {
            let d = |c: u8| {
                if c.is_ascii_digit() {
                    c - b'0'
                } else {
                    c - b'a' + 10
                }
            };
            d(h[2 * i]) << 4 | d(h[2 * i + 1])
        })
        .collect()
}

/// The certificate template of an agent credential.
pub fn certificate_params(
    facts: &CredentialFacts,
    arc: &ExtensionArc,
    crl_url: Option<&str>,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = vec![SanType::URI(facts.spiffe_id.as_str().try_into()?)];
    p.serial_number = Some(SerialNumber::from_slice(&serial_bytes(&facts.serial)));
    p.not_before = facts.not_before.datetime();
    p.not_after = facts.not_after.datetime();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    if let Some(url) = crl_url {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    p.custom_extensions = extensions(facts, arc);
    Ok(p)
}

/// The private extensions of a credential, in arc order.
pub fn extensions(facts: &CredentialFacts, arc: &ExtensionArc) -> Vec<CustomExtension> {
    let mut out = Vec::new();
    if let Some(o) = &facts.owner {
        out.push(CustomExtension::from_oid_content(
            &arc.owner(),
            encode_owner(o),
        ));
    }
    out.push(CustomExtension::from_oid_content(
        &arc.capabilities(),
        encode_capabilities(&facts.capabilities),
    ));
    if let Some(d) = &facts.aibom_digest {
        out.push(CustomExtension::from_oid_content(
            &arc.aibom(),
            encode_digest(d),
        ));
    }
    if let Some(a) = &facts.attestation {
        out.push(CustomExtension::from_oid_content(
            &arc.attestation(),
            encode_attestation(a),
        ));
    }
    out
}

pub fn encode_owner(o: &Owner) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string(&o.subject);
            w.next().write_utf8_string(&o.issuer);
            w.next().write_enum(match o.kind {
                OwnerBindingKind::IdToken => 0,
                OwnerBindingKind::RoleGrant => 1,
            });
        })
    })
}

pub fn encode_capabilities(c: &BTreeSet<String>) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for cap in c {
                w.next().write_utf8_string(cap);
            }
        })
    })
}

fn write_digest(w: yasna::DERWriter<'_>, d: &Digest) {
    w.write_sequence(|w| {
        w.next()
            .write_oid(&ObjectIdentifier::from_slice(OID_SHA256));
        w.next().write_bytes(d.as_bytes());
    })
}

pub fn encode_digest(d: &Digest) -> Vec<u8> {
    yasna::construct_der(|w| write_digest(w, d))
}

pub fn encode_attestation(a: &AttestationResult) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string(a.verifier_id.as_str());
            write_digest(w.next(), &a.evidence);
            // GeneralizedTime in whole seconds (RFC 5280 §4.1.2.5.2 style)
            let at = a
                .appraised_at
                .datetime()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            w.next()
                .write_generalized_time(&GeneralizedTime::from_datetime(at));
        })
    })
}

/// What the private extensions of a certificate say, decoded independently of the encoder
/// (x509-parser's DER parser): the re-validation compares these with the intended facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedExtensions {
    pub owner: Option<Owner>,
    pub capabilities: Option<BTreeSet<String>>,
    pub aibom_digest: Option<Digest>,
    /// Verifier, evidence digest, appraisal time (whole seconds, Unix).
    pub attestation: Option<(MaterialId, Digest, i64)>,
}

pub mod decode {
    //! Decoders of the private extensions, strict: exact shapes, no trailing bytes.

    use super::*;
    use x509_parser::der_parser::ber::BerObject;
    use x509_parser::der_parser::der::parse_der;

    fn whole(b: &[u8]) -> Result<BerObject<'_>, String> {
        crate::der::strict(b)?;
        let (rest, o) = parse_der(b).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(o)
    }

    fn seq<'a>(o: &'a BerObject<'a>, n: usize) -> Result<&'a [BerObject<'a>], String> {
        let v = o.as_sequence().map_err(|_| "not a SEQUENCE")?;
        if n != usize::MAX && v.len() != n {
            return Err(format!("a SEQUENCE of {} items, not {n}", v.len()));
        }
        Ok(v)
    }

    fn utf8(o: &BerObject<'_>) -> Result<String, String> {
        o.as_str()
            .map(str::to_owned)
            .map_err(|_| "not a UTF8String".to_owned())
    }

    fn digest(o: &BerObject<'_>) -> Result<Digest, String> {
        let v = seq(o, 2)?;
        let oid = v[0].as_oid().map_err(|_| "not an OID")?.to_id_string();
        if oid != "2.16.840.1.101.3.4.2.1" {
            return Err(format!("digest algorithm {oid}, not SHA-256"));
        }
        let b: [u8; 32] = v[1]
            .as_slice()
            .map_err(|_| "not an OCTET STRING")?
            .try_into()
            .map_err(|_| "a SHA-256 digest of the wrong length")?;
        Ok(Digest::from_bytes(b))
    }

    pub fn owner(b: &[u8]) -> Result<Owner, String> {
        let o = whole(b)?;
        let v = seq(&o, 3)?;
        let kind = match v[2].as_u32().map_err(|_| "not an ENUMERATED")? {
            0 => OwnerBindingKind::IdToken,
            1 => OwnerBindingKind::RoleGrant,
            k => return Err(format!("owner kind {k}")),
        };
        Ok(Owner {
            subject: utf8(&v[0])?,
            issuer: utf8(&v[1])?,
            kind,
        })
    }

    pub fn capabilities(b: &[u8]) -> Result<BTreeSet<String>, String> {
        let o = whole(b)?;
        let v = seq(&o, usize::MAX)?;
        let caps: Vec<String> = v.iter().map(utf8).collect::<Result<_, _>>()?;
        if caps.windows(2).any(|w| w[0] >= w[1]) {
            return Err("capabilities not sorted and unique".into());
        }
        Ok(caps.into_iter().collect())
    }

    pub fn aibom(b: &[u8]) -> Result<Digest, String> {
        digest(&whole(b)?)
    }

    pub fn attestation(b: &[u8]) -> Result<(MaterialId, Digest, i64), String> {
        let o = whole(b)?;
        let v = seq(&o, 3)?;
        let verifier = MaterialId::parse(&utf8(&v[0])?).map_err(|e| e.to_string())?;
        let evidence = digest(&v[1])?;
        let x509_parser::der_parser::ber::BerObjectContent::GeneralizedTime(t) = &v[2].content
        else {
            return Err("not a GeneralizedTime".into());
        };
        let at = t.to_datetime().map_err(|e| e.to_string())?.unix_timestamp();
        Ok((verifier, evidence, at))
    }
}

impl CredentialFacts {
    /// The facts as the extensions will say them, for comparison with what was decoded.
    pub fn expected_extensions(&self) -> DecodedExtensions {
        DecodedExtensions {
            owner: self.owner.clone(),
            capabilities: Some(self.capabilities.clone()),
            aibom_digest: self.aibom_digest.clone(),
            attestation: self.attestation.as_ref().map(|a| {
                (
                    a.verifier_id.clone(),
                    a.evidence.clone(),
                    a.appraised_at.datetime().unix_timestamp(),
                )
            }),
        }
    }
}

#[cfg(test)]
#[path = "profile/tests.rs"]
mod tests;
