//! No token, token digest, password, password hash or API key in the logs (at debug level, JSON
//! format, every crate), in `/metrics`, in any response body or in any exported span (every span
//! sent to an OTLP receiver, every attribute and event, and the raw export bodies): the real
//! binary on a real `redis-server`, through a full flow of registrations, logins, checks, device
//! lists, password changes, logouts, failed and refused logins and every admin call.

use std::{
    fs::File,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use reqwest::{Client, Method, RequestBuilder, Response, header};
use serde_json::{Value, json};
use session_server::domain::factors::{
    recovery,
    totp::{self, TotpSecret},
};
use sha2::{Digest, Sha256};

use test_support::otlp::OtlpReceiver;

use crate::helpers::{
    API_KEY, CONSOLE_COOKIE, ORIGIN, RedisServer, console_cookie, csrf_of, session_cookie,
};

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The server process; killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything the flow saw: response bodies and secrets to look for.
#[derive(Default)]
struct Seen {
    bodies: Vec<String>,
    tokens: Vec<String>,
}

struct Flow {
    client: Client,
    public: String,
    admin: String,
    seen: Seen,
}

impl Flow {
    fn public(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.public))
            .header(header::ORIGIN, ORIGIN)
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(API_KEY)
    }

    /// Sends, records the body (and any session token handed out), checks the status.
    async fn send(&mut self, req: RequestBuilder, status: u16) -> Value {
        let r: Response = req.send().await.unwrap();
        let got = r.status().as_u16();
        if let Some(cookie) = session_cookie(&r) {
            self.seen
                .tokens
                .push(cookie.split_once('=').unwrap().1.to_owned());
        }
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{text}");
        self.seen.bodies.push(text.clone());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A bearer login: its answer is the one body meant to hold a token, so it is not among the
    /// bodies searched; the token is among the secrets.
    async fn bearer_login(&mut self, user: &str, password: &str) -> String {
        let r = self
            .public(Method::POST, "/v1/login")
            .json(&json!({"username": user, "password": password, "token_delivery": "body"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        self.seen.tokens.push(token.clone());
        token
    }

    async fn login(&mut self, user: &str, password: &str, status: u16) -> Option<String> {
        let before = self.seen.tokens.len();
        let req = self
            .public(Method::POST, "/v1/login")
            .json(&json!({"username": user, "password": password}));
        self.send(req, status).await;
        (self.seen.tokens.len() > before).then(|| self.seen.tokens.last().unwrap().clone())
    }
}

/// A session token's name in the store (`TokenDigest::encode`): SHA-256 of its secret, 128
/// bits, base64url. `None` for other tokens (a console sign-in's).
fn token_digest(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let secret = token
        .split_once('.')
        .and_then(|(_, secret)| URL_SAFE_NO_PAD.decode(secret).ok())?;
    Some(URL_SAFE_NO_PAD.encode(&Sha256::digest(secret)[..16]))
}

fn cookie(token: &str) -> String {
    format!("__Host-session={token}")
}

/// The key that seals TOTP secrets (base64 of 32 bytes): a secret of its own.
const FACTOR_KEY: &str = "c2VhbHMtdG90cC1zZWNyZXRzLWF0LXJlc3QtaGVyZSE=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_or_response_bodies() {
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("session-hostile-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out_path, err_path) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let (public, admin) = (free_addr(), free_addr());
    let receiver = OtlpReceiver::start();
    let child = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .env_clear()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("REDIS_URL", redis.url())
        .env("SESSION_PUBLIC_ADDR", &public)
        .env("SESSION_ADMIN_ADDR", &admin)
        .env("SESSION_LOG", "debug")
        .env("SESSION_LOG_FORMAT", "json")
        .env("SESSION_ALLOWED_ORIGINS", ORIGIN)
        .env(
            "SESSION_ADMIN_API_KEYS",
            hex::encode(Sha256::digest(API_KEY)),
        )
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .env("SESSION_LOGIN_MAX_FAILURES_PER_USER", "3")
        .env("SESSION_WORKERS", "1")
        .env("SESSION_FACTOR_KEYS", format!("7:{FACTOR_KEY}"))
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut f = Flow {
        client,
        public: format!("http://{public}"),
        admin: format!("http://{admin}"),
        seen: Seen::default(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while f
        .client
        .get(format!("{}/healthz", f.public))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let passwords = [
        "alice-first-password",
        "alice-second-password",
        "bob-secret-password",
        "bob-admin-set-password",
        "carol-secret-password",
        "wrong-guess-password",
    ];
    let [alice1, alice2, bob1, bob2, carol1, wrong] = passwords;

    // Registration and logins.
    let req = f
        .public(Method::POST, "/v1/users")
        .json(&json!({"username": "alice", "password": alice1}));
    f.send(req, 201).await;
    let req = f
        .public(Method::POST, "/v1/users")
        .json(&json!({"username": "bob", "password": bob1}));
    let bob_id = f.send(req, 201).await["id"].as_str().unwrap().to_owned();
    let a1 = f.login("alice", alice1, 200).await.unwrap();
    let a2 = f.login("alice", alice1, 200).await.unwrap();
    let b1 = f.login("bob", bob1, 200).await.unwrap();
    // Who am I, devices, a form login, and a login that ends the session presented with it.
    let req = f
        .public(Method::GET, "/v1/session")
        .header(header::COOKIE, cookie(&a1));
    f.send(req, 200).await;
    let req = f
        .public(Method::GET, "/v1/sessions")
        .header(header::COOKIE, cookie(&a1));
    f.send(req, 200).await;
    let req = f.public(Method::POST, "/v1/login").form(&[
        ("username", "alice"),
        ("password", alice1),
        ("return_to", "/home"),
    ]);
    f.send(req, 303).await;
    let req = f
        .public(Method::POST, "/v1/login")
        .header(header::COOKIE, cookie(&a2))
        .json(&json!({"username": "alice", "password": alice1}));
    f.send(req, 200).await;
    let a3 = f.seen.tokens.last().unwrap().clone();
    // Password change (ends the other sessions).
    let req = f
        .public(Method::POST, "/v1/password")
        .header(header::COOKIE, cookie(&a1))
        .json(&json!({"current_password": alice1, "new_password": alice2}));
    f.send(req, 200).await;
    let req = f
        .public(Method::POST, "/v1/password")
        .header(header::COOKIE, cookie(&a1))
        .json(&json!({"current_password": wrong, "new_password": alice1}));
    f.send(req, 403).await;
    // Failed, refused, malformed and throttled logins, each carrying a secret somewhere.
    f.login("alice", wrong, 401).await;
    f.login("nobody", alice2, 401).await;
    f.login("bob", alice2, 401).await;
    f.login("alice", &format!("{alice2}{}", "x".repeat(200)), 400)
        .await;
    f.login(&format!("{alice2}!"), alice2, 400).await;
    let req = f
        .public(Method::POST, "/v1/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!("{{\"username\":\"alice\",\"password\":\"{alice2}"));
    f.send(req, 400).await;
    let req = f
        .public(Method::POST, "/v1/login")
        .json(&json!({"username": "alice", "password": [alice2], "token": a1}));
    f.send(req, 400).await;
    let req = f
        .public(Method::GET, "/v1/session")
        .header(header::COOKIE, cookie(&format!("{a1}x")));
    f.send(req, 401).await;
    f.login("bob", wrong, 401).await;
    f.login("bob", wrong, 401).await;
    f.login("bob", wrong, 429).await;
    let req = f
        .client
        .post(format!("{}/v1/logout", f.public))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, cookie(&a1));
    f.send(req, 403).await;

    // Admin calls: checks by token and by cookie, lookups, the event feed, password reset,
    // disable and enable, session listing and revocation, user creation; and refused keys.
    let req = f
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&json!({"token": a1}));
    assert_eq!(f.send(req, 200).await["active"], true);
    let req = f
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&json!({"cookie": format!("theme=dark; {}", cookie(&b1))}));
    assert_eq!(f.send(req, 200).await["active"], true);
    let req = f
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&json!({"token": a2}));
    assert_eq!(f.send(req, 200).await["active"], false);
    // Forward auth, as a proxy asks: an active session, an ended one, a navigation sent to log
    // in, malformed forwarded headers.
    let req = f
        .admin(Method::GET, "/admin/v1/forward-auth")
        .header(header::COOKIE, format!("theme=dark; {}", cookie(&a1)));
    f.send(req, 200).await;
    let req = f
        .admin(Method::GET, "/admin/v1/forward-auth")
        .header(header::COOKIE, cookie(&a2))
        .header(header::ACCEPT, "text/html")
        .header("x-original-url", "http://app.test/private");
    f.send(req, 303).await;
    let req = f
        .admin(Method::GET, "/admin/v1/forward-auth")
        .header(header::COOKIE, cookie(&a2))
        .header("x-forwarded-uri", "no-path");
    f.send(req, 400).await;
    f.send(f.admin(Method::GET, "/admin/v1/users?username=alice"), 200)
        .await;
    f.send(
        f.admin(Method::GET, &format!("/admin/v1/users/{bob_id}")),
        200,
    )
    .await;
    f.send(
        f.admin(Method::GET, &format!("/admin/v1/users/{bob_id}/sessions")),
        200,
    )
    .await;
    f.send(
        f.admin(Method::GET, "/admin/v1/events?after=0-0&wait=0"),
        200,
    )
    .await;
    let req = f
        .admin(Method::PUT, &format!("/admin/v1/users/{bob_id}/password"))
        .json(&json!({ "password": bob2 }));
    f.send(req, 200).await;
    let b2 = f.login("bob", bob2, 429).await;
    assert!(b2.is_none(), "bob is still throttled");
    f.send(
        f.admin(Method::POST, &format!("/admin/v1/users/{bob_id}/disable")),
        200,
    )
    .await;
    f.send(
        f.admin(Method::POST, &format!("/admin/v1/users/{bob_id}/enable")),
        204,
    )
    .await;
    f.send(
        f.admin(
            Method::DELETE,
            &format!("/admin/v1/users/{bob_id}/sessions"),
        ),
        200,
    )
    .await;
    let req = f
        .admin(Method::POST, "/admin/v1/users")
        .json(&json!({"username": "carol", "password": carol1}));
    f.send(req, 201).await;
    let c1 = f.login("carol", carol1, 200).await.unwrap();
    let carol_session = f
        .send(
            f.public(Method::GET, "/v1/session")
                .header(header::COOKIE, cookie(&c1)),
            200,
        )
        .await;
    let (carol_id, carol_handle) = (
        carol_session["user"]["id"].as_str().unwrap().to_owned(),
        carol_session["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let req = f.admin(
        Method::DELETE,
        &format!("/admin/v1/users/{carol_id}/sessions/{carol_handle}"),
    );
    f.send(req, 204).await;
    for key in [
        format!("Bearer {a3}"),
        format!("Bearer {alice2}"),
        format!("Bearer {API_KEY}x"),
    ] {
        let req = f
            .client
            .post(format!("{}/admin/v1/sessions/check", f.admin))
            .header(header::AUTHORIZATION, key)
            .json(&json!({"token": a3}));
        f.send(req, 401).await;
    }
    // The admin console: a refused key, a sign-in, a user's page, a device signed out through
    // a form, the feed, and sign-out. Headers are searched too (the console cookie).
    for (key, status) in [
        (format!("{API_KEY}x"), 401),
        (alice2.to_owned(), 401),
        (API_KEY.to_owned(), 303),
    ] {
        let r = f
            .client
            .post(format!("{}/console/sign-in", f.admin))
            .header(header::ORIGIN, &f.admin)
            .form(&[("key", key.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        let headers = format!("{:?}", r.headers());
        match console_cookie(&r) {
            // The one answer meant to carry the console token: searched for the key alone.
            Some(pair) => {
                assert!(!headers.contains(API_KEY), "{headers}");
                f.seen
                    .tokens
                    .push(pair.split_once('=').unwrap().1.to_owned());
            }
            None => f.seen.bodies.push(headers),
        }
        f.seen.bodies.push(r.text().await.unwrap());
    }
    let console_pair = format!("{CONSOLE_COOKIE}={}", f.seen.tokens.last().unwrap());
    let c3 = f.login("carol", carol1, 200).await.unwrap();
    let carol_handle3 = f
        .send(
            f.public(Method::GET, "/v1/session")
                .header(header::COOKIE, cookie(&c3)),
            200,
        )
        .await["session"]["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = f
        .client
        .get(format!("{}/console/users/{carol_id}", f.admin))
        .header(header::COOKIE, &console_pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    f.seen.bodies.push(page.clone());
    for (path, status) in [
        (
            format!("/console/users/{carol_id}/sessions/{carol_handle3}/revoke"),
            303,
        ),
        ("/console/sign-out".to_owned(), 303),
    ] {
        let r = f
            .client
            .post(format!("{}{path}", f.admin))
            .header(header::COOKIE, &console_pair)
            .header(header::ORIGIN, &f.admin)
            .form(&[("csrf", csrf_of(&page))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        f.seen.bodies.push(format!("{:?}", r.headers()));
    }

    // A bearer session: who am I, a wrong and a right re-authentication, session data, the
    // admin check by Authorization header, logout.
    let bearer = f.bearer_login("carol", carol1).await;
    let as_bearer = |f: &Flow, method: Method, path: &str| {
        f.client
            .request(method, format!("{}{path}", f.public))
            .bearer_auth(&bearer)
    };
    let me = f.send(as_bearer(&f, Method::GET, "/v1/session"), 200).await;
    let req =
        as_bearer(&f, Method::POST, "/v1/session/reauthenticate").json(&json!({"password": wrong}));
    f.send(req, 403).await;
    let req = as_bearer(&f, Method::POST, "/v1/session/reauthenticate")
        .json(&json!({"password": carol1}));
    f.send(req, 200).await;
    let req = f
        .admin(
            Method::PATCH,
            &format!(
                "/admin/v1/users/{}/sessions/{}/data",
                me["user"]["id"].as_str().unwrap(),
                me["session"]["handle"].as_str().unwrap()
            ),
        )
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body(r#"{"tenant":"acme"}"#);
    f.send(req, 200).await;
    let req = f
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&json!({"authorization": format!("Bearer {bearer}")}));
    f.send(req, 200).await;
    f.send(as_bearer(&f, Method::POST, "/v1/logout"), 204).await;
    // Logout and "log out everywhere" by the user; a3 ended with the password change.
    let c2 = f.login("carol", carol1, 200).await.unwrap();
    let req = f
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, cookie(&c2));
    f.send(req, 204).await;
    let req = f
        .public(Method::GET, "/v1/session")
        .header(header::COOKIE, cookie(&a3));
    f.send(req, 401).await;
    let req = f
        .public(Method::DELETE, "/v1/sessions?include_current=true")
        .header(header::COOKIE, cookie(&a1));
    f.send(req, 200).await;
    let req = f
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, cookie(&a1));
    f.send(req, 204).await;

    // Second factors: a TOTP enrolment (its answer is the one body meant to hold the secret, so
    // it is not searched; the secret is among the secrets), a wrong and a right first code,
    // recovery codes (shown once, likewise), pending logins finished with a recovery code and a
    // TOTP code, and an administrator's reset.
    let c4 = f.login("carol", carol1, 200).await.unwrap();
    let r = f
        .public(Method::POST, "/v1/session/factors/totp")
        .header(header::COOKIE, cookie(&c4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let enrollment: Value = r.json().await.unwrap();
    let base32 = enrollment["secret"].as_str().unwrap().to_owned();
    let secret_bytes = totp_rs::Secret::Encoded(base32.clone()).to_bytes().unwrap();
    let secret = TotpSecret::from_bytes(&secret_bytes).unwrap();
    let step = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / totp::STEP_SECONDS;
    let right = totp::code_at_step(&secret, step);
    let wrong_code = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for (code, status) in [(wrong_code, 403), (right, 200)] {
        let req = f
            .public(Method::POST, "/v1/session/factors/totp/confirm")
            .header(header::COOKIE, cookie(&c4))
            .json(&json!({"code": code}));
        f.send(req, status).await;
    }
    let r = f
        .public(Method::POST, "/v1/session/factors/recovery-codes")
        .header(header::COOKIE, cookie(&c4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for (method, code) in [
        ("recovery_code", codes[0].to_uppercase()),
        ("totp", totp::code_at_step(&secret, step + 1)),
    ] {
        let pending = f.login("carol", carol1, 200).await.unwrap();
        let req = f
            .public(Method::POST, "/v1/session/second-factor")
            .header(header::COOKIE, cookie(&pending))
            .json(&json!({"method": method, "code": code}));
        f.send(req, 200).await;
    }
    let req = f.admin(
        Method::DELETE,
        &format!("/admin/v1/users/{carol_id}/factors"),
    );
    f.send(req, 200).await;
    // A passkey: registered, then a passwordless sign-in and a replay of its answer. The
    // ceremonies' first answers hold their challenges (not searched; the challenges and ceremony
    // ids are among the secrets), and the credentials' signatures never come back at all.
    let mut authenticator = test_support::passkey::Authenticator::new("app.test", ORIGIN);
    let mut ceremony_secrets: Vec<String> = Vec::new();
    let c5 = f.login("carol", carol1, 200).await.unwrap();
    let mut started = Vec::new();
    for (path, token) in [
        ("/v1/session/factors/passkeys", Some(&c5)),
        ("/v1/login/passkey", None),
    ] {
        let mut req = f.public(Method::POST, path);
        if let Some(token) = token {
            req = req.header(header::COOKIE, cookie(token));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ceremony: Value = r.json().await.unwrap();
        ceremony_secrets.push(ceremony["ceremony"].as_str().unwrap().to_owned());
        let challenge = &ceremony["options"]["publicKey"]["challenge"];
        ceremony_secrets.push(challenge.as_str().unwrap().to_owned());
        started.push(ceremony);
    }
    let credential = authenticator.register(&started[0]["options"]);
    let req = f
        .public(Method::POST, "/v1/session/factors/passkeys/finish")
        .header(header::COOKIE, cookie(&c5))
        .json(&json!({"ceremony": started[0]["ceremony"], "credential": credential}));
    f.send(req, 201).await;
    let answer = authenticator.assert(&started[1]["options"]);
    ceremony_secrets.push(answer["response"]["signature"].as_str().unwrap().to_owned());
    for status in [200, 409] {
        let req = f
            .public(Method::POST, "/v1/login/passkey/finish")
            .json(&json!({"ceremony": started[1]["ceremony"], "credential": answer}));
        f.send(req, status).await;
    }
    let req = f.admin(
        Method::DELETE,
        &format!("/admin/v1/users/{carol_id}/factors"),
    );
    f.send(req, 200).await;

    let mut exposed = Vec::new();
    for base in [&f.public, &f.admin] {
        let text = f
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        exposed.push(("metrics", text));
    }
    // The stored hashes, as an attacker reading logs would recognise them.
    let mut hashes = Vec::new();
    for key in redis.keys().iter().filter(|k| k.ends_with(":user")) {
        let reply = redis.command(&["HGET", key, "h"]).unwrap();
        let hash = reply.lines().nth(1).unwrap().to_owned();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        hashes.push(hash);
    }
    assert_eq!(hashes.len(), 3);

    // Stop gracefully so that everything is flushed.
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // The logs are real: JSON lines at debug level, with the audit trail of the flow.
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 50, "{} log lines", lines.len());
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "no debug output"
    );
    for event in [
        "login",
        "login_failed",
        "password_changed",
        "password_set_by_admin",
        "logout",
        "user_disabled",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l["target"] == "audit" && l["event"] == event),
            "no audit event {event}"
        );
    }
    // Admin actions name the key by its id and the client's address, through the API and the
    // console alike; the console's sign-in and sign-out are in the trail too.
    let key_id = &hex::encode(Sha256::digest(API_KEY))[..12];
    let acted = |event: &str, via: &str| {
        lines.iter().any(|l| {
            l["target"] == "audit"
                && l["event"] == event
                && l["span"]["name"] == "admin"
                && l["span"]["admin_key"] == key_id
                && l["span"]["client_ip"] == "127.0.0.1"
                && l["span"]["via"] == via
        })
    };
    assert!(
        acted("session_revoked", "api"),
        "the admin API's revocation"
    );
    assert!(acted("user_disabled", "api"), "the admin API's disable");
    assert!(
        acted("session_revoked", "console"),
        "the console's revocation"
    );
    for event in ["console_signed_in", "console_signed_out"] {
        assert!(
            lines.iter().any(|l| l["target"] == "audit"
                && l["event"] == event
                && l["admin_key"] == key_id
                && l["client_ip"] == "127.0.0.1"),
            "no audit event {event}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "console_sign_in_failed" && l["client_ip"] == "127.0.0.1"),
        "refused console keys are in the trail"
    );
    assert!(f.seen.tokens.len() >= 6);
    assert!(f.seen.bodies.len() >= 40);

    // The spans are real: every request's server span, with Redis spans under them. The
    // exporter flushed at the graceful stop.
    let spans = receiver.spans();
    let server_spans = spans.iter().filter(|s| s.kind == "server").count();
    let redis_spans = spans
        .iter()
        .filter(|s| s.attribute("db.system.name") == Some("redis"))
        .count();
    assert!(server_spans >= 40, "{server_spans} server spans");
    assert!(redis_spans >= 40, "{redis_spans} Redis spans");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    exposed.extend(spans.iter().map(|s| ("an exported span", format!("{s:?}"))));
    exposed.extend(receiver.bodies().iter().map(|b| {
        (
            "an OTLP export body",
            String::from_utf8_lossy(b).into_owned(),
        )
    }));

    exposed.push(("stdout", stdout));
    exposed.push(("stderr", stderr));
    exposed.extend(f.seen.bodies.iter().map(|b| ("a response body", b.clone())));
    let mut secrets: Vec<(String, &str)> = Vec::new();
    for t in &f.seen.tokens {
        secrets.push((t.clone(), "a session token"));
        secrets.push((t[33..].to_owned(), "a token secret"));
        if let Some(digest) = token_digest(t) {
            secrets.push((digest, "a token digest"));
        }
    }
    for p in passwords {
        secrets.push((p.to_owned(), "a password"));
    }
    for h in &hashes {
        secrets.push((h.clone(), "a password hash"));
        // The salt and the hash value on their own.
        for part in h.rsplit('$').take(2) {
            secrets.push((part.to_owned(), "part of a password hash"));
        }
    }
    secrets.push(("$argon2id$".to_owned(), "a PHC hash prefix"));
    // The TOTP secret in every spelling, and the recovery codes with their stored digests.
    // (Six-digit codes are not searched: any number in a log would match one.)
    secrets.push((FACTOR_KEY.to_owned(), "the factor key"));
    secrets.push((base32.clone(), "a TOTP secret"));
    secrets.push((base32.to_lowercase(), "a TOTP secret"));
    secrets.push((hex::encode(&secret_bytes), "a TOTP secret in hex"));
    {
        use base64::{Engine, engine::general_purpose};
        for engine in [
            general_purpose::STANDARD_NO_PAD,
            general_purpose::URL_SAFE_NO_PAD,
        ] {
            secrets.push((engine.encode(&secret_bytes), "a TOTP secret in base64"));
        }
    }
    for secret in &ceremony_secrets {
        secrets.push((
            secret.clone(),
            "a passkey ceremony's id, challenge or signature",
        ));
    }
    let carol_uuid = uuid::Uuid::parse_str(&carol_id).unwrap();
    for code in &codes {
        secrets.push((code.clone(), "a recovery code"));
        secrets.push((code.replace('-', ""), "a recovery code"));
        secrets.push((code.to_uppercase(), "a recovery code"));
        let digest = recovery::digest(carol_uuid, code).unwrap();
        secrets.push((hex::encode(digest), "a recovery code's digest"));
    }
    secrets.push((API_KEY.to_owned(), "the admin API key"));
    secrets.push((
        hex::encode(Sha256::digest(API_KEY)),
        "the admin API key's digest",
    ));
    for (where_, text) in &exposed {
        for (secret, what) in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} appears in {where_}: {}",
                text.lines()
                    .find(|l| l.contains(secret.as_str()))
                    .unwrap_or_default()
            );
        }
    }
}
