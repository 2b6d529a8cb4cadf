//! A small server-rendered web app on session-server, through session-client.
//!
//! The browser only ever talks to this app's origin: `/v1/*` (login, logout) is forwarded to the
//! session service's public listener, so the session cookie is first-party. Pages that need a
//! signed-in user use session-client's actix extractor, which sends visitors without a live
//! session to `/login`. The devices page lists the user's sessions in words ("Chrome 156 on
//! Linux, active 3 minutes ago") with a revoke button each and a "log out everywhere" button; a
//! revocation leaves a flash message in the session's app data. The login form has "remember
//! me"; with `fresh_auth_max_age` set, "log out everywhere" asks for the password again when the
//! last one is older than that.
//!
//! Second factors: the security page (`/security`) shows the user's factors and sets up an
//! authenticator app (TOTP: a QR code and the secret, then a first code, which the form posts to
//! the service); `/second-factor` is where a login that owes its second factor lands (the
//! service's `SESSION_SECOND_FACTOR_PAGE`), and where pages that need `aal2` send a session
//! without it; `/security/recovery-codes` generates new recovery codes and shows them once.
//!
//! Passkeys: the security page lists them and adds one, the second-factor page proves one, and
//! the login page signs in with one and no password. Those are WebAuthn ceremonies the browser
//! runs, so they are the app's one script (`/passkeys.js`): it calls the service's `/v1/*`
//! passkey endpoints on this origin with `fetch` and hands their options to
//! `navigator.credentials`.

pub mod telemetry;

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::Server,
    http::{Method, StatusCode, header},
    web::{self, Bytes},
};
use serde::Deserialize;
use session_client::{
    Aal, Session, SessionClient,
    actix::{Aal2, Authenticated, LoginRedirect, StepUpRedirect},
};

/// What the app needs to know.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub addr: SocketAddr,
    /// The session service's public listener (login, logout, devices).
    pub session_public_url: String,
    /// The session service's admin listener (session checks).
    pub session_admin_url: String,
    pub api_key: String,
    pub cookie_name: String,
    /// How recent the password must be for "log out everywhere" (`None`: no requirement).
    pub fresh_auth_max_age: Option<Duration>,
}

struct State {
    public_url: String,
    http: reqwest::Client,
    fresh_auth_max_age: Option<Duration>,
}

/// The stylesheet of every page.
const STYLESHEET: &str = include_str!("../static/app.css");

/// The passkey ceremonies, run by the browser (see the file's header).
const PASSKEYS_SCRIPT: &str = include_str!("../static/passkeys.js");

/// What a page that offers passkeys includes.
const PASSKEYS_SCRIPT_TAG: &str = "<script src=\"/passkeys.js\" defer></script>";

/// Where the devices page's flash message is kept in the session's app data.
const FLASH: &str = "flash";

/// Where a login that owes its second factor lands (the service's `SESSION_SECOND_FACTOR_PAGE`,
/// whose default this is), and where pages that need `aal2` send a session without it.
const SECOND_FACTOR_PAGE: &str = "/second-factor";

/// Binds the app; returns the server (to await) and its port.
pub fn build(config: AppConfig) -> std::io::Result<(Server, u16)> {
    let checker = SessionClient::builder(&config.session_admin_url, &config.api_key)
        .cookie_name(&config.cookie_name)
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = web::Data::new(State {
        fresh_auth_max_age: config.fresh_auth_max_age,
        public_url: config.session_public_url.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    });
    let checker = web::Data::new(checker);
    let listener = std::net::TcpListener::bind(config.addr)?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(tracing_actix_web::TracingLogger::default())
            .app_data(state.clone())
            .app_data(checker.clone())
            .app_data(web::Data::new(LoginRedirect("/login".into())))
            .app_data(web::Data::new(StepUpRedirect(SECOND_FACTOR_PAGE.into())))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login_page))
            .route("/reauthenticate", web::get().to(reauth_page))
            .route(SECOND_FACTOR_PAGE, web::get().to(second_factor_page))
            .route("/security", web::get().to(security))
            .route("/security/totp", web::post().to(begin_totp))
            .route(
                "/security/recovery-codes",
                web::get().to(recovery_codes_page),
            )
            .route(
                "/security/recovery-codes",
                web::post().to(regenerate_recovery_codes),
            )
            .route("/app.css", web::get().to(stylesheet))
            .route("/passkeys.js", web::get().to(passkeys_script))
            .route("/devices", web::get().to(devices))
            .route("/devices/revoke-all", web::post().to(revoke_all))
            .route("/devices/{handle}/revoke", web::post().to(revoke_one))
            .route("/v1/{tail:.*}", web::route().to(forward))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok((server, port))
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t} · Example</title><link rel=\"stylesheet\" href=\"/app.css\"></head><body>\
             <header class=\"bar\"><a href=\"/\">Example app</a>\
             <nav><a href=\"/devices\">Devices</a><a href=\"/security\">Security</a></nav></header>\
             <main><h1>{t}</h1>{body}</main></body></html>",
            t = escape(title)
        ))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

