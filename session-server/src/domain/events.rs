//! The session event feed: a durable, bounded, replayable record of every session event.
//!
//! Every login, every end of a session (logout, revocation, revoke-all, password change, user
//! disabled, eviction by the per-user cap) and every change of what a check returns (app data
//! written, re-authentication) is appended to the feed after the change itself.
//! Consumers read it by position (`GET /admin/v1/events`): session-client uses it to drop cached
//! sessions at once; audit pipelines and webhooks can follow it too. It is a Redis Stream
//! (`<prefix>:events`, trimmed to about [`FEED_MAX_LEN`] entries, expiring a week after its last
//! event), or an in-process ring with the embedded store.
//!
//! A consumer that comes back after its position was trimmed away, or after the feed was lost
//! (e.g. a Redis restart without persistence), is told to `reset`: it cannot know what it missed
//! and must forget what it derived from the feed.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// About how many events the feed keeps.
pub const FEED_MAX_LEN: usize = 100_000;

/// What happened. Types this version does not know (written by a newer replica during a rolling
/// upgrade) are carried through as [`EventKind::Other`], so readers still see and skip past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Login,
    Logout,
    Revoked,
    RevokedAll,
    PasswordChanged,
    UserDisabled,
    Evicted,
    /// The session lives on, but what a check returns changed: its app data was written or its
    /// user re-authenticated. Caches drop it, so that the next check reads it afresh.
    Updated,
    /// The user's second factors changed (enrolled, removed, recovery codes regenerated, reset by
    /// an administrator). `handles` are the sessions that ended with it; with `all`, every
    /// session of the user changed what its check returns (its level requirement), so caches
    /// drop them all.
    FactorsChanged,
    /// A recovery code was used in the session named (which is also `session_updated`).
    RecoveryCodeUsed,
    /// A type unknown to this version. Consumers should treat anything but `login` as an end of
    /// the sessions the event names.
    Other(String),
}

const KNOWN: [EventKind; 10] = [
    EventKind::Login,
    EventKind::Logout,
    EventKind::Revoked,
    EventKind::RevokedAll,
    EventKind::PasswordChanged,
    EventKind::UserDisabled,
    EventKind::Evicted,
    EventKind::Updated,
    EventKind::FactorsChanged,
    EventKind::RecoveryCodeUsed,
];

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Login => "login",
            EventKind::Logout => "logout",
            EventKind::Revoked => "revoked",
            EventKind::RevokedAll => "revoked_all",
            EventKind::PasswordChanged => "password_changed",
            EventKind::UserDisabled => "user_disabled",
            EventKind::Evicted => "evicted",
            EventKind::Updated => "session_updated",
            EventKind::FactorsChanged => "factors_changed",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::Other(text) => text,
        }
    }

    /// Reads a stored type; never fails (see [`EventKind::Other`]).
    pub fn parse(text: &str) -> EventKind {
        KNOWN
            .into_iter()
            .find(|k| k.as_str() == text)
            .unwrap_or_else(|| EventKind::Other(text.to_owned()))
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Who caused an event through the admin listener (the admin API or the admin console): the
/// admin key by its id, never the key, and the client address. Events caused by the user or by
/// the service itself have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Actor {
    /// The admin API key's id: the first 12 hex digits of its SHA-256 digest.
    #[schema(example = "cb23b7cdae97")]
    pub admin_key: String,
    /// The client's address (behind trusted proxies, from `X-Forwarded-For`), when known.
    #[schema(value_type = Option<String>, example = "192.0.2.10")]
    pub client_ip: Option<IpAddr>,
}

impl Actor {
    /// The span an admin's work runs in: target `audit`, so that a filter keeping only the
    /// audit trail (`SESSION_LOG=audit=info`) keeps these fields too. `via`: `api` or `console`.
    pub fn span(&self, via: &'static str) -> tracing::Span {
        let ip = super::console::ip_text(self.client_ip);
        tracing::info_span!(target: "audit", "admin", admin_key = %self.admin_key, client_ip = %ip, via)
    }
}

/// One event. `handles` are the sessions it concerns (for `login`, the new one); `all_except`
/// is set when every session of the user ended except, possibly, the one named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SessionEvent {
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: EventKind,
    pub user_id: Uuid,
    pub handles: Vec<Uuid>,
    /// Every session of the user ended (but `kept`, if any).
    pub all: bool,
    pub kept: Option<Uuid>,
    pub at_ms: u64,
    /// Who caused it through the admin listener, if anyone did.
    pub by: Option<Actor>,
}

/// A position in the feed: the id of the last event read, or the feed's current end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedPosition {
    /// Only events appended from now on.
    Latest,
    /// Events after this id (`0-0`: from the beginning).
    After(String),
}

/// A batch read from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<(String, SessionEvent)>,
    /// The position to ask from next time.
    pub last_id: String,
    /// The asked position is gone: events after it were trimmed or lost.
    pub reset: bool,
}

/// Parses a stream id `ms-seq`.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}
