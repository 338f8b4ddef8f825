//! Decisions: typed, carrying their reasons and what they were made under (bundle version and
//! digest, the projection sequence), so they can be reproduced later. Only this crate makes
//! one, and only an allowing decision hands out an [`Allow`].

use accord_events::Digest;
use accord_events::catalogue::PolicyRef;
use serde::Serialize;
use serde_json::Value;

/// Which bundle a decision was made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRef {
    pub name: String,
    pub version: u64,
    pub digest: Digest,
    /// Stream sequence of the event that published this version (0 for a remote PDP).
    pub published_seq: u64,
}

/// Proof that a decision allowed something. Code that must only run after an allow takes an
/// `&Allow`; nothing outside this crate can make one.
#[derive(Debug)]
pub struct Allow {
    _private: (),
}

/// A PDP's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    id: uuid::Uuid,
    policy: String,
    allowed: bool,
    reasons: Vec<String>,
    /// The whole result object the policy returned (`capabilities` and the like).
    result: Value,
    bundle: BundleRef,
    /// The policies projection's position when the decision was made.
    at_seq: u64,
    duration_micros: u64,
}

impl Decision {
    pub(crate) fn new(
        policy: &str,
        result: Value,
        bundle: BundleRef,
        at_seq: u64,
        duration_micros: u64,
    ) -> Self {
        // default deny: anything but an object with "allow": true is a deny
        let allowed = result.get("allow") == Some(&Value::Bool(true));
        let mut reasons: Vec<String> = match result.get("reasons") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if !allowed && reasons.is_empty() {
            reasons.push(match &result {
                Value::Null => "the policy's decision is undefined (default deny)".to_owned(),
                Value::Object(_) => "the policy did not allow it".to_owned(),
                _ => "the policy's decision is malformed (default deny)".to_owned(),
            });
        }
        Self {
            id: uuid::Uuid::now_v7(),
            policy: policy.to_owned(),
            allowed,
            reasons,
            result,
            bundle,
            at_seq,
            duration_micros,
        }
    }

    /// The proof of an allow, or `None` for a deny.
    pub fn allowed(&self) -> Option<Allow> {
        self.allowed.then_some(Allow { _private: () })
    }

    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    pub fn result(&self) -> &Value {
        &self.result
    }

    pub fn policy(&self) -> &str {
        &self.policy
    }

    pub fn bundle(&self) -> &BundleRef {
        &self.bundle
    }

    pub fn at_seq(&self) -> u64 {
        self.at_seq
    }

    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    pub fn duration_micros(&self) -> u64 {
        self.duration_micros
    }

    /// What an event records about the decision it was made under.
    pub fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
            bundle: self.bundle.name.clone(),
            version: self.bundle.version,
            digest: self.bundle.digest.clone(),
            at_seq: self.at_seq,
        }
    }

    /// A string-set member of the result (`capabilities`), sorted.
    pub fn result_set(&self, field: &str) -> Vec<String> {
        let mut v: Vec<String> = match self.result.get(field) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        v.sort();
        v.dedup();
        v
    }
}
