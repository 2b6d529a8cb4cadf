//! The admin/service listener over HTTP.

use reqwest::{Method, header};
use serde_json::json;

use crate::helpers::{API_KEY, Backend, error_code, spawn_app, spawn_app_with};

async fn the_admin_api_needs_a_configured_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let path = format!("{}/admin/v1/sessions/check", app.admin);
    for auth in [
        None,
        Some("Bearer wrong-key"),
        Some("Basic dGVzdA=="),
        Some(API_KEY),
    ] {
        let mut req = app.client.post(&path).json(&json!({"token": "x"}));
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(error_code(r).await, "invalid_api_key");
    }
}
crate::each_backend!(the_admin_api_needs_a_configured_key);

async fn session_checks_answer_active_or_not(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let ask = |body: serde_json::Value| {
        app.admin(Method::POST, "/admin/v1/sessions/check")
            .json(&body)
            .send()
    };

    let r: serde_json::Value = ask(json!({"token": browser.token()}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["active"], true);
    assert_eq!(r["user"]["username"], "alice");
    let r: serde_json::Value = ask(json!({"cookie": format!("theme=dark; {}", browser.cookie)}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["active"], true);
    for body in [
        json!({"token": "nope"}),
        json!({"cookie": "a=b"}),
        json!({"token": format!("{}x", browser.token())}),
    ] {
        let r: serde_json::Value = ask(body.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(r, json!({"active": false}), "{body}");
    }
    let r = ask(json!({})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = ask(json!({"token": "a", "cookie": "b"})).await.unwrap();
    assert_eq!(r.status(), 400);
}
crate::each_backend!(session_checks_answer_active_or_not);

async fn operators_manage_users_and_their_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .admin(Method::POST, "/admin/v1/users")
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let carol: serde_json::Value = r.json().await.unwrap();
    let id = carol["id"].as_str().unwrap().to_owned();
    assert_eq!(carol["disabled"], false);

    let one = app.signed_in("carol").await;
    let two = app.signed_in("carol").await;
    let r: serde_json::Value = app
        .admin(Method::GET, &format!("/admin/v1/users/{id}/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = r["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let first = sessions[0]["handle"].as_str().unwrap().to_owned();

    let r = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/users/{id}/sessions/{first}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/users/{id}/sessions/{first}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let live = [app.check(&one).await, app.check(&two).await];
    assert_eq!(live.iter().filter(|l| **l).count(), 1);

    let r: serde_json::Value = app
        .admin(Method::DELETE, &format!("/admin/v1/users/{id}/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["revoked"], 1);
    assert!(!app.check(&one).await && !app.check(&two).await);

    let three = app.signed_in("carol").await;
    let r = app
        .admin(Method::PUT, &format!("/admin/v1/users/{id}/password"))
        .json(&json!({"password": "brand-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !app.check(&three).await,
        "setting a password ends all sessions"
    );
    assert_eq!(app.login("carol", "brand-new-password").await.status(), 200);

    let r: serde_json::Value = app
        .admin(Method::POST, &format!("/admin/v1/users/{id}/disable"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["revoked"], 1);
    assert_eq!(app.login("carol", "brand-new-password").await.status(), 401);
    let r: serde_json::Value = app
        .admin(Method::GET, &format!("/admin/v1/users/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["disabled"], true);
    let r = app
        .admin(Method::POST, &format!("/admin/v1/users/{id}/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.login("carol", "brand-new-password").await.status(), 200);

    for path in [
        "/admin/v1/users/not-a-uuid",
        "/admin/v1/users/00000000-0000-7000-8000-000000000000",
        "/admin/v1/users?username=nobody",
    ] {
        let r = app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = app
        .admin(
            Method::POST,
            "/admin/v1/users/00000000-0000-7000-8000-000000000000/disable",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
crate::each_backend!(operators_manage_users_and_their_sessions);

async fn each_listener_refuses_the_others_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let r = app
        .client
        .get(format!("{}/v1/session", app.admin))
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .post(format!("{}/admin/v1/sessions/check", app.public))
        .bearer_auth(API_KEY)
        .json(&json!({"token": browser.token()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
}
crate::each_backend!(each_listener_refuses_the_others_api);

async fn by_default_the_feed_carries_ends_of_sessions_and_no_logins(backend: Backend) {
    let app = spawn_app(backend).await;
    let feed = |position: String| {
        let request = app.admin(
            Method::GET,
            &format!("/admin/v1/events?after={position}&wait=0"),
        );
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let start = feed("latest".into()).await["last_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = app.signed_in("alice").await;
    let page = feed(start.clone()).await;
    assert_eq!(page["events"], json!([]), "a login is not in the feed");
    assert_eq!(page["last_id"], start.as_str());
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let page = feed(start).await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["type"], "logout");
}
crate::each_backend!(by_default_the_feed_carries_ends_of_sessions_and_no_logins);

async fn the_event_feed_reports_logins_and_revocations_as_they_happen(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.feed_logins = Some(true)).await;
    let start: serde_json::Value = app
        .admin(Method::GET, "/admin/v1/events?after=latest")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut position = start["last_id"].as_str().unwrap().to_owned();
    let browser = app.signed_in("alice").await;
    let handle = app
        .whoami(&browser)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["session"]["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let page: serde_json::Value = app
        .admin(
            Method::GET,
            &format!("/admin/v1/events?after={position}&wait=0"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["type"], "login");
    assert_eq!(events.last().unwrap()["handles"][0], handle.as_str());
    position = page["last_id"].as_str().unwrap().to_owned();

    // A waiting reader is answered as soon as the revocation happens.
    let waiting = app
        .admin(
            Method::GET,
            &format!("/admin/v1/events?after={position}&wait=10"),
        )
        .send();
    let revoke = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let r = app
            .public(Method::POST, "/v1/logout")
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        started
    };
    let (answer, revoked_at) = tokio::join!(waiting, revoke);
    let page: serde_json::Value = answer.unwrap().json().await.unwrap();
    let waited = revoked_at.elapsed();
    assert_eq!(page["events"][0]["type"], "logout");
    assert_eq!(page["events"][0]["handles"][0], handle.as_str());
    // Sooner than a waiting reader looks by itself (every second): the wake-up came from the
    // replica's follower of the feed.
    assert!(waited < std::time::Duration::from_millis(900), "{waited:?}");
    let r = app
        .admin(Method::GET, "/admin/v1/events?after=nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
crate::each_backend!(the_event_feed_reports_logins_and_revocations_as_they_happen);
