//! The sessions' part: how long a session lives, how many a user may hold, and what the session
//! service and the handlers that act on sessions require.

use std::time::Duration;

use super::{
    ConfigError, Settings, invalid,
    values::{positive, seconds_or},
};
use crate::domain::session::{LimitPolicy, SessionLimit, SessionPolicy};

/// What sessions are allowed.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Timeouts and renewal.
    pub policy: SessionPolicy,
    /// The per-user cap; `None`: no cap.
    pub limit: Option<SessionLimit>,
    /// How recent a proof of the password must be for a password change or "log out
    /// everywhere"; `None`: any session may.
    pub fresh_auth_max_age: Option<Duration>,
    /// Largest app data per session, in bytes of JSON.
    pub data_max_bytes: usize,
    /// Whether logins are published to the event feed (see `domain::events`).
    pub feed_logins: bool,
}

pub(super) fn resolve(s: &Settings) -> Result<SessionConfig, ConfigError> {
    Ok(SessionConfig {
        policy: policy(s)?,
        limit: limit(s)?,
        fresh_auth_max_age: s.fresh_auth_max_age.map(|v| v.0).filter(|d| !d.is_zero()),
        data_max_bytes: positive("SESSION_DATA_MAX_BYTES", s.data_max_bytes, 4096)?,
        feed_logins: s.feed_logins.unwrap_or(false),
    })
}

/// The timeouts, each absolute one no shorter than its idle one, and the renewal point.
fn policy(s: &Settings) -> Result<SessionPolicy, ConfigError> {
    let idle = seconds_or(s.idle_timeout, Duration::from_secs(30 * 60));
    let absolute = seconds_or(s.absolute_timeout, Duration::from_secs(24 * 3600));
    if absolute < idle {
        return Err(invalid(
            "SESSION_ABSOLUTE_TIMEOUT",
            "must not be shorter than SESSION_IDLE_TIMEOUT",
        ));
    }
    let remember_idle = seconds_or(s.remember_idle_timeout, idle);
    let remember_absolute = seconds_or(
        s.remember_absolute_timeout,
        Duration::from_secs(30 * 24 * 3600),
    );
    if remember_absolute < remember_idle {
        return Err(invalid(
            "SESSION_REMEMBER_ABSOLUTE_TIMEOUT",
            "must not be shorter than SESSION_REMEMBER_IDLE_TIMEOUT",
        ));
    }
    let renew_fraction = s.renew_fraction.unwrap_or(0.1);
    // At 1 a session would be due for renewal only once its idle window had passed, i.e.
    // once it had expired: renewal would never happen.
    if !(renew_fraction > 0.0 && renew_fraction < 1.0) {
        return Err(invalid("SESSION_RENEW_FRACTION", "must be in (0, 1)"));
    }
    Ok(SessionPolicy {
        idle,
        absolute,
        remember_idle,
        remember_absolute,
        renew_fraction,
    })
}

/// Sessions a user may hold unless configured otherwise.
///
/// Measured (`bench/per-user.py`, `bench/results/2026-12-04-per-user.md`): every login and logout
/// scans its user's hash (pruning, the cap), so their Redis time grows with the user's sessions
/// (about 0.2 ms per login and logout at 1-10 sessions, 0.45 ms at 128, 1.8-3 ms at 1,000), and
/// past 128 sessions (Redis's default `hash-max-listpack-entries`) the hash leaves the compact
/// encoding (about 95 bytes per session below, 150 above). 100 is far above what a person's
/// devices need, leaves room for tools and bearer tokens, and keeps every user's hash compact and
/// every login cheap. 0 removes the cap.
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 100;

/// The cap on sessions per user (0: none) and what a login beyond it does.
fn limit(s: &Settings) -> Result<Option<SessionLimit>, ConfigError> {
    let max = match s
        .max_sessions_per_user
        .unwrap_or(DEFAULT_MAX_SESSIONS_PER_USER)
    {
        0 => return Ok(None),
        max => max,
    };
    let policy = match s.session_limit_policy.as_deref().unwrap_or("evict-oldest") {
        "evict-oldest" => LimitPolicy::EvictOldest,
        "refuse" => LimitPolicy::Refuse,
        other => {
            return Err(invalid(
                "SESSION_LIMIT_POLICY",
                format!("`{other}`: expected evict-oldest or refuse"),
            ));
        }
    };
    Ok(Some(SessionLimit { max, policy }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_sessions_idle_like_others_unless_told() {
        let c = resolve(&Settings {
            idle_timeout: "60".parse().ok(),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(c.policy.remember_idle, Duration::from_secs(60));
        assert_eq!(c.policy.remember_absolute, Duration::from_secs(2_592_000));
    }

    #[test]
    fn fresh_authentication_is_required_only_when_set() {
        assert_eq!(
            resolve(&Settings::default()).unwrap().fresh_auth_max_age,
            None
        );
        let c = resolve(&Settings {
            fresh_auth_max_age: "300".parse().ok(),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(c.fresh_auth_max_age, Some(Duration::from_secs(300)));
    }

    #[test]
    fn users_hold_at_most_100_sessions_unless_configured() {
        let limit = resolve(&Settings::default()).unwrap().limit.unwrap();
        assert_eq!(
            (limit.max, limit.policy),
            (DEFAULT_MAX_SESSIONS_PER_USER, LimitPolicy::EvictOldest)
        );
        assert_eq!(DEFAULT_MAX_SESSIONS_PER_USER, 100);
    }

    #[test]
    fn the_policy_applies_only_with_a_cap() {
        let uncapped = Settings {
            max_sessions_per_user: Some(0),
            session_limit_policy: Some("nonsense".into()),
            ..Settings::default()
        };
        assert!(resolve(&uncapped).unwrap().limit.is_none());
        let capped = Settings {
            max_sessions_per_user: Some(3),
            session_limit_policy: Some("refuse".into()),
            ..Settings::default()
        };
        let limit = resolve(&capped).unwrap().limit.unwrap();
        assert_eq!((limit.max, limit.policy), (3, LimitPolicy::Refuse));
        assert!(
            resolve(&Settings {
                session_limit_policy: Some("nonsense".into()),
                ..capped
            })
            .is_err()
        );
    }
}
