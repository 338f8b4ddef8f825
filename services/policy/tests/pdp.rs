//! The PDP against real servers: bundles refused before publication keep the version in
//! force; a published update changes decisions of a running PDP without a restart; the
//! library's RBAC, ABAC and ReBAC allow and deny what they should; undefined is a deny; remote
//! OPA and AuthZEN PDPs; the decision log.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use accord_events::catalogue::BundleFile;
use accord_events::{Actor, AggregateId, CommandId, DomainId, Ed25519Key, Metadata, Timestamp};
use accord_policy::aggregate::{PolicyBundle, PolicyCommand, PolicyError};
use accord_policy::{Bundle, BundleError, LocalPdp, Pdp, RemoteKind, RemotePdp};
use accord_store::cqrs::{ExecuteError, Executor};
use accord_store::projection::memory::MemoryStore;
use accord_store::projection::runner::{self, RunnerContext};
use accord_store::{EventStore, StoreConfig};
use serde_json::{Value, json};

fn meta() -> Metadata {
    Metadata::new(
        CommandId::new_random(),
        Actor::operator("test"),
        Timestamp::now(),
    )
}

fn library_pdp() -> LocalPdp {
    let pdp = LocalPdp::new();
    let b = Bundle::library();
    pdp.load(
        &b,
        accord_policy::BundleRef {
            name: "default".into(),
            version: 1,
            digest: b.digest(),
            published_seq: 0,
        },
    )
    .unwrap();
    pdp
}

#[test]
fn rbac_abac_and_rebac_allow_and_deny_what_they_should() {
    let pdp = library_pdp();
    let allow = |policy: &str, input: Value| pdp.decide(policy, &input).unwrap().is_allowed();
    // RBAC: roles from the credential or from the owner
    assert!(allow(
        "rbac",
        json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "read", "resource": {"type": "agent"}})
    ));
    assert!(!allow(
        "rbac",
        json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "decommission", "resource": {"type": "agent"}})
    ));
    assert!(allow(
        "rbac",
        json!({"subject": {"id": "a", "roles": [], "owner_roles": ["operator"]}, "action": "decommission", "resource": {"type": "agent"}})
    ));
    // ABAC: clearance, attestation result, network
    let abac = |clearance: &str, class: &str, tv: Value, net: &str| {
        json!({"subject": {"id": "a", "clearance": clearance, "attestation": {"trust_vector": tv}},
               "resource": {"classification": class}, "environment": {"network": net, "hour": 12}})
    };
    let good = json!({"instance_identity": 2, "executables": 2, "hardware": 2});
    assert!(allow(
        "abac",
        abac("confidential", "confidential", good.clone(), "external")
    ));
    assert!(!allow(
        "abac",
        abac("internal", "confidential", good.clone(), "internal")
    ));
    assert!(!allow(
        "abac",
        abac(
            "confidential",
            "confidential",
            json!({"instance_identity": 2, "executables": 96}),
            "internal"
        )
    ));
    assert!(!allow(
        "abac",
        abac("secret", "secret", good.clone(), "external")
    ));
    assert!(allow("abac", abac("secret", "secret", good, "internal")));
    // ReBAC: relationships derived from the registry
    let res = json!({"id": "agent-1", "owner": "alice", "team": "travel"});
    assert!(allow(
        "rebac",
        json!({"action": "update", "resource": res, "relations": {"owner_of": ["agent-1"]}})
    ));
    assert!(allow(
        "rebac",
        json!({"action": "read", "resource": res, "relations": {"teams": ["travel"]}})
    ));
    assert!(!allow(
        "rebac",
        json!({"action": "update", "resource": res, "relations": {"teams": ["travel"]}})
    ));
    assert!(!allow(
        "rebac",
        json!({"action": "read", "resource": res, "relations": {}})
    ));
}

#[test]
fn undefined_and_malformed_answers_deny() {
    let pdp = library_pdp();
    // no such package: undefined
    let d = pdp.decide("nosuchpolicy", &json!({})).unwrap();
    assert!(!d.is_allowed() && d.allowed().is_none());
    assert!(d.reasons()[0].contains("undefined"), "{:?}", d.reasons());
    // a policy whose inputs are missing entirely
    assert!(!pdp.decide("issuance", &json!({})).unwrap().is_allowed());
    // names that would change the rule path are refused
    for bad in ["rbac.allow", "Rbac", "a b", "x[0]", ""] {
        assert!(pdp.decide(bad, &json!({})).is_err(), "{bad}");
    }
    // an allow carries its proof and what it was made under
    let d = pdp
        .decide("rbac", &json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "read", "resource": {"type": "agent"}}))
        .unwrap();
    assert!(d.allowed().is_some());
    assert_eq!(d.policy_ref().bundle, "default");
    assert_eq!(d.policy_ref().version, 1);
}

