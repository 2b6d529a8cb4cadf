//! Logs and traces.
//!
//! Logs: a tracing subscriber writing text or JSON lines to stdout. Audit events are ordinary
//! events with target `audit` (filter them with `SESSION_LOG=audit=info`). They carry user ids
//! and session handles, never tokens, passwords or password hashes: those types do not print
//! their secrets even through `Debug`.
//!
//! Traces (`traces.rs`): with an OTLP endpoint configured, the same subscriber also exports spans
//! through OpenTelemetry: each request's span, continued from the caller's `traceparent`, and one
//! child span per Redis round trip. Without one, the subscriber is the logging one alone, and the
//! spans that exist only for traces are never created.

mod traces;

pub use traces::{
    REQUEST_TARGET, continue_remote_trace, in_traced_request, redis_span, trace_request,
    traces_exported,
};

use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogConfig, TraceConfig};

/// What outlives [`init`]: the trace exporter, flushed by [`Telemetry::shutdown`].
#[must_use = "dropping it ends trace export; call shutdown() at exit to flush the last spans"]
pub struct Telemetry {
    traces: Option<traces::Exporter>,
}

impl Telemetry {
    /// Sends the spans still buffered now, rather than at the exporter's next scheduled batch.
    pub fn flush(&self) {
        if let Some(exporter) = &self.traces {
            exporter.flush();
        }
    }

    /// Sends the spans still buffered and stops the exporter (bounded by its timeout).
    pub fn shutdown(self) {
        if let Some(exporter) = self.traces {
            exporter.shutdown();
        }
    }
}

/// Installs the global subscriber: logging, plus trace export when `traces` is given. A no-op
/// if a subscriber is already installed, as in tests that run servers in process.
pub fn init(logging: &LogConfig, traces: Option<&TraceConfig>) -> Telemetry {
    let filter = EnvFilter::try_new(&logging.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let Some(traces) = traces else {
        // The subscriber as it was before traces existed: one layer, one global filter, so that
        // a request costs the same as without the feature.
        let builder = fmt().with_env_filter(filter).with_target(true);
        let _ = if logging.json {
            builder.json().flatten_event(true).try_init()
        } else {
            builder.try_init()
        };
        return Telemetry { traces: None };
    };
    let exporter = match traces::Exporter::start(traces) {
        Ok(exporter) => exporter,
        Err(message) => {
            // Only a broken HTTP client gets here (the settings were validated at load).
            eprintln!("session-server: traces are not exported: {message}");
            return init(logging, None);
        }
    };
    // Each layer with its own filter: the log keeps `SESSION_LOG`, the exporter takes the
    // sampled requests' spans, the Redis spans (debug level) included.
    let log = fmt::layer().with_target(true);
    let log = if logging.json {
        log.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        log.with_filter(filter).boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(vec![log, exporter.layer()])
        .try_init();
    Telemetry {
        traces: Some(exporter),
    }
}
