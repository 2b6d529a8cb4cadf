//! Trace export over OTLP, from the real binary to a receiver that decodes what a Collector
//! would: a request continues its caller's trace (`traceparent`), its Redis round trips are child
//! spans named after their script or command, the caller's sampling decision is followed, and
//! bad `OTEL_*` values stop the server at start.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Client, header};
use serde_json::json;
use test_support::otlp::{OtlpReceiver, ReceivedSpan};

use sha2::{Digest, Sha256};

use crate::helpers::{API_KEY, ORIGIN, RedisServer, session_cookie};

/// Spans are exported every 100 ms (`OTEL_BSP_SCHEDULE_DELAY`); this bounds the wait for them.
const EXPORT_WAIT: Duration = Duration::from_secs(10);

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The server process, killed when the test ends.
struct Server {
    child: Child,
    public: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(redis: &RedisServer, receiver: &OtlpReceiver, extra: &[(&str, &str)]) -> Server {
    let (public, admin) = (free_addr(), free_addr());
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-server"));
    command
        .env_clear()
        .env("REDIS_URL", redis.url())
        .env("SESSION_PUBLIC_ADDR", &public)
        .env("SESSION_ADMIN_ADDR", &admin)
        .env(
            "SESSION_ADMIN_API_KEYS",
            hex::encode(Sha256::digest(API_KEY)),
        )
        .env("SESSION_LOG", "warn")
        .env("SESSION_ALLOWED_ORIGINS", ORIGIN)
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .env("SESSION_WORKERS", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server {
        child: command.spawn().unwrap(),
        public: format!("http://{public}"),
        admin: format!("http://{admin}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{}/readyz", server.public))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

/// Registers and logs in `user`; returns the session cookie.
async fn login(client: &Client, base: &str, user: &str) -> String {
    let body = json!({"username": user, "password": "a-long-password"});
    for path in ["/v1/users", "/v1/login"] {
        let r = client
            .post(format!("{base}{path}"))
            .header(header::ORIGIN, ORIGIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        if path == "/v1/login" {
            return session_cookie(&r).expect("a session cookie");
        }
    }
    unreachable!()
}

fn traceparent(trace_id: &str, parent: &str, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{parent}-{}",
        if sampled { "01" } else { "00" }
    )
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

/// Waits for the trace's server span and for a span of it that `also` picks. The server span
/// ends after its Redis spans, so it may come in a later batch than they do. Returns every span
/// received and the server span.
fn wait_for_server_span(
    receiver: &OtlpReceiver,
    trace_id: &str,
    also: impl Fn(&ReceivedSpan) -> bool,
) -> (Vec<ReceivedSpan>, ReceivedSpan) {
    let spans = receiver.wait_for(EXPORT_WAIT, |spans| {
        let trace = in_trace(spans, trace_id);
        trace.iter().any(|s| s.kind == "server") && trace.iter().any(|s| also(s))
    });
    let trace = in_trace(&spans, trace_id);
    let server = (*trace
        .iter()
        .find(|s| s.kind == "server")
        .unwrap_or_else(|| panic!("no server span in {trace:#?}")))
    .clone();
    (spans, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_continues_the_callers_trace_down_to_redis() {
    let redis = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let server = start(
        &redis,
        &receiver,
        &[("OTEL_SERVICE_NAME", "sessions-under-test")],
    )
    .await;
    let client = Client::new();
    let cookie = login(&client, &server.public, "trace-user").await;

    let (trace_id, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = client
        .get(format!("{}/v1/session", server.public))
        .header(header::COOKIE, &cookie)
        .header("traceparent", traceparent(trace_id, caller, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (spans, server_span) = wait_for_server_span(&receiver, trace_id, |s| s.kind == "client");
    let trace = in_trace(&spans, trace_id);
    assert_eq!(server_span.name, "GET /v1/session");
    assert_eq!(
        server_span.parent_span_id, caller,
        "a child of the caller's span"
    );
    assert_eq!(server_span.service, "sessions-under-test");
    assert_eq!(server_span.attribute("http.request.method"), Some("GET"));
    assert_eq!(server_span.attribute("http.route"), Some("/v1/session"));
    assert_eq!(
        server_span.attribute("http.response.status_code"),
        Some("200")
    );
    assert_eq!(server_span.attribute("url.path"), Some("/v1/session"));

    // The check is one HMGET of the session's record and data, a child of the server span.
    let redis_spans: Vec<_> = trace.iter().filter(|s| s.kind == "client").collect();
    assert!(!redis_spans.is_empty());
    for span in &redis_spans {
        assert_eq!(span.parent_span_id, server_span.span_id, "{span:#?}");
        assert_eq!(span.attribute("db.system.name"), Some("redis"));
        assert_eq!(span.status_code, 0, "{span:#?}");
    }
    assert!(
        redis_spans
            .iter()
            .any(|s| s.name == "HMGET" && s.attribute("db.operation.name") == Some("HMGET")),
        "{redis_spans:#?}"
    );

    // A login without a caller starts a trace of its own; its scripts are named by script.
    let login_span = spans
        .iter()
        .find(|s| s.kind == "server" && s.name == "POST /v1/login")
        .expect("the login's server span");
    assert!(login_span.parent_span_id.is_empty(), "a root span");
    // Its log lines are its events: the audit event of the login among them.
    assert!(
        login_span
            .events
            .iter()
            .any(|(_, fields)| fields.get("event").map(String::as_str) == Some("login")),
        "{login_span:#?}"
    );
    let scripts: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id == login_span.span_id)
        .filter_map(|s| s.attribute("db.operation.name"))
        .collect();
    assert!(scripts.contains(&"create"), "{scripts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_sampling_decision_is_followed() {
    let redis = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let server = start(&redis, &receiver, &[]).await;
    let client = Client::new();
    let cookie = login(&client, &server.public, "sampled-user").await;

    // First a request its caller did not sample, then one it did: once the second one's spans
    // are in, the first one's would be too (they ended earlier, in the same or an earlier batch).
    let (unsampled, sampled) = (
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
    );
    for (trace_id, is_sampled) in [(unsampled, false), (sampled, true)] {
        let r = client
            .get(format!("{}/v1/session", server.public))
            .header(header::COOKIE, &cookie)
            .header(
                "traceparent",
                traceparent(trace_id, "00f067aa0ba902b7", is_sampled),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let spans = receiver.wait_for(EXPORT_WAIT, |spans| {
        in_trace(spans, sampled).iter().any(|s| s.kind == "client")
    });
    assert!(!in_trace(&spans, sampled).is_empty());
    assert!(in_trace(&spans, unsampled).is_empty(), "{spans:#?}");
}

#[test]
fn bad_otel_variables_stop_the_server_at_start_with_their_name() {
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318",
        ),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_session-server"))
            .env_clear()
            .env("SESSION_LOG", "warn")
            .env("SESSION_PUBLIC_ADDR", free_addr())
            .env("SESSION_ADMIN_ADDR", free_addr())
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_continues_the_proxys_trace() {
    let redis = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let forward_auth = free_addr();
    let server = start(
        &redis,
        &receiver,
        &[("SESSION_FORWARD_AUTH_ADDR", forward_auth.as_str())],
    )
    .await;
    let client = Client::new();
    let cookie = login(&client, &server.public, "proxied-user").await;

    // What nginx's auth_request and Caddy's forward_auth send: the original request's headers,
    // its `traceparent` among them (the proxy's span, when the proxy traces).
    let (trace_id, proxy) = ("5af7183fb1d4cf5f0b8f1e1a1e0c9d3b", "b9c7c989f97918e1");
    let r = client
        .get(format!("http://{forward_auth}/forward-auth"))
        .header(header::COOKIE, &cookie)
        .header("traceparent", traceparent(trace_id, proxy, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (spans, check) = wait_for_server_span(&receiver, trace_id, |s| s.kind == "client");
    let trace = in_trace(&spans, trace_id);
    assert_eq!(check.name, "GET /forward-auth");
    assert_eq!(check.parent_span_id, proxy);
    assert!(
        trace
            .iter()
            .any(|s| s.kind == "client" && s.parent_span_id == check.span_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_action_is_traced_down_to_redis() {
    let redis = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let server = start(&redis, &receiver, &[]).await;
    let client = Client::new();
    login(&client, &server.public, "revoked-user").await;
    let user: serde_json::Value = client
        .get(format!(
            "{}/admin/v1/users?username=revoked-user",
            server.admin
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["id"].as_str().expect("the user's id").to_owned();

    // An admin action runs inside its audit span (key id, client address), which is not
    // exported: its Redis round trips are still children of the request's server span.
    let (trace_id, caller) = ("6e0c63257de34c926f9efcd03927272e", "1122334455667788");
    let r = client
        .delete(format!("{}/admin/v1/users/{id}/sessions", server.admin))
        .bearer_auth(API_KEY)
        .header("traceparent", traceparent(trace_id, caller, true))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (spans, request) = wait_for_server_span(&receiver, trace_id, |s| {
        s.attribute("db.operation.name") == Some("revoke_all")
    });
    let trace = in_trace(&spans, trace_id);
    assert_eq!(request.parent_span_id, caller);
    let revoke = trace
        .iter()
        .find(|s| s.attribute("db.operation.name") == Some("revoke_all"))
        .unwrap_or_else(|| panic!("no revoke_all span in {trace:#?}"));
    assert_eq!(revoke.parent_span_id, request.span_id);
    // With no replica to wait for, the script goes alone; the audit event is the request's.
    assert!(
        request
            .events
            .iter()
            .any(|(_, f)| f.get("event").map(String::as_str) == Some("sessions_revoked_all")),
        "{request:#?}"
    );
}
