//! The loss of a Redis primary whose replica had not received everything: acknowledged ends
//! (logout, revocations, password change, disable) must stay ended after the replica is
//! promoted, on Cluster and on Sentinel, with the default configuration.
//!
//! The harness cuts the victim primary's replication link with the packet filter (both processes
//! keep running, nothing notices), makes ends, kills the primary, waits for the promotion and
//! only then restores the link. A replica that never received a write is exactly what a failover
//! promotes in real life; killing a primary whose replica is in sync proves nothing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use session_client::{CacheSettings, SessionClient};

use crate::{
    deployments::{Cluster, MASTER, Node, SentinelGroup, holds, replicas_in_sync, wait_for},
    helpers::{
        API_KEY, Browser, TestApp, error_code, retried_while_unavailable, spawn_with_settings,
        test_settings, unique_prefix,
    },
    links::ReplicationCut,
};

/// The cached client's bound on how stale its view of the feed may be.
const FEED_STALENESS: Duration = Duration::from_secs(1);

/// One test user: its id and three sessions (`s[0]`, `s[1]`, `s[2]`).
struct Account {
    name: String,
    id: String,
    s: Vec<Browser>,
}

/// How a session is expected to answer after the failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Its end was acknowledged: ended on every replica, through every path.
    Ended,
    /// No end was ever asked for: valid.
    Valid,
    /// Its end answered 503 (outcome unknown): either answer, until a retry converges.
    Unknown,
}

/// The deployment under test, with the node to kill and the replica that will take over.
struct Topology<'a> {
    name: &'static str,
    urls: Setting,
    /// The service's key prefix.
    prefix: String,
    victim: &'a Node,
    heir: &'a Node,
}

enum Setting {
    Cluster(String),
    Sentinel(String),
}

/// Signs in users, three sessions each, until `victims` holds at least `on_victim` of them and
/// the rest at least `elsewhere` (bounded).
async fn sign_in_accounts(
    app: &TestApp,
    victims: impl Fn(&Account) -> bool,
    on_victim: usize,
    elsewhere: usize,
) -> (Vec<Account>, Vec<Account>) {
    let (mut here, mut there) = (Vec::new(), Vec::new());
    for i in 0..200 {
        if here.len() >= on_victim && there.len() >= elsewhere {
            break;
        }
        let name = format!("user{i}");
        let mut s = vec![app.signed_in(&name).await];
        for _ in 1..3 {
            let r = app.login(&name, &format!("{name}-password")).await;
            assert_eq!(r.status(), 200);
            s.push(Browser {
                cookie: crate::helpers::session_cookie(&r).unwrap(),
            });
        }
        let who: Value = app.whoami(&s[0]).await.json().await.unwrap();
        let account = Account {
            name,
            id: who["user"]["id"].as_str().unwrap().to_owned(),
            s,
        };
        if victims(&account) {
            here.push(account);
        } else {
            there.push(account);
        }
    }
    assert!(here.len() >= on_victim && there.len() >= elsewhere);
    (here, there)
}

/// The status of a session's check on `app`: 200 valid, 401 ended.
async fn status(app: &TestApp, browser: &Browser) -> StatusCode {
    app.whoami(browser).await.status()
}

/// An end that the link cut keeps from being confirmed: 503 `store_unconfirmed` (or
/// `store_unavailable`), with `Retry-After`.
async fn assert_unconfirmed(r: reqwest::Response, what: &str) {
    assert_eq!(
        r.status(),
        503,
        "{what}: an unconfirmed end is not acknowledged"
    );
    assert!(
        r.headers().contains_key(header::RETRY_AFTER),
        "{what}: Retry-After"
    );
    let code = error_code(r).await;
    assert!(
        code == "store_unconfirmed" || code == "store_unavailable",
        "{what}: {code}"
    );
}

async fn end_everywhere(app: &TestApp, b: &Browser) -> reqwest::Response {
    app.public(Method::DELETE, "/v1/sessions?include_current=true")
        .header(header::COOKIE, &b.cookie)
        .send()
        .await
        .unwrap()
}

async fn change_password(app: &TestApp, account: &Account, b: &Browser) -> reqwest::Response {
    app.public(Method::POST, "/v1/password")
        .header(header::COOKIE, &b.cookie)
        .json(&json!({
            "current_password": format!("{}-password", account.name),
            "new_password": format!("{}-renewed", account.name),
        }))
        .send()
        .await
        .unwrap()
}

async fn disable(app: &TestApp, account: &Account) -> reqwest::Response {
    app.admin(
        Method::POST,
        &format!("/admin/v1/users/{}/disable", account.id),
    )
    .send()
    .await
    .unwrap()
}

