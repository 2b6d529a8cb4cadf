//! Changes of state racing each other, driven deterministically: a hook holds a login between
//! its password check and its session, replicas get skewed clocks, writes get lost replies.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::{Method, header};
use serde_json::{Value, json};
use session_server::{
    domain::clock::Clock,
    state::{Hooks, Overrides},
};
use tokio::sync::Notify;

use crate::helpers::{
    Backend, Browser, RedisServer, TestApp, healthy_and_unconfirmed, session_cookie, spawn_app,
    spawn_app_on, spawn_with_overrides, test_settings, use_backend,
};

/// Holds the next login that passed its password check until the test releases it.
#[derive(Clone, Default)]
struct Gate {
    armed: Arc<AtomicBool>,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    /// Starts a login and returns once it passed its password check and waits at the gate.
    async fn hold_login(
        &self,
        app: &TestApp,
        username: &str,
        password: &str,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        self.armed.store(true, Ordering::SeqCst);
        let request = app
            .public(Method::POST, "/v1/login")
            .json(&json!({"username": username, "password": password}));
        let login = tokio::spawn(async move { request.send().await.unwrap() });
        tokio::time::timeout(Duration::from_secs(10), self.reached.notified())
            .await
            .expect("the login reached the gate");
        login
    }

    fn hooks(&self) -> Hooks {
        let gate = self.clone();
        Hooks {
            after_password_verified: Some(Arc::new(move || {
                let gate = gate.clone();
                Box::pin(async move {
                    if gate.armed.swap(false, Ordering::SeqCst) {
                        gate.reached.notify_one();
                        gate.release.notified().await;
                    }
                })
            })),
            ..Hooks::default()
        }
    }
}

async fn spawn_gated(backend: Backend) -> (TestApp, Gate) {
    let gate = Gate::default();
    let mut settings = test_settings();
    let redis = use_backend(&mut settings, backend);
    let overrides = Overrides {
        clock: None,
        hooks: gate.hooks(),
        ..Default::default()
    };
    (spawn_with_overrides(settings, redis, overrides).await, gate)
}

async fn user_id(app: &TestApp, browser: &Browser) -> String {
    let me: Value = app.whoami(browser).await.json().await.unwrap();
    me["user"]["id"].as_str().unwrap().to_owned()
}

/// What the held login races.
#[derive(Debug, Clone, Copy)]
enum CredentialChange {
    OwnPasswordChange,
    AdminPasswordSet,
    Disable,
    DisableThenEnable,
}

async fn apply(app: &TestApp, change: CredentialChange, me: &Browser, id: &str) {
    let ok = |status: reqwest::StatusCode| assert!(status.is_success(), "{change:?}: {status}");
    match change {
        CredentialChange::OwnPasswordChange => ok(app
            .public(Method::POST, "/v1/password")
            .header(header::COOKIE, &me.cookie)
            .json(
                &json!({"current_password": "alice-password", "new_password": "a-new-passphrase"}),
            )
            .send()
            .await
            .unwrap()
            .status()),
        CredentialChange::AdminPasswordSet => ok(app
            .admin(Method::PUT, &format!("/admin/v1/users/{id}/password"))
            .json(&json!({"password": "a-new-passphrase"}))
            .send()
            .await
            .unwrap()
            .status()),
        CredentialChange::Disable => ok(app
            .admin(Method::POST, &format!("/admin/v1/users/{id}/disable"))
            .send()
            .await
            .unwrap()
            .status()),
        CredentialChange::DisableThenEnable => {
            for step in ["disable", "enable"] {
                ok(app
                    .admin(Method::POST, &format!("/admin/v1/users/{id}/{step}"))
                    .send()
                    .await
                    .unwrap()
                    .status());
            }
        }
    }
}

/// A login that verified the old credentials before a change was acknowledged, and reaches
/// session creation after it, must not get a session.
async fn a_login_that_verified_old_credentials_gets_no_session(backend: Backend) {
    for change in [
        CredentialChange::OwnPasswordChange,
        CredentialChange::AdminPasswordSet,
        CredentialChange::Disable,
        CredentialChange::DisableThenEnable,
    ] {
        let (app, gate) = spawn_gated(backend).await;
        let me = app.signed_in("alice").await;
        let id = user_id(&app, &me).await;

        let login = gate.hold_login(&app, "alice", "alice-password").await;
        apply(&app, change, &me, &id).await;
        gate.release.notify_one();
        let response = login.await.unwrap();

        assert_eq!(response.status(), 401, "{change:?}");
        assert_eq!(session_cookie(&response), None, "{change:?}");
        let sessions = app.user_sessions(&id).await;
        let live = sessions.len();
        // Only the session that changed its own password survives it.
        let expected = usize::from(matches!(change, CredentialChange::OwnPasswordChange));
        assert_eq!(live, expected, "{change:?}: {sessions:?}");
    }
}
crate::each_backend!(a_login_that_verified_old_credentials_gets_no_session);

