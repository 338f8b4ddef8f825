//! The agent aggregate (design §6a): an agent's provisioning and the credentials it holds. It
//! decides what may be recorded (an enrollment happens once; a renewal replaces a credential
//! that is still good; a revocation names credentials the agent has); the issuance pipeline
//! (`issue.rs`) does the checks and the signing before it asks.

use std::collections::{BTreeMap, BTreeSet};

use accord_events::catalogue::{
    AgentProvisioned, CheckRecord, CredentialIssued, CredentialRenewed, CredentialRequested,
    CredentialRevoked, IssuedCredential, PolicyRef, RevocationReason,
};
use accord_events::{AgentId, CredentialSerial, Event, KeyId, SpiffeId, Timestamp};
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
    /// Replaced by a renewal (it stays valid until it expires or is revoked).
    pub renewed: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Agent {
    pub provisioned: Option<Provisioned>,
    /// Whether the enrollment (first credential) happened: the enrollment token is then spent.
    pub enrolled: bool,
    pub credentials: BTreeMap<CredentialSerial, HeldCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioned {
    pub agent_id: AgentId,
    pub spiffe_id: SpiffeId,
    pub name: String,
    pub capabilities: BTreeSet<String>,
}

/// How an issuance was authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The one-time enrollment token of the agent's provisioning.
    Enrollment,
    /// A credential the agent holds (its workload identity token, with a proof by its key).
    Renewal { previous: CredentialSerial },
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
    },
    /// Revokes the listed credentials (all the agent's live ones when `serials` is empty).
    Revoke {
        serials: Vec<CredentialSerial>,
        reason: RevocationReason,
        at: Timestamp,
    },
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
    #[error("the credential is for {found}, not this agent ({expected})")]
    WrongSubject { found: SpiffeId, expected: SpiffeId },
    #[error("serial {0} is already used")]
    SerialReused(CredentialSerial),
    #[error("nothing to revoke: no live credential")]
    NothingToRevoke,
}

impl Agent {
    pub fn provisioned(&self) -> Result<&Provisioned, AgentError> {
        self.provisioned.as_ref().ok_or(AgentError::NotProvisioned)
    }

    /// Whether `serial` may be renewed at `now`: the agent's, not revoked, not expired.
    pub fn check_renewable(
        &self,
        serial: &CredentialSerial,
        now: Timestamp,
    ) -> Result<&HeldCredential, AgentError> {
        let c = self
            .credentials
            .get(serial)
            .ok_or_else(|| AgentError::UnknownCredential(serial.clone()))?;
        if c.revoked {
            return Err(AgentError::Revoked(serial.clone()));
        }
        if c.not_after <= now {
            return Err(AgentError::Expired(serial.clone()));
        }
        Ok(c)
    }

    /// The serials a revocation would take (live ones only).
    pub fn live_serials(&self) -> Vec<CredentialSerial> {
        self.credentials
            .iter()
            .filter(|(_, c)| !c.revoked)
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
            } => {
                let p = self.provisioned()?;
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
                            credential: *credential,
                            checks,
                            policy,
                        })
                    }
                    Grant::Renewal { previous } => {
                        let held = self.check_renewable(&previous, Timestamp::now())?;
                        let same_key = held.key_thumbprint == credential.key_thumbprint;
                        Event::CredentialRenewed(CredentialRenewed {
                            previous_serial: previous,
                            same_key,
                            credential: *credential,
                            checks,
                            policy,
                        })
                    }
                };
                sink.write(Event::CredentialRequested(requested), self)
                    .await;
                sink.write(event, self).await;
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
        };
        match event {
            Event::AgentProvisioned(p) => {
                self.provisioned = Some(Provisioned {
                    agent_id: p.agent_id,
                    spiffe_id: p.spiffe_id,
                    name: p.name,
                    capabilities: p.requested_capabilities,
                });
            }
            Event::CredentialIssued(c) => {
                self.enrolled = true;
                self.credentials
                    .insert(c.credential.serial.clone(), held(&c.credential));
            }
            Event::CredentialRenewed(c) => {
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
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "agent/tests.rs"]
mod tests;
