//! Findings of the 2026-12 security review on the credential lifecycle, outside in against a
//! running `accord dev` (a domain that asks proof of possession only; the evidence checks are
//! in tests/evidence.rs): a credential renews once, so a copy of an agent's folder cannot fork
//! it, nor outlive a key rotation (finding 4); a nonce needs more than a public workload
//! identity token, and an agent holds only a few at once (finding 12); an out-of-range
//! lifetime is a 400 (finding 16). Every refusal is a typed problem and appends nothing.

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
    headers: reqwest::header::HeaderMap,
    body: Value,
    raw: String,
}

impl Answer {
    fn kind(&self) -> &str {
        let t = self.body["type"].as_str();
        t.and_then(|t| t.strip_prefix(PROBLEMS)).unwrap_or("?")
    }

    /// A problem document (RFC 9457) of this status and type.
    #[track_caller]
    fn refused(&self, status: u16, kind: &str) {
        assert_eq!((self.status, self.kind()), (status, kind), "{}", self.raw);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{}",
            self.raw
        );
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
        publish_proof_of_possession_only(&dev).await;
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
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let raw = r.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            raw,
        }
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

/// A workload proof token for `aud`, by `key` (PKCS#8), bound to `wit`.
fn proof(key: &[u8], wit: &str, aud: &str) -> String {
    use accord_authority::jws;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signer = accord_authority::signer::SoftwareKey::from_pkcs8(key, "agent").unwrap();
    jws::sign(
        &signer,
        jws::TYP_WPT,
        &json!({"aud": aud, "iat": now, "exp": now + 60, "jti": jws::random_jti(),
                "wth": jws::hash_b64(wit.as_bytes())}),
    )
    .unwrap()
}

/// Finding 12: a nonce is not handed to anyone holding a workload identity token (it is
/// public, and works on after its credential is revoked): the caller brings the enrollment
/// token of an agent not yet enrolled, or the WIT of a live credential with a fresh proof by
/// its key for the nonce's URL (single use). Handing out a nonce stores nothing (ADR 0013), so
/// no number of requests fills the nonce bucket. Nonces are not events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_needs_more_than_a_public_token_and_handing_one_out_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Domain::start(&tmp.path().join("domain"), &[]).await;
    let provision = async |name: &str| {
        let a = d
            .send(
                d.post("/v1/agents")
                    .bearer_auth(&d.admin)
                    .json(&json!({"name": name, "capabilities": ["travel.book"]})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
        (
            a.body["agent_id"].as_str().unwrap().to_owned(),
            a.body["enrollment_token"].as_str().unwrap().to_owned(),
        )
    };
    // an enrolled agent: its key and WIT
    let (a, a_token) = provision("enrolled").await;
    let key = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
    let csr = accord_agent::make_csr(&key).unwrap();
    let r = d
        .send(
            d.post(&format!("/v1/agents/{a}/credentials"))
                .bearer_auth(&a_token)
                .json(&json!({ "csr": csr })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let wit = r.body["wit"].as_str().unwrap().to_owned();
    let path = format!("/v1/agents/{a}/attestation-nonce");
    let url = format!("{}{path}", d.url);
    let before = d.last_seq().await;

    // the WIT alone, as a bearer token or as a header: 401
    d.send(d.post(&path).bearer_auth(&wit))
        .await
        .refused(401, "unauthorized");
    d.send(d.post(&path).header("workload-identity-token", &wit))
        .await
        .refused(401, "unauthorized");
    // with a proof for another URL (the credentials URL: a renewal's), or by another key: 401
    let credentials_url = format!("{}/v1/agents/{a}/credentials", d.url);
    let other_key = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
    for wpt in [
        proof(&key, &wit, &credentials_url),
        proof(&other_key, &wit, &url),
    ] {
        d.send(
            d.post(&path)
                .header("workload-identity-token", &wit)
                .header("workload-proof-token", wpt),
        )
        .await
        .refused(401, "unauthorized");
    }
    // with a fresh proof for this URL: a nonce; the same proof again: 401
    let wpt = proof(&key, &wit, &url);
    let with_proof = || {
        d.post(&path)
            .header("workload-identity-token", &wit)
            .header("workload-proof-token", &wpt)
    };
    let r = d.send(with_proof()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(
        r.body["nonce"].as_str().unwrap().len(),
        accord_authority::evidence::nonce::LEN,
        "{}",
        r.raw
    );
    d.send(with_proof()).await.refused(401, "unauthorized");
    // the enrollment token, once the agent enrolled, is spent for nonces too
    d.send(d.post(&path).bearer_auth(&a_token))
        .await
        .refused(409, "already-enrolled");

    // an agent not yet enrolled: nonces are self-authenticating (ADR 0013), so asking for
    // many stores nothing: the nonce bucket holds only what was spent
    let (b, b_token) = provision("enrolling").await;
    let b_path = format!("/v1/agents/{b}/attestation-nonce");
    let client = support::connect_as(&tmp.path().join("domain"), "services")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let stored = async || {
        js.get_stream("KV_ACCORD_EAT_NONCES")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    };
    let held = stored().await;
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..12 {
        let r = d.send(d.post(&b_path).bearer_auth(&b_token)).await;
        assert_eq!(r.status, 201, "nonce {n}: {}", r.raw);
        assert!(seen.insert(r.body["nonce"].as_str().unwrap().to_owned()));
    }
    assert_eq!(stored().await, held, "handing out nonces stored something");
    let (c, c_token) = provision("another").await;
    let r = d
        .send(
            d.post(&format!("/v1/agents/{c}/attestation-nonce"))
                .bearer_auth(&c_token),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    // another agent's enrollment token does not serve
    d.send(d.post(&b_path).bearer_auth(&c_token))
        .await
        .refused(401, "unauthorized");
    assert_eq!(
        d.last_seq().await,
        before + 2,
        "nothing but the two provisionings appended"
    );
}
