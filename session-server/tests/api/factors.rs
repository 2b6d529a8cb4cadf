//! Second factors over HTTP: TOTP enrolment and login, recovery codes, the assurance level where
//! sessions are reported, managing and resetting factors, and the races between them, on every
//! store. Codes are computed here from the enrolled secret, at the service's own clock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use session_server::{
    domain::factors::totp::{self, TotpSecret},
    state::{Hooks, Overrides},
};
use tokio::sync::Notify;

use crate::helpers::{
    Backend, Browser, TestApp, error_code, session_cookie, spawn_app, spawn_app_with,
    spawn_with_overrides, test_settings, use_backend,
};

/// The service's current TOTP time step.
fn step_now(app: &TestApp) -> u64 {
    app.state.clock.now_ms() / 1000 / totp::STEP_SECONDS
}

pub fn code(secret: &TotpSecret, step: u64) -> String {
    totp::code_at_step(secret, step)
}

async fn json(response: Response) -> Value {
    response.json().await.unwrap()
}

pub async fn send(
    app: &TestApp,
    browser: &Browser,
    method: Method,
    path: &str,
    body: Value,
) -> Response {
    let request = app
        .public(method, path)
        .header(header::COOKIE, &browser.cookie);
    let request = if body.is_null() {
        request
    } else {
        request.json(&body)
    };
    request.send().await.unwrap()
}

/// The secret of a TOTP enrolment's answer (its base32 `secret`).
fn totp_secret(enrollment: &Value) -> TotpSecret {
    let base32 = enrollment["secret"].as_str().unwrap();
    let bytes = totp_rs::Secret::Encoded(base32.to_owned())
        .to_bytes()
        .unwrap();
    TotpSecret::from_bytes(&bytes).unwrap()
}

