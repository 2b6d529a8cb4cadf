//! The admin console over HTTP, as a browser would use it: sign in with an admin key, find a
//! user, sign out devices, disable and enable the user, follow the feed, sign out; console
//! sessions that expire, that work across replicas, and that end when their key is removed.

use std::time::{Duration, Instant};

use reqwest::{Method, header};
use sha2::{Digest, Sha256};

use crate::helpers::{
    API_KEY, Backend, CONSOLE_COOKIE, RedisServer, TestApp, console_cookie, csrf_of, spawn_app,
    spawn_app_on, spawn_app_with,
};

/// Runs an async test body on the embedded store and on a private standalone `redis-server`.
macro_rules! memory_and_redis {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::helpers::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::helpers::Backend::Redis).await;
            }
        }
    };
}

/// The id the console and the audit log give the test's admin key.
fn key_id() -> String {
    hex::encode(Sha256::digest(API_KEY.as_bytes()))[..12].to_owned()
}

/// The user id the admin API gives `username`.
async fn user_id(app: &TestApp, username: &str) -> String {
    let user: serde_json::Value = app
        .admin(Method::GET, &format!("/admin/v1/users?username={username}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    user["id"].as_str().unwrap().to_owned()
}

/// Where a 303 goes.
fn location(r: &reqwest::Response) -> String {
    r.headers()[header::LOCATION].to_str().unwrap().to_owned()
}

crate::each_backend!(an_operator_finds_a_user_and_signs_out_one_of_their_devices);
async fn an_operator_finds_a_user_and_signs_out_one_of_their_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.signed_in("alice").await;
    let phone = app.signed_in("alice").await;
    let alice = user_id(&app, "alice").await;
    let console = app.console().await;

    // Found by name, and by id: both lead to the user's page.
    let r = console.get("/console/users?q=alice").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/console/users/{alice}"));
    let r = console.get(&format!("/console/users?q={alice}")).await;
    assert_eq!(location(&r), format!("/console/users/{alice}"));
    let (status, page) = console.page(&format!("/console/users/{alice}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<h1 id="username">alice</h1>"#), "{page}");
    assert!(page.contains("Devices (2)"), "{page}");
    assert_eq!(page.matches(r#"<tr class="device""#).count(), 2, "{page}");
    // Each device with its kind, remembered flag, authentication time, level and address.
    for column in [
        "cookie",
        "127.0.0.1",
        "Signed in (authenticated)",
        "Remembered",
        "Level",
        r#"<td class="aal">aal1 (password)</td>"#,
    ] {
        assert!(page.contains(column), "{column}: {page}");
    }

    // Sign out the laptop's session by its handle.
    let whoami: serde_json::Value = app.whoami(&laptop).await.json().await.unwrap();
    let handle = whoami["session"]["handle"].as_str().unwrap().to_owned();
    let r = console
        .post(
            &format!("/console/users/{alice}/sessions/{handle}/revoke"),
            &csrf_of(&page),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/console/users/{alice}?done=revoked"));
    assert_eq!(app.whoami(&laptop).await.status(), 401, "the laptop is out");
    assert_eq!(app.whoami(&phone).await.status(), 200, "the phone is not");
    let (_, page) = console.page(&location(&r)).await;
    assert!(page.contains("The device was signed out."), "{page}");
    assert!(page.contains("Devices (1)"), "{page}");

    // In the feed as the admin API's revocation would be, naming the key and the address.
    let feed = app.feed().await;
    let event = feed
        .iter()
        .find(|e| e["type"] == "revoked" && e["handles"][0] == handle.as_str())
        .unwrap_or_else(|| panic!("{feed:?}"));
    assert_eq!(
        event["by"],
        serde_json::json!({"admin_key": key_id(), "client_ip": "127.0.0.1"})
    );
}

memory_and_redis!(feed_events_name_the_admin_who_caused_them_and_nobody_else);
async fn feed_events_name_the_admin_who_caused_them_and_nobody_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.signed_in("dora").await;
    let dora = user_id(&app, "dora").await;
    assert_eq!(app.logout(&own).await.status(), 204);
    let through_api = app.signed_in("dora").await;
    let me: serde_json::Value = app.whoami(&through_api).await.json().await.unwrap();
    let handle = me["session"]["handle"].as_str().unwrap().to_owned();
    let r = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/users/{dora}/sessions/{handle}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .admin(Method::POST, &format!("/admin/v1/users/{dora}/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let feed = app.feed().await;
    let by = |kind: &str| {
        feed.iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("{kind}: {feed:?}"))
            .get("by")
            .cloned()
    };
    let admin = Some(serde_json::json!({"admin_key": key_id(), "client_ip": "127.0.0.1"}));
    assert_eq!(by("logout"), None, "the user's own logout names nobody");
    assert_eq!(by("revoked"), admin);
    assert_eq!(by("user_disabled"), admin);
    // The console's feed page shows who.
    let console = app.console().await;
    let (_, page) = console.page("/console/events?after=0-0").await;
    assert!(
        page.contains(&format!(
            r#"<td class="by">key {} from 127.0.0.1</td>"#,
            key_id()
        )),
        "{page}"
    );
}

memory_and_redis!(an_operator_signs_out_every_device_then_disables_and_enables_the_user);
async fn an_operator_signs_out_every_device_then_disables_and_enables_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let one = app.signed_in("bob").await;
    let two = app.signed_in("bob").await;
    let bob = user_id(&app, "bob").await;
    let console = app.console().await;
    let page = format!("/console/users/{bob}");

    let r = console
        .submit(&page, &format!("{page}/sessions/revoke-all"))
        .await;
    assert_eq!(location(&r), format!("{page}?done=revoked_all"));
    assert_eq!(app.whoami(&one).await.status(), 401);
    assert_eq!(app.whoami(&two).await.status(), 401);

    let back = app.signed_in("bob").await;
    let r = console.submit(&page, &format!("{page}/disable")).await;
    assert_eq!(location(&r), format!("{page}?done=disabled"));
    assert_eq!(app.whoami(&back).await.status(), 401, "disabling signs out");
    assert_eq!(app.login("bob", "bob-password").await.status(), 401);
    let (_, html) = console.page(&page).await;
    assert!(html.contains(r#"<dd id="status">Disabled</dd>"#), "{html}");
    assert!(html.contains(r#"id="enable""#), "{html}");

    let r = console.submit(&page, &format!("{page}/enable")).await;
    assert_eq!(location(&r), format!("{page}?done=enabled"));
    assert_eq!(app.login("bob", "bob-password").await.status(), 200);

    let kinds: Vec<String> = app
        .feed()
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"revoked_all".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"user_disabled".to_owned()), "{kinds:?}");
}

memory_and_redis!(signing_in_sets_a_strict_cookie_and_signing_out_ends_the_console_session);
async fn signing_in_sets_a_strict_cookie_and_signing_out_ends_the_console_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let r = app.console_sign_in_with(API_KEY).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/");
    let set_cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for part in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=900",
    ] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(set_cookie.starts_with(&format!("{CONSOLE_COOKIE}=")));
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    assert!(!set_cookie.contains(API_KEY), "{set_cookie}");
    let cookie = console_cookie(&r).unwrap();
    let console = crate::helpers::Console {
        admin: app.admin.clone(),
        client: app.client.clone(),
        cookie,
    };
    let (status, page) = console.page("/console/").await;
    assert_eq!(status, 200);
    assert!(page.contains(&key_id()), "the page names the key by its id");
    assert!(!page.contains(API_KEY), "never the key itself");

    let r = console.submit("/console/", "/console/sign-out").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/sign-in");
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie names nothing any more.
    let (status, page) = console.page("/console/").await;
    assert_eq!(status, 401);
    assert!(page.contains(r#"id="sign-in""#), "the sign-in form: {page}");
}

memory_and_redis!(a_wrong_key_is_refused_with_a_page_and_no_cookie);
async fn a_wrong_key_is_refused_with_a_page_and_no_cookie(backend: Backend) {
    let app = spawn_app(backend).await;
    for key in ["", "not-the-key", &format!("{API_KEY}x")] {
        let r = app.console_sign_in_with(key).await;
        assert_eq!(r.status(), 401, "{key:?}");
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = r.text().await.unwrap();
        assert!(
            page.contains("That is not a valid admin API key."),
            "{page}"
        );
    }
}

memory_and_redis!(an_unknown_user_is_not_found_and_the_search_is_shown_back);
async fn an_unknown_user_is_not_found_and_the_search_is_shown_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let console = app.console().await;
    let (status, page) = console.page("/console/users?q=nobody").await;
    assert_eq!(status, 404);
    assert!(page.contains("No user has that name or id."), "{page}");
    assert!(page.contains(r#"value="nobody""#), "{page}");
    let (status, _) = console
        .page("/console/users?q=01890000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
    let (status, _) = console.page("/console/users/not-a-uuid").await;
    assert_eq!(status, 404);
}

memory_and_redis!(a_console_session_ends_after_its_lifetime);
async fn a_console_session_ends_after_its_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.console_ttl = Some("0.4".parse().unwrap());
    })
    .await;
    // Taken before signing in: the session's lifetime starts during the sign-in request, so an
    // instant taken after it could be later than the start and make an on-time end look early.
    let signed_in = Instant::now();
    let console = app.console().await;
    assert_eq!(console.page("/console/").await.0, 200);
    // Waits for the answer to change, for at most a few seconds: the lifetime is 0.4 s.
    let deadline = signed_in + Duration::from_secs(5);
    let ended = loop {
        let status = console.page("/console/").await.0;
        if status != 200 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(ended, 401);
    // Not before its lifetime, give or take the few milliseconds by which the service's reading
    // of Redis's clock (its time base) may differ from this process's.
    assert!(signed_in.elapsed() >= Duration::from_millis(390));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_is_stored_by_digest_with_a_ttl_and_works_on_every_replica() {
    let redis = RedisServer::start();
    let one = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let two = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let console = one.console().await;
    let token = console.cookie.split_once('=').unwrap().1.to_owned();

    let keys: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.contains(":console:"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains(&token), "the token is not the key");
    let stored = redis.command(&["GET", &keys[0]]).unwrap();
    assert!(!stored.contains(&token), "nor in the value: {stored}");
    assert!(!stored.contains(API_KEY), "{stored}");
    // A raw RESP integer: `:<ms>`.
    let ttl: i64 = redis
        .command(&["PTTL", &keys[0]])
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 900_000, "{ttl}");

    // Another replica knows the session.
    let on_two = crate::helpers::Console {
        admin: two.admin.clone(),
        ..console.clone()
    };
    assert_eq!(on_two.page("/console/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_ends_once_its_key_is_no_longer_configured() {
    let redis = RedisServer::start();
    let before = spawn_app_on(Some(redis.clone()), |_| {}).await;
    // A replica after a key rotation: only a new key is accepted.
    let rotated = spawn_app_on(Some(redis.clone()), |s| {
        s.admin_api_keys = Some(hex::encode(Sha256::digest(b"the-new-key")));
    })
    .await;
    let console = before.console().await;
    assert_eq!(console.page("/console/").await.0, 200);
    let on_rotated = crate::helpers::Console {
        admin: rotated.admin.clone(),
        ..console.clone()
    };
    assert_eq!(on_rotated.page("/console/").await.0, 401);
    // Ended for good: not even the replica that still knows the old key accepts it now.
    assert_eq!(console.page("/console/").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_carry_strict_security_headers() {
    let app = spawn_app(Backend::Memory).await;
    let console = app.console().await;
    for path in [
        "/console/",
        "/console/sign-in",
        "/console/events",
        "/console/users?q=nobody",
        "/console/static/console.js",
    ] {
        let r = console.get(path).await;
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    // No inline script or style anywhere: the script is a file.
    let (_, page) = console.page("/console/events").await;
    assert!(
        page.contains(r#"<script src="/console/static/console.js""#),
        "{page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
}

memory_and_redis!(the_feed_page_shows_console_actions_and_its_poll_answers_json);
async fn the_feed_page_shows_console_actions_and_its_poll_answers_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let _carol = app.signed_in("carol").await;
    let carol = user_id(&app, "carol").await;
    let console = app.console().await;
    let (status, page) = console.page("/console/events").await;
    assert_eq!(status, 200);
    let after = page
        .split(r#"data-after=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let user_page = format!("/console/users/{carol}");
    console
        .submit(&user_page, &format!("{user_page}/sessions/revoke-all"))
        .await;
    let r = console
        .get(&format!("/console/events/poll?after={after}"))
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["events"][0]["type"], "revoked_all", "{body}");
    assert_eq!(body["events"][0]["user_id"], carol.as_str(), "{body}");
    let (_, page) = console
        .page(&format!("/console/events?after={after}"))
        .await;
    assert!(
        page.contains(r#"<td class="type">revoked_all</td>"#),
        "{page}"
    );
    // Without a console session the poll is refused like the pages.
    let r = app
        .client
        .get(format!("{}/console/events/poll?after={after}", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
