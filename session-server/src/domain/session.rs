//! Sessions: the stored record and the lifetime rules (the record's encoding is in
//! `domain::record`).
//!
//! Lifetimes are enforced here, from the record's own timestamps, on every check. The store's
//! TTL only garbage-collects: a session whose TTL was extended by mistake still ends on time.

use std::{net::IpAddr, time::Duration};

use uuid::Uuid;

pub use super::record::RecordError;
use super::{assurance::FactorProof, user_agent};

/// What is kept per session. Encoded with [`SessionRecord::encode`] (see `domain::record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: Uuid,
    /// Kept here so that a check needs no second read for the user record. Usernames never change.
    pub username: String,
    /// Public id of the session, used to list and revoke it. Never the token.
    pub handle: Uuid,
    pub created_ms: u64,
    /// When the session was last renewed (updated only on renewal, see [`SessionPolicy`]).
    pub last_seen_ms: u64,
    pub idle_expires_ms: u64,
    pub absolute_expires_ms: u64,
    pub ip: Option<IpAddr>,
    /// Control characters replaced by spaces, truncated to [`USER_AGENT_MAX`] bytes.
    pub user_agent: String,
    /// When the user last proved their password in this session: at login, then at each
    /// re-authentication ("sudo mode"). Whole seconds after `created_ms`.
    pub authenticated_ms: u64,
    pub kind: SessionKind,
    /// Whether the user asked to stay signed in: a persistent cookie, and the remember timeouts.
    pub remembered: bool,
    /// The second factor proved in this session, if any: the session is then `aal2` (see
    /// `domain::assurance`).
    pub second_factor: Option<FactorProof>,
    /// Whether the session began with a passkey instead of a password (a passwordless sign-in):
    /// its first method is `passkey`, and it is `aal2` from the start (see `domain::assurance`).
    pub passwordless: bool,
    /// Whether the user has a second factor enrolled: set at login from the user's factors, and
    /// on every session of the user when a factor is enrolled (see
    /// [`RequiredAal`](super::assurance::RequiredAal)).
    pub factor_enrolled: bool,
}

/// How the session's token travels, fixed at login. A token is accepted only the way it was
/// issued: a cookie session's token is never a bearer credential, and a bearer session's token
/// is never read from a cookie. A bearer request carries nothing ambient, which is why it is
/// exempt from the cross-site request checks; a token that could also ride in a cookie would
/// break that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionKind {
    /// The browser's `HttpOnly` session cookie.
    #[default]
    Cookie,
    /// `Authorization: Bearer`, for native apps, command-line tools and tests; the token was
    /// handed over once, in the login's response body.
    Bearer,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cookie => "cookie",
            SessionKind::Bearer => "bearer",
        }
    }
}

/// Longest stored user agent, in bytes.
pub const USER_AGENT_MAX: usize = 200;

impl SessionRecord {
    /// When the store may forget the session: whichever limit comes first.
    pub fn expires_ms(&self) -> u64 {
        self.idle_expires_ms.min(self.absolute_expires_ms)
    }
}

/// Idle and absolute timeouts, and when a check renews the idle window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
    /// The idle timeout of a remembered session ("stay signed in").
    pub remember_idle: Duration,
    /// The absolute timeout of a remembered session; its cookie persists until then.
    pub remember_absolute: Duration,
    /// Part of the idle window that must have passed since the last renewal before a check writes
    /// a renewal. Below it a check is a single read; the price is that the effective idle timeout
    /// lies between `idle * (1 - renew_fraction)` and `idle`.
    pub renew_fraction: f64,
}

/// What a check concluded about a stored record.
#[derive(Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    /// Valid, and old enough since its last renewal to be renewed now.
    ValidRenew,
    Expired,
}

/// Who is logging in, and how: the context recorded with a new session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: String,
    pub kind: SessionKind,
    /// "Remember me" was asked for.
    pub remember: bool,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Truncates to at most `max` bytes on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl SessionPolicy {
    /// A record for a session starting now.
    pub fn new_record(
        &self,
        user_id: Uuid,
        username: &str,
        client: &ClientInfo,
        now_ms: u64,
    ) -> SessionRecord {
        let (idle, absolute) = if client.remember {
            (self.remember_idle, self.remember_absolute)
        } else {
            (self.idle, self.absolute)
        };
        SessionRecord {
            user_id,
            username: username.to_owned(),
            handle: Uuid::new_v4(),
            created_ms: now_ms,
            last_seen_ms: now_ms,
            idle_expires_ms: now_ms.saturating_add(ms(idle)),
            absolute_expires_ms: now_ms.saturating_add(ms(absolute)),
            ip: client.ip,
            user_agent: user_agent::sanitize(truncate_utf8(&client.user_agent, USER_AGENT_MAX)),
            authenticated_ms: now_ms,
            kind: client.kind,
            remembered: client.remember,
            second_factor: None,
            passwordless: false,
            factor_enrolled: false,
        }
    }

    /// The idle timeout that applies to `record`.
    fn idle_for(&self, record: &SessionRecord) -> Duration {
        if record.remembered {
            self.remember_idle
        } else {
            self.idle
        }
    }

    pub fn evaluate(&self, record: &SessionRecord, now_ms: u64) -> Validity {
        if now_ms >= record.idle_expires_ms || now_ms >= record.absolute_expires_ms {
            return Validity::Expired;
        }
        let since_renewal = now_ms.saturating_sub(record.last_seen_ms);
        let threshold = (ms(self.idle_for(record)) as f64 * self.renew_fraction) as u64;
        if since_renewal >= threshold && record.idle_expires_ms < record.absolute_expires_ms {
            Validity::ValidRenew
        } else {
            Validity::Valid
        }
    }

    /// The record after a renewal at `now_ms`. Never extends past the absolute expiry.
    pub fn renewed(&self, record: &SessionRecord, now_ms: u64) -> SessionRecord {
        SessionRecord {
            last_seen_ms: now_ms,
            idle_expires_ms: now_ms
                .saturating_add(ms(self.idle_for(record)))
                .min(record.absolute_expires_ms),
            ..record.clone()
        }
    }

    /// The record after its user proved the password again at `now_ms`. The time is kept in
    /// whole seconds after creation (see `domain::record`), rounded down: never later than the
    /// proof.
    pub fn reauthenticated(record: &SessionRecord, now_ms: u64) -> SessionRecord {
        let since = now_ms.saturating_sub(record.created_ms) / 1000;
        SessionRecord {
            authenticated_ms: record.created_ms.saturating_add(since * 1000),
            ..record.clone()
        }
    }
}

