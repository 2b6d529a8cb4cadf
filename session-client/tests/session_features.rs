//! What a session carries besides its user, through session-client against the real service:
//! authentication time, kind, app data (typed helpers, optimistic concurrency), bearer sessions
//! and the assurance level; and the actix guards for sensitive actions and for a second factor.
#![cfg(feature = "actix")]

mod support;

use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, http::header, middleware::from_fn, test, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use session_client::{
    Aal, CacheSettings, Error, Session, SessionClient,
    actix::{Aal2, FreshAuth, ReauthRedirect, RecentlyAuthenticated, StepUpRedirect, require_aal2},
};
use support::{KEY, next_step, server, server_with};

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Cart {
    #[serde(default)]
    items: Vec<String>,
    #[serde(default)]
    count: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_returns_the_authentication_time_kind_and_data() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let session = client.check(&cookie).await.unwrap().unwrap();
    assert_eq!(session.kind, "cookie");
    assert!(!session.remembered);
    assert!(session.authenticated_within(Duration::from_secs(60)));
    assert_eq!(session.data, json!({}));
    assert_eq!(session.data_version, 0);
    let cart: Cart = session.data_as().unwrap();
    assert_eq!(cart, Cart::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_typed_updates_all_land_and_a_stale_write_is_told() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let session = client.check(&cookie).await.unwrap().unwrap();

    // Two writers from the same read: each retries from the other's result; none is lost.
    let add = |item: &'static str| {
        let client = client.clone();
        let session = session.clone();
        async move {
            client
                .modify_data(&session, |cart: &mut Cart| {
                    cart.items.push(item.into());
                    cart.count += 1;
                })
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(add("apple"), add("pear"));
    assert!(
        a.count + b.count == 3,
        "one wrote 1, the other 2: {a:?} {b:?}"
    );
    let now = client.check(&cookie).await.unwrap().unwrap();
    let cart: Cart = now.data_as().unwrap();
    assert_eq!(cart.count, 2);
    let mut items = cart.items.clone();
    items.sort();
    assert_eq!(items, ["apple", "pear"]);

    // A plain conditional write from an old version is refused, with the current version.
    let stale = client
        .update_data(session.user_id, session.handle, &json!({"x": 1}), Some(0))
        .await;
    match stale {
        Err(Error::Conflict { current }) => assert_eq!(current, now.data_version),
        other => panic!("{other:?}"),
    }
    let refused = client
        .update_data(session.user_id, session.handle, &json!([1]), None)
        .await;
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");

    server.logout(&cookie).await;
    let gone = client.data(session.user_id, session.handle).await;
    assert!(matches!(gone, Err(Error::SessionGone)), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_drop_a_session_whose_data_changed() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let settings = CacheSettings {
        max_age: Duration::from_secs(60),
        ..CacheSettings::default()
    };
    let writer = SessionClient::builder(&server.admin, KEY)
        .cache(settings)
        .build()
        .unwrap();
    let reader = SessionClient::builder(&server.admin, KEY)
        .cache(settings)
        .build()
        .unwrap();
    let session = writer.check(&cookie).await.unwrap().unwrap();
    // Bounded: until each cache follows the feed and holds the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(writer.is_cached(&cookie) && reader.is_cached(&cookie)) && Instant::now() < deadline {
        writer.check(&cookie).await.unwrap();
        reader.check(&cookie).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(writer.is_cached(&cookie) && reader.is_cached(&cookie));

    writer
        .update_data(
            session.user_id,
            session.handle,
            &json!({"flash": "saved"}),
            None,
        )
        .await
        .unwrap();
    // The writer's own cache drops it at once.
    assert!(!writer.is_cached(&cookie));
    assert_eq!(
        writer.check(&cookie).await.unwrap().unwrap().data["flash"],
        "saved"
    );
    // The other process's cache, when the feed reports the write (within its staleness bound).
    let deadline = Instant::now() + Duration::from_secs(3);
    while reader.is_cached(&cookie) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        reader.check(&cookie).await.unwrap().unwrap().data["flash"],
        "saved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_sessions_are_checked_by_their_authorization_header_only() {
    let server = server().await;
    let body = json!({"username": "bob", "password": "bob-password"});
    server
        .http
        .post(format!("{}/v1/users", server.public))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut login = body.clone();
    login["token_delivery"] = json!("body");
    let answer: serde_json::Value = server
        .http
        .post(format!("{}/v1/login", server.public))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().unwrap();
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let session = client
        .check_authorization(&format!("Bearer {token}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (session.username.as_str(), session.kind.as_str()),
        ("bob", "bearer")
    );
    assert!(
        client
            .check(&format!("__Host-session={token}"))
            .await
            .unwrap()
            .is_none()
    );
    let cookie = server.sign_in("carol").await;
    let cookie_token = cookie.rsplit('=').next().unwrap();
    assert!(
        client
            .check_authorization(&format!("Bearer {cookie_token}"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn sensitive(RecentlyAuthenticated(session): RecentlyAuthenticated) -> HttpResponse {
    HttpResponse::Ok().body(session.username)
}

#[actix_web::test]
async fn the_fresh_auth_guard_asks_for_the_password_again_after_its_max_age() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let app = |max_age: Duration| {
        App::new()
            .app_data(web::Data::new(client.clone()))
            .app_data(web::Data::new(ReauthRedirect("/reauthenticate".into())))
            .app_data(web::Data::new(FreshAuth { max_age }))
            .route("/danger", web::post().to(sensitive))
    };
    let fresh = test::init_service(app(Duration::from_secs(300))).await;
    let request = || {
        test::TestRequest::post()
            .uri("/danger?x=1")
            .insert_header((header::COOKIE, cookie.as_str()))
    };
    let res = test::call_service(&fresh, request().to_request()).await;
    assert_eq!(res.status(), 200);

    // A zero max age: no authentication is recent enough (whole seconds are stored).
    let strict = test::init_service(app(Duration::ZERO)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = test::call_service(&strict, request().to_request()).await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"], "reauthentication_required");
    let html = request()
        .insert_header((header::ACCEPT, "text/html"))
        .to_request();
    let res = test::call_service(&strict, html).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers().get(header::LOCATION).unwrap(),
        "/reauthenticate?return_to=/danger%3Fx%3D1"
    );
    // Without a session it is a 401, as for any authenticated route.
    let res = test::call_service(
        &strict,
        test::TestRequest::post().uri("/danger").to_request(),
    )
    .await;
    assert_eq!(res.status(), 401);
}

fn method_names(session: &Session) -> Vec<&str> {
    session.methods.iter().map(|m| m.method.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_reports_the_assurance_level_and_a_pending_login_is_no_session() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let settings = CacheSettings {
        max_age: Duration::from_secs(60),
        ..CacheSettings::default()
    };
    let client = SessionClient::builder(&server.admin, KEY)
        .cache(settings)
        .build()
        .unwrap();
    let session = client.check(&cookie).await.unwrap().unwrap();
    assert_eq!((session.aal(), session.aal.as_str()), (Aal::Aal1, "aal1"));
    assert_eq!(method_names(&session), ["password"]);
    assert_eq!(session.methods[0].at, session.authenticated_at);
    assert!(session.second_factor().is_none());
    // Cached at aal1 until the feed is followed and the session held.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.is_cached(&cookie) && Instant::now() < deadline {
        client.check(&cookie).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.is_cached(&cookie));

    // Enrolling proves the first code in this session: aal2, and the cached aal1 answer is
    // dropped when the feed reports the change (within its staleness bound).
    let (secret, used) = server.enroll_totp(&cookie).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while client.is_cached(&cookie) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let session = client.check(&cookie).await.unwrap().unwrap();
    assert_eq!(session.aal(), Aal::Aal2);
    assert_eq!(method_names(&session), ["password", "totp"]);
    assert_eq!(session.second_factor().unwrap().method, "totp");
    assert!(session.second_factor_within(Duration::from_secs(60)));

    // A password alone is now a pending login: no session for an app until its code.
    let pending = server.sign_in("alice").await;
    assert_eq!(client.check(&pending).await.unwrap(), None);
    server.prove_totp(&pending, &secret, next_step(used)).await;
    let session = client.check(&pending).await.unwrap().unwrap();
    assert_eq!(session.aal(), Aal::Aal2);
    assert_eq!(method_names(&session), ["password", "totp"]);
}

async fn second_factor_only(Aal2(session): Aal2) -> HttpResponse {
    HttpResponse::Ok().body(session.username)
}

async fn in_scope(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::HttpMessage;
    let aal = req.extensions().get::<Session>().map(Session::aal);
    HttpResponse::Ok().body(aal.map_or("none", Aal::as_str))
}

#[actix_web::test]
async fn the_aal2_guard_asks_for_a_second_factor() {
    // Sessions at aal1 are accepted everywhere (SESSION_REQUIRED_AAL=aal1): apps ask for the
    // second factor where they need it.
    let server = server_with(|s| s.required_aal = Some("aal1".into())).await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(StepUpRedirect("/second-factor".into())))
            .route("/transfer", web::post().to(second_factor_only))
            .service(
                web::scope("/admin")
                    .wrap(from_fn(require_aal2))
                    .route("/panel", web::get().to(in_scope)),
            ),
    )
    .await;
    let call = async |path: &str, cookie: &str, html: bool| {
        let request = if path == "/transfer" {
            test::TestRequest::post()
        } else {
            test::TestRequest::get()
        };
        let mut request = request
            .uri(&format!("{path}?x=1"))
            .insert_header((header::COOKIE, cookie));
        if html {
            request = request.insert_header((header::ACCEPT, "text/html"));
        }
        test::call_service(&app, request.to_request()).await
    };

    for path in ["/transfer", "/admin/panel"] {
        // aal1: 403 aal2_required, or the second-factor page for a page.
        let res = call(path, &cookie, false).await;
        assert_eq!(res.status(), 403, "{path}");
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"], "aal2_required", "{path}");
        let res = call(path, &cookie, true).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(
            res.headers().get(header::LOCATION).unwrap(),
            &format!("/second-factor?return_to={path}%3Fx%3D1"),
        );
        // No session: as any authenticated route.
        assert_eq!(call(path, "x=y", false).await.status(), 401, "{path}");
    }

    // Enrolling proves the first code: this session is aal2 and let in.
    let (secret, used) = server.enroll_totp(&cookie).await;
    let res = call("/transfer", &cookie, false).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "alice");
    let res = call("/admin/panel", &cookie, false).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "aal2");

    // Another login with the password alone: aal1, until it steps up.
    let other = server.sign_in("alice").await;
    assert_eq!(call("/transfer", &other, false).await.status(), 403);
    server.prove_totp(&other, &secret, next_step(used)).await;
    assert_eq!(call("/transfer", &other, false).await.status(), 200);
    assert_eq!(call("/admin/panel", &other, true).await.status(), 200);
}
