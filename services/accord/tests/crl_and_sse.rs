//! What the ACA publishes about revocations, against a running `accord dev` (security review
//! 2026-12, finding 10): the CRL is not signed again while the `credentials` projection is
//! stuck, and says so.

#![allow(clippy::unwrap_used)]

#[path = "support/curl.rs"]
mod curl;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use curl::curl;
use serde_json::Value;
use support::*;

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
