//! Authenticator assurance: what a session proved, and what the service requires of it.
//!
//! The levels are NIST SP 800-63B's, named as Ory Kratos names them: `aal1` after one factor (a
//! password), `aal2` after a second one (a TOTP code, a passkey, a recovery code). A session keeps
//! its methods and when each was proved, as it keeps `authenticated_at` for the password, and
//! reports them wherever it reports itself (who-am-I, the admin check, forward auth, the feed).
//!
//! A passwordless sign-in with a passkey (user verification required: possession and a PIN or
//! biometric, two factors in one gesture) is `aal2` from the start; its record holds the passkey
//! both as its first method and as its proof.
//!
//! A login by a user with a second factor enrolled is an `aal1` session marked
//! [`SessionRecord::factor_enrolled`]. With [`RequiredAal::HighestAvailable`] (the default) such a
//! session is a pending login: only the second-factor step and logout accept it, so the password
//! alone never gives a usable session. Proving a factor raises the same session (same token, same
//! handle) to `aal2`; that is also how a session steps up later under [`RequiredAal::Aal1`].

use std::fmt;

use super::session::SessionRecord;

/// An authenticator assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aal {
    Aal1,
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }
}

impl fmt::Display for Aal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A second factor, as proved in a session. The numbers are the stored codes (see
/// `domain::record`): never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A time-based one-time code (RFC 6238) from an authenticator app.
    Totp = 1,
    /// A passkey (WebAuthn) used as a second factor.
    Passkey = 2,
    /// One of the user's single-use recovery codes.
    RecoveryCode = 3,
}

impl SecondFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::Passkey => "passkey",
            SecondFactor::RecoveryCode => "recovery_code",
        }
    }

    /// The stored code (2 bits).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<SecondFactor> {
        match code {
            1 => Some(SecondFactor::Totp),
            2 => Some(SecondFactor::Passkey),
            3 => Some(SecondFactor::RecoveryCode),
            _ => None,
        }
    }
}

/// A second factor proved in a session, and when (whole seconds after the session's creation,
/// rounded down, as `domain::record` stores it: never later than the proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorProof {
    pub method: SecondFactor,
    pub at_ms: u64,
}

/// One authentication method used in a session, for the session's views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodUse {
    /// `password`, `totp`, `passkey` or `recovery_code`.
    pub method: &'static str,
    /// When it was last proved in this session.
    pub at_ms: u64,
}

impl SessionRecord {
    /// The session's assurance level: `aal2` once a second factor was proved in it.
    pub fn aal(&self) -> Aal {
        if self.second_factor.is_some() {
            Aal::Aal2
        } else {
            Aal::Aal1
        }
    }

    /// The methods proved in this session, first factor first.
    pub fn methods(&self) -> Vec<MethodUse> {
        let mut methods = vec![MethodUse {
            method: self.first_method(),
            at_ms: self.authenticated_ms,
        }];
        if let Some(proof) = self.listed_second_factor() {
            methods.push(MethodUse {
                method: proof.method.as_str(),
                at_ms: proof.at_ms,
            });
        }
        methods
    }

    /// What the session began with: `password`, or `passkey` for a passwordless sign-in.
    pub fn first_method(&self) -> &'static str {
        if self.passwordless {
            "passkey"
        } else {
            "password"
        }
    }

    /// The second factor as the session's methods list it: a passwordless sign-in's own passkey
    /// (recorded as its proof, so that it counts as `aal2` and as fresh) is its first method,
    /// not a second one.
    pub fn listed_second_factor(&self) -> Option<FactorProof> {
        self.second_factor
            .filter(|p| !(self.passwordless && p.method == SecondFactor::Passkey))
    }

    /// The record after its user proved `method` at `now_ms`. The time is kept in whole seconds
    /// after creation, rounded down, and saturates at the field's limit (see `domain::record`):
    /// never later than the proof, so a freshness test errs on the side of asking again.
    pub fn with_second_factor(&self, method: SecondFactor, now_ms: u64) -> SessionRecord {
        let since = (now_ms.saturating_sub(self.created_ms) / 1000).min(SECOND_FACTOR_SECS_MAX);
        SessionRecord {
            second_factor: Some(FactorProof {
                method,
                at_ms: self.created_ms.saturating_add(since * 1000),
            }),
            ..self.clone()
        }
    }

    /// Whether a second factor was proved in this session within `max_age` of `now_ms`.
    pub fn second_factor_within(&self, max_age: std::time::Duration, now_ms: u64) -> bool {
        let max_age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        self.second_factor
            .is_some_and(|proof| now_ms.saturating_sub(proof.at_ms) <= max_age)
    }
}

/// The largest time of a second factor the record holds: 2^24 - 1 seconds (194 days) after the
/// session's creation; later proofs are stored as this.
pub const SECOND_FACTOR_SECS_MAX: u64 = (1 << 24) - 1;

/// Which sessions of users with a second factor enrolled the service accepts
/// (`SESSION_REQUIRED_AAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequiredAal {
    /// Any session: a second factor is optional, and apps ask for a step-up where they need it.
    Aal1,
    /// A user with a second factor enrolled must have proved it: their `aal1` session is a pending
    /// login, accepted only by the second-factor step and logout.
    #[default]
    HighestAvailable,
}

impl RequiredAal {
    pub fn parse(raw: &str) -> Option<RequiredAal> {
        match raw {
            "aal1" => Some(RequiredAal::Aal1),
            "highest_available" => Some(RequiredAal::HighestAvailable),
            _ => None,
        }
    }

    /// Whether a session is accepted outside the second-factor step.
    pub fn accepts(self, record: &SessionRecord) -> bool {
        match self {
            RequiredAal::Aal1 => true,
            RequiredAal::HighestAvailable => !record.factor_enrolled || record.aal() == Aal::Aal2,
        }
    }
}
