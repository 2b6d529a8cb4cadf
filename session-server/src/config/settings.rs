//! Every setting, as given: one field per setting, each optional so that the config file, the
//! environment and the flags can be layered before anything is validated.
//!
//! This struct is the one definition of the settings: clap reads it for the flags, the
//! environment variables and `--help`; serde for the file keys; and `reference.rs` for the
//! configuration reference page. A field's doc comment is its description everywhere, and ends
//! with a `Default: …` sentence that the reference page shows in its own column.

use std::{net::SocketAddr, path::Path};

use clap::builder::BoolishValueParser;
use serde::Deserialize;

use super::{ConfigError, values::Seconds};
use crate::store::WaitReplicas;

// Every setting, optional so that file, environment and flags can be layered. Field docs are the
// `--help` text. (A plain comment: clap would show a doc comment here as the program's summary.)
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Redis URL: `redis://[user:pass@]host:port/db`, `rediss://` for TLS, or `unix://` for a
    /// socket. Set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS. Default:
    /// unset: the embedded in-process store, which does not share sessions between replicas.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Comma-separated Redis Cluster seed nodes (`redis://host:port,...`). Use instead of
    /// REDIS_URL. Default: unset.
    #[arg(long, env = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,
    /// Comma-separated Sentinel addresses (`redis://host:26379,...`). Use instead of REDIS_URL.
    /// Default: unset.
    #[arg(long, env = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    /// Name of the primary the Sentinels watch (with REDIS_SENTINELS). Default: `mymaster`.
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Replicas that must confirm (Redis `WAIT`) a write that ends sessions (logout,
    /// revocations, password change or set, disable, a login that evicted sessions) before it is
    /// acknowledged: `auto` (1 with Sentinel, and with Cluster or a standalone primary as soon as
    /// Redis reports a replica; 0 for a lone primary) or a number (0: never wait, so a failover
    /// can undo an acknowledged logout). Default: `auto`.
    #[arg(long, env = "SESSION_REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<WaitReplicas>,
    /// Ignored: a replica opens one Redis connection per thread that uses Redis. Still accepted
    /// so that configurations naming it keep loading; a warning says it has no effect. Default:
    /// unset.
    #[arg(long, env = "SESSION_REDIS_POOL_SIZE")]
    pub redis_pool_size: Option<usize>,
    /// Seconds to wait for a Redis connection or reply before answering 503. Default: 1.
    #[arg(long, env = "SESSION_REDIS_TIMEOUT")]
    pub redis_timeout: Option<Seconds>,
    /// Prefix of every Redis key this service writes: 1-32 characters of a-z, A-Z, 0-9, `-`,
    /// `_`, `:`, `.`. Default: `sess`.
    #[arg(long, env = "SESSION_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,

    /// Address of the public listener (login, logout, who-am-I, devices). Default:
    /// `127.0.0.1:8080`.
    #[arg(long, env = "SESSION_PUBLIC_ADDR")]
    pub public_addr: Option<SocketAddr>,
    /// Address of the admin/service listener (session checks, user administration). Default:
    /// `127.0.0.1:8081`.
    #[arg(long, env = "SESSION_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Address of the optional forward-auth listener: `GET /forward-auth` without an API key,
    /// for reverse proxies that cannot add a header to their auth request. Bind it to an
    /// address only the proxy reaches; it must differ from the public and admin addresses.
    /// Default: unset: no such listener.
    #[arg(long, env = "SESSION_FORWARD_AUTH_ADDR")]
    pub forward_auth_addr: Option<SocketAddr>,
    /// HTTP worker threads per listener. Default: number of CPUs.
    #[arg(long, env = "SESSION_WORKERS")]
    pub workers: Option<usize>,
    /// Largest accepted request body, in bytes; a larger one answers 413. Default: 16384.
    #[arg(long, env = "SESSION_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds a graceful shutdown (SIGTERM) waits for in-flight requests. Default: 30.
    #[arg(long, env = "SESSION_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Seconds>,

    /// Idle (sliding) timeout in seconds: a session unused this long ends. Default: 1800 (30
    /// minutes).
    #[arg(long, env = "SESSION_IDLE_TIMEOUT")]
    pub idle_timeout: Option<Seconds>,
    /// Absolute timeout in seconds: a session ends this long after login, however active. Not
    /// shorter than SESSION_IDLE_TIMEOUT. Default: 86400 (24 hours).
    #[arg(long, env = "SESSION_ABSOLUTE_TIMEOUT")]
    pub absolute_timeout: Option<Seconds>,
    /// Absolute timeout in seconds of a remembered session ("remember me" at login): its cookie
    /// persists, across browser restarts, until then. Not shorter than
    /// SESSION_REMEMBER_IDLE_TIMEOUT. Default: 2592000 (30 days).
    #[arg(long, env = "SESSION_REMEMBER_ABSOLUTE_TIMEOUT")]
    pub remember_absolute_timeout: Option<Seconds>,
    /// Idle timeout in seconds of a remembered session; raise it (to a week, say) for "stay
    /// signed in" that survives days away. Default: SESSION_IDLE_TIMEOUT, the same as other
    /// sessions.
    #[arg(long, env = "SESSION_REMEMBER_IDLE_TIMEOUT")]
    pub remember_idle_timeout: Option<Seconds>,
    /// Seconds within which a session must have proved the password (at login, or with
    /// `POST /v1/session/reauthenticate`) to change the password or log out everywhere; an
    /// older one is answered 403 `reauthentication_required`. Default: unset: no such
    /// requirement.
    #[arg(long, env = "SESSION_FRESH_AUTH_MAX_AGE")]
    pub fresh_auth_max_age: Option<Seconds>,
    /// Largest app data a session may hold, in bytes of JSON; a larger write answers 413.
    /// Default: 4096.
    #[arg(long, env = "SESSION_DATA_MAX_BYTES")]
    pub data_max_bytes: Option<usize>,
    /// Part of the idle window that must pass before a check renews the session, strictly
    /// between 0 and 1 (at 1 a session would be due for renewal only once it had expired);
    /// checks in between are a single Redis read. Default: 0.1.
    #[arg(long, env = "SESSION_RENEW_FRACTION")]
    pub renew_fraction: Option<f64>,
    /// Most concurrent sessions per user (0: no cap). Beyond it, a login ends the user's least
    /// recently active session (or is refused, per SESSION_LIMIT_POLICY). The cap keeps each
    /// user's sessions in Redis's compact hash encoding (up to 128 entries by default) and bounds
    /// the Redis time of a login and a logout, which grows with the user's sessions. Default: 100.
    #[arg(long, env = "SESSION_MAX_PER_USER")]
    pub max_sessions_per_user: Option<u32>,
    /// What a login beyond the cap does: `evict-oldest` (end the least recently active session)
    /// or `refuse` (the new login fails with 403 session_limit_reached). Default:
    /// `evict-oldest`.
    #[arg(long, env = "SESSION_LIMIT_POLICY")]
    pub session_limit_policy: Option<String>,

    /// Session cookie name: 1-64 characters of a-z, A-Z, 0-9, `-`, `_`. The `__Host-` prefix is
    /// dropped when SESSION_COOKIE_SECURE=false. Default: `__Host-session`.
    #[arg(long, env = "SESSION_COOKIE_NAME")]
    pub cookie_name: Option<String>,
    /// `false` is the plain-HTTP localhost development mode: no `Secure` flag, no `__Host-`
    /// prefix. Default: `true`.
    #[arg(long, env = "SESSION_COOKIE_SECURE", value_parser = BoolishValueParser::new())]
    pub cookie_secure: Option<bool>,
    /// Comma-separated origins (`scheme://host[:port]`) allowed to send state-changing requests
    /// (the CSRF check) and to be the target of a login redirect (`return_to`). Default: empty:
    /// the same origin only.
    #[arg(long, env = "SESSION_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Where a failed HTML form login is redirected (with `?error=<code>`); a path or an allowed
    /// origin's URL. Default: `/login`.
    #[arg(long, env = "SESSION_LOGIN_PAGE")]
    pub login_page: Option<String>,
    /// Where a failed HTML form re-authentication is redirected (with `?error=<code>` and the
    /// form's `return_to`); a path or an allowed origin's URL. Default: `/reauthenticate`.
    #[arg(long, env = "SESSION_REAUTH_PAGE")]
    pub reauth_page: Option<String>,
    /// Where a form login that needs a second factor goes (with `return_to`), and where a failed
    /// form second-factor step goes back to (with `error` and `return_to`): a path or a URL on
    /// an allowed origin. Default: `/second-factor`.
    #[arg(long, env = "SESSION_SECOND_FACTOR_PAGE")]
    pub second_factor_page: Option<String>,
    /// Whether `POST /v1/users` (self-service registration) is open. Default: `true`.
    #[arg(long, env = "SESSION_REGISTRATION", value_parser = BoolishValueParser::new())]
    pub registration: Option<bool>,
    /// Whether logins are appended to the event feed too (ends of sessions always are, which
    /// is all a cache needs; every login is in the audit log either way). Default: `false`.
    #[arg(long, env = "SESSION_FEED_LOGINS", value_parser = BoolishValueParser::new())]
    pub feed_logins: Option<bool>,
    /// Which sessions of users with a second factor enrolled are accepted: `highest_available`
    /// (a password alone leaves a pending login, which only the second-factor step and logout
    /// accept) or `aal1` (any session: apps ask for a step-up to `aal2` where they need one).
    /// Default: `highest_available`.
    #[arg(long, env = "SESSION_REQUIRED_AAL")]
    pub required_aal: Option<String>,
    /// The keys that encrypt TOTP secrets at rest: comma-separated `<id>:<key>` entries, the id
    /// a number 1-255 and the key 32 random bytes in base64 (`session-server factor-key new`
    /// prints an entry). The first key encrypts; every key decrypts, and a secret found under an
    /// older key is encrypted again with the first when next used. Default: unset: with Redis,
    /// TOTP cannot be enrolled; with the embedded store, a key is drawn at start (its data ends
    /// with the process anyway).
    #[arg(long, env = "SESSION_FACTOR_KEYS", hide_env_values = true)]
    pub factor_keys: Option<String>,
    /// The issuer an authenticator app shows with the account (1-64 characters, no `:`).
    /// Default: `Sessions`.
    #[arg(long, env = "SESSION_TOTP_ISSUER")]
    pub totp_issuer: Option<String>,
    /// Seconds a TOTP enrolment waits for its first code. Default: 600.
    #[arg(long, env = "SESSION_TOTP_ENROLL_TIMEOUT")]
    pub totp_enroll_timeout: Option<Seconds>,
    /// The WebAuthn relying party id of passkeys: the domain they are bound to, the host of
    /// SESSION_ALLOWED_ORIGINS or a parent domain of it. Passkeys work from the allowed origins
    /// within it. Default: the host of the first allowed origin; no allowed origin: no passkeys.
    #[arg(long, env = "SESSION_PASSKEY_RP_ID")]
    pub passkey_rp_id: Option<String>,
    /// The name a browser shows for the relying party when a passkey is made. Default: the TOTP
    /// issuer (SESSION_TOTP_ISSUER).
    #[arg(long, env = "SESSION_PASSKEY_RP_NAME")]
    pub passkey_rp_name: Option<String>,
    /// Seconds a passkey ceremony (a registration or a sign-in, between its two requests) may
    /// take; its state is kept that long, and used once. Default: 300.
    #[arg(long, env = "SESSION_PASSKEY_TIMEOUT")]
    pub passkey_timeout: Option<Seconds>,
    /// How recent a second factor must be, in seconds, to remove a factor or regenerate the
    /// recovery codes. Default: 600.
    #[arg(long, env = "SESSION_FACTOR_FRESH_MAX_AGE")]
    pub factor_fresh_max_age: Option<Seconds>,
    /// Comma-separated SHA-256 hex digests of the admin API keys, never the keys themselves
    /// (`session-server api-key new` prints a key and its digest). Default: empty: the admin API
    /// refuses every request.
    #[arg(long, env = "SESSION_ADMIN_API_KEYS")]
    pub admin_api_keys: Option<String>,
    /// Seconds an admin console sign-in lasts (at most 12 hours); it is never extended, the
    /// operator signs in again. Default: 900 (15 minutes).
    #[arg(long, env = "SESSION_CONSOLE_TTL")]
    pub console_ttl: Option<Seconds>,
    /// Comma-separated proxy addresses or CIDR ranges whose X-Forwarded-For is trusted.
    /// Default: empty: the client's address is the connection's.
    #[arg(long, env = "SESSION_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// Argon2id memory cost (m) in KiB. Default: 19456 (OWASP).
    #[arg(long, env = "SESSION_ARGON2_MEMORY_KIB")]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id iterations (t). Default: 2 (OWASP).
    #[arg(long, env = "SESSION_ARGON2_ITERATIONS")]
    pub argon2_iterations: Option<u32>,
    /// Argon2id lanes (p). Default: 1 (OWASP).
    #[arg(long, env = "SESSION_ARGON2_PARALLELISM")]
    pub argon2_parallelism: Option<u32>,
    /// Password hashes computed at once, on blocking threads. Default: number of CPUs.
    #[arg(long, env = "SESSION_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,
    /// Password hashes allowed to wait for a slot; beyond that a login answers 503 `busy` at
    /// once. Default: 64.
    #[arg(long, env = "SESSION_ARGON2_QUEUE")]
    pub argon2_queue: Option<usize>,

    /// Failed logins per username within the window before that username is throttled. A login
    /// counts against it from before its password is hashed until it is judged (only a wrong
    /// password stays counted), so concurrent attempts cannot overshoot it. Default: 10.
    #[arg(long, env = "SESSION_LOGIN_MAX_FAILURES_PER_USER")]
    pub login_max_failures_per_user: Option<u32>,
    /// Login and registration attempts per client within the window (IPv4: per address; IPv6:
    /// per network, see SESSION_LOGIN_IPV6_PREFIX). Default: 100.
    #[arg(long, env = "SESSION_LOGIN_MAX_ATTEMPTS_PER_IP")]
    pub login_max_attempts_per_ip: Option<u32>,
    /// IPv6 clients are counted per network of this prefix length, 32-128 (IPv4 per address):
    /// one host usually holds a whole /64, so counting per address would give it 2^64 budgets.
    /// Default: 64.
    #[arg(long, env = "SESSION_LOGIN_IPV6_PREFIX")]
    pub login_ipv6_prefix: Option<u8>,
    /// Throttling window in seconds. Default: 900 (15 minutes).
    #[arg(long, env = "SESSION_LOGIN_WINDOW")]
    pub login_window: Option<Seconds>,

    /// Log output: `text` or `json`. Default: `text`.
    #[arg(long, env = "SESSION_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info,session_server=debug` or
    /// `warn,audit=info`. Default: `info`.
    #[arg(long, env = "SESSION_LOG")]
    pub log: Option<String>,
}

/// `Settings { field: top.field.or(bottom.field), ... }` for every field named: a field left
/// out is a compile error, so a new setting cannot be forgotten by the layering.
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
            second_factor_page,
            registration,
            feed_logins,
            required_aal,
            factor_keys,
            totp_issuer,
            totp_enroll_timeout,
            passkey_rp_id,
            passkey_rp_name,
            passkey_timeout,
            factor_fresh_max_age,
            admin_api_keys,
            console_ttl,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
    fn files_refuse_unknown_keys() {
        assert!(toml::from_str::<Settings>("no_such_setting = 1").is_err());
    }

    #[test]
    fn files_give_replicas_to_wait_for_as_a_number_or_auto() {
        let file: Settings =
            toml::from_str("redis_wait_replicas = 1").expect("a number in the file");
        assert_eq!(file.redis_wait_replicas, Some(WaitReplicas::Exactly(1)));
        let file: Settings =
            toml::from_str("redis_wait_replicas = \"auto\"").expect("auto in the file");
        assert_eq!(file.redis_wait_replicas, Some(WaitReplicas::Auto));
        assert!(toml::from_str::<Settings>("redis_wait_replicas = \"some\"").is_err());
    }
}
