//! Two real server processes on one Redis, one of them with its clock 5 s ahead (`faketime`,
//! installed by the test command): it runs on Redis's clock, says how far off its own is, and
//! cannot hide a session from "log out everywhere".

use std::{
    net::TcpListener,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Client, header};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, ORIGIN, RedisServer, session_cookie, test_settings};

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

struct Replica {
    child: Child,
    public: String,
    admin: String,
}

impl Drop for Replica {
    /// Kills the whole process group: `faketime` runs the server as its child, which killing
    /// `faketime` alone would leave running.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary on `redis`, under `faketime` when `skew` is set (e.g. `+5s`).
async fn replica(redis: &RedisServer, skew: Option<&str>) -> Replica {
    let (public, admin) = (free_addr(), free_addr());
    let binary = env!("CARGO_BIN_EXE_session-server");
    let mut cmd = match skew {
        Some(offset) => {
            let mut c = Command::new("faketime");
            // Only the wall clock is skewed; monotonic time runs as on the host.
            c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .args(["-f", offset, binary]);
            c
        }
        None => Command::new(binary),
    };
    let api_keys = test_settings().admin_api_keys.unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", redis.url())
        .env("SESSION_PUBLIC_ADDR", &public)
        .env("SESSION_ADMIN_ADDR", &admin)
        .env("SESSION_ADMIN_API_KEYS", api_keys)
        .env("SESSION_ALLOWED_ORIGINS", ORIGIN)
        .env("SESSION_IDLE_TIMEOUT", "3")
        .env("SESSION_RENEW_FRACTION", "0.05")
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .env("SESSION_WORKERS", "1")
        .env("SESSION_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that `Drop` can end the server under `faketime` too.
        .process_group(0);
    let child = cmd
        .spawn()
        .expect("faketime must be installed (the test command installs it)");
    let replica = Replica {
        child,
        public: format!("http://{public}"),
        admin: format!("http://{admin}"),
    };
    // Ready means: Redis answers and the replica runs on Redis's clock.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = reqwest::get(format!("{}/readyz", replica.public)).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return replica;
        }
        assert!(
            Instant::now() < deadline,
            "replica (skew {skew:?}) never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(client: &Client, replica: &Replica, name: &str) -> f64 {
    let text = client
        .get(format!("{}/metrics", replica.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

async fn sign_in(client: &Client, replica: &Replica) -> String {
    let r = client
        .post(format!("{}/v1/login", replica.public))
        .header(header::ORIGIN, ORIGIN)
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    session_cookie(&r).unwrap()
}

async fn whoami(client: &Client, replica: &Replica, cookie: &str) -> reqwest::Response {
    client
        .get(format!("{}/v1/session", replica.public))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_five_seconds_ahead_runs_on_redis_time() {
    let redis = RedisServer::start();
    let ahead = replica(&redis, Some("+5s")).await;
    let honest = replica(&redis, None).await;
    let client = Client::new();

    let offset = metric(&client, &ahead, "session_clock_offset_seconds").await;
    assert!((offset + 5.0).abs() < 0.5, "offset {offset}");
    assert_eq!(metric(&client, &ahead, "session_clock_synced").await, 1.0);
    let offset = metric(&client, &honest, "session_clock_offset_seconds").await;
    assert!(offset.abs() < 0.5, "offset {offset}");

    let r = client
        .post(format!("{}/admin/v1/users", ahead.admin))
        .bearer_auth(API_KEY)
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // The deadlines the skewed replica writes are on Redis's time.
    let victim = sign_in(&client, &honest).await;
    let other = sign_in(&client, &ahead).await;
    let me: Value = whoami(&client, &ahead, &other).await.json().await.unwrap();
    let created = humantime::parse_rfc3339(me["session"]["created_at"].as_str().unwrap()).unwrap();
    let lead = created
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        lead < Duration::from_secs(1),
        "created {lead:?} in the future"
    );

    // The scenario that used to hide the victim from "log out everywhere".
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(whoami(&client, &honest, &victim).await.status(), 200);
    let r = client
        .delete(format!("{}/v1/sessions?include_current=true", ahead.public))
        .header(header::ORIGIN, ORIGIN)
        .header(header::COOKIE, &other)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(whoami(&client, &honest, &victim).await.status(), 401);
    assert_eq!(whoami(&client, &ahead, &victim).await.status(), 401);
}
