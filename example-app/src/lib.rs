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
    Session, SessionClient,
    actix::{Authenticated, LoginRedirect},
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

/// Where the devices page's flash message is kept in the session's app data.
const FLASH: &str = "flash";

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
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login_page))
            .route("/reauthenticate", web::get().to(reauth_page))
            .route("/app.css", web::get().to(stylesheet))
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
             <header class=\"bar\"><a href=\"/\">Example app</a><a href=\"/devices\">Devices</a></header>\
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
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
            escape(return_to)
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
             <p><a href=\"/devices\" id=\"devices-link\">Your devices</a></p>\
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
