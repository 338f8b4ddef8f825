//! Benchmark of the Agent Credential Authority: end-to-end issuance over HTTPS with keep-alive
//! against a running `accord dev` (CSR check, initial trust, issuance policy, signing,
//! re-validation, WIT, the events acknowledged by JetStream), in credentials per second; beside
//! the raw cryptography of the same issuances measured in the same run on the same keys (verify
//! the request's signature, sign the certificate, verify it, sign the WIT). Once with the keys
//! in files, once with them in a SoftHSM2 token; and once more with the keys in files and the
//! full evidence pipeline (issue 6: an attestation nonce asked for, an EAT signed over it by the
//! environment's key, its identity certificate chain, the AIBOM, the provider's endorsement and
//! the owner's ID token, all checked by the ACA under the strict default policy) beside the
//! first run's rate (goal: at least half of it).
//!
//! `cargo build --release -p accord && cargo run --release -p accord-simulations --bin bench-issuance`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accord_authority::signer::{Signer, SoftwareKey};
use accord_authority::testkit::EvidenceKit;
use accord_simulations::{Latency, Row, fmt_dur, fmt_rate, print_table, rate};
use anyhow::{Context, anyhow, bail};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED, EcdsaKeyPair,
    KeyPair, UnparsedPublicKey,
};
use base64::Engine;
use clap::Parser;
use serde_json::{Value, json};

/// The name every benchmark agent is provisioned under (and endorsed for).
const AGENT_NAME: &str = "bench";

#[derive(Parser)]
struct Args {
    /// Credentials issued in each timed run.
    #[arg(long, default_value_t = 2_000)]
    credentials: usize,
    /// Concurrent requests (each on its own keep-alive connection).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of each raw-cryptography baseline run.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Skip the SoftHSM2 run.
    #[arg(long)]
    no_hsm: bool,
    /// The `accord` binary (default: beside this one, as `cargo build --release -p accord`
    /// leaves it).
    #[arg(long)]
    accord: Option<PathBuf>,
}

/// A running `accord dev` in a folder of its own; stopped (SIGTERM) when dropped.
struct Domain {
    child: Option<Child>,
    url: String,
    registry_url: String,
    http: reqwest::Client,
    admin: String,
    /// The SoftHSM2 token to delete afterwards.
    hsm_token: Option<String>,
}

