//! One realistic value of every event type, for tests, fixtures and benchmarks.

use std::collections::BTreeSet;

use crate::catalogue::*;
use crate::common::{Actor, Digest, DomainKey, PublicJwk, Timestamp};
use crate::envelope::{AggregateRef, Envelope, Metadata};
use crate::ids::*;
use crate::subject::AggregateKind;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("sample timestamp")
}

fn digest(tag: &str) -> Digest {
    Digest::sha256(tag.as_bytes())
}

fn kid(tag: &str) -> KeyId {
    crate::signing::ed25519_thumbprint(tag.as_bytes())
}

fn caps(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mat(s: &str) -> MaterialId {
    MaterialId::parse(s).expect("sample material id")
}

fn serial(s: &str) -> CredentialSerial {
    CredentialSerial::parse(s).expect("sample serial")
}

/// The sample agent id.
pub fn agent_id() -> AgentId {
    AgentId::parse("0193a4d2-7c1e-7b3a-9f00-0123456789ab").expect("sample agent id")
}

/// The sample domain.
pub fn domain() -> DomainId {
    DomainId::parse("org-a").expect("sample domain")
}

pub fn trust_domain() -> TrustDomain {
    TrustDomain::parse("org-a.example").expect("sample trust domain")
}

fn spiffe() -> SpiffeId {
    SpiffeId::for_agent(&trust_domain(), &agent_id())
}

fn ec_jwk() -> PublicJwk {
    PublicJwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into()),
        y: Some("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into()),
        n: None,
        e: None,
        kid: Some("verifier-1".into()),
        alg: Some("ES256".into()),
        use_: Some("sig".into()),
    }
}

fn domain_key() -> DomainKey {
    DomainKey {
        kid: KeyId::parse("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k").expect("kid"),
        alg: "Ed25519".into(),
        public_key: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
    }
}

fn owner() -> Owner {
    Owner {
        subject: "alice@org-a.example".into(),
        issuer: "https://idp.org-a.example".into(),
        kind: OwnerBindingKind::IdToken,
    }
}

fn credential_requested() -> CredentialRequested {
    CredentialRequested {
        csr_digest: digest("csr"),
        key_thumbprint: kid("agent-key"),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        requested_capabilities: caps(&["calendar.read", "mail.send"]),
    }
}

fn owner_bound() -> OwnerBound {
    OwnerBound {
        owner: owner(),
        scope: caps(&["calendar.read", "mail.send", "files.read"]),
        evidence: digest("id-token"),
        expires_at: Some(ts("2026-12-26T09:00:00.000000Z")),
    }
}

fn issued_credential() -> IssuedCredential {
    IssuedCredential {
        serial: serial("5a0c3e8b9f1d2a4c6e8f0a1b3c5d7e9f"),
        spiffe_id: spiffe(),
        key_thumbprint: kid("agent-key"),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        not_before: ts("2026-11-26T09:00:00.000000Z"),
        not_after: ts("2026-11-26T10:00:00.000000Z"),
        capabilities: caps(&["calendar.read", "mail.send"]),
        owner: Some(owner()),
        aibom_digest: Some(digest("aibom")),
        attestation: Some(AttestationResult {
            verifier_id: mat("tpm-verifier"),
            evidence: digest("eat"),
            trust_vector: TrustVector {
                instance_identity: Some(2),
                configuration: Some(2),
                executables: Some(2),
                file_system: None,
                hardware: Some(2),
                runtime_opaque: None,
                storage_opaque: None,
                sourced_data: None,
            },
            appraised_at: ts("2026-11-26T09:00:00.000000Z"),
        }),
        certificate_der: "MIIBszCCAVmgAwIBAgIQWgw+i58dKkxujwobPF1+nzAKBggqhkjOPQQDAjA=".into(),
        wit_jti: Some("wit-0193a4d2".into()),
        issuer_key: kid("ca-key"),
    }
}

fn checks() -> Vec<CheckRecord> {
    vec![
        CheckRecord {
            check: CheckKind::ProofOfPossession,
            outcome: CheckOutcome::Passed,
            evidence: Some(digest("csr")),
            against: None,
        },
        CheckRecord {
            check: CheckKind::Attestation,
            outcome: CheckOutcome::Passed,
            evidence: Some(digest("eat")),
            against: Some(mat("tpm-verifier")),
        },
        CheckRecord {
            check: CheckKind::ProviderEndorsement,
            outcome: CheckOutcome::NotRequired,
            evidence: None,
            against: None,
        },
    ]
}