/// What the ends of [`end_sessions`] must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Acknowledged (confirmed by a replica) at once.
    Acknowledged,
    /// 503: no replica can confirm them.
    Unconfirmed,
    /// Retried while they answer 503 (the topology settling after a failover), until
    /// acknowledged: a retry converges.
    Converge,
}

/// Sends a request; in [`Mode::Converge`], again while it answers 503 (bounded).
async fn send<F: Future<Output = reqwest::Response>>(
    mode: Mode,
    request: impl Fn() -> F,
) -> reqwest::Response {
    if mode == Mode::Converge {
        retried_while_unavailable(request).await
    } else {
        request().await
    }
}

/// Makes one of four kinds of end on `account`, through both replicas, and notes what each of
/// its sessions must answer afterwards. Returns the number of ends asked for.
async fn end_sessions(
    a: &TestApp,
    b: &TestApp,
    account: &Account,
    kind: usize,
    mode: Mode,
    expect: &mut Vec<(Browser, Expect)>,
) -> usize {
    let outcome = if mode == Mode::Unconfirmed {
        Expect::Unknown
    } else {
        Expect::Ended
    };
    let (what, answers): (&str, Vec<reqwest::Response>) = match kind % 4 {
        0 => {
            // A logout, and its retry on the other replica: the retry finds the session gone on
            // the primary, and must still not be acknowledged until a replica has the end.
            let first = send(mode, || a.logout(&account.s[0])).await;
            let retry = send(mode, || b.logout(&account.s[0])).await;
            expect.push((account.s[0].clone(), outcome));
            expect.push((account.s[1].clone(), Expect::Valid));
            expect.push((account.s[2].clone(), Expect::Valid));
            ("logout and its retry", vec![first, retry])
        }
        1 => {
            let r = send(mode, || end_everywhere(b, &account.s[1])).await;
            for s in &account.s {
                expect.push((s.clone(), outcome));
            }
            ("log out everywhere", vec![r])
        }
        2 => {
            let mut r = send(mode, || change_password(a, account, &account.s[2])).await;
            if mode == Mode::Converge && r.status() == 403 {
                // An earlier attempt that answered 503 stood: the new password is the one.
                let login = a
                    .login(&account.name, &format!("{}-renewed", account.name))
                    .await;
                assert_eq!(login.status(), 200, "the password change stood");
                r = login;
            }
            expect.push((account.s[0].clone(), outcome));
            expect.push((account.s[1].clone(), outcome));
            // The session that changed the password stays.
            let kept = if mode == Mode::Unconfirmed {
                Expect::Unknown
            } else {
                Expect::Valid
            };
            expect.push((account.s[2].clone(), kept));
            ("password change", vec![r])
        }
        _ => {
            let r = send(mode, || disable(b, account)).await;
            for s in &account.s {
                expect.push((s.clone(), outcome));
            }
            ("disable", vec![r])
        }
    };
    let ends = answers.len();
    for r in answers {
        if mode == Mode::Unconfirmed {
            assert_unconfirmed(r, &format!("{what} of {}", account.name)).await;
        } else {
            let status = r.status();
            assert!(
                status.is_success(),
                "{what} of {}: {status} {}",
                account.name,
                r.text().await.unwrap_or_default()
            );
        }
    }
    ends
}

