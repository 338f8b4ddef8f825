//! Runs the `accord` binary as a user would, against real nats-server and PostgreSQL.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_events::{
    Actor, AggregateId, AggregateKind, CommandId, Ed25519Key, Metadata, Timestamp,
};
use accord_store::{EventStore, StoreConfig, Version};

pub mod agents;
#[allow(unused_imports)]
pub use agents::{AgentDomain, watch_output};

pub fn accord() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accord"));
    c.env("ACCORD_TOOLS_DIR", accord_testkit::tools_dir());
    c.env_remove("ACCORD_NATS_SERVER");
    c
}

/// Tests that assert "the log's last sequence did not move" cannot have the audit log signing
/// checkpoints in the background (each is an event): they run without the checkpointer, unless
/// the test configures `[audit]` itself (tests/audit.rs does).
fn quiet_audit(cmd: &mut Command, env: &[(&str, &str)]) {
    if !env.iter().any(|(k, _)| k.starts_with("ACCORD_AUDIT__")) {
        cmd.env("ACCORD_AUDIT__CHECKPOINTS", "false");
    }
}

/// A running `accord dev`.
pub struct Dev {
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub endpoints: serde_json::Value,
    pub stderr_log: PathBuf,
}

impl Dev {
    /// Starts `accord dev --json` on `dir` with extra args and env, and waits for its
    /// endpoints line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let stderr_log = dir.with_extension("stderr.log");
        let err = std::fs::File::create(&stderr_log).unwrap();
        let mut cmd = accord();
        cmd.args(["dev", "--json", "--data-dir"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(err);
        quiet_audit(&mut cmd, env);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut r = BufReader::new(stdout);
        r.read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "accord dev printed no endpoints: {}",
            std::fs::read_to_string(&stderr_log).unwrap_or_default()
        );
        let endpoints: serde_json::Value = serde_json::from_str(&line).unwrap();
        Self {
            dir: dir.to_path_buf(),
            child: Some(child),
            endpoints,
            stderr_log,
        }
    }

    pub fn http(&self) -> String {
        self.endpoints["http_url"].as_str().unwrap().to_owned()
    }

    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.dir.join("tls/ca.pem")).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap()
    }

    /// GET `path`, with the domain's admin token (the read-model routes need one).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let mut req = self.client().get(format!("{}{path}", self.http()));
        if let Ok(t) = std::fs::read_to_string(self.dir.join("http/admin.token")) {
            req = req.bearer_auth(t.trim());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .client()
                .get(format!("{}/readyz", self.http()))
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "accord dev not ready in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as Ctrl-C would; waits for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        accord_testkit::terminate(&mut c, Duration::from_secs(20))
    }

    /// Waits for the process to end by itself (a fault hook killed it).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let mut c = self.child.take().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "accord did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects as one of a dev domain's identities and records the server's errors (permission
/// violations arrive that way).
pub async fn connect_watching(
    dir: &Path,
    who: &str,
) -> (async_nats::Client, Arc<std::sync::Mutex<Vec<String>>>) {
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let e2 = errors.clone();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dev.json")).unwrap()).unwrap();
    let seed = std::fs::read_to_string(dir.join(format!("nats/{who}.nk"))).unwrap();
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(dir.join("tls/ca.pem"))
        .require_tls(true)
        .event_callback(move |e| {
            let e2 = e2.clone();
            async move {
                if let async_nats::Event::ServerError(err) = e {
                    e2.lock().unwrap().push(err.to_string());
                }
            }
        })
        .connect(format!("tls://127.0.0.1:{}", state["nats_port"]))
        .await
        .unwrap();
    (client, errors)
}

/// Connects to a dev domain's NATS as one of its identities.
pub async fn connect_as(
    dir: &Path,
    who: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dev.json")).unwrap()).unwrap();
    let seed = std::fs::read_to_string(dir.join(format!("nats/{who}.nk"))).unwrap();
    async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .add_root_certificates(dir.join("tls/ca.pem"))
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(format!("tls://127.0.0.1:{}", state["nats_port"]))
        .await
}

