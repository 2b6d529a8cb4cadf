//! The whole cookie flow in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the example app, the real session-server and a real redis-server.
//!
//! `scripts/test.sh` installs Debian's `chromium` and `chromium-driver` and sets
//! `BROWSER_TESTS=required`, so on this project's machines the tests cannot skip. Elsewhere they
//! skip with a message when Chromium is missing.

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use example_app::{AppConfig, build};
use fantoccini::{Client, Locator};
use session_server::{config::Config, startup::Application};
use support::{
    Seen, available, browser, chromedriver, click,
    codes::{next_step, step_now, totp_code},
    poll, service_settings, tempdir, type_into, wait_for_count, wait_for_text,
    webauthn::VirtualAuthenticator,
};
use test_support::{RedisServer, free_port};

const KEY: &str = "example-app-test-key";

/// redis-server, session-server (development cookie mode: plain HTTP) and the app, with user
/// alice registered; `fresh` is the maximum authentication age for "log out everywhere", given
/// to both the service and the app.
struct Stack {
    app_origin: String,
    _redis: std::sync::Arc<RedisServer>,
}

async fn stack(fresh: Option<Duration>) -> Stack {
    stack_at("127.0.0.1", fresh).await
}

/// [`stack`], with the browser reaching the app (on loopback) as `http://{host}:<port>`, the
/// origin the service allows. Passkeys need a domain there (a relying party id is one, never an
/// address): `localhost`, which Chromium also takes as a secure context over plain HTTP.
async fn stack_at(host: &str, fresh: Option<Duration>) -> Stack {
    let redis = RedisServer::start();
    let app_port = free_port();
    let app_origin = format!("http://{host}:{app_port}");
    let mut settings = service_settings(redis.url(), &app_origin, KEY);
    settings.fresh_auth_max_age = fresh.map(|d| d.as_secs().to_string().parse().unwrap());
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
        fresh_auth_max_age: fresh,
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
        _redis: redis,
    }
}

/// Where screenshots and browser profiles go.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The heading (`<h1>`) of each page, as the app renders it: what a test waits for after a
/// navigation, since only the page it names shows it.
const HOME: &str = "Welcome";
const LOGIN: &str = "Sign in";
const DEVICES: &str = "Your devices";
const REAUTHENTICATE: &str = "Confirm it is you";
const SECURITY: &str = "Security";
const SET_UP_TOTP: &str = "Set up your authenticator app";
const SECOND_FACTOR: &str = "Two-step verification";
const RECOVERY_CODES: &str = "Recovery codes";
const NEW_RECOVERY_CODES: &str = "Your new recovery codes";

/// Waits until the page headed `heading` is shown: the wait after every navigation here.
async fn wait_for_page(client: &Client, heading: &str, why: &str) {
    wait_for_text(client, "h1", heading, why).await;
}

/// Signs in through the form, without "remember me"; see [`sign_in_with`].
async fn sign_in(client: &Client, base: &str, target: &str, heading: &str) {
    sign_in_with(client, base, target, heading, false).await;
}

/// Visits `target` without a session, is sent to the login page, signs in as alice and waits
/// for `target`'s page (headed `heading`) to be shown.
async fn sign_in_with(client: &Client, base: &str, target: &str, heading: &str, remember: bool) {
    submit_password(client, base, target, remember).await;
    wait_for_page(client, heading, &format!("sign-in lands on {target}")).await;
    assert_eq!(
        client.current_url().await.unwrap().path(),
        target,
        "sign-in lands on {target}"
    );
}

/// Visits `target` without a session, is sent to the login page, and submits alice's password;
/// the caller waits for the page that follows.
async fn submit_password(client: &Client, base: &str, target: &str, remember: bool) {
    client.goto(&format!("{base}{target}")).await.unwrap();
    wait_for_page(
        client,
        LOGIN,
        "a visitor without a session is sent to the login page",
    )
    .await;
    let url = client.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/login",
        "a visitor without a session is sent to the login page"
    );
    type_into(client, "#username", "alice").await;
    type_into(client, "#password", "alice-password").await;
    if remember {
        click(client, "#remember").await;
    }
    click(client, "#sign-in").await;
}

