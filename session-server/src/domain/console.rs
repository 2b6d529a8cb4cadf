//! Admin console sessions: what an operator holds after proving an admin API key once.
//!
//! The key itself is never kept: not in the browser, not in the store. The console session
//! records which key was proved by its *key id* (the first [`KEY_ID_CHARS`] hex digits of the
//! key's SHA-256 digest, as configured in `SESSION_ADMIN_API_KEYS`), so that
//!
//! * every action taken through the session can name the key in the audit log, and
//! * a key that is removed from the configuration ends the console sessions it opened at their
//!   next request ([`ConsoleService::check`] asks whether the key id is still configured).
//!
//! The token is 256 bits from a CSPRNG; the store sees only its SHA-256 digest, so a copy of the
//! store yields no usable cookie. Each session has its own CSRF token (the synchronizer token
//! of every console form), random too, kept in the session's record. Sessions have one absolute
//! lifetime (`SESSION_CONSOLE_TTL`), judged by the service's clock on every request and also
//! given to the store as the entry's TTL: they are never renewed, the operator signs in again.

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{clock::Clock, error::Error};
use crate::store::Store;

/// Hex digits of an admin key's SHA-256 digest that name the key (48 bits).
pub const KEY_ID_CHARS: usize = 12;
const TOKEN_BYTES: usize = 32;
const TOKEN_CHARS: usize = 43;

/// The id of the admin key whose SHA-256 digest is `digest`: its first [`KEY_ID_CHARS`] hex
/// digits. It names the key in logs and pages; it cannot be turned back into the key.
pub fn key_id(digest: &[u8; 32]) -> String {
    hex::encode(&digest[..KEY_ID_CHARS / 2])
}

/// A client address for the audit log: the address, or `unknown`.
pub fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// A console session's token: what the console cookie carries. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleToken([u8; TOKEN_BYTES]);

impl fmt::Debug for ConsoleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsoleToken([REDACTED])")
    }
}

impl ConsoleToken {
    fn generate() -> ConsoleToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        ConsoleToken(bytes)
    }

    /// Reads a cookie value: exactly 43 base64url characters (256 bits), else `None`.
    pub fn parse(text: &str) -> Option<ConsoleToken> {
        if text.len() != TOKEN_CHARS {
            return None;
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(TOKEN_BYTES) => Some(ConsoleToken(bytes)),
            _ => None,
        }
    }

    /// The cookie value. Call only where it is written into the `Set-Cookie` header.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The session's name in the store: the token's SHA-256, base64url.
    pub fn digest(&self) -> ConsoleDigest {
        ConsoleDigest(URL_SAFE_NO_PAD.encode(Sha256::digest(self.0)))
    }
}

/// SHA-256 of a console token (base64url text): the only form of it the store sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsoleDigest(pub String);

/// A console session as stored (versioned JSON, see `store`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// Record format version.
    pub v: u8,
    /// The id of the admin key that was proved (see [`key_id`]).
    pub key_id: String,
    /// The synchronizer token of this session's forms (base64url, 256 bits).
    pub csrf: String,
    pub created_ms: u64,
    pub expires_ms: u64,
}

impl ConsoleSession {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Opens, checks and ends console sessions.
pub struct ConsoleService {
    store: Arc<dyn Store>,
    clock: Clock,
    ttl: Duration,
}

impl ConsoleService {
    pub fn new(store: Arc<dyn Store>, clock: Clock, ttl: Duration) -> ConsoleService {
        ConsoleService { store, clock, ttl }
    }

    /// How long a console session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for an operator who just proved the admin key `key_id` from `ip`.
    pub async fn sign_in(
        &self,
        key_id: String,
        ip: Option<IpAddr>,
    ) -> Result<(ConsoleToken, ConsoleSession), Error> {
        let token = ConsoleToken::generate();
        let now = self.clock.now_ms();
        let session = ConsoleSession {
            v: 1,
            key_id,
            csrf: ConsoleToken::generate().expose(),
            created_ms: now,
            expires_ms: now.saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)),
        };
        self.store
            .create_console_session(&token.digest(), &session, self.ttl)
            .await?;
        tracing::info!(target: "audit", event = "console_signed_in", admin_key = %session.key_id, client_ip = %ip_text(ip));
        Ok((token, session))
    }

    /// The live session behind `token`, if any: not expired by this service's clock, and opened
    /// with a key that is still one of `configured_key_ids`. A session whose key is gone is
    /// ended here.
    pub async fn check(
        &self,
        token: &ConsoleToken,
        configured_key_ids: impl Fn(&str) -> bool,
    ) -> Result<Option<ConsoleSession>, Error> {
        let digest = token.digest();
        let Some(session) = self.store.console_session(&digest).await? else {
            return Ok(None);
        };
        if session.expires_ms <= self.clock.now_ms() {
            return Ok(None);
        }
        if !configured_key_ids(&session.key_id) {
            tracing::info!(target: "audit", event = "console_session_ended", admin_key = %session.key_id, reason = "key no longer configured");
            self.store.end_console_session(&digest).await?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends the session behind `token` (signing out).
    pub async fn sign_out(
        &self,
        token: &ConsoleToken,
        session: &ConsoleSession,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.store.end_console_session(&token.digest()).await?;
        tracing::info!(target: "audit", event = "console_signed_out", admin_key = %session.key_id, client_ip = %ip_text(ip));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_other_shapes() {
        let token = ConsoleToken::generate();
        let text = token.expose();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert_eq!(ConsoleToken::parse(&text), Some(token.clone()));
        assert_eq!(ConsoleToken::parse(&text[1..]), None);
        assert_eq!(ConsoleToken::parse(&format!("{}*", &text[1..])), None);
        assert!(!format!("{token:?}").contains(&text));
        assert_ne!(token.digest().0, text);
    }

    #[test]
    fn a_key_id_is_the_start_of_its_digest() {
        let digest: [u8; 32] = Sha256::digest(b"some-key").into();
        let id = key_id(&digest);
        assert_eq!(id.len(), KEY_ID_CHARS);
        assert!(hex::encode(digest).starts_with(&id));
    }
}