impl Domain {
    async fn start(accord: &Path, dir: &Path, hsm: bool, conns: usize) -> anyhow::Result<Self> {
        let mut cmd = Command::new(accord);
        cmd.args(["dev", "--json", "--data-dir"]).arg(dir);
        let mut hsm_token = None;
        if hsm {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos();
            let domain = format!("bench{:010x}", nanos & 0xff_ffff_ffff);
            hsm_token = Some(format!("accord-{domain}"));
            cmd.args(["--hsm", "--domain", &domain]);
        }
        // the per-client limit would stop a load generator on one address
        cmd.env("ACCORD_AUTHORITY__RATE_LIMIT_PER_MINUTE", "100000000")
            .env("ACCORD_REGISTRY__RATE_LIMIT_PER_MINUTE", "100000000")
            .env("ACCORD_TOOLS_DIR", accord_testkit::tools_dir())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.with_extension("stderr.log"))?);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("{}", accord.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut d = Self {
            child: Some(child),
            url: String::new(),
            registry_url: String::new(),
            http: reqwest::Client::new(),
            admin: String::new(),
            hsm_token,
        };
        if line.is_empty() {
            let log = std::fs::read_to_string(dir.with_extension("stderr.log"))?;
            bail!("accord dev printed no endpoints: {log}");
        }
        let endpoints: Value = serde_json::from_str(&line)?;
        d.url = endpoints["http_url"]
            .as_str()
            .context("no http_url")?
            .to_owned();
        d.registry_url = endpoints["registry_url"]
            .as_str()
            .context("no registry_url")?
            .to_owned();
        let pem = std::fs::read(dir.join("tls/ca.pem"))?;
        d.http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
            .pool_max_idle_per_host(conns)
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = d.http.get(format!("{}/readyz", d.url)).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("accord dev not ready in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.admin = std::fs::read_to_string(dir.join("http/admin.token"))?
            .trim()
            .to_owned();
        Ok(d)
    }

    /// Provisions `n` agents, `conns` at a time: (credentials URL, enrollment token).
    /// The shipped policy library with only proof of possession required (part 1's domain).
    async fn proof_of_possession_only(&self) -> anyhow::Result<()> {
        accord_simulations::proof_of_possession_only(&self.http, &self.url, &self.admin).await
    }

    /// Makes the domain trust the kit's manufacturer, verifier, provider and IdP.
    async fn trust(&self, kit: &EvidenceKit) -> anyhow::Result<()> {
        for t in kit.trust_requests() {
            let r = self
                .http
                .post(format!("{}/v1/trust", self.url))
                .bearer_auth(&self.admin)
                .json(&t)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("trust material refused: {}", r.text().await?);
            }
        }
        Ok(())
    }

    async fn provision(&self, n: usize, conns: usize) -> anyhow::Result<Vec<(String, String)>> {
        use futures::StreamExt;
        let one = |_: usize| async move {
            let body = json!({"name": AGENT_NAME, "capabilities": ["travel.book"]});
            let r = self
                .http
                .post(format!("{}/v1/agents", self.url))
                .bearer_auth(&self.admin)
                .json(&body)
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if status.as_u16() != 201 {
                bail!("provisioning answered {status}: {v}");
            }
            let url = v["credentials_url"].as_str().context("credentials_url")?;
            let token = v["enrollment_token"].as_str().context("token")?;
            Ok((url.to_owned(), token.to_owned()))
        };
        futures::stream::iter(0..n)
            .map(one)
            .buffer_unordered(conns)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Enrolls every agent with its request, `conns` at a time: the elapsed time and each
    /// request's latency (with evidence: from the nonce request to the credential).
    async fn enroll_all(
        &self,
        agents: Arc<Vec<Enrollee>>,
        conns: usize,
        kit: Option<Arc<EvidenceKit>>,
    ) -> anyhow::Result<(Duration, Latency, Vec<Value>)> {
        let next = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(std::sync::Mutex::new(vec![Value::Null; agents.len()]));
        let start = Instant::now();
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (agents, next, http) = (agents.clone(), next.clone(), self.http.clone());
                let (kit, answers) = (kit.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut lat = Latency::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(a) = agents.get(i) else {
                            return Ok::<_, anyhow::Error>(lat);
                        };
                        let t = Instant::now();
                        let body = match (&kit, &a.evidence) {
                            (Some(kit), Some(ev)) => {
                                // the attestation nonce the EAT signs, and the owner nonce the
                                // owner's IdP puts in the ID token
                                let mut nonces = Vec::with_capacity(2);
                                for route in ["/attestation-nonce", "/owner-nonce"] {
                                    let n: Value = http
                                        .post(a.url.replace("/credentials", route))
                                        .bearer_auth(&a.token)
                                        .send()
                                        .await?
                                        .json()
                                        .await?;
                                    nonces
                                        .push(n["nonce"].as_str().context("no nonce")?.to_owned());
                                }
                                let mut ev = ev.clone();
                                ev["eat"] = kit.eat(&nonces[0]).into();
                                ev["owner_id_token"] = kit
                                    .id_token(
                                        &nonces[1],
                                        "alice@org-a.example",
                                        &["travel.book"],
                                        3600,
                                    )
                                    .into();
                                json!({ "csr": a.csr, "evidence": ev })
                            }
                            _ => json!({ "csr": a.csr }),
                        };
                        let r = http
                            .post(&a.url)
                            .bearer_auth(&a.token)
                            .json(&body)
                            .send()
                            .await?;
                        let status = r.status();
                        let body = r.bytes().await?;
                        lat.since(t);
                        if status.as_u16() != 201 {
                            bail!(
                                "enrollment answered {status}: {}",
                                String::from_utf8_lossy(&body)
                            );
                        }
                        if let Ok(mut a) = answers.lock() {
                            a[i] = serde_json::from_slice(&body)?;
                        }
                    }
                })
            })
            .collect();
        let mut all = Latency::new();
        for w in workers {
            let lat = w.await??;
            all.merge(&lat);
        }
        let elapsed = start.elapsed();
        let answers = std::mem::take(&mut *answers.lock().map_err(|_| anyhow!("poisoned"))?);
        Ok((elapsed, all, answers))
    }

    /// Registers each enrolled agent (its key, its credential answer), `conns` at a time over
    /// keep-alive connections, by WIT and a fresh proof each: (elapsed, latency).
    async fn register_all(
        &self,
        agents: Arc<Vec<(Vec<u8>, Value)>>,
        conns: usize,
    ) -> anyhow::Result<(Duration, Latency)> {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let workers: Vec<_> = (0..conns)
            .map(|_| {
                let (agents, next, http) = (agents.clone(), next.clone(), self.http.clone());
                let base = self.registry_url.clone();
                tokio::spawn(async move {
                    let mut lat = Latency::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((key, c)) = agents.get(i) else {
                            return Ok::<_, anyhow::Error>(lat);
                        };
                        let t = Instant::now();
                        let url = format!(
                            "{base}/v1/registry/agents/{}",
                            c["agent_id"].as_str().context("agent_id")?
                        );
                        let wit = c["wit"].as_str().context("wit")?;
                        let wpt = accord_agent::proof_token(key, wit, &url, None)?;
                        let body = json!({
                            "name": AGENT_NAME,
                            "description": "a benchmark agent",
                            "capabilities": c["capabilities"],
                            "owner": c["owner"],
                            "aibom_digest": c["aibom_digest"],
                            "endpoints": [{"url": format!("https://a{i}.bench.example/a2a"),
                                           "transport": "JSONRPC"}],
                        });
                        let r = http
                            .put(&url)
                            .header("workload-identity-token", wit)
                            .header("workload-proof-token", wpt)
                            .json(&body)
                            .send()
                            .await?;
                        let status = r.status();
                        let body = r.bytes().await?;
                        lat.since(t);
                        if !status.is_success() {
                            bail!(
                                "registration answered {status}: {}",
                                String::from_utf8_lossy(&body)
                            );
                        }
                    }
                })
            })
            .collect();
        let mut all = Latency::new();
        for w in workers {
            all.merge(&w.await??);
        }
        Ok((start.elapsed(), all))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            accord_testkit::terminate(&mut c, Duration::from_secs(20));
        }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.stop();
        if let Some(label) = &self.hsm_token {
            let _lock = accord_authority::pkcs11::token_lock();
            let _ = Command::new("softhsm2-util")
                .args(["--delete-token", "--token", label])
                .output();
        }
    }
}

