//! Forward authentication for reverse proxies: `/admin/v1/forward-auth` and the forward-auth
//! listener. The proxies themselves (nginx, Caddy) are exercised in `tests/proxies`.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, header};

use crate::helpers::{API_KEY, Backend, TestApp, error_code, spawn_app, spawn_app_with};

/// Runs one async test body against the embedded store and a private `redis-server`.
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

const PATH: &str = "/admin/v1/forward-auth";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A forward-auth call as a proxy makes it, carrying the browser's Cookie header.
fn ask(app: &TestApp, cookie: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = app.admin(Method::GET, PATH);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req
}

fn header_text<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

async fn an_active_session_gets_its_user_in_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let me: serde_json::Value = app.whoami(&browser).await.json().await.unwrap();

    let r = ask(
        &app,
        Some(&format!("theme=dark; {}; lang=en", browser.cookie)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header_text(&r, "x-session-user"), "alice");
    assert_eq!(header_text(&r, "x-session-user-id"), me["user"]["id"]);
    assert_eq!(header_text(&r, "x-session-handle"), me["session"]["handle"]);
    let expires = header_text(&r, "x-session-expires").to_owned();
    let absolute = header_text(&r, "x-session-absolute-expires").to_owned();
    assert_eq!(absolute, me["session"]["absolute_expires_at"]);
    assert!(expires <= absolute, "{expires} {absolute}");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    assert!(r.bytes().await.unwrap().is_empty(), "headers only");

    // HEAD too, and any original method: the public API's CSRF rules do not apply to the
    // forwarded request (it is addressed to the app).
    let r = app
        .admin(Method::HEAD, PATH)
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header_text(&r, "x-session-user"), "alice");
    for method in ["POST", "DELETE", "PATCH", "PROPFIND"] {
        let r = ask(&app, Some(&browser.cookie))
            .header("x-forwarded-method", method)
            .header(header::ORIGIN, "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
    }
    // Some proxies (Envoy) send the original method and append the original path.
    let r = app
        .admin(Method::POST, &format!("{PATH}/notes/1?draft=1"))
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header_text(&r, "x-session-user"), "alice");
}
memory_and_redis!(an_active_session_gets_its_user_in_headers);

async fn no_session_is_a_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let other = app.signed_in("alice").await;
    let forged = format!("{}x", browser.cookie);
    let duplicated = format!("{}; {}", browser.cookie, other.cookie);
    let wrong_case = browser
        .cookie
        .replacen("__Host-session", "__host-session", 1);
    for cookie in [
        None,
        Some("theme=dark"),
        Some(forged.as_str()),
        Some(duplicated.as_str()),
        Some(wrong_case.as_str()),
        Some("__Host-session=*; a=b"),
    ] {
        let r = ask(&app, cookie).send().await.unwrap();
        assert_eq!(r.status(), 401, "{cookie:?}");
        assert!(r.headers().get("x-session-user").is_none());
        assert_eq!(error_code(r).await, "unauthenticated");
    }

    // A revoked session is refused on the very next ask.
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = ask(&app, Some(&browser.cookie)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = ask(&app, Some(&other.cookie)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the other device is untouched");
}
memory_and_redis!(no_session_is_a_401);

async fn a_forward_auth_check_renews_the_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idle_timeout = Some("1.2".parse().unwrap());
        s.absolute_timeout = Some("60".parse().unwrap());
    })
    .await;
    let browser = app.signed_in("alice").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = ask(&app, Some(&browser.cookie)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // 1.4 s after login, past the idle timeout: alive only because the forward-auth renewed it.
    assert_eq!(app.whoami(&browser).await.status(), 200);
}
memory_and_redis!(a_forward_auth_check_renews_the_session);

