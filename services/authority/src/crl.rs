//! The CRL (RFC 5280 §5): built from the `credentials` read model's revocation list, signed by
//! the CA, numbered by the log sequence it reflects (so a relying party can tell which
//! revocations it includes, and numbers only grow).
//!
//! It fails closed: once the `credentials` projection has been failing, or lagging the log by
//! more than [`MAX_LAG`] events, for longer than [`stale_after`] of the validity, the CRL is
//! no longer signed again (a fresh `thisUpdate` over stale contents would hide every later
//! revocation from relying parties). It is held and left to expire; `CrlState::stale_since`
//! says so (the `/v1/crl` answer, metrics), and the server logs an alert every minute.

use accord_events::catalogue::RevocationReason;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

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
    /// Since when the CRL has been held (not signed again) because the `credentials`
    /// projection is stuck; `None` while it is kept current.
    pub stale_since: Option<OffsetDateTime>,
}

/// Events the `credentials` projection may trail the log by and still count as current.
pub const MAX_LAG: u64 = 10_000;

/// How long the `credentials` projection may be failing or lagging before the CRL is held: a
/// tenth of the CRL's validity, within 5 s and 60 s.
pub fn stale_after(validity: Duration) -> StdDuration {
    let tenth = validity.whole_seconds().max(0).unsigned_abs() / 10;
    StdDuration::from_secs(tenth.clamp(5, 60))
}

/// Whether the CRL must be held: the projection has been unhealthy for longer than the bound.
#[derive(Debug, Default)]
struct Guard {
    /// When the projection was first seen unhealthy (monotonic, and wall-clock for display).
    unhealthy_since: Option<(Instant, OffsetDateTime)>,
    last_alert: Option<Instant>,
}

impl Guard {
    /// Records whether the projection is healthy now; the wall-clock time since when the CRL
    /// is held, if it is.
    fn observe(
        &mut self,
        healthy: bool,
        now: Instant,
        bound: StdDuration,
    ) -> Option<OffsetDateTime> {
        if healthy {
            self.unhealthy_since = None;
            return None;
        }
        let (since, wall) = *self
            .unhealthy_since
            .get_or_insert((now, OffsetDateTime::now_utc()));
        (now.duration_since(since) > bound).then_some(wall)
    }

    /// Whether to log the alert now (once a minute while held).
    fn alert_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_alert
            .is_none_or(|t| now.duration_since(t) >= StdDuration::from_secs(60));
        if due {
            self.last_alert = Some(now);
        }
        due
    }
}

impl Authority {
    /// The current CRL, once it reflects at least `min_seq` of the log (waiting up to
    /// `within`), or as soon as it is held stale (the caller compares `covers_seq`).
    pub async fn crl(&self, min_seq: u64, within: StdDuration) -> Option<CrlState> {
        let mut rx = self.crl.subscribe();
        let r = tokio::time::timeout(
            within,
            rx.wait_for(|c| {
                c.as_ref()
                    .is_some_and(|c| c.covers_seq >= min_seq || c.stale_since.is_some())
            }),
        )
        .await;
        match r {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        }
    }

    /// The current CRL, as it stands (none before the first is signed).
    pub fn crl_state(&self) -> Option<CrlState> {
        self.crl.borrow().clone()
    }

    /// Keeps the CRL current: re-signed when a revocation reaches the `credentials` read model,
    /// and before half its validity has passed; held (not signed again) while the projection
    /// is stuck (see the module's documentation).
    pub async fn maintain_crl(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut progress = self.credentials.watch();
        let mut last_revocation: Option<u64> = None;
        let bound = stale_after(self.cfg.crl_validity);
        let mut guard = Guard::default();
        let mut tail: Option<(u64, Instant)> = None;
        loop {
            let p = progress.borrow_and_update().clone();
            let now = Instant::now();
            // the log's tail, asked at most once a second
            if tail.is_none_or(|(_, at)| now.duration_since(at) >= StdDuration::from_secs(1))
                && let Ok(t) = self.exec.store().event_store().last_sequence().await
            {
                tail = Some((t, now));
            }
            let lag = tail.map_or(0, |(t, _)| t.saturating_sub(p.applied));
            // a standby instance reads what the leading one applies: that is no failure
            let failing = p.error.as_deref().is_some_and(|e| e != "standby");
            let held = guard.observe(!failing && lag <= MAX_LAG, now, bound);
            self.crl.send_if_modified(|c| match c {
                Some(c) if c.stale_since != held => {
                    c.stale_since = held;
                    true
                }
                _ => false,
            });
            match held {
                Some(since) if guard.alert_due(now) => {
                    tracing::error!(
                        projection_error = p.error.as_deref().unwrap_or(""),
                        applied = p.applied,
                        lag,
                        since = %since,
                        "ALERT: the credentials projection is stuck; the CRL is held and will expire rather than be signed over stale contents"
                    );
                }
                Some(_) => {}
                None if p.ready => {
                    if let Err(e) = self.refresh_crl(p.applied, &mut last_revocation).await {
                        tracing::warn!(error = %e, "CRL not refreshed");
                    }
                }
                None => {}
            }
            tokio::select! {
                _ = progress.changed() => {}
                _ = tokio::time::sleep(bound / 2) => {}
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
            stale_since: None,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crl_is_held_only_after_the_bound() {
        let bound = stale_after(Duration::hours(24));
        assert_eq!(bound, StdDuration::from_secs(60));
        assert_eq!(
            stale_after(Duration::seconds(60)),
            StdDuration::from_secs(6)
        );
        assert_eq!(
            stale_after(Duration::seconds(10)),
            StdDuration::from_secs(5)
        );
        let mut g = Guard::default();
        let t0 = Instant::now();
        assert_eq!(g.observe(true, t0, bound), None);
        // a passing failure does not hold it
        assert_eq!(g.observe(false, t0, bound), None);
        assert_eq!(g.observe(false, t0 + bound, bound), None);
        assert_eq!(g.observe(true, t0 + bound, bound), None);
        // a lasting one does, from when it began, until the projection recovers
        let t1 = t0 + bound * 2;
        assert_eq!(g.observe(false, t1, bound), None);
        let held = g.observe(false, t1 + bound + StdDuration::from_secs(1), bound);
        assert!(held.is_some());
        assert_eq!(g.observe(false, t1 + bound * 5, bound), held);
        assert_eq!(g.observe(true, t1 + bound * 6, bound), None);
    }
}
