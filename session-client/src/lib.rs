#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod cache;
mod data;
mod feed;

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "tower")]
pub mod tower;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{Cache, CacheKey};
pub use crate::data::{SessionData, merge_diff};

/// A signed-in session, as session-server reports it. Plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user's id.
    pub user_id: Uuid,
    /// The user's (case-folded) username.
    pub username: String,
    /// The session's public handle (what lists and revocations name).
    pub handle: Uuid,
    /// When the session ends if unused (RFC 3339).
    pub idle_expires_at: String,
    /// When the session ends regardless of use (RFC 3339).
    pub absolute_expires_at: String,
    /// When the user last proved the password in this session: at login, or at the latest
    /// re-authentication (RFC 3339).
    #[serde(default)]
    pub authenticated_at: String,
    /// The session's authenticator assurance level as the service states it: `aal1` after a
    /// password, `aal2` once a second factor was proved in this session. Empty from a service
    /// older than second factors; read it with [`Session::aal`].
    #[serde(default)]
    pub aal: String,
    /// The methods proved in this session, the password first, each with when it was last
    /// proved (empty from a service older than second factors).
    #[serde(default)]
    pub methods: Vec<Method>,
    /// `cookie` or `bearer`: how the session's token travels.
    #[serde(default)]
    pub kind: String,
    /// Whether the user asked to stay signed in.
    #[serde(default)]
    pub remembered: bool,
    /// The session's app data, a JSON object (`{}` when it has none); see
    /// [`SessionClient::update_data`].
    #[serde(default)]
    pub data: serde_json::Value,
    /// The data's version, for optimistic concurrency.
    #[serde(default)]
    pub data_version: u64,
}

/// An authentication method proved in a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    /// `password`, `totp`, `recovery_code` or `passkey` (a later service may name others).
    pub method: String,
    /// When it was last proved in this session (RFC 3339, whole seconds).
    pub at: String,
}

impl Method {
    /// When it was last proved.
    pub fn at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.at).ok()
    }
}

/// A session's authenticator assurance level (the levels of NIST SP 800-63B), ordered:
/// `Aal1 < Aal2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aal {
    /// A password only.
    Aal1,
    /// A password and a second factor (TOTP, a recovery code, a passkey).
    Aal2,
}

impl Aal {
    /// `aal1` or `aal2`, as the service writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }
}

impl std::fmt::Display for Aal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Since when something happened, as a duration that is never negative (a time a little ahead
/// of this clock is "just now"); `None` for an unknown time.
fn age(at: Option<SystemTime>) -> Option<Duration> {
    let at = at?;
    Some(
        SystemTime::now()
            .duration_since(at)
            .unwrap_or(Duration::ZERO),
    )
}

impl Session {
    /// The earlier of the two expiry times.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let idle = humantime::parse_rfc3339(&self.idle_expires_at).ok()?;
        let absolute = humantime::parse_rfc3339(&self.absolute_expires_at).ok()?;
        Some(idle.min(absolute))
    }

    /// When the user last proved the password in this session.
    pub fn authenticated_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.authenticated_at).ok()
    }

    /// Whether the user proved the password within `max_age` ("sudo mode"): what a handler asks
    /// before a sensitive action. An unknown time is not recent.
    pub fn authenticated_within(&self, max_age: Duration) -> bool {
        age(self.authenticated_at()).is_some_and(|age| age <= max_age)
    }

    /// The session's assurance level: [`Aal::Aal2`] only when the service says `aal2`; anything
    /// else (`aal1`, a level this version does not know, nothing from an older service) is
    /// [`Aal::Aal1`], so that an unknown answer never grants more.
    pub fn aal(&self) -> Aal {
        if self.aal == "aal2" {
            Aal::Aal2
        } else {
            Aal::Aal1
        }
    }

    /// The second factor proved in this session (`totp`, `recovery_code`, `passkey`), if any.
    pub fn second_factor(&self) -> Option<&Method> {
        self.methods.iter().rfind(|m| m.method != "password")
    }

    /// When the second factor was last proved in this session.
    pub fn second_factor_at(&self) -> Option<SystemTime> {
        self.second_factor()?.at()
    }

    /// Whether a second factor was proved in this session within `max_age`: what a handler
    /// asks before an action that wants a fresh one. No second factor is not recent.
    pub fn second_factor_within(&self, max_age: Duration) -> bool {
        age(self.second_factor_at()).is_some_and(|age| age <= max_age)
    }

    /// The app data as a typed value (an empty object deserialises to `T`'s defaults only if
    /// `T` allows it).
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        let value = if self.data.is_null() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            self.data.clone()
        };
        serde_json::from_value(value).map_err(|e| Error::Protocol(e.to_string()))
    }
}

