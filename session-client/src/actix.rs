//! actix-web integration (feature `actix`).
//!
//! Register a [`SessionClient`] as `web::Data`, then either take [`Authenticated`] in a handler,
//! or guard a whole scope with [`require_session`] and read the [`Session`] from the request's
//! extensions. Unauthenticated requests answer 401 with a JSON body, or, when a [`LoginRedirect`]
//! is registered and the request accepts HTML, a 303 to the login page with `return_to`. When the
//! session service cannot be asked, they answer 503: never as if signed in.

use std::{future::Future, pin::Pin};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};

use crate::{Error, Session, SessionClient};

/// Where HTML requests without a session are sent, e.g. `LoginRedirect("/login".into())`.
/// `?return_to=<path>` is appended.
#[derive(Debug, Clone)]
pub struct LoginRedirect(pub String);

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No live session; `redirect` is the login URL for HTML requests.
    #[error("no valid session")]
    Unauthenticated {
        /// Login page with `return_to`, when the request wants HTML.
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
            AuthError::Unauthenticated { redirect: Some(_) } => StatusCode::SEE_OTHER,
            AuthError::Unauthenticated { redirect: None } => StatusCode::UNAUTHORIZED,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AuthError::Unauthenticated { redirect: Some(to) } = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to.as_str()))
                .finish();
        }
        let code = match self {
            AuthError::Unauthenticated { .. } => "unauthenticated",
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
    let sep = if page.0.contains('?') { '&' } else { '?' };
    Some(format!("{}{sep}return_to={encoded}", page.0))
}

/// Checks the request's cookies with the registered client.
pub async fn session_of(req: &HttpRequest) -> Result<Session, AuthError> {
    let client = req
        .app_data::<web::Data<SessionClient>>()
        .ok_or(AuthError::NotConfigured)?
        .clone();
    let cookies: Vec<&str> = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .collect();
    let unauthenticated = || AuthError::Unauthenticated {
        redirect: login_redirect(req),
    };
    if cookies.is_empty() {
        return Err(unauthenticated());
    }
    match client.check(&cookies.join("; ")).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(unauthenticated()),
        Err(
            Error::Unavailable(_) | Error::Protocol(_) | Error::Unauthorized | Error::Config(_),
        ) => Err(AuthError::Unavailable),
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
