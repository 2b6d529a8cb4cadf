//! Who am I, devices, revocation and expiry over HTTP.

use std::time::Duration;

use reqwest::{Method, header};

use crate::helpers::{Backend, Browser, error_code, set_cookie_header, spawn_app, spawn_app_with};

async fn whoami_needs_a_valid_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let r = app.whoami(&browser).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");

    let forged = format!("{}{}", &browser.cookie[..browser.cookie.len() - 4], "AAAA");
    let duplicate = format!("{0}; {0}", browser.cookie);
    let wrong_case = browser
        .cookie
        .replacen("__Host-session", "__host-session", 1);
    for cookie in [
        None,
        Some("__Host-session=garbage".to_owned()),
        Some(forged),
        Some(duplicate),
        Some(wrong_case),
    ] {
        let mut req = app.public(Method::GET, "/v1/session");
        if let Some(c) = &cookie {
            req = req.header(header::COOKIE, c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{cookie:?}");
        assert_eq!(error_code(r).await, "unauthenticated");
    }
    // A token in the query string is ignored.
    let r = app
        .public(
            Method::GET,
            &format!("/v1/session?session={}", browser.token()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
crate::each_backend!(whoami_needs_a_valid_session);

async fn devices_are_listed_with_the_current_one_marked(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.signed_in("alice").await;
    let phone = app.signed_in("alice").await;
    let r = app
        .public(Method::GET, "/v1/sessions")
        .header(header::COOKIE, &phone.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(!body.to_string().contains(laptop.token()));
    assert!(!body.to_string().contains(phone.token()));
}
crate::each_backend!(devices_are_listed_with_the_current_one_marked);

async fn handle(app: &crate::helpers::TestApp, browser: &Browser) -> String {
    let body: serde_json::Value = app.whoami(browser).await.json().await.unwrap();
    body["session"]["handle"].as_str().unwrap().to_owned()
}

async fn one_session_can_be_revoked_by_handle_but_not_anothers(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.signed_in("alice").await;
    let phone = app.signed_in("alice").await;
    let mallory = app.signed_in("mallory").await;
    let laptop_handle = handle(&app, &laptop).await;

    let r = app
        .public(Method::DELETE, &format!("/v1/sessions/{laptop_handle}"))
        .header(header::COOKIE, &mallory.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "someone else's handle");
    assert_eq!(app.whoami(&laptop).await.status(), 200);

    for bogus in [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "..%2F..%2Fetc",
    ] {
        let r = app
            .public(Method::DELETE, &format!("/v1/sessions/{bogus}"))
            .header(header::COOKIE, &phone.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{bogus}");
    }

    let r = app
        .public(Method::DELETE, &format!("/v1/sessions/{laptop_handle}"))
        .header(header::COOKIE, &phone.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.whoami(&laptop).await.status(), 401);
    assert_eq!(app.whoami(&phone).await.status(), 200);
}
crate::each_backend!(one_session_can_be_revoked_by_handle_but_not_anothers);

async fn revoke_all_keeps_the_current_session_unless_asked(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.signed_in("alice").await;
    let b = app.signed_in("alice").await;
    let c = app.signed_in("alice").await;
    let r = app
        .public(Method::DELETE, "/v1/sessions")
        .header(header::COOKIE, &a.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["revoked"], 2);
    assert_eq!(app.whoami(&a).await.status(), 200);
    assert_eq!(app.whoami(&b).await.status(), 401);
    assert_eq!(app.whoami(&c).await.status(), 401);

    let r = app
        .public(Method::DELETE, "/v1/sessions?include_current=true")
        .header(header::COOKIE, &a.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookie_header(&r).is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(app.whoami(&a).await.status(), 401);
}
crate::each_backend!(revoke_all_keeps_the_current_session_unless_asked);

async fn an_idle_session_expires_and_an_active_one_is_renewed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idle_timeout = Some("0.6".parse().unwrap());
        s.renew_fraction = Some(0.25);
    })
    .await;
    let active = app.signed_in("alice").await;
    let idle = app.signed_in("bob").await;
    // Use `active` every 0.2 s for 1.2 s (twice the idle timeout); leave `idle` alone.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.whoami(&active).await.status(), 200);
    }
    assert_eq!(app.whoami(&idle).await.status(), 401);
}
crate::each_backend!(an_idle_session_expires_and_an_active_one_is_renewed);

async fn the_absolute_timeout_ends_even_an_active_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idle_timeout = Some("0.5".parse().unwrap());
        s.absolute_timeout = Some("0.9".parse().unwrap());
        s.renew_fraction = Some(0.2);
    })
    .await;
    let browser = app.signed_in("alice").await;
    let started = std::time::Instant::now();
    let mut last_ok = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1300) {
        if app.whoami(&browser).await.status() == 200 {
            last_ok = started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last_ok >= Duration::from_millis(500),
        "renewed past the idle timeout ({last_ok:?})"
    );
    assert!(
        last_ok < Duration::from_millis(950),
        "ended by the absolute timeout ({last_ok:?})"
    );
    assert_eq!(app.whoami(&browser).await.status(), 401);
}
crate::each_backend!(the_absolute_timeout_ends_even_an_active_session);
