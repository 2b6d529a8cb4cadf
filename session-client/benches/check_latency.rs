//! Uncached `check` latency and throughput against the session service on Redis, and how long a
//! revocation takes to reach a cached client. Bounded in count and time; prints a table.
//!
//!     cargo bench -p session-client --bench check_latency

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use session_client::{CacheSettings, SessionClient};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Hundreds of sign-ins come from 127.0.0.1: lift the per-address login throttle.
    let server = support::server_with(|s| s.login_max_attempts_per_ip = Some(1_000_000)).await;
    let cookie = server.sign_in("alice").await;
    let uncached = SessionClient::new(&server.admin, support::KEY).unwrap();

    // Latency: one call at a time.
    for _ in 0..200 {
        uncached.check(&cookie).await.unwrap().unwrap();
    }
    let mut latencies = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        let started = Instant::now();
        uncached.check(&cookie).await.unwrap().unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();

    // Throughput: 32 concurrent callers for 5 seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let client = uncached.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    client.check(&cookie).await.unwrap().unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    let throughput = calls as f64 / started.elapsed().as_secs_f64();

    // Revocation propagation to a cached client, over 200 revocations.
    let cached = SessionClient::builder(&server.admin, support::KEY)
        .cache(CacheSettings::default())
        .build()
        .unwrap();
    let mut propagation = Vec::new();
    for i in 0..200 {
        let cookie = server.sign_in(&format!("user{i}")).await;
        let warm_deadline = Instant::now() + Duration::from_secs(5);
        while !cached.is_cached(&cookie) {
            cached.check(&cookie).await.unwrap().unwrap();
            assert!(Instant::now() < warm_deadline, "never cached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.logout(&cookie).await;
        let revoked = Instant::now();
        while cached.is_cached(&cookie) {
            assert!(
                revoked.elapsed() < Duration::from_secs(2),
                "revocation never arrived"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        propagation.push(revoked.elapsed());
    }
    propagation.sort();

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| uncached check, sequential: p50 / p99 (5,000 calls) | {} / {} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "| uncached check throughput, 32 concurrent callers, 5 s | {throughput:.0} checks/s |"
    );
    println!(
        "| revocation to cached client (logout answered → entry gone): p50 / p99 / max (200 revocations) | {} / {} / {} |",
        ms(percentile(&propagation, 0.5)),
        ms(percentile(&propagation, 0.99)),
        ms(*propagation.last().unwrap())
    );
}
