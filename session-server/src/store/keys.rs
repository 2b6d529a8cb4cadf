//! The Redis key schema, in one place.
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `<p>:{<uid>}:user` | hash `n h d c v t ts tc r` | none | username, argon2id PHC hash, disabled flag, created (ms), credential version (absent: 0); with a TOTP factor its sealed secret, the last time step used and when it was enrolled (ms); the unused recovery codes' digests (16 bytes each) |
//! | `<p>:{<uid>}:passkeys` | hash | none | the user's passkeys: field the credential id (base64url), value its record (JSON: name, times, the WebAuthn credential with its public key and counter) |
//! | `<p>:passkey:<credential>` | string | none | user id (claims a passkey's credential id for one account) |
//! | `<p>:ceremony:<id>` | string | `SESSION_PASSKEY_TIMEOUT` | a passkey ceremony's state between its two requests (JSON), taken once (`GETDEL`) |
//! | `<p>:{<uid>}:totp` | string | the enrolment's lifetime | a pending TOTP enrolment: the session's handle (16 bytes) and the sealed secret ([`PendingTotp`](super::PendingTotp)) |
//! | `<p>:{<uid>}:sessions` | hash | the latest session expiry | field `<digest>`, value the encoded [`SessionRecord`](crate::domain::session::SessionRecord) (version 2, `domain::record`) |
//! | `<p>:{<uid>}:w` | string | never stored | the replication barrier: written and deleted again by every script whose `WAIT` must confirm it (see `replication.rs`) |
//! | `<p>:name:<username>` | string | none | user id (claims the username) |
//! | `<p>:rl:user:<hash>` | string | window | failed logins for one username (SHA-256 prefix, no user text) |
//! | `<p>:rl:ip:<ip>` | string | window | login attempts from one client address (IPv6: `<network>/<prefix>`) |
//! | `<p>:events` | stream | a week after the last event | the session event feed, ~100,000 entries |
//! | `<p>:console:<digest>` | string | the console session's lifetime | an admin console session, versioned JSON ([`ConsoleSession`](crate::domain::console::ConsoleSession)); `<digest>` the base64url SHA-256 of its token |
//!
//! `<p>` is the configured prefix (default `sess`), `<uid>` the user id as 32 hex digits and
//! `<digest>` the base64url SHA-256 (truncated to 128 bits, 22 characters) of the token's secret.
//!
//! All of a user's sessions are one hash: a key per session costs at least about 340 bytes in
//! Redis's keyspace (dictionary entry, key string, expiry entry, object header) before any data.
//! In the hash a session costs its field and value inside one listpack, about 80 bytes, while
//! the hash stays within Redis's compact encoding (`hash-max-listpack-entries` 128 sessions,
//! `hash-max-listpack-value` 64 bytes per record). Each record carries its own expiry at a fixed
//! offset; the scripts prune expired fields by Redis's clock whenever they write the hash, and
//! the hash itself expires with its longest-lived session.
//!
//! Redis Cluster: `{<uid>}` is a hash tag, so a user's record and sessions share one slot and
//! every multi-key script touches one slot only. The tag is always server-chosen hex; user text
//! never appears inside braces (usernames cannot contain them, and prefixes are validated).

use uuid::Uuid;

use crate::domain::{console::ConsoleDigest, rate_limit::RateKey, user::Username};

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    fn user_slot(&self, user: Uuid) -> String {
        format!("{}:{{{}}}", self.prefix, user.simple())
    }

    pub fn user(&self, user: Uuid) -> String {
        format!("{}:user", self.user_slot(user))
    }

    /// The user's sessions: one hash, field = token digest (`TokenDigest::encode`).
    pub fn sessions(&self, user: Uuid) -> String {
        // Built on every check: one allocation of the exact size, no formatting machinery.
        let mut id = [0u8; uuid::fmt::Simple::LENGTH];
        let id = user.simple().encode_lower(&mut id);
        let mut key = String::with_capacity(self.prefix.len() + id.len() + 12);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push_str(id);
        key.push_str("}:sessions");
        key
    }

    /// The user's pending TOTP enrolment.
    pub fn totp_enrollment(&self, user: Uuid) -> String {
        format!("{}:totp", self.user_slot(user))
    }

    /// The user's passkeys: one hash, field = credential id (base64url), value = its record.
    pub fn passkeys(&self, user: Uuid) -> String {
        format!("{}:passkeys", self.user_slot(user))
    }

    /// A passkey ceremony's state, between its two requests (see `domain::mfa::passkeys`). One
    /// key, no hash tag: used alone.
    pub fn ceremony(&self, id: &str) -> String {
        format!("{}:ceremony:{id}", self.prefix)
    }

    /// Claims a passkey's credential id for one user, so that no other account registers it.
    pub fn passkey_claim(&self, credential: &str) -> String {
        format!("{}:passkey:{credential}", self.prefix)
    }

    /// The user's replication barrier (see `lua/lib.lua`): in the user's slot, never stored.
    pub fn barrier(&self, user: Uuid) -> String {
        format!("{}:w", self.user_slot(user))
    }

    pub fn username(&self, name: &Username) -> String {
        format!("{}:name:{}", self.prefix, name.as_str())
    }

    /// The session event feed (a stream; see `domain::events`).
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// An admin console session (see `domain::console`). One key, no hash tag: no script touches
    /// it together with another key, so any Cluster slot will do.
    pub fn console(&self, digest: &ConsoleDigest) -> String {
        format!("{}:console:{}", self.prefix, digest.0)
    }

    pub fn rate(&self, key: &RateKey) -> String {
        format!("{}:{}", self.prefix, key.store_suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_keys_share_one_hash_tag() {
        let keys = Keys::new("sess");
        let user = Uuid::now_v7();
        let tag = format!("{{{}}}", user.simple());
        for key in [
            keys.user(user),
            keys.sessions(user),
            keys.barrier(user),
            keys.totp_enrollment(user),
            keys.passkeys(user),
        ] {
            assert!(key.starts_with(&format!("sess:{tag}:")), "{key}");
            assert_eq!(key.matches('{').count(), 1);
        }
        assert_eq!(keys.sessions(user), format!("sess:{tag}:sessions"));
    }
}
