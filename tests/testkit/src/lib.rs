//! Test support shared by every crate's tests and benchmarks: finds the project's tools
//! (installed by `scripts/setup`), starts real nats-server processes with generated configs on
//! free loopback ports, kills and restarts them; and private PostgreSQL instances.

#![allow(clippy::unwrap_used)]

mod nats;
mod postgres;

pub use nats::{NatsCluster, NatsOptions, NatsServer};
pub use postgres::{PgServer, pg_bin_dir};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// The checkout's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where `scripts/setup` installs tools: `$ACCORD_TOOLS_DIR`, or `.tools/` in the checkout.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("ACCORD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// The nats-server binary to test against: `$ACCORD_NATS_SERVER`, or the one `scripts/setup`
/// installed. Panics with the fix when there is none.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCORD_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let p = tools_dir().join("bin/nats-server");
    assert!(
        p.exists(),
        "no nats-server at {}: run scripts/setup (the test command does)",
        p.display()
    );
    p
}

/// `python3` with the test clients `scripts/setup` installed on its path.
pub fn python() -> Command {
    let mut c = Command::new("python3");
    c.env("PYTHONPATH", tools_dir().join("python"));
    c.env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// A TCP port free on 127.0.0.1 right now, from 20000–31999: below the kernel's ephemeral
/// range, so that between this pick and the server's bind neither an outgoing connection nor
/// another process's bind to port 0 takes it (as `accord dev` picks its ports).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let start = h.finish();
    for i in 0..256u64 {
        let port = 20_000 + ((start.wrapping_add(i * 7_919)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks a child process to shut down as Ctrl-C would (SIGTERM) and waits up to `within` for
/// it; kills it after that. Its exit status, when there is one.
pub fn terminate(
    c: &mut std::process::Child,
    within: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = c.kill();
    c.wait().ok()
}
