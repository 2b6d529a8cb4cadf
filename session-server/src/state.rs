//! Shared state of both listeners: configuration, store, clock and domain services.

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;

use crate::{
    config::Config,
    domain::{
        accounts::AccountService,
        clock::{Clock, SYNC_EVERY, WARN_OFFSET},
        console::ConsoleService,
        feed_watch::FeedWatch,
        mfa::MfaService,
        password::PasswordHasher,
        publisher::Publisher,
        sessions::{SessionRules, SessionService},
    },
    metrics::Metrics,
    store::{
        Store, StoreError, memory::MemoryStore, redis::RedisStore, replication::ConfirmationReport,
    },
};

/// A point where a request can be held, so that tests interleave concurrent requests exactly.
pub type Hook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// Hooks into request handling. All empty in the service; only code that builds the application
/// itself (the test suites) can set them.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs after a login verified the password and before its session is created.
    pub after_password_verified: Option<Hook>,
    /// Runs after a second factor's code was verified and before its proof is recorded.
    pub after_code_verified: Option<Hook>,
}

/// Wraps the store every service uses (tests record the calls to count round trips).
pub type StoreWrapper = Arc<dyn Fn(Arc<dyn Store>) -> Arc<dyn Store> + Send + Sync>;

/// What an embedding program may replace when it builds the application.
#[derive(Clone, Default)]
pub struct Overrides {
    /// The clock (tests give replicas skewed wall clocks); the system's by default.
    pub clock: Option<Clock>,
    pub hooks: Hooks,
    pub wrap_store: Option<StoreWrapper>,
}

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    redis: Option<Arc<RedisStore>>,
    pub sessions: SessionService,
    pub accounts: AccountService,
    /// Second factors: enrolment, proofs, changes (see `domain::mfa`).
    pub mfa: MfaService,
    /// Admin console sign-ins (see `domain::console`).
    pub console: ConsoleService,
    pub publisher: Arc<Publisher>,
    /// Wakes waiting readers of the event feed (see `domain::feed_watch`).
    pub feed: FeedWatch,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub hooks: Hooks,
}

impl AppState {
    /// Builds the store named by the configuration and the services on top of it. Must run
    /// inside a Tokio runtime (the embedded store starts its sweeper, Redis its clock readings).
    pub fn build(config: Config) -> Result<AppState, StoreError> {
        Self::build_with(config, Overrides::default())
    }

    pub fn build_with(config: Config, overrides: Overrides) -> Result<AppState, StoreError> {
        let metrics = Arc::new(Metrics::new());
        let clock = overrides.clock.unwrap_or_default();
        let (store, redis): (Arc<dyn Store>, _) = match &config.redis {
            Some(redis_config) => {
                let redis = Arc::new(RedisStore::with_metrics(redis_config, metrics.clone())?);
                spawn_clock_sync(Arc::downgrade(&redis), clock.clone(), metrics.clone());
                (redis.clone(), Some(redis))
            }
            None => {
                let memory = MemoryStore::with_clock(clock.clone());
                memory.spawn_sweeper(Duration::from_secs(5));
                (Arc::new(memory), None)
            }
        };
        let store = match &overrides.wrap_store {
            Some(wrap) => wrap(store),
            None => store,
        };
        let passwords = &config.passwords;
        let hasher = PasswordHasher::new(passwords.hash, passwords.concurrency, passwords.queue);
        let publisher = Arc::new(Publisher::new(
            store.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        let feed = FeedWatch::spawn(Arc::downgrade(&store));
        Ok(AppState {
            feed,
            sessions: SessionService::new(
                store.clone(),
                SessionRules {
                    policy: config.sessions.policy,
                    limit: config.sessions.limit,
                    feed_logins: config.sessions.feed_logins,
                    required_aal: config.factors.required_aal,
                },
                metrics.clone(),
                clock.clone(),
                publisher.clone(),
            ),
            accounts: AccountService::new(
                store.clone(),
                hasher,
                config.throttle,
                metrics.clone(),
                clock.clone(),
                publisher.clone(),
            ),
            mfa: MfaService::new(
                store.clone(),
                config.factors.clone(),
                clock.clone(),
                publisher.clone(),
                metrics.clone(),
                overrides.hooks.after_code_verified.clone(),
            ),
            console: ConsoleService::new(store.clone(), clock.clone(), config.web.console_ttl),
            publisher,
            clock,
            store,
            redis,
            metrics,
            config,
            hooks: overrides.hooks,
        })
    }

    /// Whether this replica can serve: the store answers and, with Redis, the clock runs on
    /// Redis's time. With Redis, also how ends are confirmed by replicas (asking Redis how many
    /// it has, with `auto`): reported, never a reason to be unready, since checks do not need a
    /// replica.
    pub async fn ready(&self) -> Result<Option<ConfirmationReport>, StoreError> {
        self.store.ping().await?;
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        if !self.clock.is_synced() {
            return Err(StoreError::Unavailable(
                "no reading of Redis's clock yet".into(),
            ));
        }
        redis.required_replicas().await?;
        Ok(Some(redis.confirmation_report()))
    }

    /// Refreshes gauges that are read rather than counted, then renders all metrics.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        m.argon2_queue_depth
            .set(i64::try_from(self.accounts.hasher().queue_depth()).unwrap_or(i64::MAX));
        m.events_pending
            .set(i64::try_from(self.publisher.pending()).unwrap_or(i64::MAX));
        if let Some(redis) = &self.redis {
            m.redis_connections
                .set(i64::try_from(redis.open_connections()).unwrap_or(i64::MAX));
        }
        m.render()
    }
}

/// Reads Redis's clock at once, then every [`SYNC_EVERY`] (every second until the first
/// reading: every 200 ms), for as long as the store lives. See `domain::clock`.
fn spawn_clock_sync(redis: Weak<RedisStore>, clock: Clock, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        loop {
            let Some(store) = redis.upgrade() else { return };
            let sent = Instant::now();
            let reading = store.time_ms().await;
            let received = Instant::now();
            drop(store);
            match reading.map(|ms| clock.adopt(ms, sent, received)) {
                Ok(Some(offset_ms)) => {
                    metrics.clock_synced.set(1);
                    metrics.clock_offset.set(offset_ms as f64 / 1000.0);
                    if offset_ms.unsigned_abs() > WARN_OFFSET.as_millis() as u64 {
                        tracing::warn!(
                            offset_ms,
                            "this host's wall clock differs from Redis's; the service uses Redis's"
                        );
                    }
                }
                Ok(None) => tracing::debug!("Redis clock reading too slow; kept the previous one"),
                Err(e) => tracing::debug!(error = %e, "could not read Redis's clock"),
            }
            let pause = if clock.is_synced() {
                SYNC_EVERY
            } else {
                Duration::from_millis(200)
            };
            tokio::time::sleep(pause).await;
        }
    });
}
