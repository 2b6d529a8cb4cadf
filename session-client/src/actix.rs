//! actix-web integration (feature `actix`).
//!
//! Register a [`SessionClient`] as `web::Data`, then either take [`Authenticated`] in a handler,
//! or guard a whole scope with [`require_session`] and read the [`Session`] from the request's
//! extensions. Unauthenticated requests answer 401 with a JSON body, or, when a [`LoginRedirect`]
//! is registered and the request accepts HTML, a 303 to the login page with `return_to`. When the
//! session service cannot be asked, they answer 503: never as if signed in.
//!
//! A request with an `Authorization: Bearer` header is checked by that header (bearer sessions);
//! any other by its cookies.
//!
//! Sensitive actions take [`RecentlyAuthenticated`] instead: it also demands that the user proved
//! the password within [`FreshAuth::max_age`], and otherwise answers 403
//! `reauthentication_required`, or, for HTML with a [`ReauthRedirect`] registered, a 303 to the
//! re-authentication page with `return_to`.
//!
//! Actions that need a second factor take [`Aal2`]: it demands a session at assurance level
//! `aal2` (a second factor proved in this session), and otherwise answers 403 `aal2_required`,
//! or, for HTML with a [`StepUpRedirect`] registered, a 303 to the second-factor page with
//! `return_to`. [`require_aal2`] guards a whole scope the same way.

use std::{future::Future, pin::Pin, time::Duration};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};

use crate::{Aal, Error, Session, SessionClient};

/// Where HTML requests without a session are sent, e.g. `LoginRedirect("/login".into())`.
/// `?return_to=<path>` is appended.
#[derive(Debug, Clone)]
pub struct LoginRedirect(pub String);

/// Where HTML requests whose session needs a fresh authentication are sent, e.g.
/// `ReauthRedirect("/reauthenticate".into())`. `?return_to=<path>` is appended.
#[derive(Debug, Clone)]
pub struct ReauthRedirect(pub String);

/// Where HTML requests whose session needs a second factor are sent, e.g.
/// `StepUpRedirect("/second-factor".into())`: a page whose form posts a code to the service's
/// `POST /v1/session/second-factor` with `return_to`. `?return_to=<path>` is appended.
#[derive(Debug, Clone)]
pub struct StepUpRedirect(pub String);

/// How recently the user must have proved the password for [`RecentlyAuthenticated`]; register
/// as `web::Data` (default: 5 minutes).
#[derive(Debug, Clone, Copy)]
pub struct FreshAuth {
    /// The longest time since the last authentication.
    pub max_age: Duration,
}

impl Default for FreshAuth {
    fn default() -> Self {
        FreshAuth {
            max_age: Duration::from_secs(5 * 60),
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No live session; `redirect` is the login URL for HTML requests.
    #[error("no valid session")]
    Unauthenticated {
        /// Login page with `return_to`, when the request wants HTML.
        redirect: Option<String>,
    },
    /// A live session, but the user did not prove the password recently enough; `redirect` is
    /// the re-authentication page for HTML requests.
    #[error("this action needs the password again")]
    ReauthenticationRequired {
        /// Re-authentication page with `return_to`, when the request wants HTML.
        redirect: Option<String>,
    },
    /// A live session at `aal1`, where `aal2` (a second factor proved in this session) is
    /// needed; `redirect` is the second-factor page for HTML requests.
    #[error("this action needs a second factor")]
    Aal2Required {
        /// Second-factor page with `return_to`, when the request wants HTML.
        redirect: Option<String>,
    },
    /// The session service could not be asked.
    #[error("the session service is unavailable")]
    Unavailable,
    /// The application did not register a `web::Data<SessionClient>`.
    #[error("session client not configured")]
    NotConfigured,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated { redirect: Some(_) }
            | AuthError::ReauthenticationRequired { redirect: Some(_) }
            | AuthError::Aal2Required { redirect: Some(_) } => StatusCode::SEE_OTHER,
            AuthError::Unauthenticated { redirect: None } => StatusCode::UNAUTHORIZED,
            AuthError::ReauthenticationRequired { redirect: None }
            | AuthError::Aal2Required { redirect: None } => StatusCode::FORBIDDEN,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AuthError::Unauthenticated { redirect: Some(to) }
        | AuthError::ReauthenticationRequired { redirect: Some(to) }
        | AuthError::Aal2Required { redirect: Some(to) } = self
        {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to.as_str()))
                .finish();
        }
        let code = match self {
            AuthError::Unauthenticated { .. } => "unauthenticated",
            AuthError::ReauthenticationRequired { .. } => "reauthentication_required",
            AuthError::Aal2Required { .. } => "aal2_required",
            AuthError::Unavailable => "session_service_unavailable",
            AuthError::NotConfigured => "internal_error",
        };
        HttpResponse::build(self.status_code())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"error": code, "message": self.to_string()}))
    }
}

fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn login_redirect(req: &HttpRequest) -> Option<String> {
    let page = req.app_data::<web::Data<LoginRedirect>>()?;
    redirect_to(&page.0, req)
}

