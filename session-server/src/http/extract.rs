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

/// A request made with a live session that the service accepts as signed in, presented the way
/// it was issued (cookie or bearer). No session answers 401; a pending login (a user with a
/// second factor who has not proved it, under `SESSION_REQUIRED_AAL=highest_available`) answers
/// 403 `aal2_required`.
pub struct Authenticated(pub ActiveSession);

/// A request made with any live session, a pending login included: for the second-factor step,
/// and for reading which factors the user can prove.
pub struct SignedIn(pub ActiveSession);

/// The live session presented with the request, whatever its level.
async fn live_session(
    state: Option<web::Data<AppState>>,
    req: &HttpRequest,
) -> Result<(web::Data<AppState>, ActiveSession), ApiError> {
    let Some(state) = state else {
        return Err(Error::Unauthenticated.into());
    };
    let (Presented::Token(token), via) = credentials::presented(req, &state.config.web.cookie)
    else {
        return Err(Error::Unauthenticated.into());
    };
    match state.sessions.check(&token, via).await? {
        Some(session) => Ok((state, session)),
        None => Err(Error::Unauthenticated.into()),
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let (state, session) = live_session(state, &req).await?;
            if !state.sessions.accepts(&session.record) {
                return Err(Error::SecondFactorRequired.into());
            }
            Ok(Authenticated(session))
        })
    }
}

impl FromRequest for SignedIn {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let (_, session) = live_session(state, &req).await?;
            Ok(SignedIn(session))
        })
    }
}
