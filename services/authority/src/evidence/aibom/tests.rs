use accord_events::catalogue::{AibomDenyEntry, AibomDenyListSet, AibomMatcher};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// The realistic AIBOM: an agent, one model (whose card names the dataset by ref), one
/// dataset, three libraries with purls, and the full dependencies graph.
const AGENT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/aibom/agent.cdx.json"
));

const MODEL: &str = "model-support-llm";
const DATASET: &str = "dataset-support-tickets";
const TRANSFORMERS: &str = "pkg:pypi/transformers@4.44.2";
const JINJA: &str = "pkg:pypi/jinja2@3.1.4";

fn bom() -> Value {
    serde_json::from_slice(AGENT).unwrap()
}

fn run(v: &Value, deny: &AibomDenyListSet) -> Result<CheckedAibom, AibomError> {
    check(&serde_json::to_vec(v).unwrap(), deny)
}

fn none() -> AibomDenyListSet {
    AibomDenyListSet { entries: vec![] }
}

fn entry(id: &str, matcher: AibomMatcher) -> AibomDenyEntry {
    AibomDenyEntry {
        id: id.into(),
        matcher,
        reason: "test".into(),
    }
}

fn list(entries: Vec<AibomDenyEntry>) -> AibomDenyListSet {
    AibomDenyListSet { entries }
}

fn by_hash(alg: &str, content: &str) -> AibomDenyListSet {
    list(vec![entry(
        "bad-hash",
        AibomMatcher::Hash {
            alg: alg.into(),
            content: content.into(),
        },
    )])
}

fn by_purl(purl: &str, vers: Option<&str>) -> AibomDenyListSet {
    list(vec![entry(
        "bad-purl",
        AibomMatcher::Purl {
            purl: purl.into(),
            vers: vers.map(Into::into),
        },
    )])
}

/// The component (top level or nested) with this bom-ref.
fn comp<'a>(v: &'a mut Value, bom_ref: &str) -> &'a mut Value {
    fn find<'a>(list: &'a mut Value, r: &str) -> Option<&'a mut Value> {
        for c in list.as_array_mut()? {
            if c["bom-ref"] == r {
                return Some(c);
            }
            if c.get("components").is_some()
                && let Some(found) = find(&mut c["components"], r)
            {
                return Some(found);
            }
        }
        None
    }
    find(&mut v["components"], bom_ref).unwrap()
}

