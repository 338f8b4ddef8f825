//! The agent aggregate (design §6a): an agent's provisioning and the credentials it holds. It
//! decides what may be recorded (an enrollment happens once; a renewal replaces a credential
//! that is still good and was never renewed, so that one credential has at most one successor;
//! a revocation names credentials the agent has); the issuance pipeline (`issue.rs`) does the
//! checks and the signing before it asks.

use std::collections::{BTreeMap, BTreeSet};

use accord_events::catalogue::{
    AgentDecommissioned, AgentProvisioned, CheckRecord, CompromiseReported, CredentialExpired,
    CredentialIssued, CredentialRenewed, CredentialRequested, CredentialRevoked, IssuedCredential,
    KeyRotated, OwnerBound, OwnerUnbound, PolicyRef, RevocationReason,
};
use accord_events::{AgentId, CredentialSerial, Event, EventId, KeyId, SpiffeId, Timestamp};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

/// A credential as the aggregate tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCredential {
    pub key_thumbprint: KeyId,
    pub not_after: Timestamp,
    pub wit_jti: Option<String>,
    pub revoked: bool,
    /// Replaced by a renewal: it renews no more. A same-key renewal supersedes it at once; a
    /// key rotation leaves it valid for the grace period, then the sweep revokes it.
    pub renewed: bool,
    /// Renewed onto another key (`KeyRotated`): inside or after its grace period.
    #[serde(default)]
    pub rotated_out: bool,
    /// Its expiry was recorded (`CredentialExpired`).
    #[serde(default)]
    pub expired: bool,
    /// What a renewal without new evidence carries over.
    #[serde(default)]
    pub capabilities: BTreeSet<String>,
    #[serde(default)]
    pub aibom_digest: Option<accord_events::Digest>,
    /// The owner signed into it (what a registration must carry).
    #[serde(default)]
    pub owner: Option<accord_events::catalogue::Owner>,
}

/// The version of [`Agent`]'s serialised state in its snapshots (ADR 0014). Bump it with any
/// change to `Agent` (or what it holds) that would make an old snapshot deserialise to
/// anything but what its events fold to now: a new field with a default that old events
/// would not have folded to, a field whose meaning changes. Old snapshots are then refused and
/// rewritten from the events.
pub const STATE_VERSION: u32 = 3;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Agent {
    pub provisioned: Option<Provisioned>,
    /// Whether the enrollment (first credential) happened: the enrollment token is then spent.
    pub enrolled: bool,
    pub credentials: BTreeMap<CredentialSerial, HeldCredential>,
    /// On whose behalf its credentials act: the last owner binding, until it is unbound.
    #[serde(default)]
    pub owner: Option<OwnerBound>,
    /// Decommissioned or reported compromised: it gets no credential again.
    #[serde(default)]
    pub retired: Option<String>,
    /// Its registry record (ADR 0015), once it registered.
    #[serde(default)]
    pub record: Option<registration::Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioned {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub name: String,
    pub capabilities: BTreeSet<String>,
    #[serde(default)]
    pub provider_id: Option<accord_events::MaterialId>,
}

/// How an issuance was authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The one-time enrollment token of the agent's provisioning.
    Enrollment,
    /// A credential the agent holds (its workload identity token, with a proof by its key),
    /// never renewed before. A renewal for the same key supersedes the old credential at once
    /// (in the same atomic batch); a renewal for another key is a key rotation: the old
    /// credential stays valid for `rotation_grace` (never past its own expiry), then is
    /// revoked.
    Renewal {
        previous: CredentialSerial,
        rotation_grace: time::Duration,
    },
}