fn policy_ref() -> PolicyRef {
    PolicyRef {
        bundle: "issuance".into(),
        version: 3,
        digest: digest("bundle"),
        at_seq: 1234,
    }
}

/// A sample value of the named event type.
pub fn event(name: &str) -> Option<Event> {
    Some(match name {
        "DomainCreated" => DomainCreated {
            domain_id: domain(),
            trust_domain: trust_domain(),
            event_signing_keys: vec![domain_key()],
            audit_keys: vec![domain_key()],
            config: GenesisConfig {
                replicas: 1,
                duplicate_window_secs: 120,
                token_shards: 64,
            },
        }
        .into(),
        "TrustAnchorAdded" => TrustAnchorAdded {
            anchor_id: mat("acme-tpm-ca"),
            purpose: AnchorPurpose::ManufacturerCa,
            certificates_der: vec!["MIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMMBnVudXNlZDAeFw0=".into()],
            fingerprints: vec![digest("acme-root")],
        }
        .into(),
        "TrustAnchorRemoved" => TrustAnchorRemoved {
            anchor_id: mat("acme-tpm-ca"),
            reason: "manufacturer CA rotated".into(),
        }
        .into(),
        "AttestationVerifierAdded" => AttestationVerifierAdded {
            verifier_id: mat("tpm-verifier"),
            keys: vec![ec_jwk()],
            reference_values: vec![ReferenceValue {
                component: "model-runtime".into(),
                digests: vec![digest("runtime-1.2.3")],
            }],
        }
        .into(),
        "AttestationVerifierRemoved" => AttestationVerifierRemoved {
            verifier_id: mat("tpm-verifier"),
            reason: "retired".into(),
        }
        .into(),
        "ProviderAdded" => ProviderAdded {
            provider_id: mat("acme-agents"),
            name: "ACME Agents Inc.".into(),
            endorsement_keys: vec![ec_jwk()],
            endorsable_capabilities: vec!["calendar.read".into(), "mail.send".into()],
        }
        .into(),
        "ProviderRemoved" => ProviderRemoved {
            provider_id: mat("acme-agents"),
            reason: "contract ended".into(),
        }
        .into(),
        "IdentityProviderAdded" => IdentityProviderAdded {
            idp_id: mat("corp-idp"),
            issuer: "https://idp.org-a.example".into(),
            audiences: vec!["accord-aca".into()],
            keys: vec![ec_jwk()],
        }
        .into(),
        "IdentityProviderRemoved" => IdentityProviderRemoved {
            idp_id: mat("corp-idp"),
            reason: "migrated".into(),
        }
        .into(),
        "AibomDenyListSet" => AibomDenyListSet {
            entries: vec![
                AibomDenyEntry {
                    id: "poisoned-dataset-7".into(),
                    matcher: AibomMatcher::Hash {
                        alg: "SHA-256".into(),
                        content: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                            .into(),
                    },
                    reason: "training data poisoned".into(),
                },
                AibomDenyEntry {
                    id: "cve-2026-1234".into(),
                    matcher: AibomMatcher::Purl {
                        purl: "pkg:pypi/langtool".into(),
                        vers: Some("vers:semver/>=1.2.0|<1.4.0".into()),
                    },
                    reason: "remote code execution".into(),
                },
            ],
        }
        .into(),
        "EnvironmentCertificateRevoked" => EnvironmentCertificateRevoked {
            anchor_id: mat("acme-devices"),
            fingerprint: digest("idevid"),
            reason: "device reported stolen".into(),
        }
        .into(),
        "AgentProvisioned" => AgentProvisioned {
            agent_id: agent_id(),
            spiffe_id: spiffe(),
            name: "travel-planner".into(),
            provider_id: Some(mat("acme-agents")),
            requested_capabilities: caps(&["calendar.read", "mail.send"]),
        }
        .into(),
        "CredentialRequested" => credential_requested().into(),
        "CredentialIssued" => CredentialIssued {
            request: Some(credential_requested()),
            credential: issued_credential(),
            checks: checks(),
            policy: policy_ref(),
            owner_bound: Some(owner_bound()),
        }
        .into(),
        "CredentialRenewed" => CredentialRenewed {
            request: Some(credential_requested()),
            previous_serial: serial("0f"),
            same_key: true,
            credential: issued_credential(),
            checks: checks(),
            policy: policy_ref(),
            owner_bound: None,
        }
        .into(),
        "CredentialRevoked" => CredentialRevoked {
            serials: vec![serial("5a0c3e8b9f1d2a4c6e8f0a1b3c5d7e9f")],
            reason: RevocationReason::KeyCompromise,
            revoked_at: ts("2026-11-26T09:30:00.000000Z"),
            triggered_by: None,
        }
        .into(),
        "CredentialExpired" => CredentialExpired {
            serial: serial("5a0c3e8b9f1d2a4c6e8f0a1b3c5d7e9f"),
            expired_at: ts("2026-11-26T10:00:00.000000Z"),
        }
        .into(),
        "KeyRotated" => KeyRotated {
            old_key: kid("agent-key"),
            new_key: kid("agent-key-2"),
            old_serial: serial("5a0c3e8b9f1d2a4c6e8f0a1b3c5d7e9f"),
            new_serial: serial("6b"),
            grace_until: ts("2026-11-26T09:45:00.000000Z"),
        }
        .into(),
        "OwnerBound" => owner_bound().into(),
        "OwnerUnbound" => OwnerUnbound {
            owner: owner(),
            reason: "owner left the organization".into(),
        }
        .into(),
        "CompromiseReported" => CompromiseReported {
            reported_by: "spiffe://org-a.example/operator/alice".into(),
            details: "agent key found in a public repository".into(),
        }
        .into(),
        "AgentRegistered" => AgentRegistered {
            spiffe_id: spiffe(),
            credential_serial: serial("5a0c3e8b9f1d2a4c6e8f0a1b3c5d7e9f"),
            name: "travel-planner".into(),
            description: "Plans trips within the travel policy".into(),
            capabilities: caps(&["calendar.read", "mail.send"]),
            owner: Some(owner()),
            aibom_digest: Some(digest("aibom")),
            endpoints: vec![Endpoint {
                url: "https://agents.org-a.example/travel".into(),
                transport: "JSONRPC".into(),
            }],
            agent_card_digest: Some(digest("card")),
            skills: vec![Skill {
                id: "plan-trip".into(),
                name: "Plan a trip".into(),
                description: "Finds flights and hotels within the travel policy".into(),
                tags: caps(&["travel", "booking"]),
            }],
            audience: Audience {
                visibility: Visibility::Team,
                team: Some("travel".into()),
            },
            card: CardFields {
                version: "2.1.0".into(),
                input_modes: vec!["text/plain".into(), "application/json".into()],
                output_modes: vec!["application/json".into()],
                streaming: true,
            },
        }
        .into(),
        "AgentUpdated" => AgentUpdated {
            description: Some("Plans and books trips".into()),
            endpoints: None,
            agent_card_digest: None,
            credential_serial: Some(serial("6b")),
            skills: None,
            audience: Some(Audience {
                visibility: Visibility::Domain,
                team: None,
            }),
            card: None,
        }
        .into(),
        "AgentSuspended" => AgentSuspended {
            reason: "anomalous traffic".into(),
        }
        .into(),
        "AgentDecommissioned" => AgentDecommissioned {
            reason: "replaced by v2".into(),
        }
        .into(),
        "RegistrationRejected" => RegistrationRejected {
            requester: spiffe(),
            reason: RegistrationRejection::CapabilitiesMismatch,
            request_digest: digest("request"),
        }
        .into(),
        "PolicyBundlePublished" => PolicyBundlePublished {
            bundle: "issuance".into(),
            version: 3,
            digest: digest("bundle"),
            files: vec![BundleFile {
                path: "issuance.rego".into(),
                content: "package accord.issuance\n\ndefault allow := false\n".into(),
            }],
        }
        .into(),
        "TokenIssued" => TokenIssued {
            jti: Jti::parse("tok-0193a4d2").expect("jti"),
            token_digest: digest("token"),
            token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
            subject: spiffe().to_string(),
            client_id: "travel-planner".into(),
            audience: caps(&["https://api.org-a.example"]),
            scope: caps(&["calendar.read"]),
            issued_at: ts("2026-11-26T09:00:00.000000Z"),
            expires_at: ts("2026-11-26T09:05:00.000000Z"),
        }
        .into(),
        "TokenExchanged" => TokenExchanged {
            jti: Jti::parse("txn-0193a4d2").expect("jti"),
            token_digest: digest("txn-token"),
            issued_token_type: "urn:ietf:params:oauth:token-type:txn_token".into(),
            subject_token: "tok-0193a4d2".into(),
            actor_token: None,
            subject: spiffe().to_string(),
            actor: None,
            grant_type: "urn:ietf:params:oauth:grant-type:token-exchange".into(),
            audience: caps(&["org-a.example"]),
            scope: caps(&["calendar.read"]),
            resource: vec![],
            issued_at: ts("2026-11-26T09:00:01.000000Z"),
            expires_at: ts("2026-11-26T09:01:01.000000Z"),
        }
        .into(),
        "PeerAdded" => PeerAdded {
            peer: DomainId::parse("org-b").expect("peer"),
            trust_domain: TrustDomain::parse("org-b.example").expect("td"),
            event_signing_keys: vec![domain_key()],
            ca_certificates_der: vec!["MIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBExDzANBgNVBAMMBnVudXNlZDAeFw0=".into()],
            leaf_url: "tls://leaf.org-b.example:7422".into(),
            accepted_event_types: vec![EventTypeName::parse("CredentialRevoked").expect("type")],
        }
        .into(),
        "PeerRemoved" => PeerRemoved {
            peer: DomainId::parse("org-b").expect("peer"),
            reason: "federation agreement ended".into(),
        }
        .into(),
        "IdentifierMapped" => IdentifierMapped {
            external: "spiffe://org-b.example/agent/0193a4d2-7c1e-7b3a-9f00-0123456789ac".into(),
            form: IdentifierForm::Spiffe,
            peer: DomainId::parse("org-b").expect("peer"),
            local: "urn:accord:org-b:agent:0193a4d2-7c1e-7b3a-9f00-0123456789ac".into(),
            rule: "spiffe-agent-path".into(),
            origin_seq: 42,
            origin_time: ts("2026-11-26T08:59:00.000000Z"),
        }
        .into(),
        "CheckpointSigned" => CheckpointSigned {
            tree_size: 1000,
            root_hash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            note: "org-a.example/accord\n1000\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— org-a.example/accord AAAA\n".into(),
            key: kid("audit-key"),
            signed_at: ts("2026-11-26T09:00:00.000000Z"),
        }
        .into(),
        _ => return None,
    })
}

