//! The evidence checks of one credential request, in order: initial trust (the environment's
//! identity certificate), attestation (an EAT signed by that certificate's key, with a nonce
//! this ACA issued), the AI bill of materials, the provider's endorsement (over the key, name,
//! version and AIBOM digest) and the owner binding. Each part is checked when present, and an
//! invalid part refuses the request whatever the policy requires; what is absent is reported
//! to the issuance policy, which decides whether that is acceptable.

use std::collections::{BTreeMap, BTreeSet};

use accord_events::catalogue::{AttestationResult, CheckKind, CheckOutcome, CheckRecord, Owner};
use accord_events::{AgentId, Digest, KeyId, MaterialId, SpiffeId};
use accord_policy::inputs::CheckState;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::api::Evidence;
use crate::evidence::material::TrustSnapshot;
use crate::evidence::nonce::{NonceError, Nonces, Purpose};
use crate::evidence::{aibom, eat, endorsement, initial_trust, owner};
use crate::jws::VerifyingKey;

/// How old an EAT may be, seconds.
pub const EAT_MAX_AGE_SECS: i64 = 300;

/// Why a piece of evidence was refused: the check, a stable kind (the problem type) and what
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check:?}: {detail}")]
pub struct EvidenceError {
    pub check: CheckKind,
    pub kind: &'static str,
    pub detail: String,
    /// The evidence store failed (not the agent's fault: 503).
    pub unavailable: bool,
}

impl EvidenceError {
    fn new(check: CheckKind, kind: &'static str, detail: impl ToString) -> Self {
        Self {
            check,
            kind,
            detail: detail.to_string(),
            unavailable: false,
        }
    }
}

/// What the request's evidence established.
#[derive(Debug, Default)]
pub struct Checked {
    /// For the issuance policy: `passed` or `absent`, per check.
    pub states: BTreeMap<String, CheckState>,
    /// For the issuance event, in pipeline order.
    pub records: Vec<CheckRecord>,
    pub attestation: Option<AttestationResult>,
    pub trust_vector: BTreeMap<String, i8>,
    pub aibom_digest: Option<Digest>,
    pub endorsed: Option<BTreeSet<String>>,
    pub owner: Option<Owner>,
    pub owner_scope: Option<BTreeSet<String>>,
    /// When the owner binding ends (Unix seconds).
    pub owner_expires_at: Option<i64>,
    /// Digest of the ID token or role grant that established the binding.
    pub owner_evidence: Option<Digest>,
}

impl Checked {
    fn passed(
        &mut self,
        check: CheckKind,
        name: &str,
        evidence: Digest,
        against: Option<MaterialId>,
    ) {
        self.states.insert(name.to_owned(), CheckState::Passed);
        self.records.push(CheckRecord {
            check,
            outcome: CheckOutcome::Passed,
            evidence: Some(evidence),
            against,
        });
    }

    fn absent(&mut self, check: CheckKind, name: &str) {
        self.states.insert(name.to_owned(), CheckState::Absent);
        self.records.push(CheckRecord {
            check,
            outcome: CheckOutcome::NotRequired,
            evidence: None,
            against: None,
        });
    }
}

/// The facts the evidence is checked against.
#[derive(Debug)]
pub struct Subject<'a> {
    pub agent_id: &'a AgentId,
    pub spiffe_id: &'a SpiffeId,
    pub name: &'a str,
    /// The provider the agent was provisioned under, when any: an endorsement must be its.
    pub provider_id: Option<&'a MaterialId>,
    pub key_thumbprint: &'a KeyId,
    pub issuer: &'a str,
    pub domain_key: &'a VerifyingKey,
    pub now: i64,
}

/// The nonce an EAT carries, read before its signature is checked only to look it up; the
/// appraisal then checks the signed token carries exactly it.
fn nonce_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims = crate::jws::parse_object(&bytes).ok()?;
    claims
        .get("eat_nonce")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// Runs every check of `ev` against `trust`.
