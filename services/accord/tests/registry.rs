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
    // three refusals within a second: one record (two when they straddle the limiter's
    // minute boundary; never three)
    let rejected = r.events(from, "RegistrationRejected");
    assert!((1..=2).contains(&rejected.len()), "{rejected:?}");
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
    // the signed A2A card: the A2A SDK parses it and verifies it with the domain's JWKS, and
    // an independent check agrees; a changed card fails both
    let card = show("beta", &format!("{alpha}/card"));
    assert_eq!(card.status, 200, "{}", String::from_utf8_lossy(&card.body));
    assert_eq!(
        card.header("accord-record-status").as_deref(),
        Some("registered")
    );
    std::fs::write(d.work.join("alpha.card.json"), &card.body).unwrap();
    let jwks = curl(&d.ca(), &d.work, &[&format!("{}/v1/jwks", d.dev.http())]);
    std::fs::write(d.work.join("jwks.json"), &jwks.body).unwrap();
    let checked = must(
        accord_testkit::python()
            .current_dir(&d.work)
            .arg(support::agents::root().join("tests/python/check_card.py"))
            .args(["--jwks", "jwks.json", "alpha.card.json"]),
    );
    let checked: Value = serde_json::from_str(checked.trim()).unwrap();
    assert_eq!(checked["parsed_name"], "alpha", "{checked}");
    assert_eq!(checked["interfaces"], json!(["JSONRPC"]));
    assert_eq!(checked["skills"], json!(["book"]));
    // the extended card says what only the caller may see: gamma's owner, to gamma
    let ext = show("gamma", &format!("{gamma}/extendedAgentCard")).json();
    let record = &ext["capabilities"]["extensions"][0]["params"];
    assert_eq!(
        record["owner"],
        json!(format!(
            "{}#{}",
            gamma_owner["issuer"].as_str().unwrap(),
            gamma_owner["subject"].as_str().unwrap()
        ))
    );
    assert_eq!(record["capabilities"], json!(["calendar.read"]));
    assert!(show("beta", &format!("{alpha}/card")).json()["capabilities"]["extensions"][0]["params"]["owner"].is_null());
    // a hidden agent's card is a missing one
    assert_eq!(show("beta", &format!("{gamma}/card")).body, missing.body);

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
    // recorded in this minute already (unless a minute boundary passed since)
    assert!(r.events(from, "RegistrationRejected").len() <= 1);
    // its card is gone for agents; the operator's says revoked, at the revocation's sequence
    assert_eq!(show("beta", &format!("{alpha}/card")).status, 404);
    let auth = format!("authorization: Bearer {}", r.admin());
    let op_card = curl(
        &d.ca(),
        &d.work,
        &[
            "-H",
            &auth,
            &format!("{}/v1/registry/agents/{alpha}/card", r.url),
        ],
    );
    assert_eq!(
        op_card.header("accord-record-status").as_deref(),
        Some("revoked")
    );
    let params = &op_card.json()["capabilities"]["extensions"][0]["params"];
    assert_eq!(params["status"], "revoked");
    assert!(params["seq"].as_u64().unwrap() >= revoked_at);

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
    assert_eq!(
        (anon.status, anon.kind()),
        (401, "unauthorized".into()),
        "{}",
        anon.stderr
    );
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

