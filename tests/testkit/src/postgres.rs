//! A private PostgreSQL instance for tests: its own data directory and port, so a test can
//! restart it or kill it without touching anything else on the machine.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::free_port;

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `$ACCORD_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout; `scripts/setup` installs it).
pub fn pg_bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCORD_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .filter(|(_, p)| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .expect("no PostgreSQL server binaries in /usr/lib/postgresql: run scripts/setup")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// One PostgreSQL server on 127.0.0.1, trust authentication, user `postgres`. Stopped on drop.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    running: bool,
    ssl: bool,
    _tmp: tempfile::TempDir,
}

impl PgServer {
    pub fn start() -> Self {
        let mut s = Self::init();
        s.launch();
        s
    }

    /// A server with `ssl = on` and this certificate chain and key (PEM; the test makes them,
    /// e.g. with rcgen), that accepts TCP connections over TLS only (`hostssl` in pg_hba.conf).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        let mut s = Self::init();
        for (name, text, mode) in [
            ("server.crt", cert_pem, 0o644),
            ("server.key", key_pem, 0o600),
        ] {
            let p = s.data.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            if s.as_postgres {
                chown(&p, Some(uid_of("postgres")), None).unwrap();
            }
        }
        std::fs::write(
            s.data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();
        s.ssl = true;
        s.launch();
        s
    }

    fn init() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to the postgres user
            let uid = uid_of("postgres");
            chown(tmp.path(), Some(uid), None).unwrap();
        }
        let data = tmp.path().join("data");
        let bin = pg_bin_dir();
        let s = Self {
            port: free_port(),
            data,
            bin,
            as_postgres,
            running: false,
            ssl: false,
            _tmp: tmp,
        };
        let out = s.run(
            "initdb",
            &[
                "-D",
                s.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args)
            .current_dir(self.data.parent().unwrap_or(Path::new("/")));
        c.output().unwrap()
    }

    fn launch(&mut self) {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.data.parent().unwrap().display()
        );
        if self.ssl {
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = self.data.parent().unwrap().join("pg.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
        self.wait_accepting(Duration::from_secs(30));
    }

    fn wait_accepting(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let out = self.run(
                "pg_isready",
                &["-h", "127.0.0.1", "-p", &self.port.to_string()],
            );
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL on port {} not accepting connections", self.port);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("CREATE DATABASE \"{name}\""),
            ],
        );
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// Stops the server at once (`immediate`: no checkpoint, as after a crash).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D",
                    self.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
            self.running = false;
        }
    }

    /// Stops and starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
