//! The store: the one trait the domain needs, and its two backends.
//!
//! * [`redis::RedisStore`]: production. Every replica sees the same state; see `keys.rs` for the
//!   key schema and `lua/` for the atomic scripts.
//! * [`memory::MemoryStore`]: the embedded default, for development and single-process use.
//!   Nothing is shared between processes.
//!
//! Both pass the same conformance suite (`tests/store_conformance.rs`).
//!
//! Invariants every backend keeps:
//! * Creating a session (with Redis: adding it to its user's sessions hash) is one atomic step,
//!   refused when the user is unknown or disabled, or when the user's credential version is no
//!   longer the one the login verified; the per-user cap is enforced in the same step.
//! * Every change of credentials (password change or set, disable, enable) increases the user's
//!   credential version in the same atomic step as the revocations it implies, so a login that
//!   verified the old state can never create a session after the change (see
//!   [`UserRecord::credential_version`]).
//! * A session write never revives a session that was revoked concurrently (updates are
//!   conditional on existence).
//! * Every session-related entry expires on its own: expired sessions are pruned from their
//!   user's sessions whenever those are written, and what holds them (with Redis, the user's
//!   hash) expires with its longest-lived session. Users are the only entries without a TTL.
//! * Pruning, renewal and expiry use the same clock (the store's own: Redis `TIME` inside the
//!   scripts), so no session that still lives is ever pruned or hidden from "end all", whatever
//!   the replicas' clocks say.
//! * Revoking all of a user's sessions, changing a password (compare-and-set on the old hash) and
//!   disabling a user each happen atomically together with the revocations they imply.
//! * With Redis replicas, a write that ends sessions or changes what a credential can do returns
//!   `Ok` only once the required replicas confirmed it, and a read that a logout acknowledges as
//!   "already ended" likewise ([`Store::session_confirmed`]); otherwise it fails with
//!   [`StoreError::Unconfirmed`], its outcome unknown (see `replication.rs`).
//! * A session's app data ends with the session, by every path that ends it. Writes to it are
//!   compare-and-set on its version. A renewal never undoes a re-authentication, and neither
//!   touches the data.

pub mod connections;
pub mod keys;
pub mod memory;
pub mod redis;
pub mod replication;
pub mod settings;

pub use replication::WaitReplicas;
pub use settings::{RedisConfig, RedisMode};

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{
    console::{ConsoleDigest, ConsoleSession},
    events::{EventPage, FeedPosition, SessionEvent},
    rate_limit::{RateCount, RateKey},
    session::{SessionLimit, SessionRecord},
    session_data::{DataWrite, SessionData},
    token::TokenDigest,
    user::{UserRecord, Username},
};

/// Why a store operation failed. None of these means "no such session".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store refuses writes because it is out of memory (`maxmemory` with `noeviction`).
    #[error("session store is full")]
    Full,
    /// A write that ends sessions reached Redis, but fewer replicas than required confirmed it in
    /// time (see `replication.rs`): it may be undone by a failover, so it is not acknowledged.
    /// Its outcome is unknown; retrying converges.
    #[error(
        "session store did not confirm the change on {required} replica(s) in time ({confirmed} did)"
    )]
    Unconfirmed { required: u32, confirmed: u32 },
    /// Data in the store could not be understood.
    #[error("session store returned unexpected data: {0}")]
    Corrupt(String),
}

/// Which sessions a password change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    None,
    All,
    AllExcept(Uuid),
}

/// The result of [`Store::create_session`].
#[derive(Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored; `evicted` lists the handles of sessions ended to respect the per-user cap.
    Created { evicted: Vec<Uuid> },
    /// The user does not exist or is disabled; nothing was written.
    UserUnavailable,
    /// The cap is reached and the policy is to refuse; nothing was written.
    LimitReached,
}

/// A session as a check reads it: its record and its app data, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub record: SessionRecord,
    pub data: SessionData,
}

/// The result of [`Store::reauthenticate_session`].
#[derive(Debug, PartialEq, Eq)]
pub enum ReauthOutcome {
    Recorded,
    /// The session ended meanwhile.
    SessionGone,
    /// The user's credentials changed, or the user was disabled, since the password was verified.
    UserUnavailable,
}

/// The result of a username-claiming write.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateUser {
    Created,
    UsernameTaken,
}

/// A TOTP enrolment waiting for its first code: the sealed secret, bound to the session that
/// started it (only that session may confirm it).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingTotp {
    pub session: Uuid,
    pub sealed: Vec<u8>,
}

impl PendingTotp {
    /// As stored: the handle's 16 bytes, then the sealed secret.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.session.as_bytes().to_vec();
        out.extend_from_slice(&self.sealed);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<PendingTotp> {
        let (handle, sealed) = bytes.split_first_chunk::<16>()?;
        Some(PendingTotp {
            session: Uuid::from_bytes(*handle),
            sealed: sealed.to_vec(),
        })
    }
}

