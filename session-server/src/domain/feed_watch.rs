//! One follower of the event feed per replica, fanning out to every waiting reader.
//!
//! A reader of `GET /admin/v1/events` that finds nothing new waits for the feed to move. Rather
//! than each waiting reader asking the store again and again, one task per replica follows the
//! feed's tail (`XREAD BLOCK` on a connection of its own with Redis; a notification with the
//! embedded store) and wakes every waiting reader when an event arrives; each then reads its page
//! once. The store sees one blocking read per replica, however many readers wait.
//!
//! Readers also look again every [`FALLBACK_EVERY`] on their own, so a follower that lost its
//! connection, or a feed that was replaced under it, delays an answer by that much at worst.

use std::{sync::Weak, time::Duration};

use tokio::sync::watch;

use super::events::FeedPosition;
use crate::store::Store;

/// How long one blocking read of the follower lasts at most.
const FOLLOW_FOR: Duration = Duration::from_secs(5);
/// Pause after a failed read, before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(200);
/// How often a waiting reader looks by itself, whatever the follower says.
pub const FALLBACK_EVERY: Duration = Duration::from_secs(1);

/// Hands out subscriptions to "the feed moved" notices.
pub struct FeedWatch {
    moved: watch::Receiver<u64>,
}

impl FeedWatch {
    /// Starts the follower; it stops once the store is dropped.
    pub fn spawn(store: Weak<dyn Store>) -> FeedWatch {
        let (tx, moved) = watch::channel(0u64);
        tokio::spawn(follow(store, tx));
        FeedWatch { moved }
    }

    /// A receiver that has seen every notice so far: its `changed()` resolves at the next one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let mut rx = self.moved.clone();
        rx.mark_unchanged();
        rx
    }
}

async fn follow(store: Weak<dyn Store>, tx: watch::Sender<u64>) {
    let mut position: Option<String> = None;
    loop {
        let Some(store) = store.upgrade() else { return };
        let step = match &position {
            // Start from the feed's current end.
            None => store
                .read_events(&FeedPosition::Latest, 1)
                .await
                .map(|page| Some(page.last_id)),
            Some(after) => store.await_events(after, FOLLOW_FOR).await,
        };
        drop(store);
        match step {
            // Also on (re)starting: what happened while the follower was away is news too.
            Ok(Some(newest)) => {
                tx.send_modify(|n| *n = n.wrapping_add(1));
                position = Some(newest);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "could not follow the event feed");
                position = None;
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
