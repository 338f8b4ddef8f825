//! Registration rules of the agent aggregate (draft §3.3, ADR 0015): an agent registers with a
//! credential the ACA issued it, and its record carries exactly the capabilities, owner and
//! AIBOM digest signed into that credential. The record lives on the agent's aggregate, so a
//! registration is ordered against the credential's revocation or renewal by compare-and-set.
//! The registry service (`accord-registry`) authenticates the agent and runs these commands.

use std::collections::BTreeSet;

use accord_events::catalogue::{
    AgentRegistered, AgentSuspended, AgentUpdated, Audience, CardFields, Endpoint, Owner,
    RegistrationRejection, Skill,
};
use accord_events::{CredentialSerial, Digest, Event, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Agent, AgentError};

/// What an agent asks to be registered as, with the credential it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The credential the request was authenticated with (client certificate or WIT).
    pub serial: CredentialSerial,
    pub name: String,
    pub description: String,
    pub capabilities: BTreeSet<String>,
    pub owner: Option<Owner>,
    pub aibom_digest: Option<Digest>,
    pub endpoints: Vec<Endpoint>,
    pub agent_card_digest: Option<Digest>,
    pub skills: Vec<Skill>,
    pub audience: Audience,
    pub card: CardFields,
    /// When a WIT authenticated the request: its `jti`, which must be the one the credential
    /// was issued with.
    pub wit_jti: Option<Option<String>>,
}

/// The agent's registry record, as its events left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub serial: CredentialSerial,
    pub name: String,
    pub description: String,
    pub capabilities: BTreeSet<String>,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub aibom_digest: Option<Digest>,
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub agent_card_digest: Option<Digest>,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default)]
    pub card: CardFields,
    /// Suspended by an operator (`AgentSuspended`), with the reason.
    #[serde(default)]
    pub suspended: Option<String>,
}

impl AgentError {
    /// The reason a refused registration of an authenticated agent is recorded under
    /// (`RegistrationRejected`), when it is one of those.
    pub fn rejection(&self) -> Option<RegistrationRejection> {
        Some(match self {
            Self::RegistrationMismatch {
                field: "capabilities",
            } => RegistrationRejection::CapabilitiesMismatch,
            Self::RegistrationMismatch { field: "owner" } => RegistrationRejection::OwnerMismatch,
            Self::RegistrationMismatch {
                field: "aibom_digest",
            } => RegistrationRejection::AibomMismatch,
            Self::Revoked(_) | Self::RotatedOut(_) | Self::Superseded(_) => {
                RegistrationRejection::CredentialRevoked
            }
            Self::Expired(_) => RegistrationRejection::CredentialExpired,
            Self::UnknownCredential(_) => RegistrationRejection::UnknownCredential,
            _ => return None,
        })
    }
}

