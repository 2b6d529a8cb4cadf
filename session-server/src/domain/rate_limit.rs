//! Login throttling rules. The counters live in the store, so every replica sees the same counts.
//!
//! Two counters, each a fixed window that starts at its first hit:
//! * failures per username, from any source address (guessing one account from many IPs);
//! * attempts per client IP, successful or not (one address spraying many accounts, or
//!   spending the server's argon2 budget).

use std::{net::IpAddr, time::Duration};

use sha2::{Digest, Sha256};

use super::user::Username;

/// Thresholds and window of login throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub max_failures_per_user: u32,
    pub max_attempts_per_ip: u32,
    pub window: Duration,
}

/// A throttling counter's identity. Usernames are hashed so the key holds no user-typed text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    UserFailures(String),
    IpAttempts(String),
}

impl RateKey {
    pub fn user_failures(username: &Username) -> RateKey {
        let digest = Sha256::digest(username.as_str().as_bytes());
        RateKey::UserFailures(hex::encode(&digest[..16]))
    }

    pub fn ip_attempts(ip: IpAddr) -> RateKey {
        RateKey::IpAttempts(ip.to_string())
    }

    /// The key's suffix in the store's key schema.
    pub fn store_suffix(&self) -> String {
        match self {
            RateKey::UserFailures(h) => format!("rl:user:{h}"),
            RateKey::IpAttempts(ip) => format!("rl:ip:{ip}"),
        }
    }
}

/// A counter's state after a hit or peek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    pub count: u32,
    /// Time until the window ends (zero when no window is open).
    pub resets_in: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_hold_no_user_text() {
        let key = RateKey::user_failures(&Username::parse("alice").unwrap());
        assert!(!key.store_suffix().contains("alice"));
        assert_eq!(
            RateKey::ip_attempts("::1".parse().unwrap()).store_suffix(),
            "rl:ip:::1"
        );
    }
}
