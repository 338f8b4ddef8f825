//! `schemas/policy/` is generated from the input types; this test keeps it current
//! (`ACCORD_BLESS=1` rewrites it) and checks that typed inputs drive the shipped policies.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use accord_policy::inputs::*;
use accord_policy::{Bundle, BundleRef, LocalPdp};

#[test]
fn policy_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/policy");
    let bless = std::env::var_os("ACCORD_BLESS").is_some();
    for (name, schema) in schemas() {
        let mut text = serde_json::to_string_pretty(&schema).unwrap();
        text.push('\n');
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "schemas/policy/{name} is stale: ACCORD_BLESS=1 cargo test -p accord-policy --test schemas"
        );
    }
}

#[test]
fn typed_inputs_drive_the_library() {
    let pdp = LocalPdp::new();
    let b = Bundle::library();
    pdp.load(
        &b,
        BundleRef {
            name: "default".into(),
            version: 1,
            digest: b.digest(),
            published_seq: 0,
        },
    )
    .unwrap();
    let issuance = IssuanceInput {
        checks: [
            "proof_of_possession",
            "initial_trust",
            "attestation",
            "aibom",
            "provider_endorsement",
            "owner_binding",
        ]
        .into_iter()
        .map(|c| (c.to_owned(), CheckState::Passed))
        .collect(),
        requested_capabilities: vec!["mail.send".into(), "files.delete".into()],
        endorsed_capabilities: Some(vec!["mail.send".into(), "files.delete".into()]),
        owner_scope: Some(vec!["mail.send".into()]),
        attestation: Some(Attestation {
            trust_vector: [
                "instance_identity",
                "executables",
                "hardware",
                "configuration",
            ]
            .into_iter()
            .map(|c| (c.to_owned(), 2))
            .collect(),
        }),
        lifetime_secs: 3600,
        subject: None,
        renewal: false,
    };
    let d = pdp
        .decide("issuance", &serde_json::to_value(&issuance).unwrap())
        .unwrap();
    assert!(d.is_allowed(), "{:?}", d.reasons());
    assert_eq!(d.result_set("capabilities"), vec!["mail.send".to_owned()]);
    let result: DecisionResult = serde_json::from_value(d.result().clone()).unwrap();
    assert!(result.allow);

    let discovery = DiscoveryInput {
        requester: Requester {
            id: "spiffe://org-a.example/agent/r".into(),
            domain: "org-a".into(),
            ..Default::default()
        },
        query: DiscoveryQuery::default(),
        record: DiscoveryRecord {
            agent_id: "x".into(),
            domain: "org-a".into(),
            status: "registered".into(),
            visibility: "domain".into(),
            capabilities: vec!["calendar.read".into(), "admin.reset".into()],
            ..Default::default()
        },
    };
    let d = pdp
        .decide("discovery", &serde_json::to_value(&discovery).unwrap())
        .unwrap();
    assert!(d.is_allowed());
    assert_eq!(
        d.result_set("capabilities"),
        vec!["calendar.read".to_owned()]
    );
}
