//! Following session-server's event feed (`GET /admin/v1/events`, long polling).
//!
//! The task starts at the feed's current end, then asks for what came after its last position
//! and applies each event to the cache. On an error it marks the feed down (the cache stops
//! answering), backs off briefly and resumes from the same position, so no event is skipped; if
//! the service says the position is gone, it empties the cache. It ends when the client is dropped.

use std::{sync::Weak, time::Duration};

use serde::Deserialize;
use uuid::Uuid;

use crate::Inner;

/// How long one poll waits on the service for an event.
const POLL_WAIT_SECS: u64 = 1;

#[derive(Deserialize)]
struct Page {
    events: Vec<Event>,
    last_id: String,
    reset: bool,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    user_id: Uuid,
    handles: Vec<Uuid>,
    all: bool,
    kept: Option<Uuid>,
}

async fn poll(inner: &Inner, after: &str, wait: u64) -> Result<Page, String> {
    let response = inner
        .http
        // Positions are `<digits>-<digits>` or `latest`: nothing to escape.
        .get(format!("{}?after={after}&wait={wait}", inner.events_url))
        .header(reqwest::header::AUTHORIZATION, &inner.auth)
        .timeout(Duration::from_secs(wait + 2))
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| e.without_url().to_string())
}

pub(crate) fn spawn(client: Weak<Inner>) {
    tokio::spawn(async move {
        let mut position: Option<String> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(inner) = client.upgrade() else {
                return;
            };
            let Some(cache) = inner.cache.as_ref() else {
                return;
            };
            let (after, wait) = match &position {
                None => ("latest".to_owned(), 0),
                Some(p) => (p.clone(), POLL_WAIT_SECS),
            };
            match poll(&inner, &after, wait).await {
                Ok(page) => {
                    if page.reset || position.is_none() {
                        cache.clear();
                    }
                    for e in page.events.iter().filter(|e| e.kind != "login") {
                        cache.invalidate(e.user_id, &e.handles, e.all, e.kept);
                    }
                    position = Some(page.last_id);
                    cache.feed_alive();
                    backoff = Duration::from_millis(50);
                }
                Err(error) => {
                    cache.feed_down();
                    tracing::warn!(%error, "session event feed unavailable; cache disabled");
                    drop(inner);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    });
}
