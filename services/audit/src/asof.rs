//! "Was this agent's credential valid at T, and under which policy?": the credential state of
//! one agent or one credential, folded from a verified history up to a sequence or a time.

use std::collections::BTreeMap;

use accord_events::catalogue::{IssuedCredential, PolicyRef, RevocationReason};
use accord_events::{AgentId, CredentialSerial, Event, Timestamp};
use accord_store::StoredEvent;
use serde::Serialize;

/// Whose credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Agent(AgentId),
    Serial(CredentialSerial),
}

impl Target {
    /// An agent id (a UUID) or a credential serial (hex).
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(a) = AgentId::parse(s) {
            return Some(Self::Agent(a));
        }
        CredentialSerial::parse(s).ok().map(Self::Serial)
    }
}

/// Up to where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// Events up to this stream sequence; validity at the time of that event.
    Seq(u64),
    /// Events that occurred at or before this time; validity at it.
    Time(Timestamp),
}

#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub seq: u64,
    pub at: Timestamp,
    pub reason: RevocationReason,
}

#[derive(Debug, Clone, Serialize)]
pub struct CredentialAsOf {
    pub serial: CredentialSerial,
    pub agent_id: String,
    /// Sequence of the event that issued it.
    pub issued_seq: u64,
    pub issued_at: Timestamp,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub capabilities: Vec<String>,
    /// The policy the issuance decision was taken under.
    pub policy: PolicyRef,
    pub revoked: Option<Revocation>,
    /// `valid`, `revoked`, `expired` or `not_yet_valid`, at the report's time.
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct AsOfReport {
    /// The last sequence taken into account.
    pub at_seq: u64,
    /// The instant validity is judged at.
    pub at_time: Option<Timestamp>,
    pub credentials: Vec<CredentialAsOf>,
    /// Whether the credential (serial), or any credential of the agent, was valid.
    pub valid: bool,
}

/// The fold.
#[derive(Debug)]
pub struct AsOf {
    target: Target,
    cutoff: Cutoff,
    at_seq: u64,
    at_time: Option<Timestamp>,
    creds: BTreeMap<String, CredentialAsOf>,
}

impl AsOf {
    pub fn new(target: Target, cutoff: Cutoff) -> Self {
        Self {
            target,
            at_time: match cutoff {
                Cutoff::Time(t) => Some(t),
                Cutoff::Seq(_) => None,
            },
            cutoff,
            at_seq: 0,
            creds: BTreeMap::new(),
        }
    }

    /// Whether events at `seq` and after can still matter.
    pub fn wants(&self, seq: u64) -> bool {
        match self.cutoff {
            Cutoff::Seq(n) => seq <= n,
            Cutoff::Time(_) => true,
        }
    }

    /// Takes one verified event into account.
    pub fn feed(&mut self, e: &StoredEvent) {
        match self.cutoff {
            Cutoff::Seq(n) if e.stream_seq > n => return,
            Cutoff::Seq(_) => self.at_time = Some(e.envelope.occurred_at),
            Cutoff::Time(t) if e.envelope.occurred_at > t => return,
            Cutoff::Time(_) => {}
        }
        self.at_seq = e.stream_seq;
        let agent = e.envelope.aggregate.id.to_string();
        match &e.event {
            Event::CredentialIssued(i) => self.issued(e, &agent, &i.credential, &i.policy),
            Event::CredentialRenewed(r) => self.issued(e, &agent, &r.credential, &r.policy),
            Event::CredentialRevoked(r) => {
                for s in &r.serials {
                    if let Some(c) = self.creds.get_mut(s.as_str())
                        && c.revoked.is_none()
                    {
                        c.revoked = Some(Revocation {
                            seq: e.stream_seq,
                            at: r.revoked_at,
                            reason: r.reason,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn issued(&mut self, e: &StoredEvent, agent: &str, c: &IssuedCredential, policy: &PolicyRef) {
        let mine = match &self.target {
            Target::Agent(a) => a.to_string() == agent,
            Target::Serial(s) => s == &c.serial,
        };
        if !mine {
            return;
        }
        self.creds.insert(
            c.serial.as_str().to_owned(),
            CredentialAsOf {
                serial: c.serial.clone(),
                agent_id: agent.to_owned(),
                issued_seq: e.stream_seq,
                issued_at: e.envelope.occurred_at,
                not_before: c.not_before,
                not_after: c.not_after,
                capabilities: c.capabilities.iter().cloned().collect(),
                policy: policy.clone(),
                revoked: None,
                status: "valid",
            },
        );
    }

    pub fn report(&self) -> AsOfReport {
        let at = self.at_time;
        let mut credentials: Vec<CredentialAsOf> = self.creds.values().cloned().collect();
        for c in &mut credentials {
            c.status = match at {
                _ if c.revoked.is_some() => "revoked",
                Some(t) if t < c.not_before => "not_yet_valid",
                Some(t) if t >= c.not_after => "expired",
                _ => "valid",
            };
        }
        credentials.sort_by_key(|c| c.issued_seq);
        AsOfReport {
            at_seq: self.at_seq,
            at_time: at,
            valid: credentials.iter().any(|c| c.status == "valid"),
            credentials,
        }
    }
}
