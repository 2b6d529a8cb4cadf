//! A bounded soak: a steady mixed load on the real binary over Redis, with short session
//! lifetimes, then checks that memory stayed flat, that no revoked session was ever accepted,
//! that nothing failed, and that Redis's key count returns to its baseline once sessions expire.
//!
//! Length: `SOAK_SECS` (default 10). The figures in RELIABILITY.md come from
//! `SOAK_SECS=120 cargo test -p session-server --test api soak -- --nocapture`.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::header;
use serde_json::json;

use crate::helpers::RedisServer;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_mixed_load_keeps_memory_flat_and_leaves_no_keys_behind() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let redis = RedisServer::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .env_clear()
        .env("REDIS_URL", redis.url())
        .env("SESSION_PUBLIC_ADDR", format!("127.0.0.1:{port}"))
        .env("SESSION_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("SESSION_WORKERS", "1")
        .env("SESSION_LOG", "off")
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .env("SESSION_IDLE_TIMEOUT", "3")
        .env("SESSION_ABSOLUTE_TIMEOUT", "4")
        .env("SESSION_LOGIN_WINDOW", "2")
        .env("SESSION_LOGIN_MAX_ATTEMPTS_PER_IP", "100000000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    const USERS: usize = 8;
    for i in 0..USERS {
        let body = json!({"username": format!("user{i}"), "password": "soak-password"});
        assert_eq!(
            http.post(format!("{base}/v1/users"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }

    let until = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..USERS)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let body = json!({"username": format!("user{i}"), "password": "soak-password"});
                let (mut requests, mut errors, mut revoked_accepted) = (0u64, 0u64, 0u64);
                let mut round = 0u64;
                while Instant::now() < until && round < 100_000 {
                    round += 1;
                    let r = http
                        .post(format!("{base}/v1/login"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    requests += 1;
                    if r.status() != 200 {
                        errors += 1;
                        continue;
                    }
                    let cookie = crate::helpers::session_cookie(&r).unwrap();
                    for _ in 0..3 {
                        let s = http
                            .get(format!("{base}/v1/session"))
                            .header(header::COOKIE, &cookie)
                            .send()
                            .await
                            .unwrap()
                            .status();
                        requests += 1;
                        errors += u64::from(s != 200);
                    }
                    let s = http
                        .get(format!("{base}/v1/sessions"))
                        .header(header::COOKIE, &cookie)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    requests += 1;
                    errors += u64::from(s != 200);
                    let s = if round.is_multiple_of(5) {
                        http.delete(format!("{base}/v1/sessions?include_current=true"))
                            .header(header::COOKIE, &cookie)
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16()
                    } else {
                        http.post(format!("{base}/v1/logout"))
                            .header(header::COOKIE, &cookie)
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16()
                    };
                    requests += 1;
                    errors += u64::from(s != 200 && s != 204);
                    let after = http
                        .get(format!("{base}/v1/session"))
                        .header(header::COOKIE, &cookie)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    requests += 1;
                    revoked_accepted += u64::from(after == 200);
                }
                (requests, errors, revoked_accepted)
            })
        })
        .collect();
    let mut rss = Vec::new();
    while Instant::now() < until {
        rss.push(rss_kib(child.id()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (mut requests, mut errors, mut revoked_accepted) = (0, 0, 0);
    for w in workers {
        let (r, e, a) = w.await.unwrap();
        requests += r;
        errors += e;
        revoked_accepted += a;
    }
    // Keys: once every session has passed its absolute timeout (4 s) and the throttling window
    // (2 s), only users, usernames and the event feed remain.
    let settle = Instant::now() + Duration::from_secs(12);
    let leftover = loop {
        let leftover: Vec<String> = redis
            .keys()
            .into_iter()
            .filter(|k| !(k.ends_with(":user") || k.contains(":name:") || k.ends_with(":events")))
            .collect();
        if leftover.is_empty() || Instant::now() > settle {
            break leftover;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();

    let warm = rss[rss.len() / 4].max(1);
    let peak = *rss[rss.len() / 4..].iter().max().unwrap();
    println!(
        "soak {secs}s: {requests} requests, {errors} errors, {revoked_accepted} revoked accepted; \
         RSS after warm-up {warm} KiB, peak {peak} KiB, end {} KiB; keys left besides users/names/feed: {}",
        rss.last().unwrap(),
        leftover.len()
    );
    assert!(requests > 0);
    assert_eq!(errors, 0);
    assert_eq!(revoked_accepted, 0, "a revoked session was accepted");
    assert!(
        leftover.is_empty(),
        "keys without a TTL or not expired: {leftover:?}"
    );
    assert!(
        peak <= warm + warm / 2 + 8 * 1024,
        "memory grew: {warm} KiB -> {peak} KiB"
    );
}
