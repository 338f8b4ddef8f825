//! `accord agent sidecar` (issue 15, item 5; ADR 0015) against a running `accord dev`, with the
//! SPIFFE project's own client (`spiffe` on PyPI) as the workload: the sidecar enrolls a
//! provisioned agent, registers it, and serves its identity over the SPIFFE Workload API; the
//! client gets the X.509-SVID (chaining to the bundle, with its key), the bundles, and a
//! JWT-SVID that verifies under the JWT bundle and validates through the API for its audience
//! only. At half the credential's life the sidecar renews, registers the new credential and
//! pushes the new SVID on the open stream; once the agent is revoked the stream ends with
//! PERMISSION_DENIED and every new call gets it.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::agents::{AgentDomain, root};
use support::must;

/// The JSON lines a child prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<Value> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { return };
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// The next line whose `key` is `value`, within `secs`; the lines before it.
fn wait_for(rx: &mpsc::Receiver<Value>, key: &str, value: &str, secs: u64) -> (Value, Vec<Value>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if v[key] == value => return (v, before),
            Ok(v) => before.push(v),
            Err(e) => panic!("no {key}={value} within {secs} s ({e}); saw {before:?}"),
        }
    }
}

fn python(args: &[&str]) -> Command {
    let mut c = accord_testkit::python();
    c.arg(root().join("tests/python/check_workload_api.py"))
        .args(args);
    c
}

