//! Second factors in use: enrolling TOTP, proving a factor in a session (the second step of a
//! login, or a step-up), recovery codes, and removing or resetting factors. Passkeys are in
//! `passkeys.rs`.
//!
//! Every proof is checked under the budgets a password meets (see
//! [`AccountService::under_code_budget`]) and recorded in one atomic store step that also
//! consumes what it used (the TOTP time step, the recovery code), on condition that the user's
//! credentials are still those the proof was checked against. So two uses of one code race to
//! exactly one success, and a factor removed while a login waits for it refuses that login.
//! The cryptography (codes, sealing, recovery-code digests) is in `domain::factors`.

mod passkeys;

pub use passkeys::{Assertion, Attestation, CeremonyStart, NAME_MAX, PasskeyInfo, valid_name};

use std::{net::IpAddr, sync::Arc};

use uuid::Uuid;

use super::{
    accounts::AccountService,
    assurance::SecondFactor,
    clock::Clock,
    error::Error,
    events::{Actor, EventKind, SessionEvent},
    factors::{
        recovery,
        secret_box::FactorKeys,
        totp::{self, TotpCode, TotpSecret},
    },
    publisher::Publisher,
    sessions::ActiveSession,
    user::UserRecord,
};
use crate::{
    config::FactorConfig,
    metrics::Metrics,
    state::Hook,
    store::{FactorChange, FactorOutcome, FactorUse, PendingTotp, Store},
};

/// A started TOTP enrolment, for the user to add to an authenticator app.
pub struct TotpEnrollment {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// What proves a second factor in a session.
pub enum Proof<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    /// A passkey's answer to the challenge of `ceremony` (see `passkeys.rs`).
    Passkey {
        ceremony: &'a str,
        assertion: &'a Assertion,
    },
}

/// A user's factors, as the user may see them (never a secret).
pub struct FactorsOverview {
    /// When TOTP was enrolled (ms), if it is.
    pub totp_enrolled_ms: Option<u64>,
    pub recovery_codes_left: usize,
    /// Whether this session has a TOTP enrolment waiting for its first code.
    pub totp_pending: bool,
    pub passkeys: Vec<PasskeyInfo>,
}

pub struct MfaService {
    store: Arc<dyn Store>,
    config: FactorConfig,
    clock: Clock,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    /// Tests hold a proof here, between its check and its record (see `state::Hooks`).
    after_code_verified: Option<Hook>,
}

impl MfaService {
    pub fn new(
        store: Arc<dyn Store>,
        config: FactorConfig,
        clock: Clock,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        after_code_verified: Option<Hook>,
    ) -> MfaService {
        MfaService {
            store,
            config,
            clock,
            publisher,
            metrics,
            after_code_verified,
        }
    }

    fn keys(&self) -> Result<&FactorKeys, Error> {
        self.config.keys.as_ref().ok_or(Error::TotpUnavailable)
    }

    /// The session's user, as stored now.
    async fn user(&self, session: &ActiveSession) -> Result<UserRecord, Error> {
        self.store
            .user_by_id(session.record.user_id)
            .await?
            .ok_or(Error::Unauthenticated)
    }

    pub async fn overview(&self, session: &ActiveSession) -> Result<FactorsOverview, Error> {
        let (user, pending) = futures_util::future::join(
            self.user(session),
            self.store.totp_enrollment(session.record.user_id),
        )
        .await;
        let (user, pending) = (user?, pending?);
        Ok(FactorsOverview {
            totp_enrolled_ms: user.factors.totp.as_ref().map(|t| t.enrolled_ms),
            recovery_codes_left: user.factors.recovery_codes.len(),
            totp_pending: pending.is_some_and(|p| p.session == session.record.handle),
            passkeys: Self::passkeys(&user),
        })
    }

    /// Refuses unless the session proved a second factor within the configured freshness: what
    /// changing factors needs, so that a stolen password-only session cannot.
    fn require_fresh_second_factor(&self, session: &ActiveSession) -> Result<(), Error> {
        if session
            .record
            .second_factor_within(self.config.fresh_max_age, self.clock.now_ms())
        {
            Ok(())
        } else {
            Err(Error::FreshSecondFactorRequired)
        }
    }