#[derive(Debug, Clone)]
pub enum AgentCommand {
    Provision(AgentProvisioned),
    /// Records a credential the ACA has checked, signed and re-validated.
    RecordCredential {
        grant: Grant,
        requested: CredentialRequested,
        credential: Box<IssuedCredential>,
        checks: Vec<CheckRecord>,
        policy: PolicyRef,
        /// A new owner binding established by this request's evidence.
        owner_bound: Option<Box<OwnerBound>>,
    },
    /// Revokes the listed credentials (all the agent's live ones when `serials` is empty).
    Revoke {
        serials: Vec<CredentialSerial>,
        reason: RevocationReason,
        at: Timestamp,
    },
    /// An event that ends every live credential of the agent in one `CredentialRevoked`
    /// (`trigger` is the id the fact's event gets: index 0 of the command).
    Lifecycle {
        fact: LifecycleFact,
        trigger: EventId,
        at: Timestamp,
    },
    /// The expiry sweep: `serial` reached its `not_after`.
    Expire {
        serial: CredentialSerial,
        at: Timestamp,
    },
    /// Registers (or updates) the agent's registry record (ADR 0015).
    Register(Box<registration::Registration>),
    /// An operator takes the agent's record out of discovery (`AgentSuspended`).
    Suspend {
        reason: String,
    },
    /// Records a refused registration of the authenticated agent (rate-limited by the caller).
    RecordRejection(accord_events::catalogue::RegistrationRejected),
}

/// What happened to the agent.
#[derive(Debug, Clone)]
pub enum LifecycleFact {
    Compromise(CompromiseReported),
    Decommission(AgentDecommissioned),
    OwnerUnbound { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("agent already provisioned")]
    AlreadyProvisioned,
    #[error("no such agent")]
    NotProvisioned,
    #[error("the enrollment token was already used; renew with a credential")]
    AlreadyEnrolled,
    #[error("credential {0} is not one of this agent's")]
    UnknownCredential(CredentialSerial),
    #[error("credential {0} is revoked")]
    Revoked(CredentialSerial),
    #[error("credential {0} has expired")]
    Expired(CredentialSerial),
    #[error("credential {0} was already renewed; renew its successor")]
    AlreadyRenewed(CredentialSerial),
    #[error("credential {0} was rotated out (renewed onto another key); renew its successor")]
    RotatedOut(CredentialSerial),
    #[error("the credential is for {found}, not this agent ({expected})")]
    WrongSubject { found: SpiffeId, expected: SpiffeId },
    #[error("serial {0} is already used")]
    SerialReused(CredentialSerial),
    #[error("nothing to revoke: no live credential")]
    NothingToRevoke,
    #[error("the agent is retired ({0}); provision a new one")]
    Retired(String),
    #[error("the agent has no owner binding to end")]
    NoOwner,
    #[error("credential {0} has not reached its expiry, or its end is already recorded")]
    NotExpired(CredentialSerial),
    #[error("credential {0} was renewed; register with its successor")]
    Superseded(CredentialSerial),
    #[error("the registration's {field} is not what the credential's issuance signed")]
    RegistrationMismatch { field: &'static str },
    #[error("the agent has no registry record")]
    NotRegistered,
    #[error("the agent's record is already suspended")]
    AlreadySuspended,
    #[error("the workload identity token is not the one issued with credential {0}")]
    WitMismatch(CredentialSerial),
}

impl Agent {
    pub fn provisioned(&self) -> Result<&Provisioned, AgentError> {
        self.provisioned.as_ref().ok_or(AgentError::NotProvisioned)
    }

    /// Whether `serial` may be renewed at `now`: the agent's, never renewed (nor rotated out),
    /// not revoked, not expired.
    pub fn check_renewable(
        &self,
        serial: &CredentialSerial,
        now: Timestamp,
    ) -> Result<&HeldCredential, AgentError> {
        let c = self
            .credentials
            .get(serial)
            .ok_or_else(|| AgentError::UnknownCredential(serial.clone()))?;
        if c.rotated_out {
            return Err(AgentError::RotatedOut(serial.clone()));
        }
        if c.renewed {
            return Err(AgentError::AlreadyRenewed(serial.clone()));
        }
        if c.revoked {
            return Err(AgentError::Revoked(serial.clone()));
        }
        if c.not_after <= now {
            return Err(AgentError::Expired(serial.clone()));
        }
        Ok(c)
    }

