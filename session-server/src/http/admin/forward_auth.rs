//! Forward authentication: a reverse proxy asks, before passing a browser's request to an app,
//! whether it carries a live session.
//!
//! `GET /admin/v1/forward-auth` (API key) and `GET /forward-auth` on the optional forward-auth
//! listener (no key; for proxies that cannot add a header to their auth request) read the
//! session cookie from the forwarded `Cookie` header and check it exactly like
//! `POST /admin/v1/sessions/check` (renewing it). Answers:
//!
//! * 200 with the `X-Session-*` headers below, no body: the proxy copies them onto the request
//!   it passes to the app, after removing any the browser sent;
//! * 303 to the login page with `return_to` set to the original URL, for a page navigation
//!   whose URL the proxy named (see `forwarded.rs`): proxies that relay the auth answer as it
//!   is (Caddy, Traefik, Envoy) send the browser there;
//! * 401 otherwise. With `X-Forward-Auth-Redirect: false` (nginx, whose `auth_request` accepts
//!   only 2xx, 401 and 403) a navigation gets the 401 with that login URL in `Location`, for
//!   the proxy to redirect to itself;
//! * 503 when the store cannot be asked: never a 200, never a redirect to log in again.
//!
//! Any method is accepted, since some proxies send the original one; the original request is
//! not judged by the public API's CSRF rules: it is addressed to the app, which must protect
//! its own state-changing routes (see the book, docs/src/guides/forward-auth.md).

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::header, web};
use utoipa::IntoParams;

use crate::{
    domain::{clock::rfc3339, error::Error, sessions::Via},
    http::{
        cookie::{self, Presented},
        error::{ApiError, ErrorBody},
        forwarded::Original,
        schema,
    },
    state::AppState,
};

/// The signed-in user's name.
pub const USER: &str = "x-session-user";
/// The user's id (UUID).
pub const USER_ID: &str = "x-session-user-id";
/// The session's handle (UUID), as the devices list shows it.
pub const HANDLE: &str = "x-session-handle";
/// When the session ends unless renewed: the earlier of its idle and absolute deadlines
/// (RFC 3339, UTC).
pub const EXPIRES: &str = "x-session-expires";
/// When the session ends however active it is (RFC 3339, UTC).
pub const ABSOLUTE_EXPIRES: &str = "x-session-absolute-expires";

/// When the user last proved the password in this session (RFC 3339, UTC): at login or at the
/// latest re-authentication. Apps demand a recent one before sensitive actions.
pub const AUTHENTICATED_AT: &str = "x-session-authenticated-at";

/// The session's authenticator assurance level: `aal1` after a password, `aal2` once a second
/// factor was proved. Apps demand `aal2` before sensitive actions.
pub const AAL: &str = "x-session-aal";

/// Every header the service answers with; proxies drop all of `X-Session-*` from the browser.
pub const HEADERS: [&str; 7] = [
    USER,
    USER_ID,
    HANDLE,
    EXPIRES,
    ABSOLUTE_EXPIRES,
    AUTHENTICATED_AT,
    AAL,
];

/// Request header by which a proxy asks for 401 (with `Location`) instead of 303.
const REDIRECT: &str = "x-forward-auth-redirect";

/// The headers that describe the original request (see `forwarded.rs`), each with its rule.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: `forwarded::Original` reads the headers
pub struct ForwardedHeaders {
    /// The browser's Cookie header, as forwarded.
    #[param(rename = "Cookie")]
    cookie: Option<String>,
    #[param(rename = "X-Forwarded-Method", schema_with = schema::forwarded_method)]
    method: Option<String>,
    #[param(rename = "X-Original-URL", schema_with = schema::original_url)]
    original_url: Option<String>,
    #[param(rename = "X-Forwarded-Proto", schema_with = schema::forwarded_proto)]
    proto: Option<String>,
    #[param(rename = "X-Forwarded-Host", schema_with = schema::forwarded_host)]
    host: Option<String>,
    #[param(rename = "X-Forwarded-Uri", schema_with = schema::forwarded_uri)]
    uri: Option<String>,
    #[param(rename = "X-Forward-Auth-Redirect", schema_with = schema::forward_auth_redirect)]
    redirect: Option<String>,
}

