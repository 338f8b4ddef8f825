//! Policy bundles: Rego modules and JSON data documents, versioned and hashed. A bundle is
//! checked (every module compiles, every `test_*` rule passes) before it is published; the
//! log holds every version ever published.
//!
//! Layout of a bundle directory (as OPA bundles): `*.rego` modules anywhere; `data.json` files
//! whose directory is their place in the data tree (`accord/issuance/data.json` →
//! `data.accord.issuance`, a root `data.json` → `data`); `*_test.rego` modules hold tests.

use std::path::Path;

use accord_events::Digest;
use accord_events::catalogue::BundleFile;
use serde_json::Value;

/// Largest bundle, bytes of its files as JSON (paths and contents, escaped as the event carries
/// them): it travels in one event, which may be at most 512 KiB with its envelope.
pub const MAX_BUNDLE_BYTES: usize = 400 * 1024;
/// Longest a single evaluation may run (cooperatively checked by regorus): a published policy
/// with a runaway comprehension fails its decision (a deny) instead of stalling a worker.
pub const EVAL_TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The execution timer every engine and VM of the PDP runs with.
pub fn execution_timer() -> regorus::utils::limits::ExecutionTimerConfig {
    regorus::utils::limits::ExecutionTimerConfig {
        limit: EVAL_TIME_LIMIT,
        check_interval: std::num::NonZeroU32::new(256).unwrap_or(std::num::NonZeroU32::MIN),
    }
}

/// Most files in a bundle.
pub const MAX_FILES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("reading {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("bundle is {size} bytes, more than {MAX_BUNDLE_BYTES}")]
    TooLarge { size: usize },
    #[error("bundle has {0} files, more than {MAX_FILES}")]
    TooManyFiles(usize),
    #[error("bundle has no Rego module")]
    Empty,
    #[error("file path {0:?} is not a relative path of plain segments")]
    BadPath(String),
    #[error("{path}: not JSON: {detail}")]
    BadData { path: String, detail: String },
    #[error("{path}: does not compile: {detail}")]
    Compile { path: String, detail: String },
    #[error("{failed} of {total} policy tests failed: {names}")]
    TestsFailed {
        failed: usize,
        total: usize,
        names: String,
    },
}

/// A bundle's files, in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub name: String,
    pub files: Vec<BundleFile>,
}

/// How a bundle's tests went.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TestReport {
    pub passed: Vec<String>,
    pub failed: Vec<(String, String)>,
}

fn check_path(p: &str) -> Result<(), BundleError> {
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(BundleError::BadPath(p.to_owned()))
    }
}