    /// The serials a revocation would take (live ones only: neither revoked nor expired).
    pub fn live_serials(&self) -> Vec<CredentialSerial> {
        self.credentials
            .iter()
            .filter(|(_, c)| !c.revoked && !c.expired)
            .map(|(s, _)| s.clone())
            .collect()
    }
}

impl Aggregate for Agent {
    const TYPE: &'static str = "agent";
    type Command = AgentCommand;
    type Event = Event;
    type Error = AgentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AgentCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AgentError> {
        match command {
            AgentCommand::Provision(p) => {
                if self.provisioned.is_some() {
                    return Err(AgentError::AlreadyProvisioned);
                }
                sink.write(Event::AgentProvisioned(p), self).await;
            }
            AgentCommand::RecordCredential {
                grant,
                requested,
                credential,
                checks,
                policy,
                owner_bound,
            } => {
                let mut rotated = None;
                let mut superseded = None;
                let p = self.provisioned()?;
                if let Some(why) = &self.retired {
                    return Err(AgentError::Retired(why.clone()));
                }
                if credential.spiffe_id != p.spiffe_id {
                    return Err(AgentError::WrongSubject {
                        found: credential.spiffe_id.clone(),
                        expected: p.spiffe_id.clone(),
                    });
                }
                if self.credentials.contains_key(&credential.serial) {
                    return Err(AgentError::SerialReused(credential.serial.clone()));
                }
                let event = match grant {
                    Grant::Enrollment => {
                        if self.enrolled {
                            return Err(AgentError::AlreadyEnrolled);
                        }
                        Event::CredentialIssued(CredentialIssued {
                            request: Some(requested),
                            credential: *credential,
                            checks,
                            policy,
                            owner_bound: owner_bound.map(|b| *b),
                        })
                    }
                    Grant::Renewal {
                        previous,
                        rotation_grace,
                    } => {
                        let now = Timestamp::now();
                        let held = self.check_renewable(&previous, now)?;
                        let same_key = held.key_thumbprint == credential.key_thumbprint;
                        if same_key {
                            // the new credential is for the key the old one is for: the old
                            // one has nothing left to carry over, and ends now
                            superseded = Some(CredentialRevoked {
                                serials: vec![previous.clone()],
                                reason: RevocationReason::Superseded,
                                revoked_at: now,
                                triggered_by: None,
                            });
                        } else {
                            // key rotation: the old credential lives out a grace period, then
                            // the sweep revokes it (superseded)
                            let grace_until = Timestamp::from_datetime(
                                credential.not_before.datetime()
                                    + time::Duration::seconds(crate::profile::BACKDATE_SECS)
                                    + rotation_grace,
                            );
                            rotated = Some(KeyRotated {
                                old_key: held.key_thumbprint.clone(),
                                new_key: credential.key_thumbprint.clone(),
                                old_serial: previous.clone(),
                                new_serial: credential.serial.clone(),
                                grace_until: grace_until.min(held.not_after),
                            });
                        }
                        Event::CredentialRenewed(CredentialRenewed {
                            request: Some(requested),
                            previous_serial: previous,
                            same_key,
                            credential: *credential,
                            checks,
                            policy,
                            owner_bound: owner_bound.map(|b| *b),
                        })
                    }
                };
                // the request, its owner binding and the credential are one event: one
                // compare-and-set publish (ADR 0013); a renewal's second fact (the superseded
                // credential's end, or the key rotation) makes it an atomic batch
                sink.write(event, self).await;
                if let Some(r) = rotated {
                    sink.write(Event::KeyRotated(r), self).await;
                }
                if let Some(r) = superseded {
                    sink.write(Event::CredentialRevoked(r), self).await;
                }
            }
            AgentCommand::Revoke {
                serials,
                reason,
                at,
            } => {
                self.provisioned()?;
                let targets = if serials.is_empty() {
                    self.live_serials()
                } else {
                    for s in &serials {
                        if !self.credentials.contains_key(s) {
                            return Err(AgentError::UnknownCredential(s.clone()));
                        }
                    }
                    // already revoked ones are left out: revoking twice records nothing new
                    serials
                        .into_iter()
                        .filter(|s| self.credentials.get(s).is_some_and(|c| !c.revoked))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                };
                if targets.is_empty() {
                    return Err(AgentError::NothingToRevoke);
                }
                sink.write(
                    Event::CredentialRevoked(CredentialRevoked {
                        serials: targets,
                        reason,
                        revoked_at: at,
                        triggered_by: None,
                    }),
                    self,
                )
                .await;
            }
            AgentCommand::Lifecycle { fact, trigger, at } => {
                self.provisioned()?;
                let (event, reason) = match fact {
                    LifecycleFact::Compromise(c) => (
                        Event::CompromiseReported(c),
                        RevocationReason::KeyCompromise,
                    ),
                    LifecycleFact::Decommission(d) => {
                        if let Some(why) = &self.retired {
                            return Err(AgentError::Retired(why.clone()));
                        }
                        (
                            Event::AgentDecommissioned(d),
                            RevocationReason::CessationOfOperation,
                        )
                    }
                    LifecycleFact::OwnerUnbound { reason } => {
                        let owner = self.owner.clone().ok_or(AgentError::NoOwner)?.owner;
                        (
                            Event::OwnerUnbound(OwnerUnbound { owner, reason }),
                            RevocationReason::PrivilegeWithdrawn,
                        )
                    }
                };
                let targets = self.live_serials();
                // the fact first (index 0: its id is `trigger`), the revocation it caused next,
                // in one atomic batch
                sink.write(event, self).await;
                if !targets.is_empty() {
                    sink.write(
                        Event::CredentialRevoked(CredentialRevoked {
                            serials: targets,
                            reason,
                            revoked_at: at,
                            triggered_by: Some(trigger),
                        }),
                        self,
                    )
                    .await;
                }
            }
            AgentCommand::Expire { serial, at } => {
                self.provisioned()?;
                let c = self
                    .credentials
                    .get(&serial)
                    .ok_or_else(|| AgentError::UnknownCredential(serial.clone()))?;
                if c.revoked || c.expired || c.not_after > at {
                    return Err(AgentError::NotExpired(serial));
                }
                sink.write(
                    Event::CredentialExpired(CredentialExpired {
                        expired_at: c.not_after,
                        serial,
                    }),
                    self,
                )
                .await;
            }
            AgentCommand::Register(r) => {
                if let Some(e) = self.register(*r, Timestamp::now())? {
                    sink.write(e, self).await;
                }
            }
            AgentCommand::Suspend { reason } => {
                let e = self.suspend(reason)?;
                sink.write(e, self).await;
            }
            AgentCommand::RecordRejection(r) => {
                self.provisioned()?;
                sink.write(Event::RegistrationRejected(r), self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Event) {
        let held = |c: &IssuedCredential| HeldCredential {
            key_thumbprint: c.key_thumbprint.clone(),
            not_after: c.not_after,
            wit_jti: c.wit_jti.clone(),
            revoked: false,
            renewed: false,
            rotated_out: false,
            expired: false,
            capabilities: c.capabilities.clone(),
            aibom_digest: c.aibom_digest.clone(),
            owner: c.owner.clone(),
        };
        self.apply_record(&event);
        match event {
            Event::AgentProvisioned(p) => {
                self.provisioned = Some(Provisioned {
                    agent_id: p.agent_id,
                    spiffe_id: p.spiffe_id,
                    name: p.name,
                    capabilities: p.requested_capabilities,
                    provider_id: p.provider_id,
                });
            }
            Event::CredentialIssued(c) => {
                self.enrolled = true;
                if let Some(b) = c.owner_bound {
                    self.owner = Some(b);
                }
                self.credentials
                    .insert(c.credential.serial.clone(), held(&c.credential));
            }
            Event::CredentialRenewed(c) => {
                if let Some(b) = c.owner_bound {
                    self.owner = Some(b);
                }
                if let Some(prev) = self.credentials.get_mut(&c.previous_serial) {
                    prev.renewed = true;
                }
                self.credentials
                    .insert(c.credential.serial.clone(), held(&c.credential));
            }
            Event::CredentialRevoked(r) => {
                for s in r.serials {
                    if let Some(c) = self.credentials.get_mut(&s) {
                        c.revoked = true;
                    }
                }
            }
            Event::CredentialExpired(x) => {
                if let Some(c) = self.credentials.get_mut(&x.serial) {
                    c.expired = true;
                }
            }
            Event::KeyRotated(k) => {
                if let Some(c) = self.credentials.get_mut(&k.old_serial) {
                    c.rotated_out = true;
                }
            }
            Event::CompromiseReported(c) => {
                self.retired = Some(format!("compromise reported: {}", c.details));
            }
            Event::AgentDecommissioned(d) => {
                self.retired = Some(format!("decommissioned: {}", d.reason));
            }
            Event::OwnerBound(b) => self.owner = Some(b),
            Event::OwnerUnbound(_) => self.owner = None,
            _ => {}
        }
    }
}

pub mod registration;

#[cfg(test)]
#[path = "agent/tests.rs"]
mod tests;
