//! Any web stack behind session-server: Debian's nginx (`auth_request`) and Debian's Caddy
//! (`forward_auth`), each with the shipped configuration (`deploy/nginx/forward-auth.conf`,
//! `deploy/caddy/Caddyfile`, only addresses and the key filled in), in front of the Python
//! standard-library app of `deploy/example-python/` and the real session service on a real
//! redis-server, driven by headless Chromium.
//!
//! `scripts/test.sh` installs nginx (with the headers-more module), Caddy, Chromium and
//! chromedriver and sets `BROWSER_TESTS=required`, so on this project's machines these tests
//! cannot skip. Elsewhere they skip with a message when a program is missing.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use fantoccini::Client;
use reqwest::{StatusCode, header};
use session_server::{
    config::{Config, Settings},
    startup::Application,
};
use support::{
    Process, available, browser, chromedriver, click,
    codes::{next_step, step_now, totp_code},
    service_settings, tempdir, type_into, wait_for_count, wait_for_port, wait_for_text,
};
use test_support::{RedisServer, free_port};

const KEY: &str = "forward-auth-test-key";
const NGINX: &str = "/usr/sbin/nginx";
const CADDY: &str = "/usr/bin/caddy";
const HEADERS_MORE: &str = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so";
const PAGE: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// One browser flow at a time: two Chromium profiles each are plenty for two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[derive(Clone, Copy, Debug)]
enum Proxy {
    Nginx,
    Caddy,
}

/// redis-server, session-server, the Python app and the proxy, all on loopback ports.
struct Stack {
    origin: String,
    redis: Arc<RedisServer>,
    dir: PathBuf,
    _app: Process,
    _proxy: Process,
}

