//! Passkeys over HTTP: registering (`POST /v1/session/factors/passkeys`, then `.../finish`),
//! renaming and removing them, proving one as a second factor (`POST
//! /v1/session/second-factor/passkey`, then `POST /v1/session/second-factor` with method
//! `passkey`), and signing in with one and no password (`POST /v1/login/passkey`, then
//! `.../finish`).
//!
//! Every ceremony is two requests: the first answers `{ceremony, options}`, `options` being what
//! `navigator.credentials.create()` or `.get()` takes (binary fields base64url, as
//! `PublicKeyCredential.parseCreationOptionsFromJSON` reads them); the second sends the
//! ceremony's id and the credential as the browser returns it (`credential.toJSON()`).

use actix_web::{
    HttpRequest, HttpResponse,
    http::header,
    web::{self, Bytes},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::login::{TokenDelivery, checkbox, signed_in, user_agent};
use crate::{
    domain::{
        clock::Rfc3339,
        error::Error,
        mfa::{Assertion, Attestation, CeremonyStart, PasskeyInfo},
        session::{ClientInfo, SessionKind},
    },
    http::{
        body::parse_json,
        client_ip::client_ip,
        cookie::{self, Presented},
        error::{ApiError, ErrorBody},
        extract::{Authenticated, SignedIn},
        views::{Revoked, WhoAmI},
    },
    state::AppState,
};

/// A started passkey ceremony.
#[derive(Serialize, ToSchema)]
pub struct CeremonyView {
    /// Send it back with the credential; it works once, until `SESSION_PASSKEY_TIMEOUT`.
    #[schema(example = "bm90LWEtcmVhbC1jZXJlbW9ueQ")]
    pub ceremony: String,
    /// For `navigator.credentials.create()` (a registration) or `.get()` (a sign-in or a proof):
    /// `{"publicKey": {...}}` with binary fields in base64url. A sign-in also names
    /// `"mediation": "conditional"` (passkey autofill).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

impl From<CeremonyStart> for CeremonyView {
    fn from(c: CeremonyStart) -> CeremonyView {
        CeremonyView {
            ceremony: c.id,
            options: c.options,
        }
    }
}

/// One of the user's passkeys (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// The credential id, base64url: what renaming and removing name.
    pub id: String,
    #[schema(example = "Laptop")]
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Rfc3339>,
}

impl From<&PasskeyInfo> for PasskeyView {
    fn from(p: &PasskeyInfo) -> PasskeyView {
        PasskeyView {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: Rfc3339(p.created_ms),
            last_used_at: p.last_used_ms.map(Rfc3339),
        }
    }
}

/// Starts a registration, optionally naming the passkey.
#[derive(Deserialize, ToSchema)]
pub struct BeginPasskeyRequest {
    /// At most 64 characters, no control characters, not only spaces; default `Passkey`.
    #[schema(
        example = "Laptop",
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: Option<String>,
}

/// The credential a registration made.
#[derive(Deserialize, ToSchema)]
pub struct FinishPasskeyRequest {
    /// The `ceremony` of the registration's start.
    #[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
    pub ceremony: String,
    /// What `navigator.credentials.create()` returned, as `toJSON()` writes it.
    #[schema(value_type = PasskeyCredential)]
    pub credential: serde_json::Map<String, serde_json::Value>,
}

/// A passkey's new name.
#[derive(Deserialize, ToSchema)]
pub struct RenamePasskeyRequest {
    /// At most 64 characters, no control characters, not only spaces.
    #[schema(
        example = "Work laptop",
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
}

/// A passwordless sign-in's answer.
#[derive(Deserialize, ToSchema)]
pub struct PasskeySignInRequest {
    /// The `ceremony` of `POST /v1/login/passkey`.
    #[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
    pub ceremony: String,
    /// What `navigator.credentials.get()` returned, as `toJSON()` writes it.
    #[schema(value_type = PasskeyCredential)]
    pub credential: serde_json::Map<String, serde_json::Value>,
    /// As a password login's `remember`.
    #[serde(default, deserialize_with = "checkbox")]
    #[schema(schema_with = crate::http::schema::checkbox)]
    pub remember: bool,
    /// As a password login's `token_delivery`.
    #[serde(default)]
    pub token_delivery: TokenDelivery,
}

/// A WebAuthn credential as the browser's `credential.toJSON()` writes it (a registration's from
/// `navigator.credentials.create()`, an assertion's from `.get()`): documented as one named
/// object, so that generated clients have one type for it.
pub struct PasskeyCredential;

impl utoipa::PartialSchema for PasskeyCredential {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Object)
            .description(Some(
                "A WebAuthn credential as `credential.toJSON()` writes it: `id`, `rawId`, `type`, \
                 `response` (base64url fields) and `clientExtensionResults`.",
            ))
            .into()
    }
}