    /// Starts a TOTP enrolment for the session's user: a new secret, kept sealed until a first
    /// code confirms it (replacing any enrolment not yet confirmed). A user with a factor enrolled
    /// already needs a fresh second factor, so that a password alone cannot add one.
    pub async fn begin_totp(&self, session: &ActiveSession) -> Result<TotpEnrollment, Error> {
        let keys = self.keys()?;
        let user = self.user(session).await?;
        if user.factors.totp.is_some() {
            return Err(Error::FactorAlreadyEnrolled("TOTP factor"));
        }
        if user.factors.enrolled() {
            self.require_fresh_second_factor(session)?;
        }
        let secret = TotpSecret::generate();
        let pending = PendingTotp {
            session: session.record.handle,
            sealed: keys.seal(secret.as_bytes(), user.id.as_bytes()),
        };
        self.store
            .begin_totp_enrollment(user.id, &pending, self.config.totp_enroll_timeout)
            .await?;
        let enrollment = totp::enrollment(&secret, &self.config.totp_issuer, &user.username);
        tracing::info!(target: "audit", event = "totp_enrollment_started", user_id = %user.id, session = %session.record.handle);
        Ok(TotpEnrollment {
            secret_base32: enrollment.secret_base32,
            otpauth_uri: enrollment.otpauth_uri,
            qr_svg: enrollment.qr_svg,
        })
    }

