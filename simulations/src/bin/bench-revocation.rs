//! Benchmark of the revocation feed: the latency from just before the revoke call (HTTPS to the
//! ACA, which appends the `CredentialRevoked` and answers once JetStream acknowledged it) to a
//! subscribed agent (the Rust agent library, admitted by the auth callout, reading its own push
//! consumer) receiving that revocation, one revocation at a time; beside the raw JetStream
//! publish-to-consumer latency measured in the same run on the same server (a file stream of
//! its own, an ordered push consumer, messages of an event's size).
//!
//! `cargo build --release -p accord && cargo run --release -p accord-simulations --bin bench-revocation`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord_agent::feed::RevocationFeed;
use accord_agent::{AgentDir, Client, KeyType};
use accord_events::{AgentId, DomainId};
use accord_simulations::{Latency, Row, fmt_dur, print_table};
use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Revocations timed.
    #[arg(long, default_value_t = 1_000)]
    revocations: usize,
    /// The `accord` binary (default: beside this one).
    #[arg(long)]
    accord: Option<PathBuf>,
}

struct Dev {
    child: Option<Child>,
    dir: PathBuf,
    url: String,
    nats_url: String,
    http: reqwest::Client,
    admin: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            accord_testkit::terminate(&mut c, Duration::from_secs(20));
        }
    }
}