/// The raw cryptography of one issuance, on the domain's own signers: verify the agent's
/// request signature, sign the certificate, verify the certificate's signature, sign the WIT.
struct Raw {
    ca: Arc<dyn Signer>,
    token: Arc<dyn Signer>,
    /// Agent keys' public points and a signature each over a request-sized message.
    requests: Vec<(Vec<u8>, Vec<u8>)>,
}

const CSR_TBS: usize = 150;
const CERT_TBS: usize = 560;
const WIT_INPUT: usize = 640;

impl Raw {
    fn new(ca: Arc<dyn Signer>, token: Arc<dyn Signer>) -> anyhow::Result<Self> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut requests = Vec::new();
        for _ in 0..64 {
            let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(|_| anyhow!("agent key"))?;
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pk8.as_ref())
                .map_err(|_| anyhow!("agent key"))?;
            let sig = key
                .sign(&rng, &[7u8; CSR_TBS])
                .map_err(|_| anyhow!("agent signature"))?;
            requests.push((key.public_key().as_ref().to_vec(), sig.as_ref().to_vec()));
        }
        Ok(Self {
            ca,
            token,
            requests,
        })
    }

    fn one(&self, i: usize) -> anyhow::Result<()> {
        let (agent, sig) = &self.requests[i % self.requests.len()];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, agent)
            .verify(&[7u8; CSR_TBS], sig)
            .map_err(|_| anyhow!("request signature"))?;
        let tbs = [i as u8; CERT_TBS];
        let cert_sig = self.ca.sign_raw(&tbs)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.ca.public_key())
            .verify(&tbs, &cert_sig)
            .map_err(|_| anyhow!("certificate signature"))?;
        std::hint::black_box(self.token.sign_raw(&[i as u8; WIT_INPUT])?);
        Ok(())
    }

    /// Issuances per second on `threads` threads for `secs`, and one thread's latency.
    fn measure(self: &Arc<Self>, threads: usize, secs: u64) -> anyhow::Result<(f64, Latency)> {
        let mut lat = Latency::new();
        for i in 0..2_000 {
            let t = Instant::now();
            self.one(i)?;
            lat.since(t);
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let raw = self.clone();
                std::thread::spawn(move || -> anyhow::Result<u64> {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        raw.one(n as usize)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| anyhow!("baseline thread"))??;
        }
        Ok((rate(total, start.elapsed()), lat))
    }
}