async fn page_navigations_are_sent_to_log_in_and_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let caddy_as = |host: &str, accept: &str| {
        ask(&app, None)
            .header(header::ACCEPT, accept.to_owned())
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", host.to_owned())
            .header("x-forwarded-uri", "/notes?sort=new&page=2")
    };
    let caddy = |host: &str| caddy_as(host, HTML);
    let r = caddy("app.test").send().await.unwrap();
    assert_eq!(r.status(), 303);
    let expected = "/login?return_to=http%3A%2F%2Fapp.test%2Fnotes%3Fsort%3Dnew%26page%3D2";
    assert_eq!(r.headers()[header::LOCATION], expected);

    // The target must pass the login's own redirect rule: only allowed origins.
    let r = caddy("evil.example").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(header::LOCATION).is_none());
    // Not a page (an API call, a form post): a plain 401 the app's client can handle.
    let r = caddy_as("app.test", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Accept: application/json is not a page");
    let r = ask(&app, None)
        .header(header::ACCEPT, HTML)
        .header("x-forwarded-method", "POST")
        .header("x-original-url", "http://app.test/notes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // nginx: its auth_request takes only 2xx, 401 and 403, so it asks for a 401 naming the
    // login URL, and redirects itself.
    let r = ask(&app, None)
        .header(header::ACCEPT, HTML)
        .header("x-original-url", "http://app.test/notes")
        .header("x-forward-auth-redirect", "false")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?return_to=http%3A%2F%2Fapp.test%2Fnotes"
    );
    assert_eq!(error_code(r).await, "unauthenticated");
    // Envoy: the original path appended to the auth path, the original Host kept.
    let r = app
        .client
        .get(format!("{}{PATH}/notes", app.admin))
        .bearer_auth(API_KEY)
        .header(header::HOST, "app.test")
        .header("x-forwarded-proto", "http")
        .header(header::ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?return_to=http%3A%2F%2Fapp.test%2Fnotes"
    );
}
memory_and_redis!(page_navigations_are_sent_to_log_in_and_back);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forwarded_headers_get_clear_errors() {
    let app = spawn_app(Backend::Memory).await;
    let browser = app.signed_in("alice").await;
    let rows: &[(&str, &[u8])] = &[
        ("x-forwarded-method", b"GE T"),
        ("x-forwarded-method", b"\xff"),
        ("x-original-url", b"javascript:alert(1)"),
        ("x-original-url", b"//evil.example/"),
        ("x-forwarded-uri", b"notes"),
        ("x-forward-auth-redirect", b"maybe"),
    ];
    for (name, value) in rows {
        let r = ask(&app, Some(&browser.cookie))
            .header(*name, *value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}: {value:?}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.text().await.unwrap();
        assert!(body.contains("\"error\":\"malformed_request\""), "{body}");
        assert!(
            !body.contains("evil") && !body.contains(browser.token()),
            "{body}"
        );
    }
    let r = ask(&app, Some(&browser.cookie))
        .header("x-forwarded-uri", "/")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.test/@evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Two values where the proxy must send one.
    let r = ask(&app, Some(&browser.cookie))
        .header("x-original-url", "/a")
        .header("x-original-url", "/b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_needs_the_api_key() {
    let app = spawn_app(Backend::Memory).await;
    let browser = app.signed_in("alice").await;
    for auth in [None, Some("Bearer wrong-key"), Some(API_KEY)] {
        let mut req = app
            .client
            .get(format!("{}{PATH}", app.admin))
            .header(header::COOKIE, &browser.cookie);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(r.headers().get("x-session-user").is_none());
        assert_eq!(error_code(r).await, "invalid_api_key");
    }
    // Not on the public listener, and no forward-auth listener unless configured.
    let r = app
        .client
        .get(format!("{}{PATH}", app.public))
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(app.state.config.listeners.forward_auth_addr.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forward_auth_listener_answers_without_a_key_and_serves_nothing_else() {
    let app = spawn_app_with(Backend::Memory, |s| {
        s.forward_auth_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let base = format!(
        "http://127.0.0.1:{}",
        app.forward_auth_port.expect("a forward-auth listener")
    );
    let browser = app.signed_in("alice").await;

    let r = app
        .client
        .get(format!("{base}/forward-auth"))
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header_text(&r, "x-session-user"), "alice");
    let r = app
        .client
        .get(format!("{base}/forward-auth"))
        .header(header::ACCEPT, HTML)
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "app.test")
        .header("x-forwarded-uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?return_to=http%3A%2F%2Fapp.test%2F"
    );
    let r = app
        .client
        .get(format!("{base}/forward-auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "unauthenticated");
    assert_eq!(
        app.client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Nothing of the admin or public API, with or without a key; no metrics, no documents.
    for path in [
        "/admin/v1/forward-auth",
        "/admin/v1/users?username=alice",
        "/admin/v1/events?after=latest&wait=0",
        "/v1/session",
        "/metrics",
        "/openapi.json",
    ] {
        let r = app
            .client
            .get(format!("{base}{path}"))
            .bearer_auth(API_KEY)
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(error_code(r).await, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_a_503_never_a_200_nor_a_trip_to_the_login_page() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.redis_timeout = Some("0.3".parse().unwrap());
        s.forward_auth_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let browser = app.signed_in("alice").await;
    let listener = format!(
        "http://127.0.0.1:{}/forward-auth",
        app.forward_auth_port.unwrap()
    );
    app.redis.clone().unwrap().kill();
    let requests = [
        ask(&app, Some(&browser.cookie)),
        ask(&app, Some(&browser.cookie))
            .header(header::ACCEPT, HTML)
            .header("x-original-url", "http://app.test/notes"),
        app.client
            .get(&listener)
            .header(header::COOKIE, &browser.cookie)
            .header(header::ACCEPT, HTML)
            .header("x-original-url", "http://app.test/notes"),
    ];
    for req in requests {
        let started = Instant::now();
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered in time"
        );
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        assert!(r.headers().get("x-session-user").is_none());
        assert!(r.headers().get(header::LOCATION).is_none());
        assert_eq!(error_code(r).await, "store_unavailable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_document_describes_forward_auth() {
    let app = spawn_app(Backend::Memory).await;
    let doc: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"][PATH]["get"];
    // The answers are written once under components/responses, shared by every method.
    let answer = |status: &str| {
        let name = op["responses"][status]["$ref"].as_str().unwrap();
        &doc["components"]["responses"][name.trim_start_matches("#/components/responses/")]
    };
    let headers = answer("200")["headers"].as_object().unwrap();
    for name in [
        "X-Session-User",
        "X-Session-User-Id",
        "X-Session-Handle",
        "X-Session-Expires",
        "X-Session-Absolute-Expires",
    ] {
        assert!(headers.contains_key(name), "{name}");
    }
    for status in ["303", "400", "401", "503"] {
        assert!(answer(status)["description"].is_string(), "{status}");
    }
    for method in ["post", "put", "delete", "patch", "head", "options", "trace"] {
        assert!(doc["paths"][PATH][method].is_object(), "{method}");
    }
    // The forward-auth listener's route is not on the admin listener.
    assert!(doc["paths"]["/forward-auth"].is_null());
}
