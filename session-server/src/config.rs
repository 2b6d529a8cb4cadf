//! One typed configuration, loaded from a TOML file, the environment and flags, validated at start.
//!
//! Precedence: command-line flag > environment variable > config file > built-in default. Every
//! setting is a field of [`Settings`] (all optional, so that layers can be merged); [`Config`] is
//! the validated result the rest of the program uses. A bad value stops the server at start with a
//! message that names the setting, instead of surfacing later as odd behaviour.

use std::{net::SocketAddr, path::Path, str::FromStr, time::Duration};

use clap::builder::BoolishValueParser;
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::{
    password::HashParams,
    rate_limit::LoginThrottle,
    session::{LimitPolicy, SessionLimit, SessionPolicy},
};

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

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// A duration in (possibly fractional) seconds: `1800`, `0.5`.
///
/// Fractions exist so tests can run expiry with sub-second timeouts instead of long sleeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?;
        Self::from_f64(value)
    }
}

impl Seconds {
    fn from_f64(value: f64) -> Result<Self, String> {
        let error = || format!("{value} must be a positive number of seconds (at most 10 years)");
        if !value.is_finite() || value <= 0.0 || value > 10.0 * 365.0 * 86_400.0 {
            return Err(error());
        }
        // Below a nanosecond a positive value would still become a zero duration.
        let duration = Duration::from_secs_f64(value);
        if duration.is_zero() {
            return Err(error());
        }
        Ok(Seconds(duration))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Int(v) => Seconds::from_f64(v as f64),
            Raw::Float(v) => Seconds::from_f64(v),
            Raw::Text(v) => v.parse(),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// How many Redis replicas must confirm a write that ends sessions before it is acknowledged
/// (`SESSION_REDIS_WAIT_REPLICAS`): `auto` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitReplicas {
    /// 1 wherever the topology has replicas: always with Sentinel; with Cluster or a standalone
    /// primary, once Redis reports a replica. 0 for a lone primary.
    #[default]
    Auto,
    /// Exactly this many (0: acknowledge without confirmation, which a failover can undo).
    Exactly(u32),
}

impl FromStr for WaitReplicas {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(WaitReplicas::Auto);
        }
        s.parse()
            .map(WaitReplicas::Exactly)
            .map_err(|_| format!("`{s}` is neither `auto` nor a number of replicas"))
    }
}