    /// Confirms the session's TOTP enrolment with a first code: the secret becomes the user's
    /// factor, this session is `aal2`, and the user's other sessions now belong to a user with a
    /// factor (pending logins under `highest_available`).
    pub async fn confirm_totp(
        &self,
        accounts: &AccountService,
        session: &ActiveSession,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<ActiveSession, Error> {
        let keys = self.keys()?;
        let code = TotpCode::parse(code).map_err(|e| Error::invalid("code", e))?;
        let record = &session.record;
        let (user, pending) = futures_util::future::join(
            self.user(session),
            self.store.totp_enrollment(record.user_id),
        )
        .await;
        let (user, pending) = (user?, pending?);
        let pending = pending
            .filter(|p| p.session == record.handle)
            .ok_or(Error::EnrollmentExpired)?;
        let secret = keys
            .open(&pending.sealed, user.id.as_bytes())
            .ok()
            .and_then(|bytes| TotpSecret::from_bytes(&bytes))
            .ok_or(Error::EnrollmentExpired)?;
        let now = self.clock.now_ms();
        let proved = crate::domain::session::SessionRecord {
            factor_enrolled: true,
            ..record.with_second_factor(SecondFactor::Totp, now)
        };
        accounts
            .under_code_budget(&user.username, ip, async {
                let step = totp::matching_step(&secret, &code, now).ok_or(Error::WrongCode)?;
                let use_ = FactorUse::EnrollTotp {
                    pending: pending.clone(),
                    step,
                    enrolled_ms: now,
                };
                self.record_proof(session, &proved, &user, &use_, EventKind::FactorsChanged)
                    .await
            })
            .await?;
        tracing::info!(target: "audit", event = "totp_enrolled", user_id = %user.id, session = %record.handle);
        Ok(ActiveSession {
            record: proved,
            ..session.clone()
        })
    }

    /// Proves a second factor in the session: the second step of a login, or a step-up. The
    /// same session (token, handle) becomes `aal2`.
    pub async fn prove(
        &self,
        accounts: &AccountService,
        session: &ActiveSession,
        proof: Proof<'_>,
        ip: Option<IpAddr>,
    ) -> Result<ActiveSession, Error> {
        let user = self.user(session).await?;
        let record = &session.record;
        let now = self.clock.now_ms();
        let (method, use_) = match proof {
            Proof::Totp(raw) => {
                let code = TotpCode::parse(raw).map_err(|e| Error::invalid("code", e))?;
                let stored = user
                    .factors
                    .totp
                    .clone()
                    .ok_or(Error::FactorNotEnrolled("TOTP factor"))?;
                let keys = self.keys()?;
                // A secret sealed with a key no longer in SESSION_FACTOR_KEYS cannot be opened:
                // the user proves another factor (a recovery code) or an operator resets it.
                let secret = keys
                    .open(&stored.sealed, user.id.as_bytes())
                    .ok()
                    .and_then(|bytes| TotpSecret::from_bytes(&bytes))
                    .ok_or_else(|| {
                        tracing::error!(user_id = %user.id, "a TOTP secret cannot be opened with SESSION_FACTOR_KEYS: its key was removed from the ring");
                        Error::FactorNotEnrolled("usable TOTP factor")
                    })?;
                let resealed = (!keys.is_current(&stored.sealed))
                    .then(|| keys.seal(secret.as_bytes(), user.id.as_bytes()));
                (
                    SecondFactor::Totp,
                    Deferred::Totp {
                        secret,
                        code,
                        sealed: stored.sealed,
                        resealed,
                    },
                )
            }
            Proof::RecoveryCode(raw) => {
                let digest =
                    recovery::digest(user.id, raw).map_err(|e| Error::invalid("code", e))?;
                if !user.factors.enrolled() {
                    return Err(Error::FactorNotEnrolled("second factor"));
                }
                (
                    SecondFactor::RecoveryCode,
                    Deferred::Ready(FactorUse::RecoveryCode(digest)),
                )
            }
            Proof::Passkey {
                ceremony,
                assertion,
            } => (
                SecondFactor::Passkey,
                Deferred::Passkey {
                    ceremony,
                    assertion,
                },
            ),
        };
        let proved = record.with_second_factor(method, now);
        let left = accounts
            .under_code_budget(&user.username, ip, async {
                let use_ = match use_ {
                    Deferred::Ready(use_) => use_,
                    Deferred::Passkey {
                        ceremony,
                        assertion,
                    } => {
                        self.verify_passkey_proof(session, &user, ceremony, assertion)
                            .await?
                    }
                    Deferred::Totp {
                        secret,
                        code,
                        sealed,
                        resealed,
                    } => FactorUse::Totp {
                        step: totp::matching_step(&secret, &code, now).ok_or(Error::WrongCode)?,
                        sealed,
                        resealed,
                    },
                };
                let recorded = self
                    .record_proof(session, &proved, &user, &use_, EventKind::Updated)
                    .await;
                match (recorded, &use_) {
                    // The passkey was used (or renamed) since it was read: this answer counts no
                    // more.
                    (Err(Error::CodeReused), FactorUse::Passkey { .. }) => {
                        Err(Error::PasskeyRefused)
                    }
                    (recorded, _) => recorded,
                }
            })
            .await?;
        if method == SecondFactor::RecoveryCode {
            tracing::info!(target: "audit", event = "recovery_code_used", user_id = %user.id, session = %record.handle, left);
            self.publisher
                .informational(self.publisher.event(
                    EventKind::RecoveryCodeUsed,
                    user.id,
                    vec![record.handle],
                    false,
                    None,
                ))
                .await;
        }
        tracing::info!(target: "audit", event = "second_factor", user_id = %user.id, session = %record.handle, method = method.as_str());
        Ok(ActiveSession {
            record: proved,
            ..session.clone()
        })
    }

    /// Records a proof in the store, publishing what changed (an enrolment changes every session
    /// of the user; a proof, the one session), and maps the outcome. Returns the recovery codes
    /// left.
    async fn record_proof(
        &self,
        session: &ActiveSession,
        proved: &crate::domain::session::SessionRecord,
        user: &UserRecord,
        use_: &FactorUse,
        kind: EventKind,
    ) -> Result<usize, Error> {
        if let Some(hook) = &self.after_code_verified {
            hook().await;
        }
        let all = kind == EventKind::FactorsChanged;
        let outcome = self
            .publisher
            .ending(
                self.store.prove_second_factor(
                    &session.digest,
                    proved,
                    user.credential_version,
                    use_,
                ),
                |outcome| {
                    matches!(outcome, Some(FactorOutcome::Recorded { .. }) | None).then(|| {
                        let handles = if all { Vec::new() } else { vec![proved.handle] };
                        self.publisher
                            .event(kind.clone(), user.id, handles, all, None)
                    })
                },
            )
            .await?;
        let result = match outcome {
            FactorOutcome::Recorded {
                recovery_codes_left,
            } => Ok(recovery_codes_left),
            FactorOutcome::SessionGone => Err(Error::Unauthenticated),
            FactorOutcome::UserUnavailable => Err(Error::Conflict),
            FactorOutcome::Replayed => Err(Error::CodeReused),
            FactorOutcome::WrongCode => Err(Error::WrongCode),
            FactorOutcome::EnrollmentGone => Err(Error::EnrollmentExpired),
            FactorOutcome::PasskeyExists => Err(Error::PasskeyInUse),
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(Error::WrongCode) => "wrong",
            Err(Error::CodeReused) => "reused",
            Err(_) => "refused",
        };
        self.metrics.second_factor(label);
        result
    }

    /// New recovery codes for the session's user, voiding the old ones, with the user's other
    /// sessions ended. Needs a fresh second factor. Returns the codes, shown this once.
    pub async fn regenerate_recovery_codes(
        &self,
        session: &ActiveSession,
    ) -> Result<(Vec<String>, usize), Error> {
        self.require_fresh_second_factor(session)?;
        let user = self.user(session).await?;
        if !user.factors.enrolled() {
            return Err(Error::FactorNotEnrolled("second factor"));
        }
        let (codes, digests) = recovery::generate(user.id);
        let ended = self
            .change(
                &user,
                Some(user.credential_version),
                FactorChange::SetRecoveryCodes(digests),
                Some(session.record.handle),
                None,
            )
            .await?;
        tracing::info!(target: "audit", event = "recovery_codes_generated", user_id = %user.id, session = %session.record.handle, revoked = ended);
        Ok((codes, ended))
    }

    /// Removes the user's TOTP factor (and the recovery codes, which go with the last factor),
    /// ending the user's other sessions. Needs a fresh second factor.
    pub async fn remove_totp(&self, session: &ActiveSession) -> Result<usize, Error> {
        self.require_fresh_second_factor(session)?;
        let user = self.user(session).await?;
        if user.factors.totp.is_none() {
            return Err(Error::FactorNotEnrolled("TOTP factor"));
        }
        let ended = self
            .change(
                &user,
                Some(user.credential_version),
                FactorChange::RemoveTotp,
                Some(session.record.handle),
                None,
            )
            .await?;
        tracing::info!(target: "audit", event = "totp_removed", user_id = %user.id, session = %session.record.handle, revoked = ended);
        Ok(ended)
    }

    /// An administrator removes every factor and recovery code of a user, ending all of the
    /// user's sessions. Audited with who did it.
    pub async fn reset(&self, user_id: Uuid, by: Option<&Actor>) -> Result<usize, Error> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let ended = self
            .change(&user, None, FactorChange::Reset, None, by)
            .await?;
        self.release_claims(&user).await;
        tracing::info!(target: "audit", event = "factors_reset_by_admin", user_id = %user.id, revoked = ended);
        Ok(ended)
    }

