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
    /// 1-64 characters of a-z 0-9 . _ - @ + (case-folded).
    pub username: String,
    /// 8-128 characters, any Unicode.
    pub password: String,
}

/// Registers a user (when `SESSION_REGISTRATION` is on). Does not sign in.
#[utoipa::path(
    post, path = "/v1/users", tag = "public",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn register(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.registration {
        return Err(Error::RegistrationClosed.into());
    }
    let request: RegisterRequest = parse_json(&req, &body)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let user = state
        .accounts
        .register(&request.username, request.password, ip)
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the signed-in user's password and ends all their other sessions. With
/// `SESSION_FRESH_AUTH_MAX_AGE` set, only from a session that proved the password within that
/// time (403 `reauthentication_required` otherwise).
#[utoipa::path(
    post, path = "/v1/password", tag = "public",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, body = Revoked), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
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
        .require_fresh(&session, state.config.fresh_auth_max_age)?;
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
