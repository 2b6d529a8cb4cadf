//! The one place where errors become HTTP: status, `{"error": code, "message": text}` body and
//! headers. Nothing else in the edge picks a status code for an error.
//!
//! Messages are fixed texts or validation hints about the request's shape; they never carry
//! request values (a password typed in the wrong field must not come back), store internals or
//! tokens. Store failures are logged here, with their detail, and answered as an opaque 503.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{domain::error::Error, store::StoreError};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    #[schema(example = "invalid_credentials")]
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Errors that arise at the edge, plus every domain error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error("{0}")]
    Malformed(String),
    #[error("expected Content-Type {0}")]
    UnsupportedMediaType(&'static str),
    #[error("cross-origin request refused: the Origin is not allowed")]
    CrossOrigin,
    #[error("missing or invalid API key")]
    InvalidApiKey,
    #[error("redirect target is not allowed")]
    ForbiddenRedirect,
    /// The admin console without a live console session (none, expired, or its key removed).
    #[error("sign in to the admin console")]
    ConsoleSignInRequired,
    /// A console form without this console session's CSRF token, or from another origin.
    #[error("the form is out of date or came from another site; reload the page and try again")]
    ConsoleFormRefused,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Domain(Error::Store(e))
    }
}

impl ApiError {
    /// Stable error code for the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Domain(e) => match e {
                Error::InvalidCredentials => "invalid_credentials",
                Error::WrongPassword => "wrong_password",
                Error::Unauthenticated => "unauthenticated",
                Error::NotFound(_) => "not_found",
                Error::UsernameTaken => "username_taken",
                Error::Invalid { .. } => "invalid_request",
                Error::RegistrationClosed => "registration_closed",
                Error::SessionLimitReached => "session_limit_reached",
                Error::Conflict => "conflict",
                Error::ReauthenticationRequired => "reauthentication_required",
                Error::SecondFactorRequired => "aal2_required",
                Error::FreshSecondFactorRequired => "second_factor_required",
                Error::WrongCode => "wrong_code",
                Error::CodeReused => "code_reused",
                Error::EnrollmentExpired => "enrollment_expired",
                Error::FactorNotEnrolled(_) => "factor_not_enrolled",
                Error::FactorAlreadyEnrolled(_) => "factor_already_enrolled",
                Error::TotpUnavailable => "totp_unavailable",
                Error::PasskeysUnavailable => "passkeys_unavailable",
                Error::CeremonyExpired => "ceremony_expired",
                Error::PasskeyRefused => "passkey_refused",
                Error::PasskeyInUse => "passkey_in_use",
                Error::DataVersionMismatch { .. } => "version_mismatch",
                Error::DataTooLarge { .. } => "payload_too_large",
                Error::Throttled { .. } => "too_many_attempts",
                Error::Busy => "busy",
                Error::Store(StoreError::Full) => "store_full",
                Error::Store(StoreError::Unconfirmed { .. }) => "store_unconfirmed",
                Error::Store(_) => "store_unavailable",
                Error::Internal => "internal_error",
            },
            ApiError::Malformed(_) => "malformed_request",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::CrossOrigin => "cross_origin_refused",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::ForbiddenRedirect => "forbidden_redirect",
            ApiError::ConsoleSignInRequired => "console_sign_in_required",
            ApiError::ConsoleFormRefused => "console_form_refused",
        }
    }

    /// The message for the body (or, in the console, for the page).
    pub fn message(&self) -> String {
        match self {
            ApiError::Domain(Error::Store(StoreError::Full)) => {
                "the session store is full; new sessions cannot be created right now".into()
            }
            ApiError::Domain(Error::Store(StoreError::Unconfirmed { .. })) => {
                "the change reached the session store but no replica confirmed it in time; retry"
                    .into()
            }
            ApiError::Domain(Error::Store(_)) => "the session store is unavailable".into(),
            other => other.to_string(),
        }
    }

    /// Whether the error is the client's (4xx) rather than ours.
    pub fn status_code_is_client_error(&self) -> bool {
        self.status_code().is_client_error()
    }

    /// The store error inside, if any (for metrics).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            ApiError::Domain(Error::Store(e)) => Some(e),
            _ => None,
        }
    }
}

/// Seconds for `Retry-After`: at least 1.
fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs_f64().ceil() as u64).max(1)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) => match e {
                Error::InvalidCredentials | Error::Unauthenticated => StatusCode::UNAUTHORIZED,
                Error::WrongPassword
                | Error::RegistrationClosed
                | Error::SessionLimitReached
                | Error::ReauthenticationRequired
                | Error::SecondFactorRequired
                | Error::FreshSecondFactorRequired
                | Error::WrongCode
                | Error::CodeReused
                | Error::TotpUnavailable
                | Error::PasskeysUnavailable
                | Error::PasskeyRefused => StatusCode::FORBIDDEN,
                Error::EnrollmentExpired
                | Error::CeremonyExpired
                | Error::PasskeyInUse
                | Error::FactorNotEnrolled(_)
                | Error::FactorAlreadyEnrolled(_) => StatusCode::CONFLICT,
                Error::DataVersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
                Error::DataTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::UsernameTaken | Error::Conflict => StatusCode::CONFLICT,
                Error::Invalid { .. } => StatusCode::BAD_REQUEST,
                Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                Error::Busy | Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::CrossOrigin | ApiError::ForbiddenRedirect | ApiError::ConsoleFormRefused => {
                StatusCode::FORBIDDEN
            }
            ApiError::InvalidApiKey | ApiError::ConsoleSignInRequired => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(e) = self.store_error() {
            tracing::error!(error = %e, "store operation failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Domain(Error::Throttled { retry_after }) => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
            }
            ApiError::Domain(Error::Busy | Error::Store(_)) => {
                response.insert_header((header::RETRY_AFTER, 1));
            }
            ApiError::InvalidApiKey => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            // The version the data is at now, so that a client can re-read and retry.
            ApiError::Domain(Error::DataVersionMismatch { current, .. }) => {
                response.insert_header((header::ETAG, format!("\"{current}\"")));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code().to_owned(),
            message: self.message(),
        })
    }
}

/// A JSON error body for a status produced outside our handlers (routing, body limits).
pub fn generic(status: StatusCode) -> ErrorBody {
    let (error, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        // Query strings and bodies that the framework's extractors could not read.
        StatusCode::BAD_REQUEST => ("malformed_request", "the request could not be understood"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this resource")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported Content-Type")
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "request headers are too large")
        }
        s if s.is_client_error() => ("bad_request", "the request could not be understood"),
        _ => ("internal_error", "internal error"),
    };
    ErrorBody {
        error: error.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::body::to_bytes;

    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[actix_web::test]
    async fn store_failures_are_opaque_503s() {
        let e = ApiError::from(StoreError::Unavailable(
            "redis at 10.0.0.7:6379 refused".into(),
        ));
        let response = e.error_response();
        assert_eq!(response.status(), 503);
        let body = to_bytes(response.into_body()).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\"error\":\"store_unavailable\""), "{text}");
        assert!(!text.contains("10.0.0.7"), "{text}");
    }
}
