//! Test harness: a private `redis-server` per test on a free loopback port, and the real
//! application on port 0, spoken to over HTTP.

use std::{sync::Arc, time::Duration};

use reqwest::{Method, RequestBuilder, Response, header};
use session_server::{
    config::{Config, Settings, WaitReplicas},
    startup::Application,
    state::{AppState, Overrides},
};
use sha2::{Digest, Sha256};
pub use test_support::{RedisServer, free_port};

pub const API_KEY: &str = "test-admin-key";
pub const ORIGIN: &str = "http://app.test";
pub const COOKIE: &str = "__Host-session";

/// Which store the app under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Memory,
    /// A private standalone `redis-server`.
    Redis,
    /// The shared 3-primary Redis Cluster (with a key prefix of the test's own).
    Cluster,
    /// The shared Sentinel-managed primary + replica (with a key prefix of the test's own).
    Sentinel,
}

/// Runs one async test body against every backend.
#[macro_export]
macro_rules! each_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::helpers::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::helpers::Backend::Redis).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::helpers::Backend::Cluster).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sentinel() {
                super::$name($crate::helpers::Backend::Sentinel).await;
            }
        }
    };
}

/// A key prefix no other test uses, so tests can share a Cluster or Sentinel deployment.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// Points `settings` at the backend's store.
pub fn use_backend(settings: &mut Settings, backend: Backend) -> Option<Arc<RedisServer>> {
    match backend {
        Backend::Memory => None,
        Backend::Redis => {
            let redis = RedisServer::start();
            settings.redis_url = Some(redis.url());
            Some(redis)
        }
        // Ends wait for a replica's `WAIT` (half the store timeout): room for a replica on a
        // machine loaded by the whole suite.
        Backend::Cluster => {
            settings.redis_cluster_nodes = Some(crate::deployments::Cluster::shared().urls());
            settings.redis_prefix = Some(unique_prefix());
            settings.redis_timeout = Some("2".parse().unwrap());
            None
        }
        Backend::Sentinel => {
            settings.redis_sentinels = Some(crate::deployments::SentinelGroup::shared().urls());
            settings.redis_sentinel_master = Some(crate::deployments::MASTER.into());
            settings.redis_prefix = Some(unique_prefix());
            settings.redis_timeout = Some("2".parse().unwrap());
            None
        }
    }
}

/// The settings every test starts from: loopback ports chosen by the OS, fast argon2, one
/// worker, the test origin and API key.
pub fn test_settings() -> Settings {
    Settings {
        public_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: Some("127.0.0.1:0".parse().unwrap()),
        workers: Some(1),
        argon2_memory_kib: Some(256),
        argon2_iterations: Some(1),
        argon2_parallelism: Some(1),
        argon2_concurrency: Some(2),
        allowed_origins: Some(ORIGIN.into()),
        admin_api_keys: Some(hex::encode(Sha256::digest(API_KEY.as_bytes()))),
        redis_timeout: Some("0.5".parse().unwrap()),
        // A fixed test key (32 bytes of 0x2a), so that TOTP works on every store.
        factor_keys: Some("1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into()),
        log: Some(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into())),
        ..Settings::default()
    }
}

/// A running application and a client for it.
pub struct TestApp {
    pub public: String,
    pub admin: String,
    /// The forward-auth listener's port, when the test configured one.
    pub forward_auth_port: Option<u16>,
    pub client: reqwest::Client,
    pub redis: Option<Arc<RedisServer>>,
    pub state: actix_web::web::Data<AppState>,
}

/// A signed-in browser: the `name=value` cookie pair.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
}

