//! Second factors of the signed-in user: `GET /v1/session/factors`, the second-factor step
//! `POST /v1/session/second-factor`, TOTP enrolment (`POST /v1/session/factors/totp`, then
//! `.../totp/confirm`) and removal (`DELETE .../totp`), and recovery codes
//! (`POST /v1/session/factors/recovery-codes`).
//!
//! Codes go through the budgets a password meets (`AccountService::under_code_budget`). Answers
//! that carry a secret (a TOTP secret being enrolled, new recovery codes) are `no-store`.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header,
    web::{self, Bytes},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::passkeys::PasskeyView;
use crate::{
    domain::{
        clock::Rfc3339,
        error::Error,
        mfa::{Assertion, FactorsOverview, Proof},
        sessions::ActiveSession,
    },
    http::{
        body::{Encoding, parse_json_or_form},
        client_ip::client_ip,
        error::{ApiError, ErrorBody},
        extract::{Authenticated, SignedIn},
        origin::is_safe_redirect,
        redirect::{see_other, with_query},
        views::{Revoked, WhoAmI},
    },
    state::AppState,
};

/// The user's second factors, as the user sees them (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorsView {
    /// The TOTP factor, when one is enrolled.
    pub totp: Option<TotpView>,
    /// Recovery codes not yet used.
    pub recovery_codes_left: usize,
    /// Whether a TOTP enrolment started by this session waits for its first code.
    pub totp_enrollment_pending: bool,
    /// The user's passkeys, oldest first.
    pub passkeys: Vec<PasskeyView>,
    /// What `POST /v1/session/second-factor` accepts for this user: `totp`, `passkey`,
    /// `recovery_code`.
    #[schema(value_type = Vec<String>, example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<&'static str>,
}

/// An enrolled TOTP factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpView {
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: Rfc3339,
}

impl FactorsView {
    fn new(o: &FactorsOverview) -> FactorsView {
        let mut methods = Vec::new();
        if o.totp_enrolled_ms.is_some() {
            methods.push("totp");
        }
        if !o.passkeys.is_empty() {
            methods.push("passkey");
        }
        if o.recovery_codes_left > 0 {
            methods.push("recovery_code");
        }
        FactorsView {
            totp: o.totp_enrolled_ms.map(|ms| TotpView {
                enrolled_at: Rfc3339(ms),
            }),
            recovery_codes_left: o.recovery_codes_left,
            totp_enrollment_pending: o.totp_pending,
            passkeys: o.passkeys.iter().map(PasskeyView::from).collect(),
            methods,
        }
    }
}

/// A TOTP enrolment to add to an authenticator app. (No `Debug`: it holds the secret.)
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollmentView {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The URI as an SVG QR code.
    pub qr_svg: String,
    /// When the enrolment ends unless confirmed with a first code.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
}

/// New recovery codes, shown this once. (No `Debug`: it holds the codes.)
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Ten single-use codes (`xxxx-xxxx-xxxx-xxxx`); the previous set no longer works.
    pub codes: Vec<String>,
    /// How many of the user's other sessions were ended.
    pub revoked: usize,
}

/// A second factor's code, as JSON or as an HTML form, by its method.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SecondFactorRequest {
    /// A code from the user's authenticator app.
    Totp {
        /// Six digits (spaces are tolerated).
        #[schema(pattern = "^[0-9]{6}$", example = "123456")]
        code: String,
        /// Forms only: where to go afterwards (a path, or a URL on an allowed origin).
        return_to: Option<String>,
    },
    /// A passkey's answer to the challenge of `POST /v1/session/second-factor/passkey` (JSON
    /// only).
    Passkey {
        /// The `ceremony` of that challenge.
        #[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
        ceremony: String,
        /// What `navigator.credentials.get()` returned, as `toJSON()` writes it.
        #[schema(value_type = super::passkeys::PasskeyCredential)]
        credential: serde_json::Map<String, serde_json::Value>,
    },
    /// One of the user's recovery codes, used up by this.
    RecoveryCode {
        /// Sixteen letters and digits in four groups (case, spaces and dashes are tolerated).
        #[schema(
            pattern = "^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$",
            example = "abcd-efgh-ijkl-mnop"
        )]
        code: String,
        /// Forms only: where to go afterwards (a path, or a URL on an allowed origin).
        return_to: Option<String>,
    },
}

/// The HTML form flavour of [`SecondFactorRequest`]: codes only (a passkey's answer is JSON).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: forms are read as `SecondFactorRequest`
pub struct SecondFactorForm {
    /// `totp` or `recovery_code`.
    #[schema(value_type = String, pattern = "^(totp|recovery_code)$")]
    method: String,
    /// A TOTP code (six digits) or a recovery code.
    #[schema(pattern = "^([0-9]{6}|[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})$")]
    code: String,
    /// Where to go afterwards (a path, or a URL on an allowed origin).
    return_to: Option<String>,
}

