//! The log says exactly what the domain signed (issue 13, security review 2026-12):
//!
//! - no identity other than the services (auditor, operator, an admitted agent) can change
//!   `ACCORD_EVENTS` through a reply subject, a consumer or a stream update; afterwards every
//!   projection is free of errors and a revocation still takes effect everywhere;
//! - a foreign message in the log (the test owns the server and puts one there as the
//!   services) is skipped and reported by every reader, and `accord audit verify` names it.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The name of the `credentials` projection's durable consumer (what an auditor would pull
/// from to steal its deliveries, finding 3).
async fn credentials_consumer(dir: &Path) -> String {
    use futures::StreamExt;
    let c = connect_as(dir, "services").await.unwrap();
    let js = async_nats::jetstream::new(c);
    let stream = js.get_stream("ACCORD_EVENTS").await.unwrap();
    let mut names = stream.consumer_names();
    while let Some(n) = names.next().await {
        let n = n.unwrap();
        if n.contains("-credentials-g") {
            return n;
        }
    }
    panic!("no credentials consumer")
}

async fn stream_config(dir: &Path) -> async_nats::jetstream::stream::Config {
    let c = connect_as(dir, "services").await.unwrap();
    let js = async_nats::jetstream::new(c);
    js.get_stream("ACCORD_EVENTS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_writes_the_log_through_a_reply_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let attacker = d.agent("attacker");
    // the agent whose feed the attacks aim at, and the one revoked afterwards
    let victim = d.agent("victim");
    let revokee = d.agent("revokee");
    let consumer = credentials_consumer(d.dir()).await;
    let config_before = stream_config(d.dir()).await;
    let before = d.last_seq().await;

    // the auditor, the operator and an admitted agent each try everything
    let seeds = d.dir().join("nats");
    let runs: Vec<(&str, Vec<String>)> = vec![
        (
            "auditor",
            vec![
                "--seed".into(),
                seeds.join("auditor.nk").display().to_string(),
            ],
        ),
        (
            "admin",
            vec![
                "--seed".into(),
                seeds.join("admin.nk").display().to_string(),
            ],
        ),
        ("agent", vec!["--agent-dir".into(), "attacker".into()]),
    ];
    for (who, creds) in &runs {
        let o = d
            .script("poison_log.py")
            .args(creds)
            .args(["--victim", &victim, "--consumer", &consumer])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{who}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        // nothing it asked was answered: in its own account there is no JetStream, and what
        // it imports (an auditor's direct get) answers only to its own inboxes
        for a in v["answers"].as_array().unwrap() {
            let data = a["data"].as_str().unwrap();
            assert!(
                !data.contains("stream_update_response") || data.contains("\"error\""),
                "{who}: a stream update was accepted: {a}"
            );
            assert!(
                !data.contains("consumer_create_response") || data.contains("\"error\""),
                "{who}: a consumer was created: {a}"
            );
        }
        assert!(
            !v["violations"].as_array().unwrap().is_empty(),
            "{who}: the server reported no violation: {v}"
        );
        assert_eq!(d.last_seq().await, before, "{who} changed the log: {v}");
    }
    let _ = attacker;

    // the log is as it was: same last sequence, same configuration
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(d.last_seq().await, before);
    let config = stream_config(d.dir()).await;
    assert_eq!(config.subjects, config_before.subjects);
    assert!(!config.sealed && config.sources.is_none() && config.subject_transform.is_none());
    assert_eq!(config.max_messages, config_before.max_messages);

    // every projection applies, free of errors and of foreign messages
    let p = d.projections_at(before).await;
    assert_eq!(p["foreign_messages"], json!([]), "{p}");
    for pr in p["projections"].as_array().unwrap() {
        assert!(pr["error"].is_null(), "{pr}");
        assert_eq!(pr["foreign"], 0, "{pr}");
    }

    // and a revocation still takes effect: the projections, the CRL, and the feed of the agent
    // the attacks aimed at (a Python agent that checks every delivery itself)
    let cursor = d.work.join("victim.cursor");
    std::fs::write(&cursor, before.to_string()).unwrap();
    let watcher = d
        .script("watch_revocations.py")
        .args(["--dir", "victim", "--expect", "1", "--timeout", "20"])
        .arg("--cursor-file")
        .arg(&cursor)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = d.revoke(&revokee);
    let p = d.projections_at(seq).await;
    for pr in p["projections"].as_array().unwrap() {
        assert!(pr["error"].is_null(), "{pr}");
    }
    let (status, _) = d
        .dev
        .get(&format!("/v1/crl?min_seq={seq}&wait_ms=5000"))
        .await;
    assert_eq!(status, 200);
    let out = tokio::task::spawn_blocking(move || watcher.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let got: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(got, vec![seq], "{text}");
    let summary = lines.iter().find(|l| l["summary"].is_object()).unwrap();
    assert_eq!(summary["summary"]["dropped"], json!([]), "{text}");
}

/// Publishes `payload` on `subject` as the services (only the test, which owns the server,
/// can): a message that is not an authentic event of the domain. Its sequence.
async fn plant(dir: &Path, subject: &str, payload: Vec<u8>) -> u64 {
    let c = connect_as(dir, "services").await.unwrap();
    let js = async_nats::jetstream::new(c);
    js.publish(subject.to_owned(), payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_message_is_skipped_and_reported_by_every_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let watcher = d.agent("watcher");
    let victim = d.agent("victim");
    let bystander = d.agent("bystander");
    let _ = watcher;

    // the agent library's CLI follows the feed from now on
    let start = d.last_seq().await;
    let cursor = d.work.join("watcher.cursor");
    std::fs::write(&cursor, start.to_string()).unwrap();
    let watch = accord()
        .args(["agent", "watch-revocations", "--dir"])
        .arg(d.work.join("watcher"))
        .args(["--nats-url", &d.nats_url(), "--ca"])
        .arg(d.dir().join("tls/ca.pem"))
        .arg("--cursor-file")
        .arg(&cursor)
        .args(["--json", "--count", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. what finding 1 stored: a JetStream API answer under a revocation subject of the victim
    let on_victim = format!("accord.evt.dev.agent.{victim}.CredentialRevoked");
    let api_answer = br#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0}"#;
    let poison = plant(d.dir(), &on_victim, api_answer.to_vec()).await;
    // 2. an event signed by a key the domain does not have
    let forged = {
        // a well-formed event of this domain, correctly signed, but not by the domain's key
        let mut env = accord_events::sample::envelope("CredentialRevoked").unwrap();
        env.domain = accord_events::DomainId::parse("dev").unwrap();
        let signed = accord_events::Ed25519Key::generate()
            .unwrap()
            .0
            .sign_event(env)
            .unwrap();
        plant(
            d.dir(),
            &signed.envelope.subject().to_string(),
            signed.bytes,
        )
        .await
    };

    // the victim's aggregate still loads, is revoked, and every reader skips both entries
    let seq = d.revoke(&victim);
    assert!(seq > forged && forged > poison);
    let p = d.projections_at(seq).await;
    let listed: Vec<u64> = p["foreign_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![poison, forged], "{p}");
    let first = &p["foreign_messages"][0];
    assert_eq!(first["kind"], "not_an_event", "{p}");
    assert_eq!(p["foreign_messages"][1]["kind"], "unpinned_key", "{p}");
    for pr in p["projections"].as_array().unwrap() {
        assert!(pr["error"].is_null(), "{pr}");
        assert_eq!(pr["foreign"], 2, "{pr}");
        assert_eq!(pr["foreign_seqs"], json!([poison, forged]), "{pr}");
    }
    let readers = first["readers"].to_string();
    for r in [
        "projection:credentials",
        "projection:registry",
        "aggregate",
        "audit",
    ] {
        assert!(readers.contains(r), "{r} did not report it: {readers}");
    }
    // the credential is revoked in the read model, the CRL answers at the revocation
    let (status, _) = d
        .dev
        .get(&format!("/v1/crl?min_seq={seq}&wait_ms=5000"))
        .await;
    assert_eq!(status, 200);

    // the agent library drops the planted revocation (it is not signed by the domain), and
    // delivers the genuine one
    let another = d.revoke(&bystander);
    let (lines, text, _) = watch_output(watch).await;
    let dropped: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["dropped"]["seq"].as_u64())
        .collect();
    let delivered: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(dropped, vec![poison, forged], "{text}");
    assert_eq!(delivered, vec![seq, another], "{text}");

    // the server-sent stream serves the genuine revocations only
    let mut sse = d
        .dev
        .client()
        .get(format!("{}/v1/revocations/stream", d.dev.http()))
        .header("Last-Event-ID", start.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.contains(&format!("id: {another}")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, sse.chunk()).await;
        match chunk {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => panic!("the SSE stream did not deliver {another}: {text}"),
        }
    }
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|i| i.trim().parse().unwrap())
        .collect();
    assert_eq!(ids, vec![seq, another], "{text}");
    drop(sse);

    // the metric counts them (refreshed every second)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = d.dev.get("/metrics").await;
        let metrics = metrics.as_str().unwrap_or_default().to_owned();
        if metrics.contains("accord_log_foreign_messages{reader=\"any\"} 2") {
            assert!(
                metrics
                    .contains("accord_log_foreign_messages{reader=\"projection:credentials\"} 2"),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // the auditor's tools name them
    let tail = accord()
        .args(["events", "tail", "--json", "--data-dir"])
        .arg(d.dir())
        .output()
        .unwrap();
    assert_eq!(tail.status.code(), Some(1));
    let tail_out = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail_out
            .lines()
            .any(|l| l.contains(&format!("\"seq\":{poison}"))
                && l.contains("\"problem_kind\":\"not_an_event\"")),
        "{tail_out}"
    );
    let verify = accord()
        .args([
            "audit",
            "verify",
            "--json",
            "--no-projections",
            "--data-dir",
        ])
        .arg(d.dir())
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("foreign_message") && failures.contains(&poison.to_string()),
        "{report}"
    );
    assert!(failures.contains("unpinned_key"), "{report}");

    // a restart does not meet them as errors either
    let mut dev = d.dev;
    dev.stop();
    let dev = Dev::start(&dev.dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(60)).await;
    let (_, p) = dev.get("/v1/projections").await;
    for pr in p["projections"].as_array().unwrap() {
        assert!(pr["error"].is_null(), "{pr}");
        assert!(pr["applied"].as_u64().unwrap() >= another, "{pr}");
    }
}