/// Why a check could not be answered. Never means "valid": on an error, treat the request as
/// not authenticated *and* tell the user the service is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service could not be reached, timed out or answered with a server error.
    #[error("session service unavailable: {0}")]
    Unavailable(String),
    /// The service refused the API key.
    #[error("session service refused the API key")]
    Unauthorized,
    /// The service answered something this client does not understand.
    #[error("unexpected answer from the session service: {0}")]
    Protocol(String),
    /// The client was configured with an unusable value.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A data write was computed from a version that is no longer current (HTTP 412); re-read
    /// and retry, or use [`SessionClient::modify_data`], which does.
    #[error("session data changed concurrently; now at version {current}")]
    Conflict {
        /// The version the data is at now.
        current: u64,
    },
    /// No live session has that handle (it ended).
    #[error("the session has ended")]
    SessionGone,
    /// The service refused the request as invalid (a data write that is not an object, or
    /// larger than the service allows); the message says why.
    #[error("refused by the session service: {0}")]
    Refused(String),
}

/// Settings of a [`SessionClient`]; see [`SessionClient::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    admin_url: String,
    api_key: String,
    timeout: Duration,
    cookie_name: String,
    cache: Option<CacheSettings>,
}

/// The local cache of positive checks.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Most sessions kept (least recently used go first).
    pub max_entries: usize,
    /// Longest time a positive answer is reused.
    pub max_age: Duration,
    /// The revocation bound of the cache: an event the service appends at time T stops cached
    /// answers by T + `feed_staleness` at the latest, or the cache stops answering. The cache
    /// answers only while a poll of the event feed sent less than this ago has been answered
    /// (and its events applied); each poll asks the service to wait a quarter of this (between
    /// 50 ms and 1 s).
    pub feed_staleness: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entries: 10_000,
            max_age: Duration::from_secs(30),
            feed_staleness: Duration::from_secs(2),
        }
    }
}

impl Builder {
    /// Timeout of each call to the service (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = timeout;
        self
    }

    /// The session cookie's name, to find the token in a `Cookie` header for caching (default
    /// `__Host-session`, session-server's default).
    pub fn cookie_name(mut self, name: &str) -> Builder {
        self.cookie_name = name.to_owned();
        self
    }

    /// Caches positive answers. Revocations still take effect at once: the client follows the
    /// service's event feed and drops affected entries; unless a poll of the feed sent within the
    /// last [`CacheSettings::feed_staleness`] has been answered, the cache does not answer. Needs
    /// a Tokio runtime.
    pub fn cache(mut self, settings: CacheSettings) -> Builder {
        self.cache = Some(settings);
        self
    }

    /// Builds the client (and, with a cache, starts following the event feed).
    pub fn build(self) -> Result<SessionClient, Error> {
        let base = self.admin_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config("admin_url must be an http(s) URL".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // Below session-server's keep-alive (5 s): a request sent on a connection the server
            // is closing at that moment would fail in transport, a spurious `Unavailable`.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let http = reqwest_middleware::ClientBuilder::new(http);
        #[cfg(feature = "opentelemetry")]
        let http = http.with(reqwest_tracing::TracingMiddleware::default());
        let http = http.build();
        let auth = format!("Bearer {}", self.api_key.trim());
        let inner = Arc::new(Inner {
            http,
            check_url: format!("{base}/admin/v1/sessions/check"),
            users_url: format!("{base}/admin/v1/users"),
            events_url: format!("{base}/admin/v1/events"),
            auth,
            cookie_name: self.cookie_name,
            cache: self.cache.map(Cache::new),
        });
        if inner.cache.is_some() {
            feed::spawn(Arc::downgrade(&inner));
        }
        Ok(SessionClient { inner })
    }
}

