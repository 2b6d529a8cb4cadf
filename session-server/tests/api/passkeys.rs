//! Passkeys over HTTP, answered by a software authenticator (P-256 keys, "none" attestation,
//! user verification), as a browser relays a platform authenticator's answers: registration,
//! a passkey as the second factor of a login, a passwordless sign-in, and every way an answer
//! can be wrong (origin, relying party, counter, ceremony), on every store.

use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use test_support::passkey::{self, b64};

use crate::{
    factors::{password_login, send},
    helpers::{
        Backend, Browser, ORIGIN, TestApp, error_code, session_cookie, spawn_app, spawn_app_with,
    },
};

const RP_ID: &str = "app.test";

/// A platform authenticator of this suite's relying party, with a new credential.
pub fn authenticator() -> passkey::Authenticator {
    passkey::Authenticator::new(RP_ID, ORIGIN)
}

async fn json_of(r: Response) -> Value {
    r.json().await.unwrap()
}

/// Registers `authenticator`'s passkey in `browser`'s session.
pub async fn register(
    app: &TestApp,
    browser: &Browser,
    authenticator: &mut passkey::Authenticator,
    name: &str,
) -> Response {
    let r = send(
        app,
        browser,
        Method::POST,
        "/v1/session/factors/passkeys",
        json!({"name": name}),
    )
    .await;
    assert_eq!(r.status(), 200, "begin registration");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let started = json_of(r).await;
    let credential = authenticator.register(&started["options"]);
    send(
        app,
        browser,
        Method::POST,
        "/v1/session/factors/passkeys/finish",
        json!({"ceremony": started["ceremony"], "credential": credential}),
    )
    .await
}

/// Starts a second-factor proof, answers it and returns the answer.
async fn prove_passkey(
    app: &TestApp,
    browser: &Browser,
    authenticator: &mut passkey::Authenticator,
) -> Response {
    let started = json_of(
        send(
            app,
            browser,
            Method::POST,
            "/v1/session/second-factor/passkey",
            Value::Null,
        )
        .await,
    )
    .await;
    let credential = authenticator.assert(&started["options"]);
    send(
        app,
        browser,
        Method::POST,
        "/v1/session/second-factor",
        json!({"method": "passkey", "ceremony": started["ceremony"], "credential": credential}),
    )
    .await
}

/// A passwordless sign-in's first request: the ceremony and its options.
async fn begin_sign_in(app: &TestApp) -> Value {
    let r = app
        .public(Method::POST, "/v1/login/passkey")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json_of(r).await
}

async fn finish_sign_in(app: &TestApp, ceremony: &Value, credential: Value) -> Response {
    app.public(Method::POST, "/v1/login/passkey/finish")
        .json(&json!({"ceremony": ceremony, "credential": credential}))
        .send()
        .await
        .unwrap()
}

