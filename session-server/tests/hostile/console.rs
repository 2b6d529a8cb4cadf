//! The admin console under attack: forged forms (no CSRF token, a wrong one, another session's,
//! another origin), requests without a live console session (none, malformed, duplicated,
//! never issued, expired), and markup planted where the console shows attacker-controlled text
//! (a user agent, a search).

use std::time::{Duration, Instant};

use reqwest::{Method, header};

use crate::helpers::{
    API_KEY, Backend, CONSOLE_COOKIE, Console, TestApp, csrf_of, spawn_app, spawn_app_with,
};

async fn alice(app: &TestApp) -> (crate::helpers::Browser, String) {
    let browser = app.signed_in("alice").await;
    let me: serde_json::Value = app.whoami(&browser).await.json().await.unwrap();
    (browser, me["user"]["id"].as_str().unwrap().to_owned())
}

crate::memory_and_redis!(
    console_forms_without_the_sessions_token_or_from_another_origin_change_nothing
);
async fn console_forms_without_the_sessions_token_or_from_another_origin_change_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (browser, id) = alice(&app).await;
    let console = app.console().await;
    let other = app.console().await;
    let page = format!("/console/users/{id}");
    let (_, html) = console.page(&page).await;
    let token = csrf_of(&html);
    let (_, other_html) = other.page(&page).await;
    let others_token = csrf_of(&other_html);
    assert_ne!(
        token, others_token,
        "each console session has its own token"
    );
    let actions = [
        format!("{page}/disable"),
        format!("{page}/sessions/revoke-all"),
        "/console/sign-out".to_owned(),
    ];
    let post = |path: &str| {
        app.client
            .post(format!("{}{path}", app.admin))
            .header(header::COOKIE, &console.cookie)
    };
    for action in &actions {
        // No token at all: the form cannot be read.
        let r = post(action)
            .header(header::ORIGIN, &app.admin)
            .form(&[("other", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{action}: no token");
        for (what, csrf) in [
            ("an empty token", ""),
            (
                "a wrong token",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            ("another session's token", others_token.as_str()),
        ] {
            let r = post(action)
                .header(header::ORIGIN, &app.admin)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{action}: {what}");
            let body = r.text().await.unwrap();
            assert!(body.contains("came from another site"), "{body}");
        }
        // The right token, but sent from another site.
        for origin in ["http://evil.test", "null", &app.public] {
            let r = post(action)
                .header(header::ORIGIN, origin)
                .form(&[("csrf", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{action}: from {origin}");
        }
        // Fetch metadata decides when there is no Origin, or only an opaque one.
        for (origin, site) in [
            (None, "cross-site"),
            (Some("null"), "cross-site"),
            (Some("null"), "same-site"),
        ] {
            let mut req = post(action).header("sec-fetch-site", site);
            if let Some(origin) = origin {
                req = req.header(header::ORIGIN, origin);
            }
            let r = req.form(&[("csrf", token.as_str())]).send().await.unwrap();
            assert_eq!(r.status(), 403, "{action}: {origin:?} {site}");
        }
    }
    // A sign-in posted from another site is refused too (login CSRF).
    let r = app
        .client
        .post(format!("{}/console/sign-in", app.admin))
        .header(header::ORIGIN, "http://evil.test")
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(header::SET_COOKIE).is_none());

    // Nothing happened: alice is enabled and signed in, the console session lives.
    assert_eq!(app.whoami(&browser).await.status(), 200);
    let (status, html) = console.page(&page).await;
    assert_eq!(status, 200);
    assert!(html.contains("Enabled"), "{html}");
    assert!(!app.feed().await.iter().any(|e| e["user_id"] == id.as_str()));
}

crate::memory_and_redis!(console_requests_without_a_live_console_session_are_refused);
async fn console_requests_without_a_live_console_session_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.console_ttl = Some("0.3".parse().unwrap());
    })
    .await;
    let (browser, id) = alice(&app).await;
    let console = app.console().await;
    let token = console.cookie.split_once('=').unwrap().1.to_owned();
    let (_, html) = console.page("/console/").await;
    let csrf = csrf_of(&html);
    let never_issued = "B".repeat(43);
    let cookies = [
        None,
        Some(String::new()),
        Some(format!("{CONSOLE_COOKIE}=")),
        Some(format!("{CONSOLE_COOKIE}={never_issued}")),
        Some(format!("{CONSOLE_COOKIE}={}", &token[1..])),
        Some(format!("{CONSOLE_COOKIE}={token}x")),
        Some(format!(
            "{CONSOLE_COOKIE}={token}; {CONSOLE_COOKIE}={token}"
        )),
        Some(format!("__host-console={token}")),
        // The session token of the app is not a console session.
        Some(format!("{CONSOLE_COOKIE}={}", browser.token())),
    ];
    let gets = [
        "/console/".to_owned(),
        format!("/console/users/{id}"),
        "/console/users?q=alice".to_owned(),
        "/console/events".to_owned(),
        "/console/events/poll?after=0-0".to_owned(),
    ];
    let posts = [
        format!("/console/users/{id}/disable"),
        format!("/console/users/{id}/sessions/revoke-all"),
        "/console/sign-out".to_owned(),
    ];
    let refused = async |cookie: &Option<String>| {
        for path in &gets {
            let mut req = app.client.get(format!("{}{path}", app.admin));
            if let Some(c) = cookie {
                req = req.header(header::COOKIE, c);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "GET {path} with {cookie:?}");
            let body = r.text().await.unwrap();
            assert!(!body.contains(&id) || path.contains(&id), "{body}");
        }
        for path in &posts {
            let mut req = app
                .client
                .post(format!("{}{path}", app.admin))
                .header(header::ORIGIN, &app.admin)
                .form(&[("csrf", csrf.as_str())]);
            if let Some(c) = cookie {
                req = req.header(header::COOKIE, c);
            }
            assert_eq!(
                req.send().await.unwrap().status(),
                401,
                "POST {path} with {cookie:?}"
            );
        }
    };
    for cookie in &cookies {
        refused(cookie).await;
    }
    // The admin API's bearer key does not open the console either.
    let r = app.admin(Method::GET, "/console/").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Expired: the same requests with the once-valid cookie, once its 0.3 s are over (waiting
    // for the answer to change, a few seconds at most).
    let deadline = Instant::now() + Duration::from_secs(5);
    while console.page("/console/").await.0 == 200 {
        assert!(
            Instant::now() < deadline,
            "the console session never expired"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    refused(&Some(console.cookie.clone())).await;
    assert_eq!(app.whoami(&browser).await.status(), 200, "nothing was done");
}

crate::memory_and_redis!(markup_in_a_user_agent_or_a_search_is_shown_as_text);
async fn markup_in_a_user_agent_or_a_search_is_shown_as_text(backend: Backend) {
    let app = spawn_app(backend).await;
    // Usernames cannot carry markup at all.
    let r = app
        .register("<script>alert(1)</script>", "a-long-enough-password")
        .await;
    assert_eq!(r.status(), 400);
    // A user agent can: it is the attacker's own header.
    let r = app.register("mallory", "mallory-password").await;
    assert_eq!(r.status(), 201);
    let agent = r#"<script>alert("ua")</script><img src=x onerror=alert(2)> "quoted" & 'single'"#;
    let r = app
        .public(Method::POST, "/v1/login")
        .header(header::USER_AGENT, agent)
        .json(&serde_json::json!({"username": "mallory", "password": "mallory-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let console: Console = app.console().await;
    let r = console.get("/console/users?q=mallory").await;
    let user_page = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let (status, html) = console.page(&user_page).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "&lt;script&gt;alert(&quot;ua&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
        ),
        "{html}"
    );
    for raw in ["<script>alert", "<img", "onerror=alert(2)>"] {
        assert!(!html.contains(raw), "{raw} in {html}");
    }

    // A search is shown back in the form, escaped (the link could be sent to an operator).
    let (status, html) = console
        .page("/console/users?q=%22%3E%3Cscript%3Ealert(3)%3C%2Fscript%3E")
        .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("value=\"&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;\""),
        "{html}"
    );
    assert!(!html.contains("<script>alert(3)"), "{html}");
    // A fixed message for a `done` code, never the text of the URL.
    let (_, html) = console
        .page(&format!("{user_page}?done=%3Cb%3Ehi%3C%2Fb%3E"))
        .await;
    assert!(
        !html.contains("<b>hi") && !html.contains("&lt;b&gt;hi"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_is_in_no_console_answer() {
    let app = spawn_app(Backend::Memory).await;
    let (_browser, id) = alice(&app).await;
    let mut answers = Vec::new();
    for key in [API_KEY, "wrong-key"] {
        let r = app.console_sign_in_with(key).await;
        answers.push(format!("{:?}", r.headers()));
        answers.push(r.text().await.unwrap());
    }
    let console = app.console().await;
    assert!(!console.cookie.contains(API_KEY));
    for path in [
        "/console/".to_owned(),
        "/console/sign-in".to_owned(),
        format!("/console/users/{id}"),
        "/console/events".to_owned(),
        "/console/events/poll?after=latest".to_owned(),
    ] {
        let r = console.get(&path).await;
        answers.push(format!("{:?}", r.headers()));
        answers.push(r.text().await.unwrap());
    }
    let r = console
        .submit(&format!("/console/users/{id}"), "/console/sign-out")
        .await;
    answers.push(format!("{:?}", r.headers()));
    for answer in &answers {
        assert!(!answer.contains(API_KEY), "{answer}");
    }
}
