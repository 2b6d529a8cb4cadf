//! `POST /admin/v1/sessions/check`: what session-client calls to learn who a request is from.

use actix_web::{
    HttpRequest,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::{sessions::Via, token::SessionToken},
    http::{
        body::parse_json,
        cookie::{self, Presented},
        credentials,
        error::{ApiError, ErrorBody},
        views::{CheckResult, SessionView, UserView, raw_data},
    },
    state::AppState,
};

/// Exactly one of: the raw `Cookie` header of the request being checked (cookie sessions), its
/// raw `Authorization` header (bearer sessions), or the bare token (either kind: the caller
/// vouches for where it took it from).
#[derive(Deserialize, ToSchema)]
pub struct CheckRequest {
    pub token: Option<String>,
    pub cookie: Option<String>,
    pub authorization: Option<String>,
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
    let (presented, via) = match (request.token, request.cookie, request.authorization) {
        (Some(token), None, None) => (
            SessionToken::parse(&token).map_or(Presented::Unusable, Presented::Token),
            Via::Either,
        ),
        (None, Some(header), None) => (
            cookie::find_in_header(&header, &state.config.cookie.name),
            Via::Cookie,
        ),
        (None, None, Some(header)) => (credentials::bearer_token(header.as_bytes()), Via::Bearer),
        _ => {
            return Err(ApiError::Malformed(
                "give exactly one of `token`, `cookie` and `authorization`".into(),
            ));
        }
    };
    let session = match presented {
        Presented::Token(token) => state.sessions.check(&token, via).await?,
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
            data: Some(raw_data(&s.data)),
            data_version: Some(s.data.version),
        },
        None => CheckResult {
            active: false,
            user: None,
            session: None,
            data: None,
            data_version: None,
        },
    }))
}
