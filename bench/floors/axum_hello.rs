//! Ceiling: axum 0.8 "hello world" on a tokio current_thread runtime, the axum peer's framework
//! without tower-sessions. Answers GET /v1/session with the same JSON body as the peers
//! ({"user":"alice"}) but without any cookie, session or store work: the floor under the axum
//! peer, as `hello` (actix-web) is the floor under session-server. Built beside the peers by
//! `bench/floors.sh`.
use axum::{routing::get, Json, Router};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(18100);
    let app = Router::new().route("/v1/session", get(|| async { Json(serde_json::json!({"user": "alice"})) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
