//! Finding a user, their devices, and the console's actions on them. Each action calls the same
//! domain operation as its admin API equivalent, inside the operator's span (see
//! `auth::Operator::acting`), so the feed event and the audit log entry are the API's, naming
//! the admin key and the client address; then it redirects (303) back to the user's page.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    auth::{CsrfForm, PageError, check_form, html, operator, see_other},
    pages,
};
use crate::{
    domain::error::Error,
    http::{error::ApiError, views::SessionView},
    state::AppState,
};

/// `GET /console/`: the search form.
pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    Ok(html(
        &mut HttpResponse::Ok(),
        pages::search(&op.header(), "", None),
    ))
}

#[derive(Deserialize)]
pub struct FindQuery {
    #[serde(default)]
    q: String,
}

/// `GET /console/users?q=`: a user by id or by name; found, their page (303).
pub async fn find(
    req: HttpRequest,
    query: web::Query<FindQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    let q = query.q.trim();
    let found = match Uuid::try_parse(q) {
        Ok(id) => state.accounts.find(id).await,
        Err(_) => state.accounts.find_by_name(q).await,
    };
    match found {
        Ok(user) => Ok(see_other(&format!("/console/users/{}", user.id))),
        Err(e @ (Error::NotFound(_) | Error::Invalid { .. })) => {
            let status = ApiError::from(e).status_code();
            Ok(html(
                &mut HttpResponse::build(status),
                pages::search(&op.header(), q, Some("No user has that name or id.")),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Path ids that are not UUIDs name nothing: 404.
fn uuid(text: &str, what: &'static str) -> Result<Uuid, PageError> {
    Uuid::try_parse(text).map_err(|_| Error::NotFound(what).into())
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// `GET /console/users/{id}`: the user, their devices and the actions.
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ShowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    let id = uuid(&path, "user")?;
    let user = state.accounts.find(id).await?;
    let devices: Vec<SessionView> = state
        .sessions
        .list(id)
        .await?
        .iter()
        .map(|r| SessionView::listed(r, None))
        .collect();
    let done = query.done.as_deref().and_then(pages::done_message);
    Ok(html(
        &mut HttpResponse::Ok(),
        pages::user(&op.header(), &user, &devices, done),
    ))
}

fn back_to(user: Uuid, done: &str) -> HttpResponse {
    see_other(&format!("/console/users/{user}?done={done}"))
}

/// `POST /console/users/{id}/sessions/{handle}/revoke`: signs one device out.
pub async fn revoke(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    check_form(&req, &state, &op, &form.csrf)?;
    let (user, handle) = path.into_inner();
    let (user, handle) = (uuid(&user, "user")?, uuid(&handle, "session")?);
    match op
        .acting(state.sessions.revoke_handle(user, handle, Some(&op.actor)))
        .await
    {
        Ok(()) => Ok(back_to(user, "revoked")),
        // Ended meanwhile (it expired, or someone else was quicker): what was asked holds.
        Err(Error::NotFound(_)) => Ok(back_to(user, "gone")),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/users/{id}/sessions/revoke-all`: signs every device out.
pub async fn revoke_all(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    check_form(&req, &state, &op, &form.csrf)?;
    let user = uuid(&path, "user")?;
    op.acting(state.sessions.revoke_all(user, None, Some(&op.actor)))
        .await?;
    Ok(back_to(user, "revoked_all"))
}

/// `POST /console/users/{id}/disable` and `/enable`.
pub async fn set_disabled(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let op = operator(&req, &state).await?;
    check_form(&req, &state, &op, &form.csrf)?;
    let (user, action) = path.into_inner();
    let user = uuid(&user, "user")?;
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(Error::NotFound("action").into()),
    };
    op.acting(state.accounts.set_disabled(user, disabled, Some(&op.actor)))
        .await?;
    Ok(back_to(user, if disabled { "disabled" } else { "enabled" }))
}
