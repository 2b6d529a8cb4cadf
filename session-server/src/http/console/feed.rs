//! The live event feed in the console: a page listing the events after its starting position,
//! and the long-polling endpoint its script follows (the admin API's reader, authenticated by
//! the console session instead of a bearer key).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{
    auth::{PageError, html, operator},
    pages,
};
use crate::{
    domain::events::FeedPosition,
    http::{
        admin::{EventsPage, is_event_id, read_waiting},
        error::ApiError,
    },
    state::AppState,
};

/// Most events one page or poll shows.
const MAX_EVENTS: usize = 100;
/// How long a poll waits for an event (well under the usual 60 s proxy read timeouts).
const POLL_WAIT: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
}

/// `latest` (or nothing) or an event id; anything else is a malformed request.
fn position(after: Option<&str>) -> Result<FeedPosition, ApiError> {
    match after {
        None | Some("latest") => Ok(FeedPosition::Latest),
        Some(id) if is_event_id(id) => Ok(FeedPosition::After(id.to_owned())),
        Some(_) => Err(ApiError::Malformed(
            "`after` must be `latest` or an event id".into(),
        )),
    }
}

/// `GET /console/events[?after=<id>]`: the feed page, from now or from `after`.
pub async fn page(
    req: HttpRequest,
    query: web::Query<FeedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    let from = position(query.after.as_deref())?;
    let page = EventsPage::from(read_waiting(&state, &from, MAX_EVENTS, Duration::ZERO).await?);
    Ok(html(
        &mut HttpResponse::Ok(),
        pages::events(&op.header(), &page.events, &page.last_id),
    ))
}

/// `GET /console/events/poll?after=<id>`: the events after `after` as JSON (the admin API's
/// `EventsPage`), waiting up to 20 s for one.
pub async fn poll(
    req: HttpRequest,
    query: web::Query<FeedQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<EventsPage>, PageError> {
    operator(&req, &state).await?;
    let from = position(query.after.as_deref())?;
    let page = read_waiting(&state, &from, MAX_EVENTS, POLL_WAIT).await?;
    Ok(web::Json(EventsPage::from(page)))
}
