//! The decision log: decisions (all, or a sample) on their own stream, `ACCORD_DECISIONS`,
//! with limits-based retention. Not the event log: decisions are observations, not facts of
//! the domain, and they age out.

use std::time::Duration;

use accord_events::DomainId;
use async_nats::jetstream::{self, stream};
use serde_json::{Value, json};

use crate::decision::Decision;

pub const DECISIONS_STREAM: &str = "ACCORD_DECISIONS";

/// How long and how much of the decision log is kept, and which decisions go there.
#[derive(Debug, Clone)]
pub struct DecisionLogConfig {
    pub max_age: Duration,
    pub max_bytes: i64,
    /// Fraction of decisions recorded, 0.0..=1.0 (denies are always recorded).
    pub sample: f64,
    pub replicas: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            sample: 1.0,
            replicas: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DecisionLog {
    client: async_nats::Client,
    prefix: String,
    sample: f64,
}

impl DecisionLog {
    /// Creates (or updates to `config`) the decision stream and returns a log writing to it.
    pub async fn open(
        client: async_nats::Client,
        js: &jetstream::Context,
        domain: &DomainId,
        config: &DecisionLogConfig,
    ) -> Result<Self, String> {
        let prefix = format!("accord.decisions.{domain}");
        let cfg = stream::Config {
            name: DECISIONS_STREAM.into(),
            description: Some(format!("Accord policy decisions of domain {domain}")),
            subjects: vec![format!("{prefix}.>")],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: config.max_age,
            max_bytes: config.max_bytes,
            discard: stream::DiscardPolicy::Old,
            num_replicas: config.replicas,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(cfg)
            .await
            .map_err(|e| format!("decision stream: {e}"))?;
        Ok(Self {
            client,
            prefix,
            sample: config.sample.clamp(0.0, 1.0),
        })
    }

    fn sampled(&self, d: &Decision) -> bool {
        if !d.is_allowed() || self.sample >= 1.0 {
            return true;
        }
        let bucket = (d.id().as_u128() & 0xffff) as f64 / 65536.0;
        bucket < self.sample
    }

    /// Records a decision (fire and forget: a decision never waits for its log).
    pub async fn record(&self, d: &Decision, input: &Value) {
        if !self.sampled(d) {
            return;
        }
        let body = json!({
            "id": d.id(),
            "policy": d.policy(),
            "allow": d.is_allowed(),
            "reasons": d.reasons(),
            "result": d.result(),
            "bundle": d.bundle(),
            "at_seq": d.at_seq(),
            "duration_micros": d.duration_micros(),
            "input": input,
            "at": accord_events::Timestamp::now(),
        });
        let subject = format!("{}.{}", self.prefix, d.policy());
        if let Err(e) = self.client.publish(subject, body.to_string().into()).await {
            tracing::warn!(error = %e, "decision log");
        }
    }
}