impl Bundle {
    /// A bundle from files, checked for size and shape (not yet compiled).
    pub fn new(name: &str, mut files: Vec<BundleFile>) -> Result<Self, BundleError> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if files.len() > MAX_FILES {
            return Err(BundleError::TooManyFiles(files.len()));
        }
        let size: usize = files
            .iter()
            .map(|f| {
                serde_json::to_string(&f.path).map_or(usize::MAX / 2, |p| p.len())
                    + serde_json::to_string(&f.content).map_or(usize::MAX / 2, |c| c.len())
            })
            .fold(0, usize::saturating_add);
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge { size });
        }
        for f in &files {
            check_path(&f.path)?;
        }
        if !files.iter().any(|f| f.path.ends_with(".rego")) {
            return Err(BundleError::Empty);
        }
        Ok(Self {
            name: name.to_owned(),
            files,
        })
    }

    /// Reads `*.rego` and `data.json` files under `dir`.
    pub fn load_dir(name: &str, dir: &Path) -> Result<Self, BundleError> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        let read_err = |p: &Path, e: std::io::Error| BundleError::Read {
            path: p.display().to_string(),
            detail: e.to_string(),
        };
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| read_err(&d, e))? {
                let entry = entry.map_err(|e| read_err(&d, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let fname = entry.file_name().to_string_lossy().to_string();
                if !(fname.ends_with(".rego") || fname == "data.json") {
                    continue;
                }
                let rel = path
                    .strip_prefix(dir)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(fname);
                let content = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
                files.push(BundleFile { path: rel, content });
            }
        }
        Self::new(name, files)
    }

    /// The shipped library (`services/policy/library`), compiled into the binary.
    pub fn library() -> Self {
        let files = crate::library::FILES
            .iter()
            .map(|(path, content)| BundleFile {
                path: (*path).to_owned(),
                content: (*content).to_owned(),
            })
            .collect();
        Self::new("default", files)
            .unwrap_or_else(|_| unreachable!("the library is a valid bundle"))
    }

    /// SHA-256 over the canonical (RFC 8785) list of `{path, content}`, in path order.
    pub fn digest(&self) -> Digest {
        let list: Vec<Value> = self
            .files
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "content": f.content}))
            .collect();
        let bytes = accord_events::canonical::to_vec(&list).unwrap_or_default();
        Digest::sha256(&bytes)
    }

    /// The data tree of the bundle's `data.json` files.
    pub fn data(&self) -> Result<Value, BundleError> {
        let mut root = serde_json::Map::new();
        for f in self.files.iter().filter(|f| f.path.ends_with("data.json")) {
            let v: Value = serde_json::from_str(&f.content).map_err(|e| BundleError::BadData {
                path: f.path.clone(),
                detail: e.to_string(),
            })?;
            let dir: Vec<&str> = f
                .path
                .trim_end_matches("data.json")
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            let mut at = &mut root;
            for seg in dir {
                let next = at
                    .entry(seg.to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !next.is_object() {
                    *next = Value::Object(serde_json::Map::new());
                }
                at = next
                    .as_object_mut()
                    .unwrap_or_else(|| unreachable!("just made an object"));
            }
            merge(at, v);
        }
        Ok(Value::Object(root))
    }

    /// Compiles every module with the bundle's data into a fresh engine.
    pub fn compile(&self) -> Result<regorus::Engine, BundleError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        engine.set_execution_timer_config(execution_timer());
        for f in self.files.iter().filter(|f| f.path.ends_with(".rego")) {
            engine
                .add_policy(f.path.clone(), f.content.clone())
                .map_err(|e| BundleError::Compile {
                    path: f.path.clone(),
                    detail: e.to_string().lines().next().unwrap_or("").to_owned(),
                })?;
        }
        let data = self.data()?;
        engine
            .add_data(regorus::Value::from(data))
            .map_err(|e| BundleError::BadData {
                path: "data.json".into(),
                detail: e.to_string(),
            })?;
        Ok(engine)
    }

    /// Runs every `test_*` rule of the bundle's modules (OPA's convention): a test passes when
    /// it evaluates to `true`.
    pub fn run_tests(&self) -> Result<TestReport, BundleError> {
        let engine = self.compile()?;
        let mut report = TestReport::default();
        for f in self.files.iter().filter(|f| f.path.ends_with(".rego")) {
            let Some(package) = package_of(&f.content) else {
                continue;
            };
            for rule in test_rules(&f.content) {
                let mut e = engine.clone();
                let name = format!("data.{package}.{rule}");
                match e.eval_rule(name.clone()) {
                    Ok(regorus::Value::Bool(true)) => report.passed.push(name),
                    Ok(regorus::Value::Undefined) => report
                        .failed
                        .push((name, "undefined (a condition failed)".into())),
                    Ok(v) => report.failed.push((name, format!("evaluated to {v}"))),
                    Err(err) => report.failed.push((name, err.to_string())),
                }
            }
        }
        Ok(report)
    }

    /// Compiles and runs the tests; what must hold before a bundle is published.
    pub fn check(&self) -> Result<TestReport, BundleError> {
        let report = self.run_tests()?;
        if !report.failed.is_empty() {
            return Err(BundleError::TestsFailed {
                failed: report.failed.len(),
                total: report.failed.len() + report.passed.len(),
                names: report
                    .failed
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(report)
    }
}

fn merge(into: &mut serde_json::Map<String, Value>, v: Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (into.get_mut(&k), v) {
                    (Some(Value::Object(existing)), Value::Object(new)) => {
                        merge(existing, Value::Object(new))
                    }
                    (_, v) => {
                        into.insert(k, v);
                    }
                }
            }
        }
        other => {
            into.insert("value".into(), other);
        }
    }
}

/// The `package` of a module.
pub fn package_of(rego: &str) -> Option<String> {
    rego.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.trim().to_owned())
}

/// Names of rules starting with `test_` defined at the start of a line.
fn test_rules(rego: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in rego.lines() {
        if let Some(rest) = line.strip_prefix("test_") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let full = format!("test_{name}");
            if !out.contains(&full) {
                out.push(full);
            }
        }
    }
    out
}
