// Shared by the test files: a private redis-server and the real session-server on it.
#![allow(dead_code)]

use std::sync::Arc;

use std::time::{SystemTime, UNIX_EPOCH};

use session_server::{
    config::{Config, Settings},
    domain::factors::totp::{self, TotpSecret},
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
        // A fixed test key (32 bytes of 0x2a): with Redis, TOTP needs one.
        factor_keys: Some("1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into()),
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

    /// A call to the public API with the browser's `Cookie` header and a JSON body.
    pub async fn post(
        &self,
        cookie: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.public))
            .header("cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Enrols TOTP in the session of `cookie` with a code of the current time step, which the
    /// session proves (it becomes `aal2`); returns the secret and that step, used up: a later
    /// proof needs a later step ([`next_step`]).
    pub async fn enroll_totp(&self, cookie: &str) -> (TotpSecret, u64) {
        let r = self
            .post(cookie, "/v1/session/factors/totp", serde_json::Value::Null)
            .await;
        assert_eq!(r.status(), 201, "TOTP enrolment begins");
        let enrollment: serde_json::Value = r.json().await.unwrap();
        let base32 = enrollment["secret"].as_str().unwrap().to_owned();
        let bytes = totp_rs::Secret::Encoded(base32).to_bytes().unwrap();
        let secret = TotpSecret::from_bytes(&bytes).unwrap();
        let step = step_now();
        let code = totp::code_at_step(&secret, step);
        let r = self
            .post(
                cookie,
                "/v1/session/factors/totp/confirm",
                serde_json::json!({ "code": code }),
            )
            .await;
        assert_eq!(r.status(), 200, "the first code confirms the enrolment");
        (secret, step)
    }

    /// Proves the TOTP code of `step` in the session of `cookie`.
    pub async fn prove_totp(&self, cookie: &str, secret: &TotpSecret, step: u64) {
        let code = totp::code_at_step(secret, step);
        let body = serde_json::json!({"method": "totp", "code": code});
        let r = self.post(cookie, "/v1/session/second-factor", body).await;
        assert_eq!(r.status(), 200, "the second factor is proved");
    }

    pub async fn stop(&self) {
        for h in &self.handles {
            h.stop(false).await;
        }
    }
}

/// The current TOTP time step (the service runs on this machine's clock).
pub fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / totp::STEP_SECONDS
}

/// A step the service accepts after `used` was accepted: the next one, or the current one once
/// time has moved past it (a step is accepted up to one step either side of the current).
pub fn next_step(used: u64) -> u64 {
    (used + 1).max(step_now())
}