/// Waits until `app` answers every session as `expect` says (Unknown: either), never 5xx once
/// answering; returns how long that took since `since`.
async fn answering_again(
    apps: &[&TestApp],
    expect: &[(Browser, Expect)],
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        let mut all = true;
        'probe: for app in apps {
            for (browser, e) in expect {
                let s = status(app, browser).await;
                let right = match e {
                    Expect::Valid => s == 200,
                    Expect::Ended => s == 401,
                    Expect::Unknown => s == 200 || s == 401,
                };
                if !right {
                    // While the shard fails over, 503; never an ended session accepted, never a
                    // live one refused.
                    assert_eq!(s, 503, "answered {s} for a session expected {e:?}");
                    all = false;
                    break 'probe;
                }
            }
        }
        if all {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "not answering again within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts every session's answer on every replica: acknowledged ends 401, untouched sessions 200.
async fn assert_outcomes(apps: &[&TestApp], expect: &[(Browser, Expect)], when: &str) {
    for (n, app) in apps.iter().enumerate() {
        for (i, (browser, e)) in expect.iter().enumerate() {
            let s = status(app, browser).await;
            match e {
                Expect::Ended => assert_eq!(
                    s, 401,
                    "{when}: session {i}, whose end was acknowledged, answered {s} on replica {n}"
                ),
                Expect::Valid => assert_eq!(
                    s, 200,
                    "{when}: session {i}, never ended, answered {s} on replica {n}"
                ),
                Expect::Unknown => assert!(
                    s == 200 || s == 401,
                    "{when}: session {i} answered {s} on replica {n}"
                ),
            }
        }
    }
}

async fn run(topology: Topology<'_>, victims: impl Fn(&Account) -> bool) {
    let mut settings = test_settings();
    match &topology.urls {
        Setting::Cluster(urls) => settings.redis_cluster_nodes = Some(urls.clone()),
        Setting::Sentinel(urls) => {
            settings.redis_sentinels = Some(urls.clone());
            settings.redis_sentinel_master = Some(MASTER.into());
        }
    }
    // The default SESSION_REDIS_WAIT_REPLICAS (auto); a short store timeout, so that an
    // unconfirmed end answers within 0.3 s.
    settings.redis_prefix = Some(topology.prefix.clone());
    // Replicas answer a `WAIT` within 1 s even on a loaded machine.
    settings.redis_timeout = Some("2".parse().unwrap());
    settings.login_max_attempts_per_ip = Some(100_000);
    let a = spawn_with_settings(settings.clone(), None).await;
    let b = spawn_with_settings(settings, None).await;
    let cached = SessionClient::builder(&b.admin, API_KEY)
        .cache(CacheSettings {
            max_entries: 10_000,
            max_age: Duration::from_secs(300),
            feed_staleness: FEED_STALENESS,
        })
        .build()
        .unwrap();

    let elsewhere_wanted = if matches!(topology.urls, Setting::Cluster(_)) {
        8
    } else {
        0
    };
    let (on_victim, elsewhere) = sign_in_accounts(&a, victims, 12, elsewhere_wanted).await;
    let accounts: Vec<&Account> = on_victim.iter().chain(&elsewhere).collect();
    let mut expect: Vec<(Browser, Expect)> = Vec::new();
    let mut acknowledged = 0;
    wait_for("replicas in sync", Duration::from_secs(20), || {
        topology.victim.replicas_in_sync()
    });

    // Before the cut: ends confirmed by the replica.
    for (k, account) in on_victim[..4].iter().enumerate() {
        acknowledged += end_sessions(&a, &b, account, k, Mode::Acknowledged, &mut expect).await;
    }
    // Every other session, seen through the cache (so that it holds them when their ends come).
    for account in &accounts {
        for s in &account.s {
            let token = s.cookie.split_once('=').unwrap().1;
            assert!(
                cached.check(token).await.unwrap().is_some()
                    || expect
                        .iter()
                        .any(|(e, x)| e.cookie == s.cookie && *x == Expect::Ended)
            );
        }
    }
    wait_for("replicas in sync", Duration::from_secs(20), || {
        topology.victim.replicas_in_sync()
    });

    let cut = ReplicationCut::cut(topology.victim.port);
    let mut unconfirmed = 0;
    let mut during_cut = Vec::new();
    for (k, account) in on_victim[4..8].iter().enumerate() {
        unconfirmed += end_sessions(&a, &b, account, k, Mode::Unconfirmed, &mut during_cut).await;
    }
    // On Cluster, ends on the other shards are confirmed as usual.
    for (k, account) in elsewhere.iter().take(4).enumerate() {
        acknowledged += end_sessions(&a, &b, account, k, Mode::Acknowledged, &mut expect).await;
    }
    for account in on_victim[8..].iter().chain(elsewhere.iter().skip(4)) {
        for s in &account.s {
            expect.push((s.clone(), Expect::Valid));
        }
    }
    // Reported: the metric and /readyz's detail.
    assert!(a.metric("session_store_ends_unconfirmed_total").await >= 1.0);
    let ready = a.readyz().await;
    assert_eq!(ready["replication"]["setting"], "auto", "{ready}");
    assert_eq!(ready["replication"]["replicas_required"], 1, "{ready}");
    let last_end_ack = Instant::now();

    let settled = expect.clone();
    expect.extend(during_cut);
    let kill = Instant::now();
    topology.victim.kill();
    wait_for("the replica's promotion", Duration::from_secs(30), || {
        topology.heir.is_primary()
    });
    let promoted = kill.elapsed();
    cut.restore();

    let back = answering_again(&[&a, &b], &expect, kill, Duration::from_secs(30)).await;
    assert_outcomes(&[&a, &b], &expect, "after the promotion").await;
    // The cache on another replica refuses every acknowledged end too, once its bound passed.
    let bound = last_end_ack + FEED_STALENESS + Duration::from_millis(250);
    if let Some(left) = bound.checked_duration_since(Instant::now()) {
        tokio::time::sleep(left).await;
    }
    for (browser, e) in &expect {
        if *e == Expect::Ended {
            let token = browser.cookie.split_once('=').unwrap().1;
            assert!(
                !matches!(cached.check(token).await, Ok(Some(_))),
                "the cached client accepted an acknowledged end after the promotion"
            );
        }
    }

    // The old primary returns (as a replica of its successor); the unconfirmed ends are retried
    // and converge.
    topology.victim.restart();
    wait_for(
        "the old primary to replicate again",
        Duration::from_secs(30),
        || topology.heir.replicas_in_sync(),
    );
    let mut expect = settled;
    for (k, account) in on_victim[4..8].iter().enumerate() {
        acknowledged += end_sessions(&a, &b, account, k, Mode::Converge, &mut expect).await;
    }
    // Ten seconds on, every check still answers as it should, on both replicas.
    let soak = Instant::now();
    let mut rounds = 0;
    while soak.elapsed() < Duration::from_secs(10) && rounds < 200 {
        assert_outcomes(&[&a, &b], &expect, "after the failover").await;
        rounds += 1;
    }
    let survived = expect.iter().filter(|(_, e)| *e == Expect::Ended).count();
    println!(
        "{}: {acknowledged} ends acknowledged and all kept (their retries included); {unconfirmed} ends answered 503 during the cut and converged on retry; \
         promotion {promoted:?} after the kill, every session answering as expected {back:?} after it; \
         {survived} sessions ended, {} valid, checked {rounds} times over 10 s",
        topology.name,
        expect.iter().filter(|(_, e)| *e == Expect::Valid).count(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ends_survive_a_cluster_failover_with_the_link_cut() {
    let cluster = Cluster::start();
    let prefix = unique_prefix();
    // A primary that does not hold the event feed: an end is acknowledged only once its event
    // is confirmed too, so with the feed's shard cut every end would answer 503 (as on
    // Sentinel). The other shards' ends must go on being acknowledged.
    let feed = format!("{prefix}:events");
    let victim = cluster
        .primaries()
        .into_iter()
        .find(|p| !holds(p, &feed))
        .expect("a primary without the feed's slot");
    let heir = cluster.replica_of(victim);
    run(
        Topology {
            name: "cluster",
            urls: Setting::Cluster(cluster.urls()),
            prefix: prefix.clone(),
            victim,
            heir,
        },
        |account: &Account| {
            // The victim answers for the user's key rather than redirecting.
            holds(
                victim,
                &format!("{prefix}:{{{}}}:user", account.id.replace('-', "")),
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ends_survive_a_sentinel_failover_with_the_link_cut() {
    let group = SentinelGroup::start();
    run(
        Topology {
            name: "sentinel",
            urls: Setting::Sentinel(group.urls()),
            prefix: unique_prefix(),
            victim: &group.primary,
            heir: &group.replica,
        },
        |_| true,
    )
    .await;
}

/// A primary and one replica started by hand (no Sentinel): `auto` finds the replica, and ends
/// wait for it. With the link cut, a logout answers 503; the same logout retried through a
/// replica of the service started afterwards (its connections fresh, having written nothing)
/// finds the session already gone on the primary and must not acknowledge that either: the
/// `WAIT` behind its answer confirms the read it followed, and the replica does not have the
/// end. Once the link is back, the retry is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_end_is_not_confirmed_by_a_connection_that_wrote_nothing() {
    let primary = crate::helpers::RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let replica = crate::helpers::RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &primary.port.to_string(),
    ]);
    wait_for("the replica in sync", Duration::from_secs(15), || {
        replica
            .command(&["INFO", "replication"])
            .is_some_and(|i| i.contains("master_link_status:up"))
    });
    let mut settings = test_settings();
    settings.redis_url = Some(primary.url());
    settings.redis_timeout = Some("2".parse().unwrap());
    let a = spawn_with_settings(settings.clone(), None).await;
    let browser = a.signed_in("alice").await;
    let ready = a.readyz().await;
    assert_eq!(ready["replication"]["replicas_required"], 1, "{ready}");
    assert_eq!(a.metric("session_store_replicas_required").await, 1.0);

    let primary_port = primary.port;
    let synced = || {
        replicas_in_sync(
            &crate::helpers::RedisServer::command_on(primary_port, &["INFO", "replication"])
                .unwrap_or_default(),
        )
    };
    wait_for(
        "the replica to have the login",
        Duration::from_secs(10),
        synced,
    );
    let cut = ReplicationCut::cut(primary.port);
    assert_unconfirmed(a.logout(&browser).await, "the logout").await;
    assert_eq!(status(&a, &browser).await, 401, "ended on the primary");

    let b = spawn_with_settings(settings, None).await;
    assert_unconfirmed(b.logout(&browser).await, "the retried logout").await;
    let ready = a.readyz().await;
    assert_eq!(ready["replication"]["last_end"], "unconfirmed", "{ready}");

    cut.restore();
    let r = send(Mode::Converge, || b.logout(&browser)).await;
    assert_eq!(
        r.status(),
        204,
        "the retry converges once the replica has the end"
    );
    assert_eq!(status(&b, &browser).await, 401);
    let ready = b.readyz().await;
    assert_eq!(ready["replication"]["last_end"], "confirmed", "{ready}");
}