async fn passkeys_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(PASSKEYS_SCRIPT)
}

/// A path on this site (`/...`, not `//...`), or `/`.
fn local_path(target: Option<&str>) -> &str {
    target
        .filter(|t| t.starts_with('/') && !t.starts_with("//"))
        .unwrap_or("/")
}

/// How long ago, in words: "3 minutes ago".
fn ago(rfc3339: &str) -> String {
    let Ok(at) = humantime::parse_rfc3339(rfc3339) else {
        return String::new();
    };
    let elapsed = SystemTime::now().duration_since(at).unwrap_or_default();
    if elapsed < Duration::from_secs(60) {
        return "just now".to_owned();
    }
    let mut words = timeago::Formatter::new();
    words.num_items(1);
    words.convert(elapsed)
}

/// A redirect that hands on the cookies the session service set (e.g. the clearing cookie).
fn see_other_passing_cookies(location: &str, upstream: &reqwest::Response) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, location));
    for c in upstream.headers().get_all(reqwest::header::SET_COOKIE) {
        response.append_header((header::SET_COOKIE, c.as_bytes()));
    }
    response.finish()
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    error: Option<String>,
}

async fn login_page(query: web::Query<LoginQuery>) -> HttpResponse {
    let return_to = local_path(query.return_to.as_deref());
    let error = match query.error.as_deref() {
        Some("too_many_attempts") => "<p role=\"alert\">Too many attempts; try again later.</p>",
        Some(_) => "<p role=\"alert\">Wrong username or password.</p>",
        None => "",
    };
    page(
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"/v1/login\">\
             <label>Username <input name=\"username\" id=\"username\" autocomplete=\"username\"></label><br>\
             <label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\"></label><br>\
             <label class=\"check\"><input type=\"checkbox\" name=\"remember\" id=\"remember\"> Remember me on this device</label>\
             <input type=\"hidden\" name=\"return_to\" value=\"{to}\">\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
             <form data-passkey=\"sign-in\" data-return-to=\"{to}\">\
             <button type=\"submit\" class=\"secondary\" id=\"passkey-sign-in\">Sign in with a passkey</button></form>\
             {PASSKEYS_SCRIPT_TAG}",
            to = escape(return_to)
        ),
    )
}

/// Asks a signed-in user for the password again before a sensitive action; the form goes to
/// the session service (`/v1/session/reauthenticate`), which sends the browser back to
/// `return_to`, or here with `?error=`.
async fn reauth_page(
    Authenticated(session): Authenticated,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let return_to = local_path(query.return_to.as_deref());
    let error = match query.error.as_deref() {
        Some("too_many_attempts") => "<p role=\"alert\">Too many attempts; try again later.</p>",
        Some(_) => "<p role=\"alert\">That password is not right.</p>",
        None => "",
    };
    page(
        "Confirm it is you",
        &format!(
            "{error}<p class=\"muted\">Signed in as <b>{user}</b>. This action needs your password again.</p>\
             <form method=\"post\" action=\"/v1/session/reauthenticate\">\
             <label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
             <input type=\"hidden\" name=\"return_to\" value=\"{to}\">\
             <button type=\"submit\" id=\"confirm\">Confirm</button></form>",
            user = escape(&session.username),
            to = escape(return_to)
        ),
    )
}

