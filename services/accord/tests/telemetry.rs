//! Telemetry as an operator sees it: OTLP traces and metrics reach a collector, a request's
//! W3C trace context flows into the spans that handle it, and an event's traceparent flows
//! out of the projections that apply it; the Prometheus endpoint reports lag and appends.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord_events::TraceParent;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use support::*;

#[derive(Default)]
struct Collected {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

/// A minimal OTLP/HTTP collector (protobuf bodies), on a free port.
async fn collector() -> (String, Arc<Mutex<Collected>>) {
    let got = Arc::new(Mutex::new(Collected::default()));
    let (g1, g2) = (got.clone(), got.clone());
    let app = Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                g1.lock()
                    .unwrap()
                    .traces
                    .push(ExportTraceServiceRequest::decode(body).unwrap());
                ""
            }),
        )
        .route(
            "/v1/metrics",
            post(move |body: Bytes| async move {
                g2.lock()
                    .unwrap()
                    .metrics
                    .push(ExportMetricsServiceRequest::decode(body).unwrap());
                ""
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn spans(c: &Collected) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    c.traces
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter().cloned())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_metrics_reach_an_otlp_collector() {
    let (otlp, got) = collector().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let dev = Dev::start(
        &dir,
        &[],
        &[
            ("ACCORD_TELEMETRY__OTLP_ENDPOINT", &otlp),
            ("ACCORD_TELEMETRY__OTLP_INTERVAL_MS", "500"),
            // the span exporter's batch delay (OpenTelemetry SDK environment)
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    dev.wait_ready(Duration::from_secs(30)).await;

    // a request with a trace context
    let request_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let request_parent = "00f067aa0ba902b7";
    let r = dev
        .client()
        .get(format!("{}/v1/projections", dev.http()))
        .header(
            "traceparent",
            format!("00-{request_trace}-{request_parent}-01"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // an event written under a trace context
    let event_trace = "0af7651916cd43dd8448eb211c80319c";
    let event_parent = "b7ad6b7169203331";
    let events = store(&dir, None).await;
    let mut m = meta();
    m.traceparent =
        Some(TraceParent::parse(&format!("00-{event_trace}-{event_parent}-01")).unwrap());
    let agent = accord_events::AgentId::new_v7();
    let id = accord_events::AggregateId::parse(&agent.to_string()).unwrap();
    let stored = events
        .append(
            accord_events::AggregateKind::Agent,
            &id,
            accord_store::Version::EMPTY,
            &m,
            vec![accord_events::Event::AgentSuspended(
                accord_events::catalogue::AgentSuspended {
                    reason: "traced".into(),
                },
            )],
        )
        .await
        .unwrap();
    let seq = stored.version.stream_seq;
    let (_, _) = dev
        .get(&format!("/v1/projections/registry/digest?min_seq={seq}"))
        .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (http_ok, projection_ok, metrics_ok) = {
            let c = got.lock().unwrap();
            let spans = spans(&c);
            let http_ok = spans.iter().any(|s| {
                s.name == "http.request"
                    && hex(&s.trace_id) == request_trace
                    && hex(&s.parent_span_id) == request_parent
            });
            // every projection that applied the event continues its trace
            let projection_ok = spans
                .iter()
                .filter(|s| {
                    s.name == "projection.apply"
                        && hex(&s.trace_id) == event_trace
                        && hex(&s.parent_span_id) == event_parent
                })
                .count()
                >= 5;
            let metrics_ok = c.metrics.iter().any(|r| {
                r.resource_metrics
                    .iter()
                    .flat_map(|m| m.scope_metrics.iter())
                    .flat_map(|s| s.metrics.iter())
                    .any(|m| m.name == "accord.projection.applied_sequence")
            });
            (http_ok, projection_ok, metrics_ok)
        };
        if http_ok && projection_ok && metrics_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "collector saw http={http_ok} projection={projection_ok} metrics={metrics_ok}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // and the Prometheus endpoint reports the same facts
    let text = dev
        .client()
        .get(format!("{}/metrics", dev.http()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "accord_projection_applied_sequence{projection=\"registry\"}",
        "accord_projection_lag_events{projection=\"registry\"}",
        "accord_log_last_sequence",
        "accord_appends{outcome=\"stored\"}",
        "accord_audit_tree_size",
        "accord_audit_lag_events",
        "accord_audit_uncovered_events",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    drop(dev);
}
