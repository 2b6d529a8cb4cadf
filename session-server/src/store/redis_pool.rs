//! Redis connections: deadpool-redis's managers (standalone, Cluster, Sentinel), shared rather
//! than held.
//!
//! A Redis multiplexed connection (and a Cluster connection, which multiplexes per node) carries
//! many requests at once. So a request takes a connection from the pool only long enough to clone
//! its handle and gives it straight back: concurrent requests share a few connections instead of
//! each request paying for a connection of its own. With 64 concurrent session checks on one
//! worker this nearly doubled throughput (see the README's measurements).
//!
//! deadpool-redis still creates the connections and validates them, but only after they sat idle
//! for [`VALIDATE_AFTER_IDLE`] (deadpool-redis alone would send a validating `PING` on every
//! checkout, a second round trip for every `GET`). A connection on which a command failed at the
//! I/O level, timed out, or met a demoted primary is marked broken and discarded at its next
//! checkout, never reused; its replacement is resolved afresh (through Sentinel, if configured).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::{
    Cmd, Pipeline, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster_async::ClusterConnection,
};

/// A connection idle longer than this is validated with a PING before reuse.
pub const VALIDATE_AFTER_IDLE: Duration = Duration::from_millis(500);

/// A pooled connection and its health flag.
pub struct SharedConnection<C> {
    pub conn: C,
    pub broken: Arc<AtomicBool>,
}

/// Wraps one of deadpool-redis's managers.
pub struct Manager<M> {
    inner: M,
}

impl<M> Manager<M> {
    pub fn new(inner: M) -> Manager<M> {
        Manager { inner }
    }
}

impl<M> managed::Manager for Manager<M>
where
    M: managed::Manager<Error = RedisError>,
    M::Type: Sync,
{
    type Type = SharedConnection<M::Type>;
    type Error = RedisError;

    async fn create(&self) -> Result<Self::Type, RedisError> {
        Ok(SharedConnection {
            conn: self.inner.create().await?,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(
        &self,
        shared: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if shared.broken.load(Ordering::Relaxed) {
            return Err(RecycleError::message("a command on this connection failed"));
        }
        if metrics.last_used() < VALIDATE_AFTER_IDLE {
            return Ok(());
        }
        self.inner.recycle(&mut shared.conn, metrics).await
    }
}

pub type Pool<M> = managed::Pool<Manager<M>>;
pub type PoolError = managed::PoolError<RedisError>;

/// The pools of the three deployment modes.
pub enum Pools {
    Standalone(Pool<deadpool_redis::Manager>),
    Sentinel(Pool<deadpool_redis::sentinel::Manager>),
    Cluster(Pool<deadpool_redis::cluster::Manager>),
}

/// A connection of any mode; all commands go through it.
#[derive(Clone)]
pub enum AnyConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for AnyConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            AnyConnection::Single(c) => c.req_packed_command(cmd),
            AnyConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConnection::Single(c) => c.get_db(),
            AnyConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Occupancy, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Pools {
    /// Borrows a connection just long enough to clone its handle.
    pub async fn get(&self) -> Result<(AnyConnection, Arc<AtomicBool>), PoolError> {
        Ok(match self {
            Pools::Standalone(p) => {
                let c = p.get().await?;
                (AnyConnection::Single(c.conn.clone()), c.broken.clone())
            }
            Pools::Sentinel(p) => {
                let c = p.get().await?;
                (AnyConnection::Single(c.conn.clone()), c.broken.clone())
            }
            Pools::Cluster(p) => {
                let c = p.get().await?;
                (AnyConnection::Cluster(c.conn.clone()), c.broken.clone())
            }
        })
    }

    /// A connection of its own, outside the pool, for a command that blocks (`XREAD BLOCK`):
    /// on a shared multiplexed connection it would hold up every request queued behind it.
    pub async fn dedicated(&self) -> Result<AnyConnection, RedisError> {
        use deadpool::managed::Manager as _;
        Ok(match self {
            Pools::Standalone(p) => AnyConnection::Single(p.manager().create().await?.conn),
            Pools::Sentinel(p) => AnyConnection::Single(p.manager().create().await?.conn),
            Pools::Cluster(p) => AnyConnection::Cluster(p.manager().create().await?.conn),
        })
    }

    pub fn status(&self) -> PoolStatus {
        let s = match self {
            Pools::Standalone(p) => p.status(),
            Pools::Sentinel(p) => p.status(),
            Pools::Cluster(p) => p.status(),
        };
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}