/// The first TOTP code of an enrolment, as JSON or as an HTML form.
#[derive(Deserialize, ToSchema)]
pub struct ConfirmTotpRequest {
    /// Six digits (spaces are tolerated).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
    /// Forms only: where to go afterwards (a path, or a URL on an allowed origin).
    pub return_to: Option<String>,
}

/// The user's second factors, and what the second-factor step accepts. A pending login may ask
/// (it has proved the password).
#[utoipa::path(
    get, path = "/v1/session/factors", tag = "public", operation_id = "list_factors",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "The user's factors", body = FactorsView),
        (status = 401, description = "`unauthenticated`: no live session", body = ErrorBody),
    )
)]
pub async fn list_factors(
    SignedIn(session): SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let overview = state.mfa.overview(&session).await?;
    Ok(HttpResponse::Ok().json(FactorsView::new(&overview)))
}

/// The form's `return_to`, checked; `None` for JSON.
fn form_target(
    encoding: Encoding,
    return_to: Option<String>,
    state: &AppState,
) -> Result<Option<String>, ApiError> {
    match (encoding, return_to) {
        (Encoding::Form, Some(target))
            if !is_safe_redirect(&target, &state.config.web.allowed_origins) =>
        {
            Err(ApiError::ForbiddenRedirect)
        }
        (Encoding::Form, target) => Ok(Some(target.unwrap_or_else(|| "/".to_owned()))),
        (Encoding::Json, _) => Ok(None),
    }
}

/// The answer to a factor proof: the session as JSON, or a form's redirect (to `return_to`, or
/// back to the second-factor page with the error).
fn proof_answer(
    outcome: Result<ActiveSession, Error>,
    return_to: Option<String>,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    match (outcome, return_to) {
        (Ok(_), Some(target)) => Ok(see_other(&target).finish()),
        (Ok(session), None) => Ok(HttpResponse::Ok().json(WhoAmI::new(&session.record))),
        (Err(e), Some(target)) => {
            let e = ApiError::from(e);
            if !e.status_code_is_client_error() {
                return Err(e);
            }
            let page = with_query(
                &state.config.web.second_factor_page,
                &[("error", e.code()), ("return_to", &target)],
            );
            Ok(see_other(&page).finish())
        }
        (Err(e), None) => Err(e.into()),
    }
}

/// The second-factor step: proves a TOTP code or a recovery code in this session, which
/// becomes `aal2` (same token, same handle). Completes a pending login, or steps a session up.
/// A recovery code is used up; a TOTP code's time step cannot be used again.
#[utoipa::path(
    post, path = "/v1/session/second-factor", tag = "public", operation_id = "prove_second_factor",
    request_body(
        description = "JSON, or an HTML form (answered with redirects: 303 to `return_to`, or to the \
            second-factor page with `?error=<code>&return_to=`).",
        content((SecondFactorRequest = "application/json"), (SecondFactorForm = "application/x-www-form-urlencoded")),
    ),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Proved: the session, now `aal2`", body = WhoAmI),
        (status = 303, description = "Form: to `return_to`, or to the second-factor page with `?error=<code>`",
            headers(("Location" = String))),
        (status = 400, description = "`invalid_request`: a malformed code; `malformed_request`: an unknown method, \
            or a passkey's answer that is no credential", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no live session (or it ended meanwhile)", body = ErrorBody),
        (status = 403, description = "`wrong_code`; `code_reused`: that TOTP code's time step was used already; \
            `passkey_refused`: the passkey's answer did not verify; `passkeys_unavailable`; `forbidden_redirect`", body = ErrorBody),
        (status = 409, description = "`factor_not_enrolled`: the user has no such factor; `ceremony_expired`: the \
            passkey challenge expired, was used, or is another session's; `conflict`: the user's factors changed \
            meanwhile", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn prove_second_factor(
    SignedIn(session): SignedIn,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (request, encoding) = parse_json_or_form::<SecondFactorRequest>(&req, &body)?;
    let assertion: Assertion;
    let (proof, return_to) = match &request {
        SecondFactorRequest::Totp { code, return_to } => (Proof::Totp(code), return_to.clone()),
        SecondFactorRequest::RecoveryCode { code, return_to } => {
            (Proof::RecoveryCode(code), return_to.clone())
        }
        SecondFactorRequest::Passkey {
            ceremony,
            credential,
        } => {
            assertion = super::passkeys::credential(credential)?;
            let proof = Proof::Passkey {
                ceremony,
                assertion: &assertion,
            };
            (proof, None)
        }
    };
    let return_to = form_target(encoding, return_to, &state)?;
    let ip = client_ip(&req, &state.config.web.trusted_proxies);
    let outcome = state.mfa.prove(&state.accounts, &session, proof, ip).await;
    proof_answer(outcome, return_to, &state)
}

/// Starts a TOTP enrolment: a new secret, as base32, an `otpauth://` URI and an SVG QR code. It
/// takes effect only once `POST /v1/session/factors/totp/confirm` proves a first code from it,
/// from this session, before `expires_at`. A user who has another factor needs a fresh second
/// factor in this session.
#[utoipa::path(
    post, path = "/v1/session/factors/totp", tag = "public", operation_id = "begin_totp",
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "The enrolment to add to an authenticator app (not cached)", body = TotpEnrollmentView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`aal2_required`: a pending login; `second_factor_required`: the user has \
            a factor, and this session has not proved one recently; `totp_unavailable`: the server has no \
            factor keys", body = ErrorBody),
        (status = 409, description = "`factor_already_enrolled`: remove the TOTP factor first", body = ErrorBody),
    )
)]
pub async fn begin_totp(
    Authenticated(session): Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let enrollment = state.mfa.begin_totp(&session).await?;
    let expires_at = state
        .clock
        .now_ms()
        .saturating_add(state.config.factors.totp_enroll_timeout.as_millis() as u64);
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TotpEnrollmentView {
            secret: enrollment.secret_base32,
            otpauth_uri: enrollment.otpauth_uri,
            qr_svg: enrollment.qr_svg,
            expires_at: Rfc3339(expires_at),
        }))
}

