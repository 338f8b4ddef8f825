//! Finding the nats-server to launch, and checking its version.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest nats-server Accord runs on: atomic batches (2.12), subject-wildcard
/// compare-and-set and batched direct get (2.11).
pub const MIN_NATS: (u32, u32, u32) = (2, 12, 0);

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "nats-server not found (looked at $ACCORD_NATS_SERVER, {tools}/bin/nats-server and PATH); run scripts/setup or set ACCORD_NATS_SERVER"
    )]
    NatsMissing { tools: String },
    #[error("{path}: nats-server {found} is too old; Accord needs {}.{}.{} or later (scripts/setup installs 2.15.1)", MIN_NATS.0, MIN_NATS.1, MIN_NATS.2)]
    NatsTooOld { path: PathBuf, found: String },
    #[error("{path}: not a working nats-server ({detail})")]
    NatsBroken { path: PathBuf, detail: String },
}

/// Parses `nats-server: v2.15.1` (or `v2.15.1-beta`) into numbers.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let v = s.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(['.', '-']);
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// Candidates in order: `$ACCORD_NATS_SERVER`, the tools folder, `PATH`.
fn candidates(env: &[(String, String)]) -> (Vec<PathBuf>, String) {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let tools = get("ACCORD_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // the checkout's .tools, when the binary runs from a target dir inside or beside it
            std::env::current_dir().unwrap_or_default().join(".tools")
        });
    let mut out = Vec::new();
    if let Some(p) = get("ACCORD_NATS_SERVER") {
        return (vec![PathBuf::from(p)], tools.display().to_string());
    }
    out.push(tools.join("bin/nats-server"));
    // the checkout this binary was built from (scripts/setup installs there)
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/nats-server"));
    if let Some(path) = get("PATH") {
        for dir in path.split(':') {
            out.push(Path::new(dir).join("nats-server"));
        }
    }
    (out, tools.display().to_string())
}

/// The nats-server to launch: the first candidate that exists, checked for its version.
pub fn find_nats_server(env: &[(String, String)]) -> Result<PathBuf, ToolError> {
    let (cands, tools) = candidates(env);
    let path = cands
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(ToolError::NatsMissing { tools })?;
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| ToolError::NatsBroken {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = parse_version(&text).ok_or_else(|| ToolError::NatsBroken {
        path: path.clone(),
        detail: format!("unexpected --version output {:?}", text.trim()),
    })?;
    if v < MIN_NATS {
        return Err(ToolError::NatsTooOld {
            path,
            found: format!("{}.{}.{}", v.0, v.1, v.2),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.25\n"), Some((2, 9, 25)));
        assert_eq!(parse_version("nats-server: v2.12.0-RC.1"), Some((2, 12, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert!((2, 9, 25) < MIN_NATS && (2, 15, 1) >= MIN_NATS);
    }
}