impl Dev {
    async fn start(accord: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(accord)
            .args(["dev", "--json", "--data-dir"])
            .arg(dir)
            .env("ACCORD_AUTHORITY__RATE_LIMIT_PER_MINUTE", "100000000")
            .env("ACCORD_TOOLS_DIR", accord_testkit::tools_dir())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.with_extension("stderr.log"))?)
            .spawn()
            .with_context(|| format!("{}", accord.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let mut d = Self {
            child: Some(child),
            dir: dir.to_owned(),
            url: String::new(),
            nats_url: String::new(),
            http: reqwest::Client::new(),
            admin: String::new(),
        };
        let endpoints: Value = serde_json::from_str(&line).context("accord dev endpoints")?;
        d.url = endpoints["http_url"]
            .as_str()
            .context("http_url")?
            .to_owned();
        let state: Value = serde_json::from_slice(&std::fs::read(dir.join("dev.json"))?)?;
        d.nats_url = format!("tls://127.0.0.1:{}", state["nats_port"]);
        let pem = std::fs::read(dir.join("tls/ca.pem"))?;
        d.http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d
            .http
            .get(format!("{}/readyz", d.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if Instant::now() > deadline {
                bail!("accord dev not ready in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.admin = std::fs::read_to_string(dir.join("http/admin.token"))?
            .trim()
            .to_owned();
        // the feed is measured, not the evidence: agents enroll on proof of possession
        accord_simulations::proof_of_possession_only(&d.http, &d.url, &d.admin).await?;
        Ok(d)
    }

    async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    /// Provisions and enrolls an agent into `<dir>/agents/<i>`.
    async fn agent(&self, client: &Client, i: usize) -> anyhow::Result<AgentId> {
        let p = self
            .admin_post(
                "/v1/agents",
                json!({"name": format!("a{i}"), "capabilities": ["x"]}),
            )
            .await?;
        let id = AgentId::parse(p["agent_id"].as_str().context("agent_id")?)?;
        let token = p["enrollment_token"].as_str().context("token")?;
        let dir = AgentDir::new(&self.dir.join(format!("agents/{i}")));
        accord_agent::enroll_into(client, &dir, &id, token, KeyType::P256, None).await?;
        Ok(id)
    }
}

/// Raw JetStream on the same server: publish an event-sized message to a file stream of its
/// own and wait for an ordered push consumer to receive it, one at a time.
async fn raw_jetstream(d: &Dev, n: usize) -> anyhow::Result<Latency> {
    use async_nats::jetstream::{self, consumer::push, stream};
    let seed = std::fs::read_to_string(d.dir.join("nats/services.nk"))?;
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(d.dir.join("tls/ca.pem"))
        .require_tls(true)
        .connect(&d.nats_url)
        .await?;
    let js = jetstream::new(client.clone());
    // the services may publish to $KV.>: a bucket-shaped stream of the benchmark's own
    let s = js
        .create_stream(stream::Config {
            name: "KV_bench".into(),
            subjects: vec!["$KV.bench.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer = s
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: "$KV.bench.>".into(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let payload = bytes::Bytes::from(vec![b'x'; 1100]);
    let mut lat = Latency::new();
    for i in 0..n + 50 {
        let t = Instant::now();
        let ack = js
            .publish(format!("$KV.bench.k{i}"), payload.clone())
            .await?;
        messages.next().await.context("consumer ended")??;
        if i >= 50 {
            lat.since(t);
        }
        ack.await?;
    }
    let _ = js.delete_stream("KV_bench").await;
    Ok(lat)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let accord = match &args.accord {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder")?
            .join("accord"),
    };
    if !accord.exists() {
        bail!(
            "{} not found: `cargo build --release -p accord` first",
            accord.display()
        );
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("domain");
    let d = Dev::start(&accord, &dir).await?;
    let pem = std::fs::read(dir.join("tls/ca.pem"))?;
    let client = Client::new(&d.url, Some(&pem))?;

    eprintln!("enrolling {} agents", args.revocations + 1);
    let watcher = d.agent(&client, 0).await?;
    let mut victims = Vec::with_capacity(args.revocations);
    let ids = futures::stream::iter(1..=args.revocations)
        .map(|i| {
            let (d, client) = (&d, &client);
            async move { d.agent(client, i).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for id in ids {
        victims.push(id?);
    }

    eprintln!("raw JetStream");
    let raw = raw_jetstream(&d, args.revocations).await?;

    let wdir = AgentDir::new(&dir.join("agents/0"));
    let feed = RevocationFeed::connect(
        &d.nats_url,
        &pem,
        &wdir.read_wit()?,
        &wdir.read_key()?,
        &DomainId::parse("dev")?,
        &watcher,
        wdir.read_domain()?.key_ring()?,
    )
    .await?;
    let start: Value = d
        .http
        .get(format!("{}/v1/domain", d.url))
        .send()
        .await?
        .json()
        .await?;
    let mut revs = Box::pin(feed.subscribe(start["last_seq"].as_u64().unwrap_or(0)));
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!("{} revocations", args.revocations);
    let mut lat = Latency::new();
    let mut revoke_only = Latency::new();
    for v in &victims {
        let t = Instant::now();
        let out = d
            .admin_post(
                "/v1/revocations",
                json!({"target": v.to_string(), "reason": "keyCompromise"}),
            )
            .await?;
        revoke_only.since(t);
        let seq = out["seq"].as_u64().context("seq")?;
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), revs.next())
                .await
                .context("no revocation within 10 s")?
                .context("feed ended")??;
            if r.seq >= seq {
                break;
            }
        }
        lat.since(t);
    }
    let rows = vec![
        Row {
            name: format!(
                "revoke over HTTPS → agent receives it (Rust library, NATS feed), {} sequential",
                lat.count()
            ),
            value: format!("p50 {} / p99 {}", fmt_dur(lat.p(0.5)), fmt_dur(lat.p(0.99))),
            baseline: format!(
                "raw JetStream publish → ordered push consumer, {} sequential: p50 {} / p99 {}",
                raw.count(),
                fmt_dur(raw.p(0.5)),
                fmt_dur(raw.p(0.99))
            ),
            ratio: format!(
                "{:.1}",
                lat.p(0.99).as_secs_f64() / raw.p(0.99).as_secs_f64().max(1e-9)
            ),
            goal: "p99 < 10 ms".into(),
        },
        Row {
            name: "of which the revoke call (HTTPS, append acknowledged)".into(),
            value: format!(
                "p50 {} / p99 {}",
                fmt_dur(revoke_only.p(0.5)),
                fmt_dur(revoke_only.p(0.99))
            ),
            baseline: String::new(),
            ratio: String::new(),
            goal: String::new(),
        },
    ];
    print_table(&rows);
    Ok(())
}
