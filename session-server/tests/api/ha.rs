//! Beyond one Redis: Redis Cluster and Sentinel on real nodes, including failovers, a node
//! restart and a live resharding (MOVED/ASK redirections), with the service running throughout.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    deployments::{Cluster, MASTER, SentinelGroup, wait_for},
    helpers::{
        Browser, TestApp, retried_while_unavailable, spawn_with_settings, test_settings,
        unique_prefix,
    },
};

/// Checks every browser once; every answer must be "valid" (200) or "store unavailable" (503):
/// never 401 (a lost or wrongly rejected session) and never 500.
async fn probe(app: &TestApp, browsers: &[(String, Browser)]) -> (usize, usize) {
    let mut ok = 0;
    let mut unavailable = 0;
    for (name, browser) in browsers {
        let r = app.whoami(browser).await;
        match r.status().as_u16() {
            200 => {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["user"]["username"], name.as_str());
                ok += 1;
            }
            503 => unavailable += 1,
            other => panic!(
                "{name}: answered {other}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }
    (ok, unavailable)
}

/// Probes until every session answers 200 again; returns the time from `fault` (when the fault
/// was injected) until then.
async fn ride_out(
    app: &TestApp,
    browsers: &[(String, Browser)],
    fault: Instant,
    limit: Duration,
) -> Duration {
    loop {
        let (ok, _) = probe(app, browsers).await;
        if ok == browsers.len() {
            return fault.elapsed();
        }
        assert!(
            fault.elapsed() < limit,
            "service did not recover within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in_many(app: &TestApp, n: usize) -> Vec<(String, Browser)> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("user{i}");
        out.push((name.clone(), app.signed_in(&name).await));
    }
    out
}

fn cluster_app_settings(cluster: &Cluster) -> session_server::config::Settings {
    let mut s = test_settings();
    s.redis_cluster_nodes = Some(cluster.urls());
    s.redis_prefix = Some(unique_prefix());
    // Ends wait for a replica's `WAIT` (half of this): room for a replica on a machine loaded
    // by the whole suite.
    s.redis_timeout = Some("2".parse().unwrap());
    s.login_max_attempts_per_ip = Some(10_000);
    s
}

fn sentinel_app_settings(group: &SentinelGroup) -> session_server::config::Settings {
    let mut s = test_settings();
    s.redis_sentinels = Some(group.urls());
    s.redis_sentinel_master = Some(MASTER.into());
    s
}

/// Waits until every replica has received everything its primary has.
fn replicas_caught_up(cluster: &Cluster) {
    wait_for("replicas to catch up", Duration::from_secs(10), || {
        cluster.replicas_in_sync()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_keys_share_a_slot_and_users_spread_over_all_primaries() {
    let cluster = Cluster::shared();
    let settings = cluster_app_settings(cluster);
    let prefix = settings.redis_prefix.clone().unwrap();
    let app = spawn_with_settings(settings, None).await;
    sign_in_many(&app, 60).await;
    let mut per_primary = HashMap::new();
    for primary in cluster.primaries() {
        let mut keys = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let reply = primary
                .command(&[
                    "SCAN",
                    &cursor,
                    "MATCH",
                    &format!("{prefix}:*"),
                    "COUNT",
                    "1000",
                ])
                .unwrap();
            let mut lines = reply
                .split("\r\n")
                .filter(|l| !l.starts_with(['*', '$']) && !l.is_empty());
            cursor = lines.next().unwrap().to_owned();
            keys.extend(lines.map(str::to_owned));
            if cursor == "0" {
                break;
            }
        }
        // A user's record and sessions hash are on the same primary.
        let mut by_user: HashMap<String, usize> = HashMap::new();
        for key in keys.iter().filter(|k| k.contains(":{")) {
            let tag = key
                .split('{')
                .nth(1)
                .unwrap()
                .split('}')
                .next()
                .unwrap()
                .to_owned();
            *by_user.entry(tag).or_default() += 1;
        }
        for count in by_user.values() {
            assert_eq!(
                *count, 2,
                "user record and sessions hash together on one primary"
            );
        }
        per_primary.insert(primary.port, by_user.len());
    }
    let total: usize = per_primary.values().sum();
    assert_eq!(total, 60, "{per_primary:?}");
    assert_eq!(per_primary.len(), 3);
    for users in per_primary.values() {
        assert!(
            *users >= 8,
            "users spread over all primaries: {per_primary:?}"
        );
    }
    println!("users per primary: {per_primary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_rides_out_a_cluster_primary_failover_and_the_nodes_return() {
    let cluster = Cluster::start();
    let app = spawn_with_settings(cluster_app_settings(&cluster), None).await;
    let browsers = sign_in_many(&app, 24).await;
    replicas_caught_up(&cluster);

    let victim = cluster.primaries()[0];
    let fault = Instant::now();
    victim.kill();
    // The first probe after the kill meets the dead primary (503 for its users).
    let (_, unavailable) = probe(&app, &browsers).await;
    assert!(unavailable > 0, "the failover window was observed");
    let recovered = ride_out(&app, &browsers, fault, Duration::from_secs(40)).await;
    println!("cluster primary failover: every session valid again {recovered:?} after the kill");

    // The old primary comes back (as a replica of its successor); service carries on. Ends on
    // its shard are confirmed again once it has caught up.
    victim.restart();
    cluster.wait_until_ok();
    wait_for("every replica in sync", Duration::from_secs(30), || {
        cluster.replicas_in_sync()
    });
    let (ok, _) = probe(&app, &browsers).await;
    assert_eq!(ok, browsers.len());
    // Revocations still take effect everywhere after the failover. A replica slower than the
    // `WAIT` on a loaded machine makes an end answer 503: the client retries, as documented.
    let (name, browser) = &browsers[0];
    let r = retried_while_unavailable(|| async {
        app.public(reqwest::Method::DELETE, "/v1/sessions?include_current=true")
            .header(reqwest::header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap()
    })
    .await;
    let status = r.status();
    assert_eq!(
        status,
        200,
        "{name}: {}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(app.whoami(browser).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_resharding_redirects_are_followed_without_errors() {
    let cluster = Cluster::start();
    let app = Arc::new(spawn_with_settings(cluster_app_settings(&cluster), None).await);
    let browsers = Arc::new(sign_in_many(&app, 24).await);
    let ids: Vec<String> = cluster
        .primaries()
        .iter()
        .map(|p| {
            let reply = p.command(&["CLUSTER", "MYID"]).unwrap();
            reply.split("\r\n").nth(1).unwrap().to_owned()
        })
        .collect();
    let seed = format!("127.0.0.1:{}", cluster.nodes[0].port);
    // Move all of one primary's slots (and keys) to another while checks run.
    let reshard = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &seed,
                "--cluster-from",
                &ids[0],
                "--cluster-to",
                &ids[1],
                "--cluster-slots",
                "5461",
                "--cluster-yes",
            ])
            .output()
            .unwrap()
    });
    let mut rounds = 0;
    while !reshard.is_finished() {
        probe(&app, &browsers).await;
        rounds += 1;
        assert!(rounds < 2_000, "resharding took too long");
    }
    let out = reshard.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(rounds > 0);
    ride_out(&app, &browsers, Instant::now(), Duration::from_secs(20)).await;
    let (ok, _) = probe(&app, &browsers).await;
    assert_eq!(
        ok,
        browsers.len(),
        "every session valid after the slots moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sessions_survive_a_sentinel_failover() {
    let group = SentinelGroup::start();
    let mut settings = sentinel_app_settings(&group);
    settings.redis_timeout = Some("0.5".parse().unwrap());
    let app = spawn_with_settings(settings, None).await;
    let browsers = sign_in_many(&app, 20).await;
    wait_for(
        "the replica to have every login",
        Duration::from_secs(10),
        || group.primary.replicas_in_sync(),
    );
    let old_primary = group.current_primary_port();

    let fault = Instant::now();
    group.primary.kill();
    let (_, unavailable) = probe(&app, &browsers).await;
    assert!(unavailable > 0, "the failover window was observed");
    let recovered = ride_out(&app, &browsers, fault, Duration::from_secs(40)).await;
    println!(
        "sentinel failover: every acknowledged session valid again {recovered:?} after the kill"
    );
    assert_ne!(
        group.current_primary_port(),
        old_primary,
        "the replica was promoted"
    );
    let role = group.replica.command(&["ROLE"]).unwrap();
    assert!(role.contains("master"), "{role}");

    // With no replica left, nothing can be confirmed: a login is still served (losing one costs
    // a re-login), an end is refused rather than acknowledged unreplicated.
    let r = app.login("user0", "user0-password").await;
    assert_eq!(r.status(), 200);
    let fresh = Browser {
        cookie: crate::helpers::session_cookie(&r).unwrap(),
    };
    let r = app.logout(&fresh).await;
    assert_eq!(r.status(), 503);
    assert_eq!(crate::helpers::error_code(r).await, "store_unconfirmed");
    let (ok, _) = probe(&app, &browsers).await;
    assert_eq!(ok, browsers.len());
}

/// A confirmed end on a primary whose script cache was lost (as after a restart or a promotion)
/// is still done and confirmed: the `NOSCRIPT` of the end's digest is followed by its text, and
/// that attempt's own `WAIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_are_confirmed_on_a_primary_that_lost_its_scripts() {
    let group = SentinelGroup::start();
    let app = spawn_with_settings(sentinel_app_settings(&group), None).await;
    let browsers = sign_in_many(&app, 2).await;
    wait_for(
        "the replica to have every login",
        Duration::from_secs(10),
        || group.primary.replicas_in_sync(),
    );
    let texts = crate::redis_only::calls_of(group.primary.port, "eval");

    group.primary.command(&["SCRIPT", "FLUSH"]).unwrap();
    let r = app.logout(&browsers[0].1).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    group.primary.command(&["SCRIPT", "FLUSH"]).unwrap();
    let r = app
        .public(reqwest::Method::DELETE, "/v1/sessions?include_current=true")
        .header(reqwest::header::COOKIE, &browsers[1].1.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["revoked"], 1);

    for (_, browser) in &browsers {
        assert_eq!(app.whoami(browser).await.status(), 401);
    }
    assert_eq!(
        crate::redis_only::calls_of(group.primary.port, "eval") - texts,
        4,
        "each end and each event sent again as text once"
    );
    assert_eq!(app.metric("session_store_ends_confirmed_total").await, 4.0);
}

/// Over Sentinel, a reply is awaited for the whole `SESSION_REDIS_TIMEOUT`, as with one Redis:
/// a check held up 0.8 s by a paused primary is answered, not cut by the redis crate's default
/// reply timeout of 500 ms into a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_reply_is_awaited_for_the_whole_store_timeout() {
    let group = SentinelGroup::start();
    let mut settings = sentinel_app_settings(&group);
    settings.redis_timeout = Some("3".parse().unwrap());
    let app = spawn_with_settings(settings, None).await;
    let browser = app.signed_in("alice").await;
    assert_eq!(app.whoami(&browser).await.status(), 200);

    // Shorter than the sentinels' down-after-milliseconds (1 s): no failover starts.
    group
        .primary
        .command(&["CLIENT", "PAUSE", "800", "ALL"])
        .expect("the primary pauses its clients");
    let started = Instant::now();
    let r = app.whoami(&browser).await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 200, "waited {waited:?}");
    assert!(
        waited >= Duration::from_millis(500),
        "the check took {waited:?}: the pause did not hold it up"
    );
}
