//! A small server-rendered web app on session-server, through session-client.
//!
//! The browser only ever talks to this app's origin: `/v1/*` (login, logout) is forwarded to the
//! session service's public listener, so the session cookie is first-party. Pages that need a
//! signed-in user use session-client's actix extractor, which sends visitors without a live
//! session to `/login`. The devices page lists the user's sessions with a revoke button each and
//! a "log out everywhere" button.

use std::net::SocketAddr;

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::Server,
    http::{Method, StatusCode, header},
    web::{self, Bytes},
};
use serde::Deserialize;
use session_client::{
    SessionClient,
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
}

struct State {
    public_url: String,
    http: reqwest::Client,
}

/// Binds the app; returns the server (to await) and its port.
pub fn build(config: AppConfig) -> std::io::Result<(Server, u16)> {
    let checker = SessionClient::builder(&config.session_admin_url, &config.api_key)
        .cookie_name(&config.cookie_name)
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = web::Data::new(State {
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
            .app_data(state.clone())
            .app_data(checker.clone())
            .app_data(web::Data::new(LoginRedirect("/login".into())))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login_page))
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
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
             <style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}</style>\
             </head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        ))
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
    let return_to = query
        .return_to
        .as_deref()
        .filter(|t| t.starts_with('/') && !t.starts_with("//"))
        .unwrap_or("/");
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
             <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
            escape(return_to)
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
    user_agent: String,
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

async fn devices(
    Authenticated(_): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
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
    let rows: String = list
        .sessions
        .iter()
        .map(|d| {
            let this = if d.current == Some(true) { " (this device)" } else { "" };
            format!(
                "<tr class=\"device\" data-current=\"{current}\"><td>{ua}{this}</td><td>{ip}</td><td>{created}</td><td>{seen}</td>\
                 <td><form method=\"post\" action=\"/devices/{handle}/revoke\">\
                 <button type=\"submit\" class=\"revoke\" data-handle=\"{handle}\">Revoke</button></form></td></tr>",
                current = d.current == Some(true),
                ua = escape(&d.user_agent),
                ip = escape(d.ip.as_deref().unwrap_or("-")),
                created = escape(&d.created_at),
                seen = escape(&d.last_seen_at),
                handle = escape(&d.handle),
            )
        })
        .collect();
    page(
        "Your devices",
        &format!(
            "<table><tr><th>Device</th><th>IP</th><th>Signed in</th><th>Last seen</th><th></th></tr>{rows}</table>\
             <form method=\"post\" action=\"/devices/revoke-all\"><button type=\"submit\" id=\"logout-everywhere\">\
             Log out everywhere</button></form><p><a href=\"/\">Home</a></p>"
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

async fn revoke_one(
    Authenticated(_): Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
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
            see_other_passing_cookies("/devices", &r)
        }
        _ => unavailable(),
    }
}

async fn revoke_all(
    Authenticated(_): Authenticated,
    req: HttpRequest,
    state: web::Data<State>,
) -> HttpResponse {
    if !same_origin(&req) {
        return HttpResponse::Forbidden().body("cross-origin request refused");
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
    // The service throttles logins per client address; name the browser's, not ours.
    if let Some(peer) = req.peer_addr() {
        upstream = upstream.header("x-forwarded-for", peer.ip().to_string());
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
