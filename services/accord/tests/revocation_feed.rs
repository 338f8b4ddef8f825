//! The revocation feed (issue 6, ADR 0006) against a running `accord dev`: agents admitted to
//! NATS by the ACA's auth callout with their workload identity token and a proof of
//! possession; a Python nats-py agent reads its feed, is refused everything else, and catches
//! up after an outage from its cursor; the callout refuses revoked, forged, expired and
//! replayed credentials; the Rust library, the CLI and the SSE stream round-trip.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accord_authority::jws;
use accord_authority::signer::SoftwareKey;
use futures::StreamExt;
use serde_json::{Value, json};
use support::*;

/// The JSON lines a Python run printed: its revocations and its summary.
fn python_lines(out: &str) -> (Vec<Value>, Value) {
    let mut revs = Vec::new();
    let mut summary = Value::Null;
    for l in out.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(l).unwrap();
        if v.get("summary").is_some() {
            summary = v["summary"].clone();
        } else if v.get("seq").is_some() {
            revs.push(v);
        }
    }
    (revs, summary)
}

/// Runs the Python agent in the background until it prints `{"ready": true}`: the feed's
/// consumer exists. Returns the child (its stdout is read by `finish`, which reaps it).
#[allow(clippy::zombie_processes)] // returned to the caller, or killed and reaped here
fn start_python(c: &mut Command) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap_or(0);
        if line.contains("\"ready\"") {
            return (child, out);
        }
        if n == 0 || line.contains("summary") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python agent stopped before it was ready: {line}");
        }
    }
}

fn finish(
    mut child: std::process::Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> (Vec<Value>, Value) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let (revs, summary) = python_lines(&rest);
    assert!(status.success(), "{status}: {rest}");
    (revs, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_agent_reads_its_feed_is_refused_the_rest_and_catches_up_after_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    d.agent("watcher");
    let victims: Vec<String> = (0..3).map(|i| d.agent(&format!("victim{i}"))).collect();
    let cursor = "watcher.cursor";

    // 1. subscribed with the credentials the ACA issued, it receives a revocation and is
    //    refused everything else it tries
    let before = d.last_seq().await;
    let (child, out) = start_python(&mut d.watcher(
        "watcher",
        &[
            "--probe",
            "--other",
            &victims[1],
            "--expect",
            "1",
            "--cursor-file",
            cursor,
            "--timeout",
            "20",
        ],
    ));
    assert_eq!(
        d.last_seq().await,
        before,
        "the agent's attempts appended nothing"
    );
    let seq = d.revoke(&victims[0]);
    let (revs, summary) = finish(child, out);
    assert_eq!(summary["connected"], true, "{summary}");
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(revs[0]["seq"], seq);
    assert_eq!(revs[0]["agent_id"], victims[0].as_str());
    assert_eq!(revs[0]["reason"], "keyCompromise");
    // it reaches no JetStream API and no other agent's feed: the server reports each attempt
    let probes = &summary["probes"];
    for p in [
        "event_publish_refused",
        "consumer_create_refused",
        "stream_info_refused",
        "direct_get_refused",
        "js_info_refused",
        "other_open_refused",
        "other_subscribe_refused",
    ] {
        assert_eq!(probes[p], true, "{p}: {probes}");
    }
    assert_eq!(summary["dropped"], json!([]), "{summary}");
    assert_eq!(
        std::fs::read_to_string(d.work.join(cursor)).unwrap(),
        seq.to_string()
    );
    // the log holds exactly the one revocation since: nothing the agent published
    assert_eq!(d.last_seq().await, seq);

    // 2. an outage: revocations made while it is not running
    let missed: Vec<u64> = victims[1..].iter().map(|v| d.revoke(v)).collect();
    let o = d
        .watcher(
            "watcher",
            &["--expect", "2", "--cursor-file", cursor, "--timeout", "20"],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (revs, summary) = python_lines(&text);
    assert_eq!(summary["from_cursor"], seq);
    let got: Vec<u64> = revs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, missed, "exactly what it missed, in order: {text}");
    assert_eq!(revs[1]["agent_id"], victims[2].as_str());
}

/// A connection attempt with `user`/`pass`: Ok(client) or the refusal.
async fn connect(d: &AgentDomain, user: &str, pass: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::with_user_and_password(user.to_owned(), pass.to_owned())
        .add_root_certificates(d.ca())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(1))
        .connect(d.nats_url())
        .await
        .map_err(|e| e.to_string())
}

