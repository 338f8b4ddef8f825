//! A running `accord dev` whose issuance policy asks proof of possession only, with a work
//! folder for agents: what the tests of agents on the domain's NATS share (the revocation
//! feed, the log's integrity).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Dev, accord, must, publish_proof_of_possession_only};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct AgentDomain {
    pub dev: Dev,
    pub work: PathBuf,
}

impl AgentDomain {
    pub async fn start(tmp: &tempfile::TempDir) -> Self {
        Self::start_with(tmp, &[]).await
    }

    pub async fn start_with(tmp: &tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        Self::start_args(tmp, &[], env).await
    }

    /// With `accord dev` arguments (`--database-url`, ...).
    pub async fn start_args(tmp: &tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dev = Dev::start(&tmp.path().join("domain"), args, env);
        dev.wait_ready(Duration::from_secs(60)).await;
        // these tests are about agents on NATS: they enroll on proof of possession (the
        // evidence is tested in tests/evidence.rs)
        publish_proof_of_possession_only(&dev).await;
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Self { dev, work }
    }

    pub fn dir(&self) -> &Path {
        &self.dev.dir
    }

    pub fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir().join("dev.json")).unwrap()).unwrap()
    }

    pub fn nats_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.state()["nats_port"])
    }

    pub fn ca(&self) -> PathBuf {
        self.dir().join("tls/ca.pem")
    }

    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = accord();
        c.args(args).arg("--data-dir").arg(self.dir());
        c
    }

    /// Provisions an agent (capability `feed.read`); its id and the file of its enrollment
    /// token (`<work>/<name>.token`).
    pub fn provision(&self, name: &str) -> (String, PathBuf) {
        let token = self.work.join(format!("{name}.token"));
        let id = must(&mut self.cli(&[
            "agent",
            "provision",
            "--name",
            name,
            "--capability",
            "feed.read",
            "--token-out",
            token.to_str().unwrap(),
        ]))
        .trim()
        .to_owned();
        (id, token)
    }

    /// Provisions and enrolls an agent into `<work>/<name>`; its id.
    pub fn agent(&self, name: &str) -> String {
        let (id, token) = self.provision(name);
        must(&mut self.cli(&[
            "agent",
            "enroll",
            "--agent-id",
            &id,
            "--enrollment-token-file",
            token.to_str().unwrap(),
            "--dir",
            self.work.join(name).to_str().unwrap(),
        ]));
        id
    }

    /// `accord revoke <agent>`; the sequence of the revocation.
    pub fn revoke(&self, target: &str) -> u64 {
        let out = must(&mut self.cli(&["revoke", target, "--reason", "keyCompromise"]));
        out.trim().rsplit(' ').next().unwrap().parse().unwrap()
    }

    pub async fn last_seq(&self) -> u64 {
        let (status, body) = self.dev.get("/v1/domain").await;
        assert_eq!(status, 200);
        body["last_seq"].as_u64().unwrap()
    }

    /// `/v1/projections` once every projection applied `seq`.
    pub async fn projections_at(&self, seq: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.dev.get("/v1/projections").await;
            let all = v["projections"].as_array().unwrap();
            if all
                .iter()
                .all(|p| p["applied"].as_u64().unwrap_or(0) >= seq)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "projections stuck before {seq}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A script of `tests/python/` against this domain's NATS, run in the work folder.
    pub fn script(&self, script: &str) -> Command {
        let mut c = accord_testkit::python();
        c.current_dir(&self.work)
            .arg(root().join("tests/python").join(script))
            .args(["--nats-url", &self.nats_url(), "--ca"])
            .arg(self.ca())
            .args(["--domain", "dev"]);
        c
    }

    /// `tests/python/watch_revocations.py` as the agent in `<work>/<name>`.
    pub fn watcher(&self, name: &str, args: &[&str]) -> Command {
        let mut c = self.script("watch_revocations.py");
        c.args(["--dir", name]).args(args);
        c
    }

    pub fn read(&self, name: &str, file: &str) -> Vec<u8> {
        std::fs::read(self.work.join(name).join(file)).unwrap()
    }
}

/// What a `watch-revocations` child printed once it exits (killed after 30 s): the JSON lines
/// of its standard output, and its standard output and error as text (for messages).
pub async fn watch_output(mut watch: std::process::Child) -> (Vec<Value>, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while watch.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = watch.kill();
        watch.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        lines,
        text,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
