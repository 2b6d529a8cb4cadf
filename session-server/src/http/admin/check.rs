//! `POST /admin/v1/sessions/check`: what session-client calls to learn who a request is from.

use actix_web::{
    HttpRequest,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, OneOfBuilder, RefOr, Type, schema::Schema},
};

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
#[derive(Deserialize)]
pub struct CheckRequest {
    pub token: Option<String>,
    pub cookie: Option<String>,
}

/// Exactly one of the two fields (a `null` counts as absent): written by hand, since the struct
/// alone would let a client send both or neither.
impl PartialSchema for CheckRequest {
    fn schema() -> RefOr<Schema> {
        let one = |field: &str, other: &str, title: &str, description: &str| {
            ObjectBuilder::new()
                .title(Some(title))
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(description)),
                )
                .required(field)
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
        };
        OneOfBuilder::new()
            .item(one(
                "token",
                "cookie",
                "TokenCheck",
                "The session token (a malformed one is simply not active).",
            ))
            .item(one(
                "cookie",
                "token",
                "CookieCheck",
                "The raw `Cookie` header of the request being checked.",
            ))
            .description(Some("Exactly one of `token` and `cookie`."))
            .into()
    }
}

impl ToSchema for CheckRequest {}

/// Checks a session (renewing it like a browser request would). Answers 200 either way:
/// `active: false` for a missing, malformed, expired or revoked session.
#[utoipa::path(
    post, path = "/admin/v1/sessions/check", tag = "admin", operation_id = "check_session",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "`active: true` with the user and session, or `active: false`", body = CheckResult, links(
            ("get_user" = (operation_id = "get_user", parameters(("id" = "$response.body#/user/id")))),
            ("revoke_user_session" = (operation_id = "revoke_user_session", parameters(
                ("id" = "$response.body#/user/id"), ("handle" = "$response.body#/session/handle")))),
        )),
        (status = 400, description = "`malformed_request`: not exactly one of `token` and `cookie`", body = ErrorBody),
    )
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
