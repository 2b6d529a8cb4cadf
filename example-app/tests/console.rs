//! The admin console in a real browser: an operator signs in to the console in headless
//! Chromium, finds the user who is signed in to the example app in another browser, signs that
//! device out from the console, and the app's open page shows the signed-out state on its next
//! navigation. The live feed page follows a revocation made meanwhile through the admin API.
//!
//! The same run takes the console's screenshots. `UPDATE_SCREENSHOTS=1` also copies them to
//! `docs/src/images/` (the book's pictures of the console):
//!
//!     UPDATE_SCREENSHOTS=1 cargo test -p example-app --test console

mod support;

use std::path::PathBuf;

use example_app::{AppConfig, build};
use fantoccini::{Client, Locator};
use session_server::{config::Config, startup::Application};
use support::{
    available, browser, chromedriver, click, service_settings, tempdir, type_into, wait_for_count,
    wait_for_text,
};
use test_support::{RedisServer, free_port};

const KEY: &str = "example-app-console-key";

struct Stack {
    app_origin: String,
    public: String,
    admin: String,
    _redis: std::sync::Arc<RedisServer>,
}

/// redis-server, session-server (plain-HTTP development mode) and the example app, with alice
/// registered.
async fn stack() -> Stack {
    let redis = RedisServer::start();
    let app_port = free_port();
    let app_origin = format!("http://127.0.0.1:{app_port}");
    let settings = service_settings(redis.url(), &app_origin, KEY);
    let sessions = Application::build(Config::from_settings(settings).unwrap()).unwrap();
    let public = format!("http://127.0.0.1:{}", sessions.public_port());
    let admin = format!("http://127.0.0.1:{}", sessions.admin_port());
    tokio::spawn(sessions.run_until_stopped());
    let (app, _) = build(AppConfig {
        addr: format!("127.0.0.1:{app_port}").parse().unwrap(),
        session_public_url: public.clone(),
        session_admin_url: admin.clone(),
        api_key: KEY.into(),
        cookie_name: "session".into(),
        fresh_auth_max_age: None,
    })
    .unwrap();
    tokio::spawn(app);
    let r = reqwest::Client::new()
        .post(format!("{public}/v1/users"))
        .json(&serde_json::json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    Stack {
        app_origin,
        public,
        admin,
        _redis: redis,
    }
}

/// alice signs in from another device, straight through the API (a phone app, say), as seen
/// from a documentation address behind the app's proxy. Returns the session's handle.
async fn sign_in_elsewhere(public: &str, user_agent: &str, ip: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{public}/v1/login"))
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({
            "username": "alice", "password": "alice-password", "token_delivery": "body"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    body["session"]["handle"].as_str().unwrap().to_owned()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a screenshot under the test's artifacts, and into the book with `UPDATE_SCREENSHOTS`.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let shot = artifacts().join(name);
    std::fs::write(&shot, &png).unwrap();
    println!("console screenshot: {}", shot.display());
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let book = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/src/images");
        std::fs::write(book.join(name), &png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_out_a_device_in_the_console_and_the_apps_page_sees_it() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    let stack = stack().await;
    let app = &stack.app_origin;
    let (_driver, driver) = chromedriver();
    let profiles = tempdir(&artifacts(), "console-profiles");

    // alice, signed in to the example app in her browser.
    let user = browser(&driver, &profiles.join("user")).await;
    user.goto(&format!("{app}/")).await.unwrap();
    wait_for_text(&user, "h1", "Sign in", "the app asks alice to sign in").await;
    type_into(&user, "#username", "alice").await;
    type_into(&user, "#password", "alice-password").await;
    click(&user, "#sign-in").await;
    let greeting = wait_for_text(&user, "#greeting", "Signed in as", "alice is signed in").await;
    assert!(greeting.contains("alice"), "{greeting}");
    // And on two other devices.
    let phone = sign_in_elsewhere(
        &stack.public,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
         (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "203.0.113.24",
    )
    .await;
    sign_in_elsewhere(
        &stack.public,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:133.0) Gecko/20100101 Firefox/133.0",
        "198.51.100.7",
    )
    .await;

    // The operator signs in to the console with the admin key, from the keyboard's form.
    let operator = browser(&driver, &profiles.join("operator")).await;
    // Tall enough for the whole device table in the screenshot.
    operator.set_window_size(1280, 1000).await.unwrap();
    operator
        .goto(&format!("{}/console/", stack.admin))
        .await
        .unwrap();
    wait_for_text(
        &operator,
        "h1",
        "Sign in to the admin console",
        "the console asks for a key",
    )
    .await;
    type_into(&operator, "#key", KEY).await;
    click(&operator, "#sign-in").await;
    wait_for_text(&operator, "h1", "Find a user", "signed in to the console").await;
    let cookie = operator
        .get_named_cookie("console")
        .await
        .expect("the console cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert!(!cookie.value().contains(KEY));
    let page = operator.source().await.unwrap();
    assert!(!page.contains(KEY), "the key is not kept in the page");

    // Finds alice and sees her three devices, her browser's among them.
    type_into(&operator, "#q", "alice").await;
    click(&operator, "#find").await;
    wait_for_text(&operator, "h1#username", "alice", "alice's page").await;
    wait_for_count(
        &operator,
        "tr.device",
        3,
        "alice's three devices are listed",
    )
    .await;
    let names = operator
        .find_all(Locator::Css("tr.device .name"))
        .await
        .unwrap();
    let mut listed = Vec::new();
    for name in names {
        listed.push(name.text().await.unwrap());
    }
    let chrome = listed
        .iter()
        .position(|n| n.starts_with("Chrome"))
        .unwrap_or_else(|| panic!("alice's browser is listed: {listed:?}"));
    screenshot(&operator, "console-user.png").await;

    // Signs out alice's browser (the Chrome row), from its row's button.
    let rows = operator.find_all(Locator::Css("tr.device")).await.unwrap();
    let handle = rows[chrome]
        .attr("data-handle")
        .await
        .unwrap()
        .expect("each row names its session");
    click(
        &operator,
        &format!("button.revoke[data-handle=\"{handle}\"]"),
    )
    .await;
    wait_for_text(
        &operator,
        "#message",
        "The device was signed out.",
        "the console confirms",
    )
    .await;
    wait_for_count(&operator, "tr.device", 2, "two devices are left").await;

    // The app's open page: its next navigation shows alice signed out.
    user.goto(&format!("{app}/")).await.unwrap();
    wait_for_text(
        &user,
        "h1",
        "Sign in",
        "the revoked browser is sent to sign in",
    )
    .await;
    assert_eq!(user.current_url().await.unwrap().path(), "/login");

    // The live feed: a revocation made meanwhile through the admin API appears without a reload.
    operator
        .goto(&format!("{}/console/events?after=0-0", stack.admin))
        .await
        .unwrap();
    wait_for_text(&operator, "h1", "Live events", "the feed page").await;
    wait_for_text(
        &operator,
        "#feed-status",
        "Following",
        "the feed is followed",
    )
    .await;
    let alice_id = {
        let r = reqwest::Client::new()
            .get(format!("{}/admin/v1/users?username=alice", stack.admin))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let user: serde_json::Value = r.json().await.unwrap();
        user["id"].as_str().unwrap().to_owned()
    };
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/admin/v1/users/{alice_id}/sessions/{phone}",
            stack.admin
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The newest event is the first row.
    let row = wait_for_text(
        &operator,
        "#events tbody tr.event",
        &phone,
        "the feed page shows the new revocation",
    )
    .await;
    assert!(row.contains("revoked"), "{row}");
    assert!(
        row.contains("from 127.0.0.1"),
        "the feed names who revoked it: {row}"
    );
    screenshot(&operator, "console-events.png").await;

    // Sign out of the console: back to its sign-in form.
    click(&operator, "#sign-out").await;
    wait_for_text(
        &operator,
        "h1",
        "Sign in to the admin console",
        "signed out of the console",
    )
    .await;
    operator
        .goto(&format!("{}/console/users/{alice_id}", stack.admin))
        .await
        .unwrap();
    wait_for_text(
        &operator,
        "h1",
        "Sign in to the admin console",
        "the console needs a sign-in again",
    )
    .await;

    user.close().await.unwrap();
    operator.close().await.unwrap();
}
