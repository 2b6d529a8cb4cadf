//! `POST /admin/v1/sessions/check`: what session-client calls to learn who a request is from.

use actix_web::{
    HttpRequest,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::token::SessionToken,
    http::{
        body::parse_json,
        cookie::{self, Presented},
        error::{ApiError, ErrorBody},
        views::{CheckResult, SessionView, UserView},
    },
    state::AppState,
};

/// Either the token itself or the raw `Cookie` header of the request being checked.
#[derive(Deserialize, ToSchema)]
pub struct CheckRequest {
    pub token: Option<String>,
    pub cookie: Option<String>,
}

/// Checks a session (renewing it like a browser request would). Answers 200 either way:
/// `active: false` for a missing, malformed, expired or revoked session.
#[utoipa::path(
    post, path = "/admin/v1/sessions/check", tag = "admin",
    request_body = CheckRequest,
    security(("api_key" = [])),
    responses((status = 200, body = CheckResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody))
)]
pub async fn check(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<CheckResult>, ApiError> {
    let request: CheckRequest = parse_json(&req, &body)?;
    let presented = match (request.token, request.cookie) {
        (Some(token), None) => {
            SessionToken::parse(&token).map_or(Presented::Unusable, Presented::Token)
        }
        (None, Some(header)) => cookie::find_in_header(&header, &state.config.cookie.name),
        _ => {
            return Err(ApiError::Malformed(
                "give exactly one of `token` and `cookie`".into(),
            ));
        }
    };
    let session = match presented {
        Presented::Token(token) => state.sessions.check(&token).await?,
        _ => None,
    };
    Ok(web::Json(match session {
        Some(s) => CheckResult {
            active: true,
            user: Some(UserView {
                id: s.record.user_id,
                username: s.record.username.clone(),
            }),
            session: Some(SessionView::new(&s.record, None)),
        },
        None => CheckResult {
            active: false,
            user: None,
            session: None,
        },
    }))
}