impl ToSchema for PasskeyCredential {}

/// A credential as the browser sent it: any JSON object is taken (the schema cannot say more
/// than WebAuthn does), and one that is no passkey's answer is refused like a wrong one, 403
/// `passkey_refused`.
pub(super) fn credential<T: serde::de::DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::Object(object.clone())).map_err(|_| {
        tracing::info!(target: "audit", event = "passkey_refused", reason = "malformed");
        Error::PasskeyRefused
    })
}

fn no_store(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Starts registering a passkey for the signed-in user. A user who has a factor needs a fresh
/// second factor in this session.
#[utoipa::path(
    post, path = "/v1/session/factors/passkeys", tag = "public", operation_id = "begin_passkey_registration",
    request_body(content = Option<BeginPasskeyRequest>, content_type = "application/json"),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The ceremony, and the options for `navigator.credentials.create()`", body = CeremonyView),
        (status = 400, description = "`invalid_request`: a bad name", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`aal2_required`; `second_factor_required`: the user has a factor, and this \
            session has not proved one recently; `passkeys_unavailable`", body = ErrorBody),
    )
)]
pub async fn begin_passkey_registration(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = if body.is_empty() {
        None
    } else {
        Some(parse_json::<BeginPasskeyRequest>(&req, &body)?)
    };
    let name = request.as_ref().and_then(|r| r.name.as_deref());
    let started = state.mfa.begin_passkey_registration(&session, name).await?;
    Ok(no_store(CeremonyView::from(started)))
}

/// Finishes a registration: the passkey becomes one of the user's factors (and a way to sign
/// in without a password), and this session `aal2`.
#[utoipa::path(
    post, path = "/v1/session/factors/passkeys/finish", tag = "public", operation_id = "finish_passkey_registration",
    request_body = FinishPasskeyRequest,
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "Registered", body = PasskeyView),
        (status = 400, description = "`malformed_request`: not a JSON object with a ceremony and a credential object", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`passkey_refused`: it did not verify (origin, relying party, challenge, \
            user verification), or is no passkey's answer; `aal2_required`; `passkeys_unavailable`", body = ErrorBody),
        (status = 409, description = "`ceremony_expired`: expired, used, or another session's; `passkey_in_use`: \
            registered already; `conflict`: the user's credentials changed meanwhile", body = ErrorBody),
    )
)]
pub async fn finish_passkey_registration(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = parse_json::<FinishPasskeyRequest>(&req, &body)?;
    let attestation: Attestation = credential(&request.credential)?;
    let (_, passkey) = state
        .mfa
        .finish_passkey_registration(&session, &request.ceremony, &attestation)
        .await?;
    Ok(HttpResponse::Created().json(PasskeyView::from(&passkey)))
}

/// Renames one of the user's passkeys.
#[utoipa::path(
    patch, path = "/v1/session/factors/passkeys/{id}", tag = "public", operation_id = "rename_passkey",
    params(("id" = String, Path, description = "The passkey's credential id (base64url)")),
    request_body = RenamePasskeyRequest,
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Renamed", body = PasskeyView),
        (status = 400, description = "`invalid_request`: a bad name", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`aal2_required`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such passkey of this user", body = ErrorBody),
        (status = 409, description = "`conflict`: it changed meanwhile", body = ErrorBody),
    )
)]
pub async fn rename_passkey(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<PasskeyView>, ApiError> {
    let request = parse_json::<RenamePasskeyRequest>(&req, &body)?;
    let renamed = state
        .mfa
        .rename_passkey(&session, &path, &request.name)
        .await?;
    Ok(web::Json(PasskeyView::from(&renamed)))
}

/// Removes one of the user's passkeys (with the recovery codes, if it was the last factor) and
/// ends the user's other sessions. Needs a second factor proved in this session within
/// `SESSION_FACTOR_FRESH_MAX_AGE`.
#[utoipa::path(
    delete, path = "/v1/session/factors/passkeys/{id}", tag = "public", operation_id = "remove_passkey",
    params(("id" = String, Path, description = "The passkey's credential id (base64url)")),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Removed; how many other sessions ended", body = Revoked),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`second_factor_required`; `aal2_required`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such passkey of this user", body = ErrorBody),
        (status = 409, description = "`conflict`: the factors changed meanwhile", body = ErrorBody),
    )
)]
pub async fn remove_passkey(
    Authenticated(session): Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let revoked = state.mfa.remove_passkey(&session, &path).await?;
    Ok(web::Json(Revoked { revoked }))
}

