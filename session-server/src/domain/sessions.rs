//! Session lifecycle: start, check (with lazy renewal), list and end.
//!
//! Every end of a session is published to the event feed before it is acknowledged, and a write
//! whose outcome is unknown publishes what it would have ended (see `publisher`).

use std::{sync::Arc, time::Duration};

use uuid::Uuid;

use super::{
    assurance::{RequiredAal, SecondFactor},
    clock::Clock,
    error::Error,
    events::{Actor, EventKind, SessionEvent},
    publisher::Publisher,
    session::{
        ClientInfo, LimitPolicy, SessionKind, SessionLimit, SessionPolicy, SessionRecord, Validity,
    },
    session_data::{DataWrite, SessionData},
    token::{SessionToken, TokenDigest},
    user::UserRecord,
};
use crate::{
    metrics::Metrics,
    store::{CreateOutcome, ReauthOutcome, Store, StoredSession},
};

/// A session that passed its check, with the digest that names it in the store and its app
/// data as read with it.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub digest: TokenDigest,
    pub record: SessionRecord,
    pub data: SessionData,
}

/// How a token reached the service. A token is accepted only the way its session was issued
/// (see [`SessionKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
    /// The caller handed over the bare token and vouches for where it came from (the admin
    /// check's `token`).
    Either,
}

impl Via {
    fn accepts(self, kind: SessionKind) -> bool {
        match self {
            Via::Cookie => kind == SessionKind::Cookie,
            Via::Bearer => kind == SessionKind::Bearer,
            Via::Either => true,
        }
    }
}

/// How many times a data update without `If-Match` re-reads and retries after losing a race.
const DATA_RETRIES: usize = 8;

pub struct SessionService {
    store: Arc<dyn Store>,
    policy: SessionPolicy,
    limit: Option<SessionLimit>,
    metrics: Arc<Metrics>,
    clock: Clock,
    publisher: Arc<Publisher>,
    feed_logins: bool,
    required_aal: RequiredAal,
}

