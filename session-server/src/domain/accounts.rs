//! Accounts: registration, login (with throttling and hash upgrades), password changes and
//! disabling.

use std::{net::IpAddr, sync::Arc};

use uuid::Uuid;

use super::{
    clock::Clock,
    error::Error,
    events::{Actor, EventKind, SessionEvent},
    password::{Password, PasswordHasher, Verification},
    publisher::Publisher,
    rate_limit::{LoginThrottle, RateKey},
    user::{UserFactors, UserRecord, Username},
};
use crate::{
    metrics::Metrics,
    store::{CreateUser, RevokeScope, Store},
};

/// A login whose password matched, still holding its reservation of the username's failure
/// budget (see [`AccountService::release`]).
#[must_use = "the reservation must be released"]
pub struct Verified {
    pub user: UserRecord,
    reservation: RateKey,
}

pub struct AccountService {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    metrics: Arc<Metrics>,
    clock: Clock,
    publisher: Arc<Publisher>,
}

fn username(raw: &str) -> Result<Username, Error> {
    Username::parse(raw).map_err(|e| Error::invalid("username", e))
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        metrics: Arc<Metrics>,
        clock: Clock,
        publisher: Arc<Publisher>,
    ) -> AccountService {
        AccountService {
            store,
            hasher,
            throttle,
            metrics,
            clock,
            publisher,
        }
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Counts an attempt from `ip` (its IPv6 network); refuses once it is over its budget.
    async fn charge_ip(&self, ip: Option<IpAddr>) -> Result<(), Error> {
        let Some(ip) = ip else { return Ok(()) };
        let key = RateKey::ip_attempts(ip, self.throttle.ipv6_prefix);
        let count = self.store.hit(&key, self.throttle.window).await?;
        if count.count > self.throttle.max_attempts_per_ip {
            return Err(Error::Throttled {
                retry_after: count.resets_in,
            });
        }
        Ok(())
    }

    /// Runs a password check under a reservation of the username's failure budget, taken
    /// *before* the check so that concurrent attempts cannot all pass a count made before any of
    /// them was added: the counter holds the failures plus the checks in flight. Refuses at once
    /// when the budget is spent. Only a wrong password keeps its reservation (as its failure); a
    /// match, a refusal, or a check that could not be made (store unavailable, hashing busy) gives
    /// it back.
    async fn under_reservation<T>(
        &self,
        key: &RateKey,
        check: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let count = self.store.hit(key, self.throttle.window).await?;
        let result = if count.count > self.throttle.max_failures_per_user {
            Err(Error::Throttled {
                retry_after: count.resets_in,
            })
        } else {
            check.await
        };
        if !matches!(
            result,
            Err(Error::InvalidCredentials
                | Error::WrongPassword
                | Error::WrongCode
                | Error::CodeReused
                | Error::PasskeyRefused)
        ) {
            self.give_back(key).await;
        }
        result
    }

    /// Runs the check of a second factor's code under the budgets a password meets: one attempt
    /// of the client address's, and a reservation of the username's failure budget that only a
    /// wrong or reused code keeps (see [`Self::under_reservation`]). Guessing codes is thus as
    /// slow as guessing passwords, and spends the same budget.
    pub async fn under_code_budget<T>(
        &self,
        username: &Username,
        ip: Option<IpAddr>,
        check: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.charge_ip(ip).await?;
        self.under_reservation(&RateKey::user_failures(username), check)
            .await
    }

    /// Creates a user. `ip` is charged against the same budget as logins.
    pub async fn register(
        &self,
        raw_username: &str,
        raw_password: String,
        ip: Option<IpAddr>,
    ) -> Result<UserRecord, Error> {
        let username = username(raw_username)?;
        let password =
            Password::new_choice(raw_password).map_err(|e| Error::invalid("password", e))?;
        self.charge_ip(ip).await?;
        if self.store.user_by_name(&username).await?.is_some() {
            return Err(Error::UsernameTaken);
        }
        let user = UserRecord {
            id: Uuid::now_v7(),
            username,
            password_hash: self.hasher.hash(password).await?,
            disabled: false,
            created_ms: self.clock.now_ms(),
            credential_version: 0,
            factors: UserFactors::default(),
        };
        match self.store.create_user(&user).await? {
            CreateUser::Created => {
                tracing::info!(target: "audit", event = "user_created", user_id = %user.id);
                Ok(user)
            }
            CreateUser::UsernameTaken => Err(Error::UsernameTaken),
        }
    }

    /// Verifies credentials. Unknown user, wrong password and disabled account all answer
    /// [`Error::InvalidCredentials`] after the same argon2 work. The returned record carries the
    /// credential version the password was verified against; a session may only be created
    /// against that version (see `SessionService::start`).
    ///
    /// One round trip before hashing asks everything at once: the client address's budget, a
    /// reservation of the username's failure budget (see [`Self::under_reservation`]) and the
    /// username's id; a second reads the user record. The reservation of a match is still held
    /// on return: give it back with [`Self::release`], alongside the session's creation.
    pub async fn login(
        &self,
        raw_username: &str,
        raw_password: String,
        ip: Option<IpAddr>,
    ) -> Result<Verified, Error> {
        let username = username(raw_username)?;
        let password =
            Password::presented(raw_password).map_err(|e| Error::invalid("password", e))?;
        let failures_key = RateKey::user_failures(&username);
        let (ip_budget, reservation, user) = futures_util::future::join3(
            self.charge_ip(ip),
            self.store.hit(&failures_key, self.throttle.window),
            self.store.user_by_name(&username),
        )
        .await;
        let reserved = reservation.is_ok();
        let verdict = async {
            ip_budget?;
            let count = reservation?;
            if count.count > self.throttle.max_failures_per_user {
                return Err(Error::Throttled {
                    retry_after: count.resets_in,
                });
            }
            let user = user?;
            let verdict = self
                .hasher
                .verify(
                    password.clone(),
                    user.as_ref().map(|u| u.password_hash.clone()),
                )
                .await?;
            match (user, verdict) {
                (Some(user), Verification::Match { outdated }) if !user.disabled => {
                    Ok((user, outdated))
                }
                (user, _) => {
                    tracing::info!(target: "audit", event = "login_failed", user_id = ?user.map(|u| u.id), ip = ?ip);
                    Err(Error::InvalidCredentials)
                }
            }
        }
        .await;
        let (user, outdated) = match verdict {
            Ok(matched) => matched,
            Err(e) => {
                // Only a wrong password keeps its reservation (as its failure); a throttled
                // attempt or a check that could not be made gives it back.
                if reserved && !matches!(e, Error::InvalidCredentials) {
                    self.give_back(&failures_key).await;
                }
                return Err(e);
            }
        };
        if outdated {
            self.upgrade_hash(&user, password).await;
        }
        Ok(Verified {
            user,
            reservation: failures_key,
        })
    }

    /// Gives back a matched login's reservation of its username's failure budget.
    pub async fn release(&self, verified: &Verified) {
        self.give_back(&verified.reservation).await;
    }

    /// Best effort: a failed refund leaves one failure too many until the window ends.
    async fn give_back(&self, key: &RateKey) {
        if let Err(e) = self.store.refund(key).await {
            tracing::warn!(error = %e, "could not refund a login reservation");
        }
    }

    /// Re-hashes with the current parameters after a successful login. Best effort: a failure
    /// leaves the old (still valid) hash in place.
    async fn upgrade_hash(&self, user: &UserRecord, password: Password) {
        let result = match self.hasher.hash(password).await {
            Ok(new_hash) => self
                .store
                .rehash_password(user.id, &user.password_hash, &new_hash)
                .await
                .map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(_) => {
                tracing::info!(target: "audit", event = "password_rehashed", user_id = %user.id)
            }
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "password hash upgrade failed")
            }
        }
    }

    /// A signed-in user changes their password: needs the current one; ends every other session.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: String,
        new: String,
        keep_session: Uuid,
    ) -> Result<usize, Error> {
        let current =
            Password::presented(current).map_err(|e| Error::invalid("current_password", e))?;
        let new = Password::new_choice(new).map_err(|e| Error::invalid("new_password", e))?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let failures_key = RateKey::user_failures(&user.username);
        self.under_reservation(&failures_key, async {
            match self
                .hasher
                .verify(current, Some(user.password_hash.clone()))
                .await?
            {
                Verification::Match { .. } => Ok(()),
                Verification::Mismatch => Err(Error::WrongPassword),
            }
        })
        .await?;
        let new_hash = self.hasher.hash(new).await?;
        let ended = self
            .replace_hash(&user, &new_hash, RevokeScope::AllExcept(keep_session), None)
            .await?;
        tracing::info!(target: "audit", event = "password_changed", user_id = %user.id, session = %keep_session, revoked = ended);
        Ok(ended)
    }

    /// An operator sets a password: ends every session of the user. `by`: the admin who did,
    /// when through the admin listener.
    pub async fn set_password(
        &self,
        user_id: Uuid,
        new: String,
        by: Option<&Actor>,
    ) -> Result<usize, Error> {
        let new = Password::new_choice(new).map_err(|e| Error::invalid("password", e))?;
        let user = self.find(user_id).await?;
        let new_hash = self.hasher.hash(new).await?;
        let ended = self
            .replace_hash(&user, &new_hash, RevokeScope::All, by)
            .await?;
        tracing::info!(target: "audit", event = "password_set_by_admin", user_id = %user.id, revoked = ended);
        Ok(ended)
    }

    /// Replaces the hash if the credentials are still those read (compare-and-set on the credential
    /// version), ends `scope`, counts and publishes the ended sessions. Returns how many ended.
    async fn replace_hash(
        &self,
        user: &UserRecord,
        new_hash: &str,
        scope: RevokeScope,
        by: Option<&Actor>,
    ) -> Result<usize, Error> {
        let kept = match scope {
            RevokeScope::AllExcept(handle) => Some(handle),
            _ => None,
        };
        let ended = self
            .publisher
            .ending(
                self.store
                    .replace_password_hash(user.id, user.credential_version, new_hash, scope),
                |ended| match ended {
                    // Nothing changed: the credentials had changed meanwhile.
                    Some(None) => None,
                    ended => Some(SessionEvent {
                        by: by.cloned(),
                        ..self.publisher.event(
                            EventKind::PasswordChanged,
                            user.id,
                            ended.cloned().flatten().unwrap_or_default(),
                            true,
                            kept,
                        )
                    }),
                },
            )
            .await?
            .ok_or(Error::Conflict)?;
        self.metrics.revoked("password_change", ended.len());
        Ok(ended.len())
    }

    /// Disables (ending every session) or re-enables a user. Either way the credential version
    /// advances, so a login that verified the password before cannot create a session after.
    /// `by`: the admin who did, when through the admin listener. Returns the sessions ended.
    pub async fn set_disabled(
        &self,
        user_id: Uuid,
        disabled: bool,
        by: Option<&Actor>,
    ) -> Result<usize, Error> {
        let ended = self
            .publisher
            .ending(self.store.set_disabled(user_id, disabled), |ended| {
                match (disabled, ended) {
                    (false, _) | (true, Some(None)) => None,
                    (true, ended) => Some(SessionEvent {
                        by: by.cloned(),
                        ..self.publisher.event(
                            EventKind::UserDisabled,
                            user_id,
                            ended.cloned().flatten().unwrap_or_default(),
                            true,
                            None,
                        )
                    }),
                }
            })
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.metrics.revoked("user_disabled", ended.len());
        let event = if disabled {
            "user_disabled"
        } else {
            "user_enabled"
        };
        tracing::info!(target: "audit", event, user_id = %user_id, revoked = ended.len());
        Ok(ended.len())
    }

    pub async fn find(&self, user_id: Uuid) -> Result<UserRecord, Error> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    pub async fn find_by_name(&self, raw: &str) -> Result<UserRecord, Error> {
        let name = username(raw)?;
        self.store
            .user_by_name(&name)
            .await?
            .ok_or(Error::NotFound("user"))
    }
}
