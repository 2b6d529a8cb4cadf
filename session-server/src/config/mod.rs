//! One typed configuration, loaded from a TOML file, the environment and flags, validated at start.
//!
//! Precedence: command-line flag > environment variable > config file > built-in default. Every
//! setting is a field of [`Settings`] (all optional, so that layers can be merged); [`Config`] is
//! the validated result the rest of the program uses. A bad value stops the server at start with a
//! message that names the setting, instead of surfacing later as odd behaviour.
//!
//! [`Config`] is made of parts, one per part of the program, so that each is handed only its own
//! settings: the listeners, the Redis store, sessions, the HTTP edge, passwords, login throttling
//! and logging. A part's settings type is defined by its consumer where that is below this module
//! (the store's [`RedisConfig`], the cookie's [`CookieConfig`]), so that nothing there depends on
//! configuration; this module only builds them.
//!
//! * `settings.rs`: [`Settings`], the one definition of every setting (flag, variable, file key,
//!   description, default), and its layering.
//! * `values.rs`: values parsed from text ([`Seconds`]) and the checks the parts share.
//! * `redis.rs`, `listeners.rs`, `sessions.rs`, `web.rs`, `accounts.rs`, `logging.rs`: one
//!   part's defaults and validation each.
//! * `factors.rs`: second factors (the required assurance level, TOTP's keys and timings).
//! * `traces.rs`: trace export, from OpenTelemetry's standard `OTEL_*` variables rather than
//!   settings of this service's own.
//! * `reference.rs`: the configuration reference page, generated from [`Settings`].

mod accounts;
mod factors;
mod listeners;
mod logging;
mod redis;
pub mod reference;
mod sessions;
mod settings;
mod traces;
mod values;
mod web;

pub use accounts::PasswordConfig;
pub use factors::{FactorConfig, PasskeyConfig};
pub use listeners::ListenerConfig;
pub use logging::LogConfig;
pub use sessions::SessionConfig;
pub use settings::Settings;
pub use traces::{RootSampler, SamplerChoice, TraceConfig};
pub use values::Seconds;
pub use web::WebConfig;

// Defined by the parts that use them; re-exported here, where they are built from settings.
pub use crate::{
    http::{
        cookie::CookieConfig,
        origin::{is_safe_redirect, parse_origin},
    },
    store::{RedisConfig, RedisMode, WaitReplicas},
};

use crate::domain::rate_limit::LoginThrottle;

/// A configuration error, reported once at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    File { path: String, message: String },
    #[error("invalid value for {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// The error for a bad value, named by the setting's environment variable.
fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// The validated configuration, one part per consumer.
#[derive(Debug, Clone)]
pub struct Config {
    /// The public, admin and forward-auth listeners.
    pub listeners: ListenerConfig,
    /// `None`: the embedded in-process store.
    pub redis: Option<RedisConfig>,
    pub sessions: SessionConfig,
    /// Second factors: the required level, TOTP's keys and timings.
    pub factors: FactorConfig,
    /// What the HTTP edge enforces: cookie, origins, pages, registration, proxies, API keys.
    pub web: WebConfig,
    pub passwords: PasswordConfig,
    pub throttle: LoginThrottle,
    pub logging: LogConfig,
    /// `None`: no span is exported (`OTEL_EXPORTER_OTLP_ENDPOINT` unset).
    pub traces: Option<TraceConfig>,
    /// Settings given that no longer have an effect, for a warning at start.
    pub ignored_settings: Vec<&'static str>,
}

impl Config {
    /// Validates merged settings and fills defaults, part by part. The first bad value found is
    /// the error.
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        // Fields are evaluated in the order written: the order in which settings are checked.
        let redis = redis::resolve(&s)?;
        Ok(Config {
            sessions: sessions::resolve(&s)?,
            web: web::resolve(&s)?,
            factors: factors::resolve(&s, redis.is_none())?,
            passwords: accounts::passwords(&s)?,
            throttle: accounts::throttle(&s)?,
            logging: logging::resolve(&s)?,
            traces: traces::resolve(|name| std::env::var(name).ok())?,
            listeners: listeners::resolve(&s)?,
            redis,
            ignored_settings: ignored_settings(&s),
        })
    }

    /// The Redis key prefix in use (also meaningful for diagnostics with the embedded store).
    pub fn key_prefix(&self) -> &str {
        self.redis
            .as_ref()
            .map_or(redis::DEFAULT_PREFIX, |r| r.prefix.as_str())
    }
}

/// Settings still accepted, so that configurations naming them load, but without effect.
fn ignored_settings(s: &Settings) -> Vec<&'static str> {
    s.redis_pool_size
        .map(|_| "SESSION_REDIS_POOL_SIZE")
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_secure_and_valid() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.web.cookie.name, "__Host-session");
        assert!(c.web.cookie.secure);
        assert!(c.redis.is_none());
        assert_eq!(c.passwords.hash.memory_kib, 19_456);
        assert_eq!(c.sessions.policy.idle, Duration::from_secs(1800));
        assert_eq!(c.key_prefix(), "sess");
        assert!(c.ignored_settings.is_empty());
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases = [
            Settings {
                admin_api_keys: Some("not-a-digest".into()),
                ..Settings::default()
            },
            Settings {
                allowed_origins: Some("https://a.example/path".into()),
                ..Settings::default()
            },
            Settings {
                redis_url: Some("http://localhost".into()),
                ..Settings::default()
            },
            Settings {
                redis_url: Some("redis://a".into()),
                redis_cluster_nodes: Some("redis://b".into()),
                ..Settings::default()
            },
            Settings {
                idle_timeout: Some("100".parse().unwrap()),
                absolute_timeout: Some("10".parse().unwrap()),
                ..Settings::default()
            },
            Settings {
                renew_fraction: Some(0.0),
                ..Settings::default()
            },
            Settings {
                renew_fraction: Some(1.0),
                ..Settings::default()
            },
            Settings {
                login_ipv6_prefix: Some(16),
                ..Settings::default()
            },
            Settings {
                login_ipv6_prefix: Some(129),
                ..Settings::default()
            },
            Settings {
                trusted_proxies: Some("10.0.0.0/33".into()),
                ..Settings::default()
            },
            Settings {
                forward_auth_addr: Some("127.0.0.1:8081".parse().unwrap()),
                ..Settings::default()
            },
        ];
        for case in cases {
            let err = Config::from_settings(case).unwrap_err().to_string();
            assert!(err.starts_with("invalid value for "), "{err}");
        }
        assert!("-1".parse::<Seconds>().is_err());
        assert!("NaN".parse::<Seconds>().is_err());
        assert!("1e-10".parse::<Seconds>().is_err());
        assert!(toml::from_str::<Settings>("no_such_setting = 1").is_err());
    }

    #[test]
    fn the_pool_size_is_accepted_with_a_warning() {
        let c = Config::from_settings(Settings {
            redis_pool_size: Some(8),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(c.ignored_settings, ["SESSION_REDIS_POOL_SIZE"]);
    }
}