impl std::fmt::Debug for PendingTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTotp")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// What a second factor's proof consumes (see [`Store::prove_second_factor`]).
#[derive(Debug, Clone)]
pub enum FactorUse {
    /// A code of the enrolled TOTP secret `sealed` matched time `step`: that step and every
    /// earlier one are used up. `resealed`: the secret sealed with the current key, stored in
    /// its place (lazy key rotation).
    Totp {
        step: u64,
        sealed: Vec<u8>,
        resealed: Option<Vec<u8>>,
    },
    /// A recovery code by its digest: used up.
    RecoveryCode([u8; 16]),
    /// The first code of a pending TOTP enrolment matched `step`: the secret becomes the user's
    /// factor.
    EnrollTotp {
        pending: PendingTotp,
        step: u64,
        enrolled_ms: u64,
    },
    /// A passkey was registered: it becomes one of the user's factors (refused if the user has
    /// one with that credential id already).
    AddPasskey { credential: String, json: String },
    /// A passkey's assertion verified against its record `expected`, which becomes `new` (its
    /// counter and last use): refused if the record changed meanwhile (another use, a rename, a
    /// removal), so one assertion counts once.
    Passkey {
        credential: String,
        expected: String,
        new: String,
    },
}

/// The result of [`Store::prove_second_factor`].
#[derive(Debug, PartialEq, Eq)]
pub enum FactorOutcome {
    /// Recorded on the session; the user has this many recovery codes left.
    Recorded { recovery_codes_left: usize },
    /// The session ended meanwhile.
    SessionGone,
    /// The user's credentials (factors included) changed, or the user was disabled, since the
    /// proof was checked.
    UserUnavailable,
    /// The TOTP code's time step was already used.
    Replayed,
    /// No such recovery code (never issued, or used already).
    WrongCode,
    /// The TOTP enrolment expired, or was replaced by a newer one.
    EnrollmentGone,
    /// A passkey with this credential id is registered to the user already.
    PasskeyExists,
}