fn sha256_of(v: &Value, bom_ref: &str) -> String {
    let mut v = v.clone();
    comp(&mut v, bom_ref)["hashes"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_denied(r: Result<CheckedAibom, AibomError>, component: &str) {
    match r {
        Err(AibomError::Denied { component: c, .. }) => assert_eq!(c, component),
        other => panic!("expected {component} denied, got {other:?}"),
    }
}

fn assert_unevaluable(r: Result<CheckedAibom, AibomError>) {
    assert!(
        matches!(r, Err(AibomError::Unevaluable { .. })),
        "expected unevaluable, got {r:?}"
    );
}

// --- the realistic AIBOM ---

#[test]
fn realistic_aibom_passes_with_the_right_counts() {
    let c = check(AGENT, &none()).unwrap();
    assert_eq!(c.digest, Digest::sha256(AGENT));
    assert_eq!(c.agent_name, "support-agent");
    assert_eq!(c.agent_version, "2.4.1");
    assert_eq!((c.models, c.datasets, c.components), (1, 1, 5));
}

#[test]
fn the_digest_is_of_the_exact_bytes_received() {
    let compact = serde_json::to_vec(&bom()).unwrap();
    let c = check(&compact, &none()).unwrap();
    assert_eq!(c.digest, Digest::sha256(&compact));
    assert_ne!(c.digest, Digest::sha256(AGENT));
}

#[test]
fn an_unrelated_deny_list_lets_it_pass() {
    let deny = list(vec![
        entry(
            "h",
            AibomMatcher::Hash {
                alg: "SHA-256".into(),
                content: "ab".repeat(32),
            },
        ),
        entry(
            "p",
            AibomMatcher::Purl {
                purl: "pkg:pypi/requests".into(),
                vers: Some("vers:pypi/<2.32.0".into()),
            },
        ),
    ]);
    assert!(check(AGENT, &deny).is_ok());
}

// --- deny by hash ---

#[test]
fn a_model_is_denied_by_its_sha256() {
    let v = bom();
    let weights = sha256_of(&v, MODEL);
    // algorithm and hex compare case-insensitively
    assert_denied(run(&v, &by_hash("sha-256", &weights.to_uppercase())), MODEL);
    // the same digest under another algorithm is another digest
    assert!(run(&v, &by_hash("SHA3-256", &weights)).is_ok());
}

#[test]
fn a_dataset_nested_inside_a_component_is_denied() {
    let mut v = bom();
    let dataset = sha256_of(&v, DATASET);
    let components = v["components"].as_array_mut().unwrap();
    let i = components
        .iter()
        .position(|c| c["bom-ref"] == DATASET)
        .unwrap();
    let data = components.remove(i);
    comp(&mut v, MODEL)["components"] = json!([data]);
    // still counted where it now sits
    let c = run(&v, &none()).unwrap();
    assert_eq!((c.models, c.datasets, c.components), (1, 1, 5));
    assert_denied(run(&v, &by_hash("SHA-256", &dataset)), DATASET);
}

#[test]
fn the_agent_itself_is_screened() {
    let v = bom();
    let image = v["metadata"]["component"]["hashes"][0]["content"]
        .as_str()
        .unwrap();
    assert_denied(run(&v, &by_hash("SHA-256", image)), "agent");
}

// --- deny by purl ---

#[test]
fn a_library_is_denied_by_purl_range() {
    let v = bom();
    let p = "pkg:pypi/transformers";
    for denying in [
        None,
        Some("vers:semver/*"),
        Some("vers:semver/>=4.40.0|<4.45.0"),
        Some("vers:semver/<4.45.0"),
        Some("vers:semver/=4.44.2"),
        Some("vers:semver/4.44.2"),
        Some("vers:semver/ >= 4.44.2 "),
        Some("vers:semver/<4.0.0|>=4.44.0|<4.44.5"),
    ] {
        assert_denied(run(&v, &by_purl(p, denying)), TRANSFORMERS);
    }
    for passing in [
        "vers:semver/>=4.45.0|<4.50.0",
        "vers:semver/=4.44.1",
        "vers:semver/>4.44.2",
        "vers:semver/<4.44.2",
        "vers:semver/>=4.0.0|!=4.44.2|<5.0.0",
    ] {
        assert!(run(&v, &by_purl(p, Some(passing))).is_ok(), "{passing}");
    }
}

#[test]
fn build_metadata_does_not_escape_an_exact_version() {
    let mut v = bom();
    let t = comp(&mut v, TRANSFORMERS);
    t["purl"] = json!("pkg:pypi/transformers");
    t["version"] = json!("4.44.2+acme.1");
    let deny = by_purl("pkg:pypi/transformers", Some("vers:semver/=4.44.2"));
    assert_denied(run(&v, &deny), TRANSFORMERS);
}

#[test]
fn a_leading_v_is_read_as_semver() {
    let mut v = bom();
    let t = comp(&mut v, TRANSFORMERS);
    t["purl"] = json!("pkg:pypi/transformers@v4.44.2");
    let deny = by_purl("pkg:pypi/transformers", Some("vers:semver/=4.44.2"));
    assert_denied(run(&v, &deny), TRANSFORMERS);
}

#[test]
fn both_stated_versions_are_evaluated() {
    let deny = by_purl(
        "pkg:pypi/transformers",
        Some("vers:semver/>=4.40.0|<4.45.0"),
    );
    for (purl, version) in [
        ("pkg:pypi/transformers@4.44.2", "4.50.0"),
        ("pkg:pypi/transformers@4.50.0", "4.44.2"),
    ] {
        let mut v = bom();
        let t = comp(&mut v, TRANSFORMERS);
        t["purl"] = json!(purl);
        t["version"] = json!(version);
        assert_denied(run(&v, &deny), TRANSFORMERS);
    }
}

#[test]
fn pypi_names_are_normalized() {
    let mut v = bom();
    comp(&mut v, JINJA)["purl"] = json!("pkg:pypi/Lang_Tool@1.3.0");
    for same in [
        "pkg:pypi/lang-tool",
        "pkg:pypi/LANG.TOOL",
        "pkg:PyPI/lang__tool",
    ] {
        assert_denied(run(&v, &by_purl(same, None)), JINJA);
    }
    let exact = by_purl("pkg:pypi/lang-tool", Some("vers:semver/=1.3.0"));
    assert_denied(run(&v, &exact), JINJA);
    // another project
    assert!(run(&v, &by_purl("pkg:pypi/langtool", None)).is_ok());
}

#[test]
fn huggingface_names_keep_their_case_github_names_do_not() {
    let v = bom();
    assert_denied(
        run(&v, &by_purl("pkg:huggingface/AcmeAgents/support-llm", None)),
        MODEL,
    );
    assert!(run(&v, &by_purl("pkg:huggingface/acmeagents/support-llm", None)).is_ok());
    assert_denied(
        run(&v, &by_purl("pkg:github/ACME-Agents/Support-Agent", None)),
        "agent",
    );
}

#[test]
fn qualifiers_and_subpath_of_a_component_are_ignored() {
    let mut v = bom();
    comp(&mut v, TRANSFORMERS)["purl"] =
        json!("pkg:pypi/transformers@4.44.2?file_name=transformers-4.44.2.tar.gz#src");
    let deny = by_purl("pkg:pypi/transformers", Some("vers:semver/=4.44.2"));
    assert_denied(run(&v, &deny), TRANSFORMERS);
}

// --- what cannot be evaluated fails closed ---

#[test]
fn a_version_that_is_not_semver_is_unevaluable() {
    let mut v = bom();
    let t = comp(&mut v, TRANSFORMERS);
    t["purl"] = json!("pkg:pypi/transformers@1.3");
    t["version"] = json!("1.3");
    let deny = by_purl("pkg:pypi/transformers", Some("vers:semver/>=2.0.0"));
    assert_unevaluable(run(&v, &deny));
}

#[test]
fn a_model_revision_hash_is_unevaluable_unless_another_version_is_in_range() {
    let v = bom();
    let p = "pkg:huggingface/AcmeAgents/support-llm";
    // the purl's version is a commit: not SemVer; 1.2.0 is outside the range
    assert_unevaluable(run(&v, &by_purl(p, Some("vers:semver/>=2.0.0"))));
    // 1.2.0 is inside: denied, whatever the commit
    assert_denied(run(&v, &by_purl(p, Some("vers:semver/<2.0.0"))), MODEL);
}

#[test]
fn a_component_without_a_version_is_unevaluable() {
    let mut v = bom();
    let t = comp(&mut v, TRANSFORMERS);
    t["purl"] = json!("pkg:pypi/transformers");
    t.as_object_mut().unwrap().remove("version");
    let deny = by_purl("pkg:pypi/transformers", Some("vers:semver/<5.0.0"));
    assert_unevaluable(run(&v, &deny));
}

#[test]
fn another_versioning_scheme_is_unevaluable() {
    let v = bom();
    let deny = by_purl("pkg:pypi/transformers", Some("vers:pypi/>=4.0|<5.0"));
    assert_unevaluable(run(&v, &deny));
    // the list that holds it is refused when it is set
    assert!(matches!(
        check_deny_list(&deny),
        Err(AibomError::BadDenyList(_))
    ));
    // `*` needs no comparison, whatever the scheme
    let all = by_purl("pkg:pypi/transformers", Some("vers:pypi/*"));
    assert!(check_deny_list(&all).is_ok());
    assert_denied(run(&v, &all), TRANSFORMERS);
}

// --- limits ---

#[test]
fn an_oversized_aibom_is_refused() {
    let mut b = AGENT.to_vec();
    b.resize(MAX_AIBOM_BYTES, b' ');
    assert!(check(&b, &none()).is_ok());
    b.push(b' ');
    assert_eq!(
        check(&b, &none()),
        Err(AibomError::TooLarge(MAX_AIBOM_BYTES + 1))
    );
}

#[test]
fn a_too_deep_aibom_is_refused() {
    let nest = |n: usize| {
        let mut x = json!(1);
        for _ in 0..n {
            x = json!([x]);
        }
        x
    };
    let mut v = bom();
    // the BOM object is level 1, so 31 arrays inside it reach the limit
    v["properties"] = nest(MAX_DEPTH - 1);
    assert!(run(&v, &none()).is_ok());
    v["properties"] = nest(MAX_DEPTH);
    assert_eq!(run(&v, &none()), Err(AibomError::TooDeep));
    // far deeper than serde_json's own limit: still our typed refusal
    let deep = "[".repeat(10_000);
    assert_eq!(check(deep.as_bytes(), &none()), Err(AibomError::TooDeep));
}

#[test]
fn too_many_components_are_refused_nested_ones_counted() {
    let mut v = bom();
    let files = (0..MAX_COMPONENTS - 5).map(|i| json!({"type": "file", "name": format!("f{i}")}));
    v["components"].as_array_mut().unwrap().extend(files);
    assert_eq!(run(&v, &none()).unwrap().components, MAX_COMPONENTS);
    v["components"][5]["components"] = json!([{"type": "file", "name": "one-more"}]);
    assert_eq!(
        run(&v, &none()),
        Err(AibomError::TooManyComponents(MAX_COMPONENTS + 1))
    );
}

// --- structure ---

#[test]
fn a_duplicate_member_is_refused() {
    let text = std::str::from_utf8(AGENT).unwrap();
    let nested = text.replacen(
        "\"name\": \"torch\",",
        "\"name\": \"torch\", \"name\": \"not-torch\",",
        1,
    );
    assert_ne!(nested, text);
    assert_eq!(
        check(nested.as_bytes(), &none()),
        Err(AibomError::DuplicateMember("name".into()))
    );
    let top = text.replacen("{", "{\"specVersion\": \"1.6\",", 1);
    assert_eq!(
        check(top.as_bytes(), &none()),
        Err(AibomError::DuplicateMember("specVersion".into()))
    );
}

#[test]
fn other_formats_and_versions_are_unsupported() {
    let mut v = bom();
    v["specVersion"] = json!("1.5");
    assert!(matches!(run(&v, &none()), Err(AibomError::Unsupported(_))));
    v["specVersion"] = json!("1.6");
    v["bomFormat"] = json!("SPDX");
    assert!(matches!(run(&v, &none()), Err(AibomError::Unsupported(_))));
    v["bomFormat"] = json!("CycloneDX");
    v.as_object_mut().unwrap().remove("specVersion");
    assert!(matches!(run(&v, &none()), Err(AibomError::Malformed(_))));
}

#[test]
fn not_a_bom_is_malformed() {
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{\"bomFormat\": \"CycloneDX\"} trailing",
        b"\xff\xfe{}",
        b"{\"bomFormat\": 1}",
    ] {
        assert!(
            matches!(check(bad, &none()), Err(AibomError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn an_incomplete_dependencies_graph_is_refused() {
    let incomplete = |edit: &dyn Fn(&mut Value)| {
        let mut v = bom();
        edit(&mut v);
        let r = run(&v, &none());
        assert!(matches!(r, Err(AibomError::Incomplete(_))), "{r:?}");
    };
    // no graph
    incomplete(&|v| {
        v.as_object_mut().unwrap().remove("dependencies");
    });
    // a ref to nothing
    incomplete(&|v| {
        v["dependencies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"ref": "ghost"}))
    });
    // a dependsOn to nothing
    incomplete(&|v| {
        v["dependencies"][0]["dependsOn"]
            .as_array_mut()
            .unwrap()
            .push(json!("ghost"))
    });
    // a component absent from the graph
    incomplete(&|v| {
        v["dependencies"]
            .as_array_mut()
            .unwrap()
            .retain(|d| d["ref"] != "pkg:pypi/torch@2.4.0")
    });
    // a model card's dataset ref to nothing, or to something that is not a dataset
    incomplete(&|v| {
        comp(v, MODEL)["modelCard"]["modelParameters"]["datasets"] = json!([{"ref": "ghost"}])
    });
    incomplete(&|v| {
        comp(v, MODEL)["modelCard"]["modelParameters"]["datasets"] = json!([{"ref": JINJA}])
    });
}

#[test]
fn a_ref_listed_twice_is_malformed() {
    let mut v = bom();
    v["dependencies"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ref": "pkg:pypi/torch@2.4.0", "dependsOn": [JINJA]}));
    assert!(matches!(run(&v, &none()), Err(AibomError::Malformed(_))));
}

#[test]
fn a_model_dataset_or_library_without_purl_or_hash_is_incomplete() {
    for r in [MODEL, DATASET, TRANSFORMERS] {
        let mut v = bom();
        let c = comp(&mut v, r).as_object_mut().unwrap();
        c.remove("purl");
        c.remove("hashes");
        assert!(
            matches!(run(&v, &none()), Err(AibomError::Incomplete(ref w)) if w.contains(r)),
            "{r}"
        );
        // an empty hash list identifies nothing
        comp(&mut v, r)["hashes"] = json!([]);
        assert!(matches!(run(&v, &none()), Err(AibomError::Incomplete(_))));
    }
    // an application (here the agent) may go without
    let mut v = bom();
    let agent = v["metadata"]["component"].as_object_mut().unwrap();
    agent.remove("purl");
    agent.remove("hashes");
    assert!(run(&v, &none()).is_ok());
}

#[test]
fn the_agent_and_the_components_list_are_required() {
    let incomplete = |edit: &dyn Fn(&mut Value)| {
        let mut v = bom();
        edit(&mut v);
        let r = run(&v, &none());
        assert!(matches!(r, Err(AibomError::Incomplete(_))), "{r:?}");
    };
    incomplete(&|v| {
        v["metadata"].as_object_mut().unwrap().remove("component");
    });
    incomplete(&|v| {
        v["metadata"]["component"]
            .as_object_mut()
            .unwrap()
            .remove("version");
    });
    incomplete(&|v| {
        v.as_object_mut().unwrap().remove("components");
    });
}

#[test]
fn malformed_components_are_refused() {
    let malformed = |edit: &dyn Fn(&mut Value)| {
        let mut v = bom();
        edit(&mut v);
        let r = run(&v, &none());
        assert!(matches!(r, Err(AibomError::Malformed(_))), "{r:?}");
    };
    malformed(&|v| comp(v, JINJA)["bom-ref"] = json!(TRANSFORMERS));
    malformed(&|v| comp(v, JINJA)["type"] = json!("model"));
    malformed(&|v| {
        comp(v, JINJA).as_object_mut().unwrap().remove("type");
    });
    malformed(&|v| comp(v, JINJA)["name"] = json!(""));
    malformed(&|v| comp(v, JINJA)["version"] = json!(3));
    malformed(&|v| comp(v, JINJA)["hashes"][0]["content"] = json!("abcd"));
    malformed(&|v| comp(v, JINJA)["hashes"][0]["content"] = json!("zz".repeat(32)));
    malformed(&|v| comp(v, JINJA)["hashes"][0]["alg"] = json!("SHA-224"));
    malformed(&|v| comp(v, JINJA)["purl"] = json!("pypi/jinja2@3.1.4"));
    malformed(&|v| comp(v, JINJA)["components"] = json!({"type": "file"}));
    malformed(&|v| comp(v, DATASET)["data"][0]["type"] = json!("corpus"));
    malformed(&|v| v["components"] = json!([1]));
    malformed(&|v| v["dependencies"][0]["extra"] = json!(true));
}

#[test]
fn inline_model_card_datasets_are_counted() {
    let mut v = bom();
    comp(&mut v, MODEL)["modelCard"]["modelParameters"]["datasets"] = json!([
        {"ref": DATASET},
        {"type": "dataset", "name": "synthetic-dialogues", "classification": "public"},
    ]);
    let c = run(&v, &none()).unwrap();
    assert_eq!((c.models, c.datasets, c.components), (1, 2, 5));
    comp(&mut v, MODEL)["modelCard"]["modelParameters"]["datasets"][1]["type"] = json!("blob");
    assert!(matches!(run(&v, &none()), Err(AibomError::Malformed(_))));
}

#[test]
fn services_may_be_named_in_the_graph() {
    let mut v = bom();
    v["services"] = json!([{"bom-ref": "svc-tickets", "name": "ticket-api"}]);
    // a service with a bom-ref belongs in the graph too
    assert!(matches!(run(&v, &none()), Err(AibomError::Incomplete(_))));
    v["dependencies"][0]["dependsOn"]
        .as_array_mut()
        .unwrap()
        .push(json!("svc-tickets"));
    v["dependencies"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ref": "svc-tickets"}));
    assert!(run(&v, &none()).is_ok());
}

// --- the deny-list ---

#[test]
fn malformed_deny_entries_are_rejected() {
    let h = |alg: &str, content: &str| AibomMatcher::Hash {
        alg: alg.into(),
        content: content.into(),
    };
    let p = |purl: &str, vers: Option<&str>| AibomMatcher::Purl {
        purl: purl.into(),
        vers: vers.map(Into::into),
    };
    let sha = "ab".repeat(32);
    let bad = [
        vec![entry("", h("SHA-256", &sha))],
        vec![
            entry("x", h("SHA-256", &sha)),
            entry("x", p("pkg:npm/a", None)),
        ],
        vec![entry("x", h("SHA-224", &sha))],
        vec![entry("x", h("SHA-256", &"ab".repeat(20)))],
        vec![entry("x", h("SHA-256", &"g".repeat(64)))],
        vec![entry("x", p("npm/left-pad", None))],
        vec![entry("x", p("pkg:npm/left-pad@1.0.0", None))],
        vec![entry("x", p("pkg:npm/left-pad?arch=x", None))],
        vec![entry("x", p("pkg:npm/left-pad#lib", None))],
        vec![entry("x", p("pkg:npm/left-pad", Some("semver/<1.0.0")))],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:SemVer/<1.0.0")),
        )],
        vec![entry("x", p("pkg:npm/left-pad", Some("vers:semver/")))],
        vec![entry("x", p("pkg:npm/left-pad", Some("vers:semver/<1.3")))],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:semver/1.0.0|=1.0.0")),
        )],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:semver/>=1.0.0|>=2.0.0")),
        )],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:semver/=1.0.0|<2.0.0")),
        )],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:semver/*|1.0.0")),
        )],
        vec![entry(
            "x",
            p("pkg:npm/left-pad", Some("vers:semver/!=1.0.0")),
        )],
        vec![entry("x", p("pkg:npm/left-pad", Some("vers:pypi/>=1.0")))],
    ];
    for entries in bad {
        let l = list(entries);
        assert!(
            matches!(check_deny_list(&l), Err(AibomError::BadDenyList(_))),
            "{l:?}"
        );
    }
    let good = list(vec![
        entry("a", h("sha-256", &sha.to_uppercase())),
        entry("b", h("BLAKE3", &sha)),
        entry(
            "c",
            p(
                "pkg:npm/%40acme/left-pad",
                Some("vers:semver/<1.0.0|>=2.0.0"),
            ),
        ),
        entry("d", p("pkg:huggingface/Acme/model", None)),
    ]);
    assert_eq!(check_deny_list(&good), Ok(()));
}

#[test]
fn a_malformed_deny_list_fails_the_check_too() {
    let l = by_purl("pkg:npm/left-pad", Some("vers:semver/>=1.0.0|>=2.0.0"));
    assert!(matches!(check(AGENT, &l), Err(AibomError::BadDenyList(_))));
}

// --- vers and purl ---

#[test]
fn vers_containment_follows_the_spec() {
    let cases: &[(&str, &[(&str, bool)])] = &[
        (
            "vers:semver/>=1.2.0|<1.4.0",
            &[
                ("1.1.9", false),
                ("1.2.0", true),
                ("1.3.5", true),
                ("1.4.0-rc.1", true),
                ("1.4.0", false),
            ],
        ),
        // unsorted input is sorted first
        (
            "vers:semver/<1.4.0|>=1.2.0",
            &[("1.1.9", false), ("1.3.0", true), ("1.4.0", false)],
        ),
        (
            "vers:semver/<1.0.0|>=2.0.0|<3.0.0|>4.0.0",
            &[
                ("0.9.0", true),
                ("1.0.0", false),
                ("1.5.0", false),
                ("2.0.0", true),
                ("2.9.9", true),
                ("3.0.0", false),
                ("4.0.0", false),
                ("4.0.1", true),
            ],
        ),
        (
            "vers:semver/1.0.0|2.0.0",
            &[("1.0.0", true), ("1.5.0", false), ("2.0.0", true)],
        ),
        (
            "vers:semver/>=1.0.0|!=1.5.0|<2.0.0",
            &[("1.4.0", true), ("1.5.0", false), ("2.0.0", false)],
        ),
        (
            "vers:semver/=1.0.0|>=2.0.0",
            &[("1.0.0", true), ("1.5.0", false), ("3.0.0", true)],
        ),
        (
            "vers:semver/<=1.0.0",
            &[("0.1.0", true), ("1.0.0", true), ("1.0.1", false)],
        ),
        ("vers:semver/>1.0.0", &[("1.0.0", false), ("1.0.1", true)]),
        (
            "vers:semver/=1.3.0",
            &[
                ("1.3.0+build.7", true),
                ("1.3.0-beta", false),
                ("1.3.1", false),
            ],
        ),
    ];
    for (range, checks) in cases {
        let Ok(vers::Range::Semver(list)) = vers::parse(range) else {
            panic!("{range} does not parse");
        };
        for (v, expected) in *checks {
            let v = vers::version(v).unwrap();
            assert_eq!(vers::contains(&list, &v), *expected, "{v} in {range}");
        }
    }
}

#[test]
fn purls_parse_per_the_spec() {
    let p = purl::parse("pkg:npm/%40angular/animation@12.3.1").unwrap();
    assert_eq!(
        (p.ty.as_str(), p.namespace.as_str(), p.name.as_str()),
        ("npm", "@angular", "animation")
    );
    assert_eq!(p.version.as_deref(), Some("12.3.1"));
    assert!(!p.qualified);
    let p = purl::parse("pkg:pypi/Django_Allauth@1.0?file_name=x.whl#src").unwrap();
    assert_eq!((p.name.as_str(), p.qualified), ("django-allauth", true));
    let p = purl::parse("pkg://maven/org.Apache/Commons@1").unwrap();
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str()),
        ("org.Apache", "Commons")
    );
    for bad in [
        "npm/foo",
        "pkg:npm",
        "pkg:1npm/foo",
        "pkg:npm/",
        "pkg:npm/foo@",
        "pkg:npm/fo%zzo",
        "pkg:npm/foo%4",
        "pkg:npm/@scope/name",
        "pkg:npm/%C3%28",
        "url:npm/foo",
    ] {
        assert!(purl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn kinds_are_distinct() {
    let errors = [
        AibomError::TooLarge(0),
        AibomError::TooDeep,
        AibomError::TooManyComponents(0),
        AibomError::DuplicateMember(String::new()),
        AibomError::Malformed(String::new()),
        AibomError::Unsupported(String::new()),
        AibomError::Incomplete(String::new()),
        AibomError::Denied {
            entry: String::new(),
            component: String::new(),
            reason: String::new(),
        },
        AibomError::Unevaluable {
            entry: String::new(),
            component: String::new(),
            why: String::new(),
        },
        AibomError::BadDenyList(String::new()),
    ];
    let kinds: BTreeSet<&str> = errors.iter().map(AibomError::kind).collect();
    assert_eq!(kinds.len(), errors.len());
    assert!(kinds.iter().all(|k| k.starts_with("aibom-")));
}

proptest! {
    /// `>=a|<b` holds exactly the versions from a up to, not including, b.
    #[test]
    fn a_half_open_range_holds_what_it_says(
        a in (0u64..5, 0u64..5, 0u64..5),
        b in (0u64..5, 0u64..5, 0u64..5),
        v in (0u64..5, 0u64..5, 0u64..5),
    ) {
        let ver = |(x, y, z): (u64, u64, u64)| semver::Version::new(x, y, z);
        let (a, b, v) = (ver(a), ver(b), ver(v));
        prop_assume!(a < b);
        let Ok(vers::Range::Semver(list)) = vers::parse(&format!("vers:semver/>={a}|<{b}")) else {
            panic!("does not parse");
        };
        prop_assert_eq!(vers::contains(&list, &v), a <= v && v < b);
    }

    /// Whatever the bytes, a typed answer.
    #[test]
    fn any_bytes_get_a_typed_answer(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = check(&b, &none());
    }
}
