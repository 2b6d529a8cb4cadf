//! What can go wrong in the domain. The HTTP edge maps each variant to a status and a JSON body
//! in one place (`http/error.rs`).

use std::time::Duration;

use super::{password::PasswordError, session_data::DataError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user, wrong password and disabled account: deliberately one variant.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The current password given to change it was wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no valid session")]
    Unauthenticated,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("registration is closed")]
    RegistrationClosed,
    #[error("the maximum number of sessions for this user is reached")]
    SessionLimitReached,
    #[error("the account changed concurrently; try again")]
    Conflict,
    /// The action needs a recent proof of the password in this session ("sudo mode").
    #[error("this action needs the password again")]
    ReauthenticationRequired,
    /// The session's user has a second factor enrolled, and the session has not proved it (a
    /// pending login, with `SESSION_REQUIRED_AAL=highest_available`).
    #[error("this session must prove a second factor first")]
    SecondFactorRequired,
    /// The action needs a recent second factor in this session.
    #[error("this action needs a second factor proved again")]
    FreshSecondFactorRequired,
    /// A TOTP or recovery code that is well-formed but not valid.
    #[error("the code is wrong")]
    WrongCode,
    /// A TOTP code of a time step already used.
    #[error("this code was already used; wait for the next one")]
    CodeReused,
    /// Confirming a TOTP enrolment that expired, was replaced, or was started by another session.
    #[error("no TOTP enrolment is waiting for this session; start again")]
    EnrollmentExpired,
    #[error("the user has no {0}")]
    FactorNotEnrolled(&'static str),
    #[error("the user has a {0} already; remove it first")]
    FactorAlreadyEnrolled(&'static str),
    /// Passkeys without a relying party (no allowed origin to bind them to).
    #[error("passkeys are not enabled on this server")]
    PasskeysUnavailable,
    /// A passkey ceremony that expired, was used already, or was started for another session.
    #[error("this passkey ceremony is over; start again")]
    CeremonyExpired,
    /// A passkey's answer that did not verify: wrong origin or relying party, a signature or
    /// challenge that does not match, no user verification, a counter that went backwards.
    #[error("the passkey's answer was refused")]
    PasskeyRefused,
    /// A passkey registered to an account already.
    #[error("this passkey is registered already")]
    PasskeyInUse,
    /// TOTP without keys to seal its secrets (Redis without `SESSION_FACTOR_KEYS`).
    #[error("TOTP is not enabled on this server")]
    TotpUnavailable,
    /// A session data write named a version that is no longer current.
    #[error("the session data changed since version {expected}; it is now at version {current}")]
    DataVersionMismatch { expected: u64, current: u64 },
    #[error("session data would be {size} bytes, more than the {max} allowed")]
    DataTooLarge { size: usize, max: usize },
    #[error("too many attempts; try again later")]
    Throttled { retry_after: Duration },
    #[error("the server is busy; try again shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error")]
    Internal,
}

impl Error {
    pub fn invalid(field: &'static str, message: impl ToString) -> Error {
        Error::Invalid {
            field,
            message: message.to_string(),
        }
    }
}

impl From<PasswordError> for Error {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => Error::Busy,
            PasswordError::Internal => Error::Internal,
        }
    }
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        match e {
            DataError::TooLarge { size, max } => Error::DataTooLarge { size, max },
            e @ (DataError::NotAnObject | DataError::Malformed(_)) => Error::invalid("data", e),
        }
    }
}