pub(crate) struct Inner {
    /// With the `opentelemetry` feature, the middleware that makes each call a client span and
    /// sends its `traceparent`.
    pub(crate) http: reqwest_middleware::ClientWithMiddleware,
    check_url: String,
    pub(crate) users_url: String,
    pub(crate) events_url: String,
    pub(crate) auth: String,
    cookie_name: String,
    pub(crate) cache: Option<Cache>,
}

/// Asks session-server who a request is from. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct SessionClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient")
            .field("check_url", &self.inner.check_url)
            .field("cached", &self.inner.cache.is_some())
            .finish()
    }
}

#[derive(Deserialize)]
struct CheckAnswer {
    active: bool,
    user: Option<UserPart>,
    session: Option<SessionPart>,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    data_version: u64,
}

#[derive(Deserialize)]
struct UserPart {
    id: Uuid,
    username: String,
}

#[derive(Deserialize)]
struct SessionPart {
    handle: Uuid,
    idle_expires_at: String,
    absolute_expires_at: String,
    #[serde(default)]
    authenticated_at: String,
    #[serde(default)]
    aal: String,
    #[serde(default)]
    methods: Vec<Method>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    remembered: bool,
}

/// What the caller handed to [`SessionClient::check`] or
/// [`SessionClient::check_authorization`].
enum Presented<'a> {
    CookieHeader(&'a str),
    Token(&'a str),
    Authorization(&'a str),
}

fn classify(input: &str) -> Presented<'_> {
    // Tokens are hex, '.', and base64url: never '=' or ';', which every Cookie header has.
    if input.contains('=') {
        Presented::CookieHeader(input)
    } else {
        Presented::Token(input.trim())
    }
}

/// The value of the only cookie named `name` in a `Cookie` header (none if absent or repeated).
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for (n, v) in header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.trim(), v.trim()))
    {
        if n == name {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

impl SessionClient {
    /// A client without cache for the service's admin listener (e.g. `http://sessions:8081`).
    pub fn new(admin_url: &str, api_key: &str) -> Result<SessionClient, Error> {
        Self::builder(admin_url, api_key).build()
    }

    /// A client with settings.
    pub fn builder(admin_url: &str, api_key: &str) -> Builder {
        Builder {
            admin_url: admin_url.to_owned(),
            api_key: api_key.to_owned(),
            timeout: Duration::from_secs(2),
            cookie_name: "__Host-session".to_owned(),
            cache: None,
        }
    }

    /// Who is this request from? Give the request's raw `Cookie` header, or the session token.
    ///
    /// `Ok(Some(session))`: a live session. `Ok(None)`: missing, malformed, expired or revoked.
    /// `Err(_)`: the service could not be asked; never treat that as valid.
    pub async fn check(&self, cookie_header_or_token: &str) -> Result<Option<Session>, Error> {
        self.check_presented(classify(cookie_header_or_token)).await
    }

    /// Who is this request from, by its `Authorization` header (`Bearer <token>`: sessions
    /// logged in with `"token_delivery": "body"`, for native apps and command-line tools)?
    /// Answers as [`check`](Self::check). A cookie session's token is never accepted this way.
    pub async fn check_authorization(
        &self,
        authorization_header: &str,
    ) -> Result<Option<Session>, Error> {
        self.check_presented(Presented::Authorization(authorization_header))
            .await
    }

    async fn check_presented(&self, presented: Presented<'_>) -> Result<Option<Session>, Error> {
        let key = self.cache_key(&presented);
        let cache = self.inner.cache.as_ref();
        if let (Some(cache), Some(key)) = (cache, key.as_ref())
            && let Some(session) = cache.get(key)
        {
            return Ok(Some(session));
        }
        let epoch = cache.map(Cache::epoch);
        let session = self.ask(&presented).await?;
        if let (Some(cache), Some(key), Some(session), Some(epoch)) = (cache, key, &session, epoch)
        {
            cache.insert(key, session.clone(), epoch);
        }
        Ok(session)
    }

    /// Whether a positive answer for this input is cached and would be used now (for
    /// observability and tests).
    pub fn is_cached(&self, cookie_header_or_token: &str) -> bool {
        let key = self.cache_key(&classify(cookie_header_or_token));
        match (self.inner.cache.as_ref(), key) {
            (Some(cache), Some(key)) => cache.get(&key).is_some(),
            _ => false,
        }
    }

    fn cache_key(&self, presented: &Presented<'_>) -> Option<CacheKey> {
        self.inner.cache.as_ref()?;
        match presented {
            Presented::Token(t) => Some(CacheKey::of(t)),
            Presented::CookieHeader(h) => {
                Some(CacheKey::of(cookie_value(h, &self.inner.cookie_name)?))
            }
            // Keyed apart from the same token given as such: the service accepts a bearer
            // token only as a bearer, so the answers may differ.
            Presented::Authorization(h) => Some(CacheKey::of(&format!("authorization {h}"))),
        }
    }

    async fn ask(&self, presented: &Presented<'_>) -> Result<Option<Session>, Error> {
        let body = match presented {
            Presented::CookieHeader(h) => serde_json::json!({ "cookie": h }),
            Presented::Token(t) => serde_json::json!({ "token": t }),
            Presented::Authorization(h) => serde_json::json!({ "authorization": h }),
        };
        let response = self
            .inner
            .http
            .post(&self.inner.check_url)
            .header(reqwest::header::AUTHORIZATION, &self.inner.auth)
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200 => {}
            401 => return Err(Error::Unauthorized),
            s if s >= 500 => return Err(Error::Unavailable(format!("status {s}"))),
            s => return Err(Error::Protocol(format!("status {s}"))),
        }
        let answer: CheckAnswer = response
            .json()
            .await
            .map_err(|e| Error::Protocol(e.without_url().to_string()))?;
        match (answer.active, answer.user, answer.session) {
            (false, _, _) => Ok(None),
            (true, Some(user), Some(session)) => Ok(Some(Session {
                user_id: user.id,
                username: user.username,
                handle: session.handle,
                idle_expires_at: session.idle_expires_at,
                absolute_expires_at: session.absolute_expires_at,
                authenticated_at: session.authenticated_at,
                aal: session.aal,
                methods: session.methods,
                kind: session.kind,
                remembered: session.remembered,
                data: answer.data,
                data_version: answer.data_version,
            })),
            (true, _, _) => Err(Error::Protocol(
                "active answer without user or session".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_headers_and_tokens_are_told_apart() {
        assert!(matches!(
            classify("a=b; __Host-session=x.y"),
            Presented::CookieHeader(_)
        ));
        assert!(matches!(
            classify(" 0123abcd.AbC-_x "),
            Presented::Token("0123abcd.AbC-_x")
        ));
    }

    #[test]
    fn the_assurance_level_is_aal2_only_when_the_service_says_so() {
        let part = |extra: serde_json::Value| {
            let mut session = serde_json::json!({
                "handle": Uuid::nil(),
                "idle_expires_at": "2030-01-01T00:00:00Z",
                "absolute_expires_at": "2030-01-01T00:00:00Z",
            });
            session
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<SessionPart>(session).unwrap()
        };
        let session = |p: SessionPart| Session {
            aal: p.aal,
            methods: p.methods,
            ..Session::default()
        };
        // A service older than second factors: no level, no methods.
        let old = session(part(serde_json::json!({})));
        assert_eq!((old.aal(), old.second_factor()), (Aal::Aal1, None));
        assert!(!old.second_factor_within(Duration::from_secs(3600)));
        let unknown = session(part(serde_json::json!({"aal": "aal3"})));
        assert_eq!(unknown.aal(), Aal::Aal1, "an unknown level grants nothing");
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let stepped = session(part(serde_json::json!({
            "aal": "aal2",
            "methods": [
                {"method": "password", "at": "2020-01-01T00:00:00Z"},
                {"method": "totp", "at": now},
            ],
        })));
        assert_eq!(stepped.aal(), Aal::Aal2);
        assert!(Aal::Aal2 > Aal::Aal1);
        assert_eq!(stepped.second_factor().unwrap().method, "totp");
        assert!(stepped.second_factor_within(Duration::from_secs(60)));
        assert!(!stepped.authenticated_within(Duration::from_secs(60)));
    }

    #[test]
    fn only_a_single_cookie_of_the_name_counts() {
        assert_eq!(cookie_value("a=1; s=tok; b=2", "s"), Some("tok"));
        assert_eq!(cookie_value("s=1; s=2", "s"), None);
        assert_eq!(cookie_value("S=1", "s"), None);
    }
}