impl Agent {
    /// The event a registration records at `now`: `AgentRegistered` the first time,
    /// `AgentUpdated` when the credential or a mutable field changed, nothing when the record
    /// already says all of it (registering again is idempotent).
    pub fn register(&self, r: Registration, now: Timestamp) -> Result<Option<Event>, AgentError> {
        let p = self.provisioned()?;
        if let Some(why) = &self.retired {
            return Err(AgentError::Retired(why.clone()));
        }
        let c = self
            .credentials
            .get(&r.serial)
            .ok_or_else(|| AgentError::UnknownCredential(r.serial.clone()))?;
        if c.revoked {
            return Err(AgentError::Revoked(r.serial));
        }
        if c.expired || c.not_after <= now {
            return Err(AgentError::Expired(r.serial));
        }
        if c.rotated_out {
            return Err(AgentError::RotatedOut(r.serial));
        }
        if c.renewed {
            return Err(AgentError::Superseded(r.serial));
        }
        if r.wit_jti.as_ref().is_some_and(|j| *j != c.wit_jti) {
            return Err(AgentError::WitMismatch(r.serial));
        }
        // exactly what the ACA signed: not a subset, not a superset
        if r.capabilities != c.capabilities {
            return Err(AgentError::RegistrationMismatch {
                field: "capabilities",
            });
        }
        if r.owner != c.owner {
            return Err(AgentError::RegistrationMismatch { field: "owner" });
        }
        if r.aibom_digest != c.aibom_digest {
            return Err(AgentError::RegistrationMismatch {
                field: "aibom_digest",
            });
        }
        if r.name != p.name {
            return Err(AgentError::RegistrationMismatch { field: "name" });
        }
        let Some(rec) = &self.record else {
            return Ok(Some(Event::AgentRegistered(AgentRegistered {
                spiffe_id: p.spiffe_id.clone(),
                credential_serial: r.serial,
                name: r.name,
                description: r.description,
                capabilities: r.capabilities,
                owner: r.owner,
                aibom_digest: r.aibom_digest,
                endpoints: r.endpoints,
                agent_card_digest: r.agent_card_digest,
                skills: r.skills,
                audience: r.audience,
                card: r.card,
            })));
        };
        let update = AgentUpdated {
            description: (rec.description != r.description).then_some(r.description),
            endpoints: (rec.endpoints != r.endpoints).then_some(r.endpoints),
            agent_card_digest: (rec.agent_card_digest != r.agent_card_digest)
                .then_some(r.agent_card_digest)
                .flatten(),
            credential_serial: (rec.serial != r.serial).then_some(r.serial),
            skills: (rec.skills != r.skills).then_some(r.skills),
            audience: (rec.audience != r.audience).then_some(r.audience),
            card: (rec.card != r.card).then_some(r.card),
        };
        Ok((update.description.is_some()
            || update.endpoints.is_some()
            || update.agent_card_digest.is_some()
            || update.credential_serial.is_some()
            || update.skills.is_some()
            || update.audience.is_some()
            || update.card.is_some())
        .then_some(Event::AgentUpdated(update)))
    }

    /// The suspension of the record by an operator: a registered agent not retired, not
    /// already suspended.
    pub fn suspend(&self, reason: String) -> Result<Event, AgentError> {
        self.provisioned()?;
        if let Some(why) = &self.retired {
            return Err(AgentError::Retired(why.clone()));
        }
        let rec = self.record.as_ref().ok_or(AgentError::NotRegistered)?;
        if rec.suspended.is_some() {
            return Err(AgentError::AlreadySuspended);
        }
        Ok(Event::AgentSuspended(AgentSuspended { reason }))
    }

    /// Applies the registry's events to the record.
    pub(super) fn apply_record(&mut self, event: &Event) {
        match event {
            Event::AgentRegistered(r) => {
                self.record = Some(Record {
                    serial: r.credential_serial.clone(),
                    name: r.name.clone(),
                    description: r.description.clone(),
                    capabilities: r.capabilities.clone(),
                    owner: r.owner.clone(),
                    aibom_digest: r.aibom_digest.clone(),
                    endpoints: r.endpoints.clone(),
                    agent_card_digest: r.agent_card_digest.clone(),
                    skills: r.skills.clone(),
                    audience: r.audience.clone(),
                    card: r.card.clone(),
                    suspended: None,
                });
            }
            Event::AgentUpdated(u) => {
                if let Some(rec) = &mut self.record {
                    if let Some(d) = &u.description {
                        rec.description = d.clone();
                    }
                    if let Some(e) = &u.endpoints {
                        rec.endpoints = e.clone();
                    }
                    if u.agent_card_digest.is_some() {
                        rec.agent_card_digest = u.agent_card_digest.clone();
                    }
                    if let Some(s) = &u.skills {
                        rec.skills = s.clone();
                    }
                    if let Some(a) = &u.audience {
                        rec.audience = a.clone();
                    }
                    if let Some(c) = &u.card {
                        rec.card = c.clone();
                    }
                    if let Some(s) = &u.credential_serial {
                        // the record rests on the renewed credential, whose signed facts it
                        // now carries
                        rec.serial = s.clone();
                        if let Some(c) = self.credentials.get(s) {
                            rec.capabilities = c.capabilities.clone();
                            rec.owner = c.owner.clone();
                            rec.aibom_digest = c.aibom_digest.clone();
                        }
                    }
                }
            }
            Event::AgentSuspended(s) => {
                if let Some(rec) = &mut self.record {
                    rec.suspended = Some(s.reason.clone());
                }
            }
            _ => {}
        }
    }
}
