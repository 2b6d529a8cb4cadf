//! The session token: what the cookie carries, and the digest that is all the store ever sees.
//!
//! Format: `<user id, 32 lowercase hex>.<secret, 43 base64url chars>`.
//!
//! * The secret is 256 bits from a CSPRNG and means nothing; only its digest (SHA-256 truncated
//!   to 128 bits) is stored, so a copy of the store yields no usable cookie.
//! * The user id is a non-secret routing part. It picks the Redis hash slot (`{<user id>}` hash
//!   tag), so one user's sessions and user record live on one Redis Cluster node
//!   and can be changed together atomically. It tells the cookie's holder only their own user id,
//!   which `GET /v1/session` returns anyway.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;
const ROUTE_CHARS: usize = 32;
/// Length of an encoded token.
pub const TOKEN_CHARS: usize = ROUTE_CHARS + 1 + SECRET_CHARS;

/// Why a presented token was rejected (never echoed to clients beyond "invalid session").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has the wrong length")]
    Length,
    #[error("token is not in the expected format")]
    Format,
}

/// A session token. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    user_id: Uuid,
    secret: [u8; SECRET_BYTES],
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("user_id", &self.user_id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// SHA-256 of a token's secret, truncated to 128 bits: the session's name in the store.
///
/// 128 bits keep a preimage search out of reach (2^128 work) while keeping the session's field
/// in its user's sessions hash short (22 characters): the field is stored once per session, so
/// every byte of it is a byte per session.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 16]);

/// The length of a [`TokenDigest`]'s text.
pub const DIGEST_CHARS: usize = 22;

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest([REDACTED])")
    }
}

impl TokenDigest {
    /// base64url, as used in store keys.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// [`TokenDigest::encode`]'s text on the stack, for the check path.
    pub fn encoded(&self) -> [u8; DIGEST_CHARS] {
        let mut text = [0u8; DIGEST_CHARS];
        // 16 bytes are always exactly 22 base64 characters.
        let _ = URL_SAFE_NO_PAD.encode_slice(self.0, &mut text);
        text
    }

    /// Parses [`TokenDigest::encode`]'s output.
    pub fn decode(text: &str) -> Option<TokenDigest> {
        let mut out = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(16) => Some(TokenDigest(out)),
            _ => None,
        }
    }
}

impl SessionToken {
    /// A fresh token for `user_id` from the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate(user_id: Uuid) -> SessionToken {
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        SessionToken { user_id, secret }
    }

    /// Strict parse: exact length, lowercase hex route, canonical base64url secret.
    pub fn parse(text: &str) -> Result<SessionToken, TokenError> {
        if text.len() != TOKEN_CHARS {
            return Err(TokenError::Length);
        }
        // Not `split_at`: the length is in bytes, and a multi-byte character may straddle the cut.
        let (route, rest) = text
            .split_at_checked(ROUTE_CHARS)
            .ok_or(TokenError::Format)?;
        let secret_text = rest.strip_prefix('.').ok_or(TokenError::Format)?;
        if !route
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(TokenError::Format);
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(route, &mut id).map_err(|_| TokenError::Format)?;
        let mut secret = [0u8; SECRET_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(secret_text, &mut secret) {
            Ok(SECRET_BYTES) => Ok(SessionToken {
                user_id: Uuid::from_bytes(id),
                secret,
            }),
            _ => Err(TokenError::Format),
        }
    }

    /// The cookie value. Call only where the token is handed to its owner (Set-Cookie).
    pub fn expose(&self) -> String {
        format!(
            "{}.{}",
            self.user_id.simple(),
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }

    /// The user the token routes to (not proof of anything until the store confirms it).
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    pub fn digest(&self) -> TokenDigest {
        let full = Sha256::digest(self.secret);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        TokenDigest(digest)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_tokens_round_trip_and_differ() {
        let user = Uuid::now_v7();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let t = SessionToken::generate(user);
            let text = t.expose();
            assert_eq!(text.len(), TOKEN_CHARS);
            assert_eq!(SessionToken::parse(&text).unwrap(), t);
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = SessionToken::generate(Uuid::now_v7()).expose();
        assert_eq!(SessionToken::parse(&good[1..]), Err(TokenError::Length));
        assert_eq!(
            SessionToken::parse(&format!("{good}A")),
            Err(TokenError::Length)
        );
        let upper = good.to_uppercase();
        assert!(SessionToken::parse(&upper).is_err());
        let mut star = good.clone();
        star.replace_range(40..41, "*");
        assert_eq!(SessionToken::parse(&star), Err(TokenError::Format));
        let mut no_dot = good.clone();
        no_dot.replace_range(32..33, "-");
        assert_eq!(SessionToken::parse(&no_dot), Err(TokenError::Format));
        assert!(SessionToken::parse("").is_err());
        let straddling = format!("{}é{}", "a".repeat(31), "A".repeat(43));
        assert_eq!(straddling.len(), TOKEN_CHARS);
        assert_eq!(SessionToken::parse(&straddling), Err(TokenError::Format));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let t = SessionToken::generate(Uuid::now_v7());
        let secret_part = t.expose()[33..].to_owned();
        let shown = format!("{t:?} {:?}", t.digest());
        assert!(!shown.contains(&secret_part));
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn digest_round_trips_through_its_text_form() {
        let d = SessionToken::generate(Uuid::now_v7()).digest();
        assert_eq!(TokenDigest::decode(&d.encode()), Some(d));
        assert_eq!(TokenDigest::decode("short"), None);
    }
}