fn proof(key: &SoftwareKey, wit: &str, claims: Value) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut c = json!({
        "aud": "nats:dev", "iat": now, "exp": now + 60,
        "jti": jws::random_jti(), "wth": jws::hash_b64(wit.as_bytes()),
    });
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    jws::sign(key, jws::TYP_WPT, &c).unwrap()
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callout_refuses_revoked_forged_expired_and_replayed_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let id = d.agent("a");
    let wit = String::from_utf8(d.read("a", "wit.jwt")).unwrap();
    let key = SoftwareKey::from_pkcs8(&d.read("a", "key.pk8"), "a").unwrap();
    let before = d.last_seq().await;

    // admitted: WIT + a fresh proof (the callout may still be subscribing right after start)
    let good = proof(&key, &wit, json!({}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match connect(&d, &wit, &proof(&key, &wit, json!({}))).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "never admitted: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(connect(&d, &wit, &good).await.is_ok());

    // the same proof again: replayed
    let replayed = connect(&d, &wit, &good).await;
    assert!(replayed.is_err(), "a proof is single use");

    // no credentials at all
    assert!(
        async_nats::ConnectOptions::new()
            .add_root_certificates(d.ca())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(3))
            .connect(d.nats_url())
            .await
            .is_err()
    );

    // a proof for another audience, one by another key, one not bound to this WIT
    let other_key = SoftwareKey::generate_p256().unwrap().0;
    for bad in [
        proof(&key, &wit, json!({"aud": "nats:other"})),
        proof(&other_key, &wit, json!({})),
        proof(&key, &wit, json!({"wth": jws::hash_b64(b"another token")})),
        proof(
            &key,
            &wit,
            json!({"exp": time::OffsetDateTime::now_utc().unix_timestamp() + 3600}),
        ),
    ] {
        assert!(
            connect(&d, &wit, &bad).await.is_err(),
            "{}",
            claims_of(&bad)
        );
    }

    // a forged WIT: the same claims signed by a key that is not the ACA's token key
    let claims = claims_of(&wit);
    let forged = jws::sign(&other_key, jws::TYP_WIT, &claims).unwrap();
    assert!(
        connect(&d, &forged, &proof(&key, &forged, json!({})))
            .await
            .is_err()
    );
    // an expired WIT signed by the real token key
    let token_key = SoftwareKey::from_pkcs8(
        &std::fs::read(d.dir().join("authority/token.pk8")).unwrap(),
        "t",
    )
    .unwrap();
    let mut old = claims.clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    old["exp"] = (now - 600).into();
    old["nbf"] = (now - 4000).into();
    old["iat"] = (now - 4000).into();
    let expired = jws::sign(&token_key, jws::TYP_WIT, &old).unwrap();
    assert!(
        connect(&d, &expired, &proof(&key, &expired, json!({})))
            .await
            .is_err()
    );
    // a WIT by the real key for a serial the ACA never issued
    let mut unknown = claims.clone();
    unknown["x5t_serial"] = "0123456789abcdef0123456789abcdef".into();
    let unknown = jws::sign(&token_key, jws::TYP_WIT, &unknown).unwrap();
    assert!(
        connect(&d, &unknown, &proof(&key, &unknown, json!({})))
            .await
            .is_err()
    );
    assert_eq!(d.last_seq().await, before, "refusals append nothing");

    // a live connection of the credential, watched for its end
    let (tx, mut disconnected) = tokio::sync::mpsc::unbounded_channel();
    let live = async_nats::ConnectOptions::with_user_and_password(
        wit.clone(),
        proof(&key, &wit, json!({})),
    )
    .add_root_certificates(d.ca())
    .require_tls(true)
    .max_reconnects(Some(1))
    .event_callback(move |e| {
        let tx = tx.clone();
        async move {
            if matches!(e, async_nats::Event::Disconnected) {
                let _ = tx.send(());
            }
        }
    })
    .connect(d.nats_url())
    .await
    .unwrap();

    // revoked: the live connection is kicked, and the next connect is refused
    let seq = d.revoke(&id);
    tokio::time::timeout(Duration::from_secs(5), disconnected.recv())
        .await
        .expect("the revoked credential's live connection was not kicked");
    drop(live);
    assert!(
        connect(&d, &wit, &proof(&key, &wit, json!({})))
            .await
            .is_err()
    );
    assert_eq!(d.last_seq().await, seq);
    drop(client);
    let log = std::fs::read_to_string(d.dir().join("nats/nats.log")).unwrap();
    for reason in [
        "replayed",
        "signature does not verify",
        "expired",
        "is unknown",
        "is revoked",
    ] {
        assert!(
            log.contains(reason),
            "the server logged no refusal for {reason:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_library_the_cli_and_the_sse_stream_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    let id = d.agent("lib");
    let victims: Vec<String> = (0..3).map(|i| d.agent(&format!("v{i}"))).collect();
    let domain = accord_events::DomainId::parse("dev").unwrap();
    let agent = accord_events::AgentId::parse(&id).unwrap();

    // the library: connect, subscribe from the start, see a revocation made after
    let ca = std::fs::read(d.ca()).unwrap();
    let wit = String::from_utf8(d.read("lib", "wit.jwt")).unwrap();
    let key = d.read("lib", "key.pk8");
    let deadline = Instant::now() + Duration::from_secs(10);
    let feed = loop {
        match accord_agent::feed::RevocationFeed::connect(
            &d.nats_url(),
            &ca,
            &wit,
            &key,
            &domain,
            &agent,
            accord_agent::AgentDir::new(&d.work.join("lib"))
                .read_domain()
                .unwrap()
                .key_ring()
                .unwrap(),
        )
        .await
        {
            Ok(f) => break f,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut revs = Box::pin(feed.subscribe(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s0 = d.revoke(&victims[0]);
    let r = tokio::time::timeout(Duration::from_secs(10), revs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((r.seq, r.agent_id.to_string()), (s0, victims[0].clone()));
    assert_eq!(r.serials.len(), 1);
    drop(revs);

    // the CLI: a first run, an outage, a second run resumes from its cursor file
    let cursor = d.work.join("cli.cursor");
    let watch = |count: &str| {
        let mut c = accord();
        c.args(["agent", "watch-revocations", "--dir"])
            .arg(d.work.join("lib"))
            .args(["--nats-url", &d.nats_url(), "--ca"])
            .arg(d.ca())
            .arg("--cursor-file")
            .arg(&cursor)
            .args(["--json", "--count", count]);
        c
    };
    let first = must(&mut watch("1"));
    let line: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(line["seq"], s0);
    assert_eq!(std::fs::read_to_string(&cursor).unwrap(), s0.to_string());
    let s1 = d.revoke(&victims[1]);
    let s2 = d.revoke(&victims[2]);
    let second = must(&mut watch("2"));
    let seqs: Vec<u64> = second
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![s1, s2]);
    assert_eq!(std::fs::read_to_string(&cursor).unwrap(), s2.to_string());

    // SSE with curl: Last-Event-ID resumes after that sequence, ?from= too
    let sse = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["-sSN", "--max-time", "3", "--cacert"])
            .arg(d.ca())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let url = format!("{}/v1/revocations/stream", d.dev.http());
    let ids = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|s| s.parse().unwrap())
            .collect()
    };
    let all = sse(&[&url]);
    assert_eq!(ids(&all), vec![s0, s1, s2], "{all}");
    assert!(all.contains("event: revocation"));
    let data: Value =
        serde_json::from_str(all.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(data["agent_id"], victims[0].as_str());
    let resumed = sse(&["-H", &format!("Last-Event-ID: {s0}"), &url]);
    assert_eq!(ids(&resumed), vec![s1, s2], "{resumed}");
    let from = sse(&[&format!("{url}?from={s1}")]);
    assert_eq!(ids(&from), vec![s2], "{from}");
    // a bad cursor is a typed problem
    let (status, body) = d.dev.get("/v1/revocations/stream?from=x").await;
    assert_eq!(status, 400, "{body}");
}

/// A proof token admits one connection, also across a restart of the ACA (security review
/// 2026-12, finding 15: the spent jtis live in a JetStream bucket, not in the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_spent_once_even_across_an_aca_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = AgentDomain::start(&tmp).await;
    d.agent("a");
    let wit = String::from_utf8(d.read("a", "wit.jwt")).unwrap();
    let key = SoftwareKey::from_pkcs8(&d.read("a", "key.pk8"), "a").unwrap();
    let good = proof(&key, &wit, json!({}));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&d, &wit, &good).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "never admitted: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    d.dev.stop();
    d.dev = Dev::start(&d.dev.dir.clone(), &[], &[]);
    d.dev.wait_ready(Duration::from_secs(60)).await;
    // a fresh proof is admitted (once the callout answers again); the spent one is not
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&d, &wit, &proof(&key, &wit, json!({}))).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "never admitted again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(
        connect(&d, &wit, &good).await.is_err(),
        "a proof spent before the restart was accepted again"
    );
}

