// Shared by the test files: a private redis-server and the real session-server on it.
#![allow(dead_code)]

use std::sync::Arc;

use session_server::{
    config::{Config, Settings},
    startup::Application,
};
use sha2::{Digest, Sha256};
use test_support::RedisServer;

pub const KEY: &str = "client-test-key";

pub struct Server {
    pub public: String,
    pub admin: String,
    pub http: reqwest::Client,
    handles: Vec<actix_web::dev::ServerHandle>,
    pub redis: Arc<RedisServer>,
}

pub async fn server_with(tweak: impl FnOnce(&mut Settings)) -> Server {
    let redis = RedisServer::start();
    let mut s = Settings {
        redis_url: Some(redis.url()),
        public_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: Some("127.0.0.1:0".parse().unwrap()),
        workers: Some(1),
        argon2_memory_kib: Some(256),
        argon2_iterations: Some(1),
        admin_api_keys: Some(hex::encode(Sha256::digest(KEY.as_bytes()))),
        log: Some("off".into()),
        redis_timeout: Some("0.5".parse().unwrap()),
        ..Settings::default()
    };
    tweak(&mut s);
    let app = Application::build(Config::from_settings(s).unwrap()).unwrap();
    let server = Server {
        public: format!("http://127.0.0.1:{}", app.public_port()),
        admin: format!("http://127.0.0.1:{}", app.admin_port()),
        http: reqwest::Client::new(),
        handles: app.handles(),
        redis,
    };
    tokio::spawn(app.run_until_stopped());
    server
}

pub async fn server() -> Server {
    server_with(|_| {}).await
}

impl Server {
    /// Registers and logs in; returns the raw `Cookie` header value a browser would send.
    pub async fn sign_in(&self, user: &str) -> String {
        let body = serde_json::json!({"username": user, "password": format!("{user}-password")});
        self.http
            .post(format!("{}/v1/users", self.public))
            .json(&body)
            .send()
            .await
            .unwrap();
        let r = self
            .http
            .post(format!("{}/v1/login", self.public))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        format!("theme=dark; {}", set_cookie.split(';').next().unwrap())
    }

    pub async fn logout(&self, cookie: &str) {
        let r = self
            .http
            .post(format!("{}/v1/logout", self.public))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    pub async fn stop(&self) {
        for h in &self.handles {
            h.stop(false).await;
        }
    }
}