/// The optional cap on concurrent sessions per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    pub max: u32,
    pub policy: LimitPolicy,
}

/// What happens to a login beyond the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPolicy {
    /// End the user's least recently active session(s) to make room.
    EvictOldest,
    /// Refuse the new login.
    Refuse,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(100),
            absolute: Duration::from_secs(1000),
            remember_idle: Duration::from_secs(500),
            remember_absolute: Duration::from_secs(10_000),
            renew_fraction: 0.1,
        }
    }

    fn record() -> SessionRecord {
        policy().new_record(
            Uuid::now_v7(),
            "alice",
            &ClientInfo {
                ip: Some("203.0.113.9".parse().unwrap()),
                user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into(),
                ..ClientInfo::default()
            },
            1_700_000_000_000,
        )
    }

    #[test]
    fn checks_renew_only_after_the_configured_part_of_the_idle_window() {
        let p = policy();
        let r = record();
        let t0 = r.created_ms;
        assert_eq!(p.evaluate(&r, t0 + 9_999), Validity::Valid);
        assert_eq!(p.evaluate(&r, t0 + 10_000), Validity::ValidRenew);
        let renewed = p.renewed(&r, t0 + 50_000);
        assert_eq!(renewed.idle_expires_ms, t0 + 150_000);
        assert_eq!(p.evaluate(&renewed, t0 + 55_000), Validity::Valid);
    }

    #[test]
    fn idle_and_absolute_limits_both_end_a_session() {
        let p = policy();
        let r = record();
        let t0 = r.created_ms;
        assert_eq!(p.evaluate(&r, t0 + 100_000), Validity::Expired);
        // Renewed every 50 s, it still ends at the absolute limit.
        let mut cur = r.clone();
        let mut now = t0;
        while now + 50_000 < t0 + 1_000_000 {
            now += 50_000;
            assert_ne!(p.evaluate(&cur, now), Validity::Expired, "at {now}");
            cur = p.renewed(&cur, now);
        }
        assert!(cur.idle_expires_ms <= cur.absolute_expires_ms);
        assert_eq!(p.evaluate(&cur, t0 + 1_000_000), Validity::Expired);
    }

    #[test]
    fn a_remembered_session_has_the_remember_timeouts_throughout() {
        let p = policy();
        let r = p.new_record(
            Uuid::nil(),
            "alice",
            &ClientInfo {
                remember: true,
                ..ClientInfo::default()
            },
            0,
        );
        assert!(r.remembered);
        assert_eq!(
            (r.idle_expires_ms, r.absolute_expires_ms),
            (500_000, 10_000_000)
        );
        // Renewal is due after a tenth of its own idle window, and renews by that window.
        assert_eq!(p.evaluate(&r, 49_999), Validity::Valid);
        assert_eq!(p.evaluate(&r, 50_000), Validity::ValidRenew);
        assert_eq!(p.renewed(&r, 50_000).idle_expires_ms, 550_000);
        assert_eq!(p.evaluate(&r, 600_000), Validity::Expired);
    }

    #[test]
    fn reauthentication_records_whole_seconds_never_after_the_proof() {
        let r = record();
        let again = SessionPolicy::reauthenticated(&r, r.created_ms + 61_999);
        assert_eq!(again.authenticated_ms, r.created_ms + 61_000);
        assert_eq!(r.authenticated_ms, r.created_ms);
        assert_eq!(again.last_seen_ms, r.last_seen_ms);
    }

    #[test]
    fn user_agents_are_stored_without_control_characters() {
        let r = policy().new_record(
            Uuid::nil(),
            "alice",
            &ClientInfo {
                ip: None,
                user_agent: "curl/8\t\u{1}x\u{85}".into(),
                ..ClientInfo::default()
            },
            0,
        );
        assert_eq!(r.user_agent, "curl/8  x ");
    }

    #[test]
    fn user_agents_are_truncated_on_a_character_boundary() {
        let ua = "ü".repeat(300);
        let cut = truncate_utf8(&ua, USER_AGENT_MAX);
        assert!(cut.len() <= USER_AGENT_MAX);
        assert!(cut.chars().all(|c| c == 'ü'));
    }
}
