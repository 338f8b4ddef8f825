//! Findings of the 2026-12 security review on the credential lifecycle, outside in against a
//! running `accord dev` (a domain that asks proof of possession only; the evidence checks are
//! in tests/evidence.rs): a credential renews once, so a copy of an agent's folder cannot fork
//! it, nor outlive a key rotation (finding 4); an out-of-range lifetime is a 400 (finding
//! 16). Every refusal is a typed problem and appends nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use serde_json::{Value, json};
use support::*;

const PROBLEMS: &str = "https://accord.dev/problems/";

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Answer {
    status: u16,
    body: Value,
    raw: String,
}

impl Answer {
    fn kind(&self) -> &str {
        let t = self.body["type"].as_str();
        t.and_then(|t| t.strip_prefix(PROBLEMS)).unwrap_or("?")
    }
}

/// A running dev domain that asks proof of possession only.
struct Domain {
    dev: Dev,
    url: String,
    admin: String,
    http: reqwest::Client,
}

impl Domain {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let dev = Dev::start(dir, &[], env);
        dev.wait_ready(Duration::from_secs(60)).await;
        let admin = std::fs::read_to_string(dev.dir.join("http/admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        publish_issuance_requirements(
            &dev,
            &admin,
            &[
                ("initial_trust", false),
                ("attestation", false),
                ("aibom", false),
                ("provider_endorsement", false),
                ("owner_binding", false),
            ],
        )
        .await;
        let (url, http) = (dev.http(), dev.client());
        Self {
            dev,
            url,
            admin,
            http,
        }
    }

    /// `accord <args> --data-dir <this domain>`, run in `work`.
    fn cli(&self, work: &Path, args: &[&str]) -> Command {
        let mut c = accord();
        c.args(args)
            .arg("--data-dir")
            .arg(&self.dev.dir)
            .current_dir(work);
        c
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }

    async fn send(&self, r: RequestBuilder) -> Answer {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let raw = r.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer { status, body, raw }
    }

    async fn last_seq(&self) -> u64 {
        let (_, d) = self.dev.get("/v1/domain").await;
        d["last_seq"].as_u64().unwrap()
    }

    /// The serials of `agent` the `credentials` read model holds as valid, once it has
    /// applied the whole log.
    async fn valid_credentials(&self, agent: &str) -> Vec<String> {
        let seq = self.last_seq().await;
        let r = self
            .send(
                self.http
                    .get(format!(
                        "{}/v1/projections/credentials/tables/credentials?min_seq={seq}&wait_ms=5000",
                        self.url
                    ))
                    .bearer_auth(&self.admin),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
        let mut valid: Vec<String> = r.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| &row["value"])
            .filter(|c| c["agent_id"] == agent && c["status"] == "valid")
            .map(|c| c["serial"].as_str().unwrap().to_owned())
            .collect();
        valid.sort();
        valid
    }
}

fn serial_in(dir: &Path) -> String {
    let s: Value = serde_json::from_slice(&std::fs::read(dir.join("agent.json")).unwrap()).unwrap();
    s["serial"].as_str().unwrap().to_owned()
}

