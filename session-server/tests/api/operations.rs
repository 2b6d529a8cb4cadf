//! CSRF, health, readiness, metrics and the OpenAPI documents.

use reqwest::{Method, header};

use crate::helpers::{Backend, error_code, spawn_app};

async fn state_changing_requests_from_other_origins_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("alice").await;
    let attempts = [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("referer", "https://evil.example/attack.html"),
    ];
    for (name, value) in attempts {
        for (method, path) in [
            (Method::POST, "/v1/logout"),
            (Method::DELETE, "/v1/sessions"),
            (Method::POST, "/v1/password"),
        ] {
            let r = app
                .client
                .request(method.clone(), format!("{}{path}", app.public))
                .header(header::COOKIE, &browser.cookie)
                .header(name, value)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {path} with {name}: {value}");
            assert_eq!(error_code(r).await, "cross_origin_refused");
        }
    }
    assert_eq!(
        app.whoami(&browser).await.status(),
        200,
        "nothing was changed"
    );
    let r = app
        .client
        .post(format!("{}/v1/logout", app.public))
        .header(header::COOKIE, &browser.cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}
crate::each_backend!(state_changing_requests_from_other_origins_are_refused);

async fn health_readiness_metrics_and_openapi_answer_on_both_listeners(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_in("alice").await;
    app.login("alice", "bad-password").await;
    for base in [&app.public, &app.admin] {
        let r = app
            .client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = app
            .client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = app
            .client
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap();
        let doc: serde_json::Value = r.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(!doc["paths"].as_object().unwrap().is_empty());
    }
    let public: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(public["paths"]["/v1/login"].is_object());
    let admin: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(admin["paths"]["/admin/v1/sessions/check"].is_object());

    let metrics = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "session_http_requests_total{listener=\"public\",method=\"POST\",route=\"/v1/login\",status=\"200\"} 1",
        "session_logins_total{result=\"ok\"} 1",
        "session_logins_total{result=\"failed\"} 1",
        "session_sessions_created_total 1",
        "session_http_request_duration_seconds_bucket",
        "session_argon2_queue_depth 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}
crate::each_backend!(health_readiness_metrics_and_openapi_answer_on_both_listeners);
