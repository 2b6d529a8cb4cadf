//! The API contract as the documents state it: the served OpenAPI documents are the committed
//! ones (`openapi/public.json`, `openapi/admin.json`), so every API change shows in review, and
//! every method a document does not list answers 405 with `Allow` (RFC 9110 15.5.6), and every
//! documented method that may change state refuses a request from another origin.
//!
//! After an intended change of the API, regenerate the committed documents with
//!
//!     UPDATE_OPENAPI=1 cargo test -p session-server --test api contract::
//!
//! Schemathesis and the generated clients (scripts/contract.sh) check the rest of the contract.

use std::path::PathBuf;

use reqwest::{Method, header};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, spawn_app};

/// The methods an OpenAPI path item can describe.
const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

fn committed_path(listener: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../openapi")
        .join(format!("{listener}.json"))
}

async fn served(app: &TestApp, listener: &str) -> Value {
    let base = if listener == "admin" {
        &app.admin
    } else {
        &app.public
    };
    let r = app
        .client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_documents_are_the_committed_ones() {
    let app = spawn_app(Backend::Memory).await;
    let update = std::env::var_os("UPDATE_OPENAPI").is_some();
    for listener in ["public", "admin"] {
        let doc = served(&app, listener).await;
        let path = committed_path(listener);
        if update {
            let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .expect("the committed document is JSON");
        assert!(
            doc == committed,
            "the served {listener} document differs from openapi/{listener}.json; if the API \
             change is intended, regenerate with \
             `UPDATE_OPENAPI=1 cargo test -p session-server --test api contract::` and review the diff"
        );
    }
}

/// A concrete URL path for a documented path template.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|part| {
            if part.starts_with('{') {
                "00000000-0000-0000-0000-000000000000"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_undocumented_method_answers_405_with_allow() {
    let app = spawn_app(Backend::Memory).await;
    let mut checked = 0;
    for listener in ["public", "admin"] {
        let doc = served(&app, listener).await;
        for (template, item) in doc["paths"].as_object().unwrap() {
            let documented: Vec<&str> = METHODS
                .into_iter()
                .filter(|m| item.get(m.to_ascii_lowercase()).is_some())
                .collect();
            let path = concrete(template);
            for method in METHODS.into_iter().filter(|m| !documented.contains(m)) {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let r = if listener == "admin" {
                    app.admin(method.clone(), &path)
                } else {
                    app.public(method.clone(), &path)
                }
                .send()
                .await
                .unwrap();
                assert_eq!(r.status(), 405, "{method} {template}");
                let allow = r
                    .headers()
                    .get(header::ALLOW)
                    .unwrap_or_else(|| panic!("{method} {template}: no Allow"))
                    .to_str()
                    .unwrap()
                    .to_owned();
                let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
                allowed.sort_unstable();
                let mut expected = documented.clone();
                expected.sort_unstable();
                assert_eq!(allowed, expected, "{method} {template}: Allow: {allow}");
                if method != Method::HEAD {
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["error"], "method_not_allowed");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} undocumented methods tried");
}

/// Every documented public method that may change state refuses a cross-origin browser request:
/// the origin check covers the whole public API wherever a route is registered (the session
/// check sits outside the `/v1` scope, and must stay GET only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_state_changing_route_refuses_other_origins() {
    let app = spawn_app(Backend::Memory).await;
    let doc = served(&app, "public").await;
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            if item.get(method.to_ascii_lowercase()).is_none() {
                continue;
            }
            let r = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{}", app.public, concrete(template)),
                )
                .header(header::ORIGIN, "https://evil.example")
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {template}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "cross_origin_refused", "{method} {template}");
            checked += 1;
        }
    }
    assert!(checked > 15, "only {checked} state-changing routes tried");
}