/// Checks the session of a forwarded request (admin listener, API key).
#[utoipa::path(
    get, path = "/admin/v1/forward-auth", tag = "admin", operation_id = "forward_auth",
    description = "Forward authentication for reverse proxies (nginx auth_request, Caddy forward_auth, \
        Traefik forwardAuth, Envoy ext_authz). Reads the session cookie from the forwarded Cookie header \
        and checks it (renewing it). Any method is accepted (Envoy sends the original one, and may append \
        the original path: /admin/v1/forward-auth/{path}). The original request is described by \
        X-Forwarded-Method, X-Original-URL or X-Forwarded-Proto + X-Forwarded-Host + X-Forwarded-Uri; \
        these only decide the login redirect, which goes only to paths and allowed origins.",
    params(ForwardedHeaders),
    responses(
        (status = 200, description = "Active session; no body", headers(
            ("X-Session-User" = String, description = "Username"),
            ("X-Session-User-Id" = String, description = "User id (UUID)"),
            ("X-Session-Handle" = String, description = "Session handle (UUID)"),
            ("X-Session-Expires" = String, description = "RFC 3339: the earlier of the idle and absolute deadlines"),
            ("X-Session-Absolute-Expires" = String, description = "RFC 3339: the absolute deadline"),
            ("X-Session-Authenticated-At" = String, description = "RFC 3339: when the user last proved the password in this session"),
            ("X-Session-AAL" = String, description = "The session's assurance level: `aal1` (a password) or `aal2` (a second factor proved)"),
        )),
        (status = 303, description = "No session, page navigation with a known original URL: to the login page with return_to", headers(("Location" = String))),
        (status = 400, description = "Malformed forwarded headers", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no active session; with X-Forward-Auth-Redirect: false, Location names the login URL for navigations", body = ErrorBody,
            headers(("Location" = String, description = "The login URL, for navigations with X-Forward-Auth-Redirect: false"))),
    )
)]
pub async fn forward_auth(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    answer(&req, &state, None).await
}

/// Envoy's form: the original path appended to the auth path.
pub async fn forward_auth_with_path(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(&req, &state, Some(&path)).await
}

/// The same check on the forward-auth listener (`SESSION_FORWARD_AUTH_ADDR`), which needs no
/// API key: bind it to an address only the proxy reaches. That listener serves no document; its
/// answers are those of `GET /admin/v1/forward-auth`.
pub async fn forward_auth_listener(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    answer(&req, &state, None).await
}

async fn answer(
    req: &HttpRequest,
    state: &AppState,
    tail: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.web;
    let original = Original::from_request(req, tail)?;
    let relays_redirects = match req.headers().get(REDIRECT).map(|v| v.as_bytes()) {
        None | Some(b"" | b"true") => true,
        Some(b"false") => false,
        Some(_) => {
            return Err(ApiError::Malformed(
                "X-Forward-Auth-Redirect must be true or false".into(),
            ));
        }
    };
    let session = match cookie::presented(req, &config.cookie) {
        // A pending login (a second factor enrolled, not proved) is no session for an app.
        Presented::Token(token) => state
            .sessions
            .check(&token, Via::Cookie)
            .await?
            .filter(|s| state.sessions.accepts(&s.record)),
        Presented::Nothing | Presented::Unusable => None,
    };
    if let Some(s) = session {
        let r = &s.record;
        let expires = r.idle_expires_ms.min(r.absolute_expires_ms);
        return Ok(HttpResponse::Ok()
            .insert_header((USER, r.username.as_str()))
            .insert_header((USER_ID, r.user_id.to_string()))
            .insert_header((HANDLE, r.handle.to_string()))
            .insert_header((EXPIRES, rfc3339(expires)))
            .insert_header((ABSOLUTE_EXPIRES, rfc3339(r.absolute_expires_ms)))
            .insert_header((AUTHENTICATED_AT, rfc3339(r.authenticated_ms)))
            .insert_header((AAL, r.aal().as_str()))
            .finish());
    }
    let Some(login) = original.login_redirect(&config.login_page, &config.allowed_origins) else {
        return Err(Error::Unauthenticated.into());
    };
    if relays_redirects {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, login))
            .finish());
    }
    let location = header::HeaderValue::from_str(&login).map_err(|_| Error::Internal)?;
    let mut response = ApiError::from(Error::Unauthenticated).error_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}
