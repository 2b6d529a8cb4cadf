//! Faults injected into real processes while the service runs: Redis restarted from its AOF,
//! Redis out of memory, Redis stalled with more requests than pooled connections, and a replica
//! killed behind a real load balancer.

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, header};

use crate::helpers::{Browser, RedisServer, spawn_app_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_acknowledged_a_second_before_a_redis_crash_survive_an_aof_restart() {
    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let app = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let mut kept = Vec::new();
    for i in 0..10 {
        kept.push(app.signed_in(&format!("user{i}")).await);
    }
    let revoked = app.signed_in("mallory").await;
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &revoked.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // appendfsync everysec: what was acknowledged more than a second ago is on disk.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    redis.kill(); // SIGKILL: no shutdown save, only the AOF
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.whoami(&kept[0]).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "service did not recover after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for browser in &kept {
        assert_eq!(
            app.whoami(browser).await.status(),
            200,
            "acknowledged session survived"
        );
    }
    assert_eq!(
        app.whoami(&revoked).await.status(),
        401,
        "a logout is not undone by the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_new_sessions_but_checks_and_logouts_keep_working() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let app = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    // Fill it: lower maxmemory below what Redis already holds (deterministic, unlike filling
    // with data, where a closing connection frees enough for the next write).
    let info = redis.command(&["INFO", "memory"]).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limit = (used - used / 4).to_string();
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "maxmemory", &limit])
            .unwrap()
            .trim(),
        "+OK"
    );
    let refused = redis.command(&["SET", "filler", "x"]).unwrap();
    assert!(refused.starts_with("-OOM"), "Redis is full: {refused}");

    let r = app.login("alice", "alice-password").await;
    assert_eq!(r.status(), 503);
    assert!(
        crate::helpers::set_cookie_header(&r).is_none(),
        "no cookie for a session never stored"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "store_full");
    assert!(body["message"].as_str().unwrap().contains("full"));

    assert_eq!(
        app.whoami(&alice).await.status(),
        200,
        "existing sessions are still checked"
    );
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &bob.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "logout (a removal) works on a full Redis");
    assert_eq!(app.whoami(&bob).await.status(), 401);
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.public))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    redis.command(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    assert_eq!(
        app.register("carol", "carol-password").await.status(),
        201,
        "writes resume once there is room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_under_many_concurrent_requests_ends_in_503s_not_a_deadlock() {
    let redis = RedisServer::start();
    let app = Arc::new(
        spawn_app_on(Some(redis.clone()), |s| {
            s.redis_timeout = Some("0.3".parse().unwrap());
        })
        .await,
    );
    let browser = app.signed_in("alice").await;
    let burst = |browser: Browser| {
        let app = app.clone();
        async move {
            let calls = (0..100).map(|_| {
                let app = app.clone();
                let browser = browser.clone();
                async move { app.whoami(&browser).await.status().as_u16() }
            });
            futures_util::future::join_all(calls).await
        }
    };
    let healthy = burst(browser.clone()).await;
    assert!(
        healthy.iter().all(|s| *s == 200),
        "100 concurrent checks over 2 connections: {healthy:?}"
    );

    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "1500", "ALL"])
            .unwrap()
            .trim(),
        "+OK"
    );
    let started = Instant::now();
    let stalled = burst(browser.clone()).await;
    let took = started.elapsed();
    assert!(
        stalled.iter().all(|s| *s == 503 || *s == 200),
        "{stalled:?}"
    );
    assert!(stalled.contains(&503));
    assert!(
        took < Duration::from_secs(5),
        "every request answered within the timeout bound: {took:?}"
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let unavailable: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("session_store_errors_total{kind=\"unavailable\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(unavailable > 0.0, "{metrics}");
    let connections: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("session_redis_connections "))
        .unwrap()
        .parse()
        .unwrap();
    // One connection per thread that talks to Redis (the two listeners' workers and this
    // test's two runtime threads), however many requests are in flight.
    assert!(
        connections <= 4.0,
        "connections are per thread, not per request: {connections}"
    );

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let after = burst(browser).await;
    assert!(
        after.iter().all(|s| *s == 200),
        "service resumes after the stall: {after:?}"
    );
}

struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_behind_haproxy_loses_no_session() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert_ne!(
            std::env::var("BROWSER_TESTS").as_deref(),
            Ok("required"),
            "haproxy is required here"
        );
        eprintln!("SKIPPED: haproxy not installed");
        return;
    }
    let redis = RedisServer::start();
    let mut replicas = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_session-server"))
            .env_clear()
            .env("REDIS_URL", redis.url())
            .env("SESSION_PUBLIC_ADDR", format!("127.0.0.1:{port}"))
            .env("SESSION_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("SESSION_WORKERS", "1")
            .env("SESSION_LOG", "off")
            .env("SESSION_ARGON2_MEMORY_KIB", "256")
            .env("SESSION_ARGON2_ITERATIONS", "1")
            .env("SESSION_LOGIN_MAX_ATTEMPTS_PER_IP", "100000")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        replicas.push(Process(child));
        ports.push(port);
    }
    let lb_port = free_port();
    let dir = std::env::temp_dir().join(format!("session-test-haproxy-{lb_port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server r{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 1\n"))
        .collect();
    let config = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    retries 2\n    option redispatch\n\
         frontend web\n    bind 127.0.0.1:{lb_port}\n    default_backend replicas\n\
         backend replicas\n    balance roundrobin\n    option httpchk GET /readyz\n{servers}"
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config).unwrap();
    let _lb = Process(
        Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    for p in &ports {
        wait_ready(&http, &format!("http://127.0.0.1:{p}/readyz")).await;
    }
    let lb = format!("http://127.0.0.1:{lb_port}");
    wait_ready(&http, &format!("{lb}/healthz")).await;

    let login = |user: String| {
        let http = http.clone();
        let lb = lb.clone();
        async move {
            let body =
                serde_json::json!({"username": user, "password": format!("{user}-password")});
            http.post(format!("{lb}/v1/users"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let r = http
                .post(format!("{lb}/v1/login"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            crate::helpers::session_cookie(&r).unwrap()
        }
    };
    let mut sessions = Vec::new();
    for i in 0..30 {
        sessions.push(login(format!("user{i}")).await);
    }
    let revoked = login("mallory".into()).await;
    let r = http
        .post(format!("{lb}/v1/logout"))
        .header(header::COOKIE, &revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let check = |cookie: String| {
        let http = http.clone();
        let lb = lb.clone();
        async move {
            http.get(format!("{lb}/v1/session"))
                .header(header::COOKIE, cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };

    // Load through the balancer while one replica is killed with SIGKILL.
    let mut answers = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(3) {
        if !killed && started.elapsed() > Duration::from_millis(500) {
            replicas[1].0.kill().unwrap();
            killed = true;
        }
        let batch = sessions.iter().map(|c| check(c.clone()));
        answers.extend(futures_util::future::join_all(batch).await);
        assert_ne!(
            check(revoked.clone()).await,
            200,
            "a revoked session is never accepted"
        );
    }
    let failed = answers.iter().filter(|s| **s != 200).count();
    assert!(
        answers
            .iter()
            .all(|s| *s == 200 || *s == 0 || *s == 502 || *s == 503),
        "only transport failures at the kill"
    );
    // Once the balancer has noticed, the other replicas serve every session.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for cookie in &sessions {
        assert_eq!(
            check(cookie.clone()).await,
            200,
            "no acknowledged session is lost"
        );
    }
    assert_eq!(check(revoked).await, 401, "revoked stays revoked");
    println!(
        "replica SIGKILL under load: {} checks, {failed} failed around the kill",
        answers.len()
    );
}
