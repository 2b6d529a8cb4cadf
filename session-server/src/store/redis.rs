//! The production store: Redis through a deadpool connection pool.
//!
//! Every multi-key change is one Lua script touching one hash slot (see `keys.rs`), so it is
//! atomic on a standalone server and valid on Redis Cluster. A session check is one `HGET` of the
//! session's field in its user's hash.
//!
//! Failure handling: every operation is bounded by the configured timeout (pool wait, connect and
//! reply). A connection that timed out or broke is replaced by the pool; on a multiplexed
//! connection each reply is matched to its request by order, so a late reply is discarded, never
//! read as another request's answer. Any failure is a [`StoreError`], never "no session".
//!
//! Writes that end sessions are acknowledged only once replicas confirm them (`WAIT`, pipelined
//! after the script on the same connection; see `replication.rs`).
//!
//! Scripts that only remove data carry `flags=allow-oom`, so logout and revocation keep working
//! when Redis is full (`maxmemory` + `noeviction`); scripts that add data are refused up front in
//! that state, before they change anything.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, FromRedisValue, RedisError, RedisResult, Script, ToRedisArgs,
    Value,
    aio::ConnectionLike,
    sentinel::{SentinelClient, SentinelServerType},
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{
    CreateOutcome, CreateUser, FactorChange, FactorOutcome, FactorUse, PendingTotp, ReauthOutcome,
    RevokeScope, Store, StoreError, StoredSession,
    connections::{AnyConnection, Connector, ThreadConnections},
    keys::Keys,
    replication::{
        ConfirmationReport, Outcome, ReplicaPolicy, Topology, cluster_replicas, standalone_replicas,
    },
    settings::{RedisConfig, RedisMode},
};
use crate::{
    domain::{
        console::{ConsoleDigest, ConsoleSession},
        events::{Actor, EventKind, EventPage, FEED_MAX_LEN, FeedPosition, SessionEvent, parse_id},
        rate_limit::{RateCount, RateKey},
        record::{assurance_trailer, authenticated_field},
        session::{LimitPolicy, SessionLimit, SessionRecord},
        session_data::{DataWrite, SessionData},
        token::{DIGEST_CHARS, TokenDigest},
        user::{StoredPasskey, StoredTotp, UserFactors, UserRecord, Username},
    },
    metrics::Metrics,
};

/// A script's text: the shebang with its flags, the shared helpers, the script.
macro_rules! lua {
    ($flags:literal, $file:literal) => {
        concat!(
            "#!lua",
            $flags,
            "\n",
            include_str!("lua/lib.lua"),
            include_str!($file)
        )
    };
}

/// A script sent by its digest (`EVALSHA`, loaded on first use).
macro_rules! script {
    ($flags:literal, $file:literal) => {
        LazyLock::new(|| Script::new(lua!($flags, $file)))
    };
}

/// A script that may be confirmed by replicas (see [`Eval`]): its text, and its digest.
struct Confirmable {
    text: &'static str,
    digest: LazyLock<Script>,
}

macro_rules! confirmable {
    ($flags:literal, $file:literal) => {
        Confirmable {
            text: lua!($flags, $file),
            digest: LazyLock::new(|| Script::new(lua!($flags, $file))),
        }
    };
}

static CREATE: LazyLock<Script> = script!("", "lua/create.lua");
static TOUCH: LazyLock<Script> = script!("", "lua/touch.lua");
static REVOKE: Confirmable = confirmable!(" flags=allow-oom", "lua/revoke.lua");
static REVOKE_HANDLE: Confirmable = confirmable!(" flags=allow-oom", "lua/revoke_handle.lua");
static REVOKE_ALL: Confirmable = confirmable!(" flags=allow-oom", "lua/revoke_all.lua");
static REAUTH: LazyLock<Script> = script!("", "lua/reauth.lua");
static DATA_GET: LazyLock<Script> = script!(" flags=no-writes,allow-oom", "lua/data_get.lua");
static DATA_SET: LazyLock<Script> = script!("", "lua/data_set.lua");
static LIST: LazyLock<Script> = script!(" flags=allow-oom", "lua/list.lua");
static PASSWORD: Confirmable = confirmable!(" flags=allow-oom", "lua/password.lua");
static SECOND_FACTOR: Confirmable = confirmable!("", "lua/second_factor.lua");
static FACTORS: Confirmable = confirmable!(" flags=allow-oom", "lua/factors.lua");
static DISABLE: Confirmable = confirmable!(" flags=allow-oom", "lua/disable.lua");
static HIT: LazyLock<Script> = script!("", "lua/hit.lua");
static PUBLISH: Confirmable = confirmable!(" flags=allow-oom", "lua/publish.lua");
static READ_EVENTS: LazyLock<Script> = script!(" flags=no-writes,allow-oom", "lua/read_events.lua");
static PEEK: LazyLock<Script> = script!(" flags=no-writes,allow-oom", "lua/peek.lua");
static REFUND: LazyLock<Script> = script!(" flags=allow-oom", "lua/refund.lua");
static RELEASE_PASSKEY: LazyLock<Script> = script!(" flags=allow-oom", "lua/release_passkey.lua");
static UPDATE_PASSKEY: LazyLock<Script> = script!("", "lua/update_passkey.lua");
static CONFIRM_CREATE: Confirmable = confirmable!(" flags=allow-oom", "lua/confirm_create.lua");
static READ_CONFIRMED: Confirmable = confirmable!(" flags=allow-oom", "lua/read_confirmed.lua");