    /// Applies a change of factors (compare-and-set on the credential version when given),
    /// publishing the sessions it ended. Returns how many ended.
    async fn change(
        &self,
        user: &UserRecord,
        version: Option<u64>,
        change: FactorChange,
        keep: Option<Uuid>,
        by: Option<&Actor>,
    ) -> Result<usize, Error> {
        let ended = self
            .publisher
            .ending(
                self.store.change_factors(user.id, version, &change, keep),
                |ended| match ended {
                    Some(None) => None,
                    ended => Some(SessionEvent {
                        by: by.cloned(),
                        ..self.publisher.event(
                            EventKind::FactorsChanged,
                            user.id,
                            ended.cloned().flatten().unwrap_or_default(),
                            true,
                            keep,
                        )
                    }),
                },
            )
            .await?
            .ok_or(if version.is_some() {
                Error::Conflict
            } else {
                Error::NotFound("user")
            })?;
        self.metrics.revoked("factors_changed", ended.len());
        Ok(ended.len())
    }
}

/// A proof's store step, of which a TOTP code's time step and a passkey's verification are
/// found only under the budget.
enum Deferred<'a> {
    Ready(FactorUse),
    Passkey {
        ceremony: &'a str,
        assertion: &'a Assertion,
    },
    Totp {
        secret: TotpSecret,
        code: TotpCode,
        sealed: Vec<u8>,
        resealed: Option<Vec<u8>>,
    },
}
