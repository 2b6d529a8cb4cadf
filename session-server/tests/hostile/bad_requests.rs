//! A table of hostile requests against the real server, over raw HTTP/1.1: malformed and
//! truncated JSON, wrong content types, oversized bodies and headers, duplicated and huge
//! cookies, non-UTF-8 and control characters, malformed tokens, Redis-key-like strings and path
//! traversal in every field and path segment, methods not allowed.
//!
//! Each request gets its documented answer: a 4xx with a JSON `{"error","message"}` body naming
//! the documented code (or, for the session check, `{"active": false}`), or, for requests the
//! HTTP layer refuses before routing (an unparseable request head: 400; a head over 128 KiB or
//! with more than 96 headers: 431), that status with an empty body. Never a 5xx, never a dropped
//! connection. After every request the server still answers, a bystander's session is intact,
//! and with Redis no key was written except the login-failure counters a rejected password
//! legitimately bumps; at the end every key in Redis follows the documented key schema.

use std::collections::BTreeSet;

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::{
    helpers::{API_KEY, Backend, Browser, ORIGIN, TestApp, session_cookie, spawn_app_with},
    raw::{self, RawResponse},
};

/// Strings that would mean something to Redis, a shell, a path or a log line if they ever
/// reached one unescaped.
const HOSTILE: &[&str] = &[
    "sess:*",
    "{x}",
    "*",
    "\r\nFLUSHALL\r\n",
    "../../../etc/passwd",
    "%00",
    "\0",
    "sess:name:bystander",
    "{bystander}",
    "$(reboot)",
    "' OR '1'='1",
];

/// The hostile strings as usernames, bare and inside a name (`a…b`), where they are not a
/// valid username. (Bare CR/LF around a name is trimmed away: `\r\nFLUSHALL\r\n` is the valid
/// username `flushall`, just text in a key.)
fn hostile_usernames() -> Vec<String> {
    let names: Vec<String> = HOSTILE
        .iter()
        .flat_map(|s| [(*s).to_owned(), format!("a{s}b")])
        .filter(|n| !crate::oracles::username_allowed(n))
        .collect();
    assert!(names.len() > HOSTILE.len(), "{names:?}");
    names
}

/// Substrings no response may echo back.
const MARKERS: &[&str] = &["FLUSHALL", "sess:*", "evil.example", "etc/passwd", "reboot"];

