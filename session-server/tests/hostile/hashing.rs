//! Huge passwords never reach argon2: every endpoint that takes a password refuses one over the
//! limit before hashing, so a 100 KB password costs the server nothing but reading it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, RequestBuilder, header};
use serde_json::{Value, json};
use session_server::domain::password::Password;

use crate::helpers::{Backend, TestApp, error_code, spawn_app_with};

async fn timed(req: RequestBuilder) -> (Duration, u16, Option<String>) {
    let started = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    // The error code, or where a form is sent.
    let code = if status >= 400 {
        Some(error_code(r).await)
    } else {
        r.headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
    };
    (started.elapsed(), status, code)
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kb_password_is_refused_before_any_hashing() {
    // OWASP cost, one hashing slot and no queue: a request that reaches the hasher while the
    // slot is taken is refused with 503 `busy` at once. The body limit lets the passwords in.
    let app = spawn_app_with(Backend::Redis, |s| {
        s.argon2_memory_kib = Some(19_456);
        s.argon2_iterations = Some(2);
        s.argon2_parallelism = Some(1);
        s.argon2_concurrency = Some(1);
        s.argon2_queue = Some(0);
        s.max_body_bytes = Some(1 << 20);
        s.login_max_attempts_per_ip = Some(10_000);
        s.login_max_failures_per_user = Some(10_000);
    })
    .await;
    let alice = app.signed_in("alice").await;
    let alice_id: Value = app
        .admin(Method::GET, "/admin/v1/users?username=alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice_id = alice_id["id"].as_str().unwrap().to_owned();

    // What one argon2 verification costs here.
    let mut hash_times = Vec::new();
    for _ in 0..3 {
        let (t, status, _) = timed(
            app.public(Method::POST, "/v1/login")
                .json(&json!({"username": "alice", "password": "wrong-password"})),
        )
        .await;
        assert_eq!(status, 401);
        hash_times.push(t);
    }
    hash_times.sort();
    let hash_time = hash_times[1];

    // Keep the only hashing slot busy with the server's own hasher, back to back.
    let hasher = app.state.accounts.hasher().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let holder = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                let pw = Password::new_choice("slot-holder-password".into()).unwrap();
                let _ = hasher.hash(pw).await;
            }
        }
    });
    let busy_login = || {
        app.public(Method::POST, "/v1/login")
            .json(&json!({"username": "alice", "password": "alice-password"}))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, status, _) = timed(busy_login()).await;
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "the hashing slot never filled");
    }

    let big = "p".repeat(100 * 1024);
    let admin_password = format!("/admin/v1/users/{alice_id}/password");
    let requests: Vec<(&str, RequestBuilder)> = vec![
        (
            "login",
            app.public(Method::POST, "/v1/login")
                .json(&json!({"username": "alice", "password": big})),
        ),
        (
            "login of an unknown user",
            app.public(Method::POST, "/v1/login")
                .json(&json!({"username": "nobody", "password": big})),
        ),
        (
            "form login",
            app.public(Method::POST, "/v1/login")
                .form(&[("username", "alice"), ("password", big.as_str())]),
        ),
        (
            "registration",
            app.public(Method::POST, "/v1/users")
                .json(&json!({"username": "newcomer", "password": big})),
        ),
        (
            "password change, current",
            app.public(Method::POST, "/v1/password")
                .header(header::COOKIE, &alice.cookie)
                .json(&json!({"current_password": big, "new_password": "long-enough-password"})),
        ),
        (
            "password change, new",
            app.public(Method::POST, "/v1/password")
                .header(header::COOKIE, &alice.cookie)
                .json(&json!({"current_password": "alice-password", "new_password": big})),
        ),
        (
            "admin user creation",
            app.admin(Method::POST, "/admin/v1/users")
                .json(&json!({"username": "carol", "password": big})),
        ),
        (
            "admin password reset",
            app.admin(Method::PUT, &admin_password)
                .json(&json!({ "password": big })),
        ),
    ];
    let mut times = Vec::new();
    for (what, req) in requests {
        let (t, status, code) = timed(req).await;
        // Had it reached the hasher, it would be 503 busy (slot taken) or take a hash's time.
        if what == "form login" {
            let location = code.as_deref();
            assert_eq!(
                (status, location),
                (303, Some("/login?error=invalid_request"))
            );
        } else {
            assert_eq!(
                (status, code.as_deref()),
                (400, Some("invalid_request")),
                "{what}"
            );
        }
        times.push(t);
    }
    times.sort();
    let (typical, slowest) = (times[times.len() / 2], times[times.len() - 1]);
    eprintln!(
        "one argon2 verification: {hash_time:?}; 100 KB refusals: median {typical:?}, \
         slowest {slowest:?}"
    );
    assert!(
        typical < hash_time / 2,
        "refusals take {typical:?}, one hash {hash_time:?}"
    );
    assert!(
        slowest < hash_time,
        "a refusal took {slowest:?}, one hash {hash_time:?}"
    );
    // The slot was held all along.
    let (_, status, code) = timed(busy_login()).await;
    assert_eq!((status, code.as_deref()), (503, Some("busy")));
    stop.store(true, Ordering::Relaxed);
    holder.await.unwrap();

    let m = metrics(&app).await;
    assert_eq!(metric(&m, "session_argon2_queue_depth"), 0.0, "{m}");
    assert_eq!(metric(&m, "session_sessions_created_total"), 1.0, "{m}");
    // Alice's password was not changed by any of it.
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
}
