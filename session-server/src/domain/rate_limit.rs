//! Login throttling rules. The counters live in the store, so every replica sees the same counts.
//!
//! Two counters, each a fixed window that starts at its first hit:
//! * failures per username, from any source address (guessing one account from many IPs);
//! * attempts per client address, successful or not (one address spraying many accounts, or
//!   spending the server's argon2 budget). IPv6 addresses count per network of
//!   [`LoginThrottle::ipv6_prefix`] bits (one host usually owns a whole /64), IPv4 per address.
//!
//! Both are counted *before* the password is hashed (a reservation): concurrent attempts cannot
//! all pass a check made before any of them was counted. Of the username's counter, only a wrong
//! password keeps its reservation; a match, a throttled attempt or a check that could not be made
//! gives it back, so the counter holds the failures plus the checks in flight.

use std::{net::IpAddr, time::Duration};

use ipnet::Ipv6Net;

use sha2::{Digest, Sha256};

use super::user::Username;

/// Thresholds and window of login throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub max_failures_per_user: u32,
    pub max_attempts_per_ip: u32,
    pub window: Duration,
    /// Prefix length by which IPv6 clients are grouped (32-128).
    pub ipv6_prefix: u8,
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

    /// The counter of a client address: IPv4 (also IPv4-mapped IPv6) per address, IPv6 per
    /// network of `ipv6_prefix` bits, written as `<network>/<prefix>`.
    pub fn ip_attempts(ip: IpAddr, ipv6_prefix: u8) -> RateKey {
        match ip {
            IpAddr::V4(v4) => RateKey::IpAttempts(v4.to_string()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => RateKey::IpAttempts(v4.to_string()),
                None => {
                    let prefix = ipv6_prefix.min(128);
                    let network = Ipv6Net::new(v6, prefix)
                        .map(|n| n.trunc())
                        .unwrap_or_else(|_| Ipv6Net::from(v6));
                    RateKey::IpAttempts(network.to_string())
                }
            },
        }
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
            RateKey::ip_attempts("192.0.2.7".parse().unwrap(), 64).store_suffix(),
            "rl:ip:192.0.2.7"
        );
    }

    #[test]
    fn ipv6_addresses_share_the_counter_of_their_network() {
        let key = |ip: &str, prefix| RateKey::ip_attempts(ip.parse().unwrap(), prefix);
        assert_eq!(
            key("2001:db8:1:2:aaaa::1", 64),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64)
        );
        assert_eq!(
            key("2001:db8:1:2::1", 64).store_suffix(),
            "rl:ip:2001:db8:1:2::/64"
        );
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:3::1", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        // IPv4-mapped addresses are IPv4 clients.
        assert_eq!(key("::ffff:192.0.2.7", 64), key("192.0.2.7", 64));
    }
}
