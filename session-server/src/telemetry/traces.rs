//! Trace export through OpenTelemetry (OTLP over HTTP/protobuf), configured by the standard
//! `OTEL_*` variables (see `config/traces.rs`).
//!
//! * The request span of `http/middleware.rs` is the server span. [`continue_remote_trace`]
//!   makes it a child of the caller's span when the request carries a W3C `traceparent`, as
//!   session-client sends it and as proxies pass it on from forward-auth.
//! * [`redis_span`]: one client span per Redis round trip, named after the script or command,
//!   with OpenTelemetry's database attributes. It never records keys or arguments: those hold
//!   token digests and password hashes.
//!
//! Only this service's own spans are exported (target `session_server`), with their events (the
//! access log line, audit events) as span events; those carry no secret, as in the logs.
//!
//! Why not tracing-actix-web's `TracingLogger`: the service already has its request span (request
//! id, access log, metrics by route; `http/middleware.rs`), and a second one per request would
//! cost every request; its root span also records the query string and the client-given user
//! agent. The parent is taken from `traceparent` the way its OpenTelemetry feature does it, with
//! OpenTelemetry's own W3C propagator.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::HeaderMap;
use opentelemetry::{
    global,
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry, filter::Targets};

use crate::config::{RootSampler, SamplerChoice, TraceConfig};

/// Set once the exporter runs: the request path then builds its span for traces.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn traces_exported() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The running exporter.
pub(super) struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    pub(super) fn start(config: &TraceConfig) -> Result<Exporter, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", config.endpoint))
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler(config.sampler))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(provider.clone());
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Exporter { provider })
    }

    /// The subscriber layer that turns the service's spans into OpenTelemetry spans.
    pub(super) fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        let tracer = self.provider.tracer("session-server");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target("session_server", Level::DEBUG))
            .boxed()
    }

    pub(super) fn flush(&self) {
        let provider = self.provider.clone();
        off_the_runtime(move || provider.force_flush());
    }

    pub(super) fn shutdown(self) {
        EXPORTING.store(false, Ordering::Relaxed);
        let provider = self.provider;
        off_the_runtime(move || provider.shutdown());
    }
}

/// Runs an exporter call on a thread of its own and waits for it: the exporter's blocking HTTP
/// client must not be driven (or dropped) from inside the async runtime of the caller.
fn off_the_runtime(
    call: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) {
    if let Ok(Err(e)) = std::thread::spawn(call).join() {
        eprintln!("session-server: spans were not exported: {e}");
    }
}

fn sampler(choice: SamplerChoice) -> Sampler {
    let root = |r: RootSampler| match r {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::Ratio(r) => Sampler::TraceIdRatioBased(r),
    };
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBased(r) => Sampler::ParentBased(Box::new(root(r))),
    }
}

/// actix-web's headers as OpenTelemetry's propagators read them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the caller's span named by the request's W3C `traceparent` (and
/// `tracestate`), when there is one. A malformed header is ignored: the trace starts here.
pub fn continue_remote_trace(span: &Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// The span of one Redis round trip (a command, a script, or a pipeline such as a script with
/// its `WAIT`); the caller records its operation. Disabled (and free) unless spans are exported
/// and there is a request span to hang it under: background work (the feed, the clock) would
/// otherwise start a trace per poll.
pub fn redis_span() -> Span {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    // The check `debug_span!` makes first, made here before the current span is looked up.
    if Level::DEBUG > STATIC_MAX_LEVEL
        || Level::DEBUG > LevelFilter::current()
        || Span::current().is_none()
    {
        return Span::none();
    }
    tracing::debug_span!(
        target: "session_server::redis",
        "redis",
        otel.name = tracing::field::Empty,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = "redis",
        db.operation.name = tracing::field::Empty,
        db.operation.batch.size = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}
