//! nats-server processes for tests.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, nats_server_bin};

/// How to configure a test server.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// JetStream domain (`jetstream { domain: ... }`).
    pub js_domain: Option<String>,
    /// Extra top-level config text (accounts, authorization, tls, leafnodes, ...).
    pub extra: String,
    /// Extra text inside the `jetstream { }` block.
    pub jetstream_extra: String,
}

/// One nats-server process with its own store directory. Killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    name: String,
    port: u16,
    monitor_port: u16,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// A single JetStream server.
    pub fn start() -> Self {
        Self::start_with(NatsOptions::default())
    }

    pub fn start_with(opts: NatsOptions) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::configure("n1", &dir, &opts, None);
        s._tmp = Some(tmp);
        s.launch();
        s
    }

    fn configure(
        name: &str,
        dir: &Path,
        opts: &NatsOptions,
        cluster: Option<(&str, u16, &[u16])>,
    ) -> Self {
        let port = free_port();
        let monitor_port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let mut conf = String::new();
        writeln!(conf, "server_name: {name}").unwrap();
        writeln!(conf, "listen: 127.0.0.1:{port}").unwrap();
        writeln!(conf, "http: 127.0.0.1:{monitor_port}").unwrap();
        writeln!(conf, "max_payload: 1MB").unwrap();
        writeln!(conf, "jetstream {{").unwrap();
        writeln!(
            conf,
            "  store_dir: {:?}",
            dir.join("js").display().to_string()
        )
        .unwrap();
        writeln!(conf, "  max_memory_store: 256MB").unwrap();
        writeln!(conf, "  max_file_store: 8GB").unwrap();
        if let Some(d) = &opts.js_domain {
            writeln!(conf, "  domain: {d}").unwrap();
        }
        conf.push_str(&opts.jetstream_extra);
        writeln!(conf, "\n}}").unwrap();
        if let Some((cname, cport, routes)) = cluster {
            writeln!(conf, "cluster {{").unwrap();
            writeln!(conf, "  name: {cname}").unwrap();
            writeln!(conf, "  listen: 127.0.0.1:{cport}").unwrap();
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            writeln!(conf, "  routes: [{}]", routes.join(", ")).unwrap();
            writeln!(conf, "}}").unwrap();
        }
        conf.push_str(&opts.extra);
        let config = dir.join("nats.conf");
        std::fs::write(&config, conf).unwrap();
        Self {
            name: name.to_owned(),
            port,
            monitor_port,
            dir: dir.to_path_buf(),
            config,
            child: None,
            _tmp: None,
        }
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20));
    }

    fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "nats-server {} exited with {status}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if http_status(self.monitor_port, "/healthz") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server {} not ready in {within:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// The directory holding the config, the log and the JetStream store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same server again (same config, ports and store).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts a killed server again without waiting for it to report healthy (a cluster
    /// member only turns healthy once it has caught up with the others).
    pub fn relaunch_no_wait(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .unwrap();
        self.child = Some(
            Command::new(nats_server_bin())
                .arg("-c")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of JetStream servers on loopback, fully routed.
#[derive(Debug)]
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _tmp: tempfile::TempDir,
}

impl NatsCluster {
    pub fn start(n: usize) -> Self {
        Self::start_with(n, NatsOptions::default())
    }

    pub fn start_with(n: usize, opts: NatsOptions) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut servers: Vec<NatsServer> = (0..n)
            .map(|i| {
                let others: Vec<u16> = cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| *p)
                    .collect();
                NatsServer::configure(
                    &format!("n{}", i + 1),
                    &tmp.path().join(format!("n{}", i + 1)),
                    &opts,
                    Some(("accord-test", cluster_ports[i], &others)),
                )
            })
            .collect();
        // Start all before waiting: a member reports healthy only once JetStream has a meta
        // leader, which needs a quorum.
        for s in &mut servers {
            s.relaunch_no_wait();
        }
        for s in &mut servers {
            s.wait_ready(Duration::from_secs(60));
        }
        Self { servers, _tmp: tmp }
    }

    /// Every server's client URL, comma-separated (what a client is given to fail over).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until server `i` reports healthy again (after a restart).
    pub fn wait_healthy(&mut self, i: usize, within: Duration) {
        self.servers[i].wait_ready(within);
    }
}

/// Status code of a plain HTTP/1.0 GET to the monitoring port, if it answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
