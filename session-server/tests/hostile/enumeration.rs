//! No user enumeration through login: an unknown username, a wrong password and a disabled
//! account answer with the same status and bytes, after the same argon2 work (so in the same
//! time), and are throttled alike.

use std::time::{Duration, Instant};

use reqwest::{Method, header};
use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app_with};

/// One login; returns how long it took and what came back.
async fn timed_login(app: &TestApp, user: &str, password: &str) -> (Duration, u16, Vec<u8>) {
    let started = Instant::now();
    let r = app.login(user, password).await;
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap().to_vec();
    (started.elapsed(), status, body)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Whether two medians are alike: within a factor of 2 of each other, or within 15 ms.
fn alike(a: Duration, b: Duration) -> bool {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    hi <= lo * 2 || hi - lo <= Duration::from_millis(15)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_time_does_not_tell_unknown_users_wrong_passwords_and_disabled_accounts_apart() {
    const SAMPLES: usize = 20;
    let started = Instant::now();
    // The real OWASP parameters, one hash at a time, no throttling in the way.
    let app = spawn_app_with(Backend::Redis, |s| {
        s.argon2_memory_kib = Some(19_456);
        s.argon2_iterations = Some(2);
        s.argon2_parallelism = Some(1);
        s.argon2_concurrency = Some(1);
        s.login_max_failures_per_user = Some(10_000);
        s.login_max_attempts_per_ip = Some(10_000);
    })
    .await;
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);
    assert_eq!(app.register("dave", "dave-password").await.status(), 201);
    let dave: serde_json::Value = app
        .admin(Method::GET, "/admin/v1/users?username=dave")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/v1/users/{}/disable", dave["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // What a login costs without any hashing: refused before argon2 (password too long).
    let mut refused = Vec::new();
    for _ in 0..5 {
        let (t, status, _) = timed_login(&app, "alice", &"p".repeat(129)).await;
        assert_eq!(status, 400);
        refused.push(t);
    }
    let refused = median(refused);

    let classes: [(&str, &str); 3] = [
        ("nobody", "nobody-password"),
        ("alice", "wrong-password"),
        ("dave", "dave-password"),
    ];
    for (user, password) in classes {
        timed_login(&app, user, password).await;
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut answers = Vec::new();
    for round in 0..SAMPLES {
        // Interleaved, in a rotating order, so drift in machine speed hits every class alike.
        for k in 0..3 {
            let class = (round + k) % 3;
            let (user, password) = classes[class];
            let user = if class == 0 {
                format!("{user}{round}")
            } else {
                user.to_owned()
            };
            let (t, status, body) = timed_login(&app, &user, password).await;
            times[class].push(t);
            answers.push((status, body));
        }
    }
    assert!(answers.iter().all(|a| a.0 == 401 && *a == answers[0]));
    let [unknown, wrong, disabled] = times.map(median);
    eprintln!(
        "median login time: unknown {unknown:?}, wrong password {wrong:?}, disabled {disabled:?}, \
         refused before hashing {refused:?}"
    );
    assert!(
        alike(unknown, wrong),
        "unknown {unknown:?} vs wrong password {wrong:?}"
    );
    assert!(
        alike(disabled, wrong),
        "disabled {disabled:?} vs wrong password {wrong:?}"
    );
    // Each of them paid for a full argon2 verification.
    for (what, t) in [
        ("unknown", unknown),
        ("wrong", wrong),
        ("disabled", disabled),
    ] {
        assert!(
            t > refused * 3,
            "{what}: {t:?} is no slower than no hashing ({refused:?})"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(90));
}

async fn form_logins_fail_alike_for_unknown_users_and_wrong_passwords(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);
    let mut seen = Vec::new();
    for (user, password) in [("nobody", "nobody-password"), ("alice", "wrong-password")] {
        let r = app
            .public(Method::POST, "/v1/login")
            .form(&[
                ("username", user),
                ("password", password),
                ("return_to", "/home"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        seen.push(r.headers()[header::LOCATION].to_str().unwrap().to_owned());
    }
    assert_eq!(seen[0], "/login?error=invalid_credentials");
    assert_eq!(seen[0], seen[1]);
}
crate::memory_and_redis!(form_logins_fail_alike_for_unknown_users_and_wrong_passwords);

async fn throttling_treats_unknown_and_existing_usernames_alike(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_max_failures_per_user = Some(3);
        s.login_window = Some("30".parse().unwrap());
    })
    .await;
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);
    let mut trail = Vec::new();
    for (user, password) in [("nobody", "nobody-password"), ("alice", "wrong-password")] {
        let mut answers = Vec::new();
        for _ in 0..5 {
            let r = app.login(user, password).await;
            let status = r.status().as_u16();
            let retry = r.headers().contains_key(header::RETRY_AFTER);
            answers.push((status, retry, r.bytes().await.unwrap()));
        }
        trail.push(answers);
    }
    // The same answers in the same order: three failures, then throttled, whether or not the
    // account exists (counting only existing accounts would reveal which ones do).
    let statuses: Vec<u16> = trail[0].iter().map(|a| a.0).collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    assert_eq!(trail[0], trail[1]);
    let r = app
        .public(Method::POST, "/v1/login")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the real password also waits out the window"
    );
}
crate::memory_and_redis!(throttling_treats_unknown_and_existing_usernames_alike);
