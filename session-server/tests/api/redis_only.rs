//! Behaviour that exists only with a shared Redis: several replicas, outages and key hygiene.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{Backend, RedisServer, error_code, spawn_app_on, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_is_seen_by_the_other_at_once() {
    let redis = RedisServer::start();
    let a = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let b = spawn_app_on(Some(redis.clone()), |_| {}).await;
    for _ in 0..20 {
        let browser = a.signed_in("alice").await;
        let via_b = b.whoami(&browser).await;
        assert_eq!(via_b.status(), 200, "logged in via A, looked up via B");
        let handle = via_b.json::<serde_json::Value>().await.unwrap()["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = b
            .public(Method::DELETE, &format!("/v1/sessions/{handle}"))
            .header(reqwest::header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "revoked via B");
        assert_eq!(
            a.whoami(&browser).await.status(),
            401,
            "A rejects on the very next request"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_and_service_recovers_by_itself() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.redis_timeout = Some("0.3".parse().unwrap())
    })
    .await;
    let browser = app.signed_in("alice").await;
    let redis = app.redis.clone().unwrap();
    redis.kill();
    for path in ["/v1/session", "/v1/sessions", "/readyz"] {
        let started = Instant::now();
        let r = app
            .public(Method::GET, path)
            .header(reqwest::header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} answered in time"
        );
        assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
        assert_eq!(error_code(r).await, "store_unavailable");
    }
    let r = app.login("alice", "alice-password").await;
    assert_eq!(r.status(), 503);
    assert!(
        crate::helpers::set_cookie_header(&r).is_none(),
        "no cookie for a session never stored"
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

    redis.restart();
    // The store is empty after a restart without persistence: the old session is gone (401), but
    // the service answers again without a restart of its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .client
            .get(format!("{}/readyz", app.public))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "service did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.whoami(&browser).await.status(), 401);
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_key_has_a_ttl_and_only_users_and_their_factors_live_forever() {
    let app = spawn_app_with(Backend::Redis, |_| {}).await;
    let redis = app.redis.clone().unwrap();
    let browser = app.signed_in("alice").await;
    app.signed_in("alice").await;
    app.login("alice", "wrong-password").await;
    // Second factors: a passkey (kept like the user), a passkey ceremony and a TOTP enrolment
    // left unfinished (both short-lived).
    let mut authenticator = crate::passkeys::authenticator();
    let r = crate::passkeys::register(&app, &browser, &mut authenticator, "Key").await;
    assert_eq!(r.status(), 201);
    let started = crate::factors::send(
        &app,
        &browser,
        Method::POST,
        "/v1/session/factors/passkeys",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(started.status(), 200);
    let enrolment = crate::factors::send(
        &app,
        &browser,
        Method::POST,
        "/v1/session/factors/totp",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(enrolment.status(), 201);
    let keys = redis.keys();
    for part in [":ceremony:", "}:totp", "}:passkeys", ":passkey:"] {
        assert!(keys.iter().any(|k| k.contains(part)), "no {part} key");
    }
    for key in keys {
        let ttl = redis.integer(&["PTTL", &key]);
        let users = [":user", "}:passkeys"];
        if users.iter().any(|s| key.ends_with(s))
            || key.contains(":name:")
            || key.contains(":passkey:")
        {
            assert_eq!(ttl, -1, "{key} is part of a user record");
        } else {
            assert!(ttl > 0, "{key} has no TTL");
        }
    }
}

/// Calls Redis has served by command name, by `INFO commandstats`.
pub fn command_calls(port: u16) -> Vec<(String, i64)> {
    let info = RedisServer::command_on(port, &["INFO", "commandstats"]).unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls: i64 = rest
                .split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Calls of one command Redis has served.
pub fn calls_of(port: u16, command: &str) -> i64 {
    command_calls(port)
        .into_iter()
        .find(|(name, _)| name == command)
        .map_or(0, |(_, calls)| calls)
}

/// Commands Redis has served, by `INFO commandstats`, leaving out the commands named in `except`
/// (e.g. a replica's background work: the clock reading `TIME`, the feed follower's `XREAD`,
/// and the count's own `INFO`).
fn commands_served(redis: &RedisServer, except: &[&str]) -> i64 {
    command_calls(redis.port)
        .into_iter()
        .filter(|(name, _)| !except.contains(&name.as_str()))
        .map(|(_, calls)| calls)
        .sum()
}

/// The scripts of ends and events go by digest (`EVALSHA`): their 7 KB texts are not sent, nor
/// hashed by Redis, with every logout. A node that lost its script cache (restarted, promoted,
/// flushed) answers `NOSCRIPT`, and the end is sent again as text and still done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_go_by_digest_and_survive_a_lost_script_cache() {
    let app = spawn_app_with(Backend::Redis, |_| {}).await;
    let redis = app.redis.clone().unwrap();
    let browser = app.signed_in("alice").await;
    assert_eq!(app.logout(&browser).await.status(), 204);
    let (texts, digests) = (
        calls_of(redis.port, "eval"),
        calls_of(redis.port, "evalsha"),
    );
    for _ in 0..5 {
        let browser = app.signed_in("alice").await;
        assert_eq!(app.logout(&browser).await.status(), 204);
    }
    assert_eq!(calls_of(redis.port, "eval"), texts, "no script text sent");
    // Each logout: the end and its event.
    assert!(calls_of(redis.port, "evalsha") - digests >= 10);

    let browser = app.signed_in("alice").await;
    redis.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(app.logout(&browser).await.status(), 204);
    assert_eq!(app.whoami(&browser).await.status(), 401);
    assert_eq!(
        calls_of(redis.port, "eval") - texts,
        2,
        "the end and its event, each sent again as text once"
    );
    let browser = app.signed_in("alice").await;
    assert_eq!(app.logout(&browser).await.status(), 204);
    assert_eq!(calls_of(redis.port, "eval") - texts, 2, "cached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_feed_readers_cost_redis_almost_nothing() {
    let app = spawn_app_with(Backend::Redis, |_| {}).await;
    let redis = app.redis.clone().unwrap();
    let position = app
        .admin(Method::GET, "/admin/v1/events?after=latest")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["last_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = commands_served(&redis, &["info"]);
    let readers = (0..20).map(|_| {
        app.admin(
            Method::GET,
            &format!("/admin/v1/events?after={position}&wait=1.5"),
        )
        .send()
    });
    for answer in futures_util::future::join_all(readers).await {
        let page: serde_json::Value = answer.unwrap().json().await.unwrap();
        assert_eq!(page["events"], serde_json::json!([]));
    }
    // 20 readers waiting 1.5 s each: a read each at the start, after a second and at the end
    // (a read is a script of two or three commands), plus the replica's one follower. Polling
    // every 20 ms would have cost about 1,500 reads, over 3,000 commands.
    let served = commands_served(&redis, &["info"]) - before;
    assert!(served <= 250, "{served} commands for 20 waiting readers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waiting_on_one_replica_is_woken_by_an_end_on_another() {
    let redis = RedisServer::start();
    let a = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let b = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let browser = a.signed_in("alice").await;
    let position = b
        .admin(Method::GET, "/admin/v1/events?after=latest")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["last_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = b
        .admin(
            Method::GET,
            &format!("/admin/v1/events?after={position}&wait=10"),
        )
        .send();
    let logout = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = a
            .public(Method::POST, "/v1/logout")
            .header(reqwest::header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        Instant::now()
    };
    let (answer, ended_at) = tokio::join!(waiting, logout);
    let page: serde_json::Value = answer.unwrap().json().await.unwrap();
    let woken_after = ended_at.elapsed();
    assert_eq!(page["events"][0]["type"], "logout", "{page}");
    // Readers look by themselves only every second: an answer sooner than that came from B's
    // follower of the feed.
    assert!(woken_after < Duration::from_millis(900), "{woken_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_check_is_one_redis_command() {
    let app = spawn_app_with(Backend::Redis, |_| {}).await;
    let redis = app.redis.clone().unwrap();
    let browser = app.signed_in("alice").await;
    app.whoami(&browser).await;
    let stats = |r: &RedisServer| commands_served(r, &["time", "xread", "info"]);
    let before = stats(&redis);
    for _ in 0..50 {
        assert_eq!(app.whoami(&browser).await.status(), 200);
    }
    assert_eq!(stats(&redis) - before, 50);
}

/// Redis memory per session, realistic shape: 1,000 users with two sessions each from a desktop
/// Chrome (the user's sessions hash, shared by two). Prints the figure quoted in the book (docs/src/measurements.md); a
/// second round with sessions too large for the compact encoding (IPv6 addresses, long usernames)
/// prints what they cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_per_session_stays_compact() {
    use session_server::{
        config::{RedisConfig, RedisMode, WaitReplicas},
        domain::{
            clock::Clock,
            session::{ClientInfo, SessionPolicy},
            token::SessionToken,
            user::{UserRecord, Username},
        },
        store::{Store, redis::RedisStore},
    };
    let now_ms = || Clock::system().wall_ms();
    let redis = RedisServer::start();
    // Redis keeps a latency histogram (about 25 KB) for every command type it sees; the first
    // logins would be charged for them.
    assert!(
        redis
            .command(&["CONFIG", "SET", "latency-tracking", "no"])
            .unwrap()
            .starts_with("+OK")
    );
    let store = RedisStore::new(&RedisConfig {
        mode: RedisMode::Standalone {
            url: redis.url().into(),
        },
        wait_replicas: WaitReplicas::Exactly(0),
        timeout: Duration::from_secs(5),
        prefix: "sess".into(),
    })
    .unwrap();
    let policy = SessionPolicy {
        idle: Duration::from_secs(1800),
        absolute: Duration::from_secs(86_400),
        remember_idle: Duration::from_secs(1800),
        remember_absolute: Duration::from_secs(30 * 86_400),
        renew_fraction: 0.1,
    };
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
    let used = |r: &RedisServer| {
        let info = r.command(&["INFO", "memory"]).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap()
    };
    let mut figures = Vec::new();
    for (round, name, ip) in [
        (0, "user{}", "203.0.113.77"),
        (1, "someone.{}@example.com", "2001:db8:4:2::77"),
    ] {
        let mut users = Vec::new();
        for i in 0..1000 {
            let user = UserRecord {
                id: uuid::Uuid::now_v7(),
                username: Username::parse(&name.replace("{}", &i.to_string())).unwrap(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
                disabled: false,
                created_ms: now_ms(),
                credential_version: 0,
                factors: Default::default(),
            };
            store.create_user(&user).await.unwrap();
            users.push(user);
        }
        let client = ClientInfo {
            ip: Some(ip.parse().unwrap()),
            user_agent: chrome.into(),
            ..ClientInfo::default()
        };
        let before = used(&redis);
        for user in &users {
            for _ in 0..2 {
                let token = SessionToken::generate(user.id);
                let record = policy.new_record(user.id, user.username.as_str(), &client, now_ms());
                store
                    .create_session(&token.digest(), &record, None, 0)
                    .await
                    .unwrap();
            }
        }
        let per_session = (used(&redis) - before) / 2000;
        let key = format!("sess:{{{}}}:sessions", users[0].id.simple());
        let one_hash = redis.integer(&["MEMORY", "USAGE", &key, "SAMPLES", "0"]);
        let encoding = redis.command(&["OBJECT", "ENCODING", &key]).unwrap();
        let encoding = encoding
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned();
        println!(
            "redis used_memory per session ({name}, {ip}): {per_session} bytes (MEMORY USAGE of a \
             two-session hash: {one_hash} bytes, {encoding})"
        );
        figures.push((round, per_session, encoding));
    }
    let (_, typical, encoding) = &figures[0];
    assert_eq!(encoding, "listpack");
    assert!(*typical < 200, "{typical} bytes per session");
    let (_, large, _) = &figures[1];
    assert!(*large < 400, "{large} bytes per session");
}

/// A user's sessions expire one by one inside the hash (pruned by the scripts on Redis's clock),
/// and the hash itself expires with the last of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_sessions_hash_lives_as_long_as_its_longest_session() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.idle_timeout = Some("2".parse().unwrap())
    })
    .await;
    let redis = app.redis.clone().unwrap();
    let first = app.signed_in("alice").await;
    let key = redis
        .keys()
        .into_iter()
        .find(|k| k.ends_with("}:sessions"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = app.signed_in("alice").await;
    assert_eq!(redis.integer(&["HLEN", &key]), 2);
    let pttl = redis.integer(&["PTTL", &key]);
    assert!(
        pttl > 1500,
        "the hash expires with the later session: PTTL {pttl}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first session has expired: refused, and gone from the hash at the next write.
    assert_eq!(app.whoami(&first).await.status(), 401);
    assert_eq!(app.whoami(&second).await.status(), 200);
    let third = app.signed_in("alice").await;
    assert_eq!(redis.integer(&["HLEN", &key]), 2);
    assert_eq!(app.whoami(&third).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(redis.integer(&["EXISTS", &key]), 0);
}

/// A stalled Redis makes requests time out; the replies that arrive late must never be taken as
/// the answer to another request (a known pitfall of pooled Redis clients). Every answer names its
/// own user, during and after the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_never_cross_between_requests_when_redis_stalls() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.redis_timeout = Some("0.15".parse().unwrap())
    })
    .await;
    let redis = app.redis.clone().unwrap();
    let mut browsers = Vec::new();
    for i in 0..16 {
        browsers.push((format!("user{i}"), app.signed_in(&format!("user{i}")).await));
    }
    let round = |tag: &'static str| {
        let futures = browsers.iter().map(|(name, browser)| {
            let app = &app;
            async move {
                let r = app.whoami(browser).await;
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap();
                if status == 200 {
                    assert_eq!(
                        body["user"]["username"],
                        name.as_str(),
                        "{tag}: crossed answer"
                    );
                } else {
                    assert_eq!(status, 503, "{tag}: {body}");
                }
                status
            }
        });
        futures_util::future::join_all(futures)
    };
    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "500", "ALL"])
            .unwrap()
            .trim(),
        "+OK"
    );
    let during = round("during the stall").await;
    assert!(during.contains(&503), "the stall was noticed: {during:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let after = round("after the stall").await;
        if after.iter().all(|s| *s == 200) {
            return;
        }
    }
    panic!("service did not resume after the stall");
}

/// What second factors cost in Redis, per user: the TOTP factor and a set of recovery codes (in
/// the user's hash), and the session record of an `aal2` session (in the sessions hash), which
/// stays within Redis's compact 64-byte hash values. Prints the figures the measurements page
/// quotes: `cargo test -p session-server --test api second_factors_cost -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factors_cost_this_many_redis_bytes_per_user() {
    use crate::factors::{code, enroll, password_login, prove, send};
    let app = spawn_app_with(Backend::Redis, |_| {}).await;
    let redis = app.redis.clone().unwrap();
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
    let register = app.register("alice", "alice-password").await;
    assert_eq!(register.status(), 201);
    let login = app
        .public(Method::POST, "/v1/login")
        .header(reqwest::header::USER_AGENT, chrome)
        .json(&serde_json::json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let browser = crate::helpers::Browser {
        cookie: crate::helpers::session_cookie(&login).unwrap(),
    };
    let keys = redis.keys();
    let user_key = keys.iter().find(|k| k.ends_with("}:user")).unwrap().clone();
    let sessions_key = keys
        .iter()
        .find(|k| k.ends_with("}:sessions"))
        .unwrap()
        .clone();
    let usage = |key: &str| redis.integer(&["MEMORY", "USAGE", key, "SAMPLES", "0"]);
    // The sessions' fields are their 22-character digests (data fields are longer): in the raw
    // RESP reply, the line after each `$22` length header.
    let record_lengths = || -> Vec<i64> {
        let reply = redis.command(&["HKEYS", &sessions_key]).unwrap();
        let lines: Vec<&str> = reply.split("\r\n").collect();
        lines
            .windows(2)
            .filter(|pair| pair[0] == "$22")
            .map(|pair| redis.integer(&["HSTRLEN", &sessions_key, pair[1]]))
            .collect()
    };
    let plain_user = usage(&user_key);
    let aal1_record = record_lengths();
    let (secret, step) = enroll(&app, &browser).await;
    let with_totp = usage(&user_key);
    let aal2_record = record_lengths();
    let r = send(
        &app,
        &browser,
        Method::POST,
        "/v1/session/factors/recovery-codes",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(r.status(), 201);
    let with_codes = usage(&user_key);
    let (pending, _) = password_login(&app, "alice").await;
    assert_eq!(
        prove(&app, &pending, "totp", &code(&secret, step + 1))
            .await
            .status(),
        200
    );
    // A passkey: its record in the user's passkeys hash, and the claim of its credential id.
    let mut authenticator = crate::passkeys::authenticator();
    let r = crate::passkeys::register(&app, &pending, &mut authenticator, "Laptop").await;
    assert_eq!(r.status(), 201);
    let keys = redis.keys();
    let passkeys_key = keys.iter().find(|k| k.ends_with("}:passkeys")).unwrap();
    let claim_key = keys.iter().find(|k| k.contains(":passkey:")).unwrap();
    let (passkeys, claim) = (usage(passkeys_key), usage(claim_key));
    println!(
        "user hash: {plain_user} bytes; with TOTP: {with_totp} (+{}); with recovery codes too: \
         {with_codes} (+{}); one passkey: {} bytes ({passkeys} for its hash, {claim} for the claim \
         of its credential id); session record aal1: {aal1_record:?} bytes, aal2 (TOTP): \
         {aal2_record:?} bytes",
        with_totp - plain_user,
        with_codes - with_totp,
        passkeys + claim
    );
    assert!(
        passkeys + claim < 1500,
        "a passkey costs {} bytes",
        passkeys + claim
    );
    assert_eq!(aal1_record, [58]);
    assert_eq!(aal2_record, [61]);
    assert!(record_lengths().iter().all(|&n| n <= 64));
    let encoding = redis
        .command(&["OBJECT", "ENCODING", &sessions_key])
        .unwrap();
    assert!(encoding.contains("listpack"), "{encoding}");
    assert!(
        with_totp - plain_user < 200,
        "TOTP costs {} bytes",
        with_totp - plain_user
    );
    assert!(
        with_codes - with_totp < 400,
        "recovery codes cost {} bytes",
        with_codes - with_totp
    );
}
