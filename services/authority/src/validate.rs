//! The independent check of what the ACA signed, before it is recorded or returned: the
//! certificate is parsed back (x509-parser, not the encoder that built it), its signature is
//! verified under the CA's key (aws-lc), and every field of the profile is compared with the
//! facts it was meant to carry. A certificate that fails is never appended or returned.

use std::collections::BTreeSet;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_CRL_DISTRIBUTION_POINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};

use crate::ca::Ca;
use crate::profile::{CredentialFacts, DecodedExtensions, ExtensionArc, decode, serial_bytes};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signed certificate does not match its profile: {0}")]
pub struct ValidationError(pub String);

fn fail<T>(m: impl Into<String>) -> Result<T, ValidationError> {
    Err(ValidationError(m.into()))
}

fn oid_arcs(o: &x509_parser::der_parser::oid::Oid<'_>) -> Option<Vec<u64>> {
    o.iter().map(|i| i.collect())
}

/// Checks a certificate the ACA just signed against the facts and the key it was meant for.
pub fn issued_certificate(
    der: &[u8],
    ca: &Ca,
    facts: &CredentialFacts,
    subject_spki_der: &[u8],
    arc: &ExtensionArc,
    crl_url: Option<&str>,
) -> Result<(), ValidationError> {
    crate::der::strict(der).map_err(|e| ValidationError(format!("not strict DER: {e}")))?;
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| ValidationError(format!("does not parse: {e}")))?;
    if !rest.is_empty() {
        return fail("trailing bytes");
    }
    verify_signature(&cert, ca)?;
    let tbs = &cert.tbs_certificate;
    if tbs.version != x509_parser::x509::X509Version::V3 {
        return fail("not a v3 certificate");
    }
    if tbs.raw_serial() != serial_bytes(&facts.serial).as_slice() {
        return fail("serial differs");
    }
    if tbs.issuer.as_raw() != ca.subject_der() {
        return fail("issuer name differs from the CA's subject");
    }
    if tbs.subject.as_raw() != [0x30, 0x00] {
        return fail("subject is not empty");
    }
    if tbs.subject_pki.raw != subject_spki_der {
        return fail("public key differs from the request's");
    }
    if tbs.validity.not_before.timestamp() != facts.not_before.datetime().unix_timestamp()
        || tbs.validity.not_after.timestamp() != facts.not_after.datetime().unix_timestamp()
    {
        return fail("validity differs");
    }

    let mut seen = BTreeSet::new();
    let mut decoded = DecodedExtensions::default();
    let private = |n: u64| arc.child(n);
    for ext in cert.extensions() {
        let arcs = oid_arcs(&ext.oid).unwrap_or_default();
        if !seen.insert(arcs.clone()) {
            return fail(format!("extension {} twice", ext.oid));
        }
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san)
                if ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME =>
            {
                if !ext.critical {
                    return fail("SAN not critical under an empty subject");
                }
                match san.general_names.as_slice() {
                    [GeneralName::URI(u)] if *u == facts.spiffe_id.as_str() => {}
                    _ => return fail("SAN is not exactly the one SPIFFE ID"),
                }
            }
            ParsedExtension::KeyUsage(ku) if ext.oid == OID_X509_EXT_KEY_USAGE => {
                if !ext.critical || ku.flags != 1 {
                    return fail("key usage is not exactly digitalSignature, critical");
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku)
                if ext.oid == OID_X509_EXT_EXTENDED_KEY_USAGE =>
            {
                if !(eku.client_auth && eku.server_auth) || eku.any || !eku.other.is_empty() {
                    return fail("extended key usage is not client and server authentication");
                }
            }
            ParsedExtension::BasicConstraints(bc) if ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS => {
                if !ext.critical || bc.ca || bc.path_len_constraint.is_some() {
                    return fail("basic constraints are not cA=false, critical");
                }
            }
            ParsedExtension::SubjectKeyIdentifier(_)
                if ext.oid == OID_X509_EXT_SUBJECT_KEY_IDENTIFIER => {}
            ParsedExtension::AuthorityKeyIdentifier(aki)
                if ext.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER =>
            {
                if aki.key_identifier.as_ref().map(|k| k.0) != Some(ca.key_id()) {
                    return fail("authority key identifier is not the CA's");
                }
            }
            ParsedExtension::CRLDistributionPoints(_)
                if ext.oid == OID_X509_EXT_CRL_DISTRIBUTION_POINTS =>
            {
                if crl_url.is_none() {
                    return fail("unexpected CRL distribution point");
                }
            }
            _ if arcs == private(1) => {
                decoded.owner = Some(decode::owner(ext.value).map_err(ValidationError)?)
            }
            _ if arcs == private(2) => {
                decoded.capabilities =
                    Some(decode::capabilities(ext.value).map_err(ValidationError)?);
            }
            _ if arcs == private(3) => {
                decoded.aibom_digest = Some(decode::aibom(ext.value).map_err(ValidationError)?);
            }
            _ if arcs == private(4) => {
                decoded.attestation =
                    Some(decode::attestation(ext.value).map_err(ValidationError)?);
            }
            _ => return fail(format!("unexpected extension {}", ext.oid)),
        }
        if ext.oid.to_id_string().starts_with(&arc.to_string()) && ext.critical {
            return fail("a private extension is critical");
        }
    }
    for (oid, what) in [
        (&OID_X509_EXT_SUBJECT_ALT_NAME, "SAN"),
        (&OID_X509_EXT_KEY_USAGE, "key usage"),
        (&OID_X509_EXT_EXTENDED_KEY_USAGE, "extended key usage"),
        (&OID_X509_EXT_BASIC_CONSTRAINTS, "basic constraints"),
        (
            &OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
            "authority key identifier",
        ),
    ] {
        if !seen.contains(&oid_arcs(oid).unwrap_or_default()) {
            return fail(format!("{what} missing"));
        }
    }
    if crl_url.is_some()
        && !seen.contains(&oid_arcs(&OID_X509_EXT_CRL_DISTRIBUTION_POINTS).unwrap_or_default())
    {
        return fail("CRL distribution point missing");
    }
    if decoded != facts.expected_extensions() {
        return fail("the private extensions do not say what was decided");
    }
    Ok(())
}

/// The SPIFFE ID a certificate's subject alternative name carries: exactly one URI, a valid
/// SPIFFE ID (the ACA's profile; anything else names no one).
pub(crate) fn spiffe_id_of(cert: &X509Certificate<'_>) -> Option<accord_events::SpiffeId> {
    let san = cert.subject_alternative_name().ok()??;
    match san.value.general_names.as_slice() {
        [GeneralName::URI(u)] => accord_events::SpiffeId::parse(u).ok(),
        _ => None,
    }
}

pub(crate) fn verify_signature(cert: &X509Certificate<'_>, ca: &Ca) -> Result<(), ValidationError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
        match ca.signer().algorithm() {
            crate::signer::SignerAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1,
            crate::signer::SignerAlgorithm::Ed25519 => &ED25519,
        };
    let expected_oid = match ca.signer().algorithm() {
        crate::signer::SignerAlgorithm::EcdsaP256Sha256 => "1.2.840.10045.4.3.2",
        crate::signer::SignerAlgorithm::Ed25519 => "1.3.101.112",
    };
    if cert.signature_algorithm.algorithm.to_id_string() != expected_oid
        || cert.tbs_certificate.signature.algorithm.to_id_string() != expected_oid
    {
        return fail("signature algorithm is not the CA's");
    }
    UnparsedPublicKey::new(alg, ca.signer().public_key())
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .map_err(|_| ValidationError("signature does not verify under the CA key".into()))
}
