//! Shared pieces of Accord's benchmarks: timing, percentiles, and the report table.

use std::time::{Duration, Instant};

/// The allocator the `accord` binary uses, so that in-process figures are its figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures `f` once and returns operations per second for `ops` operations.
pub fn rate(ops: u64, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

/// A latency histogram in nanoseconds.
#[derive(Debug)]
pub struct Latency(hdrhistogram::Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        Self(
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("histogram bounds"),
        )
    }
    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record(d.as_nanos().max(1) as u64);
    }
    pub fn since(&mut self, t: Instant) {
        self.record(t.elapsed());
    }
    pub fn p(&self, q: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_quantile(q))
    }
    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }
    pub fn count(&self) -> u64 {
        self.0.len()
    }
}

/// One line of a benchmark report: a measured figure beside its baseline.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
}

/// Prints rows as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| measurement | Accord | baseline (same run) | ratio | goal |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.name, r.value, r.baseline, r.ratio, r.goal
        );
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k/s", r / 1000.0)
    } else {
        format!("{r:.0}/s")
    }
}

pub fn fmt_dur(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// Publishes the shipped policy library with only proof of possession required (a domain that
/// asks no evidence, like the ACA's first part), after the library's own first publication,
/// and waits until the PDP answers with it. The library's tests of the strict settings go,
/// since this bundle changes them.
pub async fn proof_of_possession_only(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
) -> anyhow::Result<()> {
    use anyhow::{Context, bail};
    use serde_json::{Value, json};
    let lib = accord_testkit::repo_root().join("services/policy/library");
    let mut files = Vec::new();
    let mut stack = vec![lib.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(&lib)?.to_string_lossy().into_owned();
            if rel.ends_with("issuance_test.rego") {
                continue;
            }
            let mut content = std::fs::read_to_string(&p)?;
            if rel == "data.json" {
                let mut v: Value = serde_json::from_str(&content)?;
                for check in [
                    "initial_trust",
                    "attestation",
                    "aibom",
                    "provider_endorsement",
                    "owner_binding",
                ] {
                    v["accord"]["settings"]["issuance"]["require"][check] = false.into();
                }
                content = serde_json::to_string(&v)?;
            }
            files.push(json!({"path": rel, "content": content}));
        }
    }
    let policies = || async {
        let v: Value = http
            .get(format!("{url}/v1/policies"))
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, anyhow::Error>(v)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let bundle = loop {
        if let Some(b) = policies().await?["bundle"]["name"].as_str() {
            break b.to_owned();
        }
        if Instant::now() > deadline {
            bail!("no policy bundle loaded");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .post(format!("{url}/v1/policies/{bundle}"))
        .bearer_auth(admin)
        .json(&json!({ "files": files }))
        .send()
        .await?;
    let v: Value = r.json().await?;
    let seq = v["seq"]
        .as_u64()
        .with_context(|| format!("publishing: {v}"))?;
    loop {
        if policies().await?["bundle"]["published_seq"]
            .as_u64()
            .unwrap_or(0)
            >= seq
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the PDP never loaded the bundle");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Metadata of a benchmark's command.
pub fn bench_meta() -> accord_events::Metadata {
    accord_events::Metadata::new(
        accord_events::CommandId::new_random(),
        accord_events::Actor::system("bench"),
        accord_events::Timestamp::now(),
    )
}

/// A token fact whose `data` is about 256 bytes of JSON.
pub fn token_fact(i: usize) -> accord_events::Event {
    let t = accord_events::Timestamp::now();
    accord_events::Event::TokenIssued(accord_events::catalogue::TokenIssued {
        jti: accord_events::Jti::parse(&format!("tok-{i:012}")).expect("jti"),
        token_digest: accord_events::Digest::sha256(&i.to_le_bytes()),
        token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
        subject: "spiffe://bench.example/agent/x".into(),
        client_id: "c".into(),
        audience: Default::default(),
        scope: Default::default(),
        issued_at: t,
        expires_at: t,
    })
}

/// The store's pipelined path: `n` token facts (numbered from `base`) from `producers`
/// concurrent tasks, at most 2,048 acknowledgements awaited per task; the rate from the first
/// append to the last acknowledgement.
pub async fn append_facts(
    store: &accord_store::EventStore,
    n: usize,
    producers: usize,
    base: usize,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let per = n / producers;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            for i in p * per..(p + 1) * per {
                let i = base + i;
                let jti = format!("tok-{i:012}");
                pending.push_back(
                    store
                        .append_fact(jti.as_bytes(), &bench_meta(), &token_fact(i))
                        .await?,
                );
                if pending.len() >= 2048
                    && let Some(f) = pending.pop_front()
                {
                    f.acknowledged().await?;
                }
            }
            for f in pending {
                f.acknowledged().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(rate((per * producers) as u64, t.elapsed()))
}
