//! Self-service account endpoints: `POST /v1/users` (registration) and `POST /v1/password`.

use actix_web::{
    HttpRequest, HttpResponse,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::error::Error,
    http::{
        body::parse_json,
        client_ip::client_ip,
        error::{ApiError, ErrorBody},
        extract::Authenticated,
        views::{Revoked, UserView},
    },
    state::AppState,
};

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(schema_with = crate::http::schema::username)]
    pub username: String,
    #[schema(schema_with = crate::http::schema::new_password)]
    pub password: String,
}

/// Registers a user (when `SESSION_REGISTRATION` is on). Does not sign in.
#[utoipa::path(
    post, path = "/v1/users", tag = "public", operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered (not signed in)", body = UserView, links(
            ("login" = (operation_id = "login", request_body = json!({"username": "$response.body#/username"}))),
        )),
        (status = 400, description = "`invalid_request`: the username or the password breaks its rule", body = ErrorBody),
        (status = 403, description = "`registration_closed`", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` from this client address", body = ErrorBody),
    )
)]
pub async fn register(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.web.registration {
        return Err(Error::RegistrationClosed.into());
    }
    let request: RegisterRequest = parse_json(&req, &body)?;
    let ip = client_ip(&req, &state.config.web.trusted_proxies);
    let user = state
        .accounts
        .register(&request.username, request.password, ip)
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(schema_with = crate::http::schema::presented_password)]
    pub current_password: String,
    #[schema(schema_with = crate::http::schema::new_password)]
    pub new_password: String,
}

/// Changes the signed-in user's password and ends all their other sessions. With
/// `SESSION_FRESH_AUTH_MAX_AGE` set, only from a session that proved the password within that
/// time (403 `reauthentication_required` otherwise).
#[utoipa::path(
    post, path = "/v1/password", tag = "public", operation_id = "change_password",
    request_body = ChangePasswordRequest,
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Changed; the other sessions are ended", body = Revoked),
        (status = 400, description = "`invalid_request`: the new password breaks its rule", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
        (status = 403, description = "`wrong_password`: the current password is wrong; `reauthentication_required`: \
            with `SESSION_FRESH_AUTH_MAX_AGE`, the session did not prove the password recently enough", body = ErrorBody),
        (status = 409, description = "`conflict`: the account changed concurrently; try again", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn change_password(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let request: ChangePasswordRequest = parse_json(&req, &body)?;
    state
        .sessions
        .require_fresh(&session, state.config.sessions.fresh_auth_max_age)?;
    let revoked = state
        .accounts
        .change_password(
            session.record.user_id,
            request.current_password,
            request.new_password,
            session.record.handle,
        )
        .await?;
    Ok(web::Json(Revoked { revoked }))
}