/// Starts proving a passkey in this session (a pending login, or a step-up): a challenge for the
/// user's passkeys. The answer goes to `POST /v1/session/second-factor` with method `passkey`.
#[utoipa::path(
    post, path = "/v1/session/second-factor/passkey", tag = "public", operation_id = "begin_passkey_proof",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The ceremony, and the options for `navigator.credentials.get()`", body = CeremonyView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`passkeys_unavailable`", body = ErrorBody),
        (status = 409, description = "`factor_not_enrolled`: the user has no passkey", body = ErrorBody),
    )
)]
pub async fn begin_passkey_proof(
    SignedIn(session): SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = state.mfa.begin_passkey_proof(&session).await?;
    Ok(no_store(CeremonyView::from(started)))
}

/// Starts a passwordless sign-in: a challenge that any of the site's discoverable passkeys may
/// answer.
#[utoipa::path(
    post, path = "/v1/login/passkey", tag = "public", operation_id = "begin_passkey_sign_in",
    responses(
        (status = 200, description = "The ceremony, and the options for `navigator.credentials.get()`", body = CeremonyView),
        (status = 403, description = "`passkeys_unavailable`", body = ErrorBody),
    )
)]
pub async fn begin_passkey_sign_in(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = state.mfa.begin_passkey_sign_in().await?;
    Ok(no_store(CeremonyView::from(started)))
}

/// Finishes a passwordless sign-in: a new session of the user the passkey names, `aal2` from
/// the start (the passkey verified its user). Answered as a password login is.
#[utoipa::path(
    post, path = "/v1/login/passkey/finish", tag = "public", operation_id = "finish_passkey_sign_in",
    request_body = PasskeySignInRequest,
    responses(
        (status = 200, description = "Signed in: `Set-Cookie` and a `WhoAmI`, or a `BearerLogin` with \
            `token_delivery` `body`", body = WhoAmI,
            headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly), for cookie delivery"))),
        (status = 400, description = "`malformed_request`: not a JSON object with a ceremony and a credential object", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: an unknown passkey or user, or a disabled account", body = ErrorBody),
        (status = 403, description = "`passkey_refused`: it did not verify (origin, relying party, challenge, user \
            verification, a counter that went backwards, an answer used already), or is no passkey's answer; \
            `passkeys_unavailable`", body = ErrorBody),
        (status = 409, description = "`ceremony_expired`: expired or used already", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn finish_passkey_sign_in(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.web;
    let request = parse_json::<PasskeySignInRequest>(&req, &body)?;
    let assertion: Assertion = credential(&request.credential)?;
    let ip = client_ip(&req, &config.trusted_proxies);
    let logins = &state.metrics.logins;
    let user = match state
        .mfa
        .finish_passkey_sign_in(&state.accounts, &request.ceremony, &assertion, ip)
        .await
    {
        Ok(user) => user,
        Err(e) => {
            // Counted as password logins are: a refused sign-in is a failed login.
            let result = match e {
                Error::Throttled { .. } => "limited",
                Error::InvalidCredentials | Error::PasskeyRefused | Error::CeremonyExpired => {
                    "failed"
                }
                _ => "error",
            };
            logins.with_label_values(&[result]).inc();
            return Err(e.into());
        }
    };
    let kind = match request.token_delivery {
        TokenDelivery::Cookie => SessionKind::Cookie,
        TokenDelivery::Body => SessionKind::Bearer,
    };
    let client = ClientInfo {
        ip,
        user_agent: user_agent(&req),
        kind,
        remember: request.remember,
    };
    // A cookie presented with the sign-in is ended, as at a password login.
    let presented = match kind {
        SessionKind::Cookie => cookie::presented(&req, &config.cookie),
        SessionKind::Bearer => Presented::Nothing,
    };
    let (started, ()) =
        futures_util::future::join(state.sessions.start_passwordless(&user, &client), async {
            if let Some(old) = presented.token() {
                state.sessions.end_presented(old).await;
            }
        })
        .await;
    let (token, session) = started?;
    logins.with_label_values(&["ok"]).inc();
    let record = &session.record;
    tracing::info!(target: "audit", event = "login", user_id = %user.id, session = %record.handle, ip = ?ip, kind = record.kind.as_str(), remembered = record.remembered, method = "passkey");
    Ok(signed_in(&state, &token, &session, None, None))
}