/// A change of a user's second factors (see [`Store::change_factors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorChange {
    /// Removes the TOTP factor (and the recovery codes, which go with the last factor).
    RemoveTotp,
    /// Replaces the recovery codes with these digests.
    SetRecoveryCodes(Vec<[u8; 16]>),
    /// Removes one passkey (by credential id); the recovery codes go if it was the last factor.
    RemovePasskey(String),
    /// Removes every factor and recovery code (an administrator's reset).
    Reset,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Human-readable backend name for logs and `/readyz`.
    fn kind(&self) -> &'static str;

    // ---- users ----

    /// Stores a new user, claiming its username. Never overwrites.
    async fn create_user(&self, user: &UserRecord) -> Result<CreateUser, StoreError>;
    async fn user_by_name(&self, name: &Username) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the password hash if the credential version is still `expected_version`
    /// (compare-and-set), increases the version, and revokes `revoke`, in one atomic step.
    /// `None`: the user is gone or their credentials changed meanwhile.
    async fn replace_password_hash(
        &self,
        id: Uuid,
        expected_version: u64,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Uuid>>, StoreError>;
    /// Re-hashes the same password with new parameters: replaces the hash only if it is still
    /// `expected`, and leaves the credential version and sessions alone. `false`: it changed.
    async fn rehash_password(
        &self,
        id: Uuid,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Sets the disabled flag and increases the credential version; disabling revokes every
    /// session in the same atomic step. Returns the revoked handles, or `None` for an unknown user.
    async fn set_disabled(&self, id: Uuid, disabled: bool)
    -> Result<Option<Vec<Uuid>>, StoreError>;

    // ---- sessions ----

    /// Stores a new session among its user's, atomically, if the user is enabled and still at
    /// `credential_version` (see [`CreateOutcome`]).
    async fn create_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
        credential_version: u64,
    ) -> Result<CreateOutcome, StoreError>;
    /// One read, with the session's app data. Returns the record as stored, possibly expired but
    /// not yet pruned; the caller judges its lifetime.
    async fn session(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<StoredSession>, StoreError>;
    /// [`Store::session`]'s record, once the replicas that confirm ends hold everything the read
    /// saw (Redis: a barrier write and a `WAIT` with it; see `replication.rs`). A logout that
    /// finds its session already gone acknowledges that only this way: the end it saw may be
    /// another connection's, not yet on a replica. The embedded store has no replicas.
    async fn session_confirmed(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.session(user, digest).await?.map(|s| s.record))
    }
    /// Writes a renewed record only if the session still exists and has not expired by the
    /// store's clock; the session is then kept under its new expiry. The stored time of the
    /// last authentication is kept, whatever `record` says: a concurrent re-authentication wins.
    /// `false`: it was revoked (or had expired).
    async fn touch_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError>;
    /// Records the new time of the last authentication (`record.authenticated_ms`) in a live
    /// session, if its user is enabled and still at `credential_version`. Nothing else of the
    /// stored record changes.
    async fn reauthenticate_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
    ) -> Result<ReauthOutcome, StoreError>;
    /// The app data of the user's live session `handle`; `None` when there is no such session.
    async fn session_data(
        &self,
        user: Uuid,
        handle: Uuid,
    ) -> Result<Option<SessionData>, StoreError>;
    /// Replaces the app data of the user's live session `handle` with `json` (an object's text,
    /// `None` for empty) if it is still at version `expected`, increasing the version.
    async fn write_session_data(
        &self,
        user: Uuid,
        handle: Uuid,
        expected: u64,
        json: Option<&str>,
    ) -> Result<DataWrite, StoreError>;
    /// Ends one session known by its digest, with its app data. `false`: it was already gone.
    async fn revoke_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError>;
    /// Ends one of `user`'s sessions by its public handle. `false`: no such live session.
    async fn revoke_session_by_handle(&self, user: Uuid, handle: Uuid) -> Result<bool, StoreError>;
    /// The user's live sessions, oldest activity first.
    async fn list_sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError>;
    /// Ends all of the user's sessions except `except` (a handle), atomically.
    async fn revoke_all_sessions(
        &self,
        user: Uuid,
        except: Option<Uuid>,
    ) -> Result<Vec<Uuid>, StoreError>;

    // ---- throttling counters ----

    /// Counts one hit in the key's window (opening a window of `window` if none is open).
    async fn hit(&self, key: &RateKey, window: Duration) -> Result<RateCount, StoreError>;
    /// Reads a counter without counting.
    async fn peek(&self, key: &RateKey) -> Result<RateCount, StoreError>;
    /// Takes back one hit (a reservation that turned out not to be a failure). Never below
    /// zero, never opens a window.
    async fn refund(&self, key: &RateKey) -> Result<(), StoreError>;

    // ---- the event feed (see `domain::events`) ----

    /// Appends an event to the feed.
    async fn publish(&self, event: &SessionEvent) -> Result<(), StoreError>;
    /// Reads up to `max` events after `from` without waiting.
    async fn read_events(&self, from: &FeedPosition, max: usize) -> Result<EventPage, StoreError>;
    /// Waits up to about `wait` for the feed to hold an event after `after` (an event id), and
    /// returns the id of the newest one seen, or `None` when none came. Only the feed's tail
    /// follower calls it, once per replica (see `domain::feed_watch`); readers never do.
    async fn await_events(&self, after: &str, wait: Duration)
    -> Result<Option<String>, StoreError>;

    // ---- second factors (see `domain::factors`) ----

    /// Keeps a TOTP enrolment for `ttl`, replacing any earlier one of the user.
    async fn begin_totp_enrollment(
        &self,
        user: Uuid,
        pending: &PendingTotp,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// The user's pending TOTP enrolment, unless it expired.
    async fn totp_enrollment(&self, user: Uuid) -> Result<Option<PendingTotp>, StoreError>;
    /// Records a second factor's proof in a live session (`record`'s proof and flags, see
    /// `domain::record`; nothing else of the stored record changes) and consumes what it used, in
    /// one atomic step, if the user is enabled and still at `credential_version`.
    async fn prove_second_factor(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
        proof: &FactorUse,
    ) -> Result<FactorOutcome, StoreError>;
    /// Applies `change` if the user is still at `credential_version` (`None`: whatever it is),
    /// increases the version and ends every session of the user but `keep`, atomically. Returns
    /// the ended handles; `None`: the user is gone or the version changed.
    async fn change_factors(
        &self,
        user: Uuid,
        credential_version: Option<u64>,
        change: &FactorChange,
        keep: Option<Uuid>,
    ) -> Result<Option<Vec<Uuid>>, StoreError>;

    /// Keeps a passkey ceremony's state for `ttl` under `id`.
    async fn put_ceremony(&self, id: &str, state: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Takes a passkey ceremony's state: it is gone afterwards, so a ceremony completes once.
    async fn take_ceremony(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Claims a passkey's credential id for `user`. `false`: another user (or this one) holds it.
    async fn claim_passkey(&self, credential: &str, user: Uuid) -> Result<bool, StoreError>;
    /// Gives up `user`'s claim of a credential id (nothing if another user holds it).
    async fn release_passkey(&self, credential: &str, user: Uuid) -> Result<(), StoreError>;
    /// Replaces a passkey's record if it is still `expected` (a rename, or the counter and last
    /// use after a passwordless sign-in). `false`: it changed or is gone.
    async fn update_passkey(
        &self,
        user: Uuid,
        credential: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError>;

    // ---- admin console sessions (see `domain::console`) ----

    /// Stores a new console session under its token's digest, expiring after `ttl`.
    async fn create_console_session(
        &self,
        digest: &ConsoleDigest,
        session: &ConsoleSession,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// The console session stored under `digest`, unless it expired.
    async fn console_session(
        &self,
        digest: &ConsoleDigest,
    ) -> Result<Option<ConsoleSession>, StoreError>;
    /// Removes the console session stored under `digest` (nothing if there is none).
    async fn end_console_session(&self, digest: &ConsoleDigest) -> Result<(), StoreError>;
}
