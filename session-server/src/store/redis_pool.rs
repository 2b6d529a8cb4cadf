//! The Redis connection pool: deadpool-redis's connections, shared rather than held.
//!
//! A Redis multiplexed connection carries many requests at once and writes those that queue up
//! together in one system call. So a request takes a connection from the pool only long enough to
//! clone its handle and gives it straight back: concurrent requests share a few connections and
//! their commands are pipelined, instead of each request paying its own write and wake-up on a
//! connection of its own. With 64 concurrent session checks this removes most of the per-request
//! socket work (see the benchmark in the README).
//!
//! deadpool-redis still creates the connections and validates them, but only after they sat idle
//! for [`VALIDATE_AFTER_IDLE`] (deadpool-redis alone would send `UNWATCH` + `PING` on every
//! checkout, a second round trip for every `GET`). A connection on which a command failed at the
//! I/O level or timed out is marked broken and discarded at its next checkout, never reused.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::{RedisError, aio::MultiplexedConnection};

/// A connection idle longer than this is validated with a PING before reuse.
pub const VALIDATE_AFTER_IDLE: Duration = Duration::from_millis(500);

/// A pooled multiplexed connection and its health flag.
pub struct SharedConnection {
    pub conn: MultiplexedConnection,
    pub broken: Arc<AtomicBool>,
}

pub struct Manager {
    inner: deadpool_redis::Manager,
}

impl Manager {
    pub fn new(inner: deadpool_redis::Manager) -> Manager {
        Manager { inner }
    }
}

impl managed::Manager for Manager {
    type Type = SharedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<SharedConnection, RedisError> {
        Ok(SharedConnection {
            conn: self.inner.create().await?,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(
        &self,
        shared: &mut SharedConnection,
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

pub type Pool = managed::Pool<Manager>;
pub type PoolError = managed::PoolError<RedisError>;
