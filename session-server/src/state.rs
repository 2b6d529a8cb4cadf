//! Shared state of both listeners: configuration, store and domain services.

use std::{sync::Arc, time::Duration};

use crate::{
    config::Config,
    domain::{accounts::AccountService, password::PasswordHasher, sessions::SessionService},
    metrics::Metrics,
    store::{Store, StoreError, memory::MemoryStore, redis::RedisStore, redis_pool::PoolStatus},
};

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    redis: Option<Arc<RedisStore>>,
    pub sessions: SessionService,
    pub accounts: AccountService,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Builds the store named by the configuration and the services on top of it. Must run
    /// inside a Tokio runtime (the embedded store starts its sweeper).
    pub fn build(config: Config) -> Result<AppState, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let (store, redis): (Arc<dyn Store>, _) = match &config.redis {
            Some(redis_config) => {
                let redis = Arc::new(RedisStore::new(redis_config)?);
                (redis.clone(), Some(redis))
            }
            None => {
                let memory = MemoryStore::new();
                memory.spawn_sweeper(Duration::from_secs(5));
                (Arc::new(memory), None)
            }
        };
        let hasher = PasswordHasher::new(
            config.hash_params,
            config.argon2_concurrency,
            config.argon2_queue,
        );
        Ok(AppState {
            sessions: SessionService::new(
                store.clone(),
                config.session,
                config.session_limit,
                metrics.clone(),
            ),
            accounts: AccountService::new(store.clone(), hasher, config.throttle, metrics.clone()),
            store,
            redis,
            metrics,
            config,
        })
    }

    pub fn pool_status(&self) -> Option<PoolStatus> {
        self.redis.as_ref().map(|r| r.pool_status())
    }

    /// Refreshes gauges that are read rather than counted, then renders all metrics.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        m.argon2_queue_depth
            .set(i64::try_from(self.accounts.hasher().queue_depth()).unwrap_or(i64::MAX));
        if let Some(p) = self.pool_status() {
            let g = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            m.redis_pool_size.set(g(p.size));
            m.redis_pool_available.set(g(p.available));
            m.redis_pool_waiting.set(g(p.waiting));
        }
        m.render()
    }
}