impl Browser {
    pub fn token(&self) -> &str {
        self.cookie
            .split_once('=')
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    let redis = use_backend(&mut settings, backend);
    tweak(&mut settings);
    spawn_with_settings(settings, redis).await
}

/// Spawns an app on an existing standalone Redis (several apps may share one).
pub async fn spawn_app_on(
    redis: Option<Arc<RedisServer>>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings();
    settings.redis_url = redis.as_ref().map(|r| r.url());
    tweak(&mut settings);
    spawn_with_settings(settings, redis).await
}

/// Two apps on one fresh standalone Redis: `healthy`, and `unconfirmed`, whose writes ask for a
/// `WAIT` confirmation that a Redis without replicas never gives (0.2 s timeout). Its writes are
/// applied but never acknowledged: a reply lost after Redis applied the write.
pub async fn healthy_and_unconfirmed() -> (TestApp, TestApp) {
    let redis = RedisServer::start();
    let healthy = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let unconfirmed = spawn_app_on(Some(redis), |s| {
        s.redis_wait_replicas = Some(WaitReplicas::Exactly(1));
        s.redis_timeout = Some("0.2".parse().unwrap());
    })
    .await;
    (healthy, unconfirmed)
}

/// Spawns an app with fully prepared settings.
pub async fn spawn_with_settings(settings: Settings, redis: Option<Arc<RedisServer>>) -> TestApp {
    spawn_with_overrides(settings, redis, Overrides::default()).await
}

/// Spawns an app with parts replaced: a skewed clock, hooks that hold requests at exact points.
/// With Redis, returns once the app runs on Redis's clock (or after 3 s, for tests that start it
/// while Redis is down).
pub async fn spawn_with_overrides(
    settings: Settings,
    redis: Option<Arc<RedisServer>>,
    overrides: Overrides,
) -> TestApp {
    let config = Config::from_settings(settings).expect("valid test config");
    let _ = session_server::telemetry::init(&config.logging, None);
    let uses_redis = config.redis.is_some();
    let app = Application::build_with(config, overrides).expect("app builds");
    let public = format!("http://127.0.0.1:{}", app.public_port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let forward_auth_port = app.forward_auth_port();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    if uses_redis {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !state.clock.is_synced() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    TestApp {
        public,
        admin,
        forward_auth_port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        redis,
        state,
    }
}

impl TestApp {
    /// A request to the public listener, carrying the allowed Origin like a browser on the app.
    pub fn public(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.public))
            .header(header::ORIGIN, ORIGIN)
    }

    /// A request to the admin listener with the API key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(API_KEY)
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.public(Method::POST, "/v1/users")
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.public(Method::POST, "/v1/login")
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Registers (if needed) and logs in; panics unless both work.
    pub async fn signed_in(&self, username: &str) -> Browser {
        let password = format!("{username}-password");
        let r = self.register(username, &password).await;
        assert!(
            r.status() == 201 || r.status() == 409,
            "register: {}",
            r.status()
        );
        let r = self.login(username, &password).await;
        assert_eq!(r.status(), 200, "login");
        Browser {
            cookie: session_cookie(&r).expect("login sets the session cookie"),
        }
    }

    pub async fn logout(&self, browser: &Browser) -> Response {
        self.public(Method::POST, "/v1/logout")
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap()
    }

    /// `/readyz`'s body.
    pub async fn readyz(&self) -> serde_json::Value {
        self.public(Method::GET, "/readyz")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn whoami(&self, browser: &Browser) -> Response {
        self.public(Method::GET, "/v1/session")
            .header(header::COOKIE, &browser.cookie)
            .send()
            .await
            .unwrap()
    }

    /// The whole event feed, read through the admin API.
    pub async fn feed(&self) -> Vec<serde_json::Value> {
        let page: serde_json::Value = self
            .admin(Method::GET, "/admin/v1/events?after=0-0&wait=0&max=1000")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["events"].as_array().unwrap().clone()
    }

    /// A user's live sessions, as the admin API lists them.
    pub async fn user_sessions(&self, user_id: &str) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .admin(Method::GET, &format!("/admin/v1/users/{user_id}/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["sessions"].as_array().expect("a session list").clone()
    }

    /// One value of the admin listener's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .parse()
            .unwrap()
    }

    /// Asks the admin API whether a token is an active session.
    pub async fn check(&self, browser: &Browser) -> bool {
        let r = self
            .admin(Method::POST, "/admin/v1/sessions/check")
            .json(&serde_json::json!({"token": browser.token()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()["active"] == true
    }
}

/// Sends a request again while it answers 503 (a replicated topology settling after a failover,
/// an end no replica confirmed yet), for at most 30 s: a retry converges.
pub async fn retried_while_unavailable<F: Future<Output = Response>>(
    request: impl Fn() -> F,
) -> Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = request().await;
        if r.status() != 503 || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `name=value` of the session cookie set by a response, if it set a non-empty one.
pub fn session_cookie(response: &Response) -> Option<String> {
    set_cookie_header(response)
        .and_then(|h| h.split(';').next().map(str::to_owned))
        .filter(|pair| !pair.ends_with('='))
}

/// The raw Set-Cookie header for the session cookie.
pub fn set_cookie_header(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(str::to_owned)
}

/// Reads an error body and returns its code, checking the documented shape.
pub async fn error_code(response: Response) -> String {
    let body: serde_json::Value = response.json().await.expect("error bodies are JSON");
    assert!(body["message"].is_string(), "{body}");
    body["error"].as_str().expect("error code").to_owned()
}

/// The admin console's cookie (the test settings keep secure cookies, so it has the prefix).
pub const CONSOLE_COOKIE: &str = "__Host-console";

/// An operator's browser on the admin console: its console cookie, and the page last read.
#[derive(Debug, Clone)]
pub struct Console {
    pub admin: String,
    pub client: reqwest::Client,
    /// `__Host-console=<token>`.
    pub cookie: String,
}

/// The `name=value` pair of the console cookie a response set, if it set a non-empty one.
pub fn console_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{CONSOLE_COOKIE}=")))
        .and_then(|h| h.split(';').next().map(str::to_owned))
        .filter(|pair| !pair.ends_with('='))
}

/// The CSRF token in a console page's forms.
pub fn csrf_of(page: &str) -> String {
    let start = page
        .find(r#"name="csrf" value=""#)
        .expect("a console form with its CSRF token")
        + r#"name="csrf" value=""#.len();
    page[start..][..page[start..].find('"').unwrap()].to_owned()
}

impl TestApp {
    /// Posts the console's sign-in form with `key`, as a browser on the admin listener would.
    pub async fn console_sign_in_with(&self, key: &str) -> Response {
        self.client
            .post(format!("{}/console/sign-in", self.admin))
            .header(header::ORIGIN, &self.admin)
            .form(&[("key", key)])
            .send()
            .await
            .unwrap()
    }

    /// Signs in to the console with the test's admin key; panics unless it works.
    pub async fn console(&self) -> Console {
        let r = self.console_sign_in_with(API_KEY).await;
        assert_eq!(r.status(), 303, "console sign-in");
        Console {
            admin: self.admin.clone(),
            client: self.client.clone(),
            cookie: console_cookie(&r).expect("sign-in sets the console cookie"),
        }
    }
}

impl Console {
    /// A console page, with the console cookie.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.admin))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A console page's status and HTML.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a console form (same origin) with `csrf` and the console cookie.
    pub async fn post(&self, path: &str, csrf: &str) -> Response {
        self.client
            .post(format!("{}{path}", self.admin))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, &self.admin)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap()
    }

    /// Reads the page at `path` for its CSRF token, then posts the form at `action`.
    pub async fn submit(&self, page: &str, action: &str) -> Response {
        let (status, html) = self.page(page).await;
        assert_eq!(status, 200, "{html}");
        self.post(action, &csrf_of(&html)).await
    }
}