fn reauth_redirect(req: &HttpRequest) -> Option<String> {
    let page = req.app_data::<web::Data<ReauthRedirect>>()?;
    redirect_to(&page.0, req)
}

fn step_up_redirect(req: &HttpRequest) -> Option<String> {
    let page = req.app_data::<web::Data<StepUpRedirect>>()?;
    redirect_to(&page.0, req)
}

/// `page?return_to=<this request's path and query>`, for requests that want HTML.
fn redirect_to(page: &str, req: &HttpRequest) -> Option<String> {
    if !wants_html(req) {
        return None;
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let encoded: String = target
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let sep = if page.contains('?') { '&' } else { '?' };
    Some(format!("{page}{sep}return_to={encoded}"))
}

/// Checks the request's `Authorization` header (bearer sessions) or else its cookies with the
/// registered client.
pub async fn session_of(req: &HttpRequest) -> Result<Session, AuthError> {
    let client = req
        .app_data::<web::Data<SessionClient>>()
        .ok_or(AuthError::NotConfigured)?
        .clone();
    let unauthenticated = || AuthError::Unauthenticated {
        redirect: login_redirect(req),
    };
    let answer = if let Some(authorization) = req.headers().get(header::AUTHORIZATION) {
        let Ok(value) = authorization.to_str() else {
            return Err(unauthenticated());
        };
        client.check_authorization(value).await
    } else {
        let cookies: Vec<&str> = req
            .headers()
            .get_all(header::COOKIE)
            .filter_map(|v| v.to_str().ok())
            .collect();
        if cookies.is_empty() {
            return Err(unauthenticated());
        }
        client.check(&cookies.join("; ")).await
    };
    match answer {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(unauthenticated()),
        // Never as if signed in.
        Err(Error::SessionGone) => Err(unauthenticated()),
        Err(_) => Err(AuthError::Unavailable),
    }
}

/// Extractor: the request's live session, or a 401 / 303 / 503 answer.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Session);

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(session) = req.extensions().get::<Session>() {
                return Ok(Authenticated(session.clone()));
            }
            session_of(&req).await.map(Authenticated)
        })
    }
}

/// Middleware for `actix_web::middleware::from_fn`: lets only requests with a live session into
/// the scope and puts their [`Session`] into the request extensions.
pub async fn require_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match session_of(req.request()).await {
        Ok(session) => {
            req.extensions_mut().insert(session);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Extractor for sensitive actions: a live session whose user proved the password within the
/// registered [`FreshAuth`] (default 5 minutes); otherwise 403 `reauthentication_required`, or a
/// 303 to the [`ReauthRedirect`] page for HTML. Without a session it answers as
/// [`Authenticated`].
#[derive(Debug, Clone)]
pub struct RecentlyAuthenticated(pub Session);

impl FromRequest for RecentlyAuthenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let authenticated = Authenticated::from_request(&req, payload);
        Box::pin(async move {
            let Authenticated(session) = authenticated.await?;
            let policy = req
                .app_data::<web::Data<FreshAuth>>()
                .map(|p| *p.get_ref())
                .unwrap_or_default();
            if session.authenticated_within(policy.max_age) {
                Ok(RecentlyAuthenticated(session))
            } else {
                Err(AuthError::ReauthenticationRequired {
                    redirect: reauth_redirect(&req),
                })
            }
        })
    }
}

/// The session if it is at `aal2`; otherwise a 403 `aal2_required`, or a 303 to the
/// [`StepUpRedirect`] page for HTML.
fn at_aal2(session: Session, req: &HttpRequest) -> Result<Session, AuthError> {
    if session.aal() >= Aal::Aal2 {
        Ok(session)
    } else {
        Err(AuthError::Aal2Required {
            redirect: step_up_redirect(req),
        })
    }
}

/// Extractor for actions that need a second factor: a live session at assurance level `aal2`
/// (the user proved a second factor in this session); otherwise 403 `aal2_required`, or a 303
/// to the [`StepUpRedirect`] page with `return_to` for HTML. Without a session it answers as
/// [`Authenticated`]. (Under the service's default `SESSION_REQUIRED_AAL=highest_available`, a
/// user with a factor enrolled has only `aal2` sessions; a user without one has only `aal1`
/// sessions and must enrol first. With `SESSION_REQUIRED_AAL=aal1`, this is the step-up.)
#[derive(Debug, Clone)]
pub struct Aal2(pub Session);

impl FromRequest for Aal2 {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let authenticated = Authenticated::from_request(&req, payload);
        Box::pin(async move {
            let Authenticated(session) = authenticated.await?;
            at_aal2(session, &req).map(Aal2)
        })
    }
}

/// Middleware for `actix_web::middleware::from_fn`: lets only requests with a live `aal2`
/// session into the scope (answering as [`Aal2`] otherwise) and puts their [`Session`] into
/// the request extensions.
pub async fn require_aal2(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Inside a scope that `require_session` guards, the session is checked already.
    let checked = req.extensions().get::<Session>().cloned();
    let session = match checked {
        Some(session) => Ok(session),
        None => session_of(req.request()).await,
    };
    match session.and_then(|session| at_aal2(session, req.request())) {
        Ok(session) => {
            req.extensions_mut().insert(session);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}
