//! Logs, traces and metrics: `tracing` everywhere (text or JSON lines), OpenTelemetry traces
//! and metrics over OTLP/HTTP when a collector is configured, and a Prometheus-format endpoint
//! that always works.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySection};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabel {
    pub surface: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabel {
    pub reader: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// Every metric Accord exports.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub appends: Family<OutcomeLabel, Gauge<u64, AtomicU64>>,
    pub projection_applied: Family<ProjectionLabel, Gauge<u64, AtomicU64>>,
    pub projection_lag: Family<ProjectionLabel, Gauge<u64, AtomicU64>>,
    pub projection_ready: Family<ProjectionLabel, Gauge>,
    pub log_last_seq: Gauge<u64, AtomicU64>,
    /// Entries of the log that are not authentic events of the domain, met by each reader
    /// (`any`: distinct sequences met by any reader).
    pub log_foreign: Family<ReaderLabel, Gauge<u64, AtomicU64>>,
    pub rejected: Family<RejectedLabel, Counter>,
    pub audit: AuditMetrics,
    /// 1 while the CRL is held because the `credentials` projection is stuck (it is not
    /// signed again and will expire; `accord_authority::crl`).
    pub crl_stale: Gauge,
    /// Unix time of the current CRL's `nextUpdate`.
    pub crl_next_update: Gauge,
}

/// Where the audit log stands (issue 7): how far its tree trails the log, and how much of the
/// log no signed checkpoint covers yet.
#[derive(Debug, Clone, Default)]
pub struct AuditMetrics {
    pub tree_size: Gauge<u64, AtomicU64>,
    pub lag: Gauge<u64, AtomicU64>,
    pub checkpoints: Gauge<u64, AtomicU64>,
    pub checkpointed_size: Gauge<u64, AtomicU64>,
    pub uncovered: Gauge<u64, AtomicU64>,
    pub refused_checkpoints: Gauge<u64, AtomicU64>,
}

impl AuditMetrics {
    /// The gauges with their names (shared by the Prometheus registry and the OTLP mirror).
    fn all(&self) -> [(&'static str, &'static str, &Gauge<u64, AtomicU64>); 6] {
        [
            (
                "tree_size",
                "Leaves in the audit log's Merkle tree (= last stream sequence it applied)",
                &self.tree_size,
            ),
            (
                "lag_events",
                "Events in the log the audit tree has not applied yet",
                &self.lag,
            ),
            (
                "checkpoints",
                "Signed checkpoints the audit log holds",
                &self.checkpoints,
            ),
            (
                "checkpointed_size",
                "Tree size of the latest signed checkpoint",
                &self.checkpointed_size,
            ),
            (
                "uncovered_events",
                "Events in the tree after the latest signed checkpoint",
                &self.uncovered,
            ),
            (
                "refused_checkpoints",
                "Checkpoints found in the stream that do not verify against the tree",
                &self.refused_checkpoints,
            ),
        ]
    }
}

impl Metrics {
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("accord");
        r.register(
            "appends",
            "Appends to the event log by outcome (stored, replayed, conflict, fact, error), since start",
            self.appends.clone(),
        );
        r.register(
            "projection_applied_sequence",
            "Last stream sequence a projection applied",
            self.projection_applied.clone(),
        );
        r.register(
            "projection_lag_events",
            "Events in the log a projection has not applied yet",
            self.projection_lag.clone(),
        );
        r.register(
            "projection_ready",
            "1 once a projection reached the log's tail as of its start",
            self.projection_ready.clone(),
        );
        r.register(
            "log_last_sequence",
            "Last stream sequence of the domain's log",
            self.log_last_seq.clone(),
        );
        r.register(
            "log_foreign_messages",
            "Entries of the log that are not authentic events of the domain (skipped), by reader",
            self.log_foreign.clone(),
        );
        for (name, help, g) in self.audit.all() {
            r.register(format!("audit_{name}"), help, g.clone());
        }
        r.register(
            "crl_stale",
            "1 while the CRL is held (not signed again) because the credentials projection is stuck",
            self.crl_stale.clone(),
        );
        r.register(
            "crl_next_update_seconds",
            "Unix time of the current CRL's nextUpdate",
            self.crl_next_update.clone(),
        );
        r.register(
            "rejected_inputs",
            "Inputs refused at an edge, by surface and reason",
            self.rejected.clone(),
        );
        r
    }

    pub fn reject(&self, surface: &str, reason: &str) {
        self.rejected
            .get_or_create(&RejectedLabel {
                surface: surface.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }
}

/// What must live as long as the process (exporters flush on drop).
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    meter: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp", &self.tracer.is_some())
            .finish()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

/// Installs the global subscriber. Call once, inside the tokio runtime.
pub fn init(cfg: &TelemetrySection) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&cfg.log_level)
        .map_err(|e| anyhow::anyhow!("telemetry.log_level {:?}: {e}", cfg.log_level))?;
    let fmt = match cfg.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let metrics = Arc::new(Metrics::default());
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    let (otel_layer, tracer, meter) = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let base = endpoint.trim_end_matches('/');
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/traces"))
                .build()?;
            let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer("accord"));
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/metrics"))
                .build()?;
            let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
                .with_interval(std::time::Duration::from_millis(
                    cfg.otlp_interval_ms.max(100),
                ))
                .build();
            let meter = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource)
                .build();
            mirror_metrics(&meter, metrics.clone());
            opentelemetry::global::set_tracer_provider(tracer.clone());
            (Some(layer), Some(tracer), Some(meter))
        }
        None => (None, None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the tracing subscriber: {e}"))?;
    Ok(Telemetry {
        metrics,
        tracer,
        meter,
    })
}