/// Every script by its SHA-1 digest (as `EVALSHA` names it), with the name Redis spans use as
/// their operation (see `connections.rs`).
static SCRIPT_NAMES: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    let loaded = [
        (&*CREATE, "create"),
        (&*TOUCH, "touch"),
        (&*REAUTH, "reauth"),
        (&*DATA_GET, "data_get"),
        (&*DATA_SET, "data_set"),
        (&*LIST, "list"),
        (&*HIT, "hit"),
        (&*READ_EVENTS, "read_events"),
        (&*PEEK, "peek"),
        (&*REFUND, "refund"),
        (&*RELEASE_PASSKEY, "release_passkey"),
        (&*UPDATE_PASSKEY, "update_passkey"),
    ]
    .map(|(script, name)| (script.get_hash().to_owned(), name));
    let confirmable = [
        (&REVOKE, "revoke"),
        (&REVOKE_HANDLE, "revoke_handle"),
        (&REVOKE_ALL, "revoke_all"),
        (&PASSWORD, "password"),
        (&SECOND_FACTOR, "second_factor"),
        (&FACTORS, "factors"),
        (&DISABLE, "disable"),
        (&PUBLISH, "publish"),
        (&CONFIRM_CREATE, "confirm_create"),
        (&READ_CONFIRMED, "read_confirmed"),
    ]
    .map(|(script, name)| (script.digest.get_hash().to_owned(), name));
    loaded.into_iter().chain(confirmable).collect()
});

/// The name of the script with this hex SHA-1 digest.
pub(super) fn script_name(digest: &str) -> Option<&'static str> {
    SCRIPT_NAMES
        .iter()
        .find(|(d, _)| d == digest)
        .map(|&(_, name)| name)
}

