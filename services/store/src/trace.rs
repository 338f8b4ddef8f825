//! W3C trace context across the log: the `traceparent` an envelope carries becomes the remote
//! parent of the span that projects the event, so a request's trace continues into every read
//! model it changed.

use accord_events::TraceParent;

/// Makes `span` a child of the remote span `tp` names (with the `otel` feature; otherwise the
/// traceparent is only recorded as a field).
pub fn set_remote_parent(span: &tracing::Span, tp: &TraceParent) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let (Ok(trace_id), Ok(span_id)) = (
            TraceId::from_hex(tp.trace_id()),
            SpanId::from_hex(tp.span_id()),
        ) else {
            return;
        };
        let flags = if tp.as_str().ends_with("01") {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, tp);
}

/// The `traceparent` of the current span, when OpenTelemetry is tracing it.
pub fn current_traceparent() -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let flags = if sc.is_sampled() { "01" } else { "00" };
        TraceParent::parse(&format!("00-{}-{}-{flags}", sc.trace_id(), sc.span_id())).ok()
    }
    #[cfg(not(feature = "otel"))]
    None
}
