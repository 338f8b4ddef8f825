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

pub fn accord() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accord"));
    c.env("ACCORD_TOOLS_DIR", accord_testkit::tools_dir());
    c.env_remove("ACCORD_NATS_SERVER");
    c
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

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client()
            .get(format!("{}{path}", self.http()))
            .send()
            .await
            .unwrap();
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
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
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
