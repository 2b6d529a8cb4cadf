//! The Redis connection pool: deadpool-redis's manager, validated only after idleness.
//!
//! deadpool-redis validates every connection it hands out with an `UNWATCH` + `PING` round trip.
//! For a service whose hot path is a single `GET`, that doubles the round trips and triples the
//! commands Redis executes per check. This manager keeps deadpool-redis's connection creation and
//! validation but skips validation for a connection used within the last [`VALIDATE_AFTER_IDLE`]
//! (the "alive bypass window" of JDBC pools such as HikariCP). A connection that breaks in use is
//! discarded by the store on the failed command (see `RedisStore::with_conn`), never reused.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use deadpool_redis::redis::{RedisError, aio::MultiplexedConnection};

/// A connection idle longer than this is validated with a PING before reuse.
pub const VALIDATE_AFTER_IDLE: Duration = Duration::from_millis(500);

pub struct Manager {
    inner: deadpool_redis::Manager,
}

impl Manager {
    pub fn new(inner: deadpool_redis::Manager) -> Manager {
        Manager { inner }
    }
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.inner.create().await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < VALIDATE_AFTER_IDLE {
            return Ok(());
        }
        self.inner.recycle(conn, metrics).await
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Connection = managed::Object<Manager>;
pub type PoolError = managed::PoolError<RedisError>;