/// An agent ready to enroll: its credentials URL, enrollment token, CSR and (for the evidence
/// run) the evidence besides the EAT, which needs a fresh nonce.
struct Enrollee {
    url: String,
    token: String,
    key: Vec<u8>,
    csr: String,
    evidence: Option<Value>,
}

struct Run {
    label: &'static str,
    rate: f64,
    latency: Latency,
    raw_rate: f64,
    raw_latency: Latency,
    backend: String,
    /// Registrations of the timed agents (the first run only): rate and latency.
    registration: Option<(f64, Latency)>,
}

async fn run(args: &Args, accord: &Path, hsm: bool, evidence: bool) -> anyhow::Result<Run> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("domain");
    let conns = args.concurrency;
    let mut d = Domain::start(accord, &dir, hsm, conns).await?;
    let kit = if evidence {
        let kit = Arc::new(EvidenceKit::new(""));
        d.trust(&kit).await?;
        Some(kit)
    } else {
        d.proof_of_possession_only().await?;
        None
    };
    let warm = (args.credentials / 10).max(conns);
    let label = match (hsm, evidence) {
        (true, _) => "SoftHSM2",
        (false, false) => "software",
        (false, true) => "software, full evidence",
    };
    eprintln!(
        "bench-issuance: {label}: provisioning {} agents, making their keys and requests",
        args.credentials + warm
    );
    let provisioned = d.provision(args.credentials + warm, conns).await?;
    let mut agents = Vec::with_capacity(provisioned.len());
    for (url, token) in provisioned {
        let key = accord_agent::generate_key(accord_agent::KeyType::P256)?;
        let csr = accord_agent::make_csr(&key)?;
        let evidence = match &kit {
            Some(kit) => {
                let thumb = accord_authority::csr::check(
                    csr.as_bytes(),
                    &accord_authority::csr::CsrPolicy { allow_rsa: false },
                )?
                .thumbprint;
                Some(json!({
                    "identity_chain": kit.chain_pem,
                    "aibom": base64::engine::general_purpose::STANDARD.encode(&kit.aibom),
                    "endorsement": kit.endorsement(&thumb, AGENT_NAME, &["travel.book"]),
                }))
            }
            None => None,
        };
        agents.push(Enrollee {
            url,
            token,
            key,
            csr,
            evidence,
        });
    }
    let timed = agents.split_off(warm);
    d.enroll_all(Arc::new(agents), conns, kit.clone()).await?;
    eprintln!(
        "bench-issuance: {label}: enrolling {} agents, {conns} at a time",
        timed.len()
    );
    let timed = Arc::new(timed);
    let (elapsed, latency, answers) = d.enroll_all(timed.clone(), conns, kit).await?;
    let issued = rate(args.credentials as u64, elapsed);
    let registration = if !hsm && !evidence {
        eprintln!(
            "bench-issuance: {label}: registering {} agents, {conns} at a time",
            timed.len()
        );
        let agents: Vec<(Vec<u8>, Value)> =
            timed.iter().map(|a| a.key.clone()).zip(answers).collect();
        let (elapsed, lat) = d.register_all(Arc::new(agents), conns).await?;
        Some((rate(args.credentials as u64, elapsed), lat))
    } else {
        None
    };
    d.stop();

    // the same keys, opened as the domain opens them
    let (ca, token): (Arc<dyn Signer>, Arc<dyn Signer>) = if hsm {
        let pin = dir.join("authority/hsm.pin");
        let label = d.hsm_token.clone().context("token")?;
        let uri = |object: &str| {
            format!(
                "pkcs11:token={label};object={object}?pin-source=file:{}",
                pin.display()
            )
        };
        (
            Arc::new(accord_authority::pkcs11::Pkcs11Signer::open(&uri("ca"))?),
            Arc::new(accord_authority::pkcs11::Pkcs11Signer::open(&uri("token"))?),
        )
    } else {
        (
            Arc::new(SoftwareKey::open(&dir.join("authority/ca.pk8"))?),
            Arc::new(SoftwareKey::open(&dir.join("authority/token.pk8"))?),
        )
    };
    // the kind of backend, not the folder or the PIN source
    let backend = ca
        .backend()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let raw = Arc::new(Raw::new(ca, token)?);
    let (raw_rate, raw_latency) = raw.measure(2, args.seconds)?;
    drop(raw);
    drop(d);
    Ok(Run {
        label,
        rate: issued,
        latency,
        raw_rate,
        raw_latency,
        backend,
        registration,
    })
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
            "{} not found: `cargo build --release -p accord` first, or --accord PATH",
            accord.display()
        );
    }
    let mut runs = vec![run(&args, &accord, false, false).await?];
    runs.push(run(&args, &accord, false, true).await?);
    if !args.no_hsm {
        runs.push(run(&args, &accord, true, false).await?);
    }
    let part1 = runs[0].rate;
    let mut rows = Vec::new();
    for r in &runs {
        rows.push(Row {
            name: format!(
                "issuance over HTTPS, {} concurrent keep-alive clients, keys: {} ({})",
                args.concurrency, r.label, r.backend
            ),
            value: format!(
                "{} (p50 {} / p99 {})",
                fmt_rate(r.rate),
                fmt_dur(r.latency.p(0.5)),
                fmt_dur(r.latency.p(0.99))
            ),
            baseline: format!(
                "raw crypto of an issuance (verify + sign + verify + sign), 2 threads: {} \
                 (one: p50 {})",
                fmt_rate(r.raw_rate),
                fmt_dur(r.raw_latency.p(0.5))
            ),
            ratio: format!("{:.2}", r.rate / r.raw_rate),
            goal: if r.label == "software" {
                ">= 1,000/s".into()
            } else {
                String::new()
            },
        });
        if let Some((reg, lat)) = &r.registration {
            rows.push(Row {
                name: format!(
                    "registration over HTTPS (WIT + proof, checked against the credential), {} \
                     concurrent keep-alive clients (issue 15)",
                    args.concurrency
                ),
                value: format!(
                    "{} (p50 {} / p99 {})",
                    fmt_rate(*reg),
                    fmt_dur(lat.p(0.5)),
                    fmt_dur(lat.p(0.99))
                ),
                baseline: format!(
                    "issuance of the same agents, same run: {}",
                    fmt_rate(r.rate)
                ),
                ratio: format!("{:.2}", reg / r.rate),
                goal: String::new(),
            });
        }
        if r.label == "software, full evidence" {
            rows.push(Row {
                name: "full evidence pipeline vs proof of possession only (issue 6)".into(),
                value: fmt_rate(r.rate),
                baseline: format!("proof of possession only, same run: {}", fmt_rate(part1)),
                ratio: format!("{:.2}", r.rate / part1),
                goal: ">= 0.5".into(),
            });
        }
    }
    print_table(&rows);
    Ok(())
}
