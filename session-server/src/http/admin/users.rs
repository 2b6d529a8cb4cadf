//! User and session administration under `/admin/v1/users`.

use actix_web::{
    HttpRequest, HttpResponse,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::error::Error,
    http::{
        body::parse_json,
        error::{ApiError, ErrorBody},
        views::{AdminUserView, Revoked, SessionList, SessionView},
    },
    state::AppState,
};

/// Path ids that are not UUIDs name nothing: 404.
pub(super) fn uuid(text: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| Error::NotFound(what).into())
}

#[derive(Deserialize, ToSchema)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
}

/// Creates a user (works whether or not self-service registration is open).
#[utoipa::path(
    post, path = "/admin/v1/users", tag = "admin", request_body = CreateUserRequest,
    security(("api_key" = [])),
    responses((status = 201, body = AdminUserView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn create(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request: CreateUserRequest = parse_json(&req, &body)?;
    let user = state
        .accounts
        .register(&request.username, request.password, None)
        .await?;
    Ok(HttpResponse::Created().json(AdminUserView::from(&user)))
}

#[derive(Deserialize, IntoParams)]
pub struct FindQuery {
    pub username: String,
}

/// Looks a user up by username.
#[utoipa::path(
    get, path = "/admin/v1/users", tag = "admin", params(FindQuery),
    security(("api_key" = [])),
    responses((status = 200, body = AdminUserView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn find_by_name(
    query: web::Query<FindQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<AdminUserView>, ApiError> {
    let user = state.accounts.find_by_name(&query.username).await?;
    Ok(web::Json(AdminUserView::from(&user)))
}

#[utoipa::path(
    get, path = "/admin/v1/users/{id}", tag = "admin",
    params(("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 200, body = AdminUserView), (status = 404, body = ErrorBody))
)]
pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<AdminUserView>, ApiError> {
    let user = state.accounts.find(uuid(&path, "user")?).await?;
    Ok(web::Json(AdminUserView::from(&user)))
}

/// Disables a user and ends all their sessions, atomically.
#[utoipa::path(
    post, path = "/admin/v1/users/{id}/disable", tag = "admin",
    params(("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody))
)]
pub async fn disable(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let revoked = state
        .accounts
        .set_disabled(uuid(&path, "user")?, true)
        .await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Re-enables a disabled user.
#[utoipa::path(
    post, path = "/admin/v1/users/{id}/enable", tag = "admin",
    params(("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 204, description = "Enabled"), (status = 404, body = ErrorBody))
)]
pub async fn enable(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .set_disabled(uuid(&path, "user")?, false)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    pub password: String,
}

/// Sets a user's password and ends all their sessions.
#[utoipa::path(
    put, path = "/admin/v1/users/{id}/password", tag = "admin",
    params(("id" = Uuid, Path)), request_body = SetPasswordRequest, security(("api_key" = [])),
    responses((status = 200, body = Revoked), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn set_password(
    path: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let id = uuid(&path, "user")?;
    let request: SetPasswordRequest = parse_json(&req, &body)?;
    let revoked = state.accounts.set_password(id, request.password).await?;
    Ok(web::Json(Revoked { revoked }))
}

/// A user's live sessions.
#[utoipa::path(
    get, path = "/admin/v1/users/{id}/sessions", tag = "admin",
    params(("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 200, body = SessionList), (status = 404, body = ErrorBody))
)]
pub async fn sessions(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<SessionList>, ApiError> {
    let records = state.sessions.list(uuid(&path, "user")?).await?;
    Ok(web::Json(SessionList {
        sessions: records
            .iter()
            .map(|r| SessionView::listed(r, None))
            .collect(),
    }))
}

/// Ends all of a user's sessions.
#[utoipa::path(
    delete, path = "/admin/v1/users/{id}/sessions", tag = "admin",
    params(("id" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody))
)]
pub async fn revoke_sessions(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let revoked = state
        .sessions
        .revoke_all(uuid(&path, "user")?, None)
        .await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Ends one session of a user by its handle.
#[utoipa::path(
    delete, path = "/admin/v1/users/{id}/sessions/{handle}", tag = "admin",
    params(("id" = Uuid, Path), ("handle" = Uuid, Path)), security(("api_key" = [])),
    responses((status = 204, description = "Ended"), (status = 404, body = ErrorBody))
)]
pub async fn revoke_session(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, handle) = path.into_inner();
    state
        .sessions
        .revoke_handle(uuid(&user, "user")?, uuid(&handle, "session")?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