/// Each listed device: whether it is this browser's, and its handle; read again as a whole if
/// the page is replaced while it is read.
async fn device_rows(client: &Client) -> Vec<(bool, String)> {
    poll(client, "reading the device list", async || {
        let mut rows = Vec::new();
        for row in client.find_all(Locator::Css("li.device")).await? {
            let current = row.attr("data-current").await? == Some("true".into());
            let handle = row
                .find(Locator::Css("button.revoke"))
                .await?
                .attr("data-handle")
                .await?
                .expect("every revoke button names its device's handle");
            rows.push((current, handle));
        }
        Ok(Seen::Ready(rows))
    })
    .await
}

/// The devices' names as listed; read again as a whole if the page is replaced meanwhile.
async fn device_names(client: &Client) -> Vec<String> {
    poll(client, "reading the device names", async || {
        let mut names = Vec::new();
        for name in client.find_all(Locator::Css("li.device .name")).await? {
            names.push(name.text().await?);
        }
        Ok(Seen::Ready(names))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_revokes_another_device_from_the_devices_page() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    let stack = stack(None).await;
    let app_origin = stack.app_origin.clone();
    let (_driver, driver) = chromedriver();
    let artifacts = artifacts();
    let profiles = tempdir(&artifacts, "profiles");

    // First browser: sign in through the form and reach the protected page.
    let first = browser(&driver, &profiles.join("first")).await;
    sign_in(&first, &app_origin, "/devices", DEVICES).await;
    first.goto(&format!("{app_origin}/")).await.unwrap();
    let greeting = wait_for_text(&first, "#greeting", "Signed in as", "the home page greets").await;
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
    sign_in(&second, &app_origin, "/devices", DEVICES).await;
    let rows = device_rows(&second).await;
    assert_eq!(rows.len(), 2, "both devices are listed");
    // Named in words, with when each was last active.
    let page = second.source().await.unwrap();
    for text in device_names(&second).await {
        assert!(
            text.starts_with("Chrome 1") && text.contains(" on Linux"),
            "{text}"
        );
    }
    assert_eq!(page.matches("Active just now").count(), 2, "{page}");
    assert!(page.contains("This device"), "{page}");
    let (_, other) = rows
        .iter()
        .find(|(current, _)| !current)
        .expect("the other device")
        .clone();
    click(&second, &format!("button.revoke[data-handle=\"{other}\"]")).await;
    // The form posts and the devices page comes back: the page listing one device is the new
    // one (the page the click was on lists two).
    wait_for_count(
        &second,
        "li.device",
        1,
        "the revoked device is no longer listed",
    )
    .await;
    // The revocation left a flash message in the session's data, shown once.
    let flash = wait_for_text(
        &second,
        "#flash",
        "Signed out",
        "the devices page says what was signed out",
    )
    .await;
    assert!(flash.starts_with("Signed out Chrome"), "{flash}");
    let shot = artifacts.join("devices.png");
    std::fs::write(&shot, second.screenshot().await.unwrap()).unwrap();
    println!("devices page screenshot: {}", shot.display());
    // WebDriver's refresh returns once the reloaded page has loaded; the heading confirms it is
    // the devices page again before the flash message's absence is checked.
    second.refresh().await.unwrap();
    wait_for_page(&second, DEVICES, "the devices page reloads").await;
    assert!(
        second.find(Locator::Id("flash")).await.is_err(),
        "a flash message shows once"
    );

    // The first browser is bounced to the login page on its next navigation.
    first.goto(&format!("{app_origin}/")).await.unwrap();
    wait_for_page(&first, LOGIN, "the revoked browser is sent to log in").await;
    assert_eq!(first.current_url().await.unwrap().path(), "/login");

    // "Log out everywhere" ends the second browser's session too.
    click(&second, "#logout-everywhere").await;
    wait_for_page(&second, LOGIN, "log out everywhere ends on the login page").await;
    second.goto(&format!("{app_origin}/devices")).await.unwrap();
    wait_for_page(&second, LOGIN, "the signed-out browser is sent to log in").await;
    assert_eq!(second.current_url().await.unwrap().path(), "/login");

    first.close().await.unwrap();
    second.close().await.unwrap();
}

/// Closes the browser (Chromium writes its cookie store on the way out) and starts it again on
/// the same profile: what a user quitting and reopening the browser does. Session cookies are
/// gone after that; persistent ones stay.
async fn restart(client: Client, driver: &str, profile: &Path) -> Client {
    client.close().await.unwrap();
    browser(driver, profile).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_login_survives_a_browser_restart_and_a_plain_one_does_not() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    let stack = stack(None).await;
    let base = &stack.app_origin;
    let (_driver, driver) = chromedriver();
    let profiles = tempdir(&artifacts(), "restart-profiles");
    let (kept, plain) = (profiles.join("remembered"), profiles.join("plain"));

    let remembered = browser(&driver, &kept).await;
    sign_in_with(&remembered, base, "/", HOME, true).await;
    let cookie = remembered
        .get_named_cookie("session")
        .await
        .expect("the session cookie");
    assert!(
        cookie.expires().is_some(),
        "remember me: a persistent cookie"
    );
    let forgotten = browser(&driver, &plain).await;
    sign_in(&forgotten, base, "/", HOME).await;
    let cookie = forgotten.get_named_cookie("session").await.unwrap();
    assert!(cookie.expires().is_none(), "a browser-session cookie");

    let remembered = restart(remembered, &driver, &kept).await;
    let forgotten = restart(forgotten, &driver, &plain).await;
    remembered.goto(&format!("{base}/")).await.unwrap();
    wait_for_page(&remembered, HOME, "still signed in after the restart").await;
    assert_eq!(
        remembered.current_url().await.unwrap().path(),
        "/",
        "still signed in after the restart"
    );
    forgotten.goto(&format!("{base}/")).await.unwrap();
    wait_for_page(
        &forgotten,
        LOGIN,
        "a browser-session cookie is gone after the restart",
    )
    .await;
    assert_eq!(forgotten.current_url().await.unwrap().path(), "/login");

    // The devices page says which one is remembered.
    remembered.goto(&format!("{base}/devices")).await.unwrap();
    wait_for_page(&remembered, DEVICES, "the devices page").await;
    let page = remembered.source().await.unwrap();
    assert_eq!(page.matches("Remembered</span>").count(), 1, "{page}");
    remembered.close().await.unwrap();
    forgotten.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_asks_for_the_password_again_when_the_sign_in_is_old() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    // Three seconds: short, yet well above the service's granularity (whole seconds, rounded
    // down) plus the time between confirming and clicking again.
    let stack = stack(Some(Duration::from_secs(3))).await;
    let base = &stack.app_origin;
    let (_driver, driver) = chromedriver();
    let profiles = tempdir(&artifacts(), "reauth-profiles");
    let client = browser(&driver, &profiles.join("one")).await;
    sign_in(&client, base, "/devices", DEVICES).await;
    // Not a wait for the page: the sign-in itself has to grow older than the maximum age, and
    // only time does that.
    tokio::time::sleep(Duration::from_millis(3100)).await;

    click(&client, "#logout-everywhere").await;
    wait_for_page(
        &client,
        REAUTHENTICATE,
        "an old sign-in is asked to confirm",
    )
    .await;
    // A wrong password: back to the form, with a message.
    type_into(&client, "#password", "not-the-password").await;
    click(&client, "#confirm").await;
    wait_for_text(
        &client,
        "p[role=\"alert\"]",
        "That password is not right.",
        "a wrong password is refused with a message",
    )
    .await;
    let url = client.current_url().await.unwrap();
    assert!(
        url.query()
            .unwrap_or_default()
            .contains("error=wrong_password"),
        "{url}"
    );
    type_into(&client, "#password", "alice-password").await;
    click(&client, "#confirm").await;
    wait_for_page(&client, DEVICES, "the right password leads back").await;
    // Fresh now: the same button logs out everywhere.
    click(&client, "#logout-everywhere").await;
    wait_for_page(&client, LOGIN, "a fresh sign-in logs out everywhere").await;
    client.goto(&format!("{base}/devices")).await.unwrap();
    wait_for_page(&client, LOGIN, "the signed-out browser is sent to log in").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    client.close().await.unwrap();
}

/// Logs out from the home page and waits for the login page.
async fn log_out(client: &Client, base: &str) {
    client.goto(&format!("{base}/")).await.unwrap();
    wait_for_page(client, HOME, "the home page, to log out from").await;
    click(client, "#logout").await;
    wait_for_page(client, LOGIN, "logging out ends on the login page").await;
}

/// The texts of the elements matching `css`, read again as a whole if the page is replaced
/// meanwhile.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    poll(client, &format!("reading `{css}`"), async || {
        let mut texts = Vec::new();
        for element in client.find_all(Locator::Css(css)).await? {
            texts.push(element.text().await?);
        }
        Ok(Seen::Ready(texts))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_enrols_an_authenticator_app_and_signs_in_with_its_codes_or_a_recovery_code() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    let stack = stack(None).await;
    let base = &stack.app_origin;
    let (_driver, driver) = chromedriver();
    let artifacts = artifacts();
    let profiles = tempdir(&artifacts, "totp-profiles");
    let client = browser(&driver, &profiles.join("one")).await;

    // Enrolment, from the security page: a QR code and the key, then the app's first code.
    sign_in(&client, base, "/security", SECURITY).await;
    wait_for_text(&client, "#totp-status", "Off", "no authenticator app yet").await;
    click(&client, "#setup-totp").await;
    wait_for_page(&client, SET_UP_TOTP, "the enrolment shows its key").await;
    let qr = client
        .find(Locator::Css("#totp-qr"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(qr.starts_with("data:image/svg+xml,"), "the QR code as SVG");
    let secret = wait_for_text(&client, "#totp-secret", "", "the key in base32").await;
    assert_eq!(secret.trim().len(), 32, "160 bits in base32");
    let shot = artifacts.join("totp-enrolment.png");
    std::fs::write(&shot, client.screenshot().await.unwrap()).unwrap();
    println!("enrolment page screenshot: {}", shot.display());
    let used = step_now();
    type_into(&client, "#code", &totp_code(&secret, used)).await;
    click(&client, "#confirm-totp").await;
    wait_for_page(&client, SECURITY, "the first code turns TOTP on").await;
    wait_for_text(
        &client,
        "#totp-status",
        "On",
        "the app is the second factor",
    )
    .await;
    wait_for_text(
        &client,
        "#signed-in-with",
        "password and an authenticator app",
        "this session proved the code",
    )
    .await;

    // Recovery codes: generated behind a button (this session has a fresh second factor),
    // shown once.
    click(&client, "#recovery-link").await;
    wait_for_page(&client, RECOVERY_CODES, "the recovery codes page").await;
    click(&client, "#generate-codes").await;
    wait_for_page(&client, NEW_RECOVERY_CODES, "new codes are shown").await;
    let codes = texts(&client, "#recovery-codes li").await;
    assert_eq!(codes.len(), 10, "{codes:?}");

    // The password alone now leads to the second-factor page, which keeps where the user was
    // going.
    log_out(&client, base).await;
    submit_password(&client, base, "/devices", false).await;
    wait_for_page(&client, SECOND_FACTOR, "a password alone asks for the code").await;
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/second-factor");
    assert_eq!(
        url.query_pairs()
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v.into_owned())
            .as_deref(),
        Some("/devices"),
    );
    // Until the code, the password opened no page: the protected page sends it back to log in.
    client.goto(&format!("{base}/devices")).await.unwrap();
    wait_for_page(&client, LOGIN, "a pending login is not signed in").await;
    client.goto(url.as_str()).await.unwrap();
    wait_for_page(&client, SECOND_FACTOR, "back to the code").await;

    // The enrolment's code again: refused (its time step is used up), with a message.
    type_into(&client, "#code", &totp_code(&secret, used)).await;
    click(&client, "#verify").await;
    wait_for_text(
        &client,
        "#code-error",
        "",
        "a used code is refused with a message",
    )
    .await;
    let refused = client.current_url().await.unwrap();
    let error = refused
        .query_pairs()
        .find(|(k, _)| k == "error")
        .map(|(_, v)| v.into_owned());
    assert!(
        matches!(error.as_deref(), Some("code_reused" | "wrong_code")),
        "{refused}"
    );
    // The next step's code lets the user in, to the page they were going to.
    type_into(&client, "#code", &totp_code(&secret, next_step(used))).await;
    click(&client, "#verify").await;
    wait_for_page(&client, DEVICES, "the code leads on to the devices page").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/devices");

    // Without the phone: a recovery code, used up by the login.
    log_out(&client, base).await;
    submit_password(&client, base, "/security", false).await;
    wait_for_page(
        &client,
        SECOND_FACTOR,
        "the password asks for a second factor",
    )
    .await;
    type_into(&client, "#recovery-code", &codes[0]).await;
    click(&client, "#use-recovery-code").await;
    wait_for_page(&client, SECURITY, "the recovery code leads on").await;
    wait_for_text(
        &client,
        "#signed-in-with",
        "password and a recovery code",
        "this session proved a recovery code",
    )
    .await;
    let left = wait_for_text(&client, "#recovery-left", "9", "one code is used up").await;
    assert_eq!(left, "9");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_adds_a_passkey_and_uses_it_as_a_second_factor_and_to_sign_in_without_a_password() {
    if !available(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) {
        return;
    }
    // The service's relying party is the host of its first allowed origin: `localhost`.
    let stack = stack_at("localhost", None).await;
    let base = &stack.app_origin;
    let (_driver, driver) = chromedriver();
    let artifacts = artifacts();
    let profiles = tempdir(&artifacts, "passkey-profiles");
    let client = browser(&driver, &profiles.join("one")).await;
    // The device's platform authenticator: it keeps resident keys and verifies its user.
    let authenticator = VirtualAuthenticator::add(&client).await;

    // Registration, from the security page, in a session of the password alone.
    sign_in(&client, base, "/security", SECURITY).await;
    wait_for_text(&client, "#no-passkeys", "No passkeys yet", "no passkey yet").await;
    wait_for_text(&client, "#aal", "aal1", "a password alone is aal1").await;
    type_into(&client, "#passkey-name", "Laptop").await;
    click(&client, "#add-passkey-button").await;
    // The script reloads the page once the service took the passkey: the page listing one is
    // the new one (the one clicked on lists none).
    wait_for_count(
        &client,
        "#passkeys li.passkey",
        1,
        "the new passkey is listed",
    )
    .await;
    let name = wait_for_text(&client, "#passkeys .name", "Laptop", "named as typed").await;
    assert_eq!(name, "Laptop");
    let meta = texts(&client, "#passkeys .meta").await;
    assert_eq!(meta, ["added just now · never used"], "{meta:?}");
    wait_for_text(
        &client,
        "#signed-in-with",
        "password and a passkey",
        "registering proved the passkey in this session",
    )
    .await;
    wait_for_text(&client, "#aal", "aal2", "the session is aal2").await;
    let shot = artifacts.join("passkeys.png");
    std::fs::write(&shot, client.screenshot().await.unwrap()).unwrap();
    println!("security page screenshot: {}", shot.display());
    let held = authenticator.credentials(&client).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].is_resident_credential, "a discoverable passkey");
    assert_eq!(held[0].rp_id, "localhost");
    assert!(held[0].user_handle.is_some(), "it names its user");

    // The same authenticator again: the service excludes the passkeys it has, the browser
    // refuses, and the page says so.
    click(&client, "#add-passkey-button").await;
    let refused = wait_for_text(
        &client,
        "#passkey-error",
        "InvalidStateError",
        "a second passkey on the same device is refused with a message",
    )
    .await;
    assert!(
        refused.starts_with("This device already holds"),
        "{refused}"
    );
    assert_eq!(authenticator.credentials(&client).await.len(), 1);

    // The password alone now leads to the second-factor page, which offers the passkey.
    log_out(&client, base).await;
    submit_password(&client, base, "/devices", false).await;
    wait_for_page(
        &client,
        SECOND_FACTOR,
        "a password alone asks for the passkey",
    )
    .await;
    click(&client, "#use-passkey").await;
    wait_for_page(&client, DEVICES, "the passkey leads on to the devices page").await;
    assert_eq!(client.current_url().await.unwrap().path(), "/devices");
    client.goto(&format!("{base}/security")).await.unwrap();
    wait_for_page(&client, SECURITY, "the security page").await;
    wait_for_text(
        &client,
        "#signed-in-with",
        "password and a passkey",
        "this session proved the passkey",
    )
    .await;
    wait_for_text(&client, "#aal", "aal2", "the proof made the session aal2").await;
    wait_for_text(
        &client,
        "#passkeys .last-used",
        "used just now",
        "the passkey's last use is recorded",
    )
    .await;

    // No password at all: the login page's passkey button.
    log_out(&client, base).await;
    client.goto(&format!("{base}/security")).await.unwrap();
    wait_for_page(
        &client,
        LOGIN,
        "a visitor without a session is sent to the login page",
    )
    .await;
    click(&client, "#passkey-sign-in").await;
    wait_for_page(
        &client,
        SECURITY,
        "the passkey signs in, on to the security page",
    )
    .await;
    assert_eq!(client.current_url().await.unwrap().path(), "/security");
    wait_for_text(
        &client,
        "#signed-in-with",
        "with a passkey, without a password",
        "a passwordless session",
    )
    .await;
    wait_for_text(&client, "#aal", "aal2", "a passkey sign-in is aal2").await;
    client.goto(&format!("{base}/")).await.unwrap();
    let greeting =
        wait_for_text(&client, "#greeting", "Signed in as", "the home page greets").await;
    assert!(greeting.contains("alice"), "{greeting}");

    authenticator.remove(&client).await;
    client.close().await.unwrap();
}