async fn home(Authenticated(session): Authenticated) -> HttpResponse {
    page(
        "Welcome",
        &format!(
            "<p id=\"greeting\">Signed in as <b>{}</b>.</p>\
             <p><a href=\"/devices\" id=\"devices-link\">Your devices</a> · \
             <a href=\"/security\" id=\"security-link\">Security</a></p>\
             <form method=\"post\" action=\"/v1/logout\"><input type=\"hidden\" name=\"return_to\" value=\"/login\">\
             <button type=\"submit\" id=\"logout\">Log out</button></form>",
            escape(&session.username)
        ),
    )
}

#[derive(Deserialize)]
struct SessionList {
    sessions: Vec<DeviceView>,
}

#[derive(Deserialize)]
struct DeviceView {
    handle: String,
    created_at: String,
    last_seen_at: String,
    ip: Option<String>,
    device: Option<String>,
    user_agent: String,
    kind: String,
    remembered: bool,
    current: Option<bool>,
}

fn cookie_header(req: &HttpRequest) -> String {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A call to the session service's public API on behalf of the signed-in browser.
fn on_behalf(
    state: &State,
    req: &HttpRequest,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    state
        .http
        .request(method, format!("{}{path}", state.public_url))
        .header(reqwest::header::COOKIE, cookie_header(req))
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .body("The session service is unavailable; try again shortly.")
}

/// Takes the flash message out of the session's data: shown once. Clearing it is conditional on
/// the version the check read, so a message written meanwhile is not lost (it shows next time).
async fn take_flash(checker: &SessionClient, session: &Session) -> Option<String> {
    let text = session.data.get(FLASH)?.as_str()?.to_owned();
    let clear = serde_json::json!({ FLASH: null });
    if let Err(e) = checker
        .update_data(
            session.user_id,
            session.handle,
            &clear,
            Some(session.data_version),
        )
        .await
    {
        tracing::info!(error = %e, "flash message not cleared");
    }
    Some(text)
}

fn device_row(d: &DeviceView) -> String {
    let name = d.device.as_deref().unwrap_or(&d.user_agent);
    let mut badges = String::new();
    if d.current == Some(true) {
        badges.push_str("<span class=\"badge this\">This device</span>");
    }
    if d.remembered {
        badges.push_str("<span class=\"badge remembered\">Remembered</span>");
    }
    if d.kind == "bearer" {
        badges.push_str("<span class=\"badge\">App or CLI</span>");
    }
    format!(
        "<li class=\"device\" data-current=\"{current}\" data-handle=\"{handle}\">\
         <div><div class=\"name\">{name}{badges}</div>\
         <div class=\"meta\"><span class=\"last-active\">Active {seen}</span> · signed in {created} · {ip}</div></div>\
         <form method=\"post\" action=\"/devices/{handle}/revoke\">\
         <input type=\"hidden\" name=\"device\" value=\"{name}\">\
         <button type=\"submit\" class=\"revoke secondary\" data-handle=\"{handle}\">Sign out</button></form></li>",
        current = d.current == Some(true),
        name = escape(name),
        seen = escape(&ago(&d.last_seen_at)),
        created = escape(&ago(&d.created_at)),
        ip = escape(d.ip.as_deref().unwrap_or("unknown address")),
        handle = escape(&d.handle),
    )
}

async fn devices(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
    checker: web::Data<SessionClient>,
) -> HttpResponse {
    let list = match on_behalf(&state, &req, reqwest::Method::GET, "/v1/sessions")
        .send()
        .await
    {
        Ok(r) if r.status() == 401 => return see_other("/login?return_to=/devices"),
        Ok(r) if r.status().is_success() => r.json::<SessionList>().await.ok(),
        _ => None,
    };
    let Some(list) = list else {
        return unavailable();
    };
    let flash = take_flash(&checker, &session)
        .await
        .map(|text| format!("<p class=\"flash\" id=\"flash\">{}</p>", escape(&text)))
        .unwrap_or_default();
    let rows: String = list.sessions.iter().map(device_row).collect();
    page(
        "Your devices",
        &format!(
            "{flash}<p class=\"muted\">Where you are signed in. Sign out any device you do not recognise.</p>\
             <ul class=\"devices\">{rows}</ul>\
             <div class=\"actions\"><form method=\"post\" action=\"/devices/revoke-all\">\
             <button type=\"submit\" class=\"danger\" id=\"logout-everywhere\">Log out everywhere</button></form>\
             <a href=\"/\">Home</a></div>"
        ),
    )
}

/// The app's own forms change state too: accept them only from this origin.
fn same_origin(req: &HttpRequest) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        Some(origin) => host.is_some_and(|h| origin.split_once("://").map(|(_, a)| a) == Some(h)),
        None => req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin"),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    /// The device's name as the page showed it, for the flash message.
    device: Option<String>,
}