impl std::fmt::Display for WaitReplicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReplicas::Auto => f.write_str("auto"),
            WaitReplicas::Exactly(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for WaitReplicas {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(WaitReplicas::Exactly(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

// Every setting, optional so that file, environment and flags can be layered. Field docs are the
// `--help` text. (A plain comment: clap would show a doc comment here as the program's summary.)
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Redis URL (redis://[user:pass@]host:port/db). Unset: the embedded in-process store, which
    /// does not share sessions between replicas.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Comma-separated Redis Cluster seed nodes (redis://host:port,...). Use instead of REDIS_URL.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    /// Comma-separated Sentinel addresses (redis://host:26379,...). Use instead of REDIS_URL.
    #[arg(long, env = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    /// Name of the primary the Sentinels watch.
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Replicas that must confirm (Redis `WAIT`) a write that ends sessions (logout, revocation,
    /// password change, disable) before it is acknowledged: `auto` (default: 1 wherever the
    /// topology has replicas, 0 for a lone primary) or a number (0: never wait, so a failover
    /// can undo an acknowledged logout).
    #[arg(long, env = "SESSION_REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<WaitReplicas>,
    /// Ignored: a replica opens one Redis connection per thread that uses Redis. Still accepted
    /// so that configurations naming it keep loading; a warning says it has no effect.
    #[arg(long, env = "SESSION_REDIS_POOL_SIZE")]
    pub redis_pool_size: Option<usize>,
    /// Seconds to wait for a Redis connection or reply before answering 503.
    #[arg(long, env = "SESSION_REDIS_TIMEOUT")]
    pub redis_timeout: Option<Seconds>,
    /// Prefix of every Redis key this service writes (no braces, no spaces).
    #[arg(long, env = "SESSION_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,

    /// Address of the public listener (login, logout, who-am-I, devices).
    #[arg(long, env = "SESSION_PUBLIC_ADDR")]
    pub public_addr: Option<SocketAddr>,
    /// Address of the admin/service listener (session checks, user administration).
    #[arg(long, env = "SESSION_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Address of the optional forward-auth listener: `GET /forward-auth` without an API key,
    /// for reverse proxies that cannot add a header to their auth request. Bind it to an
    /// address only the proxy reaches. Unset: no such listener.
    #[arg(long, env = "SESSION_FORWARD_AUTH_ADDR")]
    pub forward_auth_addr: Option<SocketAddr>,
    /// HTTP worker threads per listener (default: number of CPUs).
    #[arg(long, env = "SESSION_WORKERS")]
    pub workers: Option<usize>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SESSION_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds a graceful shutdown (SIGTERM) waits for in-flight requests.
    #[arg(long, env = "SESSION_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Seconds>,

    /// Idle (sliding) timeout in seconds: a session unused this long ends.
    #[arg(long, env = "SESSION_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Seconds>,
    /// Absolute timeout in seconds: a session ends this long after login, however active.
    #[arg(long, env = "SESSION_ABSOLUTE_TIMEOUT")]
    pub absolute_timeout: Option<Seconds>,
    /// Absolute timeout in seconds of a remembered session ("remember me" at login): its cookie
    /// persists, across browser restarts, until then. Default 30 days.
    #[arg(long, env = "SESSION_REMEMBER_ABSOLUTE_TIMEOUT")]
    pub remember_absolute_timeout: Option<Seconds>,
    /// Idle timeout in seconds of a remembered session. Default: SESSION_IDLE_TIMEOUT, the same
    /// as other sessions; raise it (to a week, say) for "stay signed in" that survives days away.
    #[arg(long, env = "SESSION_REMEMBER_IDLE_TIMEOUT")]
    pub remember_idle_timeout: Option<Seconds>,
    /// Seconds within which a session must have proved the password (at login, or with
    /// `POST /v1/session/reauthenticate`) to change the password or log out everywhere. Unset
    /// or 0: no such requirement.
    #[arg(long, env = "SESSION_FRESH_AUTH_MAX_AGE")]
    pub fresh_auth_max_age: Option<Seconds>,
    /// Largest app data a session may hold, in bytes of JSON. Default 4096.
    #[arg(long, env = "SESSION_DATA_MAX_BYTES")]
    pub data_max_bytes: Option<usize>,
    /// Part of the idle window (0 < f <= 1) that must pass before a check renews the session;
    /// checks in between are a single Redis read.
    #[arg(long, env = "SESSION_RENEW_FRACTION")]
    pub renew_fraction: Option<f64>,
    /// Most concurrent sessions per user (0: no cap).
    #[arg(long, env = "SESSION_MAX_PER_USER")]
    pub max_sessions_per_user: Option<u32>,
    /// What a login beyond the cap does: `evict-oldest` (end the least recently active session)
    /// or `refuse` (the new login fails with 403 session_limit_reached).
    #[arg(long, env = "SESSION_LIMIT_POLICY")]
    pub session_limit_policy: Option<String>,

    /// Session cookie name. The `__Host-` prefix is dropped when SESSION_COOKIE_SECURE=false.
    #[arg(long, env = "SESSION_COOKIE_NAME")]
    pub cookie_name: Option<String>,
    /// `false` is the plain-HTTP localhost development mode: no `Secure` flag, no `__Host-` prefix.
    #[arg(long, env = "SESSION_COOKIE_SECURE", value_parser = BoolishValueParser::new())]
    pub cookie_secure: Option<bool>,
    /// Comma-separated origins (scheme://host[:port]) allowed to send state-changing requests and
    /// to be the target of a login redirect (`return_to`).
    #[arg(long, env = "SESSION_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Where a failed HTML form login is redirected (with `?error=<code>`); a path or an allowed
    /// origin's URL.
    #[arg(long, env = "SESSION_LOGIN_PAGE")]
    pub login_page: Option<String>,
    /// Where a failed HTML form re-authentication is redirected (with `?error=<code>` and the
    /// form's `return_to`); a path or an allowed origin's URL.
    #[arg(long, env = "SESSION_REAUTH_PAGE")]
    pub reauth_page: Option<String>,
    /// Whether `POST /v1/users` (self-service registration) is open.
    #[arg(long, env = "SESSION_REGISTRATION", value_parser = BoolishValueParser::new())]
    pub registration: Option<bool>,
    /// Whether logins are appended to the event feed too (default: only ends of sessions are,
    /// which is all a cache needs; every login is in the audit log either way).
    #[arg(long, env = "SESSION_FEED_LOGINS", value_parser = BoolishValueParser::new())]
    pub feed_logins: Option<bool>,
    /// Comma-separated SHA-256 hex digests of the admin API keys (never the keys themselves).
    #[arg(long, env = "SESSION_ADMIN_API_KEYS")]
    pub admin_api_keys: Option<String>,
    /// Comma-separated proxy addresses or CIDR ranges whose X-Forwarded-For is trusted.
    #[arg(long, env = "SESSION_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// Argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "SESSION_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "SESSION_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<u32>,
    /// Argon2id lanes (OWASP: 1).
    #[arg(long, env = "SESSION_ARGON2_PARALLELISM")]
    pub argon2_parallelism: Option<u32>,
    /// Password hashes computed at once, on blocking threads (default: number of CPUs).
    #[arg(long, env = "SESSION_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,
    /// Password hashes allowed to wait for a slot; beyond that a login answers 503 at once.
    #[arg(long, env = "SESSION_ARGON2_QUEUE")]
    pub argon2_queue: Option<usize>,

    /// Failed logins per username within the window before that username is throttled.
    #[arg(long, env = "SESSION_LOGIN_MAX_FAILURES_PER_USER")]
    pub login_max_failures_per_user: Option<u32>,
    /// Login and registration attempts per client IP within the window.
    #[arg(long, env = "SESSION_LOGIN_MAX_ATTEMPTS_PER_IP")]
    pub login_max_attempts_per_ip: Option<u32>,
    /// IPv6 clients are counted per network of this prefix length (IPv4 per address): one
    /// host usually holds a whole /64, so counting per address would give it 2^64 budgets.
    #[arg(long, env = "SESSION_LOGIN_IPV6_PREFIX")]
    pub login_ipv6_prefix: Option<u8>,
    /// Throttling window in seconds.
    #[arg(long, env = "SESSION_LOGIN_WINDOW")]
    pub login_window: Option<Seconds>,

    /// Log output: `text` or `json`.
    #[arg(long, env = "SESSION_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info,session_server=debug`.
    #[arg(long, env = "SESSION_LOG")]
    pub log: Option<String>,
}

macro_rules! layer {
    ($top:expr, $bottom:expr, $($field:ident),+ $(,)?) => {
        Settings { $($field: $top.$field.or($bottom.$field)),+ }
    };
}

impl Settings {
    /// Fills every unset field of `self` from `lower` (a lower-precedence layer).
    pub fn or(self, lower: Settings) -> Settings {
        layer!(
            self,
            lower,
            redis_url,
            redis_cluster_nodes,
            redis_sentinels,
            redis_sentinel_master,
            redis_wait_replicas,
            redis_pool_size,
            redis_timeout,
            redis_prefix,
            public_addr,
            admin_addr,
            forward_auth_addr,
            workers,
            max_body_bytes,
            shutdown_timeout,
            idle_timeout,
            absolute_timeout,
            remember_absolute_timeout,
            remember_idle_timeout,
            fresh_auth_max_age,
            data_max_bytes,
            renew_fraction,
            max_sessions_per_user,
            session_limit_policy,
            cookie_name,
            cookie_secure,
            allowed_origins,
            login_page,
            reauth_page,
            registration,
            feed_logins,
            admin_api_keys,
            trusted_proxies,
            argon2_memory_kib,
            argon2_iterations,
            argon2_parallelism,
            argon2_concurrency,
            argon2_queue,
            login_max_failures_per_user,
            login_max_attempts_per_ip,
            login_ipv6_prefix,
            login_window,
            log_format,
            log,
        )
    }

    /// Reads a TOML file whose keys are the long flag names with `_` (e.g. `idle_timeout = 1800`).
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })
    }
}

/// How the Redis deployment is reached. URLs may carry passwords, so they are never printed.
#[derive(Debug, Clone)]
pub enum RedisMode {
    Standalone {
        url: SecretString,
    },
    Cluster {
        nodes: Vec<SecretString>,
    },
    Sentinel {
        sentinels: Vec<SecretString>,
        master: String,
    },
}

/// Connection settings for the Redis store.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub mode: RedisMode,
    /// Replicas that must confirm the writes that end sessions (see `store::replication`).
    pub wait_replicas: WaitReplicas,
    pub timeout: Duration,
    pub prefix: String,
}

/// The session cookie as the browser will see it.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub name: String,
    pub secure: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: the embedded in-process store.
    pub redis: Option<RedisConfig>,
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The forward-auth listener, if any (no API key: an internal address).
    pub forward_auth_addr: Option<SocketAddr>,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub session: SessionPolicy,
    /// How recent a proof of the password must be for a password change or "log out
    /// everywhere"; `None`: any session may.
    pub fresh_auth_max_age: Option<Duration>,
    /// Largest app data per session, in bytes of JSON.
    pub data_max_bytes: usize,
    pub session_limit: Option<SessionLimit>,
    pub cookie: CookieConfig,
    pub allowed_origins: Vec<String>,
    pub login_page: String,
    pub reauth_page: String,
    pub registration: bool,
    /// Whether logins are published to the event feed (see `domain::events`).
    pub feed_logins: bool,
    pub admin_api_key_digests: Vec<[u8; 32]>,
    pub trusted_proxies: Vec<IpNet>,
    pub hash_params: HashParams,
    pub argon2_concurrency: usize,
    pub argon2_queue: usize,
    pub throttle: LoginThrottle,
    pub log_json: bool,
    pub log_filter: String,
    /// Settings given that no longer have an effect, for a warning at start.
    pub ignored_settings: Vec<&'static str>,
}