/// `accord registry` as agent and operator, the WIT path (a proof is single use), and a
/// credential that expired: refused typed and recorded, though its certificate still chains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_by_wit_and_an_expired_credential_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let r = Registry::of(&d);
    // an agent whose credential lives 60 s (backdated 30 s: it ends 30 s from now)
    let token = d.work.join("short.token");
    let short = must(&mut d.cli(&[
        "agent",
        "provision",
        "--name",
        "short",
        "--capability",
        "travel.book",
        "--token-out",
        token.to_str().unwrap(),
    ]))
    .trim()
    .to_owned();
    let key = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
    let csr = accord_agent::make_csr(&key).unwrap();
    let resp = d
        .dev
        .client()
        .post(format!("{}/v1/agents/{short}/credentials", d.dev.http()))
        .bearer_auth(std::fs::read_to_string(&token).unwrap().trim())
        .json(&json!({"csr": csr, "lifetime_secs": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let c: accord_authority::api::CredentialResponse = resp.json().await.unwrap();
    let dir = accord_agent::AgentDir::new(&d.work.join("short"));
    dir.store(&d.dev.http(), Some(&key), &c).unwrap();

    // meanwhile: the CLI registers beta by its WIT, lists and shows as the agent and operator
    let beta = agent(&d, "beta", &["travel.book"], None);
    let beta_dir = d.work.join("beta");
    let out = must(&mut d.cli(&[
        "registry",
        "register",
        "--dir",
        beta_dir.to_str().unwrap(),
        "--name",
        "beta",
        "--description",
        "books trips",
        "--endpoint",
        "https://beta.example/a2a",
        "--wit",
        "--json",
    ]));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["outcome"], "registered", "{v}");
    let listed = must(&mut d.cli(&[
        "registry",
        "list",
        "--as-agent",
        beta_dir.to_str().unwrap(),
        "--json",
    ]));
    let v: Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(v["agents"][0]["agent_id"], json!(beta), "{v}");
    assert_eq!(v["agents"][0]["endpoints"][0]["transport"], "JSONRPC");
    let shown = must(&mut d.cli(&["registry", "show", &beta, "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(shown.trim()).unwrap()["agent"]["name"],
        "beta"
    );

    // a WIT proof is single use: the same headers twice, the second refused
    let wit = std::fs::read_to_string(beta_dir.join("wit.jwt")).unwrap();
    let url = format!("{}/v1/registry/search", r.url);
    let wpt = {
        let key = std::fs::read(beta_dir.join("key.pk8")).unwrap();
        let k = accord_authority::signer::SoftwareKey::from_pkcs8(&key, "agent").unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        accord_authority::jws::sign(
            &k,
            accord_authority::jws::TYP_WPT,
            &json!({"aud": url, "iat": now, "exp": now + 60, "jti": accord_authority::jws::random_jti(),
                    "wth": accord_authority::jws::hash_b64(wit.trim().as_bytes())}),
        )
        .unwrap()
    };
    let h1 = format!("workload-identity-token: {}", wit.trim());
    let h2 = format!("workload-proof-token: {wpt}");
    let args = [
        "-H",
        h1.as_str(),
        "-H",
        h2.as_str(),
        "-H",
        "content-type: application/json",
        "--data-binary",
        "{}",
        url.as_str(),
    ];
    assert_eq!(curl(&d.ca(), &d.work, &args).status, 200);
    let replay = curl(&d.ca(), &d.work, &args);
    assert_eq!((replay.status, replay.kind()), (401, "unauthorized".into()));

    // the operator suspends beta from the CLI
    must(&mut d.cli(&["registry", "suspend", &beta, "--reason", "audit"]));
    let listed = must(&mut d.cli(&["registry", "list", "--status", "suspended", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(listed.trim()).unwrap()["agents"][0]["agent_id"],
        json!(beta)
    );

    // the short credential ends; its certificate still chains, and is refused typed
    let not_after = time::OffsetDateTime::parse(
        &c.not_after.to_string(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = (not_after - time::OffsetDateTime::now_utc()).whole_milliseconds() + 1500;
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
    let from = d.last_seq().await;
    let expired = r.register(
        "short",
        &short,
        &body("short", &["travel.book"], &Value::Null, "domain"),
    );
    assert_eq!(
        (expired.status, expired.kind()),
        (403, "credential-expired".into()),
        "{}",
        String::from_utf8_lossy(&expired.body)
    );
    let rejected = r.events(from, "RegistrationRejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["data"]["reason"], "credential_expired");
    let refused = r.search_as("short", &json!({}));
    assert_eq!(
        (refused.status, refused.kind()),
        (403, "credential-not-live".into())
    );
}

/// The same registry over PostgreSQL (`accord dev --database-url`: the directory reads the
/// projection's rows there, over migration 0003's indexes): registration, two requesters'
/// answers, a hidden id, a revocation's sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_postgresql_when_the_read_models_are_there() {
    let pg = accord_testkit::PgServer::start();
    let url = pg.create_database("accord");
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start_args(&tmp, &["--database-url", &url], &[]).await;
    let config = std::fs::read_to_string(d.dir().join("accord.toml")).unwrap();
    assert!(config.contains("directory = \"postgres\""), "{config}");
    let r = Registry::of(&d);
    let alpha = agent(&d, "alpha", &["travel.book"], Some("travel-desk"));
    let beta = agent(&d, "beta", &["travel.book", "admin.reset"], None);
    let owner = r.row(&alpha).await["owner"].clone();
    let a = r.register(
        "alpha",
        &alpha,
        &body("alpha", &["travel.book"], &owner, "owner"),
    );
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let b = r.register(
        "beta",
        &beta,
        &body(
            "beta",
            &["admin.reset", "travel.book"],
            &Value::Null,
            "domain",
        ),
    );
    assert_eq!(b.status, 201, "{}", String::from_utf8_lossy(&b.body));
    let seq = b.json()["seq"].as_u64().unwrap();
    // alpha sees both (its own by owner); beta only itself; the hidden prefix is not shown
    let mut mine = ids(&r.search_as("alpha", &json!({"min_seq": seq})));
    mine.sort();
    let mut both = vec![alpha.clone(), beta.clone()];
    both.sort();
    assert_eq!(mine, both);
    let seen = r.search_as("beta", &json!({"min_seq": seq}));
    assert_eq!(ids(&seen), vec![beta.clone()]);
    assert_eq!(
        seen.json()["agents"][0]["capabilities"],
        json!(["travel.book"])
    );
    let by_text = r.search_as("alpha", &json!({"filter": {"text": "alpha BOOKS"}}));
    assert_eq!(ids(&by_text), vec![alpha.clone()]);
    let show =
        |name: &str, id: &str| r.as_agent(name, &[&format!("{}/v1/registry/agents/{id}", r.url)]);
    assert_eq!(
        show("beta", &alpha).body,
        show("beta", "0193a4d2-7c1e-7b3a-9f00-000000000000").body
    );
    // revoked: gone at the revocation's sequence
    let revoked_at = d.revoke(&beta);
    let after = r.search_as("alpha", &json!({"min_seq": revoked_at}));
    assert_eq!(ids(&after), vec![alpha.clone()]);
}