async fn revoke_one(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RevokeForm>,
    state: web::Data<State>,
    checker: web::Data<SessionClient>,
) -> HttpResponse {
    if !same_origin(&req) {
        return HttpResponse::Forbidden().body("cross-origin request refused");
    }
    let handle = match uuid::Uuid::try_parse(&path) {
        Ok(h) => h,
        Err(_) => return HttpResponse::NotFound().finish(),
    };
    match on_behalf(
        &state,
        &req,
        reqwest::Method::DELETE,
        &format!("/v1/sessions/{handle}"),
    )
    .send()
    .await
    {
        Ok(r) if r.status().is_success() || r.status() == 404 => {
            if r.status().is_success() && handle != session.handle {
                let device: String = form
                    .device
                    .as_deref()
                    .unwrap_or("the device")
                    .chars()
                    .take(80)
                    .collect();
                let flash = serde_json::json!({ FLASH: format!("Signed out {device}.") });
                // Without If-Match: the message lands whatever else the data holds.
                if let Err(e) = checker
                    .update_data(session.user_id, session.handle, &flash, None)
                    .await
                {
                    tracing::info!(error = %e, "flash message not kept");
                }
            }
            see_other_passing_cookies("/devices", &r)
        }
        _ => unavailable(),
    }
}

/// "Log out everywhere". With a maximum authentication age configured (here, or by the
/// service's `SESSION_FRESH_AUTH_MAX_AGE`), an older sign-in is first asked for the password.
async fn revoke_all(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
) -> HttpResponse {
    if !same_origin(&req) {
        return HttpResponse::Forbidden().body("cross-origin request refused");
    }
    let reauthenticate = "/reauthenticate?return_to=/devices";
    if state
        .fresh_auth_max_age
        .is_some_and(|max| !session.authenticated_within(max))
    {
        return see_other(reauthenticate);
    }
    match on_behalf(
        &state,
        &req,
        reqwest::Method::DELETE,
        "/v1/sessions?include_current=true",
    )
    .send()
    .await
    {
        Ok(r) if r.status().is_success() => see_other_passing_cookies("/login", &r),
        Ok(r) if r.status() == 403 => see_other(reauthenticate),
        _ => unavailable(),
    }
}

/// The user's second factors, as the session service lists them (`GET /v1/session/factors`).
#[derive(Deserialize)]
struct Factors {
    totp: Option<TotpFactor>,
    recovery_codes_left: usize,
    totp_enrollment_pending: bool,
    /// Oldest first.
    #[serde(default)]
    passkeys: Vec<PasskeyView>,
    /// What the second-factor step accepts: `totp`, `passkey`, `recovery_code`.
    methods: Vec<String>,
}

/// One of the user's passkeys, as the service lists it (never its key).
#[derive(Deserialize)]
struct PasskeyView {
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

#[derive(Deserialize)]
struct TotpFactor {
    enrolled_at: String,
}

/// A TOTP enrolment to show (`POST /v1/session/factors/totp`). No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct TotpEnrollment {
    secret: String,
    otpauth_uri: String,
    qr_svg: String,
}

