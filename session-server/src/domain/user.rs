//! Users: the validated username, and the record the store keeps.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

/// Longest username, in characters.
pub const USERNAME_MAX: usize = 64;

/// A username that passed validation: trimmed, lowercased, 1-64 characters of
/// `a-z 0-9 . _ - @ +`.
///
/// The alphabet is ASCII on purpose: no look-alike Unicode accounts, and no `{`/`}` that could
/// act as a Redis Cluster hash tag inside a key.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Username(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username must not be empty")]
    Empty,
    #[error("username must be at most {USERNAME_MAX} characters")]
    TooLong,
    #[error("username may contain only letters a-z, digits and . _ - @ +")]
    Alphabet,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Username, UsernameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(UsernameError::Empty);
        }
        if trimmed.chars().count() > USERNAME_MAX {
            return Err(UsernameError::TooLong);
        }
        let folded = trimmed.to_ascii_lowercase();
        if !folded
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@+".contains(&b))
        {
            return Err(UsernameError::Alphabet);
        }
        Ok(Username(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored user. Users are the only records meant to live without a TTL.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// UUID v7: time-ordered, so user keys and indexes stay friendly to sorted storage.
    pub id: Uuid,
    pub username: Username,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_ms: u64,
    /// Increases with every change of the user's credentials: password change or set, disable,
    /// enable. A login remembers the version it verified the password against, and the store
    /// creates the session only if the version is still the same, so no login that verified an
    /// old password (or a disabled account) yields a session after the change. Re-hashing the same
    /// password with new parameters does not change it.
    pub credential_version: u64,
    /// The second factors enrolled (see `domain::factors`).
    pub factors: UserFactors,
}

/// A user's second factors, as stored. Enrolling, removing or resetting one is a change of
/// credentials: it increases [`UserRecord::credential_version`] in the same atomic step.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserFactors {
    pub totp: Option<StoredTotp>,
    /// Digests of the recovery codes not yet used (`factors::recovery`), 16 bytes each.
    pub recovery_codes: Vec<[u8; 16]>,
    /// The user's passkeys, in no particular order.
    pub passkeys: Vec<StoredPasskey>,
}

/// A passkey as stored: its credential id (base64url) and its record, JSON
/// (`domain::mfa::passkeys`). The store compares and swaps the JSON whole.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: String,
    pub json: String,
}

impl UserFactors {
    /// Whether the user has a second factor enrolled. Recovery codes alone are not one: they
    /// stand in for a factor, and go with the last one.
    pub fn enrolled(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }
}

/// An enrolled TOTP factor.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredTotp {
    /// The secret, sealed with the factor key ring (`factors::secret_box`).
    pub sealed: Vec<u8>,
    /// The latest time step a code was accepted for: no code of that step or an earlier one is
    /// accepted again.
    pub last_step: u64,
    /// When it was enrolled, ms since the epoch.
    pub enrolled_ms: u64,
}

impl fmt::Debug for UserFactors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserFactors")
            .field("totp", &self.totp.as_ref().map(|t| t.enrolled_ms))
            .field("recovery_codes", &self.recovery_codes.len())
            .field("passkeys", &self.passkeys.len())
            .finish()
    }
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[REDACTED]")
            .field("disabled", &self.disabled)
            .field("created_ms", &self.created_ms)
            .field("credential_version", &self.credential_version)
            .field("factors", &self.factors)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_case_folded() {
        assert_eq!(
            Username::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn usernames_outside_the_alphabet_or_length_are_rejected() {
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(
            Username::parse(&"a".repeat(65)),
            Err(UsernameError::TooLong)
        );
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "al ice", "{alice}", "al*ce", "ålice", "a\0b", "a\r\nb", "../x",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
