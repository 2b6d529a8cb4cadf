//! `POST /v1/login` and `POST /v1/logout`.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header,
    web::{self, Bytes},
};
use serde::Deserialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Ref, RefOr,
        schema::{AnyOfBuilder, Schema},
    },
};

use crate::{
    domain::{
        error::Error,
        session::{ClientInfo, SessionKind},
        sessions::ActiveSession,
        token::SessionToken,
    },
    http::{
        body::{Encoding, parse_json_or_form, parse_optional},
        client_ip::client_ip,
        cookie::{self, Presented},
        credentials,
        error::{ApiError, ErrorBody},
        origin::is_safe_redirect,
        redirect::{see_other, with_query},
        views::{BearerLogin, PendingSecondFactor, WhoAmI},
    },
    state::AppState,
};

/// Credentials, as JSON or as an HTML form.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(schema_with = crate::http::schema::username)]
    pub username: String,
    #[schema(schema_with = crate::http::schema::presented_password)]
    pub password: String,
    /// Forms only (ignored in JSON): where to go after a successful login, a path or a URL on an
    /// allowed origin; any other target answers 403 `forbidden_redirect`.
    pub return_to: Option<String>,
    /// "Remember me": a persistent cookie, valid across browser restarts until the session's
    /// absolute expiry (`SESSION_REMEMBER_ABSOLUTE_TIMEOUT`). JSON `true`, or a form checkbox
    /// (`remember=on`).
    #[serde(default, deserialize_with = "checkbox")]
    #[schema(schema_with = crate::http::schema::checkbox)]
    pub remember: bool,
    /// How the new token is handed over: `cookie` (the default), or `body` (JSON logins only),
    /// for native apps, command-line tools and tests: the token is in the response body, once,
    /// no cookie is set, and the session is used with `Authorization: Bearer`.
    #[serde(default)]
    pub token_delivery: TokenDelivery,
}

/// The HTML form flavour of a login: the fields of [`LoginRequest`], answered with redirects.
/// Its own schema, so that generated clients can tell the two encodings apart.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: forms are read as `LoginRequest`
pub struct LoginForm {
    #[schema(schema_with = crate::http::schema::username)]
    pub username: String,
    #[schema(schema_with = crate::http::schema::presented_password)]
    pub password: String,
    /// Where to go after a successful login: a path, or a URL on an allowed origin; any other
    /// target answers 403 `forbidden_redirect`.
    pub return_to: Option<String>,
    /// "Remember me" (a checkbox: `on`).
    #[schema(schema_with = crate::http::schema::checkbox)]
    pub remember: Option<bool>,
    /// Forms get cookies only (`body` is refused with 400).
    pub token_delivery: Option<FormTokenDelivery>,
}

/// The token deliveries a form may ask for.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub enum FormTokenDelivery {
    Cookie,
}

/// A login's answer: a `WhoAmI` (cookie delivery) or a `BearerLogin` (`token_delivery: body`).
pub struct LoginAnswer;

impl PartialSchema for LoginAnswer {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("WhoAmI"))
            .item(Ref::from_schema_name("BearerLogin"))
            .into()
    }
}

impl ToSchema for LoginAnswer {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenDelivery {
    #[default]
    Cookie,
    Body,
}

/// A boolean as JSON gives it, or as an HTML checkbox does (`on`, or absent).
pub(super) fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) => match t.as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" | "" => Ok(false),
            _ => Err(serde::de::Error::custom("expected a boolean or `on`")),
        },
    }
}

