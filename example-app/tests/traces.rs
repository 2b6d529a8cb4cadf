//! One trace from the example app's page, through session-client, into the session service and
//! down to its Redis round trips, as an OTLP receiver gets it: the app (its own process, with
//! OpenTelemetry's standard variables) and the service (in this process) both export to it.

#[allow(dead_code)]
mod support;

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::Duration,
};

use session_server::{
    config::{Config, LogConfig, RootSampler, SamplerChoice, TraceConfig},
    startup::Application,
    telemetry,
};
use support::{Process, service_settings, wait_for_port};
use test_support::{
    RedisServer, free_port,
    otlp::{OtlpReceiver, ReceivedSpan},
};

const KEY: &str = "example-app-trace-key";

/// Whether `span` descends from the span `ancestor` (by parent links within `spans`).
fn descends_from(
    spans: &HashMap<&str, &ReceivedSpan>,
    span: &ReceivedSpan,
    ancestor: &str,
) -> bool {
    let mut parent = span.parent_span_id.as_str();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.get(parent) {
            Some(p) => parent = &p.parent_span_id,
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_the_app_is_one_trace_down_to_the_services_redis_spans() {
    let redis = RedisServer::start();
    let receiver = OtlpReceiver::start();
    let service_telemetry = telemetry::init(
        &LogConfig {
            json: false,
            filter: "warn".into(),
        },
        Some(&TraceConfig {
            endpoint: receiver.endpoint(),
            service_name: "session-server".into(),
            sampler: SamplerChoice::ParentBased(RootSampler::AlwaysOn),
        }),
    );
    let app_port = free_port();
    let app = format!("http://127.0.0.1:{app_port}");
    let sessions = Application::build(
        Config::from_settings(service_settings(redis.url(), &app, KEY)).unwrap(),
    )
    .unwrap();
    let public = format!("http://127.0.0.1:{}", sessions.public_port());
    let admin = format!("http://127.0.0.1:{}", sessions.admin_port());
    tokio::spawn(sessions.run_until_stopped());
    let _app = Process(
        Command::new(env!("CARGO_BIN_EXE_example-app"))
            .env_clear()
            .env("APP_ADDR", format!("127.0.0.1:{app_port}"))
            .env("SESSION_PUBLIC_URL", &public)
            .env("SESSION_ADMIN_URL", &admin)
            .env("SESSION_API_KEY", KEY)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_SERVICE_NAME", "example-app")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(app_port, "the example app");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = serde_json::json!({"username": "alice", "password": "alice-password"});
    let r = client
        .post(format!("{public}/v1/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .post(format!("{app}/v1/login"))
        .header("Origin", &app)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .expect("a session cookie");
    let page = client
        .get(format!("{app}/devices"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Your devices"));
    // The service's spans ended before the page was answered.
    service_telemetry.flush();

    // The app's server span of the page, then everything in its trace.
    let page_span = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|s| s.service == "example-app" && s.kind == "server" && s.name == "GET /devices")
            .cloned()
    };
    let done = |spans: &[ReceivedSpan]| {
        page_span(spans).is_some_and(|page| {
            spans.iter().any(|s| {
                s.trace_id == page.trace_id
                    && s.service == "session-server"
                    && s.attribute("db.system.name") == Some("redis")
            })
        })
    };
    let spans = receiver.wait_for(Duration::from_secs(10), done);
    let page = page_span(&spans).expect("the app's span of GET /devices");
    let trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == page.trace_id)
        .collect();
    let by_id: HashMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();

    // The app's call to the service: a client span of the app's, under the page's span.
    let calls: Vec<_> = trace
        .iter()
        .filter(|s| s.service == "example-app" && s.kind == "client")
        .filter(|s| descends_from(&by_id, s, &page.span_id))
        .collect();
    assert!(!calls.is_empty(), "no client span of the app in {trace:#?}");

    // The service's check: its server span, a child of one of those calls.
    let check = trace
        .iter()
        .find(|s| {
            s.service == "session-server"
                && s.kind == "server"
                && s.name == "POST /admin/v1/sessions/check"
        })
        .unwrap_or_else(|| panic!("no check span of the service in {trace:#?}"));
    assert!(
        calls.iter().any(|c| c.span_id == check.parent_span_id),
        "the check's parent is not a call of the app: {trace:#?}"
    );

    // Its Redis round trips: children of the check's span.
    let redis_spans: Vec<_> = trace
        .iter()
        .filter(|s| s.service == "session-server" && s.attribute("db.system.name") == Some("redis"))
        .collect();
    assert!(
        redis_spans
            .iter()
            .any(|s| s.parent_span_id == check.span_id && s.kind == "client"),
        "no Redis span under the check: {trace:#?}"
    );
    for span in &redis_spans {
        let parent = by_id
            .get(span.parent_span_id.as_str())
            .expect("a parent in the trace");
        assert_eq!(parent.service, "session-server");
        assert_eq!(parent.kind, "server", "{span:#?}");
    }
    service_telemetry.shutdown();
}