/// New recovery codes (`POST /v1/session/factors/recovery-codes`). No `Debug`: it holds them.
#[derive(Deserialize)]
struct RecoveryCodes {
    codes: Vec<String>,
    revoked: usize,
}

/// The `error` code of an answer from the session service.
async fn error_code(answer: reqwest::Response) -> String {
    answer
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `page?return_to=<target>`.
fn with_return_to(page: &str, target: &str) -> String {
    let encoded: String = target
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{page}?return_to={encoded}")
}

/// The user's factors; the answer to send instead when they cannot be read (to the login page
/// without a session, or "unavailable").
async fn factors_of(
    state: &State,
    req: &HttpRequest,
    return_to: &str,
) -> Result<Factors, HttpResponse> {
    match on_behalf(state, req, reqwest::Method::GET, "/v1/session/factors")
        .send()
        .await
    {
        Ok(r) if r.status() == 401 => Err(see_other(&with_return_to("/login", return_to))),
        Ok(r) if r.status().is_success() => r.json::<Factors>().await.map_err(|_| unavailable()),
        _ => Err(unavailable()),
    }
}

/// What a refused code means, in words (`?error=` on the second-factor page).
fn code_error(error: Option<&str>) -> String {
    let text = match error {
        None => return String::new(),
        Some("wrong_code") => "That code is not right.",
        Some("code_reused") => "That code was used already; wait for the next one.",
        Some("invalid_request") => {
            "A code from the app is 6 digits; a recovery code is 16 characters."
        }
        Some("too_many_attempts") => "Too many attempts; try again later.",
        Some("enrollment_expired") => "The setup expired; start it again.",
        Some("factor_not_enrolled") => "That kind of code is not set up for your account.",
        Some("conflict") => "Your security settings changed meanwhile; try again.",
        Some(_) => "That did not work; try again.",
    };
    format!("<p role=\"alert\" id=\"code-error\">{text}</p>")
}

/// A method in words.
fn method_name(method: &str) -> &str {
    match method {
        "password" => "your password",
        "totp" => "an authenticator app",
        "recovery_code" => "a recovery code",
        "passkey" => "a passkey",
        other => other,
    }
}

/// Where a login that owes its second factor lands, and where a page that needs one sends a
/// session without it: a form for a code from the authenticator app and one for a recovery
/// code, both posted to the session service (`/v1/session/second-factor`), which sends the
/// browser on to `return_to`, or back here with `?error=`. It cannot take `Authenticated`: to
/// everything but this step, a pending login is no session yet.
///
/// A first code that did not confirm a TOTP enrolment comes back here too (the service has one
/// page for refused codes): then the form confirms the enrolment instead.
async fn second_factor_page(
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    state: web::Data<State>,
) -> HttpResponse {
    let return_to = local_path(query.return_to.as_deref());
    let factors = match factors_of(&state, &req, return_to).await {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let error = code_error(query.error.as_deref());
    let to = escape(return_to);
    let has = |method: &str| factors.methods.iter().any(|m| m == method);
    let mut forms = String::new();
    let mut script = "";
    if has("passkey") {
        forms.push_str(&format!(
            "<form data-passkey=\"second-factor\" data-return-to=\"{to}\">\
             <button type=\"submit\" id=\"use-passkey\">Use a passkey</button></form>"
        ));
        script = PASSKEYS_SCRIPT_TAG;
    }
    if has("totp") {
        forms.push_str(&format!(
            "<form method=\"post\" action=\"/v1/session/second-factor\">\
             <input type=\"hidden\" name=\"method\" value=\"totp\">\
             <label>Code from your authenticator app <input name=\"code\" id=\"code\" class=\"code\" \
             inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus></label>\
             <input type=\"hidden\" name=\"return_to\" value=\"{to}\">\
             <button type=\"submit\" id=\"verify\">Verify</button></form>"
        ));
    }
    if has("recovery_code") {
        forms.push_str(&format!(
            "<h2>Lost your phone?</h2>\
             <form method=\"post\" action=\"/v1/session/second-factor\">\
             <input type=\"hidden\" name=\"method\" value=\"recovery_code\">\
             <label>Recovery code <input name=\"code\" id=\"recovery-code\" class=\"code\" \
             autocomplete=\"off\" spellcheck=\"false\"></label>\
             <input type=\"hidden\" name=\"return_to\" value=\"{to}\">\
             <button type=\"submit\" class=\"secondary\" id=\"use-recovery-code\">Use recovery code</button></form>"
        ));
    }
    if forms.is_empty() && factors.totp_enrollment_pending {
        forms.push_str(&format!(
            "<p class=\"muted\">Enter the code your authenticator app shows now to finish setting it up.</p>\
             <form method=\"post\" action=\"/v1/session/factors/totp/confirm\">\
             <label>Code from your authenticator app <input name=\"code\" id=\"code\" class=\"code\" \
             inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus></label>\
             <input type=\"hidden\" name=\"return_to\" value=\"{to}\">\
             <button type=\"submit\" id=\"confirm-totp\">Turn on</button></form>"
        ));
    }
    if forms.is_empty() {
        forms.push_str(
            "<p class=\"muted\">Your account has no second factor yet. \
             <a href=\"/security\" id=\"security-link\">Set one up</a>.</p>",
        );
    }
    page(
        "Two-step verification",
        &format!(
            "{error}<p class=\"muted\">One more step: prove it is you with your second factor.</p>\
             {forms}\
             <form method=\"post\" action=\"/v1/logout\"><input type=\"hidden\" name=\"return_to\" value=\"/login\">\
             <button type=\"submit\" class=\"secondary\" id=\"cancel\">Cancel and log out</button></form>{script}"
        ),
    )
}

/// The security page: the user's second factors, and how this session was signed in.
async fn security(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
) -> HttpResponse {
    let factors = match factors_of(&state, &req, "/security").await {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let first = session.methods.first().map(|m| m.method.as_str());
    let signed_in = match session.second_factor() {
        // A passwordless sign-in: the passkey is the session's first method, and its only one.
        _ if first == Some("passkey") => "with a passkey, without a password".to_owned(),
        Some(second) if session.aal() == Aal::Aal2 => format!(
            "with your password and {}",
            escape(method_name(&second.method))
        ),
        _ => "with your password only".to_owned(),
    };
    let level = session.aal();
    let totp = match &factors.totp {
        Some(t) => format!(
            "<p><span class=\"status on\" id=\"totp-status\">On</span> · set up {}</p>",
            escape(&ago(&t.enrolled_at))
        ),
        None => "<p><span class=\"status\" id=\"totp-status\">Off</span></p>\
                 <p class=\"muted\">Codes from an app on your phone (Google Authenticator, Aegis, 1Password…) \
                 keep your account safe even if your password leaks.</p>\
                 <form method=\"post\" action=\"/security/totp\">\
                 <button type=\"submit\" id=\"setup-totp\">Set up an authenticator app</button></form>"
            .to_owned(),
    };
    let passkeys = passkeys_section(&factors.passkeys);
    let recovery = if factors.totp.is_some() || !factors.passkeys.is_empty() {
        format!(
            "<p><span id=\"recovery-left\">{left}</span> unused recovery codes. \
             <a href=\"/security/recovery-codes\" id=\"recovery-link\">Get new recovery codes</a></p>",
            left = factors.recovery_codes_left
        )
    } else {
        "<p class=\"muted\">Recovery codes come with an authenticator app or a passkey.</p>"
            .to_owned()
    };
    page(
        "Security",
        &format!(
            "<p class=\"muted\" id=\"signed-in-with\">This session signed in {signed_in} \
             (assurance level <b id=\"aal\">{level}</b>).</p>\
             <section class=\"factor\"><h2>Passkeys</h2>{passkeys}</section>\
             <section class=\"factor\"><h2>Authenticator app</h2>{totp}</section>\
             <section class=\"factor\"><h2>Recovery codes</h2>{recovery}</section>\
             <div class=\"actions\"><a href=\"/\">Home</a></div>{PASSKEYS_SCRIPT_TAG}"
        ),
    )
}

/// The security page's passkeys: each with when it was added and last used, and a form that
/// adds one (run by `/passkeys.js`: the browser makes the passkey).
fn passkeys_section(passkeys: &[PasskeyView]) -> String {
    let list = if passkeys.is_empty() {
        "<p class=\"muted\" id=\"no-passkeys\">No passkeys yet. A passkey signs you in with your \
         device's screen lock or security key, without a password, and counts as a second factor.</p>"
            .to_owned()
    } else {
        let rows: String = passkeys
            .iter()
            .map(|p| {
                let used = p
                    .last_used_at
                    .as_deref()
                    .map_or_else(|| "never used".to_owned(), |at| format!("used {}", ago(at)));
                format!(
                    "<li class=\"passkey\"><div><div class=\"name\">{name}</div>\
                     <div class=\"meta\"><span class=\"created\">added {created}</span> · \
                     <span class=\"last-used\">{used}</span></div></div></li>",
                    name = escape(&p.name),
                    created = escape(&ago(&p.created_at)),
                    used = escape(&used),
                )
            })
            .collect();
        format!("<ul class=\"devices passkeys\" id=\"passkeys\">{rows}</ul>")
    };
    format!(
        "{list}<form data-passkey=\"register\" id=\"add-passkey\">\
         <label>Name <input name=\"name\" id=\"passkey-name\" maxlength=\"64\" placeholder=\"Laptop\" \
         autocomplete=\"off\"></label>\
         <button type=\"submit\" id=\"add-passkey-button\">Add a passkey</button></form>"
    )
}

/// `data:` URI of an SVG: shown with `<img>`, so nothing in it runs as part of the page.
fn svg_data_uri(svg: &str) -> String {
    let mut uri = String::from("data:image/svg+xml,");
    for b in svg.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b'='
            | b':' => uri.push(b as char),
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri
}

/// Starts setting up an authenticator app: the service draws a secret, shown here as a QR code
/// and in base32; the form posts the app's first code to the service, which turns TOTP on and
/// sends the browser back to the security page.
async fn begin_totp(
    Authenticated(_): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
) -> HttpResponse {
    if !same_origin(&req) {
        return HttpResponse::Forbidden().body("cross-origin request refused");
    }
    let answer = match on_behalf(
        &state,
        &req,
        reqwest::Method::POST,
        "/v1/session/factors/totp",
    )
    .send()
    .await
    {
        Ok(r) => r,
        Err(_) => return unavailable(),
    };
    match answer.status().as_u16() {
        201 => {}
        401 => return see_other("/login?return_to=/security"),
        409 => return see_other("/security"),
        403 => {
            return match error_code(answer).await.as_str() {
                "second_factor_required" | "aal2_required" => {
                    see_other(&with_return_to(SECOND_FACTOR_PAGE, "/security"))
                }
                _ => page(
                    "Authenticator app",
                    "<p role=\"alert\">Authenticator apps cannot be set up on this service right now.</p>\
                     <div class=\"actions\"><a href=\"/security\">Back</a></div>",
                ),
            };
        }
        _ => return unavailable(),
    }
    let Ok(enrollment) = answer.json::<TotpEnrollment>().await else {
        return unavailable();
    };
    page(
        "Set up your authenticator app",
        &format!(
            "<p>Scan this code with your authenticator app, or enter the key by hand.</p>\
             <img class=\"qr\" id=\"totp-qr\" alt=\"QR code of the key\" src=\"{qr}\">\
             <p>Key: <code class=\"secret\" id=\"totp-secret\">{secret}</code></p>\
             <p class=\"muted\"><a href=\"{uri}\">Open in an authenticator app on this device</a></p>\
             <form method=\"post\" action=\"/v1/session/factors/totp/confirm\">\
             <label>The code the app shows now <input name=\"code\" id=\"code\" class=\"code\" \
             inputmode=\"numeric\" autocomplete=\"one-time-code\"></label>\
             <input type=\"hidden\" name=\"return_to\" value=\"/security\">\
             <button type=\"submit\" id=\"confirm-totp\">Turn on</button></form>",
            qr = escape(&svg_data_uri(&enrollment.qr_svg)),
            secret = escape(&enrollment.secret),
            uri = escape(&enrollment.otpauth_uri),
        ),
    )
}

/// New recovery codes, behind a button: generating them ends the previous set (and the user's
/// other sessions), so a visit alone does not. Needs a second factor proved in this session.
async fn recovery_codes_page(Aal2(_): Aal2) -> HttpResponse {
    page(
        "Recovery codes",
        "<p>Each recovery code signs you in once when you do not have your phone. Keep them \
         somewhere safe, away from your password.</p>\
         <p class=\"muted\">New codes replace the ones you have, and sign out your other devices.</p>\
         <form method=\"post\" action=\"/security/recovery-codes\">\
         <button type=\"submit\" id=\"generate-codes\">Generate new codes</button></form>\
         <div class=\"actions\"><a href=\"/security\">Back</a></div>",
    )
}

/// Generates new recovery codes and shows them, this once (the page is not stored).
async fn regenerate_recovery_codes(
    Aal2(_): Aal2,
    req: HttpRequest,
    state: web::Data<State>,
) -> HttpResponse {
    if !same_origin(&req) {
        return HttpResponse::Forbidden().body("cross-origin request refused");
    }
    let answer = match on_behalf(
        &state,
        &req,
        reqwest::Method::POST,
        "/v1/session/factors/recovery-codes",
    )
    .send()
    .await
    {
        Ok(r) => r,
        Err(_) => return unavailable(),
    };
    match answer.status().as_u16() {
        201 => {}
        401 => return see_other("/login?return_to=/security/recovery-codes"),
        // The second factor is not recent enough: prove it again, then come back.
        403 => {
            return see_other(&with_return_to(
                SECOND_FACTOR_PAGE,
                "/security/recovery-codes",
            ));
        }
        409 => return see_other("/security"),
        _ => return unavailable(),
    }
    let Ok(codes) = answer.json::<RecoveryCodes>().await else {
        return unavailable();
    };
    let items: String = codes
        .codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", escape(c)))
        .collect();
    let revoked = match codes.revoked {
        0 => String::new(),
        1 => "<p class=\"flash\">Your other device was signed out.</p>".to_owned(),
        n => format!("<p class=\"flash\">Your {n} other devices were signed out.</p>"),
    };
    page(
        "Your new recovery codes",
        &format!(
            "{revoked}<p>Write these down or store them in a password manager: this page shows them \
             once. Each works once; your previous codes no longer work.</p>\
             <ol class=\"codes\" id=\"recovery-codes\">{items}</ol>\
             <div class=\"actions\"><a href=\"/security\" id=\"done\">Done</a></div>"
        ),
    )
}

/// Forwards `/v1/*` to the session service, so the browser sees one origin.
async fn forward(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut upstream = state
        .http
        .request(method, format!("{}{path_and_query}", state.public_url))
        .body(body);
    for name in [
        header::COOKIE,
        header::CONTENT_TYPE,
        header::ORIGIN,
        header::REFERER,
        header::USER_AGENT,
        header::ACCEPT,
    ] {
        for value in req.headers().get_all(&name) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(site) = req.headers().get("sec-fetch-site") {
        upstream = upstream.header("sec-fetch-site", site.as_bytes());
    }
    // The service throttles logins per client address; name the browser's, not ours. Appended to
    // any X-Forwarded-For the request came with (a TLS edge in front of the app), as a proxy
    // does: the service believes the chain only as far as its trusted proxies, so a browser
    // that forges the header still gets its own address counted.
    if let Some(peer) = req.peer_addr() {
        let mut chain: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        let peer = peer.ip().to_string();
        chain.push(&peer);
        upstream = upstream.header("x-forwarded-for", chain.join(", "));
    }
    let Ok(answer) = upstream.send().await else {
        return unavailable();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for name in [
        "set-cookie",
        "location",
        "content-type",
        "cache-control",
        "retry-after",
    ] {
        for value in answer.headers().get_all(name) {
            response.append_header((name, value.as_bytes()));
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if req.method() == Method::HEAD {
        return response.finish();
    }
    response.body(bytes)
}
