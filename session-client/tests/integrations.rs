//! The actix-web extractor and middleware, and the tower layer, against the real service.
#![cfg(all(feature = "actix", feature = "tower"))]

mod support;

use actix_web::{App, HttpResponse, http::header, middleware::from_fn, test, web};
use session_client::{
    Aal, Session, SessionClient,
    actix::{Authenticated, LoginRedirect, require_session},
    tower::{SessionLayer, SessionState},
};
use support::{KEY, server};
use tower::{ServiceExt, service_fn};

async fn me(Authenticated(session): Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(session.username)
}

async fn guarded(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::HttpMessage;
    let name = req
        .extensions()
        .get::<Session>()
        .map(|s| s.username.clone());
    HttpResponse::Ok().body(name.unwrap_or_default())
}

#[actix_web::test]
async fn the_actix_extractor_and_middleware_let_only_live_sessions_in() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(LoginRedirect("/login".into())))
            .route("/me", web::get().to(me))
            .service(
                web::scope("/account")
                    .wrap(from_fn(require_session))
                    .route("/settings", web::get().to(guarded)),
            ),
    )
    .await;

    for path in ["/me", "/account/settings"] {
        let ok = test::TestRequest::get()
            .uri(path)
            .insert_header((header::COOKIE, cookie.as_str()))
            .to_request();
        let res = test::call_service(&app, ok).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(test::read_body(res).await, "alice");

        let api = test::TestRequest::get()
            .uri(path)
            .insert_header((header::COOKIE, "x=y"))
            .to_request();
        let res = test::call_service(&app, api).await;
        assert_eq!(res.status(), 401, "{path}");
        let body: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(body["error"], "unauthenticated");

        let page = test::TestRequest::get()
            .uri(&format!("{path}?tab=1"))
            .insert_header((header::ACCEPT, "text/html,application/xhtml+xml"))
            .to_request();
        let res = test::call_service(&app, page).await;
        assert_eq!(res.status(), 303, "{path}");
        let location = res
            .headers()
            .get(header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(location, format!("/login?return_to={}%3Ftab%3D1", path));
    }

    server.stop().await;
    let down = test::TestRequest::get()
        .uri("/me")
        .insert_header((header::COOKIE, cookie.as_str()))
        .to_request();
    assert_eq!(
        test::call_service(&app, down).await.status(),
        503,
        "never let in when the service cannot be asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_puts_the_session_state_into_extensions() {
    let server = server().await;
    let cookie = server.sign_in("alice").await;
    let client = SessionClient::new(&server.admin, KEY).unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(SessionLayer::new(client))
        .service(service_fn(|req: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(req.extensions().get::<SessionState>().cloned())
        }));
    let ask = |cookie: Option<&str>| {
        let mut req = http::Request::builder().uri("/");
        if let Some(c) = cookie {
            req = req.header(http::header::COOKIE, c);
        }
        service.clone().oneshot(req.body(()).unwrap())
    };
    match ask(Some(&cookie)).await.unwrap() {
        Some(state @ SessionState::Active(_)) => {
            let s = state.session().unwrap();
            assert_eq!((s.username.as_str(), s.aal()), ("alice", Aal::Aal1));
            assert!(state.session_at(Aal::Aal1).is_some());
            assert!(
                state.session_at(Aal::Aal2).is_none(),
                "a password alone is not aal2"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ask(None).await.unwrap(),
        Some(SessionState::Anonymous)
    ));
    assert!(matches!(
        ask(Some("__Host-session=nope")).await.unwrap(),
        Some(SessionState::Anonymous)
    ));
    server.stop().await;
    assert!(matches!(
        ask(Some(&cookie)).await.unwrap(),
        Some(SessionState::Unavailable)
    ));
}
