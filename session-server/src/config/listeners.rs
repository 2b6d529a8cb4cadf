//! The HTTP servers' part: where each listener binds and how its server runs (`startup.rs`).

use std::{net::SocketAddr, time::Duration};

use super::{
    ConfigError, Settings, invalid,
    values::{cpus, positive, seconds_or},
};

/// The listeners and their servers.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The forward-auth listener, if any (no API key: an internal address).
    pub forward_auth_addr: Option<SocketAddr>,
    /// Worker threads per listener.
    pub workers: usize,
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
}

pub(super) fn resolve(s: &Settings) -> Result<ListenerConfig, ConfigError> {
    let public_addr = s
        .public_addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let admin_addr = s
        .admin_addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
    // Port 0 (any free port, as in tests) is the only value two listeners may share.
    if let Some(addr) = s.forward_auth_addr
        && addr.port() != 0
        && (addr == public_addr || addr == admin_addr)
    {
        return Err(invalid(
            "SESSION_FORWARD_AUTH_ADDR",
            "must differ from the public and admin addresses",
        ));
    }
    Ok(ListenerConfig {
        public_addr,
        admin_addr,
        forward_auth_addr: s.forward_auth_addr,
        workers: positive("SESSION_WORKERS", s.workers, cpus())?,
        max_body_bytes: positive("SESSION_MAX_BODY_BYTES", s.max_body_bytes, 16 * 1024)?,
        shutdown_timeout: seconds_or(s.shutdown_timeout, Duration::from_secs(30)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_default_to_loopback() {
        let l = resolve(&Settings::default()).unwrap();
        assert_eq!(l.public_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(l.admin_addr.to_string(), "127.0.0.1:8081");
        assert!(l.forward_auth_addr.is_none());
        assert_eq!(l.max_body_bytes, 16_384);
    }

    #[test]
    fn only_port_zero_may_be_shared_with_forward_auth() {
        let any_port = "127.0.0.1:0".parse().ok();
        let shared = Settings {
            public_addr: any_port,
            admin_addr: any_port,
            forward_auth_addr: any_port,
            ..Settings::default()
        };
        assert!(resolve(&shared).is_ok());
        let clash = Settings {
            forward_auth_addr: "127.0.0.1:8080".parse().ok(),
            ..Settings::default()
        };
        assert!(resolve(&clash).is_err());
    }
}