pub async fn check(
    ev: &Evidence,
    trust: &TrustSnapshot,
    chains: &initial_trust::ChainCache,
    nonces: &Nonces,
    s: &Subject<'_>,
) -> Result<Checked, EvidenceError> {
    let mut out = Checked::default();

    // 1. initial trust: the environment's identity certificate chains to a manufacturer CA
    let identity = match &ev.identity_chain {
        Some(pem) => {
            let e = |x: initial_trust::InitialTrustError| {
                EvidenceError::new(CheckKind::InitialTrust, x.kind(), &x)
            };
            let chain = initial_trust::parse_chain_pem(pem).map_err(e)?;
            let id = chains
                .check(trust.version, &chain, &trust.anchors, &trust.revoked, s.now)
                .map_err(e)?;
            out.passed(
                CheckKind::InitialTrust,
                "initial_trust",
                id.leaf_fingerprint.clone(),
                Some(id.anchor_id.clone()),
            );
            Some(id)
        }
        None => {
            out.absent(CheckKind::InitialTrust, "initial_trust");
            None
        }
    };

    // 2. attestation: an EAT by the identity certificate's key, fresh (our nonce, once)
    match &ev.eat {
        Some(token) => {
            let err = |kind, d: String| EvidenceError::new(CheckKind::Attestation, kind, d);
            let identity = identity.as_ref().ok_or_else(|| {
                err(
                    "eat-no-identity",
                    "attestation evidence needs the environment's identity certificate (its key signs the evidence)".into(),
                )
            })?;
            let nonce = nonce_of(token)
                .ok_or_else(|| err("eat-nonce", "the evidence carries no eat_nonce".into()))?;
            if trust.verifiers.is_empty() {
                return Err(err(
                    "eat-no-verifier",
                    "no attestation verifier (reference values) is trusted".into(),
                ));
            }
            // the first verifier whose reference values the measurements meet
            let mut last = None;
            let mut appraisal = None;
            for (id, refs) in &trust.verifiers {
                let exp = eat::Expectations {
                    nonce: &nonce,
                    key: &identity.attestation_key,
                    verifier_id: id,
                    reference_values: refs,
                    now: s.now,
                    max_age_secs: EAT_MAX_AGE_SECS,
                };
                match eat::appraise(token, &exp) {
                    Ok(a) => {
                        appraisal = Some(a);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let a = match (appraisal, last) {
                (Some(a), _) => a,
                (None, Some(e)) => return Err(err(e.kind(), e.to_string())),
                (None, None) => return Err(err("eat-no-verifier", "no verifier".into())),
            };
            // spent only once everything about the evidence held
            nonces
                .consume(&nonce, s.agent_id, Purpose::Attestation)
                .await
                .map_err(|e| {
                    let mut x = err(e.kind(), e.to_string());
                    x.unavailable = matches!(e, NonceError::Unavailable(_));
                    x
                })?;
            let tv = &a.result.trust_vector;
            for (k, v) in [
                ("instance_identity", tv.instance_identity),
                ("configuration", tv.configuration),
                ("executables", tv.executables),
                ("file_system", tv.file_system),
                ("hardware", tv.hardware),
                ("runtime_opaque", tv.runtime_opaque),
                ("storage_opaque", tv.storage_opaque),
                ("sourced_data", tv.sourced_data),
            ] {
                if let Some(v) = v {
                    out.trust_vector.insert(k.to_owned(), v);
                }
            }
            out.passed(
                CheckKind::Attestation,
                "attestation",
                a.result.evidence.clone(),
                Some(a.result.verifier_id.clone()),
            );
            out.attestation = Some(a.result);
        }
        None => out.absent(CheckKind::Attestation, "attestation"),
    }

    // 3. the AI bill of materials, against the deny-list
    let bom = match &ev.aibom {
        Some(b64) => {
            let bytes = STANDARD.decode(b64).map_err(|_| {
                EvidenceError::new(
                    CheckKind::Aibom,
                    "aibom-malformed",
                    "the AIBOM is not base64 (standard alphabet)",
                )
            })?;
            let checked = aibom::check(&bytes, &trust.deny)
                .map_err(|e| EvidenceError::new(CheckKind::Aibom, e.kind(), &e))?;
            out.passed(CheckKind::Aibom, "aibom", checked.digest.clone(), None);
            out.aibom_digest = Some(checked.digest.clone());
            Some(checked)
        }
        None => {
            out.absent(CheckKind::Aibom, "aibom");
            None
        }
    };

    // 4. the provider's endorsement of this key, name, version and AIBOM
    match &ev.endorsement {
        Some(token) => {
            let err = |kind, d: String| EvidenceError::new(CheckKind::ProviderEndorsement, kind, d);
            let bom = bom.as_ref().ok_or_else(|| {
                err(
                    "endorsement-no-aibom",
                    "an endorsement covers the AIBOM's digest: send the AIBOM too".into(),
                )
            })?;
            let expected = endorsement::Expected {
                key_thumbprint: s.key_thumbprint,
                agent_name: s.name,
                agent_version: &bom.agent_version,
                aibom_digest: &bom.digest,
            };
            let e = endorsement::verify(token, &trust.providers, &expected, s.now)
                .map_err(|e| err(e.kind(), e.to_string()))?;
            if let Some(p) = s.provider_id
                && *p != e.provider_id
            {
                return Err(err(
                    "endorsement-other-provider",
                    format!(
                        "the agent was provisioned under provider {p}, the endorsement is by {}",
                        e.provider_id
                    ),
                ));
            }
            out.passed(
                CheckKind::ProviderEndorsement,
                "provider_endorsement",
                e.digest.clone(),
                Some(e.provider_id.clone()),
            );
            out.endorsed = Some(e.capabilities);
        }
        None => out.absent(CheckKind::ProviderEndorsement, "provider_endorsement"),
    }

    // 5. on whose behalf: an ID token of a trusted IdP, or a role grant of this domain
    let binding = match (&ev.owner_id_token, &ev.owner_role_grant) {
        (Some(_), Some(_)) => {
            return Err(EvidenceError::new(
                CheckKind::OwnerBinding,
                "owner-ambiguous",
                "send an ID token or a role grant, not both",
            ));
        }
        (Some(t), None) => Some(owner::verify_id_token(t, &trust.idps, s.now)),
        (None, Some(t)) => Some(owner::verify_role_grant(
            t,
            s.domain_key,
            s.issuer,
            s.spiffe_id,
            s.now,
        )),
        (None, None) => None,
    };
    match binding {
        Some(b) => {
            let b = b.map_err(|e| EvidenceError::new(CheckKind::OwnerBinding, e.kind(), &e))?;
            // an ID token binds the agent its owner nonce was issued to, once: spent only once
            // everything about the evidence held
            if let Some(n) = &b.nonce {
                nonces
                    .consume(n, s.agent_id, Purpose::Owner)
                    .await
                    .map_err(|e| {
                        let mut x = EvidenceError::new(
                            CheckKind::OwnerBinding,
                            e.kind_for(Purpose::Owner),
                            &e,
                        );
                        x.unavailable = matches!(e, NonceError::Unavailable(_));
                        x
                    })?;
            }
            out.passed(
                CheckKind::OwnerBinding,
                "owner_binding",
                b.evidence.clone(),
                b.against.clone(),
            );
            out.owner = Some(b.owner);
            out.owner_scope = Some(b.scope);
            out.owner_expires_at = Some(b.expires_at);
            out.owner_evidence = Some(b.evidence);
        }
        None => out.absent(CheckKind::OwnerBinding, "owner_binding"),
    }
    Ok(out)
}
