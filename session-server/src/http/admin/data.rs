//! A session's app data, for the app that owns the session: `GET` and `PATCH`
//! `/admin/v1/users/{id}/sessions/{handle}/data`.
//!
//! Apps read the data with every check (`POST /admin/v1/sessions/check`) and write it here, as
//! a JSON merge patch (RFC 7396) with optimistic concurrency: every read returns the version
//! (also as a strong `ETag`), and `If-Match: "<version>"` makes the write conditional (412
//! `version_mismatch` when another write came first). The browser never writes session data:
//! the public API has no route for it.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header,
    web::{self, Bytes},
};

use super::users::uuid;
use crate::{
    domain::{error::Error, session_data::SessionData},
    http::{
        error::{ApiError, ErrorBody},
        views::SessionDataView,
    },
    state::AppState,
};

fn with_etag(data: &SessionData) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", data.version)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SessionDataView::new(data))
}

/// `If-Match`: `None` when absent, empty or `*` (any current version); a quoted version
/// otherwise.
fn if_match(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    // An empty value names no version: as if the header were absent.
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        // Digits only, as the document's pattern says (no sign; 19 digits always fit).
        .filter(|v| (1..=19).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::Malformed("If-Match must be a version as an ETag gives it: \"<n>\"".into())
        })
}

/// The app data of a live session.
#[utoipa::path(
    get, path = "/admin/v1/users/{id}/sessions/{handle}/data", tag = "admin", operation_id = "get_session_data",
    params(("id" = Uuid, Path, description = "User id"), ("handle" = Uuid, Path, description = "Session handle")),
    responses(
        (status = 200, description = "The data and its version", body = SessionDataView,
            headers(("ETag" = String, description = "The version, quoted")),
            links(("patch_session_data" = (operation_id = "patch_session_data",
                parameters(("id" = "$request.path.id"), ("handle" = "$request.path.handle")))))),
        (status = 404, description = "`not_found`: no such user, or no live session of this user has that handle", body = ErrorBody),
    )
)]
pub async fn get_data(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, handle) = path.into_inner();
    let data = state
        .sessions
        .data(uuid(&user, "user")?, uuid(&handle, "session")?)
        .await?;
    Ok(with_etag(&data))
}

/// Changes the app data of a live session with a JSON merge patch (RFC 7396): members set to
/// `null` are removed, objects merge, anything else replaces. The result must be a JSON object
/// of at most `SESSION_DATA_MAX_BYTES`. Without `If-Match`, the patch applies to the data as it
/// is when written (concurrent patches all apply, none lost); with it, only to that version.
#[utoipa::path(
    patch, path = "/admin/v1/users/{id}/sessions/{handle}/data", tag = "admin", operation_id = "patch_session_data",
    params(
        ("id" = Uuid, Path, description = "User id"), ("handle" = Uuid, Path, description = "Session handle"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|"[0-9]{1,19}")?$"#,
            description = "The version the patch was computed from, as the ETag gave it (`\"<n>\"`); `*` or empty: any"),
    ),
    request_body(
        description = "A JSON merge patch (RFC 7396) whose result is an object of at most `SESSION_DATA_MAX_BYTES`",
        content((Object = "application/merge-patch+json"), (Object = "application/json")),
    ),
    responses(
        (status = 200, description = "Written; the new data and version", body = SessionDataView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "`malformed_request`: not JSON, a result that is not an object or is larger than \
            `SESSION_DATA_MAX_BYTES`, or a malformed `If-Match`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or no live session of this user has that handle", body = ErrorBody),
        (status = 412, description = "`version_mismatch`: the data is at another version (its `ETag` says which)", body = ErrorBody,
            headers(("ETag" = String, description = "The current version, quoted"))),
    )
)]
pub async fn patch_data(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        media.as_deref(),
        Some("application/merge-patch+json" | "application/json")
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "application/merge-patch+json",
        ));
    }
    let (user, handle) = path.into_inner();
    let (user, handle) = (uuid(&user, "user")?, uuid(&handle, "session")?);
    let expected = if_match(&req)?;
    let max_bytes = state.config.sessions.data_max_bytes;
    let data = state
        .sessions
        .update_data(user, handle, expected, &body, max_bytes)
        .await
        .map_err(|e| match e {
            Error::Invalid { .. } => ApiError::Malformed(e.to_string()),
            e => e.into(),
        })?;
    tracing::info!(target: "audit", event = "session_data_written", user_id = %user, session = %handle, version = data.version);
    Ok(with_etag(&data))
}
