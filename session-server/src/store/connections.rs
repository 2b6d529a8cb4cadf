//! Redis connections: one multiplexed connection per thread, opened by deadpool-redis's managers
//! (standalone, Cluster) or the redis crate's Sentinel client.
//!
//! A multiplexed connection (and a Cluster connection, which multiplexes per node) pipelines the
//! commands of every request holding a clone of it; each reply is matched to its request by
//! order, so a late reply is discarded, never read as another request's answer. Its driver task
//! runs on the runtime that opened it. Opened by the worker thread that uses it, the requests
//! and the driver share one scheduler: the commands of the requests a worker serves in one turn
//! leave in one write and their replies arrive in one read, no wake-up crosses threads, and no
//! request waits for a pool checkout. Measured on the session check: one `write` syscall per
//! check before (a shared connection driven by another thread), about one per turn of the worker
//! after (see `bench/results/`).
//!
//! A replica holds one connection per thread that talks to Redis (each worker of both
//! listeners, the main runtime), plus the event feed follower's own. A connection is validated
//! with a `PING` before reuse once it sat idle for [`VALIDATE_AFTER_IDLE`]. One on which a
//! command failed at the I/O level, timed out, or met a demoted primary is marked broken and
//! replaced at its thread's next request, resolved afresh (through Sentinel, if configured).

use std::{
    borrow::Cow,
    cell::RefCell,
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool::managed::Manager as _;
use deadpool_redis::redis::{
    Arg, AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Script, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster_async::ClusterConnection,
    sentinel::SentinelClient,
};
use tracing::Instrument;

/// A connection idle longer than this is validated with a PING before reuse.
pub const VALIDATE_AFTER_IDLE: Duration = Duration::from_millis(500);

/// What opens connections in the deployment mode.
pub enum Connector {
    Standalone(deadpool_redis::Manager),
    /// The redis crate's Sentinel client, which asks the sentinels for the current primary at
    /// every open. Not deadpool-redis's Sentinel manager: that one takes no connection settings
    /// and so keeps the client's default reply timeout (500 ms), which would cut replies short of
    /// the store's own timeout and arm a second timer per command.
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        settings: AsyncConnectionConfig,
    },
    Cluster(deadpool_redis::cluster::Manager),
}

impl Connector {
    /// A new connection, its driver spawned on the calling thread's runtime.
    pub async fn open(&self) -> Result<AnyConnection, RedisError> {
        Ok(match self {
            Connector::Standalone(m) => AnyConnection::Single(m.create().await?),
            Connector::Sentinel { client, settings } => AnyConnection::Single(
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(settings)
                    .await?,
            ),
            Connector::Cluster(m) => AnyConnection::Cluster(m.create().await?),
        })
    }
}

/// A connection of any mode; all commands go through it.
#[derive(Clone)]
pub enum AnyConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for AnyConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let reply = match self {
            AnyConnection::Single(c) => c.req_packed_command(cmd),
            AnyConnection::Cluster(c) => c.req_packed_command(cmd),
        };
        match redis_span(|| operation(cmd), 1) {
            None => reply,
            Some(span) => traced(reply, span),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let replies = match self {
            AnyConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        // A pipeline is one round trip, named after its first command (a script and its `WAIT`
        // are the script's).
        let first = || {
            pipeline
                .cmd_iter()
                .next()
                .map_or("PIPELINE".into(), operation)
        };
        match redis_span(first, pipeline.len()) {
            None => replies,
            Some(span) => traced(replies, span),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConnection::Single(c) => c.get_db(),
            AnyConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// The operation a command is: its name, or for a script (`EVALSHA`, `EVAL`) the script's.
fn operation(cmd: &Cmd) -> Cow<'static, str> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next().unwrap_or_default();
    let script = if name.eq_ignore_ascii_case(b"EVALSHA") {
        args.next()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(super::redis::script_name)
    } else if name.eq_ignore_ascii_case(b"EVAL") {
        args.next()
            .and_then(|text| std::str::from_utf8(text).ok())
            .and_then(|text| super::redis::script_name(Script::new(text).get_hash()))
    } else {
        None
    };
    match script {
        Some(script) => Cow::Borrowed(script),
        None => Cow::Owned(String::from_utf8_lossy(name).to_ascii_uppercase()),
    }
}

/// A Redis span, when spans are exported (see `telemetry::redis_span`).
fn redis_span(
    operation: impl FnOnce() -> Cow<'static, str>,
    commands: usize,
) -> Option<tracing::Span> {
    let span = crate::telemetry::redis_span();
    if span.is_disabled() {
        return None;
    }
    let operation = operation();
    span.record("otel.name", &*operation);
    span.record("db.operation.name", &*operation);
    if commands > 1 {
        span.record("db.operation.batch.size", commands);
    }
    Some(span)
}

/// `reply` in `span`, which records a failure as an error (with the error's kind, never its
/// text: a script's error may quote its arguments).
fn traced<'a, T: Send + 'a>(reply: RedisFuture<'a, T>, span: tracing::Span) -> RedisFuture<'a, T> {
    let recorder = span.clone();
    Box::pin(
        async move {
            let result = reply.await;
            if let Err(e) = &result {
                recorder.record("otel.status_code", "ERROR");
                recorder.record("error.type", e.code().unwrap_or(e.category()));
            }
            result
        }
        .instrument(span),
    )
}

/// A connection handed to a request, with the flag that retires it after a failure.
pub struct Lease {
    pub conn: AnyConnection,
    pub broken: Arc<AtomicBool>,
    /// Idle long enough that it must be validated before use.
    pub idle: bool,
}

/// The connections of one store, one per thread (kept in a thread-local table).
pub struct ThreadConnections {
    /// Tells this store's entries apart from other stores' in the table.
    id: u64,
    /// Connections open across all threads, for metrics.
    open: Arc<AtomicUsize>,
}

struct Entry {
    conn: AnyConnection,
    broken: Arc<AtomicBool>,
    last_used: Instant,
    _counted: Counted,
}

/// Counts an open connection for as long as it is held.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    static TABLE: RefCell<HashMap<u64, Entry>> = RefCell::default();
}

impl Default for ThreadConnections {
    fn default() -> ThreadConnections {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ThreadConnections {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            open: Arc::default(),
        }
    }
}

impl ThreadConnections {
    /// This thread's connection, unless it broke (then it is dropped) or there is none yet.
    pub fn lease(&self) -> Option<Lease> {
        TABLE.with_borrow_mut(|table| {
            let entry = table.get_mut(&self.id)?;
            if entry.broken.load(Ordering::Relaxed) {
                table.remove(&self.id);
                return None;
            }
            // One clock read per request: it serves both the idle test and the new mark.
            let now = Instant::now();
            let idle = now.saturating_duration_since(entry.last_used) >= VALIDATE_AFTER_IDLE;
            entry.last_used = now;
            Some(Lease {
                conn: entry.conn.clone(),
                broken: entry.broken.clone(),
                idle,
            })
        })
    }

    /// Keeps a newly opened connection as this thread's.
    pub fn keep(&self, conn: AnyConnection) -> Lease {
        let broken = Arc::new(AtomicBool::new(false));
        self.open.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            conn: conn.clone(),
            broken: broken.clone(),
            last_used: Instant::now(),
            _counted: Counted(self.open.clone()),
        };
        TABLE.with_borrow_mut(|table| table.insert(self.id, entry));
        Lease {
            conn,
            broken,
            idle: false,
        }
    }

    /// Connections open across all threads.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}
