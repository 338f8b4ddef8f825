//! `curl` against a running `accord dev`, as the security review's outside-in tests run it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// What one `curl` call got.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    /// Every header block curl received (interim `100 Continue` ones included), lowercased.
    pub headers: String,
    pub body: Vec<u8>,
    /// What curl said on its standard error (why a request got no answer).
    pub stderr: String,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The problem type's last segment (`https://accord.dev/problems/<kind>`).
    pub fn kind(&self) -> String {
        self.json()["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("")
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let name = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(name.as_str()).map(|v| v.trim().to_owned()))
    }
}

static N: AtomicU32 = AtomicU32::new(0);

/// `curl -sS --cacert <dev CA> <args>` from `work`: status, headers and body.
pub fn curl(ca: &Path, work: &Path, args: &[&str]) -> Got {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let body: PathBuf = work.join(format!("curl-{n}.body"));
    let headers: PathBuf = work.join(format!("curl-{n}.headers"));
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .arg("-o")
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(args)
        .current_dir(work)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Got {
        status,
        headers: std::fs::read_to_string(&headers)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        body: std::fs::read(&body).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}
