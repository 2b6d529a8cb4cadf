//! `POST /v1/session/reauthenticate`: the signed-in user proves the password again ("sudo
//! mode"), so that apps may allow sensitive actions for a while.
//!
//! The password goes through exactly what a login's does: the client address's and the
//! username's throttling budgets (a wrong password here is a failed login), the same argon2
//! verification, and the same refusal when the credentials changed meanwhile. The public API's
//! cross-site checks apply, as to any state-changing request.

use actix_web::{
    HttpRequest, HttpResponse,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::error::Error,
    http::{
        body::{Encoding, parse_json_or_form},
        client_ip::client_ip,
        error::{ApiError, ErrorBody},
        extract::Authenticated,
        origin::is_safe_redirect,
        redirect::{see_other, with_query},
        views::WhoAmI,
    },
    state::AppState,
};

/// The password, as JSON or as an HTML form.
#[derive(Deserialize, ToSchema)]
pub struct ReauthenticateRequest {
    #[schema(schema_with = crate::http::schema::presented_password)]
    pub password: String,
    /// Forms only: where to go afterwards (a path, or a URL on an allowed origin).
    pub return_to: Option<String>,
}

/// Re-authenticate: records that the user of this session just proved the password
/// (`authenticated_at` in who-am-I, the admin check and forward auth).
#[utoipa::path(
    post, path = "/v1/session/reauthenticate", tag = "public", operation_id = "reauthenticate",
    request_body(
        description = "JSON, or an HTML form (application/x-www-form-urlencoded), which is answered with \
            redirects: 303 to `return_to`, or to the re-authentication page with `?error=<code>`.",
        content((ReauthenticateRequest = "application/json"), (ReauthenticateRequest = "application/x-www-form-urlencoded")),
    ),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Recorded; the session with its new `authenticated_at`", body = WhoAmI),
        (status = 303, description = "Form: to `return_to`, or to the re-authentication page with `?error=<code>`",
            headers(("Location" = String))),
        (status = 400, description = "`invalid_request`: the password is too long", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
        (status = 403, description = "`wrong_password`; `forbidden_redirect`: a form's `return_to` is neither a path \
            nor on an allowed origin", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn reauthenticate(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.web;
    let (request, encoding) = parse_json_or_form::<ReauthenticateRequest>(&req, &body)?;
    let return_to = match (encoding, request.return_to) {
        (Encoding::Form, Some(target)) if !is_safe_redirect(&target, &config.allowed_origins) => {
            return Err(ApiError::ForbiddenRedirect);
        }
        (Encoding::Form, target) => Some(target.unwrap_or_else(|| "/".to_owned())),
        (Encoding::Json, _) => None,
    };
    let ip = client_ip(&req, &config.trusted_proxies);
    let outcome = async {
        let verified = state
            .accounts
            .login(&session.record.username, request.password, ip)
            .await
            .map_err(|e| match e {
                // The user is known here: say plainly that the password was wrong.
                Error::InvalidCredentials => Error::WrongPassword,
                e => e,
            })?;
        let (recorded, ()) = futures_util::future::join(
            async {
                if verified.user.id != session.record.user_id {
                    return Err(Error::Unauthenticated);
                }
                state
                    .sessions
                    .reauthenticate(&session, &verified.user)
                    .await
            },
            state.accounts.release(&verified),
        )
        .await;
        recorded
    }
    .await;
    match (outcome, return_to) {
        (Ok(_), Some(target)) => Ok(see_other(&target).finish()),
        (Ok(renewed), None) => Ok(HttpResponse::Ok().json(WhoAmI::new(&renewed.record))),
        (Err(e), Some(target)) => {
            let e = ApiError::from(e);
            if !e.status_code_is_client_error() {
                return Err(e);
            }
            let page = with_query(
                &config.reauth_page,
                &[("error", e.code()), ("return_to", &target)],
            );
            Ok(see_other(&page).finish())
        }
        (Err(e), None) => Err(e.into()),
    }
}