/// What sessions are allowed: the configuration the session service applies.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    pub policy: SessionPolicy,
    pub limit: Option<SessionLimit>,
    /// Whether logins are published to the event feed.
    pub feed_logins: bool,
    /// Which sessions of users with a second factor are accepted.
    pub required_aal: RequiredAal,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        rules: SessionRules,
        metrics: Arc<Metrics>,
        clock: Clock,
        publisher: Arc<Publisher>,
    ) -> SessionService {
        SessionService {
            store,
            policy: rules.policy,
            limit: rules.limit,
            metrics,
            clock,
            publisher,
            feed_logins: rules.feed_logins,
            required_aal: rules.required_aal,
        }
    }

    /// Whether a live session is accepted as signed in (see [`RequiredAal`]): not a pending login
    /// waiting for its second factor. Only the second-factor step and logout take those.
    pub fn accepts(&self, record: &SessionRecord) -> bool {
        self.required_aal.accepts(record)
    }

    /// Checks a token presented `via` a channel: one store read (the record with its app data),
    /// plus one conditional write when the idle window is due for renewal. `None` for unknown,
    /// expired or revoked sessions, and for a token presented another way than it was issued.
    pub async fn check(
        &self,
        token: &SessionToken,
        via: Via,
    ) -> Result<Option<ActiveSession>, Error> {
        let digest = token.digest();
        let Some(StoredSession { record, data }) =
            self.store.session(token.user_id(), &digest).await?
        else {
            return Ok(None);
        };
        if record.user_id != token.user_id() || !via.accepts(record.kind) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        match self.policy.evaluate(&record, now) {
            Validity::Expired => Ok(None),
            Validity::Valid => Ok(Some(ActiveSession {
                digest,
                record,
                data,
            })),
            Validity::ValidRenew => {
                let renewed = self.policy.renewed(&record, now);
                match self.store.touch_session(&digest, &renewed).await {
                    Ok(true) => Ok(Some(ActiveSession {
                        digest,
                        record: renewed,
                        data,
                    })),
                    // Revoked between the read and the renewal.
                    Ok(false) => Ok(None),
                    // The read proved the session valid; a failed renewal only means it will
                    // expire from its previous idle deadline.
                    Err(e) => {
                        tracing::warn!(error = %e, session = %record.handle, "session renewal failed");
                        Ok(Some(ActiveSession {
                            digest,
                            record,
                            data,
                        }))
                    }
                }
            }
        }
    }

    /// [`SessionService::check`] on a read confirmed by replicas (see
    /// [`Store::session_confirmed`]), without renewal. For a logout that found no session: its
    /// "already ended" is acknowledged only once no failover can undo it.
    pub async fn check_confirmed(
        &self,
        token: &SessionToken,
        via: Via,
    ) -> Result<Option<ActiveSession>, Error> {
        let digest = token.digest();
        let Some(record) = self
            .store
            .session_confirmed(token.user_id(), &digest)
            .await?
        else {
            return Ok(None);
        };
        if record.user_id != token.user_id() || !via.accepts(record.kind) {
            return Ok(None);
        }
        Ok(match self.policy.evaluate(&record, self.clock.now_ms()) {
            Validity::Expired => None,
            Validity::Valid | Validity::ValidRenew => Some(ActiveSession {
                digest,
                record,
                data: SessionData::default(),
            }),
        })
    }

    /// Starts a session for `user`, as verified at `user.credential_version`, with a fresh token.
    /// Refused (as invalid credentials) when the user's credentials changed or the user was
    /// disabled since they were verified.
    pub async fn start(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<(SessionToken, ActiveSession), Error> {
        self.start_with(user, client, false).await
    }

    /// [`SessionService::start`] for a passwordless sign-in with a passkey: the session's first
    /// method is the passkey, recorded as its proof too, so that it is `aal2` from the start.
    pub async fn start_passwordless(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<(SessionToken, ActiveSession), Error> {
        self.start_with(user, client, true).await
    }

    async fn start_with(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
        passwordless: bool,
    ) -> Result<(SessionToken, ActiveSession), Error> {
        let now = self.clock.now_ms();
        let token = SessionToken::generate(user.id);
        let digest = token.digest();
        let new = self
            .policy
            .new_record(user.id, user.username.as_str(), client, now);
        let record = SessionRecord {
            factor_enrolled: user.factors.enrolled(),
            passwordless,
            second_factor: passwordless
                .then(|| {
                    new.with_second_factor(SecondFactor::Passkey, now)
                        .second_factor
                })
                .flatten(),
            ..new
        };
        let evicting = self
            .limit
            .is_some_and(|l| l.policy == LimitPolicy::EvictOldest);
        let outcome = self
            .publisher
            .ending(
                self.store
                    .create_session(&digest, &record, self.limit, user.credential_version),
                |outcome| match outcome {
                    Some(CreateOutcome::Created { evicted }) if !evicted.is_empty() => {
                        Some(self.publisher.event(
                            EventKind::Evicted,
                            user.id,
                            evicted.clone(),
                            false,
                            None,
                        ))
                    }
                    Some(_) => None,
                    // Which sessions an unconfirmed create evicted is unknown: name them all,
                    // keeping nothing (a cache only loses entries).
                    None if evicting => Some(self.publisher.event(
                        EventKind::Evicted,
                        user.id,
                        Vec::new(),
                        true,
                        None,
                    )),
                    None => None,
                },
            )
            .await?;
        match outcome {
            CreateOutcome::Created { evicted } => {
                self.metrics.sessions_created.inc();
                self.metrics.revoked("limit", evicted.len());
                for handle in &evicted {
                    tracing::info!(target: "audit", event = "session_evicted", user_id = %user.id, session = %handle, "evicted by the per-user session cap");
                }
                // Caches need only the ends of sessions, so logins are in the feed on request
                // only (every login is in the audit log). Recording it is informational: a
                // failure does not undo the login.
                if self.feed_logins {
                    self.publisher
                        .informational(self.publisher.event(
                            EventKind::Login,
                            user.id,
                            vec![record.handle],
                            false,
                            None,
                        ))
                        .await;
                }
                Ok((
                    token,
                    ActiveSession {
                        digest,
                        record,
                        data: SessionData::default(),
                    },
                ))
            }
            // Disabled, or credentials changed, between password check and session creation.
            CreateOutcome::UserUnavailable => {
                tracing::info!(target: "audit", event = "login_refused_stale_credentials", user_id = %user.id);
                Err(Error::InvalidCredentials)
            }
            CreateOutcome::LimitReached => Err(Error::SessionLimitReached),
        }
    }

    /// Ends the session; `false` if it had already ended.
    pub async fn end(&self, session: &ActiveSession, reason: &str) -> Result<bool, Error> {
        let record = &session.record;
        let kind = if reason == "logout" {
            EventKind::Logout
        } else {
            EventKind::Revoked
        };
        let ended = self
            .publisher
            .ending(
                self.store.revoke_session(&session.digest, record),
                |ended| {
                    (ended != Some(&false)).then(|| {
                        self.publisher.event(
                            kind.clone(),
                            record.user_id,
                            vec![record.handle],
                            false,
                            None,
                        )
                    })
                },
            )
            .await?;
        if ended {
            self.metrics.revoked(reason, 1);
        }
        Ok(ended)
    }

    /// Ends the session behind a presented token, if it is live (session fixation defence at
    /// login). Errors are logged, not raised: the login itself already succeeded.
    pub async fn end_presented(&self, token: &SessionToken) {
        let result = match self.check(token, Via::Cookie).await {
            Ok(Some(session)) => self.end(&session, "replaced").await.map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not end the session presented at login");
        }
    }

    /// Records that the session's user just proved the password again, verified against
    /// `user.credential_version`. Refused (as invalid credentials) when the credentials changed
    /// or the user was disabled meanwhile; unauthenticated when the session ended.
    pub async fn reauthenticate(
        &self,
        session: &ActiveSession,
        user: &UserRecord,
    ) -> Result<ActiveSession, Error> {
        let record = SessionPolicy::reauthenticated(&session.record, self.clock.now_ms());
        let outcome = self
            .publisher
            .ending(
                self.store.reauthenticate_session(
                    &session.digest,
                    &record,
                    user.credential_version,
                ),
                |outcome| {
                    matches!(outcome, Some(ReauthOutcome::Recorded) | None)
                        .then(|| self.updated(record.user_id, record.handle))
                },
            )
            .await?;
        match outcome {
            ReauthOutcome::Recorded => {
                tracing::info!(target: "audit", event = "reauthenticated", user_id = %user.id, session = %record.handle);
                Ok(ActiveSession {
                    record,
                    ..session.clone()
                })
            }
            ReauthOutcome::SessionGone => Err(Error::Unauthenticated),
            ReauthOutcome::UserUnavailable => Err(Error::InvalidCredentials),
        }
    }

    /// The feed event that makes caches drop a session whose check answer changed.
    fn updated(&self, user: Uuid, handle: Uuid) -> super::events::SessionEvent {
        self.publisher
            .event(EventKind::Updated, user, vec![handle], false, None)
    }

    /// Refuses ([`Error::ReauthenticationRequired`]) unless the session's user proved the
    /// password within `max_age`; `None` requires nothing.
    pub fn require_fresh(
        &self,
        session: &ActiveSession,
        max_age: Option<Duration>,
    ) -> Result<(), Error> {
        let Some(max_age) = max_age else {
            return Ok(());
        };
        let age = self
            .clock
            .now_ms()
            .saturating_sub(session.record.authenticated_ms);
        if u128::from(age) > max_age.as_millis() {
            return Err(Error::ReauthenticationRequired);
        }
        Ok(())
    }

    /// The app data of the user's live session `handle`.
    pub async fn data(&self, user: Uuid, handle: Uuid) -> Result<SessionData, Error> {
        self.store
            .session_data(user, handle)
            .await?
            .ok_or(Error::NotFound("session"))
    }

    /// Applies a JSON merge patch to the app data of the user's live session `handle`.
    ///
    /// With `if_match`, the patch applies only to that version: any other answers
    /// [`Error::DataVersionMismatch`] (the caller computed its change from data that is no longer
    /// current). Without it, the patch applies to whatever the data is now: a write that loses a
    /// race re-reads and re-applies it, a few times. Either way the store writes compare-and-set,
    /// so no concurrent update is ever silently overwritten. A merge patch applied twice gives
    /// the same data, so a retry after a lost reply is safe.
    pub async fn update_data(
        &self,
        user: Uuid,
        handle: Uuid,
        if_match: Option<u64>,
        patch: &[u8],
        max_bytes: usize,
    ) -> Result<SessionData, Error> {
        for _ in 0..DATA_RETRIES {
            let current = self.data(user, handle).await?;
            if let Some(expected) = if_match
                && expected != current.version
            {
                return Err(Error::DataVersionMismatch {
                    expected,
                    current: current.version,
                });
            }
            let json = current.merged(patch, max_bytes)?;
            let written = self
                .publisher
                .ending(
                    self.store
                        .write_session_data(user, handle, current.version, json.as_deref()),
                    |outcome| {
                        matches!(outcome, Some(DataWrite::Written(_)) | None)
                            .then(|| self.updated(user, handle))
                    },
                )
                .await?;
            match written {
                DataWrite::Written(version) => {
                    return Ok(SessionData {
                        version,
                        json: json.map(Into::into),
                    });
                }
                DataWrite::Gone => return Err(Error::NotFound("session")),
                DataWrite::Conflict(now) => {
                    if let Some(expected) = if_match {
                        return Err(Error::DataVersionMismatch {
                            expected,
                            current: now.version,
                        });
                    }
                }
            }
        }
        Err(Error::Conflict)
    }

    pub async fn list(&self, user: Uuid) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.store.list_sessions(user).await?)
    }

    /// Ends one of the user's sessions by handle, on the user's own request or an admin's (`by`).
    /// Publishes its end even when no live session had that handle: the call may be the retry of
    /// one whose reply was lost after the session ended.
    pub async fn revoke_handle(
        &self,
        user: Uuid,
        handle: Uuid,
        by: Option<&Actor>,
    ) -> Result<(), Error> {
        let ended = self
            .publisher
            .ending(self.store.revoke_session_by_handle(user, handle), |_| {
                Some(SessionEvent {
                    by: by.cloned(),
                    ..self
                        .publisher
                        .event(EventKind::Revoked, user, vec![handle], false, None)
                })
            })
            .await?;
        if ended {
            self.metrics.revoked("revoked", 1);
            tracing::info!(target: "audit", event = "session_revoked", user_id = %user, session = %handle);
            Ok(())
        } else {
            Err(Error::NotFound("session"))
        }
    }

    /// Ends all of the user's sessions except `keep`, on the user's own request or an admin's
    /// (`by`).
    pub async fn revoke_all(
        &self,
        user: Uuid,
        keep: Option<Uuid>,
        by: Option<&Actor>,
    ) -> Result<usize, Error> {
        let ended = self
            .publisher
            .ending(self.store.revoke_all_sessions(user, keep), |ended| {
                Some(SessionEvent {
                    by: by.cloned(),
                    ..self.publisher.event(
                        EventKind::RevokedAll,
                        user,
                        ended.cloned().unwrap_or_default(),
                        true,
                        keep,
                    )
                })
            })
            .await?;
        let count = ended.len();
        self.metrics.revoked("revoke_all", count);
        tracing::info!(target: "audit", event = "sessions_revoked_all", user_id = %user, count, kept = ?keep);
        Ok(count)
    }
}
