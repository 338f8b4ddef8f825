//! The Agent Registry Service (issue 15, ADR 0015) against a running `accord dev`, from the
//! outside with `curl`: an agent registers with its certificate; a record that is not what
//! the credential signed (a superset, a subset of the capabilities, another owner), a
//! revoked or expired credential, a certificate of another CA are refused, typed, and the
//! security-relevant refusals are recorded once per minute; a revoked agent leaves discovery
//! at the revocation's sequence; two requesters see different answers; a hidden record's id
//! answers exactly as a missing one.

#![allow(clippy::unwrap_used)]

#[path = "support/curl.rs"]
mod curl;
mod support;

use std::path::{Path, PathBuf};

use curl::{Got, curl};
use serde_json::{Value, json};
use support::agents::AgentDomain;
use support::*;

struct Registry<'a> {
    d: &'a AgentDomain,
    url: String,
}

impl<'a> Registry<'a> {
    fn of(d: &'a AgentDomain) -> Self {
        let url = d.dev.endpoints["registry_url"].as_str().unwrap().to_owned();
        Self { d, url }
    }

    fn admin(&self) -> String {
        std::fs::read_to_string(self.d.dir().join("http/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `curl` as the agent in `<work>/<name>` (its certificate and key).
    fn as_agent(&self, name: &str, args: &[&str]) -> Got {
        let dir = self.d.work.join(name);
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pk8");
        let mut all = vec![
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--key-type",
            "DER",
        ];
        all.extend_from_slice(args);
        curl(&self.d.ca(), &self.d.work, &all)
    }

    fn register(&self, name: &str, id: &str, body: &Value) -> Got {
        let url = format!("{}/v1/registry/agents/{id}", self.url);
        let body = body.to_string();
        self.as_agent(
            name,
            &[
                "-X",
                "PUT",
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body,
                &url,
            ],
        )
    }

    fn search_as(&self, name: &str, body: &Value) -> Got {
        let url = format!("{}/v1/registry/search", self.url);
        let body = body.to_string();
        self.as_agent(
            name,
            &[
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body,
                &url,
            ],
        )
    }

    fn search_as_operator(&self, body: &Value) -> Got {
        let url = format!("{}/v1/registry/search", self.url);
        let auth = format!("authorization: Bearer {}", self.admin());
        let body = body.to_string();
        curl(
            &self.d.ca(),
            &self.d.work,
            &[
                "-H",
                &auth,
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body,
                &url,
            ],
        )
    }

    /// The registry read model's row of an agent (admin token).
    async fn row(&self, id: &str) -> Value {
        let (status, v) = self
            .d
            .dev
            .get("/v1/projections/registry/tables/agents?limit=1000")
            .await;
        assert_eq!(status, 200, "{v}");
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == id)
            .map(|r| r["value"].clone())
            .unwrap_or(Value::Null)
    }

    fn events(&self, from: u64, event_type: &str) -> Vec<Value> {
        must(
            &mut self
                .d
                .cli(&["events", "tail", "--json", "--from", &from.to_string()]),
        )
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["verified"] == true && v["event"]["type"] == event_type)
        .map(|v| v["event"].clone())
        .collect()
    }
}

fn ids(got: &Got) -> Vec<String> {
    got.json()["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&got.body)))
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Provisions and enrolls `name` with `capabilities`, and a role grant for `role` when given
/// (its owner binding); its id.
fn agent(d: &AgentDomain, name: &str, capabilities: &[&str], role: Option<&str>) -> String {
    let token = d.work.join(format!("{name}.token"));
    let mut provision = d.cli(&["agent", "provision", "--name", name]);
    for c in capabilities {
        provision.args(["--capability", c]);
    }
    provision.args(["--token-out", token.to_str().unwrap()]);
    let id = must(&mut provision).trim().to_owned();
    let evidence = d.work.join(format!("{name}.evidence"));
    std::fs::create_dir_all(&evidence).unwrap();
    if let Some(role) = role {
        let mut grant = d.cli(&["agent", "role-grant", "--agent-id", &id, "--role", role]);
        for c in capabilities {
            grant.args(["--scope", c]);
        }
        grant.arg("--out").arg(evidence.join("role-grant.jwt"));
        must(&mut grant);
    }
    must(&mut d.cli(&[
        "agent",
        "enroll",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        token.to_str().unwrap(),
        "--evidence-dir",
        evidence.to_str().unwrap(),
        "--dir",
        d.work.join(name).to_str().unwrap(),
    ]));
    id
}

fn body(name: &str, capabilities: &[&str], owner: &Value, visibility: &str) -> Value {
    json!({
        "name": name,
        "description": format!("{name} books trips"),
        "capabilities": capabilities,
        "owner": owner,
        "endpoints": [{"url": format!("https://{name}.org-a.example/a2a"), "transport": "JSONRPC"}],
        "skills": [{"id": "book", "name": "Book a trip", "description": "books flights", "tags": ["travel"]}],
        "audience": {"visibility": visibility},
    })
}

/// A certificate and key of another CA, for the same SPIFFE ID shape.
fn foreign_certificate(work: &Path, spiffe: &str) -> (PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let _ = ca_cert;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
    let cert = p.signed_by(&key, &issuer).unwrap();
    let c = work.join("foreign.pem");
    let k = work.join("foreign.key");
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_exactly_what_was_signed_and_discovery_follows_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let r = Registry::of(&d);
    let alpha = agent(
        &d,
        "alpha",
        &["travel.book", "mail.send"],
        Some("travel-desk"),
    );
    let beta = agent(&d, "beta", &["travel.book"], None);
    let gamma = agent(&d, "gamma", &["calendar.read"], Some("finance-desk"));
    let owner = r.row(&alpha).await["owner"].clone();
    assert_eq!(owner["subject"], "travel-desk", "{owner}");

    // a registration with the certificate: created, then idempotent
    let first = r.register(
        "alpha",
        &alpha,
        &body("alpha", &["mail.send", "travel.book"], &owner, "domain"),
    );
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.json()["outcome"], "registered");
    let again = r.register(
        "alpha",
        &alpha,
        &body("alpha", &["mail.send", "travel.book"], &owner, "domain"),
    );
    assert_eq!(
        (again.status, again.json()["outcome"].clone()),
        (200, json!("unchanged"))
    );

    // not what was signed: a superset, a subset, another owner; typed, naming the field
    let from = d.last_seq().await;
    let superset = r.register(
        "alpha",
        &alpha,
        &body(
            "alpha",
            &["mail.send", "travel.book", "admin.reset"],
            &owner,
            "domain",
        ),
    );
    assert_eq!(
        (superset.status, superset.kind()),
        (403, "capabilities-mismatch".into())
    );
    assert_eq!(superset.json()["field"], "capabilities");
    let subset = r.register(
        "alpha",
        &alpha,
        &body("alpha", &["travel.book"], &owner, "domain"),
    );
    assert_eq!(
        (subset.status, subset.kind()),
        (403, "capabilities-mismatch".into())
    );
    let gamma_owner = r.row(&gamma).await["owner"].clone();
    let other_owner = r.register(
        "alpha",
        &alpha,
        &body(
            "alpha",
            &["mail.send", "travel.book"],
            &gamma_owner,
            "domain",
        ),
    );
    assert_eq!(
        (other_owner.status, other_owner.kind()),
        (403, "owner-mismatch".into())
    );
    // an agent registers only itself
    let as_other = r.register(
        "alpha",
        &beta,
        &body("beta", &["travel.book"], &Value::Null, "domain"),
    );
    assert_eq!(
        (as_other.status, as_other.kind()),
        (403, "not-this-agent".into())
    );
    // three refusals in a minute: one record
    let rejected = r.events(from, "RegistrationRejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["data"]["reason"], "capabilities_mismatch");
    assert!(r.events(from, "AgentUpdated").is_empty());

    // a certificate of another CA: the handshake fails, nothing is written
    let spiffe = format!("spiffe://dev.accord.local/agent/{beta}");
    let (c, k) = foreign_certificate(&d.work, &spiffe);
    let url = format!("{}/v1/registry/agents/{beta}", r.url);
    let foreign = curl(
        &d.ca(),
        &d.work,
        &[
            "--cert",
            c.to_str().unwrap(),
            "--key",
            k.to_str().unwrap(),
            "-X",
            "PUT",
            "--data-binary",
            "{}",
            &url,
        ],
    );
    assert_eq!(foreign.status, 0, "the handshake must fail");

    // beta and gamma register; gamma only for its owner
    let b = r.register(
        "beta",
        &beta,
        &body("beta", &["travel.book"], &Value::Null, "domain"),
    );
    assert_eq!(b.status, 201, "{}", String::from_utf8_lossy(&b.body));
    let g = r.register(
        "gamma",
        &gamma,
        &body("gamma", &["calendar.read"], &gamma_owner, "owner"),
    );
    assert_eq!(g.status, 201, "{}", String::from_utf8_lossy(&g.body));
    let seq = g.json()["seq"].as_u64().unwrap();

    // two requesters, one query, different answers: gamma sees itself, beta does not
    let q = json!({"filter": {}, "min_seq": seq});
    let mut seen_by_beta = ids(&r.search_as("beta", &q));
    seen_by_beta.sort();
    let mut want = vec![alpha.clone(), beta.clone()];
    want.sort();
    assert_eq!(seen_by_beta, want);
    assert!(ids(&r.search_as("gamma", &q)).contains(&gamma));
    // the operator sees everything
    assert_eq!(ids(&r.search_as_operator(&q)).len(), 3);
    // by id: hidden and missing answer alike, byte for byte
    let show =
        |name: &str, id: &str| r.as_agent(name, &[&format!("{}/v1/registry/agents/{id}", r.url)]);
    let hidden = show("beta", &gamma);
    let missing = show("beta", "0193a4d2-7c1e-7b3a-9f00-000000000000");
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(hidden.body, missing.body);
    assert_eq!(show("gamma", &gamma).status, 200);
    // the capability filter and free text
    let by_cap = r.search_as("beta", &json!({"filter": {"capability": ["mail.send"]}}));
    assert_eq!(ids(&by_cap), vec![alpha.clone()]);
    assert_eq!(
        by_cap.json()["agents"][0]["capabilities"],
        json!(["mail.send"])
    );
    let by_text = r.search_as("beta", &json!({"filter": {"text": "BETA BOOKS"}}));
    assert_eq!(ids(&by_text), vec![beta.clone()]);
    // paging: one per page, a token bound to the requester
    let p1 = r.search_as("beta", &json!({"page_size": 1}));
    assert_eq!(ids(&p1).len(), 1);
    let token = p1.json()["next_page_token"].as_str().unwrap().to_owned();
    let p2 = r.search_as("beta", &json!({"page_size": 1, "page_token": token}));
    assert_eq!(ids(&p2).len(), 1);
    assert!(p2.json()["next_page_token"].is_null());
    let stolen = r.search_as("alpha", &json!({"page_size": 1, "page_token": token}));
    assert_eq!(
        (stolen.status, stolen.kind()),
        (400, "bad-page-token".into())
    );

    // revoked: out of discovery at the revocation's sequence, and its certificate refused
    let revoked_at = d.revoke(&alpha);
    let after = r.search_as("beta", &json!({"min_seq": revoked_at}));
    assert_eq!(ids(&after), vec![beta.clone()]);
    assert!(after.json()["seq"].as_u64().unwrap() >= revoked_at);
    let from = d.last_seq().await;
    let dead = r.register(
        "alpha",
        &alpha,
        &body("alpha", &["mail.send", "travel.book"], &owner, "domain"),
    );
    assert_eq!(
        (dead.status, dead.kind()),
        (403, "credential-revoked".into())
    );
    let refused = r.search_as("alpha", &json!({}));
    assert_eq!(
        (refused.status, refused.kind()),
        (403, "credential-not-live".into())
    );
    assert_eq!(
        r.events(from, "RegistrationRejected").len(),
        0,
        "recorded in this minute already"
    );

    // an operator suspends beta: out of discovery for agents
    let url = format!("{}/v1/registry/agents/{beta}/suspend", r.url);
    let auth = format!("authorization: Bearer {}", r.admin());
    let s = curl(
        &d.ca(),
        &d.work,
        &[
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"reason":"audit"}"#,
            &url,
        ],
    );
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let seq = s.json()["seq"].as_u64().unwrap();
    let seen = r.search_as("gamma", &json!({"min_seq": seq}));
    assert!(!ids(&seen).contains(&beta));
    let op = r.search_as_operator(&json!({"filter": {"status": ["suspended"]}}));
    assert_eq!(ids(&op), vec![beta.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unauthenticated_requests_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let r = Registry::of(&d);
    let alpha = agent(&d, "alpha", &["travel.book"], None);
    let from = d.last_seq().await;
    let url = format!("{}/v1/registry/agents/{alpha}", r.url);
    // no credential at all
    let anon = curl(
        &d.ca(),
        &d.work,
        &[
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "--data-binary",
            "{}",
            &url,
        ],
    );
    assert_eq!((anon.status, anon.kind()), (401, "unauthorized".into()));
    // unknown members, oversized fields, a team audience without its team, bad endpoints
    for bad in [
        json!({"name": "alpha", "capabilities": ["travel.book"], "surprise": 1}),
        json!({"name": "alpha", "capabilities": ["travel.book"], "description": "x".repeat(5000)}),
        json!({"name": "alpha", "capabilities": ["travel.book"], "audience": {"visibility": "team"}}),
        json!({"name": "alpha", "capabilities": ["travel.book"], "endpoints": [{"url": "http://plain", "transport": "JSONRPC"}]}),
        json!({"name": "alpha", "capabilities": ["travel.book"], "endpoints": [{"url": "https://x", "transport": "SMTP"}]}),
    ] {
        let got = r.register("alpha", &alpha, &bad);
        assert!(
            matches!(got.status, 400 | 413 | 422),
            "{bad}: {}",
            got.status
        );
    }
    // a malformed search, a forged page token
    for bad in [
        json!({"page_size": 1000}),
        json!({"order_by": "name"}),
        json!({"filter": {"status": ["zombie"]}}),
        json!({"page_token": "AAAA"}),
    ] {
        let got = r.search_as("alpha", &bad);
        assert_eq!(
            got.status,
            400,
            "{bad}: {}",
            String::from_utf8_lossy(&got.body)
        );
    }
    assert_eq!(d.last_seq().await, from, "nothing was appended");
}