/// A call of a script that may be confirmed by replicas (see [`RedisStore::confirmed`]). It is
/// sent by its digest (`EVALSHA`), and only when the node answers `NOSCRIPT` (restarted, newly
/// promoted, its script cache flushed) again as its text (`EVAL`), which caches it there. The
/// text is some 7 KB with the shared helpers: sent with every end and every event, it cost 15 KB
/// on the wire per logout, and Redis a parse and a SHA-1 of each.
///
/// A `NOSCRIPT` reply means the script did not run, so sending the text after it cannot apply
/// anything twice.
struct Eval {
    script: &'static Confirmable,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

/// How a script call names its script.
#[derive(Clone, Copy)]
enum Naming {
    /// `EVALSHA`: the digest, when the node has the script cached.
    Digest,
    /// `EVAL`: the whole text.
    Text,
}

/// Whether a reply is Redis's `NOSCRIPT`: the node lacks the script (see [`Eval`]).
fn lacks_script(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
}

impl Eval {
    fn new(script: &'static Confirmable) -> Eval {
        Eval {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    fn key(&mut self, key: impl ToRedisArgs) -> &mut Eval {
        key.write_redis_args(&mut self.keys);
        self
    }

    fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Eval {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn cmd(&self, naming: Naming) -> redis::Cmd {
        let (command, script) = match naming {
            Naming::Digest => ("EVALSHA", self.script.digest.get_hash()),
            Naming::Text => ("EVAL", self.script.text),
        };
        let mut cmd = redis::cmd(command);
        cmd.arg(script)
            .arg(self.keys.len())
            .arg(&self.keys[..])
            .arg(&self.args[..]);
        cmd
    }
}

/// Redis-backed [`Store`].
pub struct RedisStore {
    connector: Connector,
    keys: Keys,
    timeout: Duration,
    /// How many replicas must confirm an end (see `replication.rs`).
    replicas: ReplicaPolicy,
    metrics: Arc<Metrics>,
    /// The connections requests use, one per thread (see `connections.rs`).
    local: ThreadConnections,
    /// The connection of the feed's tail follower (see [`Store::await_events`]); replaced after
    /// any failure.
    tail: tokio::sync::Mutex<Option<AnyConnection>>,
}

/// Errors after which a connection must not be reused: it broke, timed out, or reaches a node
/// that is no longer (or not yet) a writable primary, as after a Sentinel failover.
fn poisons_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

fn classify(e: &RedisError) -> StoreError {
    if e.code() == Some("OOM") {
        StoreError::Full
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// Handles as the scripts return them: 16 raw bytes each.
fn handles(raw: &[Vec<u8>]) -> Result<Vec<Uuid>, StoreError> {
    raw.iter()
        .map(|h| {
            Uuid::from_slice(h)
                .map_err(|_| StoreError::Corrupt(format!("session handle of {} bytes", h.len())))
        })
        .collect()
}

fn decode(user: Uuid, bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    SessionRecord::decode(user, bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// App data as stored (`<version>:<json>`); nothing stored is version 0 and empty.
fn decode_data(stored: Option<&[u8]>) -> Result<SessionData, StoreError> {
    match stored {
        None | Some(b"") => Ok(SessionData::default()),
        Some(bytes) => {
            SessionData::decode(bytes).ok_or_else(|| StoreError::Corrupt("session data".into()))
        }
    }
}

/// The hash field of a session's app data (see `lua/lib.lua`).
/// What follows the digest in the name of a session's data field (`data_field` in
/// `lua/lib.lua`).
const DATA_SUFFIX: &str = ".d";

/// A counter and its `PTTL` (negative when the key has no TTL or does not exist).
fn rate_count(count: u32, pttl: i64) -> RateCount {
    RateCount {
        count,
        resets_in: Duration::from_millis(pttl.max(0).unsigned_abs()),
    }
}

/// A handle as the scripts take it: 16 raw bytes (empty for none).
fn raw_handle(handle: Option<Uuid>) -> Vec<u8> {
    handle.map(|h| h.as_bytes().to_vec()).unwrap_or_default()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Prepares the connector. Connections are opened lazily, so this succeeds while Redis is
    /// down and the service becomes ready when Redis answers.
    pub fn new(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        Self::with_metrics(config, Arc::new(Metrics::new()))
    }

    /// [`RedisStore::new`], counting confirmations in the service's `metrics`.
    pub fn with_metrics(
        config: &RedisConfig,
        metrics: Arc<Metrics>,
    ) -> Result<RedisStore, StoreError> {
        let bad_url = |e: RedisError| {
            StoreError::Unavailable(format!("invalid Redis address ({:?})", e.kind()))
        };
        // No reply timeout in the client: every command already runs under this store's own
        // (`with_conn`, the feed tail, the idle `PING`), which also marks the connection for
        // replacement. A second one would arm a second timer on every check.
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(None);
        let topology = match &config.mode {
            RedisMode::Standalone { .. } => Topology::Standalone,
            RedisMode::Cluster { .. } => Topology::Cluster,
            RedisMode::Sentinel { .. } => Topology::Sentinel,
        };
        let connector = match &config.mode {
            RedisMode::Standalone { url } => Connector::Standalone(
                deadpool_redis::Manager::new_with_config(url.expose_secret(), settings)
                    .map_err(bad_url)?,
            ),
            RedisMode::Cluster { nodes } => {
                let nodes: Vec<&str> = nodes.iter().map(|n| n.expose_secret()).collect();
                Connector::Cluster(
                    deadpool_redis::cluster::Manager::new(nodes, false).map_err(bad_url)?,
                )
            }
            RedisMode::Sentinel { sentinels, master } => {
                let sentinels: Vec<&str> = sentinels.iter().map(|n| n.expose_secret()).collect();
                Connector::Sentinel {
                    client: tokio::sync::Mutex::new(
                        SentinelClient::build(
                            sentinels,
                            master.clone(),
                            None,
                            SentinelServerType::Master,
                        )
                        .map_err(bad_url)?,
                    ),
                    settings,
                }
            }
        };
        Ok(RedisStore {
            connector,
            keys: Keys::new(&config.prefix),
            timeout: config.timeout,
            replicas: ReplicaPolicy::new(config.wait_replicas, topology),
            metrics,
            tail: tokio::sync::Mutex::new(None),
            local: ThreadConnections::default(),
        })
    }

    /// Connections open across all threads (see `connections.rs`).
    pub fn open_connections(&self) -> usize {
        self.local.open()
    }

    /// Redis's clock (`TIME`), in ms since the Unix epoch, for the replicas' clock (see
    /// `domain::clock`).
    pub async fn time_ms(&self) -> Result<u64, StoreError> {
        let (secs, micros): (u64, u64) = self
            .with_conn(async |c| redis::cmd("TIME").query_async(c).await)
            .await?;
        Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
    }

    /// Replicas that must confirm an end now: from the configuration or, with `auto`, from what
    /// Redis reports (asked again now and then while it reports none; see `replication.rs`).
    pub async fn required_replicas(&self) -> Result<u32, StoreError> {
        if let Some(n) = self.replicas.known() {
            self.metrics.store_replicas_required.set(i64::from(n));
            return Ok(n);
        }
        let replicas = match self.replicas.topology() {
            Topology::Cluster => {
                let nodes: String = self
                    .with_conn(async |c| redis::cmd("CLUSTER").arg("NODES").query_async(c).await)
                    .await?;
                cluster_replicas(&nodes)
            }
            Topology::Standalone | Topology::Sentinel => {
                let info: String = self
                    .with_conn(async |c| redis::cmd("INFO").arg("replication").query_async(c).await)
                    .await?;
                standalone_replicas(&info)
            }
        };
        let required = self.replicas.observe(replicas);
        self.metrics
            .store_replicas_required
            .set(i64::from(required));
        Ok(required)
    }

    /// Confirms a login that evicted sessions: its write (the session and the evictions, one
    /// atomic step) must be on the required replicas. The check that the new session is on the
    /// node and the `WAIT` after it go together, so a node that lost the write in a failover
    /// cannot confirm it.
    async fn confirm_created(&self, user: Uuid, digest: &TokenDigest) -> Result<(), StoreError> {
        let mut call = Eval::new(&CONFIRM_CREATE);
        call.key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .arg(digest.encode());
        let present: i64 = self.confirmed(&call).await?;
        if present == 1 {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the new session is not on the primary any more".into(),
            ))
        }
    }

    /// What `/readyz` reports about confirmations.
    pub fn confirmation_report(&self) -> ConfirmationReport {
        self.replicas.report()
    }

    /// Runs `password.lua` in `mode` (`change`: compare-and-set on the credential version;
    /// `rehash`: on the hash). `None`: the user is gone or the expectation failed.
    async fn password_script(
        &self,
        id: Uuid,
        mode: &str,
        expected: &str,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let (scope, keep) = match revoke {
            RevokeScope::None => ("none", None),
            RevokeScope::All => ("all", None),
            RevokeScope::AllExcept(h) => ("except", Some(h)),
        };
        let mut call = Eval::new(&PASSWORD);
        call.key(self.keys.user(id))
            .key(self.keys.sessions(id))
            .key(self.keys.barrier(id))
            .arg(mode)
            .arg(expected)
            .arg(new)
            .arg(scope)
            .arg(raw_handle(keep));
        if mode == "rehash" {
            // The same password under new parameters: losing it in a failover changes nothing
            // a credential can do.
            self.plain(&call).await
        } else {
            self.confirmed(&call).await
        }
    }

    /// This thread's connection (see `connections.rs`): opened on first use, validated with a
    /// `PING` after sitting idle, replaced after it broke. Opening is boxed, so that only that
    /// slow path pays for its large future.
    async fn connection(&self) -> Result<(AnyConnection, Arc<AtomicBool>), StoreError> {
        if let Some(mut lease) = self.local.lease() {
            if !lease.idle {
                return Ok((lease.conn, lease.broken));
            }
            let ping_cmd = redis::cmd("PING");
            let ping = ping_cmd.query_async::<String>(&mut lease.conn);
            if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, ping).await {
                return Ok((lease.conn, lease.broken));
            }
            lease.broken.store(true, Ordering::Relaxed);
        }
        let lease = self.local.keep(self.open().await?);
        Ok((lease.conn, lease.broken))
    }

    /// A new connection, within the timeout.
    async fn open(&self) -> Result<AnyConnection, StoreError> {
        match tokio::time::timeout(self.timeout, Box::pin(self.connector.open())).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Unavailable(
                "no Redis connection in time".into(),
            )),
        }
    }

    /// Runs `op` on this thread's connection within the timeout; after an error that poisons
    /// it, it is marked so that it is replaced.
    async fn with_conn<T>(
        &self,
        op: impl AsyncFnOnce(&mut AnyConnection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (mut conn, broken) = self.connection().await?;
        match tokio::time::timeout(self.timeout, op(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if poisons_connection(&e) {
                    broken.store(true, Ordering::Relaxed);
                }
                Err(classify(&e))
            }
            Err(_) => {
                broken.store(true, Ordering::Relaxed);
                Err(StoreError::Unavailable(
                    "Redis did not answer in time".into(),
                ))
            }
        }
    }

    /// Runs a script that ends sessions or changes what a credential can do, and acknowledges
    /// it only once the required replicas confirm it: the script and a `WAIT` are one pipeline
    /// on one connection, so the `WAIT` confirms this script's write on the node that applied it
    /// (see `replication.rs`). Unconfirmed: [`StoreError::Unconfirmed`], the write possibly
    /// applied.
    async fn confirmed<T: FromRedisValue>(&self, call: &Eval) -> Result<T, StoreError> {
        let required = self.required_replicas().await?;
        if required == 0 {
            return self.plain(call).await;
        }
        // Half the store's timeout, so that the reply of a `WAIT` that ran out still arrives
        // within it.
        let wait_ms = u64::try_from(self.timeout.as_millis() / 2)
            .unwrap_or(500)
            .max(1);
        // Each attempt under its own timeout: a `WAIT` that ran out behind a `NOSCRIPT` must not
        // eat the time of the attempt that runs the script. `None`: the node lacks the script.
        let attempt = async |naming| {
            let mut pipe = redis::pipe();
            pipe.add_command(call.cmd(naming))
                .cmd("WAIT")
                .arg(required)
                .arg(wait_ms);
            self.with_conn(async |c| {
                let replies = c.req_packed_commands(&pipe, 0, 2).await?;
                let [script, wait] = <[Value; 2]>::try_from(replies).map_err(|_| {
                    RedisError::from((redis::ErrorKind::UnexpectedReturnType, "pipeline reply"))
                })?;
                if lacks_script(&script) {
                    return Ok(None);
                }
                // A failed script's error, whatever its `WAIT` said: it confirmed nothing.
                let value = T::from_redis_value(script.extract_error()?)?;
                let confirmed = u32::from_redis_value(wait.extract_error()?)?;
                Ok(Some((value, confirmed)))
            })
            .await
        };
        let result = match attempt(Naming::Digest).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => attempt(Naming::Text).await.and_then(|done| {
                done.ok_or_else(|| StoreError::Unavailable("NOSCRIPT for a script's text".into()))
            }),
            Err(e) => Err(e),
        };
        match result {
            Ok((value, confirmed)) if confirmed >= required => {
                self.replicas.record(Outcome::Confirmed);
                self.metrics.store_ends_confirmed.inc();
                Ok(value)
            }
            Ok((_, confirmed)) => {
                self.replicas.record(Outcome::Unconfirmed);
                self.metrics.store_ends_unconfirmed.inc();
                Err(StoreError::Unconfirmed {
                    required,
                    confirmed,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a script call without confirmation.
    async fn plain<T: FromRedisValue>(&self, call: &Eval) -> Result<T, StoreError> {
        self.with_conn(
            async |c| match call.cmd(Naming::Digest).query_async(c).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    call.cmd(Naming::Text).query_async(c).await
                }
                other => other,
            },
        )
        .await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(async |c| redis::cmd("PING").query_async::<String>(c).await)
            .await
            .map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn create_user(&self, user: &UserRecord) -> Result<CreateUser, StoreError> {
        let user_key = self.keys.user(user.id);
        let name_key = self.keys.username(&user.username);
        // Write the record under its fresh id first, then claim the name: a crash in between
        // leaves an unreachable record, never a name that points nowhere.
        self.with_conn(async |c| {
            redis::cmd("HSET")
                .arg(&user_key)
                .arg("n")
                .arg(user.username.as_str())
                .arg("h")
                .arg(&user.password_hash)
                .arg("d")
                .arg(if user.disabled { "1" } else { "0" })
                .arg("c")
                .arg(user.created_ms)
                .arg("v")
                .arg(user.credential_version)
                .query_async::<()>(c)
                .await?;
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&name_key)
                .arg(user.id.simple().to_string())
                .arg("NX")
                .query_async(c)
                .await?;
            if claimed.is_some() {
                Ok(CreateUser::Created)
            } else {
                redis::cmd("DEL")
                    .arg(&user_key)
                    .query_async::<()>(c)
                    .await?;
                Ok(CreateUser::UsernameTaken)
            }
        })
        .await
    }

    async fn user_by_name(&self, name: &Username) -> Result<Option<UserRecord>, StoreError> {
        let key = self.keys.username(name);
        let id: Option<String> = self
            .with_conn(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        match id.as_deref().map(Uuid::try_parse) {
            None => Ok(None),
            Some(Ok(id)) => self.user_by_id(id).await,
            Some(Err(_)) => Err(StoreError::Corrupt(format!("username key {key}"))),
        }
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let key = self.keys.user(id);
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<u64>,
            (Option<Vec<u8>>, Option<u64>, Option<u64>, Option<Vec<u8>>),
        );
        let passkeys_key = self.keys.passkeys(id);
        // The record and the passkeys, in one round trip (one slot: the user's).
        let (fields, passkeys): (Fields, Vec<(String, String)>) = self
            .with_conn(async |c| {
                type Reply = (
                    (
                        Option<String>,
                        Option<String>,
                        Option<String>,
                        Option<u64>,
                        Option<u64>,
                        Option<Vec<u8>>,
                        Option<u64>,
                        Option<u64>,
                        Option<Vec<u8>>,
                    ),
                    Vec<(String, String)>,
                );
                let ((n, h, d, c_, v, t, ts, tc, r), passkeys): Reply = redis::pipe()
                    .cmd("HMGET")
                    .arg(&key)
                    .arg(&["n", "h", "d", "c", "v", "t", "ts", "tc", "r"])
                    .cmd("HGETALL")
                    .arg(&passkeys_key)
                    .query_async(c)
                    .await?;
                Ok(((n, h, d, c_, v, (t, ts, tc, r)), passkeys))
            })
            .await?;
        match fields {
            (None, None, None, None, _, _) => Ok(None),
            (Some(name), Some(hash), Some(disabled), Some(created), version, factors) => {
                let (totp, last_step, enrolled, recovery) = factors;
                let recovery_codes = recovery
                    .unwrap_or_default()
                    .chunks(16)
                    .map(<[u8; 16]>::try_from)
                    .collect::<Result<_, _>>()
                    .map_err(|_| StoreError::Corrupt(format!("recovery codes in {key}")))?;
                Ok(Some(UserRecord {
                    id,
                    username: Username::parse(&name)
                        .map_err(|_| StoreError::Corrupt(format!("username in {key}")))?,
                    password_hash: hash,
                    disabled: disabled == "1",
                    created_ms: created,
                    // Records written before credential versions existed have none: version 0.
                    credential_version: version.unwrap_or(0),
                    factors: UserFactors {
                        totp: totp.map(|sealed| StoredTotp {
                            sealed,
                            last_step: last_step.unwrap_or(0),
                            enrolled_ms: enrolled.unwrap_or(0),
                        }),
                        recovery_codes,
                        passkeys: passkeys
                            .into_iter()
                            .map(|(id, json)| StoredPasskey { id, json })
                            .collect(),
                    },
                }))
            }
            _ => Err(StoreError::Corrupt(format!("incomplete user record {key}"))),
        }
    }

    async fn replace_password_hash(
        &self,
        id: Uuid,
        expected_version: u64,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let expected = expected_version.to_string();
        let raw = self
            .password_script(id, "change", &expected, new, revoke)
            .await?;
        raw.as_deref().map(handles).transpose()
    }

    async fn rehash_password(
        &self,
        id: Uuid,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let raw = self
            .password_script(id, "rehash", expected, new, RevokeScope::None)
            .await?;
        Ok(raw.is_some())
    }

    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut call = Eval::new(&DISABLE);
        call.key(self.keys.user(id))
            .key(self.keys.sessions(id))
            .key(self.keys.barrier(id))
            .arg(if disabled { "1" } else { "0" });
        let raw: Option<Vec<Vec<u8>>> = self.confirmed(&call).await?;
        raw.as_deref().map(handles).transpose()
    }

    async fn create_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
        credential_version: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let user = record.user_id;
        let (cap, policy) = match limit {
            None => (0, "evict"),
            Some(SessionLimit { max, policy }) => (
                max,
                match policy {
                    LimitPolicy::EvictOldest => "evict",
                    LimitPolicy::Refuse => "refuse",
                },
            ),
        };
        let mut call = CREATE.prepare_invoke();
        call.key(self.keys.user(user))
            .key(self.keys.sessions(user))
            .arg(credential_version)
            .arg(digest.encode())
            .arg(record.encode())
            .arg(cap)
            .arg(policy);
        // A login is not confirmed (losing one costs a re-login), unless it evicted sessions:
        // then those ends are confirmed like any other, in a second step.
        let reply: Vec<Vec<u8>> = self.with_conn(async |c| call.invoke_async(c).await).await?;
        match reply.split_first() {
            Some((status, evicted)) if status == b"ok" => {
                let evicted = handles(evicted)?;
                if !evicted.is_empty() {
                    self.confirm_created(user, digest).await?;
                }
                Ok(CreateOutcome::Created { evicted })
            }
            Some((status, _)) if status == b"unavailable" => Ok(CreateOutcome::UserUnavailable),
            Some((status, _)) if status == b"limit" => Ok(CreateOutcome::LimitReached),
            // A 128-bit digest collision: report it as a failure rather than overwrite anything.
            Some((status, _)) => Err(StoreError::Corrupt(format!(
                "create_session replied {}",
                String::from_utf8_lossy(status)
            ))),
            None => Err(StoreError::Corrupt("create_session replied nothing".into())),
        }
    }

    async fn session(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<StoredSession>, StoreError> {
        let key = self.keys.sessions(user);
        // The record's field and the data's, in one buffer on the stack.
        let mut fields = [0u8; DIGEST_CHARS + DATA_SUFFIX.len()];
        let (field, suffix) = fields.split_at_mut(DIGEST_CHARS);
        field.copy_from_slice(&digest.encoded());
        suffix.copy_from_slice(DATA_SUFFIX.as_bytes());
        // One command for the record and the data: a session without data costs a missing
        // field, not a second read.
        let (raw, stored): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .with_conn(async |c| {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&fields[..DIGEST_CHARS])
                    .arg(&fields[..])
                    .query_async(c)
                    .await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        Ok(Some(StoredSession {
            record: decode(user, &raw)?,
            data: decode_data(stored.as_deref())?,
        }))
    }

    async fn session_confirmed(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        // Nothing to confirm without replicas: a plain read, no barrier write.
        if self.required_replicas().await? == 0 {
            return Ok(self.session(user, digest).await?.map(|s| s.record));
        }
        let mut call = Eval::new(&READ_CONFIRMED);
        call.key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .arg(digest.encode());
        let raw: Option<Vec<u8>> = self.confirmed(&call).await?;
        raw.map(|r| decode(user, &r)).transpose()
    }

    async fn touch_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let user = record.user_id;
        let mut call = TOUCH.prepare_invoke();
        call.key(self.keys.sessions(user))
            .arg(digest.encode())
            .arg(record.encode());
        let n: i64 = self.with_conn(async |c| call.invoke_async(c).await).await?;
        Ok(n == 1)
    }

    async fn reauthenticate_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
    ) -> Result<ReauthOutcome, StoreError> {
        let user = record.user_id;
        let mut call = REAUTH.prepare_invoke();
        call.key(self.keys.user(user))
            .key(self.keys.sessions(user))
            .arg(credential_version)
            .arg(digest.encode())
            .arg(&authenticated_field(record)[..])
            .arg(record.encode());
        // Not confirmed: losing it only asks for the password again.
        let reply: String = self.with_conn(async |c| call.invoke_async(c).await).await?;
        match reply.as_str() {
            "ok" => Ok(ReauthOutcome::Recorded),
            "gone" => Ok(ReauthOutcome::SessionGone),
            "unavailable" => Ok(ReauthOutcome::UserUnavailable),
            other => Err(StoreError::Corrupt(format!(
                "reauthenticate replied {other}"
            ))),
        }
    }

    async fn session_data(
        &self,
        user: Uuid,
        handle: Uuid,
    ) -> Result<Option<SessionData>, StoreError> {
        let mut call = DATA_GET.prepare_invoke();
        call.key(self.keys.sessions(user))
            .arg(raw_handle(Some(handle)));
        let raw: Option<Vec<u8>> = self.with_conn(async |c| call.invoke_async(c).await).await?;
        raw.map(|r| decode_data(Some(&r))).transpose()
    }

    async fn write_session_data(
        &self,
        user: Uuid,
        handle: Uuid,
        expected: u64,
        json: Option<&str>,
    ) -> Result<DataWrite, StoreError> {
        let mut call = DATA_SET.prepare_invoke();
        call.key(self.keys.sessions(user))
            .arg(raw_handle(Some(handle)))
            .arg(expected)
            .arg(json.unwrap_or_default());
        // Not confirmed: a failover may lose the last writes, as with a renewal (docs/src/operations/failover.md).
        let reply: Vec<Vec<u8>> = self.with_conn(async |c| call.invoke_async(c).await).await?;
        match reply.as_slice() {
            [status, version] if status == b"ok" => std::str::from_utf8(version)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(DataWrite::Written)
                .ok_or_else(|| StoreError::Corrupt("session data version".into())),
            [status, stored] if status == b"conflict" => {
                Ok(DataWrite::Conflict(decode_data(Some(stored))?))
            }
            [status] if status == b"gone" => Ok(DataWrite::Gone),
            _ => Err(StoreError::Corrupt("write_session_data reply".into())),
        }
    }

    async fn revoke_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let user = record.user_id;
        let mut call = Eval::new(&REVOKE);
        call.key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .arg(digest.encode());
        let n: i64 = self.confirmed(&call).await?;
        Ok(n == 1)
    }

    async fn revoke_session_by_handle(&self, user: Uuid, handle: Uuid) -> Result<bool, StoreError> {
        let mut call = Eval::new(&REVOKE_HANDLE);
        call.key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .arg(raw_handle(Some(handle)));
        let n: i64 = self.confirmed(&call).await?;
        Ok(n == 1)
    }

    async fn list_sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        let mut call = LIST.prepare_invoke();
        call.key(self.keys.sessions(user));
        let raw: Vec<Vec<u8>> = self.with_conn(async |c| call.invoke_async(c).await).await?;
        let mut records = raw
            .iter()
            .map(|r| decode(user, r))
            .collect::<Result<Vec<_>, _>>()?;
        // Least recently active first: earliest expiry, then handle (as the embedded store).
        records.sort_by_key(|r| (r.expires_ms(), r.handle));
        Ok(records)
    }

    async fn revoke_all_sessions(
        &self,
        user: Uuid,
        except: Option<Uuid>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut call = Eval::new(&REVOKE_ALL);
        call.key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .arg(raw_handle(except));
        let raw: Vec<Vec<u8>> = self.confirmed(&call).await?;
        handles(&raw)
    }

    async fn hit(&self, key: &RateKey, window: Duration) -> Result<RateCount, StoreError> {
        let mut call = HIT.prepare_invoke();
        call.key(self.keys.rate(key)).arg(ms(window));
        let (count, ttl): (u32, i64) = self.with_conn(async |c| call.invoke_async(c).await).await?;
        Ok(rate_count(count, ttl))
    }

    async fn peek(&self, key: &RateKey) -> Result<RateCount, StoreError> {
        let mut call = PEEK.prepare_invoke();
        call.key(self.keys.rate(key));
        let (count, ttl): (u32, i64) = self.with_conn(async |c| call.invoke_async(c).await).await?;
        Ok(rate_count(count, ttl))
    }

    async fn refund(&self, key: &RateKey) -> Result<(), StoreError> {
        let mut call = REFUND.prepare_invoke();
        call.key(self.keys.rate(key));
        self.with_conn(async |c| call.invoke_async::<()>(c).await)
            .await
    }

    async fn publish(&self, event: &SessionEvent) -> Result<(), StoreError> {
        let handles: Vec<String> = event
            .handles
            .iter()
            .map(|h| h.simple().to_string())
            .collect();
        let mut call = Eval::new(&PUBLISH);
        call.key(self.keys.events())
            .arg(FEED_MAX_LEN)
            .arg(event.kind.as_str())
            .arg(event.user_id.simple().to_string())
            .arg(handles.join(","))
            .arg(if event.all { "1" } else { "0" })
            .arg(
                event
                    .kept
                    .map(|k| k.simple().to_string())
                    .unwrap_or_default(),
            )
            .arg(event.at_ms)
            .arg(event.by.as_ref().map_or("", |a| a.admin_key.as_str()))
            .arg(
                event
                    .by
                    .as_ref()
                    .and_then(|a| a.client_ip)
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
            );
        // The event of an end is confirmed like the end (an `XADD` always writes, so its `WAIT`
        // confirms it); those of writes that are not confirmed (a login, a data write or a
        // re-authentication) are not either (see `replication.rs`).
        let _id: String = if matches!(event.kind, EventKind::Login | EventKind::Updated) {
            self.plain(&call).await?
        } else {
            self.confirmed(&call).await?
        };
        Ok(())
    }

    async fn read_events(&self, from: &FeedPosition, max: usize) -> Result<EventPage, StoreError> {
        let after = match from {
            FeedPosition::Latest => "$".to_owned(),
            // Nothing can follow the largest id, and Redis refuses to read after it: ask for the
            // feed's bounds only; the position then lies past the end and is reported gone.
            FeedPosition::After(id) if parse_id(id) == Some((u64::MAX, u64::MAX)) => "$".to_owned(),
            FeedPosition::After(id) => id.clone(),
        };
        let mut call = READ_EVENTS.prepare_invoke();
        call.key(self.keys.events()).arg(&after).arg(max.max(1));
        let raw: Vec<String> = self.with_conn(async |c| call.invoke_async(c).await).await?;
        decode_page(from, &raw)
    }

    async fn await_events(
        &self,
        after: &str,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        // Blocks for less than the reply timeout, so a quiet feed is not taken for a dead server.
        let block = wait.min(self.timeout / 2);
        let mut slot = self.tail.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.open().await?,
        };
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(ms(block))
            .arg("STREAMS")
            .arg(self.keys.events())
            .arg(after);
        let read = xread.query_async::<redis::Value>(&mut conn);
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(reply)) => {
                *slot = Some(conn);
                Ok(newest_id(&reply))
            }
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Unavailable(
                "Redis did not answer in time".into(),
            )),
        }
    }

    async fn begin_totp_enrollment(
        &self,
        user: Uuid,
        pending: &PendingTotp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.keys.totp_enrollment(user);
        self.with_conn(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(pending.encode())
                .arg("PX")
                .arg(ms(ttl).max(1))
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn totp_enrollment(&self, user: Uuid) -> Result<Option<PendingTotp>, StoreError> {
        let key = self.keys.totp_enrollment(user);
        let raw: Option<Vec<u8>> = self
            .with_conn(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        raw.map(|r| PendingTotp::decode(&r).ok_or_else(|| corrupt("TOTP enrolment")))
            .transpose()
    }

    async fn prove_second_factor(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
        proof: &FactorUse,
    ) -> Result<FactorOutcome, StoreError> {
        let user = record.user_id;
        let mut call = Eval::new(&SECOND_FACTOR);
        call.key(self.keys.user(user))
            .key(self.keys.sessions(user))
            .key(self.keys.totp_enrollment(user))
            .key(self.keys.passkeys(user))
            .arg(credential_version)
            .arg(digest.encode())
            .arg(assurance_trailer(record))
            .arg(record.encode());
        match proof {
            FactorUse::Totp {
                step,
                sealed,
                resealed,
            } => call
                .arg("totp")
                .arg(*step)
                .arg(&sealed[..])
                .arg(resealed.as_deref().unwrap_or_default()),
            FactorUse::RecoveryCode(code) => call.arg("recovery").arg(&code[..]),
            FactorUse::AddPasskey { credential, json } => {
                call.arg("passkey_add").arg(credential).arg(json)
            }
            FactorUse::Passkey {
                credential,
                expected,
                new,
            } => call.arg("passkey").arg(credential).arg(expected).arg(new),
            FactorUse::EnrollTotp {
                pending,
                step,
                enrolled_ms,
            } => call
                .arg("enroll")
                .arg(*step)
                .arg(pending.encode())
                .arg(&pending.sealed[..])
                .arg(*enrolled_ms),
        };
        // Confirmed: a used code or step that a failover brought back could be used again, and
        // a lost enrolment would leave the account without the factor its user just set up.
        let reply: Vec<Vec<u8>> = self.confirmed(&call).await?;
        let left = || {
            reply
                .get(1)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
                .ok_or_else(|| corrupt("second factor reply"))
        };
        match reply.first().map(Vec::as_slice) {
            Some(b"ok") => Ok(FactorOutcome::Recorded {
                recovery_codes_left: left()?,
            }),
            Some(b"gone") => Ok(FactorOutcome::SessionGone),
            Some(b"unavailable") => Ok(FactorOutcome::UserUnavailable),
            Some(b"replayed") => Ok(FactorOutcome::Replayed),
            Some(b"wrong") => Ok(FactorOutcome::WrongCode),
            Some(b"expired") => Ok(FactorOutcome::EnrollmentGone),
            Some(b"exists") => Ok(FactorOutcome::PasskeyExists),
            _ => Err(corrupt("second factor reply")),
        }
    }

    async fn change_factors(
        &self,
        user: Uuid,
        credential_version: Option<u64>,
        change: &FactorChange,
        keep: Option<Uuid>,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let (mode, codes, credential) = match change {
            FactorChange::RemoveTotp => ("remove_totp", Vec::new(), ""),
            FactorChange::SetRecoveryCodes(codes) => ("recovery", codes.concat(), ""),
            FactorChange::RemovePasskey(credential) => {
                ("remove_passkey", Vec::new(), credential.as_str())
            }
            FactorChange::Reset => ("reset", Vec::new(), ""),
        };
        let mut call = Eval::new(&FACTORS);
        call.key(self.keys.user(user))
            .key(self.keys.sessions(user))
            .key(self.keys.barrier(user))
            .key(self.keys.totp_enrollment(user))
            .key(self.keys.passkeys(user))
            .arg(
                credential_version
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            )
            .arg(mode)
            .arg(raw_handle(keep))
            .arg(codes)
            .arg(credential);
        let raw: Option<Vec<Vec<u8>>> = self.confirmed(&call).await?;
        raw.as_deref().map(handles).transpose()
    }

    async fn put_ceremony(&self, id: &str, state: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = self.keys.ceremony(id);
        self.with_conn(async |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(state)
                .arg("PX")
                .arg(ms(ttl).max(1))
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn take_ceremony(&self, id: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.ceremony(id);
        self.with_conn(async |c| redis::cmd("GETDEL").arg(&key).query_async(c).await)
            .await
    }

    async fn claim_passkey(&self, credential: &str, user: Uuid) -> Result<bool, StoreError> {
        let key = self.keys.passkey_claim(credential);
        let claimed: Option<String> = self
            .with_conn(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(user.simple().to_string())
                    .arg("NX")
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(claimed.is_some())
    }

    async fn release_passkey(&self, credential: &str, user: Uuid) -> Result<(), StoreError> {
        let mut call = RELEASE_PASSKEY.prepare_invoke();
        call.key(self.keys.passkey_claim(credential))
            .arg(user.simple().to_string());
        self.with_conn(async |c| call.invoke_async::<()>(c).await)
            .await
    }

    async fn update_passkey(
        &self,
        user: Uuid,
        credential: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut call = UPDATE_PASSKEY.prepare_invoke();
        call.key(self.keys.passkeys(user))
            .arg(credential)
            .arg(expected)
            .arg(new);
        // Not confirmed by replicas: what a failover loses is a counter step or a name, and a
        // passwordless sign-in's ceremony is used up all the same.
        let n: i64 = self.with_conn(async |c| call.invoke_async(c).await).await?;
        Ok(n == 1)
    }

    async fn create_console_session(
        &self,
        digest: &ConsoleDigest,
        session: &ConsoleSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.keys.console(digest);
        let value = serde_json::to_string(session)
            .map_err(|e| StoreError::Corrupt(format!("console session: {e}")))?;
        // `NX`: a 256-bit token never collides, but nothing is ever overwritten either.
        let stored: Option<String> = self
            .with_conn(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("PX")
                    .arg(ms(ttl).max(1))
                    .arg("NX")
                    .query_async(c)
                    .await
            })
            .await?;
        match stored {
            Some(_) => Ok(()),
            None => Err(StoreError::Corrupt("console session already exists".into())),
        }
    }

    async fn console_session(
        &self,
        digest: &ConsoleDigest,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let key = self.keys.console(digest);
        let raw: Option<String> = self
            .with_conn(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        raw.map(|text| {
            serde_json::from_str::<ConsoleSession>(&text)
                .ok()
                .filter(|s| s.v == 1)
                .ok_or_else(|| StoreError::Corrupt("console session".into()))
        })
        .transpose()
    }

    async fn end_console_session(&self, digest: &ConsoleDigest) -> Result<(), StoreError> {
        let key = self.keys.console(digest);
        self.with_conn(async |c| redis::cmd("DEL").arg(&key).query_async::<()>(c).await)
            .await
    }
}

/// The id of the newest entry in an `XREAD` reply (`None`: it timed out empty).
fn newest_id(reply: &redis::Value) -> Option<String> {
    use redis::Value::{Array, BulkString, Map};
    let entries = match reply {
        Array(streams) => match streams.first()? {
            Array(stream) => stream.get(1)?,
            _ => return None,
        },
        // RESP3 answers with a map of stream name to entries.
        Map(streams) => &streams.first()?.1,
        _ => return None,
    };
    match entries {
        Array(entries) => match entries.last()? {
            Array(entry) => match entry.first()? {
                BulkString(id) => String::from_utf8(id.clone()).ok(),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Whether events after `after` may have been lost: the position lies beyond the feed's end (a
/// feed that was lost and started again), everything is trimmed and the feed moved on, or the
/// oldest retained event is newer than the position (trimmed past it, or a lost feed that started
/// again). `0-0` (from the beginning) never is.
pub fn position_gone(after: (u64, u64), first: Option<(u64, u64)>, last: (u64, u64)) -> bool {
    if after == (0, 0) {
        return false;
    }
    if after > last {
        return true;
    }
    match first {
        None => last > after,
        Some(first) => first > after,
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("event feed: {what}"))
}

/// Turns the feed script's flat reply into a page, deciding whether the position is gone.
fn decode_page(from: &FeedPosition, raw: &[String]) -> Result<EventPage, StoreError> {
    let (status, rest) = raw.split_first().ok_or_else(|| corrupt("empty reply"))?;
    let after = match from {
        FeedPosition::Latest => None,
        FeedPosition::After(id) => Some(parse_id(id).ok_or_else(|| corrupt("bad position"))?),
    };
    if status == "missing" {
        // No feed at all: only a consumer starting from the beginning has missed nothing.
        return Ok(EventPage {
            events: Vec::new(),
            last_id: "0-0".into(),
            reset: after.is_some_and(|a| a != (0, 0)),
        });
    }
    let [last, first, entries @ ..] = rest else {
        return Err(corrupt("short reply"));
    };
    let last_parsed = parse_id(last).ok_or_else(|| corrupt("bad last id"))?;
    let first = if first.is_empty() {
        None
    } else {
        Some(parse_id(first).ok_or_else(|| corrupt("bad first id"))?)
    };
    let Some(after) = after else {
        return Ok(EventPage {
            events: Vec::new(),
            last_id: last.clone(),
            reset: false,
        });
    };
    if position_gone(after, first, last_parsed) {
        return Ok(EventPage {
            events: Vec::new(),
            last_id: last.clone(),
            reset: true,
        });
    }
    let uuid = |text: &str| Uuid::try_parse(text).map_err(|_| corrupt("bad uuid"));
    let mut events = Vec::new();
    for e in entries.chunks(9) {
        let [id, kind, user, handles, all, kept, at, admin_key, admin_ip] = e else {
            return Err(corrupt("truncated entry"));
        };
        // Types this version does not know are passed on (see `EventKind::Other`), never
        // skipped: skipping them without moving the position would stall every reader.
        let kind = EventKind::parse(kind);
        events.push((
            id.clone(),
            SessionEvent {
                kind,
                user_id: uuid(user)?,
                handles: handles
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(uuid)
                    .collect::<Result<_, _>>()?,
                all: all == "1",
                kept: (!kept.is_empty()).then(|| uuid(kept)).transpose()?,
                at_ms: at.parse().unwrap_or(0),
                by: (!admin_key.is_empty()).then(|| Actor {
                    admin_key: admin_key.clone(),
                    client_ip: admin_ip.parse().ok(),
                }),
            },
        ));
    }
    let last_id = events
        .last()
        .map_or_else(|| format!("{}-{}", after.0, after.1), |(id, _)| id.clone());
    Ok(EventPage {
        events,
        last_id,
        reset: false,
    })
}
