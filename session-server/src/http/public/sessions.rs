//! Who am I, and the signed-in user's devices: `GET /v1/session`, `GET|DELETE /v1/sessions`,
//! `DELETE /v1/sessions/{handle}`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::{
    domain::error::Error,
    http::{
        check_body, cookie,
        error::{ApiError, ErrorBody},
        extract::Authenticated,
        views::{Revoked, SessionList, SessionView, WhoAmI},
    },
    state::AppState,
};

/// Who am I: the signed-in user and the current session.
#[utoipa::path(
    get, path = "/v1/session", tag = "public", operation_id = "whoami",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The signed-in user and the current session", body = WhoAmI),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
    )
)]
pub async fn whoami(Authenticated(session): Authenticated) -> HttpResponse {
    check_body::response(check_body::whoami(&session.record))
}

/// The signed-in user's live sessions (devices), the current one marked.
#[utoipa::path(
    get, path = "/v1/sessions", tag = "public", operation_id = "list_sessions",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The live sessions, `current: true` on this one", body = SessionList, links(
            ("revoke_session" = (operation_id = "revoke_session", parameters(("handle" = "$response.body#/sessions/0/handle")))),
        )),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
    )
)]
pub async fn list(
    Authenticated(session): Authenticated,
    state: web::Data<AppState>,
) -> Result<web::Json<SessionList>, ApiError> {
    let records = state.sessions.list(session.record.user_id).await?;
    Ok(web::Json(SessionList {
        sessions: records
            .iter()
            .map(|r| SessionView::listed(r, Some(session.record.handle)))
            .collect(),
    }))
}

/// Ends one of the signed-in user's sessions. Another user's handle is a 404, as is an unknown one.
#[utoipa::path(
    delete, path = "/v1/sessions/{handle}", tag = "public", operation_id = "revoke_session",
    params(("handle" = Uuid, Path, description = "Session handle")),
    security(("session_cookie" = [])),
    responses(
        (status = 204, description = "Ended (the cookie is cleared when it was the current session)"),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
        (status = 404, description = "`not_found`: no session of this user has that handle", body = ErrorBody),
    )
)]
pub async fn revoke_one(
    Authenticated(session): Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let handle = Uuid::try_parse(&path).map_err(|_| Error::NotFound("session"))?;
    state
        .sessions
        .revoke_handle(session.record.user_id, handle, None)
        .await?;
    let mut response = HttpResponse::NoContent();
    if handle == session.record.handle {
        response.cookie(cookie::clear(&state.config.web.cookie));
    }
    Ok(response.finish())
}

#[derive(Deserialize, IntoParams)]
pub struct RevokeAllQuery {
    /// Also end the session making the request ("log out everywhere"): `true` or `false`.
    #[serde(default)]
    pub include_current: bool,
}

/// Ends all of the signed-in user's other sessions (and this one with `include_current=true`).
/// With `SESSION_FRESH_AUTH_MAX_AGE` set, only from a session that proved the password within
/// that time (403 `reauthentication_required` otherwise).
#[utoipa::path(
    delete, path = "/v1/sessions", tag = "public", operation_id = "revoke_sessions",
    params(RevokeAllQuery),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "How many sessions were ended", body = Revoked),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
        (status = 403, description = "`reauthentication_required`: with `SESSION_FRESH_AUTH_MAX_AGE`, the session did not \
            prove the password recently enough", body = ErrorBody),
    )
)]
pub async fn revoke_all(
    Authenticated(session): Authenticated,
    query: web::Query<RevokeAllQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .require_fresh(&session, state.config.sessions.fresh_auth_max_age)?;
    let keep = (!query.include_current).then_some(session.record.handle);
    let revoked = state
        .sessions
        .revoke_all(session.record.user_id, keep, None)
        .await?;
    let mut response = HttpResponse::Ok();
    if query.include_current {
        response.cookie(cookie::clear(&state.config.web.cookie));
    }
    Ok(response.json(Revoked { revoked }))
}
