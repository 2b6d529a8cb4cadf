//! Password changes and throttling over HTTP.

use reqwest::{Method, header};
use serde_json::json;

use crate::helpers::{Backend, TestApp, error_code, spawn_app, spawn_app_with};

async fn change_password(
    app: &TestApp,
    cookie: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.public(Method::POST, "/v1/password")
        .header(header::COOKIE, cookie)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn changing_the_password_ends_every_other_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let here = app.signed_in("alice").await;
    let elsewhere = app.signed_in("alice").await;

    let r = change_password(&app, &here.cookie, "wrong-password", "new-password-1").await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "wrong_password");
    assert_eq!(app.whoami(&elsewhere).await.status(), 200);

    let r = change_password(&app, &here.cookie, "alice-password", "new-password-1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["revoked"], 1);
    assert_eq!(app.whoami(&here).await.status(), 200);
    assert_eq!(app.whoami(&elsewhere).await.status(), 401);
    assert_eq!(app.login("alice", "alice-password").await.status(), 401);
    assert_eq!(app.login("alice", "new-password-1").await.status(), 200);

    let r = change_password(&app, &here.cookie, "new-password-1", "short").await;
    assert_eq!(r.status(), 400);
    let r = app
        .public(Method::POST, "/v1/password")
        .json(&json!({"current_password": "x", "new_password": "long-enough-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "needs a session");
}
crate::each_backend!(changing_the_password_ends_every_other_session);

async fn failed_logins_throttle_the_username_from_any_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_max_failures_per_user = Some(3);
        s.login_window = Some("30".parse().unwrap());
    })
    .await;
    app.register("alice", "alice-password").await;
    for _ in 0..3 {
        assert_eq!(app.login("alice", "wrong-password").await.status(), 401);
    }
    let r = app.login("alice", "alice-password").await;
    assert_eq!(
        r.status(),
        429,
        "even the right password waits out the window"
    );
    let retry: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(error_code(r).await, "too_many_attempts");
    // Another account is unaffected.
    app.register("bob", "bob-password").await;
    assert_eq!(app.login("bob", "bob-password").await.status(), 200);
}
crate::each_backend!(failed_logins_throttle_the_username_from_any_address);

async fn one_address_is_throttled_across_usernames(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_max_attempts_per_ip = Some(4);
        s.login_window = Some("30".parse().unwrap());
    })
    .await;
    for i in 0..4 {
        assert_eq!(
            app.login(&format!("user{i}"), "some-password")
                .await
                .status(),
            401
        );
    }
    let r = app.login("user9", "some-password").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
}
crate::each_backend!(one_address_is_throttled_across_usernames);

async fn a_hash_with_old_parameters_is_upgraded_at_login(backend: Backend) {
    let old = spawn_app(backend).await;
    old.register("alice", "alice-password").await;
    let user = old
        .state
        .store
        .user_by_name(&"alice".parse_username())
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash.contains("m=256,t=1,p=1"),
        "{}",
        user.password_hash
    );
    // A second server with stronger parameters over the same store.
    let redis = old.redis.clone();
    let new = match redis {
        Some(redis) => {
            crate::helpers::spawn_app_on(Some(redis), |s| s.argon2_memory_kib = Some(512)).await
        }
        None => return upgraded_in_memory(old).await,
    };
    assert_eq!(new.login("alice", "alice-password").await.status(), 200);
    let user = new
        .state
        .store
        .user_by_name(&"alice".parse_username())
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash.contains("m=512,t=1,p=1"),
        "{}",
        user.password_hash
    );
    assert_eq!(new.login("alice", "alice-password").await.status(), 200);
}
crate::each_backend!(a_hash_with_old_parameters_is_upgraded_at_login);

/// The embedded store cannot be shared by two servers; seed an old-parameter hash directly.
async fn upgraded_in_memory(app: TestApp) {
    let user = app
        .state
        .store
        .user_by_name(&"alice".parse_username())
        .await
        .unwrap()
        .unwrap();
    let weaker = session_server::domain::password::PasswordHasher::new(
        session_server::domain::password::HashParams {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        },
        1,
        1,
    );
    let old_hash = weaker
        .hash(
            session_server::domain::password::Password::new_choice("alice-password".into())
                .unwrap(),
        )
        .await
        .unwrap();
    app.state
        .store
        .rehash_password(user.id, &user.password_hash, &old_hash)
        .await
        .unwrap();
    assert_eq!(app.login("alice", "alice-password").await.status(), 200);
    let user = app
        .state
        .store
        .user_by_name(&"alice".parse_username())
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash.contains("m=256,t=1,p=1"),
        "{}",
        user.password_hash
    );
}

trait ParseUsername {
    fn parse_username(&self) -> session_server::domain::user::Username;
}

impl ParseUsername for str {
    fn parse_username(&self) -> session_server::domain::user::Username {
        session_server::domain::user::Username::parse(self).unwrap()
    }
}

async fn forwarded_addresses_count_only_behind_trusted_proxies(backend: Backend) {
    // Trusting the loopback proxy: each forwarded client has its own budget.
    let app = spawn_app_with(backend, |s| {
        s.login_max_attempts_per_ip = Some(2);
        s.trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            let r = app
                .public(Method::POST, "/v1/login")
                .header("x-forwarded-for", format!("198.51.100.9, {client}"))
                .json(&json!({"username": "nobody", "password": "some-password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{client}");
        }
    }
    // Without trust, X-Forwarded-For is ignored: all attempts count against the peer address.
    let app = spawn_app_with(backend, |s| s.login_max_attempts_per_ip = Some(2)).await;
    let mut statuses = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let r = app
            .public(Method::POST, "/v1/login")
            .header("x-forwarded-for", client)
            .json(&json!({"username": "nobody", "password": "some-password"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}
crate::each_backend!(forwarded_addresses_count_only_behind_trusted_proxies);