fn bundle_with(extra: &[(&str, &str)]) -> Bundle {
    let mut files = Bundle::library().files;
    for (path, content) in extra {
        files.retain(|f| f.path != *path);
        files.push(BundleFile {
            path: (*path).into(),
            content: (*content).into(),
        });
    }
    Bundle::new("default", files).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_updates_change_decisions_and_bad_bundles_are_refused() {
    let server = accord_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let domain = DomainId::parse("org-a").unwrap();
    let store = EventStore::open(
        client.clone(),
        StoreConfig::new(domain.clone()),
        Arc::new(Ed25519Key::generate().unwrap().0),
    )
    .await
    .unwrap();
    let ctx = RunnerContext::of(&store, 100);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let policies = runner::spawn(
        Arc::new(accord_readmodels::Policies),
        Arc::new(MemoryStore::new()),
        ctx,
        stop,
    );
    let pdp = Arc::new(LocalPdp::new());
    accord_policy::follow_bundle(pdp.clone(), policies.clone(), "default".into());
    let exec = Executor::<PolicyBundle>::new(store.clone(), ()).unwrap();
    let id = AggregateId::parse("default").unwrap();

    // version 1: the library
    let v1 = exec
        .execute(&id, &meta(), PolicyCommand::Publish(Bundle::library()))
        .await
        .unwrap();
    policies
        .wait_for(v1.version.stream_seq, Duration::from_secs(10))
        .await
        .unwrap();
    let input = json!({"subject": {"id": "a", "roles": ["auditor"]}, "action": "read", "resource": {"type": "agent"}});
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pdp.bundle().map(|b| b.version) != Some(1) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d1 = pdp.decide("rbac", &input).unwrap();
    assert!(d1.is_allowed());
    assert_eq!(d1.bundle().version, 1);

    // publishing the same files again is no new version
    let again = exec
        .execute(&id, &meta(), PolicyCommand::Publish(Bundle::library()))
        .await
        .unwrap();
    assert!(again.events.is_empty());

    // a module that does not compile, and one whose tests fail: refused, nothing appended
    let before = store.last_sequence().await.unwrap();
    let broken = bundle_with(&[("accord/rbac.rego", "package accord.rbac\n\nallow if {\n")]);
    let err = exec
        .execute(&id, &meta(), PolicyCommand::Publish(broken))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecuteError::Rejected(PolicyError::Refused(BundleError::Compile { .. }))
        ),
        "{err:?}"
    );
    let failing = bundle_with(&[(
        "accord/extra_test.rego",
        "package accord.extra_test\n\nimport rego.v1\n\ntest_something_false if {\n\t1 == 2\n}\n",
    )]);
    let err = exec
        .execute(&id, &meta(), PolicyCommand::Publish(failing))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecuteError::Rejected(PolicyError::Refused(BundleError::TestsFailed {
                failed: 1,
                ..
            }))
        ),
        "{err:?}"
    );
    assert_eq!(store.last_sequence().await.unwrap(), before);
    assert_eq!(
        pdp.bundle().unwrap().version,
        1,
        "the version in force stays"
    );

    // version 2 takes the auditor role away: the running PDP follows without a restart
    let mut data: Value = serde_json::from_str(
        &Bundle::library()
            .files
            .iter()
            .find(|f| f.path == "data.json")
            .unwrap()
            .content,
    )
    .unwrap();
    data["accord"]["settings"]["rbac"]["roles"]["auditor"]["permissions"] = json!([]);
    let v2 = exec
        .execute(
            &id,
            &meta(),
            PolicyCommand::Publish(bundle_with(&[("data.json", &data.to_string())])),
        )
        .await
        .unwrap();
    assert_eq!(v2.events.len(), 1);
    policies
        .wait_for(v2.version.stream_seq, Duration::from_secs(10))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pdp.bundle().map(|b| b.version) != Some(2) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d2 = pdp.decide("rbac", &input).unwrap();
    assert!(!d2.is_allowed());
    assert_eq!(d2.bundle().version, 2);
    assert!(
        d2.at_seq() >= v2.version.stream_seq,
        "a decision says which sequence it reflects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_opa_and_authzen_pdps_decide_the_same_way() {
    use axum::Json;
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/v1/data/accord/rbac/decision",
            post(|Json(body): Json<Value>| async move {
                let allow = body["input"]["subject"]["roles"].as_array().is_some_and(|r| r.contains(&json!("reader")));
                Json(json!({"result": {"allow": allow, "reasons": if allow { json!([]) } else { json!(["no role"]) }}}))
            }),
        )
        // OPA answers {} when the rule is undefined
        .route("/v1/data/accord/nothing/decision", post(|| async { Json(json!({})) }))
        .route(
            "/access/v1/evaluation",
            post(|Json(body): Json<Value>| async move {
                let allow = body["subject"]["id"] == "alice" && body["action"]["name"] == "read";
                Json(json!({"decision": allow, "context": {"reasons": ["checked by the fake AuthZEN PDP"]}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let opa = Pdp::remote(
        RemotePdp::dangerous_plaintext(RemoteKind::Opa, &url).unwrap(),
        None,
    );
    let reader = json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "read", "resource": {"type": "agent"}});
    assert!(opa.decide("rbac", &reader).await.unwrap().is_allowed());
    let d = opa
        .decide("rbac", &json!({"subject": {"id": "a", "roles": []}}))
        .await
        .unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.reasons(), ["no role"]);
    assert_eq!(d.bundle().name, "remote:opa");
    assert!(
        !opa.decide("nothing", &reader).await.unwrap().is_allowed(),
        "undefined denies"
    );

    let authzen = Pdp::remote(
        RemotePdp::dangerous_plaintext(RemoteKind::Authzen, &url).unwrap(),
        None,
    );
    assert!(authzen.decide("rbac", &json!({"subject": {"id": "alice"}, "action": "read", "resource": {"type": "agent", "id": "x"}})).await.unwrap().is_allowed());
    assert!(!authzen.decide("rbac", &json!({"subject": {"id": "bob"}, "action": "read", "resource": {"type": "agent", "id": "x"}})).await.unwrap().is_allowed());

    // an unreachable PDP is an error the caller must treat as a deny
    let gone = Pdp::remote(
        RemotePdp::dangerous_plaintext(RemoteKind::Opa, "http://127.0.0.1:1").unwrap(),
        None,
    );
    assert!(gone.decide("rbac", &reader).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_go_to_their_own_stream_with_limits() {
    let server = accord_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let domain = DomainId::parse("org-a").unwrap();
    let config = accord_policy::DecisionLogConfig {
        max_age: Duration::from_secs(3600),
        max_bytes: 1 << 20,
        sample: 1.0,
        replicas: 1,
    };
    let log = accord_policy::DecisionLog::open(client.clone(), &js, &domain, &config)
        .await
        .unwrap();
    let pdp = Pdp::local(Arc::new(library_pdp()), Some(log));
    for roles in [json!(["reader"]), json!([])] {
        pdp.decide("rbac", &json!({"subject": {"id": "a", "roles": roles}, "action": "read", "resource": {"type": "agent"}}))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut stream = js
        .get_stream(accord_policy::log::DECISIONS_STREAM)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.retention,
        async_nats::jetstream::stream::RetentionPolicy::Limits
    );
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if stream.info().await.unwrap().state.messages == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "decisions not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = stream
        .direct_get_last_for_subject("accord.decisions.org-a.rbac")
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(v["allow"], false);
    assert_eq!(v["bundle"]["version"], 1);
    // the event log is not where decisions go
    assert!(js.get_stream(accord_store::EVENTS_STREAM).await.is_err());
}

/// The PDP answers from the Rego VM; the interpreter is the reference it must agree with.
#[test]
fn the_vm_agrees_with_the_interpreter() {
    let pdp = library_pdp();
    let mut interpreter = Bundle::library().compile().unwrap();
    let cases = [
        (
            "rbac",
            json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "read", "resource": {"type": "agent"}}),
        ),
        (
            "rbac",
            json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "write", "resource": {"type": "agent"}}),
        ),
        (
            "abac",
            json!({"subject": {"id": "a", "clearance": "secret", "attestation": {"trust_vector": {"instance_identity": 2, "executables": 2, "hardware": 2}}}, "resource": {"classification": "secret"}, "environment": {"network": "internal", "hour": 3}}),
        ),
        (
            "abac",
            json!({"subject": {"id": "a", "clearance": "internal"}, "resource": {"classification": "secret"}, "environment": {"network": "external", "hour": 3}}),
        ),
        (
            "rebac",
            json!({"action": "read", "resource": {"id": "x", "owner": "o", "team": "t"}, "relations": {"teams": ["t"]}}),
        ),
        (
            "rebac",
            json!({"action": "update", "resource": {"id": "x", "owner": "o", "team": "t"}, "relations": {}}),
        ),
        (
            "discovery",
            json!({"requester": {"id": "r", "domain": "org-a", "teams": ["t"]}, "query": {"capabilities": ["a.b"]}, "record": {"agent_id": "x", "domain": "org-a", "team": "t", "status": "registered", "visibility": "team", "capabilities": ["a.b", "admin.x", "c.d"]}}),
        ),
        (
            "discovery",
            json!({"requester": {"id": "", "domain": "org-b"}, "query": {}, "record": {"agent_id": "x", "domain": "org-a", "status": "suspended", "visibility": "owner", "capabilities": []}}),
        ),
        (
            "issuance",
            json!({"checks": {"proof_of_possession": "passed"}, "requested_capabilities": ["a"], "lifetime_secs": 60}),
        ),
        (
            "issuance",
            json!({"checks": {"proof_of_possession": "passed", "initial_trust": "passed", "attestation": "passed", "aibom": "passed", "provider_endorsement": "passed", "owner_binding": "passed"}, "requested_capabilities": ["a.b", "c"], "endorsed_capabilities": ["a.b"], "attestation": {"trust_vector": {"instance_identity": 2}}, "lifetime_secs": 60}),
        ),
    ];
    for (policy, input) in cases {
        let vm = pdp.decide(policy, &input).unwrap();
        interpreter.set_input(regorus::Value::from(input.clone()));
        let reference = interpreter
            .eval_rule(format!("data.accord.{policy}.decision"))
            .unwrap();
        let reference = serde_json::to_value(&reference).unwrap();
        assert_eq!(vm.result(), &reference, "{policy} {input}");
    }
}

