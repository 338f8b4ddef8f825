//! The CRL (RFC 5280 §5): built from the `credentials` read model's revocation list, signed by
//! the CA, numbered by the log sequence it reflects (so a relying party can tell which
//! revocations it includes, and numbers only grow).

use accord_events::catalogue::RevocationReason;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use accord_events::{CredentialSerial, Timestamp};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::Authority;
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

/// The current CRL and the log position it reflects.
#[derive(Debug, Clone)]
pub struct CrlState {
    pub crl: Arc<crate::crl::SignedCrl>,
    /// The `credentials` read model's position when the CRL was last found current.
    pub covers_seq: u64,
}

impl Authority {
    /// The current CRL, once it reflects at least `min_seq` of the log (waiting up to
    /// `within`).
    pub async fn crl(&self, min_seq: u64, within: StdDuration) -> Option<CrlState> {
        let mut rx = self.crl.subscribe();
        let r = tokio::time::timeout(
            within,
            rx.wait_for(|c| c.as_ref().is_some_and(|c| c.covers_seq >= min_seq)),
        )
        .await;
        match r {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        }
    }

    /// Keeps the CRL current: re-signed when a revocation reaches the `credentials` read model,
    /// and before half its validity has passed.
    pub async fn maintain_crl(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut progress = self.credentials.watch();
        let mut last_revocation: Option<u64> = None;
        loop {
            let applied = progress.borrow_and_update().applied;
            let ready = self.credentials.progress().ready;
            if ready && let Err(e) = self.refresh_crl(applied, &mut last_revocation).await {
                tracing::warn!(error = %e, "CRL not refreshed");
            }
            tokio::select! {
                _ = progress.changed() => {}
                _ = tokio::time::sleep(StdDuration::from_secs(60)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn refresh_crl(
        &self,
        applied: u64,
        last_revocation: &mut Option<u64>,
    ) -> Result<(), String> {
        let store = self.credentials.store();
        let state = store
            .get("credentials", "revocation_state", "crl")
            .await
            .map_err(|e| e.to_string())?;
        let rev_seq = state
            .as_ref()
            .and_then(|s| s.get("last_seq"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let now = OffsetDateTime::now_utc();
        let current = self.crl.borrow().clone();
        let stale = match &current {
            None => true,
            Some(c) => {
                *last_revocation != Some(rev_seq)
                    || now - c.crl.this_update > self.cfg.crl_validity / 2
            }
        };
        if !stale {
            self.crl.send_modify(|c| {
                if let Some(c) = c {
                    c.covers_seq = c.covers_seq.max(applied);
                }
            });
            return Ok(());
        }
        let rows = store
            .scan("credentials", "revocations")
            .await
            .map_err(|e| e.to_string())?;
        let revoked: Vec<Revoked> = rows
            .iter()
            .filter_map(|(_, r)| {
                Some(Revoked {
                    serial: CredentialSerial::parse(r.get("serial")?.as_str()?).ok()?,
                    reason: serde_json::from_value(r.get("reason")?.clone()).ok()?,
                    revoked_at: Timestamp::parse(r.get("revoked_at")?.as_str()?).ok()?,
                    not_after: r
                        .get("not_after")
                        .and_then(Value::as_str)
                        .and_then(|t| Timestamp::parse(t).ok()),
                })
            })
            .collect();
        // the CRL number only grows: the read model's position (at least the last revocation)
        let number = applied
            .max(rev_seq)
            .max(current.as_ref().map_or(0, |c| c.crl.seq + 1));
        let signed = build(&self.ca, &revoked, number, now, self.cfg.crl_validity)
            .map_err(|e| e.to_string())?;
        tracing::info!(entries = signed.entries, number, "CRL signed");
        *last_revocation = Some(rev_seq);
        self.crl.send_replace(Some(CrlState {
            crl: Arc::new(signed),
            covers_seq: applied,
        }));
        Ok(())
    }
}
