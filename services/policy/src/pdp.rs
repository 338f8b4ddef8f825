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
    /// The remote PDP answered something that is not a decision (not JSON, or too large).
    #[error("the remote PDP's answer is malformed: {0}")]
    Malformed(String),
    /// The remote PDP's URL is not `https://` (plaintext needs the `dangerous_` constructor).
    #[error("the remote PDP's URL {0:?} is not https")]
    InsecureUrl(String),
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
    data: regorus::Value,
    generation: u64,
    /// Packages `accord.<policy>` the bundle defines: asking for any other is undefined.
    policies: std::collections::HashSet<String>,
    /// Each policy's decision rule compiled for the Rego VM, once per bundle version; `None`
    /// when the compiler does not take it (the interpreter answers those).
    programs: std::sync::Mutex<HashMap<String, Option<Arc<regorus::rvm::Program>>>>,
}

impl Prepared {
    fn program(&self, policy: &str) -> Option<Arc<regorus::rvm::Program>> {
        let mut programs = self.programs.lock().ok()?;
        if let Some(p) = programs.get(policy) {
            return p.clone();
        }
        let rule = format!("data.accord.{policy}.decision");
        let compiled = self
            .engine
            .clone()
            .compile_with_entrypoint(&rule.clone().into())
            .ok()
            .and_then(|c| {
                regorus::languages::rego::compiler::Compiler::compile_from_policy(&c, &[&rule]).ok()
            });
        if compiled.is_none() {
            tracing::info!(
                policy,
                "policy runs on the Rego interpreter (the VM compiler does not take it)"
            );
        }
        programs.insert(policy.to_owned(), compiled.clone());
        compiled
    }
}

/// A worker thread's warm evaluators for one PDP and bundle version.
struct Warm {
    generation: u64,
    prepared: Arc<Prepared>,
    interpreter: regorus::Engine,
    /// The VM of each policy asked for; `None` when the VM cannot run it (the compiler did not
    /// take it, or the bundle's data did not load into it): that policy runs on the interpreter.
    vms: HashMap<String, Option<regorus::rvm::RegoVM>>,
}

static NEXT_PDP: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Each worker thread's warm evaluators, per PDP.
    static WARM: RefCell<HashMap<u64, Warm>> = RefCell::new(HashMap::new());
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
        let data = regorus::Value::from(bundle.data()?);
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
            data,
            generation,
            policies,
            programs: std::sync::Mutex::new(HashMap::new()),
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
            // the shared state is touched only when this thread's copy is stale: the hot path
            // reads one atomic and this thread's own memory
            if warm.get(&self.id).is_none_or(|w| w.generation != generation) {
                let prepared = self
                    .current
                    .read()
                    .ok()
                    .and_then(|c| c.clone())
                    .ok_or(PdpError::NoBundle)?;
                warm.insert(
                    self.id,
                    Warm {
                        generation: prepared.generation,
                        interpreter: prepared.engine.clone(),
                        prepared,
                        vms: HashMap::new(),
                    },
                );
            }
            let w = warm.get_mut(&self.id).ok_or(PdpError::NoBundle)?;
            let prepared = &w.prepared;
            if !prepared.policies.contains(policy) {
                return Ok((Value::Null, prepared.bundle.clone()));
            }
            let input = regorus::Value::from(input.clone());
            if !w.vms.contains_key(policy) {
                let vm = w.prepared.program(policy).and_then(|program| {
                    let mut vm = regorus::rvm::RegoVM::new();
                    vm.set_execution_timer_config(Some(crate::bundle::execution_timer()));
                    vm.load_program(program);
                    // a VM without the bundle's data would decide as if every setting were
                    // absent: never keep one
                    match vm.set_data(w.prepared.data.clone()) {
                        Ok(()) => Some(vm),
                        Err(e) => {
                            tracing::warn!(policy, error = %e, "the Rego VM cannot load this bundle's data; using the interpreter");
                            None
                        }
                    }
                });
                w.vms.insert(policy.to_owned(), vm);
            }
            let outcome = match w.vms.get_mut(policy) {
                Some(Some(vm)) => {
                    vm.set_input(input);
                    vm.execute().map_err(|e| e.to_string())
                }
                _ => {
                    w.interpreter.set_input(input);
                    w.interpreter
                        .eval_rule(format!("data.accord.{policy}.decision"))
                        .map_err(|e| e.to_string())
                }
            };
            let result = match outcome {
                Ok(regorus::Value::Undefined) => Value::Null,
                Ok(v) => serde_json::to_value(&v).unwrap_or(Value::Null),
                Err(e) => serde_json::json!({
                    "allow": false,
                    "reasons": [format!("policy evaluation failed: {}", e.lines().next().unwrap_or(""))],
                }),
            };
            Ok::<_, PdpError>((result, w.prepared.bundle.clone()))
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