/// Confirms this session's TOTP enrolment with a first code: TOTP becomes the user's factor,
/// this session `aal2`. The user's other sessions then belong to a user with a second factor
/// (under `SESSION_REQUIRED_AAL=highest_available`, they must prove it).
#[utoipa::path(
    post, path = "/v1/session/factors/totp/confirm", tag = "public", operation_id = "confirm_totp",
    request_body(
        description = "JSON, or an HTML form (answered with redirects, as the second-factor step).",
        content((ConfirmTotpRequest = "application/json"), (ConfirmTotpRequest = "application/x-www-form-urlencoded")),
    ),
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Enrolled: the session, now `aal2`", body = WhoAmI),
        (status = 303, description = "Form: to `return_to`, or to the second-factor page with `?error=<code>`",
            headers(("Location" = String))),
        (status = 400, description = "`invalid_request`: a malformed code", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`wrong_code`; `aal2_required`; `totp_unavailable`; `forbidden_redirect`", body = ErrorBody),
        (status = 409, description = "`enrollment_expired`: none waits for this session (never started, expired, \
            or replaced); `conflict`: the user's credentials changed meanwhile", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn confirm_totp(
    Authenticated(session): Authenticated,
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (request, encoding) = parse_json_or_form::<ConfirmTotpRequest>(&req, &body)?;
    let return_to = form_target(encoding, request.return_to, &state)?;
    let ip = client_ip(&req, &state.config.web.trusted_proxies);
    let outcome = state
        .mfa
        .confirm_totp(&state.accounts, &session, &request.code, ip)
        .await;
    proof_answer(outcome, return_to, &state)
}

/// Removes the TOTP factor, with the recovery codes (they go with the last factor), and ends
/// the user's other sessions. Needs a second factor proved in this session within
/// `SESSION_FACTOR_FRESH_MAX_AGE`.
#[utoipa::path(
    delete, path = "/v1/session/factors/totp", tag = "public", operation_id = "remove_totp",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Removed; how many other sessions ended", body = Revoked),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`second_factor_required`: no recent second factor in this session; \
            `aal2_required`", body = ErrorBody),
        (status = 409, description = "`factor_not_enrolled`; `conflict`: the factors changed meanwhile", body = ErrorBody),
    )
)]
pub async fn remove_totp(
    Authenticated(session): Authenticated,
    state: web::Data<AppState>,
) -> Result<web::Json<Revoked>, ApiError> {
    let revoked = state.mfa.remove_totp(&session).await?;
    Ok(web::Json(Revoked { revoked }))
}

/// New recovery codes: ten single-use codes, shown this once; the previous set stops working
/// and the user's other sessions end. Needs a second factor proved in this session within
/// `SESSION_FACTOR_FRESH_MAX_AGE`.
#[utoipa::path(
    post, path = "/v1/session/factors/recovery-codes", tag = "public", operation_id = "regenerate_recovery_codes",
    security(("session_cookie" = [])),
    responses(
        (status = 201, description = "The new codes (not cached)", body = RecoveryCodesView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`second_factor_required`; `aal2_required`", body = ErrorBody),
        (status = 409, description = "`factor_not_enrolled`: recovery codes stand in for a factor, so the user \
            needs one; `conflict`", body = ErrorBody),
    )
)]
pub async fn regenerate_recovery_codes(
    Authenticated(session): Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (codes, revoked) = state.mfa.regenerate_recovery_codes(&session).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(RecoveryCodesView { codes, revoked }))
}
