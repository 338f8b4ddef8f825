//! What the ACA publishes about revocations, against a running `accord dev` (security review
//! 2026-12, findings 10 and 13): the CRL is not signed again while the `credentials`
//! projection is stuck, and says so; each server-sent revocation carries the signed event a
//! client verifies with the domain's pinned key; one client holds at most four streams.

#![allow(clippy::unwrap_used)]

#[path = "support/curl.rs"]
mod curl;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use curl::curl;
use serde_json::Value;
use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `thisUpdate` of a DER CRL, as `openssl crl` prints it.
fn this_update(work: &Path, der: &[u8]) -> String {
    let f = work.join("crl.der");
    std::fs::write(&f, der).unwrap();
    let o = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-lastupdate", "-in"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Finding 10: once the `credentials` projection has been stuck for a while, the CRL is no
/// longer signed again (a fresh `thisUpdate` over stale contents would hide the revocations
/// after the stall); it is left to age, `/v1/crl` says it is stale, and a CRL that would
/// cover a later sequence is refused at once as a 503 `crl-stale` problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_credentials_projection_lets_the_crl_age_instead_of_being_signed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // a 60 s CRL is signed again every 30 s
    let validity = ("ACCORD_AUTHORITY__CRL_VALIDITY_SECS", "60");
    let mut dev = Dev::start(&dir, &[], &[validity]);
    dev.wait_ready(Duration::from_secs(60)).await;
    let (_, d) = dev.get("/v1/domain").await;
    let last = d["last_seq"].as_u64().unwrap();
    dev.stop();
    drop(dev);

    // the next event stops the credentials projection (a fault hook: every batch holding it
    // fails, as after a poisoned log or a lost database)
    let stall = format!("projection:credentials:{}", last + 1);
    let dev = Dev::start(&dir, &[], &[validity, ("ACCORD_FAULT_STALL", &stall)]);
    dev.wait_ready(Duration::from_secs(60)).await;
    let ca = dir.join("tls/ca.pem");
    let http = dev.http();
    let get = |path: &str| curl(&ca, &work, &[&format!("{http}{path}")]);
    let first = get(&format!("/v1/crl?min_seq={last}&wait_ms=10000"));
    let fetched = Instant::now();
    assert_eq!(first.status, 200);
    let t0 = this_update(&work, &first.body);
    assert!(first.header("accord-crl-stale").is_none());

    let admin = std::fs::read_to_string(dir.join("http/admin.token")).unwrap();
    let r = dev
        .client()
        .post(format!("{http}/v1/agents"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"name": "after the stall"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let seq = r.json::<Value>().await.unwrap()["seq"].as_u64().unwrap();
    assert_eq!(seq, last + 1);

    // stuck for the bound (a tenth of the validity: 6 s), the CRL says it cannot get there
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = get(&format!("/v1/crl?min_seq={seq}&wait_ms=500"));
        if g.status == 503 {
            assert_eq!(g.kind(), "crl-stale");
            break;
        }
        assert_eq!(g.status, 409, "not yet stale: {:?}", g.json());
        assert!(Instant::now() < deadline, "the CRL never reported stale");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // past half its validity it is not signed again
    tokio::time::sleep(
        (fetched + Duration::from_secs(36)).saturating_duration_since(Instant::now()),
    )
    .await;
    let later = get("/v1/crl");
    assert_eq!(later.status, 200);
    assert_eq!(
        this_update(&work, &later.body),
        t0,
        "signed again while stuck"
    );
    assert!(later.header("accord-crl-stale").is_some());
    let (_, p) = dev.get("/v1/projections").await;
    assert_eq!(p["crl"]["stale"], true, "{p}");
    let metrics = String::from_utf8(get("/metrics").body).unwrap();
    assert!(
        metrics.lines().any(|l| l == "accord_crl_stale 1"),
        "{metrics}"
    );
}

/// Finding 13: every server-sent revocation carries the exact stored bytes of its
/// `CredentialRevoked` event, which an independent Python verifier checks with the domain's
/// event-signing key; a fifth concurrent stream from one address is a 429 problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_revocations_carry_the_signed_event_and_a_client_holds_at_most_four_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let dev = Dev::start(&dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(60)).await;
    let events = store(&dir, None).await;
    let agent = accord_events::AgentId::new_v7();
    let stored = events
        .append(
            accord_events::AggregateKind::Agent,
            &accord_events::AggregateId::parse(&agent.to_string()).unwrap(),
            accord_store::Version::EMPTY,
            &meta(),
            vec![accord_events::Event::CredentialRevoked(
                accord_events::catalogue::CredentialRevoked {
                    serials: vec![
                        accord_events::CredentialSerial::parse("0a1b2c3d4e5f60718293a4b5c6d7e8f9")
                            .unwrap(),
                    ],
                    reason: accord_events::catalogue::RevocationReason::KeyCompromise,
                    revoked_at: accord_events::Timestamp::now(),
                    triggered_by: None,
                },
            )],
        )
        .await
        .unwrap();
    let seq = stored.version.stream_seq;

    let ca = dir.join("tls/ca.pem");
    let url = format!("{}/v1/revocations/stream", dev.http());
    let g = curl(&ca, &work, &["-N", "--max-time", "3", &url]);
    assert_eq!(g.status, 200);
    let text = String::from_utf8(g.body).unwrap();
    let data: Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("no event: {text}")),
    )
    .unwrap();
    assert_eq!(data["seq"], seq);
    assert_eq!(data["agent_id"], agent.to_string());
    let signed = base64::engine::general_purpose::STANDARD
        .decode(data["signed"].as_str().unwrap_or_else(|| panic!("{data}")))
        .unwrap();
    let event: Value = serde_json::from_slice(&signed).unwrap();
    assert_eq!(event["event"]["type"], "CredentialRevoked");
    assert_eq!(event["event"]["aggregate"]["id"], agent.to_string());
    assert_eq!(event["event"]["data"]["serials"], data["serials"]);
    assert!(
        data["subject"]
            .as_str()
            .unwrap()
            .ends_with(".CredentialRevoked")
    );

    // verified by code that shares nothing with Accord, with the key the domain pins
    let (_, domain) = dev.get("/v1/domain").await;
    let key = domain["event_signing_keys"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let check = |bytes: &[u8]| {
        let f = work.join("revocation.json");
        std::fs::write(&f, bytes).unwrap();
        accord_testkit::python()
            .arg(root().join("tests/python/check_events.py"))
            .arg(format!("--key={key}"))
            .arg(&f)
            .output()
            .unwrap()
    };
    let ok = check(&signed);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let tampered = String::from_utf8(signed.clone())
        .unwrap()
        .replace("keyCompromise", "superseded");
    assert_ne!(tampered.as_bytes(), signed.as_slice());
    assert_eq!(check(tampered.as_bytes()).status.code(), Some(1));

    // four streams per client address, then a 429 problem; the global cap stays
    let client = dev.client();
    let mut open = Vec::new();
    for _ in 0..4 {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        p["type"],
        "https://accord.dev/problems/too-many-streams-per-client"
    );
    // a stream that ends gives its place back
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = client.get(&url).send().await.unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert_eq!(r.status().as_u16(), 429);
        assert!(
            Instant::now() < deadline,
            "the closed stream kept its place"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