/// Percent-encodes everything but unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Public,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The documented JSON error.
    Error(u16, &'static str),
    /// `200 {"active": false}` from the session check.
    Inactive,
    /// Refused by the HTTP layer before routing: this status, empty body.
    Layer(u16),
    /// `200` with no events and `reset: true` from the event feed: nothing can follow.
    Reset,
    /// A form sent back to the login page: 303 to this location, no cookie.
    Redirect(&'static str),
}

struct Case {
    name: String,
    listener: Listener,
    bytes: Vec<u8>,
    expect: Expect,
    /// The answer must carry a fresh request id, not the one sent.
    fresh_request_id: bool,
}

/// The signed-in parties: the attacker sends the hostile requests, the bystander must not notice.
struct World {
    app: TestApp,
    public: String,
    admin: String,
    attacker: Browser,
    attacker_id: String,
    bystander: Browser,
    bystander_id: String,
    bystander_handle: String,
}

type Headers = Vec<(&'static str, Vec<u8>)>;

fn h(name: &'static str, value: impl AsRef<[u8]>) -> (&'static str, Vec<u8>) {
    (name, value.as_ref().to_vec())
}

impl World {
    fn host(&self, l: Listener) -> &str {
        match l {
            Listener::Public => raw::authority(&self.public),
            Listener::Admin => raw::authority(&self.admin),
        }
    }

    fn attacker_cookie(&self) -> (&'static str, Vec<u8>) {
        h("Cookie", &self.attacker.cookie)
    }

    fn key(&self) -> (&'static str, Vec<u8>) {
        h("Authorization", format!("Bearer {API_KEY}"))
    }

    // One argument per part of a request, as the tables read.
    #[allow(clippy::too_many_arguments)]
    fn case(
        &self,
        name: impl Into<String>,
        l: Listener,
        method: &str,
        target: impl AsRef<[u8]>,
        headers: Headers,
        body: Option<&[u8]>,
        expect: Expect,
    ) -> Case {
        Case {
            name: name.into(),
            listener: l,
            bytes: raw::request(method, target.as_ref(), self.host(l), &headers, body),
            expect,
            fresh_request_id: false,
        }
    }

    /// A public request as a browser on the allowed origin sends it.
    fn public(
        &self,
        name: impl Into<String>,
        method: &str,
        target: impl AsRef<[u8]>,
        mut headers: Headers,
        body: Option<&[u8]>,
        expect: Expect,
    ) -> Case {
        headers.push(h("Origin", ORIGIN));
        self.case(
            name,
            Listener::Public,
            method,
            target,
            headers,
            body,
            expect,
        )
    }

    /// An admin request with the API key.
    fn admin(
        &self,
        name: impl Into<String>,
        method: &str,
        target: impl AsRef<[u8]>,
        mut headers: Headers,
        body: Option<&[u8]>,
        expect: Expect,
    ) -> Case {
        headers.push(self.key());
        self.case(name, Listener::Admin, method, target, headers, body, expect)
    }
}

async fn user_id(app: &TestApp, name: &str) -> String {
    let v: Value = app
        .admin(Method::GET, &format!("/admin/v1/users?username={name}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_owned()
}

async fn handle_of(app: &TestApp, browser: &Browser) -> String {
    let r = app.whoami(browser).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["session"]["handle"].as_str().unwrap().to_owned()
}

async fn world(backend: Backend) -> World {
    let app = spawn_app_with(backend, |s| {
        s.login_max_attempts_per_ip = Some(100_000);
        s.login_max_failures_per_user = Some(100_000);
    })
    .await;
    let attacker = app.signed_in("mallory").await;
    let bystander = app.signed_in("bystander").await;
    // The event feed exists, as in any running deployment (logins are not in it, ends are): a
    // revocation that finds nothing still appends its end (it may be the retry of one whose reply
    // was lost), which must not count as a refused request writing a key.
    let ended = app.signed_in("someone-else").await;
    let r = app
        .public(Method::POST, "/v1/logout")
        .header(header::COOKIE, &ended.cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    World {
        public: app.public.clone(),
        admin: app.admin.clone(),
        attacker_id: user_id(&app, "mallory").await,
        bystander_id: user_id(&app, "bystander").await,
        bystander_handle: handle_of(&app, &bystander).await,
        attacker,
        bystander,
        app,
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The JSON endpoints and their string fields.
fn json_endpoints(w: &World) -> Vec<(&'static str, String, Listener, Vec<&'static str>, bool)> {
    vec![
        (
            "POST",
            "/v1/login".into(),
            Listener::Public,
            vec!["username", "password"],
            false,
        ),
        (
            "POST",
            "/v1/users".into(),
            Listener::Public,
            vec!["username", "password"],
            false,
        ),
        (
            "POST",
            "/v1/password".into(),
            Listener::Public,
            vec!["current_password", "new_password"],
            true,
        ),
        (
            "POST",
            "/admin/v1/users".into(),
            Listener::Admin,
            vec!["username", "password"],
            false,
        ),
        (
            "PUT",
            format!("/admin/v1/users/{}/password", w.attacker_id),
            Listener::Admin,
            vec!["password"],
            false,
        ),
        (
            "POST",
            "/admin/v1/sessions/check".into(),
            Listener::Admin,
            // The check's fields are optional: one of them alone is a valid request.
            vec!["token"],
            false,
        ),
    ]
}

/// Bodies that are not the expected JSON object, for an endpoint with string fields `f`.
fn malformed_bodies(f: &[&str]) -> Vec<(String, Vec<u8>)> {
    let valid = |over: &str, value: &str| -> String {
        let mut parts = vec![format!("\"{over}\":{value}")];
        parts.extend(
            f.iter()
                .filter(|k| **k != over)
                .map(|k| format!("\"{k}\":\"long-enough-value\"")),
        );
        format!("{{{}}}", parts.join(","))
    };
    let first = f[0];
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("empty body".into(), vec![]),
        ("lone brace".into(), b"{".to_vec()),
        (
            "truncated".into(),
            format!("{{\"{first}\":\"abc\",\"pass").into_bytes(),
        ),
        (
            "truncated string".into(),
            format!("{{\"{first}\":\"abc").into_bytes(),
        ),
        ("null document".into(), b"null".to_vec()),
        ("empty array".into(), b"[]".to_vec()),
        ("number document".into(), b"42".to_vec()),
        ("string document".into(), b"\"x\"".to_vec()),
        ("bool document".into(), b"true".to_vec()),
        (
            // serde reads a struct from an array of its fields in order; the API takes objects.
            "fields as an array".into(),
            format!("[{}]", vec!["\"long-enough-value\""; f.len()].join(",")).into_bytes(),
        ),
        ("field null".into(), valid(first, "null").into_bytes()),
        ("field array".into(), valid(first, "[\"x\"]").into_bytes()),
        ("field number".into(), valid(first, "12345").into_bytes()),
        (
            "field object".into(),
            valid(first, "{\"$gt\":\"\"}").into_bytes(),
        ),
        (
            "field huge number".into(),
            valid(first, "1e999999").into_bytes(),
        ),
        (
            "duplicate key".into(),
            valid(first, &format!("\"a-value\",\"{first}\":\"b-value\"")).into_bytes(),
        ),
        (
            "non-UTF-8 in a string".into(),
            [
                format!("{{\"{first}\":\"").into_bytes(),
                vec![0xff, 0xfe, 0xc3],
                b"\"}".to_vec(),
            ]
            .concat(),
        ),
        (
            "lone surrogate escape".into(),
            valid(first, "\"\\ud800\"").into_bytes(),
        ),
        (
            "raw control character".into(),
            valid(first, "\"a\u{1}b\"").into_bytes(),
        ),
        (
            "raw CR LF in a string".into(),
            valid(first, "\"a\r\nFLUSHALL\r\n\"").into_bytes(),
        ),
        (
            "byte order mark".into(),
            [vec![0xef, 0xbb, 0xbf], valid(first, "\"x\"").into_bytes()].concat(),
        ),
        (
            "trailing garbage".into(),
            format!("{}x", valid(first, "\"x\"")).into_bytes(),
        ),
        (
            "trailing NUL".into(),
            [valid(first, "\"x\"").into_bytes(), vec![0]].concat(),
        ),
        (
            "deeply nested arrays".into(),
            valid(first, &format!("{}{}", "[".repeat(5000), "]".repeat(5000))).into_bytes(),
        ),
        (
            "deeply nested objects".into(),
            valid(
                first,
                &format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000)),
            )
            .into_bytes(),
        ),
        (
            "deep nesting in an unknown field".into(),
            format!("{{\"zz\":{}{}}}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        ),
    ];
    // A wrong field name instead of a required one (the check endpoint's fields are optional).
    if f.len() > 1 {
        out.push((
            "only unknown fields".into(),
            b"{\"user\":\"a\",\"pass\":\"b\"}".to_vec(),
        ));
    }
    out
}

fn json_shape_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    for (method, path, l, fields, needs_session) in json_endpoints(w) {
        let mut base: Headers = vec![h(JSON.0, JSON.1)];
        if needs_session {
            base.push(w.attacker_cookie());
        }
        let send = |name: String, headers: Headers, body: &[u8], expect: Expect| match l {
            Listener::Public => w.public(name, method, &path, headers, Some(body), expect),
            Listener::Admin => w.admin(name, method, &path, headers, Some(body), expect),
        };
        for (what, body) in malformed_bodies(&fields) {
            out.push(send(
                format!("{method} {path}: {what}"),
                base.clone(),
                &body,
                Expect::Error(400, "malformed_request"),
            ));
        }
        // Over the 16 KiB body limit, announced by Content-Length.
        let big = format!("{{\"{}\":\"{}\"}}", fields[0], "p".repeat(16 * 1024));
        out.push(send(
            format!("{method} {path}: body over the limit"),
            base.clone(),
            big.as_bytes(),
            Expect::Error(413, "payload_too_large"),
        ));
        // Wrong or missing media types.
        let body = json!({fields[0]: "x"}).to_string();
        let mut types: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("no Content-Type", None),
            ("text/plain", Some(b"text/plain".to_vec())),
            ("application/jsonx", Some(b"application/jsonx".to_vec())),
            (
                "application/json-seq",
                Some(b"application/json-seq".to_vec()),
            ),
            (
                "multipart/form-data",
                Some(b"multipart/form-data; boundary=x".to_vec()),
            ),
            (
                "non-UTF-8 Content-Type",
                Some(b"application/json\xff".to_vec()),
            ),
        ];
        if path != "/v1/login" {
            types.push((
                "form encoding",
                Some(b"application/x-www-form-urlencoded".to_vec()),
            ));
        }
        for (what, ct) in types {
            let mut headers: Headers = ct.map(|v| ("Content-Type", v)).into_iter().collect();
            if needs_session {
                headers.push(w.attacker_cookie());
            }
            out.push(send(
                format!("{method} {path}: {what}"),
                headers,
                body.as_bytes(),
                Expect::Error(415, "unsupported_media_type"),
            ));
        }
        // Two Content-Type headers: the first one counts.
        let mut headers: Headers = vec![h("Content-Type", "text/plain"), h(JSON.0, JSON.1)];
        if needs_session {
            headers.push(w.attacker_cookie());
        }
        out.push(send(
            format!("{method} {path}: two Content-Type headers"),
            headers,
            body.as_bytes(),
            Expect::Error(415, "unsupported_media_type"),
        ));
    }
    out
}

/// Valid JSON whose values are hostile or out of bounds.
fn field_value_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let json_h = || -> Headers { vec![h(JSON.0, JSON.1)] };
    let long_password = "p".repeat(129);
    let mut usernames = hostile_usernames();
    usernames.extend(["a".repeat(65), String::new(), "   ".into(), "ålice".into()]);
    for name in &usernames {
        for (method, path, admin) in [
            ("POST", "/v1/login", false),
            ("POST", "/v1/users", false),
            ("POST", "/admin/v1/users", true),
        ] {
            let body = json!({"username": name, "password": "long-enough-password"}).to_string();
            let label = format!("{path}: username {name:?}");
            let expect = Expect::Error(400, "invalid_request");
            out.push(if admin {
                w.admin(label, method, path, json_h(), Some(body.as_bytes()), expect)
            } else {
                w.public(label, method, path, json_h(), Some(body.as_bytes()), expect)
            });
        }
    }
    // Passwords: hostile strings against a real account are wrong passwords (401, and they
    // count as failures); over-long ones are refused before hashing; short new ones too.
    for pw in HOSTILE {
        let body = json!({"username": "bystander", "password": pw}).to_string();
        out.push(w.public(
            format!("login bystander with password {pw:?}"),
            "POST",
            "/v1/login",
            json_h(),
            Some(body.as_bytes()),
            Expect::Error(401, "invalid_credentials"),
        ));
    }
    for (path, body, expect) in [
        (
            "/v1/login",
            json!({"username": "bystander", "password": long_password}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "/v1/users",
            json!({"username": "newcomer", "password": long_password}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "/v1/users",
            json!({"username": "newcomer", "password": "short"}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            "/v1/users",
            json!({"username": "bystander", "password": "long-enough-password"}),
            Expect::Error(409, "username_taken"),
        ),
    ] {
        out.push(w.public(
            format!("{path}: {body}"),
            "POST",
            path,
            json_h(),
            Some(body.to_string().as_bytes()),
            expect,
        ));
    }
    for (body, expect) in [
        (
            json!({"current_password": long_password, "new_password": "long-enough-password"}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            json!({"current_password": "mallory-password", "new_password": "short"}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            json!({"current_password": "mallory-password", "new_password": long_password}),
            Expect::Error(400, "invalid_request"),
        ),
        (
            json!({"current_password": "\r\nFLUSHALL\r\n", "new_password": "sess:*-sess:*"}),
            Expect::Error(403, "wrong_password"),
        ),
    ] {
        out.push(w.public(
            format!("/v1/password: {body}"),
            "POST",
            "/v1/password",
            vec![h(JSON.0, JSON.1), w.attacker_cookie()],
            Some(body.to_string().as_bytes()),
            expect,
        ));
    }
    for pw in ["short", long_password.as_str()] {
        out.push(w.admin(
            format!("admin set password {pw:?}"),
            "PUT",
            format!("/admin/v1/users/{}/password", w.attacker_id),
            json_h(),
            Some(json!({ "password": pw }).to_string().as_bytes()),
            Expect::Error(400, "invalid_request"),
        ));
    }
    out
}

/// Variants of a valid token that must not be accepted.
fn bad_tokens(w: &World) -> Vec<(String, String)> {
    let t = w.attacker.token().to_owned();
    let b = w.bystander.token().to_owned();
    let mut standard = t.clone();
    standard.replace_range(40..41, "+");
    let mut slash = t.clone();
    slash.replace_range(50..51, "/");
    let upper_route = format!("{}{}", t[..32].to_ascii_uppercase(), &t[32..]);
    let straddle = format!("{}é{}", "a".repeat(31), "A".repeat(43));
    assert_eq!(straddle.len(), 76);
    let mut out = vec![
        ("one byte short".to_owned(), t[..75].to_owned()),
        ("one byte long".to_owned(), format!("{t}A")),
        ("first byte dropped".to_owned(), t[1..].to_owned()),
        ("upper-case route".to_owned(), upper_route),
        ("standard base64 +".to_owned(), standard),
        ("standard base64 /".to_owned(), slash),
        ("padded".to_owned(), format!("{t}=")),
        ("no separator".to_owned(), t.replacen('.', "-", 1)),
        ("all stars".to_owned(), "*".repeat(76)),
        ("multi-byte character across the split".to_owned(), straddle),
        (
            "bystander route with attacker secret".to_owned(),
            format!("{}{}", &b[..32], &t[32..]),
        ),
        (
            "attacker route with bystander secret".to_owned(),
            format!("{}{}", &t[..32], &b[32..]),
        ),
        ("quoted".to_owned(), format!("\"{t}\"")),
        ("empty".to_owned(), String::new()),
        ("15 KB".to_owned(), "A".repeat(15_000)),
    ];
    out.extend(HOSTILE.iter().map(|s| (format!("{s:?}"), (*s).to_owned())));
    out.push(("{}".to_owned(), "{}".to_owned()));
    out
}

fn token_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    for (what, token) in bad_tokens(w) {
        // As the token itself, and inside a raw Cookie header, to the session check.
        for body in [
            json!({ "token": token }),
            json!({ "cookie": format!("theme=dark; __Host-session={token}") }),
        ] {
            out.push(w.admin(
                format!(
                    "check {what} as {}",
                    if body["token"].is_null() {
                        "cookie"
                    } else {
                        "token"
                    }
                ),
                "POST",
                "/admin/v1/sessions/check",
                vec![h(JSON.0, JSON.1)],
                Some(body.to_string().as_bytes()),
                Expect::Inactive,
            ));
        }
        // In the browser's Cookie header. CR, LF and NUL cannot be in a header value at all:
        // the HTTP layer refuses the request head.
        let in_header = token.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        let expect = if in_header {
            Expect::Layer(400)
        } else {
            Expect::Error(401, "unauthenticated")
        };
        out.push(w.public(
            format!("whoami with cookie {what}"),
            "GET",
            "/v1/session",
            vec![h("Cookie", format!("__Host-session={token}"))],
            None,
            expect,
        ));
        out.push(w.admin(
            format!("forward-auth with cookie {what}"),
            "GET",
            "/admin/v1/forward-auth",
            vec![h("Cookie", format!("theme=dark; __Host-session={token}"))],
            None,
            expect,
        ));
    }
    out
}

/// Forward auth with hostile forwarding headers, with the attacker's live cookie: a malformed
/// description of the original request is a 400 whether or not the session is alive.
fn forward_auth_cases(w: &World) -> Vec<Case> {
    let bad = Expect::Error(400, "malformed_request");
    let long_path = format!("/{}", "a".repeat(4096));
    let long_method = "A".repeat(64 * 1024);
    let rows: Vec<(&str, Headers)> = vec![
        ("method with a space", vec![h("X-Forwarded-Method", "GE T")]),
        ("64 KiB method", vec![h("X-Forwarded-Method", &long_method)]),
        ("non-UTF-8 method", vec![h("X-Forwarded-Method", b"G\xffT")]),
        (
            "original URL javascript:",
            vec![h("X-Original-URL", "javascript:alert(1)")],
        ),
        (
            "original URL //evil",
            vec![h("X-Original-URL", "//evil.example/")],
        ),
        (
            "original URL without a slash",
            vec![h("X-Original-URL", "notes")],
        ),
        (
            "original URL of 4 KiB",
            vec![h("X-Original-URL", &long_path)],
        ),
        (
            "non-UTF-8 original URL",
            vec![h("X-Original-URL", b"/\xfe\xff")],
        ),
        (
            "two original URLs",
            vec![h("X-Original-URL", "/a"), h("X-Original-URL", "/b")],
        ),
        ("URI without a slash", vec![h("X-Forwarded-Uri", "notes")]),
        ("URI //evil", vec![h("X-Forwarded-Uri", "//evil.example")]),
        (
            "scheme ftp",
            vec![h("X-Forwarded-Uri", "/"), h("X-Forwarded-Proto", "ftp")],
        ),
        (
            "host with a path",
            vec![
                h("X-Forwarded-Uri", "/"),
                h("X-Forwarded-Proto", "https"),
                h("X-Forwarded-Host", "app.test/@evil.example"),
            ],
        ),
        (
            "host with redis syntax",
            vec![
                h("X-Forwarded-Uri", "/"),
                h("X-Forwarded-Proto", "https"),
                h("X-Forwarded-Host", "sess:*{x}"),
            ],
        ),
        (
            "redirect mode maybe",
            vec![h("X-Forward-Auth-Redirect", "maybe")],
        ),
    ];
    rows.into_iter()
        .map(|(what, mut headers)| {
            headers.push(w.attacker_cookie());
            w.admin(
                format!("forward-auth: {what}"),
                "GET",
                "/admin/v1/forward-auth",
                headers,
                None,
                bad,
            )
        })
        .collect()
}

fn cookie_header_cases(w: &World) -> Vec<Case> {
    let t = w.attacker.token();
    let pairs: Vec<String> = (0..1000).map(|i| format!("c{i}=v{i}")).collect();
    let sessions: Vec<String> = (0..1000).map(|_| format!("__Host-session={t}")).collect();
    let unauth = Expect::Error(401, "unauthenticated");
    let cases: Vec<(&str, Headers, Expect)> = vec![
        (
            "64 KiB cookie value",
            vec![h(
                "Cookie",
                format!("__Host-session={}", "A".repeat(64 * 1024)),
            )],
            unauth,
        ),
        (
            "1000 cookie pairs",
            vec![h("Cookie", pairs.join("; "))],
            unauth,
        ),
        (
            "1000 copies of the session cookie",
            vec![h("Cookie", sessions.join("; "))],
            unauth,
        ),
        ("===;;;", vec![h("Cookie", "===;;;")], unauth),
        ("only separators", vec![h("Cookie", ";;;;;; ;")], unauth),
        (
            "two Cookie headers with the same token",
            vec![
                h("Cookie", format!("__Host-session={t}")),
                h("Cookie", format!("__Host-session={t}")),
            ],
            unauth,
        ),
        (
            "two Cookie headers, attacker and bystander",
            vec![
                h("Cookie", format!("__Host-session={t}")),
                h("Cookie", &w.bystander.cookie),
            ],
            unauth,
        ),
        (
            "session cookie twice in one header",
            vec![h(
                "Cookie",
                format!("__Host-session={t}; a=b; __Host-session={t}"),
            )],
            unauth,
        ),
        (
            "name in other case",
            vec![h("Cookie", format!("__host-session={t}"))],
            unauth,
        ),
        (
            "non-UTF-8 cookie header",
            vec![(
                "Cookie",
                [
                    b"__Host-session=".to_vec(),
                    vec![0xff, 0xfe],
                    t.as_bytes().to_vec(),
                ]
                .concat(),
            )],
            unauth,
        ),
        (
            "token with a non-ASCII byte appended",
            vec![(
                "Cookie",
                [format!("__Host-session={t}").into_bytes(), vec![0xe9]].concat(),
            )],
            unauth,
        ),
        (
            "percent-encoded token",
            vec![h(
                "Cookie",
                format!("__Host-session=%{:02X}{}", t.as_bytes()[0], &t[1..]),
            )],
            unauth,
        ),
        (
            "CR LF injected into the Cookie header",
            vec![h("Cookie", "a=b\r\nFLUSHALL\r\n")],
            Expect::Layer(400),
        ),
        (
            "NUL in the Cookie header",
            vec![h("Cookie", "a=\0")],
            Expect::Layer(400),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, headers, expect)| w.public(name, "GET", "/v1/session", headers, None, expect))
        .collect()
}

fn header_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let many: Headers = (0..100)
        .map(|i| ("X-Pad", format!("{i}").into_bytes()))
        .collect();
    out.push(w.public(
        "100 headers",
        "GET",
        "/v1/session",
        many,
        None,
        Expect::Layer(431),
    ));
    out.push(w.public(
        "one 140 KiB header",
        "GET",
        "/v1/session",
        vec![h("X-Pad", "a".repeat(140 * 1024))],
        None,
        Expect::Layer(431),
    ));
    out.push(w.public(
        "140 KiB cookie",
        "GET",
        "/v1/session",
        vec![h(
            "Cookie",
            format!("__Host-session={}", "A".repeat(140 * 1024)),
        )],
        None,
        Expect::Layer(431),
    ));
    out.push(w.public(
        "140 KiB request target",
        "GET",
        format!("/v1/session?{}", "a".repeat(140 * 1024)),
        vec![],
        None,
        Expect::Layer(431),
    ));
    out.push(w.public(
        "header name with a space",
        "GET",
        "/v1/session",
        vec![h("Bad Header", "x")],
        None,
        Expect::Layer(400),
    ));
    out.push(w.public(
        "NUL in a header value",
        "GET",
        "/v1/session",
        vec![h("X-Thing", "a\0b")],
        None,
        Expect::Layer(400),
    ));
    out.push(w.public(
        "LF injected into a header",
        "GET",
        "/v1/session",
        vec![h("X-Thing", "a\nFLUSHALL")],
        None,
        Expect::Layer(400),
    ));
    out.push(Case {
        name: "HTTP/1.1 without Host".into(),
        listener: Listener::Public,
        bytes: b"GET /v1/session HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        expect: Expect::Layer(400),
        fresh_request_id: false,
    });
    out.push(Case {
        name: "unknown HTTP version".into(),
        listener: Listener::Public,
        bytes: format!(
            "GET /v1/session HTTP/9.9\r\nHost: {}\r\nConnection: close\r\n\r\n",
            w.host(Listener::Public)
        )
        .into_bytes(),
        expect: Expect::Layer(400),
        fresh_request_id: false,
    });
    // Request ids that must not be echoed.
    for id in [
        "sess:*".as_bytes().to_vec(),
        vec![b'a'; 65],
        "a".repeat(64 * 1024).into_bytes(),
        vec![0xff, 0xfe],
        b"{x}".to_vec(),
    ] {
        let mut c = w.public(
            format!("X-Request-Id of {} bytes", id.len()),
            "GET",
            "/v1/session",
            vec![("X-Request-Id", id)],
            None,
            Expect::Error(401, "unauthenticated"),
        );
        c.fresh_request_id = true;
        out.push(c);
    }
    // A long forged X-Forwarded-For from an untrusted peer changes nothing.
    let chain: Vec<String> = (0..1000)
        .map(|i| format!("sess:*{i}, 10.0.{}.1", i % 250))
        .collect();
    out.push(
        w.public(
            "1000-hop X-Forwarded-For",
            "POST",
            "/v1/login",
            vec![h(JSON.0, JSON.1), h("X-Forwarded-For", chain.join(", "))],
            Some(
                json!({"username": "nobody", "password": "long-enough"})
                    .to_string()
                    .as_bytes(),
            ),
            Expect::Error(401, "invalid_credentials"),
        ),
    );
    // Admin API keys.
    let check = json!({"token": w.attacker.token()}).to_string();
    for (what, auth) in [
        ("no Authorization", None),
        ("wrong key", Some(b"Bearer wrong-key".to_vec())),
        (
            "64 KiB key",
            Some(format!("Bearer {}", "k".repeat(64 * 1024)).into_bytes()),
        ),
        ("key sess:*", Some(b"Bearer sess:*".to_vec())),
        ("non-UTF-8 key", Some(b"Bearer \xff\xfe".to_vec())),
        (
            "lower-case scheme",
            Some(format!("bearer {API_KEY}").into_bytes()),
        ),
        (
            "Basic scheme",
            Some(format!("Basic {API_KEY}").into_bytes()),
        ),
        (
            "key with a suffix",
            Some(format!("Bearer {API_KEY}x").into_bytes()),
        ),
        (
            "key one byte short",
            Some(format!("Bearer {}", &API_KEY[1..]).into_bytes()),
        ),
        (
            "the session token as key",
            Some(format!("Bearer {}", w.attacker.token()).into_bytes()),
        ),
    ] {
        let headers: Headers = vec![h(JSON.0, JSON.1)]
            .into_iter()
            .chain(auth.map(|a| ("Authorization", a)))
            .collect();
        out.push(w.case(
            format!("admin check with {what}"),
            Listener::Admin,
            "POST",
            "/admin/v1/sessions/check",
            headers,
            Some(check.as_bytes()),
            Expect::Error(401, "invalid_api_key"),
        ));
    }
    out.push(w.case(
        "two Authorization headers, wrong one first",
        Listener::Admin,
        "POST",
        "/admin/v1/sessions/check",
        vec![
            h(JSON.0, JSON.1),
            h("Authorization", "Bearer wrong"),
            w.key(),
        ],
        Some(check.as_bytes()),
        Expect::Error(401, "invalid_api_key"),
    ));
    // Cross-origin hints on a state-changing request with the attacker's own session: refused,
    // and (checked at the end) the session was not ended.
    let cookie = w.attacker_cookie();
    for (what, headers) in [
        ("Origin null", vec![h("Origin", "null")]),
        (
            "Origin suffix",
            vec![h("Origin", "http://app.test.evil.example")],
        ),
        (
            "Origin userinfo",
            vec![h("Origin", "http://app.test@evil.example")],
        ),
        (
            "Origin fragment",
            vec![h("Origin", "http://evil.example#http://app.test")],
        ),
        (
            "Origin 64 KiB",
            vec![h(
                "Origin",
                format!("http://{}.example", "a".repeat(65_000)),
            )],
        ),
        (
            "Origin non-UTF-8",
            vec![h("Origin", b"http://app.test\xff")],
        ),
        (
            "Origin evil then allowed",
            vec![h("Origin", "http://evil.example"), h("Origin", ORIGIN)],
        ),
        ("Referer evil", vec![h("Referer", "http://evil.example/x")]),
        ("Referer non-UTF-8", vec![h("Referer", b"\xff\xfe")]),
        (
            "Sec-Fetch-Site cross-site",
            vec![h("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let headers: Headers = headers.into_iter().chain([cookie.clone()]).collect();
        out.push(w.case(
            format!("logout with {what}"),
            Listener::Public,
            "POST",
            "/v1/logout",
            headers,
            Some(b""),
            Expect::Error(403, "cross_origin_refused"),
        ));
    }
    out
}

fn body_framing_cases(w: &World) -> Vec<Case> {
    let host = w.host(Listener::Public).to_owned();
    let login = |extra: &str, body: &[u8]| -> Vec<u8> {
        [
            format!(
                "POST /v1/login HTTP/1.1\r\nHost: {host}\r\nOrigin: {ORIGIN}\r\n\
                 Content-Type: application/json\r\n{extra}Connection: close\r\n\r\n"
            )
            .into_bytes(),
            body.to_vec(),
        ]
        .concat()
    };
    let chunk = "p".repeat(8 * 1024);
    let chunked_big = format!(
        "{0:x}\r\n{1}\r\n{0:x}\r\n{1}\r\n{0:x}\r\n{1}\r\n0\r\n\r\n",
        chunk.len(),
        chunk
    );
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "huge Content-Length",
            login("Content-Length: 99999999999\r\n", b"{}"),
            Expect::Error(413, "payload_too_large"),
        ),
        (
            "chunked body over the limit",
            login("Transfer-Encoding: chunked\r\n", chunked_big.as_bytes()),
            Expect::Error(413, "payload_too_large"),
        ),
        (
            "bad chunk size",
            login("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            Expect::Error(400, "malformed_request"),
        ),
        (
            "Content-Length and Transfer-Encoding",
            login(
                "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
                b"2\r\n{}\r\n0\r\n\r\n",
            ),
            Expect::Layer(400),
        ),
        (
            "two different Content-Lengths",
            login("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x"),
            Expect::Layer(400),
        ),
        (
            "negative Content-Length",
            login("Content-Length: -1\r\n", b"{}"),
            Expect::Layer(400),
        ),
        (
            "non-numeric Content-Length",
            login("Content-Length: ten\r\n", b"{}"),
            Expect::Layer(400),
        ),
        (
            "unknown Transfer-Encoding",
            login("Transfer-Encoding: gzip\r\n", b"{}"),
            Expect::Layer(400),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, expect)| Case {
            name: name.into(),
            listener: Listener::Public,
            bytes,
            expect,
            fresh_request_id: false,
        })
        .collect()
}

fn form_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let form_h = || vec![h("Content-Type", "application/x-www-form-urlencoded")];
    let form = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap();
    let long_path = format!("/{}", "a".repeat(3000));
    for target in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\r\nSet-Cookie: x=y",
        "\r\nFLUSHALL\r\n",
        "http://app.test.evil.example/",
        "https:evil.example",
        "http://app.test@evil.example/",
        "data:text/html,x",
        "sess:*",
        long_path.as_str(),
    ] {
        let body = form(&[
            ("username", "mallory"),
            ("password", "mallory-password"),
            ("return_to", target),
        ]);
        out.push(w.public(
            format!("form login return_to {target:.40?}"),
            "POST",
            "/v1/login",
            form_h(),
            Some(body.as_bytes()),
            Expect::Error(403, "forbidden_redirect"),
        ));
        out.push(w.public(
            format!("form logout return_to {target:.40?}"),
            "POST",
            "/v1/logout",
            form_h(),
            Some(form(&[("return_to", target)]).as_bytes()),
            Expect::Error(403, "forbidden_redirect"),
        ));
    }
    // A logout's body is optional, but a JSON one must be an object; refused, it ends nothing
    // (the attacker's session is checked to have survived at the end).
    for body in ["[null]", "[\"/\"]", "null", "\"x\""] {
        out.push(w.public(
            format!("JSON logout body {body}"),
            "POST",
            "/v1/logout",
            vec![h(JSON.0, JSON.1), w.attacker_cookie()],
            Some(body.as_bytes()),
            Expect::Error(400, "malformed_request"),
        ));
    }
    for (what, body, expect) in [
        (
            "duplicate form keys",
            b"username=a&username=b&password=long-enough".to_vec(),
            Expect::Error(400, "malformed_request"),
        ),
        (
            "missing password",
            b"username=mallory".to_vec(),
            Expect::Error(400, "malformed_request"),
        ),
        (
            "percent-encoded invalid UTF-8",
            b"username=%FF%FE&password=long-enough".to_vec(),
            Expect::Redirect("/login?error=invalid_request"),
        ),
        (
            "raw invalid UTF-8",
            b"username=\xff\xfe&password=long-enough".to_vec(),
            Expect::Redirect("/login?error=invalid_request"),
        ),
        (
            "encoded CR LF username",
            b"username=a%0D%0AFLUSHALL%0D%0Ab&password=long-enough".to_vec(),
            Expect::Redirect("/login?error=invalid_request"),
        ),
        (
            "over-long password",
            format!("username=mallory&password={}", "p".repeat(129)).into_bytes(),
            Expect::Redirect("/login?error=invalid_request"),
        ),
    ] {
        out.push(w.public(
            format!("form login {what}"),
            "POST",
            "/v1/login",
            form_h(),
            Some(&body),
            expect,
        ));
    }
    out
}

fn path_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let not_found = Expect::Error(404, "not_found");
    let mut segments: Vec<String> = HOSTILE.iter().map(|s| enc(s)).collect();
    segments.extend([
        "..".into(),
        "%2E%2E".into(),
        "*".into(),
        "sess:*".into(),
        format!("{}x", w.bystander_handle),
        format!("{}%00", w.bystander_handle),
        w.bystander_handle.to_uppercase().replace('-', "%2D") + "%20",
        "a".repeat(4000),
        "%FF%FE".into(),
    ]);
    for seg in &segments {
        let short: String = seg.chars().take(40).collect();
        out.push(w.public(
            format!("revoke own session {short}"),
            "DELETE",
            format!("/v1/sessions/{seg}"),
            vec![w.attacker_cookie()],
            None,
            not_found,
        ));
        for (method, path, body) in [
            ("GET", format!("/admin/v1/users/{seg}"), None),
            ("GET", format!("/admin/v1/users/{seg}/sessions"), None),
            ("DELETE", format!("/admin/v1/users/{seg}/sessions"), None),
            ("POST", format!("/admin/v1/users/{seg}/disable"), None),
            ("POST", format!("/admin/v1/users/{seg}/enable"), None),
            (
                "PUT",
                format!("/admin/v1/users/{seg}/password"),
                Some(br#"{"password":"long-enough-password"}"#.as_slice()),
            ),
            (
                "DELETE",
                format!("/admin/v1/users/{}/sessions/{seg}", w.bystander_id),
                None,
            ),
            (
                "DELETE",
                format!("/admin/v1/users/{seg}/sessions/{}", w.bystander_handle),
                None,
            ),
        ] {
            let headers = if body.is_some() {
                vec![h(JSON.0, JSON.1)]
            } else {
                vec![]
            };
            out.push(w.admin(
                format!("{method} {}", path.chars().take(70).collect::<String>()),
                method,
                &path,
                headers,
                body,
                not_found,
            ));
        }
    }
    // Another user's handle, through the admin API under the attacker's id.
    out.push(w.admin(
        "admin revoke bystander handle under attacker id",
        "DELETE",
        format!(
            "/admin/v1/users/{}/sessions/{}",
            w.attacker_id, w.bystander_handle
        ),
        vec![],
        None,
        not_found,
    ));
    // Traversal and odd request targets.
    for (l, target) in [
        (Listener::Public, "/v1/../admin/v1/users"),
        (Listener::Public, "/v1/session/.."),
        (Listener::Public, "/v1/./session"),
        (Listener::Public, "/%2e%2e/admin/v1/events"),
        (Listener::Public, "/v1//session"),
        (Listener::Public, "/V1/SESSION"),
        (Listener::Public, "/v1/session%00"),
        (Listener::Public, "/admin/v1/events?after=0-0"),
        (Listener::Public, "*"),
        (Listener::Admin, "/admin/v1/../../v1/session"),
        (Listener::Admin, "/admin/v1/users/../../../etc/passwd"),
        (Listener::Admin, "/admin/v1/%2e%2e/v1/session"),
    ] {
        let c = match l {
            Listener::Public => w.public(target, "GET", target, vec![], None, not_found),
            Listener::Admin => w.admin(target, "GET", target, vec![], None, not_found),
        };
        out.push(c);
    }
    out
}

fn query_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let malformed = Expect::Error(400, "malformed_request");
    for name in hostile_usernames()
        .iter()
        .map(|s| enc(s))
        .chain(["".into(), "a".repeat(65)])
    {
        out.push(w.admin(
            format!("find user {name:.40}"),
            "GET",
            format!("/admin/v1/users?username={name}"),
            vec![],
            None,
            Expect::Error(400, "invalid_request"),
        ));
    }
    for query in ["", "?user=alice", "?username=a&username=b"] {
        out.push(w.admin(
            format!("find user with query {query:?}"),
            "GET",
            format!("/admin/v1/users{query}"),
            vec![],
            None,
            malformed,
        ));
    }
    for after in HOSTILE.iter().map(|s| enc(s)).chain(
        [
            "",
            "1-",
            "-1",
            "-",
            "%2B%2B1-0",
            "%201-0",
            "1-2-3",
            "99999999999999999999-0",
            "0-0%0D%0AFLUSHALL",
            "%24",
            "%2B",
            "LATEST",
            // Past 19 digits per part, or signed: outside the documented pattern.
            "18446744073709551615-18446744073709551615",
            "18446744073709551615-0",
            "%2B1-%2B1",
        ]
        .map(str::to_owned),
    ) {
        out.push(w.admin(
            format!("events after {after:.40}"),
            "GET",
            format!("/admin/v1/events?after={after}&wait=0"),
            vec![],
            None,
            malformed,
        ));
    }
    // Positions past anything the feed can hold: the consumer is told to reset.
    for after in ["9999999999999999999-9999999999999999999", "1-1"] {
        out.push(w.admin(
            format!("events after {after}"),
            "GET",
            format!("/admin/v1/events?after={after}&wait=0"),
            vec![],
            None,
            Expect::Reset,
        ));
    }
    for query in [
        "",
        "?wait=0",
        "?after=latest&wait=-1",
        "?after=latest&wait=99999999999999999999",
        "?after=latest&max=abc",
        "?after=latest&max=-5",
        "?after=latest&after=0-0",
    ] {
        out.push(w.admin(
            format!("events with query {query:?}"),
            "GET",
            format!("/admin/v1/events{query}"),
            vec![],
            None,
            malformed,
        ));
    }
    out.push(w.public(
        "revoke all with include_current=maybe",
        "DELETE",
        "/v1/sessions?include_current=maybe",
        vec![w.attacker_cookie()],
        None,
        malformed,
    ));
    out
}

fn method_cases(w: &World) -> Vec<Case> {
    let mut out = Vec::new();
    let not_allowed = Expect::Error(405, "method_not_allowed");
    let handle_path = format!("/v1/sessions/{}", w.bystander_handle);
    for (method, path) in [
        ("PUT", "/v1/login"),
        ("DELETE", "/v1/login"),
        ("PATCH", "/v1/login"),
        ("GET", "/v1/login"),
        ("GET", "/v1/logout"),
        ("GET", "/v1/users"),
        ("PUT", "/v1/users"),
        ("GET", "/v1/password"),
        ("POST", "/v1/session"),
        ("DELETE", "/v1/session"),
        ("PUT", "/v1/sessions"),
        ("POST", handle_path.as_str()),
        ("TRACE", "/v1/session"),
        ("FLUSHALL", "/v1/session"),
        ("get", "/v1/session"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ] {
        out.push(w.public(
            format!("{method} {path}"),
            method,
            path,
            vec![w.attacker_cookie()],
            Some(b""),
            not_allowed,
        ));
    }
    let user = format!("/admin/v1/users/{}", w.attacker_id);
    for (method, path) in [
        ("GET", "/admin/v1/sessions/check".to_owned()),
        ("POST", "/admin/v1/events".to_owned()),
        ("DELETE", "/admin/v1/users".to_owned()),
        ("PATCH", user.clone()),
        ("DELETE", user.clone()),
        ("GET", format!("{user}/disable")),
        ("DELETE", format!("{user}/password")),
        ("POST", format!("{user}/sessions")),
        ("FLUSHALL", "/admin/v1/users".to_owned()),
    ] {
        out.push(w.admin(
            format!("{method} {path}"),
            method,
            &path,
            vec![],
            Some(b""),
            not_allowed,
        ));
    }
    for method in ["SESS:*", "GET{x}", "GE T"] {
        out.push(w.public(
            format!("method {method:?}"),
            method,
            "/v1/session",
            vec![],
            None,
            Expect::Layer(400),
        ));
    }
    out
}

/// Checks one answer against its expectation; returns what is wrong.
fn verdict(case: &Case, r: &RawResponse, secrets: &[&str]) -> Result<(), String> {
    if r.status >= 500 {
        return Err(format!("server error {}: {}", r.status, r.body_text()));
    }
    let text = r.body_text();
    for m in MARKERS.iter().chain(secrets) {
        if text.contains(m) {
            return Err(format!("the answer echoes {m:?}: {text}"));
        }
    }
    match case.expect {
        Expect::Layer(status) => {
            if r.status != status {
                return Err(format!(
                    "expected {status} from the HTTP layer, got {}: {text}",
                    r.status
                ));
            }
            if !r.body.is_empty() {
                return Err(format!("HTTP-layer refusal with a body: {text}"));
            }
            return Ok(());
        }
        Expect::Redirect(location) => {
            if r.status != 303 || r.header("location") != Some(location) {
                return Err(format!(
                    "expected 303 to {location}, got {} {:?}",
                    r.status,
                    r.header("location")
                ));
            }
            if r.header("set-cookie").is_some() {
                return Err("a refused form login set a cookie".into());
            }
        }
        Expect::Reset => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {text}"))?;
            let empty = v["events"].as_array().is_some_and(Vec::is_empty);
            if r.status != 200 || v["reset"] != true || !empty {
                return Err(format!("expected 200 reset, got {} {text}", r.status));
            }
        }
        Expect::Inactive => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {text}"))?;
            if r.status != 200 || v != json!({"active": false}) {
                return Err(format!("expected 200 inactive, got {} {text}", r.status));
            }
        }
        Expect::Error(status, code) => {
            if r.status != status {
                return Err(format!(
                    "expected {status} {code}, got {}: {text}",
                    r.status
                ));
            }
            if !r
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json"))
            {
                return Err(format!("not JSON: {:?}", r.header("content-type")));
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {text}"))?;
            let shape_ok = v.as_object().is_some_and(|o| {
                o.len() == 2 && o["error"].is_string() && o["message"].is_string()
            });
            if !shape_ok {
                return Err(format!("error body is not {{error, message}}: {text}"));
            }
            if v["error"] != code {
                return Err(format!("expected code {code}, got {text}"));
            }
        }
    }
    if r.header("cache-control") != Some("no-store") {
        return Err("no Cache-Control: no-store".into());
    }
    if case.fresh_request_id {
        let id = r.header("x-request-id").unwrap_or_default();
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("request id {id:?} is not a fresh one"));
        }
    }
    Ok(())
}

/// Whether a Redis key follows the documented key schema (`store/keys.rs`) for prefix `sess`.
fn follows_key_schema(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("sess:") else {
        return false;
    };
    let hex32 = |s: &str| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if rest == "events" {
        return true;
    }
    if let Some(name) = rest.strip_prefix("name:") {
        return session_server::domain::user::Username::parse(name)
            .is_ok_and(|u| u.as_str() == name);
    }
    if let Some(user) = rest.strip_prefix("rl:user:") {
        return hex32(user);
    }
    if let Some(ip) = rest.strip_prefix("rl:ip:") {
        return ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.to_string() == ip);
    }
    if let Some(tagged) = rest.strip_prefix('{')
        && let Some((uid, tail)) = tagged.split_once("}:")
        && hex32(uid)
    {
        return tail == "user" || tail == "sessions";
    }
    false
}

/// Keys that a refused request may add: the login-failure and per-address counters.
fn is_rate_counter(key: &str) -> bool {
    key.starts_with("sess:rl:user:") || key.starts_with("sess:rl:ip:")
}

async fn hostile_requests_get_documented_answers_and_harm_nobody(backend: Backend) {
    let w = world(backend).await;
    let mut cases = Vec::new();
    cases.extend(json_shape_cases(&w));
    cases.extend(field_value_cases(&w));
    cases.extend(token_cases(&w));
    cases.extend(forward_auth_cases(&w));
    cases.extend(cookie_header_cases(&w));
    cases.extend(header_cases(&w));
    cases.extend(body_framing_cases(&w));
    cases.extend(form_cases(&w));
    cases.extend(path_cases(&w));
    cases.extend(query_cases(&w));
    cases.extend(method_cases(&w));
    assert!(cases.len() > 300, "{} cases", cases.len());

    let secrets = [
        &w.attacker.token()[33..],
        &w.bystander.token()[33..],
        "mallory-password",
        "bystander-password",
        "long-enough",
        API_KEY,
    ];
    let redis = w.app.redis.clone();
    let mut keys: BTreeSet<String> = redis
        .as_ref()
        .map(|r| r.keys().into_iter().collect())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let host = w.host(case.listener).to_owned();
        match raw::send(&host, &case.bytes).await {
            Ok(r) => {
                if let Err(e) = verdict(case, &r, &secrets) {
                    failures.push(format!("{}: {e}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: no answer ({e})", case.name)),
        }
        // The bystander's session is intact after every single request.
        let r = w.app.whoami(&w.bystander).await;
        assert_eq!(
            r.status(),
            200,
            "bystander lost the session after {}",
            case.name
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["session"]["handle"],
            w.bystander_handle.as_str(),
            "after {}",
            case.name
        );
        if let Some(redis) = &redis {
            let now: BTreeSet<String> = redis.keys().into_iter().collect();
            let lost: Vec<_> = keys.difference(&now).collect();
            assert!(lost.is_empty(), "{}: keys disappeared: {lost:?}", case.name);
            let counts_attempt = matches!(
                case.expect,
                Expect::Error(401, "invalid_credentials") | Expect::Error(403, "wrong_password")
            );
            // Revoking an unknown handle still publishes the end to the feed (it may be the
            // retry of a revocation whose reply was lost), which creates the feed if it did
            // not exist yet.
            let publishes_end = matches!(case.expect, Expect::Error(404, "not_found"));
            for new in now.difference(&keys) {
                assert!(
                    (counts_attempt && is_rate_counter(new))
                        || (publishes_end && new.ends_with(":events")),
                    "{}: a refused request wrote {new:?}",
                    case.name
                );
            }
            keys = now;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(120));

    // The server is up on both listeners and answered no request with a 5xx.
    for base in [&w.app.public, &w.app.admin] {
        let r = w
            .app
            .client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = w
        .app
        .client
        .get(format!("{}/metrics", w.app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("session_http_requests_total") && l.contains("status=\"5")),
        "{metrics}"
    );
    // Neither party lost anything: the attacker's own session survived the refused logouts,
    // revocations and password changes; the bystander still has exactly one session and their
    // password still works.
    assert_eq!(w.app.whoami(&w.attacker).await.status(), 200);
    let r = w
        .app
        .public(Method::GET, "/v1/sessions")
        .header(header::COOKIE, &w.bystander.cookie)
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        w.app
            .login("bystander", "bystander-password")
            .await
            .status(),
        200
    );

    // Values are data, never commands: a password made of Redis syntax is stored and checked
    // like any other.
    let odd = "\r\nFLUSHALL\r\n{x}sess:*";
    assert_eq!(w.app.register("oddity", odd).await.status(), 201);
    let r = w.app.login("oddity", odd).await;
    assert_eq!(r.status(), 200);
    assert!(session_cookie(&r).is_some());

    if let Some(redis) = &redis {
        let keys = redis.keys();
        assert!(keys.len() >= 8, "{keys:?}");
        let off_schema: Vec<_> = keys.iter().filter(|k| !follows_key_schema(k)).collect();
        assert!(
            off_schema.is_empty(),
            "keys outside the schema: {off_schema:?}"
        );
        // A user's sessions hash names sessions by token digest only.
        for key in keys.iter().filter(|k| k.ends_with("}:sessions")) {
            let reply = redis.command(&["HKEYS", key]).unwrap();
            let fields: Vec<&str> = reply
                .split("\r\n")
                .skip(1)
                .filter(|l| !l.starts_with('$') && !l.is_empty())
                .collect();
            assert!(!fields.is_empty(), "{key}");
            for field in fields {
                assert!(
                    field.len() == 22
                        && field
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{key}: field {field:?}"
                );
            }
        }
    }
}
crate::memory_and_redis!(hostile_requests_get_documented_answers_and_harm_nobody);

#[test]
fn the_key_schema_check_rejects_hostile_keys() {
    let good = [
        "sess:events",
        "sess:name:alice@example.com",
        "sess:rl:user:0123456789abcdef0123456789abcdef",
        "sess:rl:ip:127.0.0.1",
        "sess:rl:ip:::1",
        "sess:{0123456789abcdef0123456789abcdef}:user",
        "sess:{0123456789abcdef0123456789abcdef}:sessions",
    ];
    for k in good {
        assert!(follows_key_schema(k), "{k}");
    }
    let bad = [
        "sess:*",
        "sess:{x}:user",
        "sess:name:{x}",
        "sess:name:\r\nFLUSHALL\r\n",
        "sess:name:ALICE",
        "sess:rl:ip:sess:*",
        "sess:{0123456789abcdef0123456789abcdef}:s:AAAAAAAAAAAAAAAAAAAAAA",
        "sess:{0123456789abcdef0123456789abcdef}:idx",
        "sess:{0123456789abcdef0123456789abcdef}:sessions:*",
        "other:events",
        "FLUSHALL",
    ];
    for k in bad {
        assert!(!follows_key_schema(k), "{k}");
    }
}
