//! What a session carries besides its user, through session-client against the real service:
//! authentication time, kind, app data (typed helpers, optimistic concurrency) and bearer
//! sessions; and the actix guard for sensitive actions.
#![cfg(feature = "actix")]

mod support;

use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, http::header, test, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use session_client::{
    CacheSettings, Error, SessionClient,
    actix::{FreshAuth, ReauthRedirect, RecentlyAuthenticated},
};
use support::{KEY, server};

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