fn serial(d: &AgentDomain, name: &str) -> String {
    let v: Value = serde_json::from_slice(&d.read(name, "agent.json")).unwrap();
    v["serial"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spiffe_client_gets_the_agents_identity_from_the_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    // provisioned only: the sidecar enrolls
    let (id, token) = d.provision("svc");
    let dir = d.work.join("svc");
    let sock = d.work.join("svc.sock");
    let socket = format!("unix://{}", sock.display());
    let mut sidecar = d
        .cli(&[
            "agent",
            "sidecar",
            "--dir",
            dir.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--agent-id",
            &id,
            "--enrollment-token-file",
            token.to_str().unwrap(),
            "--name",
            "svc",
            "--endpoint",
            "https://svc.dev.example/a2a",
            "--nats-url",
            &d.nats_url(),
            "--lifetime-secs",
            "60",
            "--renew-at",
            "0.5",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let steps = lines_of(&mut sidecar);
    let (_, before) = wait_for(&steps, "step", "serving", 60);
    let first = serial(&d, "svc");
    assert_eq!(before[0]["step"], "enrolled", "{before:?}");
    assert_eq!(before[0]["serial"], first.as_str());
    assert_eq!(before[1]["step"], "registered", "{before:?}");
    assert_eq!(before[1]["outcome"], "registered");

    // the SPIFFE client, unmodified
    let state: Value = serde_json::from_slice(&d.read("svc", "agent.json")).unwrap();
    let spiffe_id = state["spiffe_id"].as_str().unwrap();
    let audience = "spiffe://partner.example/relying-party";
    let out = must(&mut python(&[
        "check",
        "--socket",
        &socket,
        "--audience",
        audience,
    ]));
    let c: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(c["spiffe_id"], spiffe_id, "{c}");
    assert_eq!(c["serial"], first.as_str(), "{c}");
    assert_eq!(c["chain_ok"], true, "{c}");
    assert_eq!(c["key_matches"], true, "{c}");
    assert!(c["bundle_authorities"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["jwt_spiffe_id"], spiffe_id, "{c}");
    assert_eq!(c["jwt_audience"], serde_json::json!([audience]), "{c}");
    assert_eq!(c["jwt_verified"], true, "{c}");
    assert_eq!(c["jwt_validated"], spiffe_id, "{c}");
    assert_eq!(c["other_audience"], "ValidateJwtSvidError", "{c}");
    assert_eq!(c["forged"], "ValidateJwtSvidError", "{c}");
    assert_eq!(c["no_header"], "INVALID_ARGUMENT", "{c}");

    // the JWT-SVID is in the log (its digest, never the token)
    let tail = must(&mut d.cli(&["events", "tail", "--json"]));
    let issued: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["verified"] == true && v["event"]["type"] == "TokenIssued")
        .map(|v| v["event"]["data"].clone())
        .collect();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["subject"], spiffe_id);
    assert_eq!(
        issued[0]["token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(issued[0]["audience"], serde_json::json!([audience]));
    assert!(!tail.contains("eyJ"), "a token in the log");

    // a stream open across the renewal and the revocation
    let mut watch = python(&["watch", "--socket", &socket, "--timeout", "90"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pushed = lines_of(&mut watch);
    let (v, _) = wait_for(&pushed, "serial", &first, 20);
    assert_eq!(v["serial"], first.as_str());

    // renewal at half of 60 s, then the new credential is registered and pushed
    let (renewed, _) = wait_for(&steps, "step", "renewed", 60);
    let second = serial(&d, "svc");
    assert_ne!(second, first);
    assert_eq!(renewed["serial"], second.as_str());
    let (reg, _) = wait_for(&steps, "step", "registered", 20);
    assert_eq!(reg["outcome"], "updated", "{reg}");
    assert_eq!(reg["serial"], second.as_str());
    wait_for(&pushed, "serial", &second, 20);
    let f: Value =
        serde_json::from_str(must(&mut python(&["fetch", "--socket", &socket])).trim()).unwrap();
    assert_eq!(f["serial"], second.as_str(), "{f}");
    let shown = must(&mut d.cli(&["registry", "show", &id, "--json"]));
    assert!(shown.contains(&second), "{shown}");

    // revoked: the stream ends with PERMISSION_DENIED, and so does every new call
    d.revoke(&id);
    let (w, _) = wait_for(&steps, "step", "withdrawn", 20);
    assert_eq!(w["reason"], "revoked");
    let end = pushed.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        end["error"].as_str().unwrap().contains("PERMISSION_DENIED"),
        "{end}"
    );
    let f: Value =
        serde_json::from_str(must(&mut python(&["fetch", "--socket", &socket])).trim()).unwrap();
    assert_eq!(f["error"], "PERMISSION_DENIED", "{f}");
    let _ = watch.kill();
    let _ = watch.wait();

    // stopped: the socket is gone
    let status = accord_testkit::terminate(&mut sidecar, Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(!sock.exists());
}

/// The ACA's JWT-SVID endpoint: a JWT-SVID for the holder of a live credential (WIT and a
/// fresh proof), ES256 under a key of the domain's JWKS, `typ: JWT`, the audiences asked for,
/// at most five minutes; an enrollment token, bad audiences and a revoked credential are
/// refused, typed, and append nothing.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_svids_for_live_credentials_only() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let id = d.agent("svc");
    let dir = accord_agent::AgentDir::new(&d.work.join("svc"));
    let url = format!("https://127.0.0.1:{}", d.state()["http_port"]);
    let ca = std::fs::read(d.ca()).unwrap();
    let aca = accord_agent::Client::new(&url, Some(&ca)).unwrap();
    let count = || {
        must(&mut d.cli(&["events", "tail", "--json"]))
            .lines()
            .filter(|l| l.contains("\"TokenIssued\""))
            .count()
    };

    let r = aca
        .jwt_svid(&dir, vec!["b".into(), "a".into(), "a".into()])
        .await
        .unwrap();
    let parts: Vec<&str> = r.token.split('.').collect();
    let dec = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    let (h, c) = (dec(parts[0]), dec(parts[1]));
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "JWT");
    let jwks = aca.jwks().await.unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == h["kid"]),
        "{h} {jwks}"
    );
    assert_eq!(c["aud"], serde_json::json!(["a", "b"]));
    assert_eq!(c["sub"], r.spiffe_id.as_str());
    let life = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert!((1..=300).contains(&life), "{c}");
    assert_eq!(count(), 1);

    // refusals, typed, recording nothing
    let refused = |e: accord_agent::AgentError| match e {
        accord_agent::AgentError::Refused { status, kind, .. } => (status, kind),
        e => panic!("{e}"),
    };
    let e = aca.jwt_svid(&dir, vec![]).await.unwrap_err();
    assert_eq!(refused(e), (400, "bad-request".to_owned()));
    let e = aca.jwt_svid(&dir, vec!["a b".into()]).await.unwrap_err();
    assert_eq!(refused(e), (400, "bad-request".to_owned()));
    let token = std::fs::read_to_string(d.work.join("svc.token")).unwrap();
    let enrollment = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap()
        .post(format!("{url}/v1/agents/{id}/jwt-svids"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"audience": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(enrollment.status(), 401);
    d.revoke(&id);
    let e = aca.jwt_svid(&dir, vec!["a".into()]).await.unwrap_err();
    assert_eq!(refused(e).0, 403);
    assert_eq!(count(), 1);
}