fn methods(session: &Value) -> Vec<&str> {
    session["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect()
}

async fn a_passkey_is_a_second_factor_and_a_way_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("alice").await;
    let mut authenticator = self::authenticator();
    // The options ask for a discoverable credential of this relying party, verified by its user.
    let started = json_of(
        send(
            &app,
            &first,
            Method::POST,
            "/v1/session/factors/passkeys",
            Value::Null,
        )
        .await,
    )
    .await;
    let public_key = &started["options"]["publicKey"];
    assert_eq!(public_key["rp"]["id"], RP_ID);
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    let r = register(&app, &first, &mut authenticator, "Laptop").await;
    assert_eq!(r.status(), 201);
    let registered = json_of(r).await;
    assert_eq!(registered["name"], "Laptop");
    assert_eq!(registered["id"], b64(&authenticator.credential_id));
    let me = json_of(app.whoami(&first).await).await;
    assert_eq!(me["session"]["aal"], "aal2");
    assert_eq!(methods(&me["session"]), ["password", "passkey"]);

    // A password now leaves a pending login, which the passkey completes.
    let (pending, login) = password_login(&app, "alice").await;
    assert_eq!(
        login["pending_second_factor"]["methods"],
        json!(["passkey"])
    );
    assert_eq!(
        error_code(app.whoami(&pending).await).await,
        "aal2_required"
    );
    let r = prove_passkey(&app, &pending, &mut authenticator).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        methods(&json_of(r).await["session"]),
        ["password", "passkey"]
    );
    assert_eq!(app.whoami(&pending).await.status(), 200);

    // No password at all: the passkey names its user.
    let started = begin_sign_in(&app).await;
    assert_eq!(started["options"]["mediation"], "conditional");
    let credential = authenticator.assert(&started["options"]);
    let r = finish_sign_in(&app, &started["ceremony"], credential.clone()).await;
    assert_eq!(r.status(), 200);
    let browser = Browser {
        cookie: session_cookie(&r).unwrap(),
    };
    let me = json_of(r).await;
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["session"]["aal"], "aal2");
    assert_eq!(methods(&me["session"]), ["passkey"]);
    assert!(app.check(&browser).await);
    // The same answer again: its ceremony is used up.
    let r = finish_sign_in(&app, &started["ceremony"], credential).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "ceremony_expired");

    // Renamed, and listed with its last use.
    let id = registered["id"].as_str().unwrap();
    let r = send(
        &app,
        &browser,
        Method::PATCH,
        &format!("/v1/session/factors/passkeys/{id}"),
        json!({"name": "Work laptop"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let factors = json_of(
        send(
            &app,
            &browser,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["passkeys"][0]["name"], "Work laptop");
    assert!(factors["passkeys"][0]["last_used_at"].is_string());
    assert_eq!(factors["methods"], json!(["passkey"]));
}
crate::each_backend!(a_passkey_is_a_second_factor_and_a_way_to_sign_in);

async fn wrong_passkey_answers_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.signed_in("bob").await;
    let mut authenticator = self::authenticator();
    assert_eq!(
        register(&app, &first, &mut authenticator, "Phone")
            .await
            .status(),
        201
    );
    // One good use first, so that the counter is above zero.
    let (pending, _) = password_login(&app, "bob").await;
    assert_eq!(
        prove_passkey(&app, &pending, &mut authenticator)
            .await
            .status(),
        200
    );
    let (pending, _) = password_login(&app, "bob").await;

    // A phishing site's origin, another relying party, an old counter (a cloned authenticator),
    // a bad signature: each refused, and the login stays pending.
    let next = authenticator.counter + 1;
    type Answer = Box<dyn Fn(&Value) -> Value>;
    let phish = authenticator.elsewhere(RP_ID, "http://app.test.evil");
    let other_rp = authenticator.elsewhere("evil.test", ORIGIN);
    let clone = authenticator.elsewhere(RP_ID, ORIGIN);
    let forger = authenticator.elsewhere(RP_ID, ORIGIN);
    let answers: [(&str, Answer); 4] = [
        (
            "a wrong origin",
            Box::new(move |o| phish.assert_at(o, next)),
        ),
        (
            "a wrong relying party",
            Box::new(move |o| other_rp.assert_at(o, next)),
        ),
        (
            "a counter that went backwards",
            Box::new(move |o| clone.assert_at(o, next - 1)),
        ),
        (
            "a bad signature",
            Box::new(move |o| {
                let mut answer = forger.assert_at(o, next);
                answer["response"]["signature"] =
                    json!(b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
                answer
            }),
        ),
    ];
    for (what, answer) in &answers {
        let started = json_of(
            send(
                &app,
                &pending,
                Method::POST,
                "/v1/session/second-factor/passkey",
                Value::Null,
            )
            .await,
        )
        .await;
        let r = send(
            &app,
            &pending,
            Method::POST,
            "/v1/session/second-factor",
            json!({"method": "passkey", "ceremony": started["ceremony"], "credential": answer(&started["options"])}),
        )
        .await;
        assert_eq!(r.status(), 403, "{what}");
        assert_eq!(error_code(r).await, "passkey_refused", "{what}");
        assert_eq!(
            error_code(app.whoami(&pending).await).await,
            "aal2_required",
            "{what}"
        );
    }
    // A ceremony never started, another session's, and a credential that is none.
    let theirs = json_of(
        send(
            &app,
            &first,
            Method::POST,
            "/v1/session/second-factor/passkey",
            Value::Null,
        )
        .await,
    )
    .await;
    let answer = authenticator.assert_at(&theirs["options"], next);
    for (ceremony, credential, status, code) in [
        (
            json!("AAAAAAAAAAAAAAAAAAAAAA"),
            answer.clone(),
            409,
            "ceremony_expired",
        ),
        (theirs["ceremony"].clone(), answer, 409, "ceremony_expired"),
        // An object that is no passkey's answer is refused like a wrong one; a credential that
        // is no object at all is a malformed request.
        (
            json!("AAAAAAAAAAAAAAAAAAAAAA"),
            json!({"id": 1}),
            403,
            "passkey_refused",
        ),
        (json!("x"), json!("not an object"), 400, "malformed_request"),
    ] {
        let r = send(
            &app,
            &pending,
            Method::POST,
            "/v1/session/second-factor",
            json!({"method": "passkey", "ceremony": ceremony, "credential": credential}),
        )
        .await;
        assert_eq!(r.status(), status, "{code}");
        assert_eq!(error_code(r).await, code);
    }
    assert_eq!(
        error_code(app.whoami(&pending).await).await,
        "aal2_required"
    );
    // A sign-in with a passkey nobody registered, and with a phishing site's answer.
    let started = begin_sign_in(&app).await;
    let mut stranger = self::authenticator();
    stranger.user_handle = Some(uuid::Uuid::now_v7().as_bytes().to_vec());
    let r = finish_sign_in(
        &app,
        &started["ceremony"],
        stranger.assert(&started["options"]),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(session_cookie(&r).is_none());
    assert_eq!(error_code(r).await, "invalid_credentials");
    let started = begin_sign_in(&app).await;
    let phish = authenticator.elsewhere(RP_ID, "http://app.test.evil");
    let r = finish_sign_in(
        &app,
        &started["ceremony"],
        phish.assert_at(&started["options"], next),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(session_cookie(&r).is_none());
}
crate::each_backend!(wrong_passkey_answers_are_refused_and_change_nothing);

async fn a_passkey_belongs_to_one_account_and_goes_with_its_removal(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signed_in("carol").await;
    let bob = app.signed_in("dave").await;
    let mut authenticator = self::authenticator();
    assert_eq!(
        register(&app, &alice, &mut authenticator, "Key")
            .await
            .status(),
        201
    );
    // The same credential id for another account: refused.
    let r = register(&app, &bob, &mut authenticator, "Key").await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "passkey_in_use");
    // Removing it (a fresh proof: the registration) ends carol's other sessions and frees the
    // credential id.
    let (other, _) = password_login(&app, "carol").await;
    let id = b64(&authenticator.credential_id);
    let r = send(
        &app,
        &alice,
        Method::DELETE,
        &format!("/v1/session/factors/passkeys/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["revoked"], 1);
    assert_eq!(app.whoami(&other).await.status(), 401);
    let (after, login) = password_login(&app, "carol").await;
    assert!(login["pending_second_factor"].is_null());
    assert_eq!(app.whoami(&after).await.status(), 200);
    let r = register(&app, &bob, &mut authenticator, "Key").await;
    assert_eq!(
        r.status(),
        201,
        "the freed credential id registers for another account"
    );
    // An administrator's reset removes it too, and frees it again.
    let bob_id = json_of(app.whoami(&bob).await).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .admin(Method::DELETE, &format!("/admin/v1/users/{bob_id}/factors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.whoami(&bob).await.status(), 401);
    let started = begin_sign_in(&app).await;
    let r = finish_sign_in(
        &app,
        &started["ceremony"],
        authenticator.assert(&started["options"]),
    )
    .await;
    assert_eq!(r.status(), 401, "a reset passkey signs in no more");
    assert_eq!(
        register(&app, &after, &mut authenticator, "Key")
            .await
            .status(),
        201
    );
}
crate::each_backend!(a_passkey_belongs_to_one_account_and_goes_with_its_removal);

async fn two_sign_ins_with_one_assertion_have_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.signed_in("erin").await;
    let mut authenticator = self::authenticator();
    assert_eq!(
        register(&app, &browser, &mut authenticator, "Key")
            .await
            .status(),
        201
    );
    // Two ceremonies answered with the same counter value (a cloned authenticator racing the
    // original): both verify against the stored counter, and exactly one counts.
    let (a, b) = tokio::join!(begin_sign_in(&app), begin_sign_in(&app));
    let next = authenticator.counter + 1;
    let (ra, rb) = tokio::join!(
        finish_sign_in(
            &app,
            &a["ceremony"],
            authenticator.assert_at(&a["options"], next)
        ),
        finish_sign_in(
            &app,
            &b["ceremony"],
            authenticator.assert_at(&b["options"], next)
        ),
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 403]);
}
crate::each_backend!(two_sign_ins_with_one_assertion_have_one_winner);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_expires() {
    let app = spawn_app_with(Backend::Redis, |s| {
        s.passkey_timeout = Some("0.3".parse().unwrap());
    })
    .await;
    let browser = app.signed_in("frank").await;
    let mut authenticator = self::authenticator();
    let started = json_of(
        send(
            &app,
            &browser,
            Method::POST,
            "/v1/session/factors/passkeys",
            Value::Null,
        )
        .await,
    )
    .await;
    // Wait, on the service's clock, past the ceremony's lifetime.
    let deadline = app.state.clock.now_ms() + 400;
    while app.state.clock.now_ms() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = send(
        &app,
        &browser,
        Method::POST,
        "/v1/session/factors/passkeys/finish",
        json!({"ceremony": started["ceremony"], "credential": authenticator.register(&started["options"])}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "ceremony_expired");
    let factors = json_of(
        send(
            &app,
            &browser,
            Method::GET,
            "/v1/session/factors",
            Value::Null,
        )
        .await,
    )
    .await;
    assert_eq!(factors["passkeys"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allowed_origin_there_are_no_passkeys() {
    let app = spawn_app_with(Backend::Memory, |s| s.allowed_origins = None).await;
    let r = app
        .client
        .post(format!("{}/v1/login/passkey", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "passkeys_unavailable");
}
