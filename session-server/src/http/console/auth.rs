//! Signing in to the console, the console cookie, and the checks every console request passes.
//!
//! * Sign-in: a form POST of an admin API key, checked like the admin API checks its bearer
//!   keys. The key is never kept: the answer is a console session (see `domain::console`) in an
//!   HttpOnly, `SameSite=Strict` cookie, `__Host-` and `Secure` exactly when the service's own
//!   session cookie is (`SESSION_COOKIE_SECURE`).
//! * Every page and action: the cookie must name a live console session opened with a key that
//!   is still configured; otherwise 401 and the sign-in form.
//! * Every form POST: same-origin by `Origin` (as the public API's CSRF check, with no other
//!   origin allowed; `Origin: null` only with `Sec-Fetch-Site: same-origin`) and this session's
//!   synchronizer token in the `csrf` field.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};
use cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use serde::Deserialize;

use super::pages::{self, Header};
use crate::{
    domain::{
        console::{ConsoleSession, ConsoleToken, ip_text, key_id},
        events::Actor,
    },
    http::{
        csrf,
        error::ApiError,
        middleware::{admin_actor, as_admin, matching_key},
    },
    state::AppState,
};

/// An error, answered as a console page with the status `error.rs` gives it. Signed-out
/// requests get the sign-in form.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // Logs store failures and sets the headers it decides (e.g. `Retry-After`).
        let api = self.0.error_response();
        let page = match self.0 {
            ApiError::ConsoleSignInRequired => pages::sign_in(None),
            _ => pages::error(None, &self.0.message()),
        };
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in api.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.append_header((name.clone(), value.clone()));
            }
        }
        html(&mut response, page)
    }
}

/// Sends `page` as HTML.
pub fn html(response: &mut actix_web::HttpResponseBuilder, page: maud::Markup) -> HttpResponse {
    response
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// The console cookie's name: `__Host-console`, or `console` when the service runs in the
/// plain-HTTP development mode (browsers refuse `__Host-` cookies without `Secure`).
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.config.web.cookie.secure {
        "__Host-console"
    } else {
        "console"
    }
}

fn cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(cookie_name(state), value)
        .http_only(true)
        .secure(state.config.web.cookie.secure)
        .same_site(SameSite::Strict)
        .path("/")
        .finish()
}

/// The presented console token: exactly one well-formed cookie of the console's name.
fn presented(req: &HttpRequest, state: &AppState) -> Option<ConsoleToken> {
    let name = cookie_name(state);
    let mut found = None;
    for value in req.headers().get_all(header::COOKIE) {
        let text = value.to_str().ok()?;
        for (n, v) in text.split(';').filter_map(|pair| pair.split_once('=')) {
            if n.trim() == name {
                if found.is_some() {
                    // Two console cookies are ambiguous: neither counts.
                    return None;
                }
                found = Some(ConsoleToken::parse(v.trim())?);
            }
        }
    }
    found
}

/// A signed-in operator: the console session and who acts through it.
pub struct Operator {
    pub token: ConsoleToken,
    pub session: ConsoleSession,
    pub actor: Actor,
}

impl Operator {
    pub fn header(&self) -> Header<'_> {
        Header {
            session: &self.session,
        }
    }

    /// Runs the work of a console action inside the operator's audit span (see
    /// `middleware::as_admin`).
    pub async fn acting<T>(&self, work: impl Future<Output = T>) -> T {
        as_admin(Some(&self.actor), "console", work).await
    }
}

/// The operator behind the request's console cookie, or [`ApiError::ConsoleSignInRequired`].
pub async fn operator(req: &HttpRequest, state: &AppState) -> Result<Operator, PageError> {
    let token = presented(req, state).ok_or(ApiError::ConsoleSignInRequired)?;
    let digests = &state.config.web.admin_api_key_digests;
    let configured = |id: &str| digests.iter().any(|d| key_id(d) == id);
    let session = state
        .console
        .check(&token, configured)
        .await?
        .ok_or(ApiError::ConsoleSignInRequired)?;
    let actor = admin_actor(req, state, session.key_id.clone());
    Ok(Operator {
        token,
        session,
        actor,
    })
}

/// Whether a form POST comes from the console's own origin: the service's CSRF check with no
/// other origin allowed, except for `Origin: null`. Browsers send that on a form POST from a
/// page whose referrer policy is `no-referrer` (every console page's); the request's fetch
/// metadata, which pages cannot forge, must then say `same-origin`.
fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let headers = req.headers();
    if headers.get(header::ORIGIN).is_some_and(|o| o == "null") {
        return headers
            .get("sec-fetch-site")
            .is_some_and(|v| v == "same-origin");
    }
    csrf::permits(req, &[], state.config.web.cookie.secure)
}

/// Refuses a form POST from another origin or without this session's CSRF token.
pub fn check_form(
    req: &HttpRequest,
    state: &AppState,
    op: &Operator,
    csrf_field: &str,
) -> Result<(), PageError> {
    let same_origin = same_origin(req, state);
    if !same_origin || !op.session.csrf_matches(csrf_field) {
        tracing::warn!(target: "audit", event = "console_form_refused", admin_key = %op.session.key_id, client_ip = %ip_text(op.actor.client_ip), same_origin);
        return Err(ApiError::ConsoleFormRefused.into());
    }
    Ok(())
}

/// `GET /console/sign-in`: the form (or, signed in already, the console).
pub async fn sign_in_page(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if operator(&req, &state).await.is_ok() {
        return Ok(see_other("/console/"));
    }
    Ok(html(&mut HttpResponse::Ok(), pages::sign_in(None)))
}

#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

/// `POST /console/sign-in`: checks the key once and opens a console session.
pub async fn sign_in(
    req: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    // No session yet, so no synchronizer token: the origin check alone (login CSRF).
    if !same_origin(&req, &state) {
        return Err(ApiError::ConsoleFormRefused.into());
    }
    let key = form.into_inner().key;
    let Some(key_id) = matching_key(
        key.trim().as_bytes(),
        &state.config.web.admin_api_key_digests,
    ) else {
        let ip = crate::http::client_ip::client_ip(&req, &state.config.web.trusted_proxies);
        tracing::warn!(target: "audit", event = "console_sign_in_failed", client_ip = %ip_text(ip));
        return Ok(html(
            &mut HttpResponse::Unauthorized(),
            pages::sign_in(Some("That is not a valid admin API key.")),
        ));
    };
    let actor = admin_actor(&req, &state, key_id.clone());
    let (token, _) = state.console.sign_in(key_id, actor.client_ip).await?;
    let mut response = see_other_builder("/console/");
    let mut cookie = cookie(&state, token.expose());
    let secs = i64::try_from(state.console.ttl().as_secs().max(1)).unwrap_or(i64::MAX);
    cookie.set_max_age(CookieDuration::seconds(secs));
    response.cookie(cookie);
    Ok(response.finish())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// `POST /console/sign-out`: ends the console session and forgets the cookie.
pub async fn sign_out(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    check_form(&req, &state, &op, &form.csrf)?;
    state
        .console
        .sign_out(&op.token, &op.session, op.actor.client_ip)
        .await?;
    let mut gone = cookie(&state, String::new());
    gone.set_max_age(CookieDuration::ZERO);
    gone.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    let mut response = see_other_builder("/console/sign-in");
    response.cookie(gone);
    Ok(response.finish())
}

fn see_other_builder(to: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, to.to_owned()));
    response
}

/// A 303 to `to` (a path of the console).
pub fn see_other(to: &str) -> HttpResponse {
    see_other_builder(to).finish()
}