/// The aggregate a sample event of this kind is stored under.
pub fn aggregate(kind: AggregateKind, seq: u64) -> AggregateRef {
    let id = match kind {
        AggregateKind::Domain => "org-a".to_owned(),
        AggregateKind::Trust => "acme-tpm-ca".to_owned(),
        AggregateKind::Agent => agent_id().to_string(),
        AggregateKind::Policy => "issuance".to_owned(),
        AggregateKind::Peer => "org-b".to_owned(),
        AggregateKind::Mapping => "m-7d1f".to_owned(),
        AggregateKind::Token => "017".to_owned(),
        AggregateKind::Audit => "org-a".to_owned(),
    };
    AggregateRef {
        kind,
        id: AggregateId::parse(&id).expect("sample aggregate id"),
        // sharded aggregates have no per-aggregate order
        seq: if kind == AggregateKind::Token { 0 } else { seq },
    }
}

/// A full envelope around the sample of `name`.
pub fn envelope(name: &str) -> Option<Envelope> {
    let event = event(name)?;
    let mut meta = Metadata::new(
        CommandId::parse("0193a4d2-0000-7000-8000-000000000001").expect("command id"),
        Actor {
            subject: "operator:alice".into(),
            caller_type: crate::CallerType::Operator,
            auth_methods: vec![crate::AuthMethod::LocalOperator],
        },
        ts("2026-11-26T09:00:00.123456Z"),
    );
    meta.traceparent = Some(
        crate::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("traceparent"),
    );
    Envelope::new(
        &domain(),
        aggregate(event.aggregate_kind(), 1),
        &meta,
        0,
        &event,
    )
    .ok()
}
