//! Logs, and traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: what a sibling service of
//! session-server would do to follow a request from its own pages into the session service.
//!
//! Every request gets a server span (tracing-actix-web's `TracingLogger`, continued from an
//! incoming `traceparent`); session-client's calls are client spans under it and send their
//! `traceparent` (its `opentelemetry` feature), so the service's spans join the same trace. The
//! exporter and sampler follow OpenTelemetry's standard variables, read by the SDK:
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME` (default `example-app`),
//! `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// The trace exporter, if one runs; [`shutdown`] flushes it.
pub struct Telemetry(Option<SdkTracerProvider>);

/// Installs logging at `info`, with trace export when an endpoint is configured.
pub fn init() -> Telemetry {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    let logs = tracing_subscriber::fmt::layer();
    let registry = tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(logs);
    if endpoint.trim().is_empty() {
        registry.init();
        return Telemetry(None);
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            registry.init();
            tracing::warn!(error = %e, "traces are not exported");
            return Telemetry(None);
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "example-app".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    registry
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("example-app")))
        .init();
    Telemetry(Some(provider))
}

impl Telemetry {
    /// Sends the spans still buffered (on a thread of its own: the exporter's HTTP client is a
    /// blocking one, not to be driven from inside the async runtime).
    pub fn shutdown(self) {
        if let Some(provider) = self.0 {
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}