/// The same race against the operator's command line (`user passwd`, `user disable` + `enable`),
/// a separate process on the same Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_the_command_line_gets_no_session() {
    let commands: [&[&[&str]]; 2] = [
        &[&["user", "passwd", "alice"]],
        &[&["user", "disable", "alice"], &["user", "enable", "alice"]],
    ];
    for steps in commands {
        let (app, gate) = spawn_gated(Backend::Redis).await;
        let redis = app.redis.clone().unwrap();
        assert_eq!(app.register("alice", "alice-password").await.status(), 201);

        let login = gate.hold_login(&app, "alice", "alice-password").await;
        for step in steps {
            let out = crate::cli::run(&redis, step, "a-new-passphrase\n");
            assert!(
                out.status.success(),
                "{step:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        gate.release.notify_one();
        let response = login.await.unwrap();
        assert_eq!(response.status(), 401, "{steps:?}");
        assert_eq!(session_cookie(&response), None, "{steps:?}");
    }
}

async fn disabling_a_user_publishes_the_end_of_their_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = app.signed_in("alice").await;
    let me_again = app.signed_in("alice").await;
    let id = user_id(&app, &me).await;
    let r = app
        .admin(Method::POST, &format!("/admin/v1/users/{id}/disable"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let events = app.feed().await;
    let disabled = events
        .iter()
        .find(|e| e["type"] == "user_disabled")
        .unwrap_or_else(|| panic!("no user_disabled event in {events:?}"));
    assert_eq!(disabled["user_id"], id.as_str());
    assert_eq!(disabled["all"], true);
    assert_eq!(disabled["handles"].as_array().unwrap().len(), 2);
    assert!(!app.check(&me).await && !app.check(&me_again).await);
}
crate::each_backend!(disabling_a_user_publishes_the_end_of_their_sessions);

/// The statuses of `n` logins as alice sent at once.
async fn concurrent_logins(app: &TestApp, n: usize, password: &str) -> Vec<u16> {
    let attempts = (0..n).map(|_| app.login("alice", password));
    futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect()
}

/// Alice's failure budget has exactly `left` wrong passwords left: they are verified (401), the
/// next one is throttled.
async fn assert_failure_budget_left(app: &TestApp, left: usize) {
    for _ in 0..left {
        assert_eq!(app.login("alice", "wrong-password").await.status(), 401);
    }
    assert_eq!(app.login("alice", "wrong-password").await.status(), 429);
}

/// Forty wrong passwords for one username at once: the budget of ten holds.
async fn the_username_budget_holds_under_concurrent_attempts(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.login_max_failures_per_user = Some(10);
        s.login_max_attempts_per_ip = Some(1000);
        s.argon2_concurrency = Some(4);
    })
    .await;
    app.register("alice", "alice-password").await;
    let statuses = concurrent_logins(&app, 40, "wrong-password").await;
    let verified = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(verified + throttled, 40, "{statuses:?}");
    assert_eq!(verified, 10, "{statuses:?}");
}
crate::each_backend!(the_username_budget_holds_under_concurrent_attempts);

/// A successful login gives back its reservation: the failure budget is not consumed by logins.
async fn successful_logins_do_not_spend_the_failure_budget(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.login_max_failures_per_user = Some(3);
    })
    .await;
    app.register("alice", "alice-password").await;
    for _ in 0..6 {
        assert_eq!(app.login("alice", "alice-password").await.status(), 200);
    }
    assert_failure_budget_left(&app, 3).await;
}
crate::each_backend!(successful_logins_do_not_spend_the_failure_budget);

/// Logins turned away because hashing is saturated (503 `busy`) verified nothing: they give their
/// reservation back and spend none of the failure budget.
async fn logins_refused_as_busy_do_not_spend_the_failure_budget(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.login_max_failures_per_user = Some(3);
        s.argon2_concurrency = Some(1);
        s.argon2_queue = Some(0);
        s.argon2_memory_kib = Some(8192);
    })
    .await;
    app.register("alice", "alice-password").await;
    let statuses = concurrent_logins(&app, 24, "alice-password").await;
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert!(busy > 0, "hashing was never saturated: {statuses:?}");
    assert_failure_budget_left(&app, 3).await;
}
crate::each_backend!(logins_refused_as_busy_do_not_spend_the_failure_budget);

