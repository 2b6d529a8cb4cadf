//! tower integration (feature `tower`): a [`SessionLayer`] for axum, hyper or any tower stack.
//!
//! The layer checks each request's `Authorization: Bearer` header (bearer sessions) or else its
//! `Cookie` header, and puts a [`SessionState`] into the request extensions; handlers decide what
//! to answer (401, a redirect, a public page). For sensitive actions, ask
//! [`Session::authenticated_within`](crate::Session::authenticated_within) and answer 403
//! `reauthentication_required` (or redirect to a re-authentication page) when it says no. For
//! actions that need a second factor, ask [`SessionState::session_at`] with
//! [`Aal::Aal2`](crate::Aal::Aal2) (or [`Session::aal`](crate::Session::aal)) and answer 403
//! `aal2_required` (or redirect to the second-factor page with `return_to`) for an active
//! session below it.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Aal, Session, SessionClient};

/// What the layer found.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, kept in its extensions; a Box would cost an allocation per signed-in request and change the pattern users match"
)]
pub enum SessionState {
    /// A live session.
    Active(Session),
    /// No live session (none, expired or revoked).
    Anonymous,
    /// The session service could not be asked: do not treat as signed in.
    Unavailable,
}

impl SessionState {
    /// The session, if active.
    pub fn session(&self) -> Option<&Session> {
        match self {
            SessionState::Active(s) => Some(s),
            _ => None,
        }
    }

    /// The session, if active at assurance level `aal` or above: `session_at(Aal::Aal2)` for an
    /// action that needs a second factor.
    pub fn session_at(&self, aal: Aal) -> Option<&Session> {
        self.session().filter(|s| s.aal() >= aal)
    }
}

/// Adds [`SessionState`] to every request.
#[derive(Debug, Clone)]
pub struct SessionLayer {
    client: SessionClient,
}

impl SessionLayer {
    /// A layer checking sessions with `client`.
    pub fn new(client: SessionClient) -> SessionLayer {
        SessionLayer { client }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            client: self.client.clone(),
        }
    }
}

/// The service produced by [`SessionLayer`].
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    client: SessionClient,
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is ready only if polled; swap so the polled one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        Box::pin(async move {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().map(str::to_owned));
            let cookies: Vec<String> = req
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            let answer = match authorization {
                Some(Ok(value)) => Some(client.check_authorization(&value).await),
                Some(Err(_)) => None,
                None if cookies.is_empty() => None,
                None => Some(client.check(&cookies.join("; ")).await),
            };
            let state = match answer {
                Some(Ok(Some(session))) => SessionState::Active(session),
                None | Some(Ok(None)) => SessionState::Anonymous,
                Some(Err(_)) => SessionState::Unavailable,
            };
            req.extensions_mut().insert(state);
            inner.call(req).await
        })
    }
}