/// Enrols TOTP in `browser`'s session with a code of the current step; returns the secret and
/// that step (used up: later proofs need a later one).
pub async fn enroll(app: &TestApp, browser: &Browser) -> (TotpSecret, u64) {
    let r = send(
        app,
        browser,
        Method::POST,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let secret = totp_secret(&json(r).await);
    let step = step_now(app);
    let r = send(
        app,
        browser,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": code(&secret, step)}),
    )
    .await;
    assert_eq!(r.status(), 200, "confirm");
    let me = json(r).await;
    assert_eq!(me["session"]["aal"], "aal2");
    (secret, step)
}

/// Logs in with the password: a pending login for a user with a factor.
pub async fn password_login(app: &TestApp, username: &str) -> (Browser, Value) {
    let r = app.login(username, &format!("{username}-password")).await;
    assert_eq!(r.status(), 200, "login");
    let browser = Browser {
        cookie: session_cookie(&r).unwrap(),
    };
    (browser, json(r).await)
}

pub async fn prove(app: &TestApp, browser: &Browser, method: &str, code: &str) -> Response {
    send(
        app,
        browser,
        Method::POST,
        "/v1/session/second-factor",
        json!({"method": method, "code": code}),
    )
    .await
}

async fn check_body(app: &TestApp, browser: &Browser) -> Value {
    let r = app
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&json!({"token": browser.token()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json(r).await
}

fn methods(session: &Value) -> Vec<&str> {
    session["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect()
}

async fn a_totp_login_stays_pending_until_its_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("alice").await;
    let me = json(app.whoami(&first).await).await;
    assert_eq!(me["session"]["aal"], "aal1");
    assert_eq!(methods(&me["session"]), ["password"]);

    // An enrolment changes nothing until a code confirms it; a bad code confirms nothing.
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(error_code(r).await, "enrollment_expired");
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    let enrollment = json(r).await;
    let uri = enrollment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Sessions:alice?"), "{uri}");
    assert!(enrollment["qr_svg"].as_str().unwrap().contains("<svg"));
    let factors = json(
        send(
            &app,
            &first,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["totp_enrollment_pending"], true);
    assert_eq!(factors["totp"], Value::Null);
    for (bad, status, expected) in [
        ("12ab56", 400, "invalid_request"),
        ("000000 1", 400, "invalid_request"),
    ] {
        let r = send(
            &app,
            &first,
            Method::POST,
            "/v1/session/factors/totp/confirm",
            json!({"code": bad}),
        )
        .await;
        assert_eq!(r.status(), status);
        assert_eq!(error_code(r).await, expected);
    }
    let (bystander, login) = password_login(&app, "alice").await;
    assert!(login["pending_second_factor"].is_null(), "not enrolled yet");

    let base32 = enrollment["secret"].as_str().unwrap();
    let secret = TotpSecret::from_bytes(
        &totp_rs::Secret::Encoded(base32.to_owned())
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let s = step_now(&app);
    let wrong = format!(
        "{:06}",
        (code(&secret, s).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": wrong}),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "wrong_code");
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": code(&secret, s)}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let me = json(r).await;
    assert_eq!(me["session"]["aal"], "aal2");
    assert_eq!(methods(&me["session"]), ["password", "totp"]);
    assert_eq!(
        json(app.whoami(&first).await).await["session"]["aal"],
        "aal2"
    );

    // A password alone is now a pending login: nothing but the second-factor step accepts it.
    let (pending, login) = password_login(&app, "alice").await;
    assert_eq!(login["pending_second_factor"]["methods"], json!(["totp"]));
    assert_eq!(login["session"]["aal"], "aal1");
    let r = app.whoami(&pending).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "aal2_required");
    let r = send(&app, &pending, Method::GET, "/v1/sessions", Value::Null).await;
    assert_eq!(error_code(r).await, "aal2_required");
    assert_eq!(check_body(&app, &pending).await["active"], false);
    // A session from before the enrolment is held to the same rule.
    assert_eq!(
        error_code(app.whoami(&bystander).await).await,
        "aal2_required"
    );

    let r = prove(&app, &pending, "totp", &code(&secret, s + 1)).await;
    assert_eq!(r.status(), 200);
    let me = json(r).await;
    assert_eq!(me["session"]["aal"], "aal2");
    assert_eq!(methods(&me["session"]), ["password", "totp"]);
    let checked = check_body(&app, &pending).await;
    assert_eq!(checked["active"], true);
    assert_eq!(checked["session"]["aal"], "aal2");
    assert_eq!(app.whoami(&pending).await.status(), 200);

    // The same code again, in another login: its time step is used up.
    let (again, _) = password_login(&app, "alice").await;
    let r = prove(&app, &again, "totp", &code(&secret, s + 1)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "code_reused");
    assert_eq!(error_code(app.whoami(&again).await).await, "aal2_required");

    let feed = app.feed().await;
    let kinds: Vec<&str> = feed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"factors_changed"), "{kinds:?}");
    let handle = me["session"]["handle"].as_str().unwrap();
    assert!(
        feed.iter()
            .any(|e| e["type"] == "session_updated" && e["handles"][0] == handle),
        "the step-up is in the feed"
    );
    assert!(
        app.metric("session_second_factors_total{result=\"reused\"}")
            .await
            >= 1.0
    );
}
crate::each_backend!(a_totp_login_stays_pending_until_its_code);

async fn recovery_codes_are_single_use_and_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("bob").await;
    let (_secret, _) = enroll(&app, &first).await;
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/recovery-codes",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let codes: Vec<String> = json(r).await["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let factors = json(
        send(
            &app,
            &first,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["recovery_codes_left"], 10);
    assert_eq!(factors["methods"], json!(["totp", "recovery_code"]));

    let (pending, login) = password_login(&app, "bob").await;
    assert_eq!(
        login["pending_second_factor"]["methods"],
        json!(["totp", "recovery_code"])
    );
    // Case, spaces and dashes do not matter.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let r = prove(&app, &pending, "recovery_code", &typed).await;
    assert_eq!(r.status(), 200);
    let me = json(r).await;
    assert_eq!(methods(&me["session"]), ["password", "recovery_code"]);
    let (again, _) = password_login(&app, "bob").await;
    let r = prove(&app, &again, "recovery_code", &codes[0]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "wrong_code");
    let r = prove(&app, &again, "recovery_code", "not-a-code").await;
    assert_eq!(r.status(), 400);
    let factors = json(
        send(
            &app,
            &first,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["recovery_codes_left"], 9);
    let handle = me["session"]["handle"].as_str().unwrap();
    assert!(
        app.feed()
            .await
            .iter()
            .any(|e| e["type"] == "recovery_code_used" && e["handles"][0] == handle),
        "the use is in the feed"
    );

    // Regenerating voids the old set and ends the user's other sessions.
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/recovery-codes",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(json(r).await["revoked"], 2);
    assert_eq!(app.whoami(&pending).await.status(), 401);
    let (third, _) = password_login(&app, "bob").await;
    assert_eq!(
        error_code(prove(&app, &third, "recovery_code", &codes[1]).await).await,
        "wrong_code"
    );
}
crate::each_backend!(recovery_codes_are_single_use_and_reported);

async fn managing_factors_needs_a_fresh_second_factor_and_ends_other_sessions(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.factor_fresh_max_age = Some("1".parse().unwrap());
    })
    .await;
    let old = app.signed_in("carol").await;
    let (secret, s) = enroll(&app, &old).await;
    let (pending, _) = password_login(&app, "carol").await;
    // A pending login cannot manage factors; nor can a session whose proof is no longer fresh.
    let r = send(
        &app,
        &pending,
        Method::DELETE,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(error_code(r).await, "aal2_required");
    // Wait, on the service's clock, until the enrolment's proof is older than allowed.
    let me = json(app.whoami(&old).await).await;
    let proved_at = humantime::parse_rfc3339(me["session"]["methods"][1]["at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.clock.now_ms() <= proved_at + 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the service's clock stands still"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = send(
        &app,
        &old,
        Method::DELETE,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "second_factor_required");
    let r = send(
        &app,
        &old,
        Method::POST,
        "/v1/session/factors/recovery-codes",
        Value::Null,
    )
    .await;
    assert_eq!(error_code(r).await, "second_factor_required");
    // A fresh proof (a step-up of the same session) allows it.
    let r = prove(&app, &old, "totp", &code(&secret, s + 1)).await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        &old,
        Method::DELETE,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["revoked"], 1);
    assert_eq!(app.whoami(&pending).await.status(), 401);
    let me = json(app.whoami(&old).await).await;
    assert_eq!(
        me["session"]["aal"], "aal2",
        "the session keeps what it proved"
    );
    let (fresh, login) = password_login(&app, "carol").await;
    assert!(login["pending_second_factor"].is_null());
    assert_eq!(app.whoami(&fresh).await.status(), 200);
    let factors = json(
        send(
            &app,
            &fresh,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["totp"], Value::Null);
    assert_eq!(factors["methods"], json!([]));
    let r = prove(&app, &fresh, "totp", "123456").await;
    assert_eq!(error_code(r).await, "factor_not_enrolled");
}
crate::each_backend!(managing_factors_needs_a_fresh_second_factor_and_ends_other_sessions);

async fn an_admin_resets_a_users_factors(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("dave").await;
    enroll(&app, &first).await;
    let id = json(app.whoami(&first).await).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (pending, _) = password_login(&app, "dave").await;
    let r = app
        .admin(Method::DELETE, &format!("/admin/v1/users/{id}/factors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["revoked"], 2);
    for browser in [&first, &pending] {
        assert_eq!(app.whoami(browser).await.status(), 401);
    }
    let event = app
        .feed()
        .await
        .into_iter()
        .rfind(|e| e["type"] == "factors_changed")
        .unwrap();
    assert_eq!(event["all"], true);
    assert_eq!(event["by"]["admin_key"].as_str().unwrap().len(), 12);
    let (after, login) = password_login(&app, "dave").await;
    assert!(login["pending_second_factor"].is_null());
    assert_eq!(app.whoami(&after).await.status(), 200);
    let r = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/users/{}/factors", uuid::Uuid::now_v7()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
crate::each_backend!(an_admin_resets_a_users_factors);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aal1_required_a_password_session_is_accepted_and_steps_up() {
    let app = spawn_app_with(Backend::Redis, |s| s.required_aal = Some("aal1".into())).await;
    let first = app.signed_in("erin").await;
    let (secret, s) = enroll(&app, &first).await;
    let (browser, login) = password_login(&app, "erin").await;
    assert!(login["pending_second_factor"].is_null());
    let me = json(app.whoami(&browser).await).await;
    assert_eq!(me["session"]["aal"], "aal1");
    let checked = check_body(&app, &browser).await;
    assert_eq!(
        (checked["active"].clone(), checked["session"]["aal"].clone()),
        (json!(true), json!("aal1"))
    );
    let forward_aal = |browser: Browser| {
        let request = app
            .admin(Method::GET, "/admin/v1/forward-auth")
            .header(header::COOKIE, browser.cookie);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-session-aal"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(forward_aal(browser.clone()).await, "aal1");
    let r = prove(&app, &browser, "totp", &code(&secret, s + 1)).await;
    let stepped = json(r).await;
    assert_eq!(
        stepped["session"]["handle"], me["session"]["handle"],
        "the same session"
    );
    assert_eq!(forward_aal(browser.clone()).await, "aal2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_never_confirmed_expires_and_binds_to_its_session() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.totp_enroll_timeout = Some("0.3".parse().unwrap());
    })
    .await;
    let first = app.signed_in("frank").await;
    let other = {
        let (b, _) = password_login(&app, "frank").await;
        b
    };
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    let secret = totp_secret(&json(r).await);
    // Another session of the same user cannot confirm it.
    let r = send(
        &app,
        &other,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": code(&secret, step_now(&app))}),
    )
    .await;
    assert_eq!(error_code(r).await, "enrollment_expired");
    // Once its time is up, the right code confirms nothing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let factors = json(
            send(
                &app,
                &first,
                Method::GET,
                "/v1/session/factors",
                Value::Null,
            )
            .await,
        )
        .await;
        if factors["totp_enrollment_pending"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the enrolment never expired"
        );
    }
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": code(&secret, step_now(&app))}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "enrollment_expired");
    let (_, login) = password_login(&app, "frank").await;
    assert!(login["pending_second_factor"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_needs_keys_with_redis() {
    let mut settings = test_settings();
    let redis = use_backend(&mut settings, Backend::Redis);
    settings.factor_keys = None;
    let app = spawn_with_overrides(settings, redis, Overrides::default()).await;
    let browser = app.signed_in("gina").await;
    let r = send(
        &app,
        &browser,
        Method::POST,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "totp_unavailable");
}

// ---- races ----

async fn two_uses_of_one_code_have_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("hal").await;
    let (secret, s) = enroll(&app, &first).await;
    let r = send(
        &app,
        &first,
        Method::POST,
        "/v1/session/factors/recovery-codes",
        Value::Null,
    )
    .await;
    let recovery = json(r).await["codes"][0].as_str().unwrap().to_owned();
    for (method, code) in [("totp", code(&secret, s + 1)), ("recovery_code", recovery)] {
        let (a, _) = password_login(&app, "hal").await;
        let (b, _) = password_login(&app, "hal").await;
        let (ra, rb) = tokio::join!(
            prove(&app, &a, method, &code),
            prove(&app, &b, method, &code)
        );
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 403], "{method}");
        let accepted = [app.whoami(&a).await.status(), app.whoami(&b).await.status()];
        assert_eq!(
            accepted.iter().filter(|s| **s == 200).count(),
            1,
            "{method}"
        );
    }
}
crate::each_backend!(two_uses_of_one_code_have_one_winner);

/// Holds the next second-factor proof between its code's check and its record.
#[derive(Clone, Default)]
struct Gate {
    armed: Arc<AtomicBool>,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    fn hooks(&self) -> Hooks {
        let gate = self.clone();
        Hooks {
            after_code_verified: Some(Arc::new(move || {
                let gate = gate.clone();
                Box::pin(async move {
                    if gate.armed.swap(false, Ordering::SeqCst) {
                        gate.reached.notify_one();
                        gate.release.notified().await;
                    }
                })
            })),
            ..Hooks::default()
        }
    }

    /// Starts a proof and returns once its code passed and it waits at the gate.
    async fn hold(
        &self,
        app: &TestApp,
        browser: &Browser,
        method: &str,
        code: &str,
    ) -> tokio::task::JoinHandle<Response> {
        self.armed.store(true, Ordering::SeqCst);
        let request = app
            .public(Method::POST, "/v1/session/second-factor")
            .header(header::COOKIE, &browser.cookie)
            .json(&json!({"method": method, "code": code}));
        let proof = tokio::spawn(async move { request.send().await.unwrap() });
        tokio::time::timeout(Duration::from_secs(10), self.reached.notified())
            .await
            .expect("the proof reached the gate");
        proof
    }
}

async fn spawn_gated(backend: Backend) -> (TestApp, Gate) {
    let gate = Gate::default();
    let mut settings = test_settings();
    let redis = use_backend(&mut settings, backend);
    let overrides = Overrides {
        hooks: gate.hooks(),
        ..Default::default()
    };
    (spawn_with_overrides(settings, redis, overrides).await, gate)
}

async fn a_factor_removed_while_a_login_waits_for_it_refuses_that_login(backend: Backend) {
    let (app, gate) = spawn_gated(backend).await;
    let owner = app.signed_in("ivy").await;
    let (secret, s) = enroll(&app, &owner).await;
    let (pending, _) = password_login(&app, "ivy").await;
    let held = gate
        .hold(&app, &pending, "totp", &code(&secret, s + 1))
        .await;
    // Meanwhile the owner removes the factor (a fresh aal2 session: just enrolled).
    let r = send(
        &app,
        &owner,
        Method::DELETE,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 200);
    gate.release.notify_one();
    let r = held.await.unwrap();
    assert_eq!(r.status(), 401, "the login that waited is refused");
    assert_eq!(app.whoami(&pending).await.status(), 401);
}
crate::each_backend!(a_factor_removed_while_a_login_waits_for_it_refuses_that_login);

async fn a_step_up_racing_a_revocation_loses_to_it(backend: Backend) {
    let (app, gate) = spawn_gated(backend).await;
    let owner = app.signed_in("jack").await;
    let (secret, s) = enroll(&app, &owner).await;
    let (pending, login) = password_login(&app, "jack").await;
    let handle = login["session"]["handle"].as_str().unwrap().to_owned();
    let held = gate
        .hold(&app, &pending, "totp", &code(&secret, s + 1))
        .await;
    let r = send(
        &app,
        &owner,
        Method::DELETE,
        &format!("/v1/sessions/{handle}"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 204);
    gate.release.notify_one();
    assert_eq!(held.await.unwrap().status(), 401);
    // Not revived: the session is gone for every reader.
    assert_eq!(app.whoami(&pending).await.status(), 401);
    assert_eq!(check_body(&app, &pending).await["active"], false);
    let user_id = login["user"]["id"].as_str().unwrap();
    assert!(
        app.user_sessions(user_id)
            .await
            .iter()
            .all(|s| s["handle"] != handle.as_str())
    );
}
crate::each_backend!(a_step_up_racing_a_revocation_loses_to_it);

/// Rotating the factor key as the guide says: the new key first, the old one after it; each
/// secret is sealed again under the new key when next used; once the old key is gone, a secret
/// still sealed with it cannot be used (and says so), but one sealed again still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_factor_key_rotates_secret_by_secret() {
    const OLD: &str = "1:b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0=";
    const NEW: &str = "2:bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleS0=";
    let redis = crate::helpers::RedisServer::start();
    let with_keys = |keys: String| {
        let redis = redis.clone();
        async move { crate::helpers::spawn_app_on(Some(redis), |s| s.factor_keys = Some(keys)).await }
    };
    let first_byte_of_secret = |user_key: &str| {
        redis.integer(&[
            "EVAL",
            "return string.byte(redis.call('HGET', KEYS[1], 't'), 1)",
            "1",
            user_key,
        ])
    };
    let old = with_keys(OLD.into()).await;
    let browser = old.signed_in("kim").await;
    let (secret, s) = enroll(&old, &browser).await;
    let user_key = redis
        .keys()
        .into_iter()
        .find(|k| k.ends_with("}:user"))
        .unwrap();
    assert_eq!(first_byte_of_secret(&user_key), 1);
    // The new key first: the next code reseals the secret under it.
    let rotating = with_keys(format!("{NEW},{OLD}")).await;
    let (pending, _) = password_login(&rotating, "kim").await;
    assert_eq!(
        prove(&rotating, &pending, "totp", &code(&secret, s + 1))
            .await
            .status(),
        200
    );
    assert_eq!(first_byte_of_secret(&user_key), 2);
    // The old key removed: the secret opens under the new one (a wrong code is checked, not
    // refused as unusable)...
    let rotated = with_keys(NEW.into()).await;
    let (pending, _) = password_login(&rotated, "kim").await;
    let wrong = format!(
        "{:06}",
        (code(&secret, s + 1).parse::<u32>().unwrap() + 7) % 1_000_000
    );
    assert_eq!(
        error_code(prove(&rotated, &pending, "totp", &wrong).await).await,
        "wrong_code"
    );
    // ...and without it, the factor cannot be used, and says so.
    let lost = with_keys("3:bG9zdC1rZXktbG9zdC1rZXktbG9zdC1rZXktbG9zdC0=".into()).await;
    let (pending, _) = password_login(&lost, "kim").await;
    let r = prove(&lost, &pending, "totp", &code(&secret, s + 1)).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "factor_not_enrolled");
}

/// A reply lost after Redis applied the write (an unconfirmed `WAIT`): the proof and the removal
/// are answered 503, never acknowledged; what Redis applied holds (the code is used up, the
/// session is `aal2`; the factor is gone and the other sessions ended), and the feed says so,
/// so a retry converges and no cache keeps what ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_never_acknowledged_and_converges() {
    let (healthy, unconfirmed) = crate::helpers::healthy_and_unconfirmed().await;
    let owner = healthy.signed_in("lee").await;
    let (secret, s) = enroll(&healthy, &owner).await;
    let (pending, login) = password_login(&healthy, "lee").await;
    let handle = login["session"]["handle"].as_str().unwrap().to_owned();
    let r = prove(&unconfirmed, &pending, "totp", &code(&secret, s + 1)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_code(r).await, "store_unconfirmed");
    // Applied: the session proved its factor, and the code's step is used up.
    let me = json(healthy.whoami(&pending).await).await;
    assert_eq!(me["session"]["aal"], "aal2");
    let (again, _) = password_login(&healthy, "lee").await;
    assert_eq!(
        error_code(prove(&healthy, &again, "totp", &code(&secret, s + 1)).await).await,
        "code_reused"
    );
    assert!(
        healthy
            .feed()
            .await
            .iter()
            .any(|e| e["type"] == "session_updated" && e["handles"][0] == handle.as_str()),
        "the step-up is in the feed"
    );
    // A removal through the unconfirmed replica: 503, yet applied, with its event.
    let r = send(
        &unconfirmed,
        &owner,
        Method::DELETE,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        healthy.whoami(&again).await.status(),
        401,
        "the other sessions ended"
    );
    let (after, login) = password_login(&healthy, "lee").await;
    assert!(
        login["pending_second_factor"].is_null(),
        "the factor is gone"
    );
    assert_eq!(healthy.whoami(&after).await.status(), 200);
    assert!(
        healthy
            .feed()
            .await
            .iter()
            .any(|e| e["type"] == "factors_changed" && e["all"] == true),
        "the removal is in the feed"
    );
}

/// Replicas whose wall clocks are minutes apart agree on which TOTP codes are current: they run
/// on Redis's clock. Codes computed from the true time are accepted by a replica 90 s fast and by
/// one 90 s slow (three steps either way, beyond the one step of skew a code is allowed), and a
/// step used on one is used on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_skewed_clocks_agree_on_codes() {
    let redis = crate::helpers::RedisServer::start();
    let skewed = |ms: i64| {
        let mut settings = test_settings();
        settings.redis_url = Some(redis.url());
        let overrides = Overrides {
            clock: Some(session_server::domain::clock::Clock::with_wall_skew(ms)),
            ..Default::default()
        };
        spawn_with_overrides(settings, Some(redis.clone()), overrides)
    };
    let (fast, slow) = (skewed(90_000).await, skewed(-90_000).await);
    let true_step = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / totp::STEP_SECONDS
    };
    let browser = fast.signed_in("max").await;
    let r = send(
        &fast,
        &browser,
        Method::POST,
        "/v1/session/factors/totp",
        Value::Null,
    )
    .await;
    let secret = totp_secret(&json(r).await);
    let s = true_step();
    let r = send(
        &fast,
        &browser,
        Method::POST,
        "/v1/session/factors/totp/confirm",
        json!({"code": code(&secret, s)}),
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "the fast replica takes the true time's code"
    );
    let (pending, _) = password_login(&slow, "max").await;
    assert_eq!(
        prove(&slow, &pending, "totp", &code(&secret, s + 1))
            .await
            .status(),
        200,
        "the slow replica takes the next one"
    );
    let (again, _) = password_login(&fast, "max").await;
    assert_eq!(
        error_code(prove(&fast, &again, "totp", &code(&secret, s + 1)).await).await,
        "code_reused"
    );
}

/// A proof held between its check and its record, racing each change of state of the same user
/// that ends its session or its credentials: the change wins, the proof is refused, and the
/// session is not revived.
async fn a_proof_racing_a_change_of_the_user_loses_to_it(backend: Backend) {
    for change in ["logout", "revoke_all", "password_change", "disable"] {
        let (app, gate) = spawn_gated(backend).await;
        let owner = app.signed_in("nina").await;
        let (secret, s) = enroll(&app, &owner).await;
        let (pending, login) = password_login(&app, "nina").await;
        let id = login["user"]["id"].as_str().unwrap().to_owned();
        let held = gate
            .hold(&app, &pending, "totp", &code(&secret, s + 1))
            .await;
        let r = match change {
            "logout" => app.logout(&pending).await,
            "revoke_all" => {
                send(
                    &app,
                    &owner,
                    Method::DELETE,
                    "/v1/sessions?include_current=true",
                    Value::Null,
                )
                .await
            }
            "password_change" => send(
                &app,
                &owner,
                Method::POST,
                "/v1/password",
                json!({"current_password": "nina-password", "new_password": "a-new-passphrase"}),
            )
            .await,
            _ => app
                .admin(Method::POST, &format!("/admin/v1/users/{id}/disable"))
                .send()
                .await
                .unwrap(),
        };
        assert!(r.status().is_success(), "{change}: {}", r.status());
        gate.release.notify_one();
        assert_eq!(held.await.unwrap().status(), 401, "{change}");
        assert_eq!(
            app.whoami(&pending).await.status(),
            401,
            "{change}: not revived"
        );
        assert_eq!(
            check_body(&app, &pending).await["active"],
            false,
            "{change}"
        );
    }
}
crate::each_backend!(a_proof_racing_a_change_of_the_user_loses_to_it);