/// An event store on a dev domain, as its services (with its event key, or another one).
pub async fn store(dir: &Path, key: Option<Ed25519Key>) -> EventStore {
    let key = key.unwrap_or_else(|| {
        Ed25519Key::from_pkcs8(&std::fs::read(dir.join("keys/event-signing.pk8")).unwrap()).unwrap()
    });
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dev.json")).unwrap()).unwrap();
    let client = connect_as(dir, "services").await.unwrap();
    let domain = accord_events::DomainId::parse(state["domain"].as_str().unwrap()).unwrap();
    EventStore::open(client, StoreConfig::new(domain), Arc::new(key))
        .await
        .unwrap()
}

pub fn meta() -> Metadata {
    Metadata::new(
        CommandId::new_random(),
        Actor::operator("test"),
        Timestamp::now(),
    )
}

/// Writes `agents` agents with `per` events each; returns the last sequence.
pub async fn write_agents(store: &EventStore, agents: usize, per: usize) -> u64 {
    let mut last = 0;
    for _ in 0..agents {
        let agent = accord_events::AgentId::new_v7();
        let id = AggregateId::parse(&agent.to_string()).unwrap();
        let td = accord_events::TrustDomain::parse("dev.accord.test").unwrap();
        let mut v = store
            .append(
                AggregateKind::Agent,
                &id,
                Version::EMPTY,
                &meta(),
                vec![accord_events::Event::AgentProvisioned(
                    accord_events::catalogue::AgentProvisioned {
                        agent_id: agent,
                        spiffe_id: accord_events::SpiffeId::for_agent(&td, &agent),
                        name: "planner".into(),
                        provider_id: None,
                        requested_capabilities: Default::default(),
                    },
                )],
            )
            .await
            .unwrap()
            .version;
        for i in 1..per {
            v = store
                .append(
                    AggregateKind::Agent,
                    &id,
                    v,
                    &meta(),
                    vec![accord_events::Event::AgentSuspended(
                        accord_events::catalogue::AgentSuspended {
                            reason: format!("r{i}"),
                        },
                    )],
                )
                .await
                .unwrap()
                .version;
        }
        last = v.stream_seq;
    }
    last
}

impl Dev {
    /// Starts `accord dev --json` as [`Dev::start`] does, but keeps its whole stdout in
    /// `<dir>.stdout.log` (returned with it) instead of a pipe read for the first line only:
    /// for tests that look at everything the process printed.
    pub fn start_logged(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Self, PathBuf) {
        let stdout_log = dir.with_extension("stdout.log");
        let stderr_log = dir.with_extension("stderr.log");
        let mut cmd = accord();
        cmd.args(["dev", "--json", "--data-dir"])
            .arg(dir)
            .args(args)
            .stdout(std::fs::File::create(&stdout_log).unwrap())
            .stderr(std::fs::File::create(&stderr_log).unwrap());
        quiet_audit(&mut cmd, env);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let line = loop {
            let out = std::fs::read_to_string(&stdout_log).unwrap_or_default();
            if let Some((line, _)) = out.split_once('\n') {
                break line.to_owned();
            }
            let exited = child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "accord dev printed no endpoints ({exited:?}): {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let endpoints: serde_json::Value = serde_json::from_str(&line).unwrap();
        let dev = Self {
            dir: dir.to_path_buf(),
            child: Some(child),
            endpoints,
            stderr_log,
        };
        (dev, stdout_log)
    }
}

/// The strings that betray a secret wherever it lands: the secret itself (when text), its hex
/// (both cases), and its base64 (standard and URL alphabets) at each of the three alignments
/// it can have inside a longer base64 text. Invariant I7 scans look for all of them.
pub fn secret_needles(secret: &[u8]) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    assert!(
        secret.len() >= 12,
        "too short to scan for without false alarms"
    );
    let mut out = Vec::new();
    if let Ok(t) = std::str::from_utf8(secret) {
        out.push(t.to_owned());
    }
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex.to_ascii_uppercase());
    out.push(hex);
    for shift in 0..3 {
        let rest = &secret[shift..];
        // whole 3-byte groups only: their base64 is the same wherever the blob starts
        let core = &rest[..rest.len() / 3 * 3];
        out.push(STANDARD_NO_PAD.encode(core));
        out.push(URL_SAFE_NO_PAD.encode(core));
    }
    out.sort();
    out.dedup();
    out
}

