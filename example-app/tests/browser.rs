//! The whole cookie flow in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the example app, the real session-server and a real redis-server.
//!
//! `scripts/test.sh` installs Debian's `chromium` and `chromium-driver` and sets
//! `BROWSER_TESTS=required`, so on this project's machines the test cannot skip. Elsewhere it
//! skips with a message when Chromium is missing.

mod support;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use example_app::{AppConfig, build};
use fantoccini::{Client, Locator};
use session_server::{config::Config, startup::Application};
use support::{available, browser, chromedriver, service_settings, tempdir};
use test_support::{RedisServer, free_port};

const KEY: &str = "example-app-test-key";

async fn sign_in(client: &Client, base: &str, target: &str, user: &str, password: &str) {
    client.goto(&format!("{base}{target}")).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/login",
        "a visitor without a session is sent to the login page"
    );
    client
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.current_url().await.unwrap().path() != target {
        assert!(
            Instant::now() < deadline,
            "sign-in did not land on {target}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn device_rows(client: &Client) -> Vec<(bool, String)> {
    let mut rows = Vec::new();
    for row in client.find_all(Locator::Css("tr.device")).await.unwrap() {
        let current = row.attr("data-current").await.unwrap() == Some("true".into());
        let handle = row
            .find(Locator::Css("button.revoke"))
            .await
            .unwrap()
            .attr("data-handle")
            .await
            .unwrap()
            .unwrap();
        rows.push((current, handle));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_revokes_another_device_from_the_devices_page() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    // redis-server, session-server (development cookie mode: plain HTTP) and the app.
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
        session_admin_url: admin,
        api_key: KEY.into(),
        cookie_name: "session".into(),
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

    let (_driver, driver) = chromedriver();
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profiles = tempdir(&artifacts, "profiles");

    // First browser: sign in through the form and reach the protected page.
    let first = browser(&driver, &profiles.join("first")).await;
    sign_in(&first, &app_origin, "/devices", "alice", "alice-password").await;
    first.goto(&format!("{app_origin}/")).await.unwrap();
    let greeting = first
        .find(Locator::Id("greeting"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(greeting.contains("alice"), "{greeting}");
    let cookies = first.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "session")
        .expect("the session cookie");
    assert_eq!(
        session.http_only(),
        Some(true),
        "HttpOnly as the browser stores it"
    );
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Lax)",
        "SameSite=Lax"
    );
    assert_eq!(session.path(), Some("/"));

    // Second browser (its own profile, its own cookie jar): same user, revokes the first device.
    let second = browser(&driver, &profiles.join("second")).await;
    sign_in(&second, &app_origin, "/devices", "alice", "alice-password").await;
    let rows = device_rows(&second).await;
    assert_eq!(rows.len(), 2, "both devices are listed");
    let (_, other) = rows
        .iter()
        .find(|(current, _)| !current)
        .expect("the other device")
        .clone();
    second
        .find(Locator::Css(&format!(
            "button.revoke[data-handle=\"{other}\"]"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The page reloads after the click: count rows in whole page sources, not live elements.
    while second
        .source()
        .await
        .unwrap()
        .matches("class=\"device\"")
        .count()
        != 1
        || second.current_url().await.unwrap().path() != "/devices"
    {
        assert!(
            Instant::now() < deadline,
            "the revoked device is still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shot = artifacts.join("devices.png");
    std::fs::write(&shot, second.screenshot().await.unwrap()).unwrap();
    println!("devices page screenshot: {}", shot.display());

    // The first browser is bounced to the login page on its next navigation.
    first.goto(&format!("{app_origin}/")).await.unwrap();
    assert_eq!(first.current_url().await.unwrap().path(), "/login");

    // "Log out everywhere" ends the second browser's session too.
    second
        .find(Locator::Id("logout-everywhere"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    second.goto(&format!("{app_origin}/devices")).await.unwrap();
    assert_eq!(second.current_url().await.unwrap().path(), "/login");

    first.close().await.unwrap();
    second.close().await.unwrap();
}
