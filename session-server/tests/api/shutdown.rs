//! The real binary: configuration errors at start, and graceful shutdown on SIGTERM.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_session-server"));
    cmd.env_clear()
        .env("SESSION_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_bad_setting_stops_the_server_at_start_with_its_name() {
    let out = server()
        .env("SESSION_IDLE_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SESSION_IDLE_TIMEOUT") || err.contains("idle-timeout"),
        "{err}"
    );

    let out = server()
        .env("SESSION_ADMIN_API_KEYS", "plaintext-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SESSION_ADMIN_API_KEYS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_cleanly() {
    let public = free_addr();
    let mut child = server()
        .env("SESSION_PUBLIC_ADDR", &public)
        .env("SESSION_ADMIN_ADDR", free_addr())
        .env("SESSION_ARGON2_MEMORY_KIB", "65536")
        .env("SESSION_ARGON2_ITERATIONS", "6")
        .env("SESSION_WORKERS", "1")
        .env("SESSION_ARGON2_CONCURRENCY", "2")
        .spawn()
        .unwrap();
    let base = format!("http://{public}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Registrations hash a password: requests that take a while. Six at once with two hashing
    // slots: some are hashing, some wait in the queue when the signal arrives.
    let in_flight: Vec<_> = (0..6)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/v1/users");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": format!("user{i}"), "password": "a-password"}))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "new connections are refused once draining"
    );
    for request in in_flight {
        let response = request
            .await
            .unwrap()
            .expect("every in-flight request completes");
        assert_eq!(response.status(), 201);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no new connections after shutdown"
    );
}