pub(super) fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Log in. Always issues a fresh token, and ends the session of a cookie presented with the
/// request (session fixation defence).
#[utoipa::path(
    post, path = "/v1/login", tag = "public", operation_id = "login",
    request_body(
        description = "JSON, or an HTML form (application/x-www-form-urlencoded), which is answered \
            with redirects: 303 to `return_to` on success, 303 to the login page with `?error=<code>` \
            on a refusal.",
        content((LoginRequest = "application/json"), (LoginForm = "application/x-www-form-urlencoded")),
    ),
    responses(
        (status = 200, description = "Signed in (JSON). With `token_delivery` `cookie` (the default): \
            `Set-Cookie` carries the token and the body is a `WhoAmI`. With `body`: a `BearerLogin`, \
            the only place a token ever appears in a body. A user with a second factor enrolled (under \
            `SESSION_REQUIRED_AAL=highest_available`) gets a pending login: `pending_second_factor` names the \
            methods, and only `POST /v1/session/second-factor` and logout accept the session until one is proved.", body = LoginAnswer,
            headers(("Set-Cookie" = String, description = "The session cookie (HttpOnly), for cookie delivery")),
            links(
                ("whoami" = (operation_id = "whoami")),
                ("reauthenticate" = (operation_id = "reauthenticate")),
                ("list_sessions" = (operation_id = "list_sessions")),
                ("revoke_session" = (operation_id = "revoke_session", parameters(("handle" = "$response.body#/session/handle")))),
                ("revoke_sessions" = (operation_id = "revoke_sessions")),
                ("change_password" = (operation_id = "change_password")),
                ("logout" = (operation_id = "logout")),
                ("prove_second_factor" = (operation_id = "prove_second_factor")),
                ("list_factors" = (operation_id = "list_factors")),
            )),
        (status = 303, description = "Form login: to `return_to` with `Set-Cookie` (a pending login: to the second-factor \
            page, with `return_to`), or to the login page with `?error=<code>`",
            headers(("Location" = String))),
        (status = 400, description = "`invalid_request`: the username breaks its rule or the password is too long; \
            `malformed_request`: `token_delivery` `body` in a form", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown user, wrong password or disabled account", body = ErrorBody),
        (status = 403, description = "`forbidden_redirect`: a form's `return_to` is neither a path nor on an allowed origin; \
            `session_limit_reached`: the user has `SESSION_MAX_PER_USER` sessions and the policy is `refuse`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` for this username or client address", body = ErrorBody),
    )
)]
pub async fn login(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.web;
    let (credentials, encoding) = parse_json_or_form::<LoginRequest>(&req, &body)?;
    let kind = match (credentials.token_delivery, encoding) {
        (TokenDelivery::Cookie, _) => SessionKind::Cookie,
        (TokenDelivery::Body, Encoding::Json) => SessionKind::Bearer,
        (TokenDelivery::Body, Encoding::Form) => {
            return Err(ApiError::Malformed(
                "token_delivery `body` is for JSON logins only".into(),
            ));
        }
    };
    let return_to = match (encoding, credentials.return_to.as_deref()) {
        (Encoding::Form, Some(target)) if !is_safe_redirect(target, &config.allowed_origins) => {
            return Err(ApiError::ForbiddenRedirect);
        }
        (Encoding::Form, target) => Some(target.unwrap_or("/").to_owned()),
        (Encoding::Json, _) => None,
    };
    let ip = client_ip(&req, &config.trusted_proxies);
    let logins = &state.metrics.logins;
    let verified = match state
        .accounts
        .login(&credentials.username, credentials.password, ip)
        .await
    {
        Ok(verified) => verified,
        Err(e) => {
            let result = match e {
                Error::Throttled { .. } => "limited",
                Error::Busy => "busy",
                Error::InvalidCredentials | Error::Invalid { .. } => "failed",
                _ => "error",
            };
            logins.with_label_values(&[result]).inc();
            let api_error = ApiError::from(e);
            if encoding == Encoding::Form && api_error.status_code_is_client_error() {
                let target = with_query(&config.login_page, &[("error", api_error.code())]);
                return Ok(see_other(&target).finish());
            }
            return Err(api_error);
        }
    };
    if let Some(hook) = &state.hooks.after_password_verified {
        hook().await;
    }
    let client = ClientInfo {
        ip,
        user_agent: user_agent(&req),
        kind,
        remember: credentials.remember,
    };
    let user = &verified.user;
    // The session's creation, the reservation's release and the end of a session presented at
    // login are independent: one round trip for all of them. A bearer login replaces no cookie.
    let presented = match kind {
        SessionKind::Cookie => cookie::presented(&req, &config.cookie),
        SessionKind::Bearer => Presented::Nothing,
    };
    let (started, (), ()) = futures_util::future::join3(
        state.sessions.start(user, &client),
        state.accounts.release(&verified),
        async {
            if let Some(old) = presented.token() {
                state.sessions.end_presented(old).await;
            }
        },
    )
    .await;
    let (token, session) = started?;
    logins.with_label_values(&["ok"]).inc();
    let record = &session.record;
    // A user with a second factor enrolled gets a pending login, unless the configuration
    // accepts `aal1` sessions: only the second-factor step and logout accept it.
    let pending = (!state.sessions.accepts(record)).then(|| PendingSecondFactor::for_user(user));
    tracing::info!(target: "audit", event = "login", user_id = %user.id, session = %record.handle, ip = ?ip, kind = record.kind.as_str(), remembered = record.remembered, second_factor_pending = pending.is_some());
    Ok(signed_in(&state, &token, &session, pending, return_to))
}

