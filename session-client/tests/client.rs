//! session-client against the real session-server on a real `redis-server` (both started here).

use std::time::{Duration, Instant};

use session_client::{CacheSettings, Error, SessionClient};

mod support;

use support::{KEY, Server, server, server_with};

fn token_of(cookie: &str) -> &str {
    cookie.split("__Host-session=").nth(1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_tells_valid_missing_malformed_and_revoked_sessions_apart() {
    let server = server().await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let cookie = server.sign_in("alice").await;

    let session = client
        .check(&cookie)
        .await
        .unwrap()
        .expect("valid by cookie header");
    assert_eq!(session.username, "alice");
    let by_token = client.check(token_of(&cookie)).await.unwrap().unwrap();
    assert_eq!(by_token.handle, session.handle);
    assert!(session.expires_at().is_some());

    assert_eq!(client.check("theme=dark").await.unwrap(), None, "missing");
    assert_eq!(
        client.check("__Host-session=garbage").await.unwrap(),
        None,
        "malformed"
    );
    server.logout(&cookie).await;
    assert_eq!(client.check(&cookie).await.unwrap(), None, "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_not_valid() {
    let server = server_with(|s| s.idle_timeout = Some("0.3".parse().unwrap())).await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let cookie = server.sign_in("alice").await;
    assert!(client.check(&cookie).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.check(&cookie).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_or_a_stopped_service_is_an_error_never_a_session() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let wrong = SessionClient::new(&server.admin, "not-the-key").unwrap();
    assert!(matches!(
        wrong.check(&cookie).await,
        Err(Error::Unauthorized)
    ));

    let client = SessionClient::builder(&server.admin, KEY)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(client.check(&cookie).await.unwrap().is_some());
    server.stop().await;
    assert!(matches!(
        client.check(&cookie).await,
        Err(Error::Unavailable(_))
    ));
}

fn cached_client(server: &Server) -> SessionClient {
    SessionClient::builder(&server.admin, KEY)
        .cache(CacheSettings::default())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Checks until the answer is served from the cache (the feed must be followed first).
async fn warm(client: &SessionClient, cookie: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.is_cached(cookie) {
        client.check(cookie).await.unwrap().expect("valid session");
        assert!(Instant::now() < deadline, "the answer was never cached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_dropped_within_100_ms_of_its_revocation() {
    let server = server().await;
    let client = cached_client(&server);
    let mut delays = Vec::new();
    for round in 0..10 {
        let cookie = server.sign_in(&format!("user{round}")).await;
        warm(&client, &cookie).await;
        server.logout(&cookie).await;
        let gone = until(Duration::from_secs(1), || !client.is_cached(&cookie))
            .await
            .expect("the cached entry is dropped");
        assert!(
            gone < Duration::from_millis(100),
            "round {round}: {gone:?} after the revocation"
        );
        assert_eq!(client.check(&cookie).await.unwrap(), None);
        delays.push(gone);
    }
    delays.sort();
    println!(
        "revocation reached the cache after: median {:?}, worst {:?}",
        delays[5], delays[9]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_fails_closed_when_the_feed_is_down() {
    let server = server().await;
    let client = cached_client(&server);
    let cookie = server.sign_in("alice").await;
    warm(&client, &cookie).await;
    server.stop().await;
    let stopped = until(Duration::from_secs(3), || !client.is_cached(&cookie)).await;
    assert!(
        stopped.is_some(),
        "the cache stops answering without its feed"
    );
    assert!(
        client.check(&cookie).await.is_err(),
        "an error, never a stale session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_feed_position_empties_the_cache() {
    let server = server().await;
    // The feed holds an event before the client starts following it.
    let carol = server.sign_in("carol").await;
    server.logout(&carol).await;
    let client = cached_client(&server);
    let cookie = server.sign_in("alice").await;
    warm(&client, &cookie).await;
    // Everything up to and past the client's position is trimmed away, then the feed moves on.
    let trim = server
        .redis
        .command(&["XTRIM", "sess:events", "MAXLEN", "0"]);
    assert!(
        trim.is_some_and(|r| r.starts_with(":1")),
        "XTRIM trims the one event"
    );
    let bob = server.sign_in("bob").await;
    server.logout(&bob).await;
    let emptied = until(Duration::from_secs(3), || !client.is_cached(&cookie)).await;
    assert!(
        emptied.is_some(),
        "the client forgot what it derived from the lost feed"
    );
    // It keeps working: the session is still valid and gets cached again.
    warm(&client, &cookie).await;
}
