//! Session lifecycle: start, check (with lazy renewal), list and end.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    clock::now_ms,
    error::Error,
    events::{EventKind, publish},
    session::{ClientInfo, SessionLimit, SessionPolicy, SessionRecord, Validity},
    token::{SessionToken, TokenDigest},
    user::UserRecord,
};
use crate::{
    metrics::Metrics,
    store::{CreateOutcome, Store},
};

/// A session that passed its check, with the digest that names it in the store.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub digest: TokenDigest,
    pub record: SessionRecord,
}

pub struct SessionService {
    store: Arc<dyn Store>,
    policy: SessionPolicy,
    limit: Option<SessionLimit>,
    metrics: Arc<Metrics>,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        policy: SessionPolicy,
        limit: Option<SessionLimit>,
        metrics: Arc<Metrics>,
    ) -> SessionService {
        SessionService {
            store,
            policy,
            limit,
            metrics,
        }
    }

    /// Checks a token: one store read, plus one conditional write when the idle window is due
    /// for renewal. `None` for unknown, expired or revoked sessions.
    pub async fn check(&self, token: &SessionToken) -> Result<Option<ActiveSession>, Error> {
        let digest = token.digest();
        let Some(record) = self.store.session(token.user_id(), &digest).await? else {
            return Ok(None);
        };
        if record.user_id != token.user_id() {
            return Ok(None);
        }
        let now = now_ms();
        match self.policy.evaluate(&record, now) {
            Validity::Expired => Ok(None),
            Validity::Valid => Ok(Some(ActiveSession { digest, record })),
            Validity::ValidRenew => {
                let renewed = self.policy.renewed(&record, now);
                match self.store.touch_session(&digest, &renewed, now).await {
                    Ok(true) => Ok(Some(ActiveSession {
                        digest,
                        record: renewed,
                    })),
                    // Revoked between the read and the renewal.
                    Ok(false) => Ok(None),
                    // The read proved the session valid; a failed renewal only means it will
                    // expire from its previous idle deadline.
                    Err(e) => {
                        tracing::warn!(error = %e, session = %record.handle, "session renewal failed");
                        Ok(Some(ActiveSession { digest, record }))
                    }
                }
            }
        }
    }

    /// Starts a session for `user` with a fresh token.
    pub async fn start(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<(SessionToken, ActiveSession), Error> {
        let now = now_ms();
        let token = SessionToken::generate(user.id);
        let digest = token.digest();
        let record = self
            .policy
            .new_record(user.id, user.username.as_str(), client, now);
        match self
            .store
            .create_session(&digest, &record, self.limit, now)
            .await?
        {
            CreateOutcome::Created { evicted } => {
                self.metrics.sessions_created.inc();
                self.metrics.revoked("limit", evicted.len());
                for handle in &evicted {
                    tracing::info!(target: "audit", event = "session_evicted", user_id = %user.id, session = %handle, "evicted by the per-user session cap");
                }
                if !evicted.is_empty() {
                    publish(
                        &*self.store,
                        EventKind::Evicted,
                        user.id,
                        evicted,
                        false,
                        None,
                    )
                    .await?;
                }
                // The login event informs audit consumers; failing to record it does not undo
                // the login.
                if let Err(e) = publish(
                    &*self.store,
                    EventKind::Login,
                    user.id,
                    vec![record.handle],
                    false,
                    None,
                )
                .await
                {
                    tracing::warn!(error = %e, "could not record the login event");
                }
                Ok((token, ActiveSession { digest, record }))
            }
            // Disabled between password check and session creation.
            CreateOutcome::UserUnavailable => Err(Error::InvalidCredentials),
            CreateOutcome::LimitReached => Err(Error::SessionLimitReached),
        }
    }

    /// Ends the session; `false` if it had already ended.
    pub async fn end(&self, session: &ActiveSession, reason: &str) -> Result<bool, Error> {
        let ended = self
            .store
            .revoke_session(&session.digest, &session.record, now_ms())
            .await?;
        if ended {
            self.metrics.revoked(reason, 1);
            let kind = if reason == "logout" {
                EventKind::Logout
            } else {
                EventKind::Revoked
            };
            let record = &session.record;
            publish(
                &*self.store,
                kind,
                record.user_id,
                vec![record.handle],
                false,
                None,
            )
            .await?;
        }
        Ok(ended)
    }

    /// Ends the session behind a presented token, if it is live (session fixation defence at
    /// login). Errors are logged, not raised: the login itself already succeeded.
    pub async fn end_presented(&self, token: &SessionToken) {
        let result = match self.check(token).await {
            Ok(Some(session)) => self.end(&session, "replaced").await.map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not end the session presented at login");
        }
    }

    pub async fn list(&self, user: Uuid) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.store.list_sessions(user, now_ms()).await?)
    }

    pub async fn revoke_handle(&self, user: Uuid, handle: Uuid) -> Result<(), Error> {
        if self
            .store
            .revoke_session_by_handle(user, handle, now_ms())
            .await?
        {
            self.metrics.revoked("revoked", 1);
            tracing::info!(target: "audit", event = "session_revoked", user_id = %user, session = %handle);
            publish(
                &*self.store,
                EventKind::Revoked,
                user,
                vec![handle],
                false,
                None,
            )
            .await?;
            Ok(())
        } else {
            Err(Error::NotFound("session"))
        }
    }

    /// Ends all of the user's sessions except `keep`.
    pub async fn revoke_all(&self, user: Uuid, keep: Option<Uuid>) -> Result<usize, Error> {
        let ended = self.store.revoke_all_sessions(user, keep).await?;
        self.metrics.revoked("revoke_all", ended.len());
        let count = ended.len();
        publish(&*self.store, EventKind::RevokedAll, user, ended, true, keep).await?;
        tracing::info!(target: "audit", event = "sessions_revoked_all", user_id = %user, count, kept = ?keep);
        Ok(count)
    }
}