/// The answer to a sign-in (a login, a passwordless sign-in): the token in a `Set-Cookie` and
/// the session as JSON, the token in the body for bearer sessions, or a form's redirect (to the
/// second-factor page first for a pending login).
pub(super) fn signed_in(
    state: &AppState,
    token: &SessionToken,
    session: &ActiveSession,
    pending: Option<PendingSecondFactor>,
    return_to: Option<String>,
) -> HttpResponse {
    let config = &state.config.web;
    let record = &session.record;
    if record.kind == SessionKind::Bearer {
        return HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(BearerLogin {
                pending_second_factor: pending,
                ..BearerLogin::new(token, record)
            });
    }
    let persist_for = record.remembered.then(|| {
        std::time::Duration::from_millis(
            record.absolute_expires_ms.saturating_sub(record.created_ms),
        )
    });
    let set_cookie = cookie::issue(&config.cookie, token, persist_for);
    match (return_to, pending) {
        // A form login that needs its second factor goes to the second-factor page first.
        (Some(target), Some(_)) => see_other(&with_query(
            &config.second_factor_page,
            &[("return_to", &target)],
        ))
        .cookie(set_cookie)
        .finish(),
        (Some(target), None) => see_other(&target).cookie(set_cookie).finish(),
        (None, pending) => HttpResponse::Ok().cookie(set_cookie).json(WhoAmI {
            pending_second_factor: pending,
            ..WhoAmI::new(record)
        }),
    }
}

/// Optional logout body: in JSON, accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// Ignored in JSON (forms only, see `LogoutForm`).
    pub return_to: Option<String>,
}

/// The HTML form flavour of a logout body (see [`LoginForm`] for why it has its own schema).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: forms are read as `LogoutRequest`
pub struct LogoutForm {
    /// A path or a URL on an allowed origin to go to afterwards (303); any other target answers
    /// 403 `forbidden_redirect`.
    pub return_to: Option<String>,
}

/// Log out: ends the current session (the cookie's, or the bearer token's) and clears the
/// cookie. Idempotent.
#[utoipa::path(
    post, path = "/v1/logout", tag = "public", operation_id = "logout",
    request_body(
        description = "Optional: no body at all, or a form naming `return_to` (JSON is accepted and ignored).",
        content((Option<LogoutForm> = "application/x-www-form-urlencoded"), (Option<LogoutRequest> = "application/json")),
    ),
    security((), ("session_cookie" = [])),
    responses(
        (status = 204, description = "Signed out (also when there was no session); the cookie is cleared",
            headers(("Set-Cookie" = String, description = "Clears the session cookie"))),
        (status = 303, description = "Form logout with `return_to`", headers(("Location" = String))),
        (status = 403, description = "`forbidden_redirect`: `return_to` is neither a path nor on an allowed origin", body = ErrorBody),
    )
)]
pub async fn logout(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = &state.config.web;
    let return_to = match parse_optional::<LogoutRequest>(&req, &body)? {
        Some((LogoutRequest { return_to: Some(t) }, Encoding::Form)) => {
            if !is_safe_redirect(&t, &config.allowed_origins) {
                return Err(ApiError::ForbiddenRedirect);
            }
            Some(t)
        }
        _ => None,
    };
    let (presented, via) = credentials::presented(&req, &config.cookie);
    if let Some(token) = presented.token() {
        // A session found gone may have been ended by a write not yet on a replica: that
        // answer is confirmed before the logout is acknowledged (see `store::replication`).
        let session = match state.sessions.check(token, via).await? {
            Some(session) => Some(session),
            None => state.sessions.check_confirmed(token, via).await?,
        };
        if let Some(session) = session {
            state.sessions.end(&session, "logout").await?;
            tracing::info!(target: "audit", event = "logout", user_id = %session.record.user_id, session = %session.record.handle);
        }
    }
    let clear = cookie::clear(&config.cookie);
    Ok(match return_to {
        Some(target) => see_other(&target).cookie(clear).finish(),
        None => HttpResponse::NoContent().cookie(clear).finish(),
    })
}