fn comma_list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Normalises `scheme://host[:port]` (no path, query or fragment) to its serialised origin.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let parsed = url::Url::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{text}`: only http and https origins"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "`{text}`: an origin has no path, query or fragment"
        ));
    }
    Ok(parsed.origin().ascii_serialization())
}

/// Whether `target` may be used as a redirect: a same-site path (`/...`, not `//...`), or an
/// absolute http(s) URL whose origin is allowed. Prevents open redirects.
pub fn is_safe_redirect(target: &str, allowed_origins: &[String]) -> bool {
    if target.is_empty()
        || target.len() > 2048
        || target.chars().any(|c| c.is_control() || c == '\\')
    {
        return false;
    }
    if target.starts_with('/') {
        if target.starts_with("//") {
            return false;
        }
        // Resolve against a placeholder host; a path that escapes it is not a path.
        let base = url::Url::parse("http://placeholder.invalid/").ok();
        return base
            .and_then(|b| b.join(target).ok())
            .is_some_and(|u| u.host_str() == Some("placeholder.invalid"));
    }
    url::Url::parse(target).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && allowed_origins.contains(&u.origin().ascii_serialization())
    })
}

fn positive<T: PartialOrd + Default + Copy>(
    setting: &'static str,
    value: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v <= T::default() {
        return Err(invalid(setting, "must be greater than 0"));
    }
    Ok(v)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Config {
    /// Validates merged settings and fills defaults.
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let prefix = s.redis_prefix.unwrap_or_else(|| "sess".to_owned());
        if prefix.is_empty()
            || prefix.len() > 32
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
        {
            return Err(invalid(
                "SESSION_REDIS_PREFIX",
                "1-32 characters of a-z, A-Z, 0-9, - _ : .",
            ));
        }
        let redis_url_ok = |url: &str| {
            ["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| url.starts_with(p))
        };
        let urls = |setting: &'static str, value: Option<String>| {
            comma_list(value)
                .into_iter()
                .map(|u| {
                    if redis_url_ok(&u) {
                        Ok(SecretString::from(u))
                    } else {
                        Err(invalid(
                            setting,
                            "each entry must start with redis:// or rediss://",
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let url = s.redis_url.filter(|u| !u.trim().is_empty());
        let cluster = urls("REDIS_CLUSTER_NODES", s.redis_cluster_nodes)?;
        let sentinels = urls("REDIS_SENTINELS", s.redis_sentinels)?;
        let mode = match (url, cluster.is_empty(), sentinels.is_empty()) {
            (None, true, true) => None,
            (Some(url), true, true) => {
                if !redis_url_ok(&url) {
                    return Err(invalid(
                        "REDIS_URL",
                        "must start with redis://, rediss:// or unix://",
                    ));
                }
                Some(RedisMode::Standalone {
                    url: SecretString::from(url),
                })
            }
            (None, false, true) => Some(RedisMode::Cluster { nodes: cluster }),
            (None, true, false) => Some(RedisMode::Sentinel {
                sentinels,
                master: s
                    .redis_sentinel_master
                    .unwrap_or_else(|| "mymaster".to_owned()),
            }),
            _ => {
                return Err(invalid(
                    "REDIS_URL",
                    "set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS",
                ));
            }
        };
        let wait_replicas = s.redis_wait_replicas.unwrap_or_default();
        let redis = match mode {
            None => None,
            Some(mode) => Some(RedisConfig {
                mode,
                wait_replicas,
                timeout: s.redis_timeout.map_or(Duration::from_secs(1), |v| v.0),
                prefix,
            }),
        };

        let idle = s.idle_timeout.map_or(Duration::from_secs(30 * 60), |v| v.0);
        let absolute = s
            .absolute_timeout
            .map_or(Duration::from_secs(24 * 3600), |v| v.0);
        if absolute < idle {
            return Err(invalid(
                "SESSION_ABSOLUTE_TIMEOUT",
                "must not be shorter than SESSION_IDLE_TIMEOUT",
            ));
        }
        let remember_idle = s.remember_idle_timeout.map_or(idle, |v| v.0);
        let remember_absolute = s
            .remember_absolute_timeout
            .map_or(Duration::from_secs(30 * 24 * 3600), |v| v.0);
        if remember_absolute < remember_idle {
            return Err(invalid(
                "SESSION_REMEMBER_ABSOLUTE_TIMEOUT",
                "must not be shorter than SESSION_REMEMBER_IDLE_TIMEOUT",
            ));
        }
        let fresh_auth_max_age = s.fresh_auth_max_age.map(|v| v.0).filter(|d| !d.is_zero());
        let renew_fraction = s.renew_fraction.unwrap_or(0.1);
        // At 1 a session would be due for renewal only once its idle window had passed, i.e.
        // once it had expired: renewal would never happen.
        if !(renew_fraction > 0.0 && renew_fraction < 1.0) {
            return Err(invalid("SESSION_RENEW_FRACTION", "must be in (0, 1)"));
        }
        let session_limit = match s.max_sessions_per_user.unwrap_or(0) {
            0 => None,
            max => {
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
                Some(SessionLimit { max, policy })
            }
        };

        let secure = s.cookie_secure.unwrap_or(true);
        let mut cookie_name = s.cookie_name.unwrap_or_else(|| "__Host-session".to_owned());
        if !secure && let Some(rest) = cookie_name.strip_prefix("__Host-") {
            cookie_name = rest.to_owned();
        }
        if cookie_name.is_empty()
            || cookie_name.len() > 64
            || !cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(invalid(
                "SESSION_COOKIE_NAME",
                "1-64 characters of a-z, A-Z, 0-9, - _",
            ));
        }

        let allowed_origins = comma_list(s.allowed_origins)
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| invalid("SESSION_ALLOWED_ORIGINS", m))?;
        let login_page = s.login_page.unwrap_or_else(|| "/login".to_owned());
        if !is_safe_redirect(&login_page, &allowed_origins) {
            return Err(invalid(
                "SESSION_LOGIN_PAGE",
                "must be a path (/...) or a URL on one of SESSION_ALLOWED_ORIGINS",
            ));
        }
        let reauth_page = s
            .reauth_page
            .unwrap_or_else(|| "/reauthenticate".to_owned());
        if !is_safe_redirect(&reauth_page, &allowed_origins) {
            return Err(invalid(
                "SESSION_REAUTH_PAGE",
                "must be a path (/...) or a URL on one of SESSION_ALLOWED_ORIGINS",
            ));
        }

        let admin_api_key_digests = comma_list(s.admin_api_keys)
            .iter()
            .map(|d| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(d, &mut out).map(|()| out).map_err(|_| {
                    invalid(
                        "SESSION_ADMIN_API_KEYS",
                        "each entry must be a 64-character SHA-256 hex digest (see `session-server api-key new`)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = comma_list(s.trusted_proxies)
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "SESSION_TRUSTED_PROXIES",
                            format!("`{p}` is not an IP address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let hash_params = HashParams {
            memory_kib: positive("SESSION_ARGON2_MEMORY_KIB", s.argon2_memory_kib, 19_456)?,
            iterations: positive("SESSION_ARGON2_ITERATIONS", s.argon2_iterations, 2)?,
            parallelism: positive("SESSION_ARGON2_PARALLELISM", s.argon2_parallelism, 1)?,
        };
        hash_params
            .validate()
            .map_err(|m| invalid("SESSION_ARGON2_*", m))?;

        let throttle = LoginThrottle {
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
            window: s.login_window.map_or(Duration::from_secs(15 * 60), |v| v.0),
            ipv6_prefix: match s.login_ipv6_prefix.unwrap_or(64) {
                p @ 32..=128 => p,
                _ => {
                    return Err(invalid(
                        "SESSION_LOGIN_IPV6_PREFIX",
                        "must be between 32 and 128",
                    ));
                }
            },
        };

        let log_json = match s.log_format.as_deref().unwrap_or("text") {
            "text" => false,
            "json" => true,
            other => {
                return Err(invalid(
                    "SESSION_LOG_FORMAT",
                    format!("`{other}`: expected text or json"),
                ));
            }
        };

        let ignored_settings = s
            .redis_pool_size
            .map(|_| "SESSION_REDIS_POOL_SIZE")
            .into_iter()
            .collect();
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

        Ok(Config {
            ignored_settings,
            redis,
            public_addr,
            admin_addr,
            forward_auth_addr: s.forward_auth_addr,
            workers: positive("SESSION_WORKERS", s.workers, cpus())?,
            max_body_bytes: positive("SESSION_MAX_BODY_BYTES", s.max_body_bytes, 16 * 1024)?,
            shutdown_timeout: s.shutdown_timeout.map_or(Duration::from_secs(30), |v| v.0),
            session: SessionPolicy {
                idle,
                absolute,
                remember_idle,
                remember_absolute,
                renew_fraction,
            },
            fresh_auth_max_age,
            data_max_bytes: positive("SESSION_DATA_MAX_BYTES", s.data_max_bytes, 4096)?,
            session_limit,
            cookie: CookieConfig {
                name: cookie_name,
                secure,
            },
            allowed_origins,
            login_page,
            reauth_page,
            registration: s.registration.unwrap_or(true),
            feed_logins: s.feed_logins.unwrap_or(false),
            admin_api_key_digests,
            trusted_proxies,
            hash_params,
            argon2_concurrency: positive(
                "SESSION_ARGON2_CONCURRENCY",
                s.argon2_concurrency,
                cpus(),
            )?,
            argon2_queue: s.argon2_queue.unwrap_or(64),
            throttle,
            log_json,
            log_filter: s.log.unwrap_or_else(|| "info".to_owned()),
        })
    }

    /// The Redis key prefix in use (also meaningful for diagnostics with the embedded store).
    pub fn key_prefix(&self) -> &str {
        self.redis.as_ref().map_or("sess", |r| r.prefix.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_secure_and_valid() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.cookie.name, "__Host-session");
        assert!(c.cookie.secure);
        assert!(c.redis.is_none());
        assert_eq!(c.hash_params.memory_kib, 19_456);
        assert_eq!(c.session.idle, Duration::from_secs(1800));
    }

    #[test]
    fn development_mode_drops_the_host_prefix() {
        let c = Config::from_settings(Settings {
            cookie_secure: Some(false),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(c.cookie.name, "session");
        assert!(!c.cookie.secure);
    }

    #[test]
    fn flags_override_file_values() {
        let flags = Settings {
            idle_timeout: Some("5".parse().unwrap()),
            ..Settings::default()
        };
        let file: Settings = toml::from_str("idle_timeout = 60\nabsolute_timeout = 0.5").unwrap();
        let merged = flags.or(file);
        assert_eq!(merged.idle_timeout, Some(Seconds(Duration::from_secs(5))));
        assert_eq!(
            merged.absolute_timeout,
            Some(Seconds(Duration::from_millis(500)))
        );
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
    fn replicas_to_wait_for_are_auto_or_a_number_everywhere() {
        assert_eq!(
            Config::from_settings(Settings {
                redis_cluster_nodes: Some("redis://a:1".into()),
                ..Settings::default()
            })
            .unwrap()
            .redis
            .unwrap()
            .wait_replicas,
            WaitReplicas::Auto,
            "the default, on Cluster too"
        );
        assert_eq!("auto".parse(), Ok(WaitReplicas::Auto));
        assert_eq!(" AUTO ".parse(), Ok(WaitReplicas::Auto));
        assert_eq!("2".parse(), Ok(WaitReplicas::Exactly(2)));
        assert_eq!("0".parse(), Ok(WaitReplicas::Exactly(0)));
        for bad in ["", "-1", "one", "1.5"] {
            assert!(bad.parse::<WaitReplicas>().is_err(), "{bad:?}");
        }
        let file: Settings =
            toml::from_str("redis_wait_replicas = 1").expect("a number in the file");
        assert_eq!(file.redis_wait_replicas, Some(WaitReplicas::Exactly(1)));
        let file: Settings =
            toml::from_str("redis_wait_replicas = \"auto\"").expect("auto in the file");
        assert_eq!(file.redis_wait_replicas, Some(WaitReplicas::Auto));
        assert!(toml::from_str::<Settings>("redis_wait_replicas = \"some\"").is_err());
    }

    #[test]
    fn only_paths_and_allowed_origins_are_redirect_targets() {
        let allowed = vec!["https://app.example".to_owned()];
        for ok in ["/", "/account?tab=devices", "https://app.example/home"] {
            assert!(is_safe_redirect(ok, &allowed), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.evil.example/",
            "javascript:alert(1)",
            "",
            "/a\r\nLocation: x",
        ] {
            assert!(!is_safe_redirect(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            parse_origin("https://App.Example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("http://localhost:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert!(parse_origin("javascript:alert(1)").is_err());
    }
}
