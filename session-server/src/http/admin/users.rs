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
        middleware::{acting_admin, as_admin},
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
    #[schema(schema_with = crate::http::schema::username)]
    pub username: String,
    #[schema(schema_with = crate::http::schema::new_password)]
    pub password: String,
}

/// Creates a user (works whether or not self-service registration is open).
#[utoipa::path(
    post, path = "/admin/v1/users", tag = "admin", operation_id = "create_user", request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = AdminUserView, links(
            ("get_user" = (operation_id = "get_user", parameters(("id" = "$response.body#/id")))),
            ("disable_user" = (operation_id = "disable_user", parameters(("id" = "$response.body#/id")))),
            ("enable_user" = (operation_id = "enable_user", parameters(("id" = "$response.body#/id")))),
            ("set_user_password" = (operation_id = "set_user_password", parameters(("id" = "$response.body#/id")))),
            ("list_user_sessions" = (operation_id = "list_user_sessions", parameters(("id" = "$response.body#/id")))),
            ("revoke_user_sessions" = (operation_id = "revoke_user_sessions", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "`invalid_request`: the username or the password breaks its rule", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request: CreateUserRequest = parse_json(&req, &body)?;
    let by = acting_admin(&req, &state);
    let user = as_admin(
        by.as_ref(),
        "api",
        state
            .accounts
            .register(&request.username, request.password, None),
    )
    .await?;
    Ok(HttpResponse::Created().json(AdminUserView::from(&user)))
}

#[derive(Deserialize, IntoParams)]
pub struct FindQuery {
    /// 1-64 characters of A-Z a-z 0-9 . _ - @ + (folded to lowercase); white space around them
    /// is trimmed. (`schema::username()`'s pattern: `schema_with` would drop `required`.)
    #[param(
        pattern = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._@+-]{1,64}[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "alice"
    )]
    pub username: String,
}

/// Looks a user up by username.
#[utoipa::path(
    get, path = "/admin/v1/users", tag = "admin", operation_id = "find_user", params(FindQuery),
    responses(
        (status = 200, description = "The user", body = AdminUserView, links(
            ("get_user" = (operation_id = "get_user", parameters(("id" = "$response.body#/id")))),
            ("disable_user" = (operation_id = "disable_user", parameters(("id" = "$response.body#/id")))),
            ("enable_user" = (operation_id = "enable_user", parameters(("id" = "$response.body#/id")))),
            ("set_user_password" = (operation_id = "set_user_password", parameters(("id" = "$response.body#/id")))),
            ("list_user_sessions" = (operation_id = "list_user_sessions", parameters(("id" = "$response.body#/id")))),
            ("revoke_user_sessions" = (operation_id = "revoke_user_sessions", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "`invalid_request`: the username breaks its rule", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    )
)]
pub async fn find_by_name(
    query: web::Query<FindQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<AdminUserView>, ApiError> {
    let user = state.accounts.find_by_name(&query.username).await?;
    Ok(web::Json(AdminUserView::from(&user)))
}

/// Looks a user up by id.
#[utoipa::path(
    get, path = "/admin/v1/users/{id}", tag = "admin", operation_id = "get_user",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = AdminUserView), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
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
    post, path = "/admin/v1/users/{id}/disable", tag = "admin", operation_id = "disable_user",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Disabled; all the user's sessions are ended", body = Revoked), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
)]
pub async fn disable(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let by = acting_admin(&req, &state);
    let id = uuid(&path, "user")?;
    let revoked = as_admin(
        by.as_ref(),
        "api",
        state.accounts.set_disabled(id, true, by.as_ref()),
    )
    .await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Resets a user's second factors: removes the TOTP factor and the recovery codes, and ends
/// every session of the user, atomically. For a user who lost their factors; audited with the
/// admin key's id and the client's address.
#[utoipa::path(
    delete, path = "/admin/v1/users/{id}/factors", tag = "admin", operation_id = "reset_factors",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Reset; all the user's sessions are ended", body = Revoked), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
)]
pub async fn reset_factors(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let by = acting_admin(&req, &state);
    let id = uuid(&path, "user")?;
    let revoked = as_admin(by.as_ref(), "api", state.mfa.reset(id, by.as_ref())).await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Re-enables a disabled user.
#[utoipa::path(
    post, path = "/admin/v1/users/{id}/enable", tag = "admin", operation_id = "enable_user",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Enabled"), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
)]
pub async fn enable(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting_admin(&req, &state);
    let id = uuid(&path, "user")?;
    as_admin(
        by.as_ref(),
        "api",
        state.accounts.set_disabled(id, false, by.as_ref()),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    #[schema(schema_with = crate::http::schema::new_password)]
    pub password: String,
}

/// Sets a user's password and ends all their sessions.
#[utoipa::path(
    put, path = "/admin/v1/users/{id}/password", tag = "admin", operation_id = "set_user_password",
    params(("id" = Uuid, Path, description = "User id")), request_body = SetPasswordRequest,
    responses(
        (status = 200, description = "Set; all the user's sessions are ended", body = Revoked),
        (status = 400, description = "`invalid_request`: the password breaks its rule", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    )
)]
pub async fn set_password(
    path: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let id = uuid(&path, "user")?;
    let request: SetPasswordRequest = parse_json(&req, &body)?;
    let by = acting_admin(&req, &state);
    let revoked = as_admin(
        by.as_ref(),
        "api",
        state
            .accounts
            .set_password(id, request.password, by.as_ref()),
    )
    .await?;
    Ok(web::Json(Revoked { revoked }))
}

/// A user's live sessions.
#[utoipa::path(
    get, path = "/admin/v1/users/{id}/sessions", tag = "admin", operation_id = "list_user_sessions",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user's live sessions", body = SessionList, links(
            ("revoke_user_session" = (operation_id = "revoke_user_session", parameters(
                ("id" = "$request.path.id"), ("handle" = "$response.body#/sessions/0/handle")))),
        )), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
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
    delete, path = "/admin/v1/users/{id}/sessions", tag = "admin", operation_id = "revoke_user_sessions",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Ended", body = Revoked), (status = 404, description = "`not_found`: no such user", body = ErrorBody))
)]
pub async fn revoke_sessions(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let by = acting_admin(&req, &state);
    let id = uuid(&path, "user")?;
    let revoked = as_admin(
        by.as_ref(),
        "api",
        state.sessions.revoke_all(id, None, by.as_ref()),
    )
    .await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Ends one session of a user by its handle.
#[utoipa::path(
    delete, path = "/admin/v1/users/{id}/sessions/{handle}", tag = "admin", operation_id = "revoke_user_session",
    params(("id" = Uuid, Path, description = "User id"), ("handle" = Uuid, Path, description = "Session handle")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "`not_found`: no such user, or no session of this user has that handle", body = ErrorBody),
    )
)]
pub async fn revoke_session(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, handle) = path.into_inner();
    let (user, handle) = (uuid(&user, "user")?, uuid(&handle, "session")?);
    let by = acting_admin(&req, &state);
    as_admin(
        by.as_ref(),
        "api",
        state.sessions.revoke_handle(user, handle, by.as_ref()),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
