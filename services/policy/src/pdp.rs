//! The embedded PDP: one warm regorus engine per worker thread, refreshed when a new bundle
//! version is loaded; default deny.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::Value;

use crate::bundle::{Bundle, BundleError};
use crate::decision::{BundleRef, Decision};

#[derive(Debug, thiserror::Error)]
pub enum PdpError {
    #[error("policy name {0:?} is not [a-z][a-z0-9_]*")]
    BadPolicyName(String),
    #[error("no policy bundle is loaded")]
    NoBundle,
    #[error("the remote PDP is unavailable: {0}")]
    Unavailable(String),
}

/// Checks a policy name before it becomes part of a rule path.
pub fn check_policy_name(policy: &str) -> Result<(), PdpError> {
    let ok = policy.len() <= 64
        && policy
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && policy
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PdpError::BadPolicyName(policy.to_owned()))
    }
}

struct Prepared {
    bundle: BundleRef,
    engine: regorus::Engine,
    generation: u64,
    /// Packages `accord.<policy>` the bundle defines: asking for any other is undefined.
    policies: std::collections::HashSet<String>,
}

static NEXT_PDP: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Each worker thread's warm engines, per PDP: (generation, engine).
    static WARM: RefCell<HashMap<u64, (u64, regorus::Engine)>> = RefCell::new(HashMap::new());
}

/// A PDP evaluating Rego in-process.
pub struct LocalPdp {
    id: u64,
    current: RwLock<Option<Arc<Prepared>>>,
    generation: AtomicU64,
    /// The policies projection's position, recorded in every decision.
    at_seq: AtomicU64,
}

impl std::fmt::Debug for LocalPdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPdp")
            .field("bundle", &self.bundle())
            .finish_non_exhaustive()
    }
}

impl Default for LocalPdp {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalPdp {
    pub fn new() -> Self {
        Self {
            id: NEXT_PDP.fetch_add(1, Ordering::Relaxed),
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            at_seq: AtomicU64::new(0),
        }
    }

    /// Compiles `bundle` and makes it the one decisions use. On error the loaded version stays.
    pub fn load(&self, bundle: &Bundle, meta: BundleRef) -> Result<(), BundleError> {
        let engine = bundle.compile()?;
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let policies = bundle
            .files
            .iter()
            .filter(|f| f.path.ends_with(".rego"))
            .filter_map(|f| crate::bundle::package_of(&f.content))
            .filter_map(|p| p.strip_prefix("accord.").map(str::to_owned))
            .collect();
        let prepared = Arc::new(Prepared {
            bundle: meta,
            engine,
            generation,
            policies,
        });
        if let Ok(mut cur) = self.current.write() {
            *cur = Some(prepared);
        }
        self.generation.store(generation, Ordering::Release);
        Ok(())
    }

    /// The loaded bundle.
    pub fn bundle(&self) -> Option<BundleRef> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|p| p.bundle.clone()))
    }

    pub fn set_at_seq(&self, seq: u64) {
        self.at_seq.fetch_max(seq, Ordering::Release);
    }

    pub fn at_seq(&self) -> u64 {
        self.at_seq.load(Ordering::Acquire)
    }

    /// Evaluates `data.accord.<policy>.decision` with `input`. An undefined or malformed result,
    /// or an evaluation error, is a deny.
    pub fn decide(&self, policy: &str, input: &Value) -> Result<Decision, PdpError> {
        check_policy_name(policy)?;
        let started = Instant::now();
        let generation = self.generation.load(Ordering::Acquire);
        let (result, bundle) = WARM.with(|warm| {
            let mut warm = warm.borrow_mut();
            let stale = warm.get(&self.id).is_none_or(|(g, _)| *g != generation);
            let prepared = self
                .current
                .read()
                .ok()
                .and_then(|c| c.clone())
                .ok_or(PdpError::NoBundle)?;
            if stale {
                warm.insert(self.id, (prepared.generation, prepared.engine.clone()));
            }
            if !prepared.policies.contains(policy) {
                return Ok((Value::Null, prepared.bundle.clone()));
            }
            let (_, engine) = warm
                .get_mut(&self.id)
                .ok_or(PdpError::NoBundle)?;
            engine.set_input(regorus::Value::from(input.clone()));
            let result = match engine.eval_rule(format!("data.accord.{policy}.decision")) {
                Ok(regorus::Value::Undefined) => Value::Null,
                Ok(v) => serde_json::to_value(&v).unwrap_or(Value::Null),
                Err(e) => serde_json::json!({
                    "allow": false,
                    "reasons": [format!("policy evaluation failed: {}", e.to_string().lines().next().unwrap_or(""))],
                }),
            };
            Ok::<_, PdpError>((result, prepared.bundle.clone()))
        })?;
        Ok(Decision::new(
            policy,
            result,
            bundle,
            self.at_seq(),
            started.elapsed().as_micros() as u64,
        ))
    }
}