/// `cp -a from to`: a thief's copy of the agent's folder (key, certificate, WIT).
fn copy_folder(work: &Path, from: &str, to: &str) {
    let o = Command::new("cp")
        .args(["-a", from, to])
        .current_dir(work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
}

/// Finding 4: a credential renews once. A copy of the agent's folder taken before a renewal
/// cannot renew the same credential again (no second live lineage), not even inside the grace
/// period of a key rotation; the refusal is a typed 403 and appends nothing; once a rotation's
/// grace period ends, the agent holds one live credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_agent_folder_cannot_fork_its_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let d = Domain::start(
        &tmp.path().join("domain"),
        &[
            ("ACCORD_AUTHORITY__SWEEP_EVERY_SECS", "1"),
            ("ACCORD_AUTHORITY__ROTATION_GRACE_SECS", "15"),
        ],
    )
    .await;
    let id = must(&mut d.cli(
        &work,
        &[
            "agent",
            "provision",
            "--name",
            "forked",
            "--capability",
            "travel.book",
            "--token-out",
            "token",
        ],
    ))
    .trim()
    .to_owned();
    let agent = |args: &[&str]| d.cli(&work, &[&["agent"], args].concat()).output().unwrap();
    let o = agent(&[
        "enroll",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        "token",
        "--dir",
        "agent",
    ]);
    assert!(o.status.success(), "{}", output_text(&o));

    // the thief copies the folder; the agent renews (same key)
    copy_folder(&work, "agent", "snap");
    let o = agent(&["renew", "--dir", "agent"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_ne!(
        serial_in(&work.join("agent")),
        serial_in(&work.join("snap"))
    );
    // the copy's credential was renewed: refused, nothing appended, one live credential
    let before = d.last_seq().await;
    let o = agent(&["renew", "--dir", "snap"]);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("403 already-renewed"),
        "{}",
        output_text(&o)
    );
    assert_eq!(d.last_seq().await, before, "a refusal appends nothing");
    assert_eq!(
        d.valid_credentials(&id).await,
        vec![serial_in(&work.join("agent"))]
    );

    // the thief copies again; the agent rotates onto a new key; the copy's credential is in
    // its grace period, and renews into nothing (same key or another)
    copy_folder(&work, "agent", "snap2");
    let o = agent(&["renew", "--dir", "agent", "--new-key", "p256"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let before = d.last_seq().await;
    for extra in [&[][..], &["--new-key", "p256"][..]] {
        let o = agent(&[&["renew", "--dir", "snap2"], extra].concat());
        assert!(!o.status.success());
        assert!(
            output_text(&o).contains("403 rotated-out"),
            "{extra:?}: {}",
            output_text(&o)
        );
    }
    assert_eq!(d.last_seq().await, before, "a refusal appends nothing");
    // once the grace period ends, one live credential: the agent's
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let valid = d.valid_credentials(&id).await;
        if valid == vec![serial_in(&work.join("agent"))] {
            break;
        }
        assert!(Instant::now() < deadline, "still live: {valid:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // and the agent itself renews on
    let o = agent(&["renew", "--dir", "agent"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

/// Finding 16: a requested lifetime beyond `i64` (it used to wrap negative through a cast and
/// pass the Rust range check, reaching the policy as an absurd value) is a 400 problem from
/// the request check, like any lifetime outside 60 s ..= the domain's; nothing is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_lifetime_is_a_bad_request() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Domain::start(&tmp.path().join("domain"), &[]).await;
    let a = d
        .send(
            d.post("/v1/agents")
                .bearer_auth(&d.admin)
                .json(&json!({"name": "lifetimes", "capabilities": ["travel.book"]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.raw);
    let (id, token) = (
        a.body["agent_id"].as_str().unwrap(),
        a.body["enrollment_token"].as_str().unwrap(),
    );
    let key = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
    let csr = accord_agent::make_csr(&key).unwrap();
    let before = d.last_seq().await;
    for lifetime in [
        json!(u64::MAX),
        json!(1u64 << 63),
        json!(i64::MAX),
        json!(59),
        json!(0),
    ] {
        let r = d
            .send(
                d.post(&format!("/v1/agents/{id}/credentials"))
                    .bearer_auth(token)
                    .json(&json!({"csr": csr, "lifetime_secs": lifetime})),
            )
            .await;
        assert_eq!(
            (r.status, r.kind()),
            (400, "bad-request"),
            "{lifetime}: {}",
            r.raw
        );
    }
    assert_eq!(d.last_seq().await, before, "a refusal appends nothing");
    // the enrollment token is not spent by them
    let r = d
        .send(
            d.post(&format!("/v1/agents/{id}/credentials"))
                .bearer_auth(token)
                .json(&json!({"csr": csr, "lifetime_secs": 600})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
}
