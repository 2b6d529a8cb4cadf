//! Extractors: the signed-in session of a public request.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::{cookie, error::ApiError};
use crate::{
    domain::{error::Error, sessions::ActiveSession},
    state::AppState,
};

/// A request made with a live session cookie; anything else answers 401.
pub struct Authenticated(pub ActiveSession);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = state
            .as_ref()
            .map(|s| cookie::presented(req, &s.config.cookie));
        Box::pin(async move {
            let (Some(state), Some(cookie::Presented::Token(token))) = (state, presented) else {
                return Err(Error::Unauthenticated.into());
            };
            match state.sessions.check(&token).await? {
                Some(session) => Ok(Authenticated(session)),
                None => Err(Error::Unauthenticated.into()),
            }
        })
    }
}
