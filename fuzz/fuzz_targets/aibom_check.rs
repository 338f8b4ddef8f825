//! The AIBOM check on outside input, under a small fixed deny-list: never a panic. Whatever is
//! accepted is self-consistent (its digest is the input's, its counts within the limits), the
//! deny-list only ever narrows what is accepted (everything but a denial or an unevaluable
//! range is the same answer with and without it), and an accepted BOM written out again by
//! serde_json is accepted again with the same report.
#![no_main]

use std::sync::OnceLock;

use accord_authority::evidence::aibom::{self, AibomError, MAX_AIBOM_BYTES, MAX_COMPONENTS};
use accord_events::Digest;
use accord_events::catalogue::{AibomDenyEntry, AibomDenyListSet, AibomMatcher};
use libfuzzer_sys::fuzz_target;

/// Entries that match parts of the seed BOM (tests/data/aibom/agent.cdx.json), so the
/// denial and range paths are reached.
fn deny() -> &'static AibomDenyListSet {
    static DENY: OnceLock<AibomDenyListSet> = OnceLock::new();
    DENY.get_or_init(|| {
        let e = |id: &str, matcher| AibomDenyEntry {
            id: id.into(),
            matcher,
            reason: "fuzz".into(),
        };
        let purl = |p: &str, v: Option<&str>| AibomMatcher::Purl {
            purl: p.into(),
            vers: v.map(Into::into),
        };
        let list = AibomDenyListSet {
            entries: vec![
                e(
                    "weights",
                    AibomMatcher::Hash {
                        alg: "SHA-256".into(),
                        content: "9f2b8c7e5a1d4f3b6c0e8a7d2b5f1c4e9a3d6b0f7c2e5a8d1b4f7c0e3a6d9b2f"
                            .into(),
                    },
                ),
                e(
                    "transformers",
                    purl(
                        "pkg:pypi/transformers",
                        Some("vers:semver/>=4.40.0|<4.44.0"),
                    ),
                ),
                e(
                    "torch",
                    purl(
                        "pkg:pypi/torch",
                        Some("vers:semver/=2.3.0|>=2.5.0|!=2.5.1|<2.6.0"),
                    ),
                ),
                e("model", purl("pkg:huggingface/Evil/backdoored-llm", None)),
                e(
                    "lang-tool",
                    purl("pkg:pypi/lang-tool", Some("vers:semver/*")),
                ),
            ],
        };
        aibom::check_deny_list(&list).expect("the fuzz deny-list is well-formed");
        list
    })
}

fuzz_target!(|data: &[u8]| {
    let empty = AibomDenyListSet { entries: vec![] };
    let open = aibom::check(data, &empty);
    let screened = aibom::check(data, deny());
    match (&open, &screened) {
        (Err(e), s) => assert_eq!(
            s,
            &Err(e.clone()),
            "the deny-list changed a structural answer"
        ),
        (Ok(c), Ok(s)) => assert_eq!(c, s),
        (Ok(_), Err(AibomError::Denied { .. } | AibomError::Unevaluable { .. })) => {}
        (Ok(_), Err(other)) => panic!("accepted without a deny-list, then {other:?}"),
    }
    let Ok(c) = open else { return };
    assert!(data.len() <= MAX_AIBOM_BYTES);
    assert_eq!(c.digest, Digest::sha256(data));
    assert!(c.components <= MAX_COMPONENTS && c.models <= c.components);
    assert!(!c.agent_name.is_empty() && !c.agent_version.is_empty());
    // written out again (numbers may grow: only when it still fits)
    let value: serde_json::Value = serde_json::from_slice(data).expect("accepted JSON parses");
    let again = serde_json::to_vec(&value).expect("a Value serializes");
    if again.len() <= MAX_AIBOM_BYTES {
        let c2 = aibom::check(&again, &empty).expect("the rewritten BOM is accepted");
        assert_eq!(
            (c2.agent_name, c2.agent_version),
            (c.agent_name, c.agent_version)
        );
        assert_eq!(
            (c2.models, c2.datasets, c2.components),
            (c.models, c.datasets, c.components)
        );
    }
});
