//! The CRL (RFC 5280 §5): built from the `credentials` read model's revocation list, signed by
//! the CA, numbered by the log sequence it reflects (so a relying party can tell which
//! revocations it includes, and numbers only grow).

use accord_events::catalogue::RevocationReason;
use accord_events::{CredentialSerial, Timestamp};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::ca::Ca;
use crate::profile::serial_bytes;

/// One revoked credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: CredentialSerial,
    pub reason: RevocationReason,
    pub revoked_at: Timestamp,
    /// When the credential would have expired; once past, the entry may leave the CRL
    /// (RFC 5280 §3.3).
    pub not_after: Option<Timestamp>,
}

/// A signed CRL and what it reflects.
#[derive(Debug, Clone)]
pub struct SignedCrl {
    pub der: Vec<u8>,
    /// The log sequence of the read model it was built from (also its CRL number).
    pub seq: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: usize,
}

fn rcgen_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    }
}

/// Signs a CRL listing `revoked` (less those expired before `now`), numbered `seq`, valid
/// until `now + validity`.
pub fn build(
    ca: &Ca,
    revoked: &[Revoked],
    seq: u64,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<SignedCrl, rcgen::Error> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut entries: Vec<RevokedCertParams> = revoked
        .iter()
        .filter(|r| r.not_after.is_none_or(|t| t.datetime() > now))
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial_bytes(&r.serial)),
            revocation_time: r.revoked_at.datetime().replace_nanosecond(0).unwrap_or(now),
            reason_code: match r.reason {
                // RFC 5280 §5.3.1: unspecified SHOULD be absent
                RevocationReason::Unspecified => None,
                other => Some(rcgen_reason(other)),
            },
            invalidity_date: None,
        })
        .collect();
    entries.sort_by(|a, b| a.serial_number.as_ref().cmp(b.serial_number.as_ref()));
    entries.dedup_by(|a, b| a.serial_number.as_ref() == b.serial_number.as_ref());
    let n = entries.len();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + validity,
        crl_number: SerialNumber::from(seq.max(1)),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: KeyIdMethod::PreSpecified(ca.key_id().to_vec()),
    };
    let issuer = ca.issuer()?;
    let crl = params.signed_by(&issuer)?;
    Ok(SignedCrl {
        der: crl.der().to_vec(),
        seq,
        this_update: now,
        next_update: now + validity,
        entries: n,
    })
}
