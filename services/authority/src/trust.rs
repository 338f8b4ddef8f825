//! Trust material (draft §3.1, initial trust): what the ACA trusts before it issues anything,
//! recorded as events so that every replica and every auditor sees the same material at the
//! same sequence. One aggregate per material id (`accord.evt.<d>.trust.<id>.*`); the AIBOM
//! deny-list is the aggregate [`DENY_LIST_ID`].
//!
//! A material id names one thing for its whole life: rotating a key or a CA is adding the new
//! material under a new id and removing the old one, so the log says which material a
//! credential was checked against ([`accord_events::catalogue::CheckRecord::against`]).
//!
//! The checks of the contents (certificates parse and are CA certificates, keys are usable
//! public keys, the deny-list is evaluable) run in [`validate`] before a command is executed;
//! the aggregate only decides what may follow what.

use std::collections::BTreeSet;

use accord_events::catalogue::{
    AibomDenyListSet, AttestationVerifierAdded, AttestationVerifierRemoved,
    EnvironmentCertificateRevoked, IdentityProviderAdded, IdentityProviderRemoved, ProviderAdded,
    ProviderRemoved, TrustAnchorAdded, TrustAnchorRemoved,
};
use accord_events::{Digest, Event};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

/// The aggregate id of the domain's AIBOM deny-list.
pub const DENY_LIST_ID: &str = "aibom-deny-list";

/// What a material id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaterialKind {
    Anchor,
    Verifier,
    Provider,
    IdentityProvider,
    DenyList,
}

impl MaterialKind {
    fn of(e: &Event) -> Option<Self> {
        Some(match e {
            Event::TrustAnchorAdded(_)
            | Event::TrustAnchorRemoved(_)
            | Event::EnvironmentCertificateRevoked(_) => Self::Anchor,
            Event::AttestationVerifierAdded(_) | Event::AttestationVerifierRemoved(_) => {
                Self::Verifier
            }
            Event::ProviderAdded(_) | Event::ProviderRemoved(_) => Self::Provider,
            Event::IdentityProviderAdded(_) | Event::IdentityProviderRemoved(_) => {
                Self::IdentityProvider
            }
            Event::AibomDenyListSet(_) => Self::DenyList,
            _ => return None,
        })
    }
}

/// One piece of trust material, as its history leaves it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Material {
    pub kind: Option<MaterialKind>,
    /// Added and not removed since.
    pub present: bool,
    /// Whether it was ever removed (a removed id is never reused).
    pub removed: bool,
    /// Environment certificates revoked under this anchor.
    pub revoked: BTreeSet<Digest>,
}

#[derive(Debug, Clone)]
pub enum TrustCommand {
    AddAnchor(TrustAnchorAdded),
    RemoveAnchor(TrustAnchorRemoved),
    RevokeEnvironmentCertificate(EnvironmentCertificateRevoked),
    AddVerifier(AttestationVerifierAdded),
    RemoveVerifier(AttestationVerifierRemoved),
    AddProvider(ProviderAdded),
    RemoveProvider(ProviderRemoved),
    AddIdentityProvider(IdentityProviderAdded),
    RemoveIdentityProvider(IdentityProviderRemoved),
    SetDenyList(AibomDenyListSet),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("material {0:?} already exists; add rotated material under a new id")]
    Exists(String),
    #[error("no such material in force: {0:?}")]
    Unknown(String),
    #[error("material {id:?} is a {found:?}, not a {wanted:?}")]
    WrongKind {
        id: String,
        found: MaterialKind,
        wanted: MaterialKind,
    },
    #[error("material id {0:?} was removed and is never reused")]
    Reused(String),
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(Digest),
}

impl Material {
    fn expect(&self, id: &str, wanted: MaterialKind) -> Result<(), TrustError> {
        match self.kind {
            Some(found) if found != wanted => Err(TrustError::WrongKind {
                id: id.to_owned(),
                found,
                wanted,
            }),
            _ => Ok(()),
        }
    }

