//! Publishing session events so that no end of a session is missing from the feed.
//!
//! The rule: **an end of a session is acknowledged only once its event is in the feed**, and an
//! end whose outcome is unknown gets its event too.
//!
//! * After a write that ended sessions, the event is appended; if that fails, the request is
//!   not acknowledged (503) and the event waits in this replica's outbox, retried in the
//!   background until the store takes it.
//! * After a write whose outcome is unknown (its reply timed out, `WAIT` was not confirmed, the
//!   connection broke after sending), the event it *would* have produced is published all the
//!   same, through the outbox when needed. An event for a session that did not end only costs a
//!   cache a miss; a missing one would let a cache accept an ended session.
//!
//! What remains (see RELIABILITY.md): a replica that dies while its outbox holds events, or an
//! outbox that overflows during a store outage longer than it can hold.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    clock::Clock,
    error::Error,
    events::{EventKind, SessionEvent},
};
use crate::{
    metrics::Metrics,
    store::{Store, StoreError},
};

/// Most events an outbox holds; beyond, the oldest are dropped (and counted).
pub const OUTBOX_CAPACITY: usize = 100_000;
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Appends events to the store's feed, keeping those it could not append for later.
pub struct Publisher {
    store: Arc<dyn Store>,
    clock: Clock,
    outbox: Arc<Outbox>,
}

struct Outbox {
    pending: Mutex<VecDeque<SessionEvent>>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Outbox {
    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<SessionEvent>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, event: SessionEvent) {
        let mut pending = self.pending();
        if pending.len() >= OUTBOX_CAPACITY {
            pending.pop_front();
            self.metrics.events_dropped.inc();
            tracing::error!(
                "event outbox full: an event was dropped; caches may keep an ended session until their max age"
            );
        }
        pending.push_back(event);
        drop(pending);
        self.wake.notify_one();
    }
}

impl Publisher {
    /// Starts the outbox's retry task (needs a Tokio runtime); it ends with the publisher.
    pub fn new(store: Arc<dyn Store>, clock: Clock, metrics: Arc<Metrics>) -> Publisher {
        let outbox = Arc::new(Outbox {
            pending: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            metrics,
        });
        tokio::spawn(retry(Arc::downgrade(&outbox), store.clone()));
        Publisher {
            store,
            clock,
            outbox,
        }
    }

    /// An event stamped now.
    pub fn event(
        &self,
        kind: EventKind,
        user_id: Uuid,
        handles: Vec<Uuid>,
        all: bool,
        kept: Option<Uuid>,
    ) -> SessionEvent {
        SessionEvent {
            kind,
            user_id,
            handles,
            all,
            kept,
            at_ms: self.clock.now_ms(),
            by: None,
        }
    }

    /// Runs a write that ends sessions (or changes what their checks return), then publishes its
    /// event; if the write failed, publishes the event it may have produced. `event` builds the event from the write's result (`None`:
    /// the write failed; its outcome is unknown).
    pub async fn ending<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
        event: impl Fn(Option<&T>) -> Option<SessionEvent>,
    ) -> Result<T, Error> {
        match write.await {
            Ok(result) => {
                if let Some(e) = event(Some(&result)) {
                    self.ended(e).await?;
                }
                Ok(result)
            }
            Err(error) => {
                if let Some(e) = event(None) {
                    self.maybe_ended(e).await;
                }
                Err(error.into())
            }
        }
    }

    /// Publishes the event of an end of sessions that happened. `Err`: the end must not be
    /// acknowledged; the event waits in the outbox.
    pub async fn ended(&self, event: SessionEvent) -> Result<(), StoreError> {
        match self.store.publish(&event).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.outbox.push(event);
                Err(e)
            }
        }
    }

    /// Publishes the event of an end of sessions whose write failed and may have been applied
    /// (kept in the outbox if the feed cannot take it now).
    pub async fn maybe_ended(&self, event: SessionEvent) {
        let _ = self.ended(event).await;
    }

    /// Publishes an event that ends nothing (a login): best effort, never retried.
    pub async fn informational(&self, event: SessionEvent) {
        if let Err(e) = self.store.publish(&event).await {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "could not record the event");
        }
    }

    /// Events waiting for the store.
    pub fn pending(&self) -> usize {
        self.outbox.pending().len()
    }

    /// Waits until the outbox is empty or `timeout` passes (at shutdown). Returns what is left.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending() > 0 && tokio::time::Instant::now() < deadline {
            self.outbox.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.pending()
    }
}

/// Drains the outbox in order, backing off while the store refuses.
async fn retry(outbox: Weak<Outbox>, store: Arc<dyn Store>) {
    let mut backoff = RETRY_FIRST;
    loop {
        let Some(strong) = outbox.upgrade() else {
            return;
        };
        let next = strong.pending().front().cloned();
        match next {
            None => {
                backoff = RETRY_FIRST;
                // Wake on a new event, or now and then to notice the publisher is gone.
                let _ = tokio::time::timeout(Duration::from_secs(1), strong.wake.notified()).await;
            }
            Some(event) => match store.publish(&event).await {
                Ok(()) => {
                    let mut pending = strong.pending();
                    // A full outbox may have dropped this event meanwhile (see `push`).
                    if pending.front() == Some(&event) {
                        pending.pop_front();
                    }
                    backoff = RETRY_FIRST;
                }
                Err(e) => {
                    tracing::warn!(error = %e, pending = strong.pending().len(), "event outbox: store unavailable, retrying");
                    drop(strong);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            },
        }
    }
}
