//! Trace export through OpenTelemetry (OTLP over HTTP/protobuf), configured by the standard
//! `OTEL_*` variables (see `config/traces.rs`).
//!
//! * The request span of `http/middleware.rs` is the server span. [`trace_request`] decides
//!   whether a request is sampled, from its W3C `traceparent` (as session-client sends it and as
//!   proxies pass it on to forward-auth) and the configured sampler, before any span exists: an
//!   unsampled request gets the plain request span of the log, which the exporter's layer
//!   filters out by its target, so that it costs next to nothing. A sampled one gets the server
//!   span, a child of the caller's span ([`REQUEST_TARGET`]).
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

use std::sync::OnceLock;

use actix_web::http::header::HeaderMap;
use opentelemetry::{
    Context, global,
    propagation::{Extractor, TextMapPropagator},
    trace::{SpanKind, TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SamplingDecision, SdkTracerProvider, ShouldSample},
};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry, filter::filter_fn};

use crate::config::{RootSampler, SamplerChoice, TraceConfig};

/// The target of a sampled request's span: the only request spans the exporter sees.
pub const REQUEST_TARGET: &str = "session_server::traced";
/// The target of the Redis spans.
const REDIS_TARGET: &str = "session_server::redis";

/// The sampler, set once the exporter runs; unset, nothing is traced.
static SAMPLER: OnceLock<SamplerChoice> = OnceLock::new();

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn traces_exported() -> bool {
    SAMPLER.get().is_some()
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
            // Sampling is decided per request, before its span exists (`trace_request`); what
            // reaches the SDK is to be recorded, the Redis spans under it included.
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(provider.clone());
        let _ = SAMPLER.set(config.sampler);
        Ok(Exporter { provider })
    }

    /// The subscriber layer that turns the sampled requests' spans into OpenTelemetry spans,
    /// with their events (the access log line, audit events) as span events.
    pub(super) fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        let tracer = self.provider.tracer("session-server");
        // By callsite, so decided once per callsite: the spans of sampled requests and their
        // Redis spans; the service's events and the audit events.
        let exported = filter_fn(|meta| {
            if meta.is_span() {
                meta.target() == REQUEST_TARGET || meta.target() == REDIS_TARGET
            } else {
                meta.target().starts_with("session_server") || meta.target() == "audit"
            }
        });
        // Measured per check (bench/traces.sh): the layer's defaults time every enter and exit
        // of a span (busy/idle attributes), activate an OpenTelemetry context on each (nothing
        // here reads it: children find their parent through tracing) and add thread and source
        // location attributes to every span. Off, they cost nothing; the trace is the same.
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(exported)
            .boxed()
    }

    pub(super) fn flush(&self) {
        let provider = self.provider.clone();
        off_the_runtime(move || provider.force_flush());
    }

    pub(super) fn shutdown(self) {
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

/// Whether this request is traced, by the configured sampler and the caller's W3C `traceparent`
/// (and `tracestate`): `Some` with the caller's context (empty when the trace starts here), or
/// `None`. A malformed `traceparent` is ignored: the trace starts here.
pub fn trace_request(headers: &HeaderMap) -> Option<Context> {
    decide(*SAMPLER.get()?, headers)
}

fn decide(choice: SamplerChoice, headers: &HeaderMap) -> Option<Context> {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let remote = parent.span().span_context().clone();
    let by_ratio = |ratio: f64| {
        if remote.is_valid() {
            // By the trace id, as every service of the trace decides it.
            let decision = Sampler::TraceIdRatioBased(ratio)
                .should_sample(None, remote.trace_id(), "", &SpanKind::Server, &[], &[])
                .decision;
            decision == SamplingDecision::RecordAndSample
        } else {
            rand::random::<f64>() < ratio
        }
    };
    let sampled = match choice {
        SamplerChoice::AlwaysOn => true,
        SamplerChoice::AlwaysOff => false,
        SamplerChoice::Ratio(ratio) => by_ratio(ratio),
        SamplerChoice::ParentBased(_) if remote.is_valid() => remote.is_sampled(),
        SamplerChoice::ParentBased(RootSampler::AlwaysOn) => true,
        SamplerChoice::ParentBased(RootSampler::AlwaysOff) => false,
        SamplerChoice::ParentBased(RootSampler::Ratio(ratio)) => by_ratio(ratio),
    };
    sampled.then_some(parent)
}

/// Makes `span` a child of the caller's span (`parent`, from [`trace_request`]).
pub fn continue_remote_trace(span: &Span, parent: Context) {
    let _ = span.set_parent(parent);
}

tokio::task_local! {
    /// Set for the work of a sampled request (see [`in_traced_request`]).
    static TRACED_REQUEST: ();
}

/// Runs a sampled request's work so that its Redis round trips make spans: under its server
/// span, or under whatever span of the service's own it runs in (an admin action's audit span,
/// say), which the exporter skips when it finds the parent.
pub async fn in_traced_request<F: Future>(work: F) -> F::Output {
    TRACED_REQUEST.scope((), work).await
}

/// The span of one Redis round trip (a command, a script, or a pipeline such as a script with
/// its `WAIT`); the caller records its operation. Disabled (and free) outside a sampled
/// request's work: background work (the feed, the clock) belongs to no request.
pub fn redis_span() -> Span {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    // The check `debug_span!` makes first, made here before the task's state is looked up.
    if Level::DEBUG > STATIC_MAX_LEVEL
        || Level::DEBUG > LevelFilter::current()
        || TRACED_REQUEST.try_with(|_| ()).is_err()
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

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn headers(traceparent: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = traceparent {
            headers.insert(
                HeaderName::from_static("traceparent"),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn sampled_parent(flag: &str) -> HeaderMap {
        headers(Some(&format!("00-{TRACE}-00f067aa0ba902b7-{flag}")))
    }

    fn traced(choice: SamplerChoice, headers: &HeaderMap) -> bool {
        decide(choice, headers).is_some()
    }

    #[test]
    fn parent_based_samplers_follow_the_caller() {
        for root in [
            RootSampler::AlwaysOn,
            RootSampler::AlwaysOff,
            RootSampler::Ratio(0.5),
        ] {
            let choice = SamplerChoice::ParentBased(root);
            assert!(traced(choice, &sampled_parent("01")), "{root:?}");
            assert!(!traced(choice, &sampled_parent("00")), "{root:?}");
        }
        let on = SamplerChoice::ParentBased(RootSampler::AlwaysOn);
        let parent = decide(on, &sampled_parent("01")).unwrap();
        assert_eq!(parent.span().span_context().trace_id().to_string(), TRACE);
    }

    #[test]
    fn without_a_caller_the_root_sampler_decides() {
        let none = headers(None);
        assert!(traced(
            SamplerChoice::ParentBased(RootSampler::AlwaysOn),
            &none
        ));
        assert!(!traced(
            SamplerChoice::ParentBased(RootSampler::AlwaysOff),
            &none
        ));
        assert!(!traced(
            SamplerChoice::ParentBased(RootSampler::Ratio(0.0)),
            &none
        ));
        assert!(traced(
            SamplerChoice::ParentBased(RootSampler::Ratio(1.0)),
            &none
        ));
        let kept = (0..2000)
            .filter(|_| traced(SamplerChoice::ParentBased(RootSampler::Ratio(0.25)), &none))
            .count();
        assert!((350..650).contains(&kept), "{kept} of 2000 kept at 25%");
        // A malformed traceparent is no caller: the trace starts here.
        let bad = headers(Some("00-not-a-trace-01"));
        assert!(traced(
            SamplerChoice::ParentBased(RootSampler::AlwaysOn),
            &bad
        ));
        assert!(!traced(
            SamplerChoice::ParentBased(RootSampler::AlwaysOff),
            &bad
        ));
    }

    #[test]
    fn samplers_that_are_not_parent_based_ignore_the_callers_flag() {
        assert!(traced(SamplerChoice::AlwaysOn, &sampled_parent("00")));
        assert!(!traced(SamplerChoice::AlwaysOff, &sampled_parent("01")));
        assert!(traced(SamplerChoice::Ratio(1.0), &sampled_parent("00")));
        assert!(!traced(SamplerChoice::Ratio(0.0), &sampled_parent("01")));
        // By the trace id: the same answer every time for the same trace.
        let first = traced(SamplerChoice::Ratio(0.5), &sampled_parent("01"));
        for _ in 0..20 {
            assert_eq!(
                traced(SamplerChoice::Ratio(0.5), &sampled_parent("01")),
                first
            );
        }
    }
}
