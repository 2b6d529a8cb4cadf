//! Registration, login and logout over HTTP.

use reqwest::{Method, header};
use serde_json::json;

use crate::helpers::{
    Backend, COOKIE, ORIGIN, error_code, session_cookie, set_cookie_header, spawn_app,
    spawn_app_with,
};

async fn login_sets_a_hardened_session_cookie_and_returns_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.register("Alice", "alice-password").await.status(), 201);
    let response = app.login("  ALICE ", "alice-password").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let set_cookie = set_cookie_header(&response).expect("Set-Cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain"),
        "{set_cookie}"
    );
    let token = session_cookie(&response).unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["session"]["handle"].is_string());
    // The token appears only in Set-Cookie, never in the body.
    let secret = token.split_once('=').unwrap().1;
    assert!(!body.to_string().contains(secret));
}
crate::each_backend!(login_sets_a_hardened_session_cookie_and_returns_the_user);

async fn unknown_user_wrong_password_and_disabled_account_look_identical(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_in("alice").await;
    app.signed_in("dave").await;
    let dave: serde_json::Value = app
        .admin(Method::GET, "/admin/v1/users?username=dave")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = dave["id"].as_str().unwrap();
    let r = app
        .admin(Method::POST, &format!("/admin/v1/users/{id}/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut answers = Vec::new();
    for (user, password) in [
        ("nobody", "whatever-pw"),
        ("alice", "wrong-password"),
        ("dave", "dave-password"),
    ] {
        let r = app.login(user, password).await;
        let status = r.status();
        assert!(set_cookie_header(&r).is_none());
        answers.push((status, r.bytes().await.unwrap()));
    }
    assert_eq!(answers[0].0, 401);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}
crate::each_backend!(unknown_user_wrong_password_and_disabled_account_look_identical);

async fn login_ends_a_session_presented_with_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let old = app.signed_in("alice").await;
    let r = app
        .public(Method::POST, "/v1/login")
        .header(header::COOKIE, &old.cookie)
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new = session_cookie(&r).unwrap();
    assert_ne!(new, old.cookie, "login issues a fresh token");
    assert_eq!(
        app.whoami(&old).await.status(),
        401,
        "the presented session ended"
    );
    let new = crate::helpers::Browser { cookie: new };
    assert_eq!(app.whoami(&new).await.status(), 200);
}
crate::each_backend!(login_ends_a_session_presented_with_it);

async fn form_login_redirects_only_to_allowed_targets(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice", "alice-password").await;
    let form = |return_to: &str| {
        app.public(Method::POST, "/v1/login").form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("return_to", return_to),
        ])
    };
    let r = form("/account").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/account");
    assert!(session_cookie(&r).is_some());

    let r = form(&format!("{ORIGIN}/home")).send().await.unwrap();
    assert_eq!(r.status(), 303);

    for evil in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let r = form(evil).send().await.unwrap();
        assert_eq!(r.status(), 403, "{evil}");
        assert!(set_cookie_header(&r).is_none());
        assert_eq!(error_code(r).await, "forbidden_redirect");
    }

    let r = app
        .public(Method::POST, "/v1/login")
        .form(&[
            ("username", "alice"),
            ("password", "nope-nope"),
            ("return_to", "/account"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?error=invalid_credentials"
    );
}
crate::each_backend!(form_login_redirects_only_to_allowed_targets);

async fn logout_ends_the_session_clears_the_cookie_and_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    for _ in 0..2 {
        let r = app
            .public(Method::POST, "/v1/logout")
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let cleared = set_cookie_header(&r).expect("clearing cookie");
        assert!(cleared.starts_with(&format!("{COOKIE}=;")), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }
    assert_eq!(app.whoami(&browser).await.status(), 401);
    let r = app.public(Method::POST, "/v1/logout").send().await.unwrap();
    assert_eq!(r.status(), 204, "logout without a session");
}
crate::each_backend!(logout_ends_the_session_clears_the_cookie_and_is_idempotent);

async fn registration_validates_and_refuses_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);
    let r = app.register("ALICE", "another-password").await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "username_taken");
    for (user, password) in [
        ("al ice", "long-enough"),
        ("", "long-enough"),
        ("bob", "short"),
    ] {
        let r = app.register(user, password).await;
        assert_eq!(r.status(), 400, "{user:?}/{password:?}");
        assert_eq!(error_code(r).await, "invalid_request");
    }
    let r = app.register(&"x".repeat(65), "long-enough").await;
    assert_eq!(r.status(), 400);
}
crate::each_backend!(registration_validates_and_refuses_duplicates);

async fn registration_can_be_switched_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.registration = Some(false)).await;
    let r = app.register("alice", "alice-password").await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "registration_closed");
    let r = app
        .admin(Method::POST, "/admin/v1/users")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "operators can still create users");
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
}
crate::each_backend!(registration_can_be_switched_off);

async fn malformed_and_oversized_bodies_get_clear_errors(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_body_bytes = Some(1024)).await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.public(Method::POST, "/v1/login")
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{\"username\":".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "application/json",
            b"[1,2]".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "application/json",
            b"{\"username\":null,\"password\":\"x\"}".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "application/json",
            b"{\"username\":\"a\",\"username\":\"b\",\"password\":\"x\"}".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "application/json",
            vec![0xff, 0xfe, 0x00],
            400,
            "malformed_request",
        ),
        (
            "text/plain",
            b"username=alice".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            format!(
                "{{\"username\":\"a\",\"password\":\"{}\"}}",
                "p".repeat(2000)
            )
            .into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let r = send(content_type, body.clone()).await.unwrap();
        assert_eq!(
            r.status(),
            status,
            "{content_type} {:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(error_code(r).await, code);
    }
    let r = app.login("alice", &"p".repeat(129)).await;
    assert_eq!(
        r.status(),
        400,
        "over-long passwords are refused before hashing"
    );
    let r = app.public(Method::GET, "/v1/login").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(r).await, "method_not_allowed");
}
crate::each_backend!(malformed_and_oversized_bodies_get_clear_errors);

async fn errors_never_echo_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = "correct-horse-battery-staple";
    let bodies = [
        json!({"username": "alice", "password": secret, "extra": [secret]}),
        json!({"username": secret, "password": 12345}),
        json!({"username": ["x"], "password": secret}),
    ];
    for body in bodies {
        let r = app
            .public(Method::POST, "/v1/login")
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("12345"), "{text}");
    }
}
crate::each_backend!(errors_never_echo_passwords);