    fn add(&self, id: &str, kind: MaterialKind) -> Result<(), TrustError> {
        self.expect(id, kind)?;
        if self.present {
            return Err(TrustError::Exists(id.to_owned()));
        }
        if self.removed {
            return Err(TrustError::Reused(id.to_owned()));
        }
        Ok(())
    }

    fn live(&self, id: &str, kind: MaterialKind) -> Result<(), TrustError> {
        self.expect(id, kind)?;
        if !self.present {
            return Err(TrustError::Unknown(id.to_owned()));
        }
        Ok(())
    }
}

impl Aggregate for Material {
    const TYPE: &'static str = "trust";
    type Command = TrustCommand;
    type Event = Event;
    type Error = TrustError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TrustCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TrustError> {
        use MaterialKind as K;
        let event = match command {
            TrustCommand::AddAnchor(a) => {
                self.add(a.anchor_id.as_str(), K::Anchor)?;
                Event::TrustAnchorAdded(a)
            }
            TrustCommand::RemoveAnchor(a) => {
                self.live(a.anchor_id.as_str(), K::Anchor)?;
                Event::TrustAnchorRemoved(a)
            }
            TrustCommand::RevokeEnvironmentCertificate(r) => {
                self.live(r.anchor_id.as_str(), K::Anchor)?;
                if self.revoked.contains(&r.fingerprint) {
                    return Err(TrustError::AlreadyRevoked(r.fingerprint));
                }
                Event::EnvironmentCertificateRevoked(r)
            }
            TrustCommand::AddVerifier(v) => {
                self.add(v.verifier_id.as_str(), K::Verifier)?;
                Event::AttestationVerifierAdded(v)
            }
            TrustCommand::RemoveVerifier(v) => {
                self.live(v.verifier_id.as_str(), K::Verifier)?;
                Event::AttestationVerifierRemoved(v)
            }
            TrustCommand::AddProvider(p) => {
                self.add(p.provider_id.as_str(), K::Provider)?;
                Event::ProviderAdded(p)
            }
            TrustCommand::RemoveProvider(p) => {
                self.live(p.provider_id.as_str(), K::Provider)?;
                Event::ProviderRemoved(p)
            }
            TrustCommand::AddIdentityProvider(i) => {
                self.add(i.idp_id.as_str(), K::IdentityProvider)?;
                Event::IdentityProviderAdded(i)
            }
            TrustCommand::RemoveIdentityProvider(i) => {
                self.live(i.idp_id.as_str(), K::IdentityProvider)?;
                Event::IdentityProviderRemoved(i)
            }
            TrustCommand::SetDenyList(l) => {
                self.expect(DENY_LIST_ID, K::DenyList)?;
                Event::AibomDenyListSet(l)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Event) {
        if let Some(k) = MaterialKind::of(&event) {
            self.kind = Some(k);
        }
        match event {
            Event::TrustAnchorAdded(_)
            | Event::AttestationVerifierAdded(_)
            | Event::ProviderAdded(_)
            | Event::IdentityProviderAdded(_)
            | Event::AibomDenyListSet(_) => self.present = true,
            Event::TrustAnchorRemoved(_)
            | Event::AttestationVerifierRemoved(_)
            | Event::ProviderRemoved(_)
            | Event::IdentityProviderRemoved(_) => {
                self.present = false;
                self.removed = true;
            }
            Event::EnvironmentCertificateRevoked(r) => {
                self.revoked.insert(r.fingerprint);
            }
            _ => {}
        }
    }
}

/// The checks of trust material's contents, before anything is appended.
pub mod validate {
    use accord_events::catalogue::{
        AibomDenyListSet, AttestationVerifierAdded, IdentityProviderAdded, ProviderAdded,
        TrustAnchorAdded,
    };
    use accord_events::common::PublicJwk;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use crate::api::check_capability;
    use crate::jws::VerifyingKey;

    /// Most certificates of one anchor, keys of one provider or IdP, reference values of one
    /// verifier, entries of the deny-list.
    pub const MAX_ITEMS: usize = 64;
    /// Largest AIBOM deny-list.
    pub const MAX_DENY_ENTRIES: usize = 10_000;

    fn count(what: &str, n: usize, max: usize) -> Result<(), String> {
        if n == 0 || n > max {
            return Err(format!("{n} {what} (1 to {max})"));
        }
        Ok(())
    }

    fn keys(what: &str, keys: &[PublicJwk]) -> Result<(), String> {
        count(what, keys.len(), MAX_ITEMS)?;
        for (i, k) in keys.iter().enumerate() {
            VerifyingKey::from_jwk(k).map_err(|e| format!("{what} #{i}: {e}"))?;
        }
        Ok(())
    }

    fn text(what: &str, s: &str, max: usize) -> Result<(), String> {
        if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
            return Err(format!("{what}: 1 to {max} bytes, no control characters"));
        }
        Ok(())
    }

    /// The DER certificates of an anchor, decoded: each a CA certificate (basic constraints
    /// cA), root first, the fingerprints matching.
    pub fn anchor(a: &TrustAnchorAdded) -> Result<Vec<Vec<u8>>, String> {
        count("certificates", a.certificates_der.len(), 8)?;
        if a.fingerprints.len() != a.certificates_der.len() {
            return Err("one fingerprint per certificate".into());
        }
        let mut out = Vec::new();
        for (i, (b64, fp)) in a.certificates_der.iter().zip(&a.fingerprints).enumerate() {
            let der = STANDARD
                .decode(b64)
                .map_err(|_| format!("certificate #{i} is not base64"))?;
            if accord_events::Digest::sha256(&der) != *fp {
                return Err(format!("fingerprint #{i} is not the certificate's"));
            }
            let (rest, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| format!("certificate #{i}: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("certificate #{i} has trailing bytes"));
            }
            if !cert.is_ca() {
                return Err(format!("certificate #{i} is not a CA certificate"));
            }
            out.push(der);
        }
        Ok(out)
    }

    pub fn verifier(v: &AttestationVerifierAdded) -> Result<(), String> {
        if !v.keys.is_empty() {
            keys("keys", &v.keys)?;
        }
        count("reference values", v.reference_values.len(), MAX_ITEMS)?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &v.reference_values {
            if r.component.is_empty()
                || r.component.len() > 64
                || !r
                    .component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(format!(
                    "component {:?}: 1 to 64 of [a-z0-9._-]",
                    r.component
                ));
            }
            if !seen.insert(&r.component) {
                return Err(format!("component {:?} listed twice", r.component));
            }
            count("digests", r.digests.len(), MAX_ITEMS)?;
        }
        Ok(())
    }

    pub fn provider(p: &ProviderAdded) -> Result<(), String> {
        text("name", &p.name, 128)?;
        keys("endorsement keys", &p.endorsement_keys)?;
        if p.endorsable_capabilities.len() > crate::api::MAX_CAPABILITIES {
            return Err("too many endorsable capabilities".into());
        }
        p.endorsable_capabilities
            .iter()
            .try_for_each(|c| check_capability(c))
    }

    pub fn identity_provider(i: &IdentityProviderAdded) -> Result<(), String> {
        text("issuer", &i.issuer, 512)?;
        if !i.issuer.starts_with("https://") {
            return Err("issuer must be an https URL (OpenID Connect)".into());
        }
        count("audiences", i.audiences.len(), MAX_ITEMS)?;
        for a in &i.audiences {
            text("audience", a, 512)?;
        }
        keys("keys", &i.keys)
    }

    pub fn deny_list(l: &AibomDenyListSet) -> Result<(), String> {
        if l.entries.len() > MAX_DENY_ENTRIES {
            return Err(format!(
                "{} entries, at most {MAX_DENY_ENTRIES}",
                l.entries.len()
            ));
        }
        crate::evidence::aibom::check_deny_list(l).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[path = "trust/tests.rs"]
mod tests;