async fn stack(proxy: Proxy) -> Stack {
    let redis = RedisServer::start();
    let proxy_port = free_port();
    let origin = format!("http://127.0.0.1:{proxy_port}");
    let settings = Settings {
        redis_timeout: Some("0.3".parse().unwrap()),
        log: Some(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into())),
        ..service_settings(redis.url(), &origin, KEY)
    };
    let sessions = Application::build(Config::from_settings(settings).unwrap()).unwrap();
    let public = format!("127.0.0.1:{}", sessions.public_port());
    let admin = format!("127.0.0.1:{}", sessions.admin_port());
    tokio::spawn(sessions.run_until_stopped());

    let app_port = free_port();
    let app = Process(
        Command::new("python3")
            .arg(repo("deploy/example-python/app.py"))
            .args(["--listen", &format!("127.0.0.1:{app_port}")])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    wait_for_port(app_port, "the Python app");

    let dir = tempdir(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("forward-auth"),
        &format!("{proxy:?}").to_lowercase(),
    );
    let app_upstream = format!("127.0.0.1:{app_port}");
    let proxy_process = match proxy {
        Proxy::Nginx => nginx(&dir, proxy_port, &app_upstream, &public, &admin),
        Proxy::Caddy => caddy(&dir, &origin, &app_upstream, &public, &admin),
    };
    wait_for_port(proxy_port, &format!("{proxy:?}"));

    let r = reqwest::Client::new()
        .post(format!("http://{public}/v1/users"))
        .json(&serde_json::json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    Stack {
        origin,
        redis,
        dir,
        _app: app,
        _proxy: proxy_process,
    }
}

/// `deploy/nginx/forward-auth.conf` with its placeholders filled in, inside a minimal main
/// configuration of the test's own (one process, files in `dir`), checked with `nginx -t`.
fn nginx(dir: &Path, port: u16, app: &str, public: &str, admin: &str) -> Process {
    let mut site = std::fs::read_to_string(repo("deploy/nginx/forward-auth.conf")).unwrap();
    for (name, value) in [
        ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
        ("APP_UPSTREAM", app.to_owned()),
        ("SESSION_PUBLIC_UPSTREAM", public.to_owned()),
        ("SESSION_ADMIN_UPSTREAM", admin.to_owned()),
        ("SESSION_API_KEY", KEY.to_owned()),
    ] {
        site = site.replace(&format!("${{{name}}}"), &value);
    }
    assert!(!site.contains("${"), "every placeholder is filled in");
    std::fs::write(dir.join("forward-auth.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "load_module {HEADERS_MORE};\n\
         master_process off;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           include {d}/forward-auth.conf;\n\
         }}\n"
    );
    let main_path = dir.join("nginx.conf");
    std::fs::write(&main_path, main).unwrap();
    let check = Command::new(NGINX)
        .arg("-t")
        .arg("-c")
        .arg(&main_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    Process(
        Command::new(NGINX)
            .arg("-c")
            .arg(&main_path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `deploy/caddy/Caddyfile` as it is, its addresses and key from the environment, checked with
/// `caddy validate`.
fn caddy(dir: &Path, origin: &str, app: &str, public: &str, admin: &str) -> Process {
    let command = |verb: &str| {
        let mut c = Command::new(CADDY);
        c.args([verb, "--adapter", "caddyfile", "--config"])
            .arg(repo("deploy/caddy/Caddyfile"))
            .env("CADDY_SITE", origin)
            .env("APP_UPSTREAM", app)
            .env("SESSION_PUBLIC_UPSTREAM", public)
            .env("SESSION_ADMIN_UPSTREAM", admin)
            .env("SESSION_API_KEY", KEY)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null());
        c
    };
    let check = command("validate").stderr(Stdio::piped()).output().unwrap();
    assert!(
        check.status.success(),
        "caddy validate: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    Process(command("run").stderr(log).spawn().unwrap())
}

/// The heading (`<h1>`) of each page of the Python app, as it renders them: what a test waits
/// for after a navigation, since only the page it names shows it.
const LOGIN: &str = "Sign in";
const NOTES: &str = "Notes";
const DEVICES: &str = "Your devices";

/// The devices on the devices page once its script has filled the list in (it marks the body
/// when done, after adding every row): counted before that, the list would look short.
const LISTED_DEVICES: &str = "body[data-loaded=\"true\"] tr.device";

/// Waits until the page headed `heading` is shown: the wait after every navigation here.
async fn wait_for_page(client: &Client, heading: &str, why: &str) {
    wait_for_text(client, "h1", heading, why).await;
}

/// From a protected page, through the login page and back: `target`'s page, headed `heading`.
async fn sign_in(client: &Client, origin: &str, target: &str, heading: &str) {
    client.goto(&format!("{origin}{target}")).await.unwrap();
    wait_for_page(client, LOGIN, "an anonymous visit is sent to log in").await;
    let login = client.current_url().await.unwrap();
    assert_eq!(login.path(), "/login", "an anonymous visit: at {login}");
    let return_to = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        return_to.as_deref(),
        Some(format!("{origin}{target}").as_str()),
        "the login page knows where to return"
    );
    type_into(client, "#username", "alice").await;
    type_into(client, "#password", "alice-password").await;
    click(client, "#sign-in").await;
    wait_for_page(client, heading, &format!("signing in returns to {target}")).await;
    assert_eq!(
        client.current_url().await.unwrap().as_str(),
        format!("{origin}{target}"),
        "back on the very page"
    );
}

async fn browser_flow(stack: &Stack) {
    let origin = &stack.origin;
    let (_driver, driver) = chromedriver();
    let profiles = stack.dir.join("profiles");

    // 1-2: an anonymous visit is sent to log in, and comes back to the page, signed in.
    let first = browser(&driver, &profiles.join("first")).await;
    sign_in(&first, origin, "/notes?view=all", NOTES).await;
    let user = wait_for_text(&first, "#user", "alice", "the page names the user").await;
    assert_eq!(user, "alice");
    // The app's own state-changing form works from its own pages. The form posts and the notes
    // page comes back (the same path): the note in the list is what only the new page shows.
    type_into(&first, "#note", "behind the proxy").await;
    click(&first, "#add-note").await;
    let notes = wait_for_text(
        &first,
        "#notes",
        "behind the proxy",
        "the added note is listed",
    )
    .await;
    assert!(notes.contains("behind the proxy"), "{notes}");

    // 3: a second profile signs in and revokes the first from the devices page.
    let second = browser(&driver, &profiles.join("second")).await;
    sign_in(&second, origin, "/devices", DEVICES).await;
    wait_for_count(&second, LISTED_DEVICES, 2, "both devices are listed").await;
    // The button's script revokes and reloads the page: the page listing one device is the
    // reloaded one (the page the click was on lists two).
    click(&second, "tr.device[data-current=\"false\"] button.revoke").await;
    wait_for_count(
        &second,
        LISTED_DEVICES,
        1,
        "the revoked device is no longer listed",
    )
    .await;
    let shot = stack.dir.join("devices.png");
    std::fs::write(&shot, second.screenshot().await.unwrap()).unwrap();
    println!("devices page screenshot: {}", shot.display());

    // 4: the first profile's next navigation is sent back to the login page.
    first.goto(&format!("{origin}/notes")).await.unwrap();
    wait_for_page(&first, LOGIN, "the revoked browser is sent to log in").await;
    let at = first.current_url().await.unwrap();
    assert_eq!(at.path(), "/login", "the revoked browser: at {at}");

    first.close().await.unwrap();
    second.close().await.unwrap();
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A browser sending its own `X-Session-*` headers gets none of them to the app.
async fn client_headers_never_reach_the_app(stack: &Stack) {
    let origin = &stack.origin;
    let http = client();
    let r = http
        .post(format!("{origin}/v1/login"))
        .header(header::ORIGIN, origin)
        .json(&serde_json::json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: serde_json::Value = r.json().await.unwrap();
    let forged = [
        ("X-Session-User", "mallory"),
        ("X-Session-User-Id", "00000000-0000-0000-0000-000000000000"),
        ("X-Session-Handle", "00000000-0000-0000-0000-000000000000"),
        ("X-Session-Expires", "2999-01-01T00:00:00Z"),
        ("X-Session-AAL", "aal2"),
        ("X-Session-Role", "admin"),
        ("x-session-user", "mallory-lower-case"),
    ];
    let forge = |mut req: reqwest::RequestBuilder| {
        for (name, value) in forged {
            req = req.header(name, value);
        }
        req
    };

    // Signed in: the app sees the service's headers, and only those.
    let r = forge(http.get(format!("{origin}/whoami")))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: std::collections::BTreeMap<String, String> = r
        .json::<std::collections::BTreeMap<String, String>>()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let expected_keys = [
        "x-session-aal",
        "x-session-absolute-expires",
        "x-session-authenticated-at",
        "x-session-expires",
        "x-session-handle",
        "x-session-user",
        "x-session-user-id",
    ];
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_keys,
        "{seen:?}"
    );
    assert_eq!(seen["x-session-user"], "alice");
    assert_eq!(seen["x-session-user-id"], me["user"]["id"]);
    assert_eq!(seen["x-session-handle"], me["session"]["handle"]);
    assert_eq!(
        seen["x-session-authenticated-at"],
        me["session"]["authenticated_at"]
    );
    assert!(seen["x-session-expires"].starts_with("20"), "{seen:?}");
    assert_eq!(
        seen["x-session-aal"], "aal1",
        "a password alone, whatever the browser says"
    );
    assert_eq!(seen["x-session-aal"], me["session"]["aal"]);

    // Not signed in: the forged identity never gets through.
    let r = forge(http.get(format!("{origin}/whoami")))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = forge(http.get(format!("{origin}/whoami")))
        .header(header::ACCEPT, PAGE)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with("/login?return_to="), "{location}");

    // The app's state-changing routes: a cross-site post is refused (by the app's own origin
    // check when a cookie came along; by the proxy when none did, as SameSite=Lax ensures for
    // real cross-site forms). The public API's CSRF rules do not judge it for the app.
    let r = http
        .post(format!("{origin}/notes"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("note", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{origin}/notes"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("note", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{origin}/notes"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, origin)
        .form(&[("note", "mine")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

fn session_cookie(r: &reqwest::Response) -> String {
    r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The app learns the session's level from `X-Session-AAL`: `aal1` after a password, `aal2` once
/// a second factor is proved. A login that still owes its second factor gets no further than the
/// proxy.
async fn the_app_learns_the_assurance_level(stack: &Stack) {
    let origin = &stack.origin;
    let http = client();
    let api = |path: &str, cookie: Option<&str>, body: serde_json::Value| {
        let mut request = http
            .post(format!("{origin}{path}"))
            .header(header::ORIGIN, origin)
            .json(&body);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send()
    };
    let seen_aal = async |cookie: &str| {
        let r = http
            .get(format!("{origin}/whoami"))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            return Err(r.status());
        }
        let seen: std::collections::BTreeMap<String, String> = r.json().await.unwrap();
        Ok(seen
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-session-aal"))
            .map(|(_, v)| v))
    };
    let credentials = serde_json::json!({"username": "bob", "password": "bob-password"});
    let r = api("/v1/users", None, credentials.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = api("/v1/login", None, credentials.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = session_cookie(&r);
    assert_eq!(seen_aal(&cookie).await, Ok(Some("aal1".into())));

    // Enrolling TOTP proves its first code in this session.
    let r = api(
        "/v1/session/factors/totp",
        Some(&cookie),
        serde_json::Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let enrollment: serde_json::Value = r.json().await.unwrap();
    let secret = enrollment["secret"].as_str().unwrap().to_owned();
    let used = step_now();
    let r = api(
        "/v1/session/factors/totp/confirm",
        Some(&cookie),
        serde_json::json!({"code": totp_code(&secret, used)}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen_aal(&cookie).await, Ok(Some("aal2".into())));

    // The password alone is now a pending login: refused at the proxy until its code.
    let r = api("/v1/login", None, credentials).await.unwrap();
    assert_eq!(r.status(), 200);
    let pending = session_cookie(&r);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert!(
        answer["pending_second_factor"]["methods"]
            .as_array()
            .is_some_and(|m| m.contains(&"totp".into())),
        "{answer}"
    );
    assert_eq!(seen_aal(&pending).await, Err(StatusCode::UNAUTHORIZED));
    let code = totp_code(&secret, next_step(used));
    let r = api(
        "/v1/session/second-factor",
        Some(&pending),
        serde_json::json!({"method": "totp", "code": code}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen_aal(&pending).await, Ok(Some("aal2".into())));
}

/// With Redis down the proxy answers 503: never the page, never a trip to the login page.
async fn a_store_outage_is_a_503(stack: &Stack) {
    let origin = &stack.origin;
    let http = client();
    let r = http
        .post(format!("{origin}/v1/login"))
        .header(header::ORIGIN, origin)
        .json(&serde_json::json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    stack.redis.kill();
    for accept in [PAGE, "application/json"] {
        let started = Instant::now();
        let r = http
            .get(format!("{origin}/notes"))
            .header(header::COOKIE, &cookie)
            .header(header::ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{accept}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(r.headers().get(header::LOCATION).is_none());
        let body = r.text().await.unwrap();
        assert!(!body.contains("Signed in as"), "{body}");
    }
}

async fn any_app_behind(proxy: Proxy) {
    let programs: &[&str] = match proxy {
        Proxy::Nginx => &[NGINX, HEADERS_MORE],
        Proxy::Caddy => &[CADDY],
    };
    if !available(&[programs, &["/usr/bin/chromium", "/usr/bin/chromedriver"]].concat()) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let stack = stack(proxy).await;
    browser_flow(&stack).await;
    client_headers_never_reach_the_app(&stack).await;
    the_app_learns_the_assurance_level(&stack).await;
    a_store_outage_is_a_503(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_puts_a_python_app_behind_the_session_service() {
    any_app_behind(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_puts_a_python_app_behind_the_session_service() {
    any_app_behind(Proxy::Caddy).await;
}