/// The OTLP metrics read the same values as the Prometheus endpoint (one source of truth).
fn mirror_metrics(meter: &opentelemetry_sdk::metrics::SdkMeterProvider, m: Arc<Metrics>) {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    let meter = meter.meter("accord");
    let last = m.clone();
    meter
        .u64_observable_gauge("accord.log.last_sequence")
        .with_callback(move |o| o.observe(last.log_last_seq.get(), &[]))
        .build();
    for (name, _, g) in m.audit.all() {
        let g = g.clone();
        meter
            .u64_observable_gauge(format!("accord.audit.{name}"))
            .with_callback(move |o| o.observe(g.get(), &[]))
            .build();
    }
    let crl = m.clone();
    meter
        .i64_observable_gauge("accord.crl.stale")
        .with_callback(move |o| o.observe(crl.crl_stale.get(), &[]))
        .build();
    let proj = m.clone();
    let snapshot = move || -> Vec<(String, u64, u64)> {
        let names: Vec<String> = PROJECTIONS.lock().map(|p| p.clone()).unwrap_or_default();
        names
            .into_iter()
            .map(|n| {
                let l = ProjectionLabel {
                    projection: n.clone(),
                };
                (
                    n,
                    proj.projection_applied.get_or_create(&l).get(),
                    proj.projection_lag.get_or_create(&l).get(),
                )
            })
            .collect()
    };
    let snap2 = snapshot.clone();
    meter
        .u64_observable_gauge("accord.projection.applied_sequence")
        .with_callback(move |o| {
            for (n, applied, _) in snapshot() {
                o.observe(applied, &[KeyValue::new("projection", n)]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("accord.projection.lag_events")
        .with_callback(move |o| {
            for (n, _, lag) in snap2() {
                o.observe(lag, &[KeyValue::new("projection", n)]);
            }
        })
        .build();
    let foreign = m.clone();
    meter
        .u64_observable_gauge("accord.log.foreign_messages")
        .with_callback(move |o| {
            for reader in FOREIGN_READERS
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default()
            {
                let v = foreign
                    .log_foreign
                    .get_or_create(&ReaderLabel {
                        reader: reader.clone(),
                    })
                    .get();
                o.observe(v, &[KeyValue::new("reader", reader)]);
            }
        })
        .build();
    let appends = m.clone();
    meter
        .u64_observable_gauge("accord.appends")
        .with_callback(move |o| {
            for outcome in ["stored", "replayed", "conflict", "fact", "error"] {
                let v = appends
                    .appends
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.to_owned(),
                    })
                    .get();
                o.observe(v, &[KeyValue::new("outcome", outcome)]);
            }
        })
        .build();
}

/// Readers that met foreign entries, for the OTLP callback.
pub static FOREIGN_READERS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Sets the foreign-entry counts (from `accord_store::ForeignLog`).
pub fn set_foreign(m: &Metrics, counts: &[(String, u64)], distinct: u64) {
    let mut readers = vec![("any".to_owned(), distinct)];
    readers.extend(counts.iter().cloned());
    for (reader, n) in &readers {
        m.log_foreign
            .get_or_create(&ReaderLabel {
                reader: reader.clone(),
            })
            .set(*n);
    }
    if let Ok(mut r) = FOREIGN_READERS.lock() {
        *r = readers.into_iter().map(|(n, _)| n).collect();
    }
}

/// Names of running projections, for the OTLP callbacks.
pub static PROJECTIONS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records a projection name for the metric callbacks.
pub fn register_projection(name: &str) {
    if let Ok(mut p) = PROJECTIONS.lock()
        && !p.iter().any(|n| n == name)
    {
        p.push(name.to_owned());
    }
}

/// A counter that only increases, read by the metrics refresher.
pub fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}