/// A renewal revokes the credential the feed's connection was admitted with (superseded) and
/// the ACA kicks that connection; `accord agent watch-revocations` reconnects with the renewed
/// credential from the folder and misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_follows_a_renewal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = AgentDomain::start(&tmp).await;
    d.agent("watcher");
    let victim = d.agent("victim");
    let cursor = d.work.join("watcher.cursor");
    std::fs::write(&cursor, d.last_seq().await.to_string()).unwrap();
    let watch = accord()
        .args(["agent", "watch-revocations", "--dir"])
        .arg(d.work.join("watcher"))
        .args(["--nats-url", &d.nats_url(), "--ca"])
        .arg(d.ca())
        .arg("--cursor-file")
        .arg(&cursor)
        .args(["--json", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // the renewal: the old serial is revoked at once, the watcher's connection kicked
    must(&mut d.cli(&[
        "agent",
        "renew",
        "--dir",
        d.work.join("watcher").to_str().unwrap(),
    ]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = d.revoke(&victim);
    let (lines, text, stderr) = watch_output(watch).await;
    let seqs: Vec<u64> = lines.iter().filter_map(|v| v["seq"].as_u64()).collect();
    // its own superseded credential, then the victim's revocation
    assert_eq!(seqs.len(), 2, "{text}{stderr}");
    assert_eq!(seqs[1], seq, "{text}");
}
