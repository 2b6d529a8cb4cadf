//! Following session-server's event feed (`GET /admin/v1/events`, long polling).
//!
//! The task starts at the feed's current end, then asks for what came after its last position
//! and applies each event to the cache. On an error it marks the feed down (the cache stops
//! answering), backs off briefly and resumes from the same position, so no event is skipped; if
//! the service says the position is gone, it empties the cache. It ends when the client is dropped.
//!
//! Freshness is proven by the time a poll was *sent*: the answer to a poll sent at `s` holds every
//! event appended before `s` (unless it is a full page, which may have left some behind and proves
//! nothing), so once its events are applied the cache may answer until `s + feed_staleness`. A poll
//! therefore asks the service to wait only a fraction of `feed_staleness` (see [`PollTiming`]):
//! answers keep arriving well within the bound and the cache does not flap.

use std::{
    sync::Weak,
    time::{Duration, Instant},
};

use serde::Deserialize;
use uuid::Uuid;

use crate::{Inner, cache::Cache};

/// Most events asked for per poll (the service's maximum).
const PAGE_MAX: usize = 1000;

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

/// How long a poll asks the service to wait for an event, and how long the client waits for its
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PollTiming {
    /// A quarter of `feed_staleness`, between 50 ms and 1 s.
    wait: Duration,
    /// `wait` plus a margin for the service and the network: half of what remains of
    /// `feed_staleness`, between 100 ms and 2 s. Below `feed_staleness` whenever that is above
    /// 150 ms: a poll is given up and retried before its answer could no longer prove anything.
    timeout: Duration,
}

impl PollTiming {
    const MIN_WAIT: Duration = Duration::from_millis(50);
    const MAX_WAIT: Duration = Duration::from_secs(1);
    const MIN_MARGIN: Duration = Duration::from_millis(100);
    const MAX_MARGIN: Duration = Duration::from_secs(2);

    fn for_staleness(staleness: Duration) -> PollTiming {
        let wait = (staleness / 4).clamp(Self::MIN_WAIT, Self::MAX_WAIT);
        let margin = (staleness.saturating_sub(wait) / 2).clamp(Self::MIN_MARGIN, Self::MAX_MARGIN);
        PollTiming {
            wait,
            timeout: wait + margin,
        }
    }
}

/// The `wait` query value: decimal seconds with millisecond precision (`0.500`).
fn wait_param(wait: Duration) -> String {
    let ms = wait.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

async fn poll(
    inner: &Inner,
    after: &str,
    wait: Duration,
    timeout: Duration,
) -> Result<Page, String> {
    let response = inner
        .http
        // Positions are `<digits>-<digits>` or `latest`: nothing to escape.
        .get(format!(
            "{}?after={after}&wait={}&max={PAGE_MAX}",
            inner.events_url,
            wait_param(wait)
        ))
        .header(reqwest::header::AUTHORIZATION, &inner.auth)
        .timeout(timeout)
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

/// Applies a page to the cache (`first`: the page that set the starting position). Every type but
/// `login` ends the sessions it names, including types this version does not know. Returns whether
/// the page holds every event appended before its poll was sent (it is not a full page).
fn apply(cache: &Cache, page: &Page, first: bool) -> bool {
    if page.reset || first {
        cache.clear();
    }
    for e in page.events.iter().filter(|e| e.kind != "login") {
        cache.invalidate(e.user_id, &e.handles, e.all, e.kept);
    }
    page.events.len() < PAGE_MAX
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
            let timing = PollTiming::for_staleness(cache.feed_staleness());
            let (after, wait) = match &position {
                None => ("latest".to_owned(), Duration::ZERO),
                Some(p) => (p.clone(), timing.wait),
            };
            let sent_at = Instant::now();
            match poll(&inner, &after, wait, timing.timeout).await {
                Ok(page) => {
                    let complete = apply(cache, &page, position.is_none());
                    position = Some(page.last_id);
                    if complete {
                        cache.feed_alive(sent_at);
                    }
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{CacheSettings, Session, cache::CacheKey};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_poll_waits_a_quarter_of_the_staleness_and_gives_up_before_it() {
        let default = PollTiming::for_staleness(CacheSettings::default().feed_staleness);
        assert_eq!(default.wait, ms(500));
        assert_eq!(wait_param(default.wait), "0.500");
        assert_eq!(default.timeout, ms(1250));

        let one_second = PollTiming::for_staleness(ms(1000));
        assert_eq!((one_second.wait, one_second.timeout), (ms(250), ms(625)));
        assert_eq!(wait_param(one_second.wait), "0.250");

        // Between 50 ms and 1 s of wait, with at least 100 ms and at most 2 s for the answer.
        let tiny = PollTiming::for_staleness(ms(100));
        assert_eq!((tiny.wait, tiny.timeout), (ms(50), ms(150)));
        assert_eq!(wait_param(tiny.wait), "0.050");
        let long = PollTiming::for_staleness(Duration::from_secs(60));
        assert_eq!((long.wait, long.timeout), (ms(1000), ms(3000)));
        assert_eq!(wait_param(long.wait), "1.000");
        assert_eq!(wait_param(ms(1234)), "1.234");
        assert_eq!(wait_param(Duration::ZERO), "0.000");

        for staleness in [200, 300, 500, 1000, 2000, 5000, 10_000, 60_000].map(ms) {
            let t = PollTiming::for_staleness(staleness);
            assert!(t.wait * 4 <= staleness, "{staleness:?}");
            assert!(t.wait < t.timeout && t.timeout < staleness, "{staleness:?}");
        }
    }

    fn session(user: Uuid) -> Session {
        let later =
            humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(600)).to_string();
        Session {
            user_id: user,
            username: "alice".into(),
            handle: Uuid::new_v4(),
            idle_expires_at: later.clone(),
            absolute_expires_at: later,
            ..Session::default()
        }
    }

    fn live_cache() -> Cache {
        let cache = Cache::new(CacheSettings {
            feed_staleness: Duration::from_secs(60),
            ..CacheSettings::default()
        });
        cache.feed_alive(Instant::now());
        cache
    }

    fn page(events: &[serde_json::Value]) -> Page {
        serde_json::from_value(serde_json::json!({
            "events": events, "last_id": "5-0", "reset": false
        }))
        .unwrap()
    }

    fn event(kind: &str, s: &Session) -> serde_json::Value {
        serde_json::json!({
            "id": "5-0", "type": kind, "user_id": s.user_id, "handles": [s.handle],
            "all": false, "kept": null, "at": "2030-01-01T00:00:00Z"
        })
    }

    #[test]
    fn an_event_of_an_unknown_type_ends_the_sessions_it_names() {
        let cache = live_cache();
        let s = session(Uuid::new_v4());
        let key = CacheKey::of("t");
        cache.insert(key, s.clone(), cache.epoch());

        apply(&cache, &page(&[event("login", &s)]), false);
        assert!(cache.get(&key).is_some(), "a login ends nothing");

        apply(&cache, &page(&[event("session_ended_v2", &s)]), false);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn only_a_page_short_of_the_maximum_proves_the_feed_current() {
        let cache = live_cache();
        let s = session(Uuid::new_v4());
        assert!(apply(&cache, &page(&[]), false));
        assert!(apply(
            &cache,
            &page(&vec![event("login", &s); PAGE_MAX - 1]),
            false
        ));
        assert!(!apply(
            &cache,
            &page(&vec![event("login", &s); PAGE_MAX]),
            false
        ));
    }
}