/// Clients behind a trusted proxy, all from one IPv6 /64: one budget, not 2^64.
async fn an_ipv6_network_shares_one_address_budget(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.trusted_proxies = Some("127.0.0.1/32".into());
        s.login_max_attempts_per_ip = Some(20);
        s.login_max_failures_per_user = Some(1000);
    })
    .await;
    let attempt = |ip: String| {
        app.public(Method::POST, "/v1/login")
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "nobody", "password": "wrong-password"}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..30u32 {
        let r = attempt(format!("2001:db8:1:2:{:x}::{:x}", i * 7919 % 65536, i + 1))
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    // Another /64 has a budget of its own; so does every IPv4 address.
    let other = attempt("2001:db8:1:3::1".into()).await.unwrap();
    assert_eq!(other.status(), 401);
    let v4 = attempt("192.0.2.1".into()).await.unwrap();
    assert_eq!(v4.status(), 401);
}
crate::each_backend!(an_ipv6_network_shares_one_address_budget);

/// The scenario that hid sessions from "log out everywhere": replica A's clock is 5 s ahead,
/// sessions live 3 s idle. A's writes must not prune the index entry of a session that still
/// lives, and a renewal on B must keep it indexed, so revoke-all through A ends it.
async fn a_skewed_replica_cannot_hide_a_session_from_revoke_all(backend: Backend) {
    let mut settings = test_settings();
    let redis = use_backend(&mut settings, backend);
    settings.idle_timeout = Some("3".parse().unwrap());
    settings.renew_fraction = Some(0.05);
    let ahead = Overrides {
        clock: Some(Clock::with_wall_skew(5_000)),
        hooks: Hooks::default(),
        ..Default::default()
    };
    let a = spawn_with_overrides(settings.clone(), redis.clone(), ahead).await;
    let b = spawn_with_overrides(settings, redis, Overrides::default()).await;
    assert!(a.state.clock.is_synced() && b.state.clock.is_synced());

    let victim = b.signed_in("alice").await;
    // Every write of A prunes the index; a second login is one.
    let other = a.signed_in("alice").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Due for renewal on B: the renewal writes the session again.
    assert_eq!(b.whoami(&victim).await.status(), 200);
    let r = a
        .public(Method::DELETE, "/v1/sessions?include_current=true")
        .header(header::COOKIE, &other.cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(b.whoami(&victim).await.status(), 401);
    assert_eq!(a.whoami(&victim).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_replica_cannot_hide_a_session_from_revoke_all_redis() {
    a_skewed_replica_cannot_hide_a_session_from_revoke_all(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_replica_cannot_hide_a_session_from_revoke_all_cluster() {
    a_skewed_replica_cannot_hide_a_session_from_revoke_all(Backend::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_replica_cannot_hide_a_session_from_revoke_all_sentinel() {
    a_skewed_replica_cannot_hide_a_session_from_revoke_all(Backend::Sentinel).await;
}

/// Deadlines a replica writes come from Redis's clock, not its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_skewed_clocks_write_deadlines_on_redis_time() {
    let redis = RedisServer::start();
    let mut seen = Vec::new();
    for skew in [-7_000, 0, 5_000] {
        let mut settings = test_settings();
        settings.redis_url = Some(redis.url());
        settings.idle_timeout = Some("600".parse().unwrap());
        let overrides = Overrides {
            clock: Some(Clock::with_wall_skew(skew)),
            hooks: Hooks::default(),
            ..Default::default()
        };
        let app = spawn_with_overrides(settings, Some(redis.clone()), overrides).await;
        let me = app.signed_in(&format!("user{}", seen.len())).await;
        let body: Value = app.whoami(&me).await.json().await.unwrap();
        let created = humantime::parse_rfc3339(body["session"]["created_at"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let redis_now = {
            let reply = redis.command(&["TIME"]).unwrap();
            let fields: Vec<&str> = reply
                .lines()
                .filter(|l| !l.starts_with(['*', '$']))
                .collect();
            fields[0].parse::<i64>().unwrap() * 1000 + fields[1].parse::<i64>().unwrap() / 1000
        };
        let off = redis_now - created;
        assert!(
            (0..2_000).contains(&off),
            "skew {skew}: created {off} ms before Redis's now"
        );
        let offset = app.metric("session_clock_offset_seconds").await;
        assert!(
            (offset + skew as f64 / 1000.0).abs() < 0.5,
            "skew {skew}: exported offset {offset}"
        );
        seen.push(off);
    }
}

/// `WAIT` cannot be confirmed (no replica): every ending write is applied but unacknowledged.
/// Its event must reach the feed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_end_of_a_session_still_reaches_the_feed() {
    let (healthy, unconfirmed) = healthy_and_unconfirmed().await;
    let me = healthy.signed_in("alice").await;
    let handle = {
        let body: Value = healthy.whoami(&me).await.json().await.unwrap();
        body["session"]["handle"].as_str().unwrap().to_owned()
    };
    let r = unconfirmed
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Applied, though unacknowledged...
    assert!(!healthy.check(&me).await);
    // ...and in the feed.
    let events = healthy.feed().await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "logout" && e["handles"][0] == handle.as_str()),
        "{events:?}"
    );

    let other = healthy.signed_in("alice").await;
    let id = user_id(&healthy, &other).await;
    let r = unconfirmed
        .public(Method::DELETE, "/v1/sessions?include_current=true")
        .header(header::COOKIE, &other.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(!healthy.check(&other).await);
    let events = healthy.feed().await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "revoked_all" && e["user_id"] == id.as_str() && e["all"] == true),
        "{events:?}"
    );
}

/// The event cannot be appended (the service's Redis user may not write the feed): the end is not
/// acknowledged, and the event waits in the outbox until the feed takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_feed_refused_is_published_once_it_can_be() {
    let redis = RedisServer::start();
    let acl = |extra: &str| {
        let mut args = vec![
            "ACL",
            "SETUSER",
            "svc",
            "on",
            ">svc-secret",
            "+@all",
            "resetkeys",
            "~sess:{*",
            "~sess:name:*",
            "~sess:rl:*",
        ];
        if !extra.is_empty() {
            args.push(extra);
        }
        let reply = redis.command(&args).unwrap();
        assert!(reply.starts_with("+OK"), "{reply}");
    };
    acl("");
    let app = spawn_app_on(Some(redis.clone()), |s| {
        s.redis_url = Some(format!("redis://svc:svc-secret@127.0.0.1:{}", redis.port));
    })
    .await;
    let me = app.signed_in("alice").await;
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "not acknowledged without its event");
    assert!(!app.check(&me).await);
    assert_eq!(app.state.publisher.pending(), 1);
    assert_eq!(redis.integer(&["XLEN", "sess:events"]), 0);

    acl("~sess:events");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.publisher.pending() > 0 {
        assert!(std::time::Instant::now() < deadline, "outbox never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entries = redis.command(&["XRANGE", "sess:events", "-", "+"]).unwrap();
    assert!(entries.contains("logout"), "{entries}");
}

/// Retrying a revocation whose reply was lost finds nothing to end; it still publishes the end.
async fn a_retried_revocation_publishes_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = app.signed_in("alice").await;
    let gone = app.signed_in("alice").await;
    let handle = {
        let body: Value = app.whoami(&gone).await.json().await.unwrap();
        body["session"]["handle"].as_str().unwrap().to_owned()
    };
    for expected in [204, 404] {
        let r = app
            .public(Method::DELETE, &format!("/v1/sessions/{handle}"))
            .header(header::COOKIE, &me.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
    }
    let revoked = app
        .feed()
        .await
        .into_iter()
        .filter(|e| e["type"] == "revoked" && e["handles"][0] == handle.as_str())
        .count();
    assert_eq!(revoked, 2);
}
crate::each_backend!(a_retried_revocation_publishes_again);

/// Events of types this version does not know are passed on, and the position moves past them:
/// a hundred and more in a row must not stall a reader.
async fn unknown_event_types_do_not_stall_the_feed(backend: Backend) {
    use session_server::domain::events::{EventKind, SessionEvent};
    let app = spawn_app(backend).await;
    let start: Value = app
        .admin(Method::GET, "/admin/v1/events?after=latest")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = uuid::Uuid::now_v7();
    for _ in 0..150 {
        let event = SessionEvent {
            kind: EventKind::Other("session_ended_v2".into()),
            user_id: user,
            handles: vec![uuid::Uuid::new_v4()],
            all: false,
            kept: None,
            at_ms: app.state.clock.now_ms(),
            by: None,
        };
        app.state.store.publish(&event).await.unwrap();
    }
    let mut position = start["last_id"].as_str().unwrap().to_owned();
    let mut seen = 0;
    for _ in 0..4 {
        let page: Value = app
            .admin(
                Method::GET,
                &format!("/admin/v1/events?after={position}&wait=0&max=100"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        assert!(events.iter().all(|e| e["type"] == "session_ended_v2"));
        seen += events.len();
        position = page["last_id"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, 150);
}
crate::each_backend!(unknown_event_types_do_not_stall_the_feed);

/// A login held between its password check and its session, while the user enrols TOTP: the
/// enrolment changed the credentials, so the login gets no session (it would otherwise be a
/// session of a user with a factor that never had to prove it).
async fn a_login_racing_an_enrolment_gets_no_session(backend: Backend) {
    let (app, gate) = spawn_gated(backend).await;
    let owner = app.signed_in("omar").await;
    let login = gate.hold_login(&app, "omar", "omar-password").await;
    crate::factors::enroll(&app, &owner).await;
    gate.release.notify_one();
    let r = login.await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(session_cookie(&r).is_none());
    assert_eq!(crate::helpers::error_code(r).await, "invalid_credentials");
}
crate::each_backend!(a_login_racing_an_enrolment_gets_no_session);
