//! What a session offers while it lives: remember me, re-authentication ("sudo mode"), bearer
//! sessions and app data, on every store.

use std::time::Duration;

use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use session_server::{domain::clock::Clock, state::Overrides};

use crate::{
    helpers::{
        Backend, Browser, COOKIE, RedisServer, TestApp, error_code, session_cookie,
        set_cookie_header, spawn_app, spawn_app_on, spawn_app_with, spawn_with_overrides,
        test_settings,
    },
    links::LossyProxy,
};

const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36";

async fn json_body(r: Response) -> Value {
    r.json().await.unwrap()
}

async fn login_with(app: &TestApp, name: &str, extra: Value) -> Response {
    let password = format!("{name}-password");
    let r = app.register(name, &password).await;
    assert!(r.status() == 201 || r.status() == 409);
    let mut body = json!({"username": name, "password": password});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.public(Method::POST, "/v1/login")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A bearer session: the token from the login's body.
async fn bearer_login(app: &TestApp, name: &str) -> (String, Value) {
    let r = login_with(app, name, json!({"token_delivery": "body"})).await;
    assert_eq!(r.status(), 200);
    assert!(
        set_cookie_header(&r).is_none(),
        "a bearer login sets no cookie"
    );
    assert_eq!(
        r.headers()[header::CACHE_CONTROL],
        "no-store",
        "a token in a body must not be cached"
    );
    let body = json_body(r).await;
    assert_eq!(body["token_type"], "Bearer");
    (body["token"].as_str().unwrap().to_owned(), body)
}

fn max_age(set_cookie: &str) -> Option<u64> {
    set_cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .map(|v| v.parse().unwrap())
}

async fn remember_me_gives_a_persistent_cookie_and_the_remember_timeouts(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.remember_absolute_timeout = Some("604800".parse().unwrap());
    })
    .await;
    let plain = login_with(&app, "alice", json!({})).await;
    let cookie = set_cookie_header(&plain).unwrap();
    assert_eq!(
        max_age(&cookie),
        None,
        "without remember: a browser-session cookie"
    );
    assert!(!cookie.contains("Expires"), "{cookie}");
    let plain = json_body(plain).await;
    assert_eq!(plain["session"]["remembered"], false);

    let remembered = login_with(&app, "alice", json!({"remember": true})).await;
    let cookie = set_cookie_header(&remembered).unwrap();
    assert_eq!(max_age(&cookie), Some(604_800), "{cookie}");
    let body = json_body(remembered).await;
    assert_eq!(body["session"]["remembered"], true);
    let created =
        humantime::parse_rfc3339(body["session"]["created_at"].as_str().unwrap()).unwrap();
    let absolute =
        humantime::parse_rfc3339(body["session"]["absolute_expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        absolute.duration_since(created).unwrap(),
        Duration::from_secs(604_800)
    );

    // A form login's checkbox.
    let form = app
        .public(Method::POST, "/v1/login")
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("remember", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 303);
    assert_eq!(max_age(&set_cookie_header(&form).unwrap()), Some(604_800));

    // The devices list says which sessions are remembered.
    let browser = Browser {
        cookie: session_cookie(&form).unwrap(),
    };
    let list = json_body(
        app.public(Method::GET, "/v1/sessions")
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let remembered: Vec<bool> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["remembered"].as_bool().unwrap())
        .collect();
    assert_eq!(remembered.iter().filter(|r| **r).count(), 2, "{list}");
    assert_eq!(remembered.len(), 3);
}
crate::each_backend!(remember_me_gives_a_persistent_cookie_and_the_remember_timeouts);

