//! `POST /admin/v1/sessions/check`: what session-client calls to learn who a request is from.

use actix_web::{
    HttpRequest, HttpResponse,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, OneOfBuilder, RefOr, Type, schema::Schema},
};

use crate::{
    domain::{sessions::Via, token::SessionToken},
    http::{
        body::parse_json,
        check_body,
        cookie::{self, Presented},
        credentials,
        error::{ApiError, ErrorBody},
        views::CheckResult,
    },
    state::AppState,
};

/// Exactly one of: the raw `Cookie` header of the request being checked (cookie sessions), its
/// raw `Authorization` header (bearer sessions), or the bare token (either kind: the caller
/// vouches for where it took it from).
#[derive(Deserialize)]
pub struct CheckRequest {
    pub token: Option<String>,
    pub cookie: Option<String>,
    pub authorization: Option<String>,
}

/// Exactly one of the fields (a `null` counts as absent): written by hand, since the struct
/// alone would let a client send several or none.
impl PartialSchema for CheckRequest {
    fn schema() -> RefOr<Schema> {
        const FIELDS: [(&str, &str, &str); 3] = [
            (
                "token",
                "TokenCheck",
                "The session token (a malformed one is simply not active).",
            ),
            (
                "cookie",
                "CookieCheck",
                "The raw `Cookie` header of the request being checked.",
            ),
            (
                "authorization",
                "AuthorizationCheck",
                "The raw `Authorization` header of the request being checked (bearer sessions).",
            ),
        ];
        let mut one_of = OneOfBuilder::new();
        for (field, title, description) in FIELDS {
            let mut branch = ObjectBuilder::new().title(Some(title)).property(
                field,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description)),
            );
            for (other, _, _) in FIELDS.iter().filter(|(f, _, _)| *f != field) {
                branch = branch.property(*other, ObjectBuilder::new().schema_type(Type::Null));
            }
            one_of = one_of.item(branch.required(field));
        }
        one_of
            .description(Some(
                "Exactly one of `token`, `cookie` and `authorization`.",
            ))
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
        (status = 200, description = "`active: true` with the user and session (its `aal` and `methods` among \
            them), or `active: false`, also for a pending login that has not proved its second factor", body = CheckResult, links(
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
) -> Result<HttpResponse, ApiError> {
    let request: CheckRequest = parse_json(&req, &body)?;
    let (presented, via) = match (request.token, request.cookie, request.authorization) {
        (Some(token), None, None) => (
            SessionToken::parse(&token).map_or(Presented::Unusable, Presented::Token),
            Via::Either,
        ),
        (None, Some(header), None) => (
            cookie::find_in_header(header.as_bytes(), &state.config.web.cookie.name),
            Via::Cookie,
        ),
        (None, None, Some(header)) => (credentials::bearer_token(header.as_bytes()), Via::Bearer),
        _ => {
            return Err(ApiError::Malformed(
                "give exactly one of `token`, `cookie` and `authorization`".into(),
            ));
        }
    };
    // A pending login (a second factor enrolled, not proved) is not signed in anywhere else.
    let session = match presented {
        Presented::Token(token) => state
            .sessions
            .check(&token, via)
            .await?
            .filter(|s| state.sessions.accepts(&s.record)),
        _ => None,
    };
    Ok(check_body::response(check_body::check(session.as_ref())))
}
