//! An OTLP/HTTP trace receiver on a free loopback port, for tests of exported spans.
//!
//! The OpenTelemetry Collector is a Go program that none of the registries reachable from the
//! test machine carry, so the tests receive spans themselves: `POST /v1/traces` bodies are decoded
//! with the official protocol definitions (`opentelemetry-proto`), exactly what a Collector's
//! OTLP/HTTP receiver accepts.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use prost::Message;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    /// Attributes, their values as text.
    pub attributes: BTreeMap<String, String>,
    /// Events: their names and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// The status: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
}

impl ReceivedSpan {
    /// An attribute's value, if it has one.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Every request body as it came, for scans that must not depend on decoding.
    bodies: Vec<Vec<u8>>,
    /// Requests that were not a decodable `POST /v1/traces`.
    rejected: Vec<String>,
}

/// The receiver; stops on drop.
pub struct OtlpReceiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    pub fn start() -> OtlpReceiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("OTLP receiver binds"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let thread = {
            let (server, received) = (Arc::clone(&server), Arc::clone(&received));
            std::thread::spawn(move || serve(&server, &received))
        };
        OtlpReceiver {
            port,
            received,
            server,
            thread: Some(thread),
        }
    }

    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Every request body received so far, undecoded.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.lock().bodies.clone()
    }

    /// Requests that were not a valid export (wrong path, method, content type or body).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// Waits until `done` holds for the spans received, up to `limit`; returns them either way
    /// (the caller's assertions then say what is missing).
    pub fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &tiny_http::Server, received: &Mutex<Received>) {
    while let Ok(mut request) = server.recv() {
        let mut body = Vec::new();
        let read = request.as_reader().read_to_end(&mut body);
        let is_protobuf = request
            .headers()
            .iter()
            .any(|h| h.field.equiv("Content-Type") && h.value.as_str() == "application/x-protobuf");
        let decoded = (read.is_ok()
            && *request.method() == tiny_http::Method::Post
            && request.url() == "/v1/traces"
            && is_protobuf)
            .then(|| ExportTraceServiceRequest::decode(&body[..]).ok())
            .flatten();
        let status = {
            let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
            match decoded {
                Some(export) => {
                    received.spans.extend(spans_of(export));
                    received.bodies.push(body);
                    200
                }
                None => {
                    received
                        .rejected
                        .push(format!("{} {}", request.method(), request.url()));
                    400
                }
            }
        };
        // An empty `ExportTraceServiceResponse` encodes as an empty body.
        let response = tiny_http::Response::empty(status).with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/x-protobuf")
                .expect("a valid header"),
        );
        let _ = request.respond(response);
    }
}

fn spans_of(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: match span.kind {
                        1 => "internal",
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "unspecified",
                    },
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| (e.name, attributes(&e.attributes)))
                        .collect(),
                    status_code: span.status.map_or(0, |s| s.code),
                });
            }
        }
    }
    out
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or_else(String::new, text),
            )
        })
        .collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::ArrayValue(a)) => a.values.iter().map(text).collect::<Vec<_>>().join(","),
        Some(Value::KvlistValue(l)) => format!("{:?}", attributes(&l.values)),
        Some(_) | None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
