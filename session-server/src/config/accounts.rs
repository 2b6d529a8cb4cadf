//! The account service's part: how passwords are hashed (cost and how many at once), and how
//! logins are throttled.

use std::time::Duration;

use super::{
    ConfigError, Settings, invalid,
    values::{cpus, positive, seconds_or},
};
use crate::domain::{password::HashParams, rate_limit::LoginThrottle};

/// The password hasher's settings (see `domain::password::PasswordHasher`).
#[derive(Debug, Clone, Copy)]
pub struct PasswordConfig {
    /// The Argon2id cost of new hashes.
    pub hash: HashParams,
    /// Hashes computed at once.
    pub concurrency: usize,
    /// Hashes allowed to wait for a slot.
    pub queue: usize,
}

pub(super) fn passwords(s: &Settings) -> Result<PasswordConfig, ConfigError> {
    let hash = HashParams {
        memory_kib: positive("SESSION_ARGON2_MEMORY_KIB", s.argon2_memory_kib, 19_456)?,
        iterations: positive("SESSION_ARGON2_ITERATIONS", s.argon2_iterations, 2)?,
        parallelism: positive("SESSION_ARGON2_PARALLELISM", s.argon2_parallelism, 1)?,
    };
    hash.validate()
        .map_err(|m| invalid("SESSION_ARGON2_*", m))?;
    Ok(PasswordConfig {
        hash,
        concurrency: positive("SESSION_ARGON2_CONCURRENCY", s.argon2_concurrency, cpus())?,
        queue: s.argon2_queue.unwrap_or(64),
    })
}

pub(super) fn throttle(s: &Settings) -> Result<LoginThrottle, ConfigError> {
    Ok(LoginThrottle {
        max_failures_per_user: positive(
            "SESSION_LOGIN_MAX_FAILURES_PER_USER",
            s.login_max_failures_per_user,
            10,
        )?,
        max_attempts_per_ip: positive(
            "SESSION_LOGIN_MAX_ATTEMPTS_PER_IP",
            s.login_max_attempts_per_ip,
            100,
        )?,
        window: seconds_or(s.login_window, Duration::from_secs(15 * 60)),
        // Shorter than /32 would lump unrelated networks together; /128 is per address.
        ipv6_prefix: match s.login_ipv6_prefix.unwrap_or(64) {
            p @ 32..=128 => p,
            _ => {
                return Err(invalid(
                    "SESSION_LOGIN_IPV6_PREFIX",
                    "must be between 32 and 128",
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_default_to_the_owasp_cost() {
        let p = passwords(&Settings::default()).unwrap();
        assert_eq!(
            (p.hash.memory_kib, p.hash.iterations, p.hash.parallelism),
            (19_456, 2, 1)
        );
        assert_eq!(p.queue, 64);
        assert!(p.concurrency > 0);
    }

    #[test]
    fn a_zero_cost_is_refused() {
        let err = passwords(&Settings {
            argon2_iterations: Some(0),
            ..Settings::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for SESSION_ARGON2_ITERATIONS: must be greater than 0"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_network_of_32_to_128_bits() {
        assert_eq!(throttle(&Settings::default()).unwrap().ipv6_prefix, 64);
        for (prefix, ok) in [(31, false), (32, true), (128, true), (129, false)] {
            let s = Settings {
                login_ipv6_prefix: Some(prefix),
                ..Settings::default()
            };
            assert_eq!(throttle(&s).is_ok(), ok, "/{prefix}");
        }
    }
}