/// A bundle whose data the VM refuses (a value at a rule's path) must not run on a VM without
/// its data: with the data missing, `not closed` would allow. It runs on the interpreter.
#[test]
fn a_bundle_whose_data_the_vm_refuses_does_not_decide_without_its_data() {
    let b = bundle_with(&[
        (
            "accord/gate.rego",
            "package accord.gate\n\nlimit := 1\n\ndecision := {\"allow\": false, \"reasons\": [\"closed\"], \"limit\": limit} if data.accord.settings.gate.closed\n\ndecision := {\"allow\": true, \"limit\": limit} if not data.accord.settings.gate.closed\n",
        ),
        ("accord/settings/gate/data.json", r#"{"closed": true}"#),
        ("accord/gate/data.json", r#"{"limit": 2}"#),
    ]);
    let pdp = LocalPdp::new();
    let meta = accord_policy::BundleRef {
        name: "default".into(),
        version: 1,
        digest: b.digest(),
        published_seq: 0,
    };
    pdp.load(&b, meta).unwrap();
    for _ in 0..3 {
        let d = pdp.decide("gate", &json!({})).unwrap();
        assert!(!d.is_allowed(), "{:?}", d.result());
    }
}

/// A runaway policy (nine million iterations) fails its decision, a deny, on the VM and on the
/// interpreter, instead of holding the worker for as long as it runs.
#[test]
fn a_runaway_policy_is_stopped_and_denies() {
    let b = bundle_with(&[(
        "accord/spin.rego",
        "package accord.spin\n\nn := count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000)])\n\ndecision := {\"allow\": n > 0}\n",
    )]);
    let pdp = LocalPdp::new();
    let meta = accord_policy::BundleRef {
        name: "default".into(),
        version: 1,
        digest: b.digest(),
        published_seq: 0,
    };
    pdp.load(&b, meta).unwrap();
    let d = pdp.decide("spin", &json!({})).unwrap();
    assert!(!d.is_allowed(), "{:?}", d.result());
    assert!(
        d.reasons()[0].contains("evaluation failed"),
        "{:?}",
        d.reasons()
    );
    let mut engine = b.compile().unwrap();
    let r = engine.eval_rule("data.accord.spin.decision".to_owned());
    assert!(r.is_err(), "the interpreter ran it to the end");
}
