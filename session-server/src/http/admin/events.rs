//! `GET /admin/v1/events`: the session event feed, by long polling.
//!
//! A consumer asks for the events after its position and gets them at once if there are any;
//! otherwise the request waits until one arrives or `wait` seconds pass: the replica's one
//! follower of the feed wakes it (see `domain::feed_watch`), so waiting readers cost the store
//! nothing while the feed is quiet. It then asks again from the returned `last_id`. `reset: true` means the position
//! is gone (trimmed, or the feed was lost): the consumer must drop whatever it derived from the
//! feed and continue from `last_id`.

use std::time::{Duration, Instant};

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::{
        clock::rfc3339,
        events::{Actor, EventKind, EventPage, FeedPosition, parse_id},
        feed_watch::FALLBACK_EVERY,
    },
    http::{
        error::{ApiError, ErrorBody},
        schema::EVENT_ID_DIGITS,
    },
    state::AppState,
};

const MAX_WAIT_SECS: u64 = 30;
/// Most events one answer may ask for.
const MAX_EVENTS: usize = 1000;

/// Whether `id` is an event id as the document describes it: `<ms>-<seq>`, each 1-19 digits.
pub fn is_event_id(id: &str) -> bool {
    let digits = |part: &str| {
        (1..=EVENT_ID_DIGITS).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    id.split_once('-')
        .is_some_and(|(ms, seq)| digits(ms) && digits(seq))
        && parse_id(id).is_some()
}

#[derive(Deserialize, IntoParams)]
pub struct EventsQuery {
    /// `latest` (only what happens from now on), or the `last_id` of the previous answer
    /// (`0-0` for everything the feed still holds).
    #[param(pattern = "^(latest|[0-9]{1,19}-[0-9]{1,19})$", example = "latest")]
    pub after: String,
    /// Seconds to wait for an event when there is none yet (0-30, default 10; fractions such as
    /// `0.5` allowed, to the millisecond).
    #[param(minimum = 0, maximum = 30)]
    pub wait: Option<f64>,
    /// Most events per answer (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub max: Option<usize>,
}

/// One event of the feed.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// `login`, `logout`, `revoked`, `revoked_all`, `password_changed`, `user_disabled`,
    /// `evicted`, `session_updated` (the session lives on, but its app data or authentication
    /// time changed), or a type added by a newer version. A cache drops the sessions named by
    /// every type but `login`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: EventKind,
    pub user_id: Uuid,
    /// Sessions concerned (for `login`, the new session).
    pub handles: Vec<Uuid>,
    /// Every session of the user ended, except `kept` if set.
    pub all: bool,
    pub kept: Option<Uuid>,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who caused the event through the admin API or the admin console; absent for the user's
    /// own actions and the service's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Actor>,
}

#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Ask from here next time.
    pub last_id: String,
    /// The position asked for is gone: drop everything derived from the feed.
    pub reset: bool,
}

impl From<EventPage> for EventsPage {
    fn from(page: EventPage) -> EventsPage {
        EventsPage {
            events: page
                .events
                .into_iter()
                .map(|(id, e)| EventView {
                    id,
                    kind: e.kind,
                    user_id: e.user_id,
                    handles: e.handles,
                    all: e.all,
                    kept: e.kept,
                    at: rfc3339(e.at_ms),
                    by: e.by,
                })
                .collect(),
            last_id: page.last_id,
            reset: page.reset,
        }
    }
}

/// Reads up to `max` events after `from`, waiting up to `wait` for one when there is none yet
/// (never for [`FeedPosition::Latest`]): the feed's reader for the admin API and the console.
pub async fn read_waiting(
    state: &AppState,
    from: &FeedPosition,
    max: usize,
    wait: Duration,
) -> Result<EventPage, ApiError> {
    let deadline = Instant::now() + wait;
    // Subscribed before reading, so an event that lands between the read and the wait still
    // wakes this reader.
    let mut moved = state.feed.subscribe();
    loop {
        let page = state.store.read_events(from, max).await?;
        let now = Instant::now();
        if !page.events.is_empty() || page.reset || *from == FeedPosition::Latest || now >= deadline
        {
            return Ok(page);
        }
        let nap = (deadline - now).min(FALLBACK_EVERY);
        // A closed channel (the follower is gone) only means the fallback timing applies.
        if let Ok(Err(_)) = tokio::time::timeout(nap, moved.changed()).await {
            tokio::time::sleep(nap).await;
        }
    }
}

/// Reads the session event feed (long polling).
#[utoipa::path(
    get, path = "/admin/v1/events", tag = "admin", operation_id = "read_events", params(EventsQuery),
    responses(
        (status = 200, description = "The events after `after` (none when `wait` ran out)", body = EventsPage),
        (status = 400, description = "`malformed_request`: `after`, `wait` or `max` out of its range", body = ErrorBody),
    )
)]
pub async fn events(
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<EventsPage>, ApiError> {
    let from = match query.after.as_str() {
        "latest" => FeedPosition::Latest,
        id if is_event_id(id) => FeedPosition::After(id.to_owned()),
        _ => {
            return Err(ApiError::Malformed(
                "`after` must be `latest` or an event id".into(),
            ));
        }
    };
    let wait = match query.wait {
        None => Duration::from_secs(10),
        Some(w) if w.is_finite() && (0.0..=MAX_WAIT_SECS as f64).contains(&w) => {
            Duration::from_millis((w * 1000.0).round() as u64)
        }
        Some(_) => {
            return Err(ApiError::Malformed(format!(
                "`wait` must be between 0 and {MAX_WAIT_SECS} seconds"
            )));
        }
    };
    let max = match query.max {
        None => 100,
        Some(max) if (1..=MAX_EVENTS).contains(&max) => max,
        Some(_) => {
            return Err(ApiError::Malformed(format!(
                "`max` must be between 1 and {MAX_EVENTS}"
            )));
        }
    };
    let page = read_waiting(&state, &from, max, wait).await?;
    Ok(web::Json(EventsPage::from(page)))
}
