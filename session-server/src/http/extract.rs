//! Extractors: the signed-in session of a public request, by its cookie or its bearer token
//! (see `credentials.rs`).

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{cookie::Presented, credentials, error::ApiError};
use crate::{
    domain::{error::Error, sessions::ActiveSession},
    state::AppState,
};

/// A request made with a live session, presented the way it was issued (cookie or bearer);
/// anything else answers 401.
pub struct Authenticated(pub ActiveSession);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = state
            .as_ref()
            .map(|s| credentials::presented(req, &s.config.web.cookie));
        Box::pin(async move {
            let (Some(state), Some((Presented::Token(token), via))) = (state, presented) else {
                return Err(Error::Unauthenticated.into());
            };
            match state.sessions.check(&token, via).await? {
                Some(session) => Ok(Authenticated(session)),
                None => Err(Error::Unauthenticated.into()),
            }
        })
    }
}