/// The needles of a private key (PKCS#8 or SEC1 DER): those of the whole key, those of its
/// private scalar (also as `openssl -text` prints it), and each PEM line that encodes a byte of
/// the scalar. Panics when no scalar is found, so that a key the scan does not understand
/// cannot pass unnoticed.
pub fn key_needles(der: &[u8]) -> Vec<String> {
    // ECPrivateKey: INTEGER 1, OCTET STRING (32); PKCS#8 Ed25519: OCTET STRING { OCTET STRING (32) }
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .map(|p| p + 5)
        .or_else(|| {
            der.windows(4)
                .position(|w| w == [0x04, 0x22, 0x04, 0x20])
                .map(|p| p + 4)
        })
        .expect("a P-256 or Ed25519 private key");
    let scalar = &der[at..at + 32];
    let mut out = secret_needles(der);
    out.extend(secret_needles(scalar));
    out.push(
        scalar
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    for (i, line) in b64.as_bytes().chunks(64).enumerate() {
        let (from, to) = (i * 48, i * 48 + 48);
        if from < at + 32 && at < to {
            out.push(String::from_utf8(line.to_vec()).unwrap());
        }
    }
    out
}

/// The DER inside a PEM text.
pub fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Every (secret name, needle, place) where a needle of a secret occurs in a named text.
pub fn secrets_found<'a>(
    secrets: &'a [(String, Vec<String>)],
    texts: &'a [(String, String)],
) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut found = Vec::new();
    for (name, needles) in secrets {
        for n in needles {
            for (place, text) in texts {
                if text.contains(n.as_str()) {
                    found.push((name.as_str(), n.as_str(), place.as_str()));
                }
            }
        }
    }
    found
}

/// Publishes the shipped policy library with `data.accord.settings.issuance.require` changed
/// as `require` says (a domain that asks less than the strict default, as a campus domain may),
/// and waits until the PDP answers with it.
#[allow(dead_code)]
pub async fn publish_issuance_requirements(dev: &Dev, admin: &str, require: &[(&str, bool)]) {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy/library");
    let mut files = Vec::new();
    let mut stack = vec![lib.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(&lib).unwrap().to_string_lossy().into_owned();
            // its tests pin the shipped (strict) settings, which this domain changes
            if rel.ends_with("issuance_test.rego") {
                continue;
            }
            let mut content = std::fs::read_to_string(&p).unwrap();
            if rel == "data.json" {
                let mut v: serde_json::Value = serde_json::from_str(&content).unwrap();
                for (check, needed) in require {
                    v["accord"]["settings"]["issuance"]["require"][*check] = (*needed).into();
                }
                content = serde_json::to_string_pretty(&v).unwrap();
            }
            files.push(serde_json::json!({"path": rel, "content": content}));
        }
    }
    // the shipped library is published as version 1 at the first start: after that, so that
    // this version is the one in force
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let policies = loop {
        let (_, p) = dev.get("/v1/policies").await;
        if p["bundle"]["name"].is_string() {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no policy bundle loaded: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bundle = policies["bundle"]["name"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let http = dev.client();
    let r = http
        .post(format!("{}/v1/policies/{bundle}", dev.http()))
        .bearer_auth(admin)
        .json(&serde_json::json!({"files": files}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status} {body}");
    let seq = body["seq"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = dev.get("/v1/policies").await;
        if p["bundle"]["published_seq"].as_u64().unwrap_or(0) >= seq {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the PDP never loaded {body}: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes the library with an issuance policy that asks proof of possession only (what a
/// campus domain might decide; tests whose subject is not the evidence enroll this way).
#[allow(dead_code)]
pub async fn publish_proof_of_possession_only(dev: &Dev) {
    let admin = std::fs::read_to_string(dev.dir.join("http/admin.token")).unwrap();
    publish_issuance_requirements(
        dev,
        admin.trim(),
        &[
            ("initial_trust", false),
            ("attestation", false),
            ("aibom", false),
            ("provider_endorsement", false),
            ("owner_binding", false),
        ],
    )
    .await;
}

/// Runs `cmd`, which must succeed; its stdout (what it printed goes into the failure).
#[track_caller]
pub fn must(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