#[tokio::test]
async fn remember_must_be_a_boolean_or_a_checkbox() {
    let app = spawn_app(Backend::Memory).await;
    let r = login_with(&app, "alice", json!({"remember": "yes please"})).await;
    assert_eq!(r.status(), 400);
    let r = login_with(&app, "alice", json!({"remember": false})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(max_age(&set_cookie_header(&r).unwrap()), None);
}

async fn reauthentication_refreshes_authenticated_at_and_unlocks_fresh_only_actions(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.fresh_auth_max_age = Some("1".parse().unwrap());
    })
    .await;
    let me = app.signed_in("alice").await;
    let who = json_body(app.whoami(&me).await).await;
    assert_eq!(
        who["session"]["authenticated_at"], who["session"]["created_at"],
        "a login is an authentication"
    );
    // Fresh right after login.
    let r = app
        .public(Method::DELETE, "/v1/sessions")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The configured age passes (1 s, whole seconds are stored).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for request in [
        app.public(Method::DELETE, "/v1/sessions"),
        app.public(Method::POST, "/v1/password").json(&json!({
            "current_password": "alice-password", "new_password": "a brand new password"
        })),
    ] {
        let r = request
            .header(header::COOKIE, &me.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(error_code(r).await, "reauthentication_required");
    }

    // A wrong password is refused and changes nothing.
    let r = app
        .public(Method::POST, "/v1/session/reauthenticate")
        .header(header::COOKIE, &me.cookie)
        .json(&json!({"password": "not it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "wrong_password");

    let r = app
        .public(Method::POST, "/v1/session/reauthenticate")
        .header(header::COOKIE, &me.cookie)
        .json(&json!({"password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again = json_body(r).await;
    assert!(
        again["session"]["authenticated_at"].as_str() > who["session"]["authenticated_at"].as_str(),
        "{again}"
    );
    // Every check reports it.
    let check = json_body(
        app.admin(Method::POST, "/admin/v1/sessions/check")
            .json(&json!({"cookie": me.cookie}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        check["session"]["authenticated_at"],
        again["session"]["authenticated_at"]
    );
    let r = app
        .public(Method::DELETE, "/v1/sessions")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "fresh again");
}
crate::each_backend!(reauthentication_refreshes_authenticated_at_and_unlocks_fresh_only_actions);

#[tokio::test]
async fn reauthentication_is_throttled_like_a_login_and_checked_for_cross_site_requests() {
    let app = spawn_app_with(Backend::Memory, |s| {
        s.login_max_failures_per_user = Some(2);
    })
    .await;
    let me = app.signed_in("alice").await;
    let reauth = |password: &str| {
        app.public(Method::POST, "/v1/session/reauthenticate")
            .header(header::COOKIE, &me.cookie)
            .json(&json!({ "password": password }))
    };
    for _ in 0..2 {
        assert_eq!(reauth("wrong").send().await.unwrap().status(), 403);
    }
    // The username's failure budget is spent, by re-authentications as by logins.
    let r = reauth("alice-password").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(app.login("alice", "alice-password").await.status(), 429);

    let r = app
        .client
        .post(format!("{}/v1/session/reauthenticate", app.public))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &me.cookie)
        .json(&json!({"password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "cross_origin_refused");
}

#[tokio::test]
async fn a_form_reauthentication_redirects_back_or_to_its_page_with_the_error() {
    let app = spawn_app(Backend::Memory).await;
    let me = app.signed_in("alice").await;
    let post = |password: &str| {
        app.public(Method::POST, "/v1/session/reauthenticate")
            .header(header::COOKIE, &me.cookie)
            .form(&[("password", password), ("return_to", "/devices")])
    };
    let r = post("wrong").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/reauthenticate?error=wrong_password&return_to=%2Fdevices"
    );
    let r = post("alice-password").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/devices");
    let r = app
        .public(Method::POST, "/v1/session/reauthenticate")
        .header(header::COOKIE, &me.cookie)
        .form(&[
            ("password", "alice-password"),
            ("return_to", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no open redirect");
}

async fn bearer_sessions_work_only_as_bearers_and_skip_cross_site_checks(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, body) = bearer_login(&app, "alice").await;
    assert_eq!(body["session"]["kind"], "bearer");
    let handle = body["session"]["handle"].as_str().unwrap().to_owned();
    let as_bearer = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.public))
            .bearer_auth(&token)
    };
    let r = as_bearer(Method::GET, "/v1/session").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(r).await["user"]["username"], "alice");

    // Not as a cookie.
    let r = app
        .public(Method::GET, "/v1/session")
        .header(header::COOKIE, format!("{COOKIE}={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // And a cookie session's token is not a bearer token.
    let browser = app.signed_in("alice").await;
    let r = app
        .client
        .get(format!("{}/v1/session", app.public))
        .bearer_auth(browser.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A malformed Authorization header is no session, even next to a live cookie.
    let r = app
        .public(Method::GET, "/v1/session")
        .header(header::COOKIE, &browser.cookie)
        .header(header::AUTHORIZATION, "Basic YWxpY2U6eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Nothing ambient: a bearer request from any origin may change state; a cookie one may not.
    let r = as_bearer(Method::DELETE, &format!("/v1/sessions/{handle}-nope"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "past the origin check");
    let r = app
        .client
        .delete(format!("{}/v1/sessions", app.public))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Listed with its kind, checked by the admin API with the Authorization header.
    let list = json_body(as_bearer(Method::GET, "/v1/sessions").send().await.unwrap()).await;
    let kinds: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(
        kinds.contains(&"bearer") && kinds.contains(&"cookie"),
        "{list}"
    );
    let check = |body: Value| {
        app.admin(Method::POST, "/admin/v1/sessions/check")
            .json(&body)
            .send()
    };
    let active = |v: Value| v["active"] == true;
    assert!(active(
        json_body(
            check(json!({"authorization": format!("Bearer {token}")}))
                .await
                .unwrap()
        )
        .await
    ));
    assert!(!active(
        json_body(
            check(json!({"cookie": format!("{COOKIE}={token}")}))
                .await
                .unwrap()
        )
        .await
    ));
    assert!(!active(
        json_body(
            check(json!({"authorization": format!("Bearer {}", browser.token())}))
                .await
                .unwrap()
        )
        .await
    ));
    assert!(active(
        json_body(check(json!({ "token": token })).await.unwrap()).await
    ));

    // Logged out like any session.
    let r = as_bearer(Method::POST, "/v1/logout").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = as_bearer(Method::GET, "/v1/session").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        app.whoami(&browser).await.status(),
        200,
        "the cookie one lives"
    );
}
crate::each_backend!(bearer_sessions_work_only_as_bearers_and_skip_cross_site_checks);

#[tokio::test]
async fn a_form_login_cannot_ask_for_the_token_in_the_body() {
    let app = spawn_app(Backend::Memory).await;
    app.register("alice", "alice-password").await;
    let r = app
        .public(Method::POST, "/v1/login")
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("token_delivery", "body"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

fn data_path(user: &str, handle: &str) -> String {
    format!("/admin/v1/users/{user}/sessions/{handle}/data")
}

async fn check_cookie(app: &TestApp, browser: &Browser) -> Value {
    json_body(
        app.admin(Method::POST, "/admin/v1/sessions/check")
            .json(&json!({"cookie": browser.cookie}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn patch(app: &TestApp, path: &str, if_match: Option<&str>, body: &str) -> Response {
    let mut request = app
        .admin(Method::PATCH, path)
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body(body.to_owned());
    if let Some(tag) = if_match {
        request = request.header(header::IF_MATCH, tag);
    }
    request.send().await.unwrap()
}

async fn session_data_is_merge_patched_under_optimistic_concurrency(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = app.signed_in("alice").await;
    let check = check_cookie(&app, &me).await;
    assert_eq!(check["data"], json!({}));
    assert_eq!(check["data_version"], 0);
    let path = data_path(
        check["user"]["id"].as_str().unwrap(),
        check["session"]["handle"].as_str().unwrap(),
    );
    let r = app.admin(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.headers()[header::ETAG], "\"0\"");
    assert_eq!(json_body(r).await, json!({"version": 0, "data": {}}));

    let r = patch(
        &app,
        &path,
        Some("\"0\""),
        r#"{"tenant":"acme","flash":{"text":"hi"}}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[header::ETAG], "\"1\"");
    // The check reads it with the session.
    let check = check_cookie(&app, &me).await;
    assert_eq!(
        check["data"],
        json!({"tenant":"acme","flash":{"text":"hi"}})
    );
    assert_eq!(check["data_version"], 1);

    // A write computed from version 0 is refused, with the current version.
    let r = patch(&app, &path, Some("\"0\""), r#"{"tenant":"other"}"#).await;
    assert_eq!(r.status(), 412);
    assert_eq!(r.headers()[header::ETAG], "\"1\"");
    assert_eq!(error_code(r).await, "version_mismatch");

    // Two writers from the same version: exactly one wins, the other is told.
    let (a, b) = tokio::join!(
        patch(&app, &path, Some("\"1\""), r#"{"a":1}"#),
        patch(&app, &path, Some("\"1\""), r#"{"b":2}"#)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412]);
    let data = json_body(app.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(data["version"], 2);
    assert!(
        (data["data"]["a"] == 1) != (data["data"]["b"] == 2),
        "exactly one write landed: {data}"
    );

    // Without If-Match, concurrent patches all apply: none is lost.
    let writes = (0..6).map(|i| {
        let body = format!(r#"{{"k{i}":{i}}}"#);
        let path = path.clone();
        let app = &app;
        async move { patch(app, &path, None, &body).await.status() }
    });
    for status in futures_util::future::join_all(writes).await {
        assert_eq!(status, 200);
    }
    let data = json_body(app.admin(Method::GET, &path).send().await.unwrap()).await;
    for i in 0..6 {
        assert_eq!(data["data"][format!("k{i}")], i, "{data}");
    }
    assert_eq!(data["version"], 8);

    // null removes; the empty object is kept as nothing but the version.
    let removal: Value = data["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), Value::Null))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let r = patch(&app, &path, None, &removal.to_string()).await;
    assert_eq!(json_body(r).await, json!({"version": 9, "data": {}}));
}
crate::each_backend!(session_data_is_merge_patched_under_optimistic_concurrency);

async fn session_data_is_bounded_and_ends_with_its_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.data_max_bytes = Some(64)).await;
    let me = app.signed_in("alice").await;
    let check = check_cookie(&app, &me).await;
    let user = check["user"]["id"].as_str().unwrap().to_owned();
    let handle = check["session"]["handle"].as_str().unwrap().to_owned();
    let path = data_path(&user, &handle);
    let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(80));
    let r = patch(&app, &path, None, &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");
    for bad in ["[1]", "\"text\"", "{"] {
        let r = patch(&app, &path, None, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = app
        .admin(Method::PATCH, &path)
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = patch(&app, &path, Some("three"), "{}").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        patch(&app, &path, None, r#"{"cart":[1,2]}"#).await.status(),
        200
    );

    // Ended with the session: logout here; nothing of it stays in the store.
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app.admin(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(patch(&app, &path, None, "{}").await.status(), 404);
    if let (Some(redis), Backend::Redis) = (&app.redis, backend) {
        let key = format!("sess:{{{}}}:sessions", user.replace('-', ""));
        assert_eq!(redis.integer(&["EXISTS", &key]), 0, "no orphan data field");
    }
}
crate::each_backend!(session_data_is_bounded_and_ends_with_its_session);

#[tokio::test]
async fn the_browser_cannot_write_session_data() {
    let app = spawn_app(Backend::Memory).await;
    let me = app.signed_in("alice").await;
    let check = check_cookie(&app, &me).await;
    let path = data_path(
        check["user"]["id"].as_str().unwrap(),
        check["session"]["handle"].as_str().unwrap(),
    );
    // The admin route needs the API key; the public listener has no such route.
    let r = app
        .client
        .patch(format!("{}{path}", app.admin))
        .header(header::COOKIE, &me.cookie)
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .public(Method::PATCH, &path)
        .header(header::COOKIE, &me.cookie)
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nor read it through who-am-I.
    let who = json_body(app.whoami(&me).await).await;
    assert!(who.get("data").is_none(), "{who}");
}

#[tokio::test]
async fn the_devices_list_names_each_device_in_words() {
    let app = spawn_app(Backend::Memory).await;
    app.register("alice", "alice-password").await;
    let r = app
        .public(Method::POST, "/v1/login")
        .header(header::USER_AGENT, CHROME_LINUX)
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let me = Browser {
        cookie: session_cookie(&r).unwrap(),
    };
    let list = json_body(
        app.public(Method::GET, "/v1/sessions")
            .header(header::COOKIE, &me.cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["sessions"][0]["device"], "Chrome 156 on Linux");
    assert_eq!(list["sessions"][0]["kind"], "cookie");
    let admin = app
        .user_sessions(
            json_body(app.whoami(&me).await).await["user"]["id"]
                .as_str()
                .unwrap(),
        )
        .await;
    assert_eq!(admin[0]["device"], "Chrome 156 on Linux");
}

/// A data write applied by Redis whose reply never came (a link in front of Redis that drops
/// what Redis answers): the caller gets a 503, the write stands, its `session_updated` event is
/// in the feed, and a retry neither applies a stale conditional write nor changes the data
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_write_whose_reply_is_lost_stands_once_and_reaches_the_feed() {
    let redis = RedisServer::start();
    let link = LossyProxy::start(redis.port).await;
    let healthy = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let unconfirmed = spawn_app_on(None, |s| {
        s.redis_url = Some(link.url());
        s.redis_timeout = Some("0.3".parse().unwrap());
    })
    .await;
    let me = healthy.signed_in("alice").await;
    let check = check_cookie(&healthy, &me).await;
    let handle = check["session"]["handle"].as_str().unwrap().to_owned();
    let path = data_path(check["user"]["id"].as_str().unwrap(), &handle);

    // A first write through the link loads the write's script there; then the read before the
    // next write is answered, and the write's answer is lost.
    let r = patch(&unconfirmed, &path, Some("\"0\""), r#"{"seen":true}"#).await;
    assert_eq!(r.status(), 200);
    link.drop_replies_from(br#""cart":[1]"#);
    let r = patch(&unconfirmed, &path, Some("\"1\""), r#"{"cart":[1]}"#).await;
    assert_eq!(r.status(), 503);
    let data = json_body(healthy.admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(
        data,
        json!({"version": 2, "data": {"seen": true, "cart": [1]}}),
        "applied"
    );
    // The first write's event, and the lost one's: published all the same, from the replica's
    // outbox once its link answers again.
    link.pass_replies();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = healthy.feed().await;
        let updates = events
            .iter()
            .filter(|e| e["type"] == "session_updated" && e["handles"][0] == handle.as_str())
            .count();
        if updates >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The conditional retry is told the data moved on; the unconditional one changes nothing.
    let r = patch(&healthy, &path, Some("\"1\""), r#"{"cart":[1]}"#).await;
    assert_eq!(r.status(), 412);
    let r = patch(&healthy, &path, None, r#"{"cart":[1]}"#).await;
    assert_eq!(
        json_body(r).await["data"],
        json!({"seen": true, "cart": [1]}),
        "a merge patch applied twice"
    );
}

/// Replicas whose wall clocks are ten seconds apart judge "recently authenticated" alike: both
/// run on Redis's clock. Without that, a login on the one behind would look ten seconds old to
/// the one ahead, beyond the three allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_authentication_is_judged_alike_by_replicas_with_skewed_clocks() {
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis_url = Some(redis.url());
    settings.fresh_auth_max_age = Some("3".parse().unwrap());
    let skewed = |ms| Overrides {
        clock: Some(Clock::with_wall_skew(ms)),
        ..Default::default()
    };
    let behind = spawn_with_overrides(settings.clone(), Some(redis.clone()), skewed(-5_000)).await;
    let ahead = spawn_with_overrides(settings, Some(redis), skewed(5_000)).await;
    assert!(behind.state.clock.is_synced() && ahead.state.clock.is_synced());

    let me = behind.signed_in("alice").await;
    let r = ahead
        .public(Method::DELETE, "/v1/sessions")
        .header(header::COOKIE, &me.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a fresh login, whichever replica asks");
    let r = ahead
        .public(Method::POST, "/v1/session/reauthenticate")
        .header(header::COOKIE, &me.cookie)
        .json(&json!({"password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let again = json_body(r).await;
    let at =
        humantime::parse_rfc3339(again["session"]["authenticated_at"].as_str().unwrap()).unwrap();
    let drift = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift < Duration::from_secs(2),
        "recorded on Redis's clock, not 5 s ahead: {drift:?}"
    );
}
