//! The embedded store: everything in this process, behind one mutex.
//!
//! It exists so the service runs with nothing else installed. It keeps the same invariants as the
//! Redis store (one lock makes every operation atomic) but shares nothing with other processes:
//! with more than one replica, sessions are not shared and a revocation on one replica is not seen
//! by the others. Entries expire lazily on access and in a periodic sweep, by the service's clock.
//!
//! Event ids are `<epoch>-<sequence>`, the epoch being the time the store was created: ids of a
//! restarted process sort after every id of the previous one, so a reader that kept its position
//! across the restart is told to reset rather than silently missing events.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    CreateOutcome, CreateUser, FactorChange, FactorOutcome, FactorUse, PendingTotp, ReauthOutcome,
    RevokeScope, Store, StoreError, StoredSession,
};
use crate::domain::{
    clock::Clock,
    console::{ConsoleDigest, ConsoleSession},
    events::{EventPage, FEED_MAX_LEN, FeedPosition, SessionEvent, parse_id},
    rate_limit::{RateCount, RateKey},
    session::{LimitPolicy, SessionLimit, SessionRecord},
    session_data::{DataWrite, SessionData},
    token::TokenDigest,
    user::{StoredPasskey, StoredTotp, UserFactors, UserRecord, Username},
};

#[derive(Default)]
struct Inner {
    users: HashMap<Uuid, UserRecord>,
    names: HashMap<Username, Uuid>,
    /// Session records by (user, digest); the record's own expiry is its TTL.
    sessions: HashMap<(Uuid, TokenDigest), SessionRecord>,
    /// App data of sessions that have any, removed with their session.
    data: HashMap<(Uuid, TokenDigest), SessionData>,
    /// Per-user index ordered by (expiry, handle): the order in which the Redis scripts evict and
    /// the Redis store lists.
    index: HashMap<Uuid, BTreeSet<(u64, Uuid, DigestKey)>>,
    counters: HashMap<RateKey, (u32, u64)>,
    /// The event feed: (sequence, event), ids are `<epoch>-<sequence>`.
    events: std::collections::VecDeque<(u64, SessionEvent)>,
    last_event: u64,
    /// Admin console sessions by token digest; each expires at its own `expires_ms`.
    console: HashMap<ConsoleDigest, ConsoleSession>,
    /// Pending TOTP enrolments by user, with their expiry.
    enrollments: HashMap<Uuid, (PendingTotp, u64)>,
    /// Passkey ceremonies by id, with their expiry.
    ceremonies: HashMap<String, (String, u64)>,
    /// Passkey credential ids and the user each belongs to.
    passkey_claims: HashMap<String, Uuid>,
}

/// [`TokenDigest`] with an order, for the index set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DigestKey([u8; 16]);

impl Inner {
    fn prune(&mut self, user: Uuid, now: u64) {
        let mut dead = Vec::new();
        if let Some(set) = self.index.get_mut(&user) {
            while let Some(&first) = set.first() {
                if first.0 > now {
                    break;
                }
                set.pop_first();
                dead.push(TokenDigest(first.2.0));
            }
            if set.is_empty() {
                self.index.remove(&user);
            }
        }
        for digest in dead {
            self.forget(user, digest);
        }
    }

    fn end_all(&mut self, user: Uuid, except: Option<Uuid>) -> Vec<Uuid> {
        let Some(set) = self.index.get_mut(&user) else {
            return Vec::new();
        };
        let ended: Vec<_> = set
            .iter()
            .filter(|e| Some(e.1) != except)
            .copied()
            .collect();
        for entry in &ended {
            set.remove(entry);
        }
        if set.is_empty() {
            self.index.remove(&user);
        }
        for entry in &ended {
            self.forget(user, TokenDigest(entry.2.0));
        }
        ended.into_iter().map(|e| e.1).collect()
    }

    fn remove_entry(&mut self, user: Uuid, handle: Uuid) -> bool {
        let Some(set) = self.index.get_mut(&user) else {
            return false;
        };
        let Some(&entry) = set.iter().find(|e| e.1 == handle) else {
            return false;
        };
        set.remove(&entry);
        if set.is_empty() {
            self.index.remove(&user);
        }
        self.forget(user, TokenDigest(entry.2.0))
    }

    /// Whether the user exists, is enabled and is still at `credential_version`.
    fn user_at(&self, user: Uuid, credential_version: u64) -> bool {
        self.users
            .get(&user)
            .is_some_and(|u| !u.disabled && u.credential_version == credential_version)
    }

    /// Removes a session's record and app data (not its index entry); `false`: it had none.
    fn forget(&mut self, user: Uuid, digest: TokenDigest) -> bool {
        self.data.remove(&(user, digest));
        self.sessions.remove(&(user, digest)).is_some()
    }

    /// The digest of the user's live session `handle`.
    fn live_digest(&self, user: Uuid, handle: Uuid, now: u64) -> Option<TokenDigest> {
        self.index
            .get(&user)?
            .iter()
            .find(|e| e.1 == handle && e.0 > now)
            .map(|e| TokenDigest(e.2.0))
    }

    fn sweep(&mut self, now: u64) {
        let users: Vec<Uuid> = self.index.keys().copied().collect();
        for user in users {
            self.prune(user, now);
        }
        self.sessions.retain(|_, r| r.expires_ms() > now);
        let sessions = &self.sessions;
        self.data.retain(|k, _| sessions.contains_key(k));
        self.counters.retain(|_, (_, until)| *until > now);
        self.console.retain(|_, s| s.expires_ms > now);
        self.enrollments.retain(|_, (_, until)| *until > now);
        self.ceremonies.retain(|_, (_, until)| *until > now);
    }

    /// Sets or clears the "second factor enrolled" flag on every session of the user.
    fn set_enrolled(&mut self, user: Uuid, enrolled: bool) {
        for ((owner, _), record) in self.sessions.iter_mut() {
            if *owner == user {
                record.factor_enrolled = enrolled;
            }
        }
    }
}

/// In-process [`Store`].
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    /// The feed's epoch: the creation time in ms (see the module documentation).
    epoch: u64,
    /// The feed's last sequence number, for [`Store::await_events`].
    published: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::with_clock(Clock::system())
    }

    pub fn with_clock(clock: Clock) -> MemoryStore {
        MemoryStore {
            inner: Arc::default(),
            epoch: clock.now_ms(),
            clock,
            published: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Starts the background sweep that bounds memory held by expired entries. It stops when the
    /// last handle to the store is dropped.
    pub fn spawn_sweeper(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                lock(&inner).sweep(clock.now_ms());
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }
}

/// A poisoned lock only means another request panicked mid-operation; every operation leaves the
/// maps consistent before it can panic, so carry on.
fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn until(now: u64, window: Duration) -> u64 {
    now.saturating_add(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create_user(&self, user: &UserRecord) -> Result<CreateUser, StoreError> {
        let mut inner = self.lock();
        if inner.names.contains_key(&user.username) {
            return Ok(CreateUser::UsernameTaken);
        }
        inner.names.insert(user.username.clone(), user.id);
        inner.users.insert(user.id, user.clone());
        Ok(CreateUser::Created)
    }

    async fn user_by_name(&self, name: &Username) -> Result<Option<UserRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .names
            .get(name)
            .and_then(|id| inner.users.get(id))
            .cloned())
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn replace_password_hash(
        &self,
        id: Uuid,
        expected_version: u64,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut inner = self.lock();
        match inner.users.get_mut(&id) {
            Some(user) if user.credential_version == expected_version => {
                user.password_hash = new.to_owned();
                user.credential_version += 1;
            }
            _ => return Ok(None),
        }
        Ok(Some(match revoke {
            RevokeScope::None => Vec::new(),
            RevokeScope::All => inner.end_all(id, None),
            RevokeScope::AllExcept(keep) => inner.end_all(id, Some(keep)),
        }))
    }

    async fn rehash_password(
        &self,
        id: Uuid,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().users.get_mut(&id) {
            Some(user) if user.password_hash == expected => {
                user.password_hash = new.to_owned();
                true
            }
            _ => false,
        })
    }

    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut inner = self.lock();
        let Some(user) = inner.users.get_mut(&id) else {
            return Ok(None);
        };
        user.disabled = disabled;
        user.credential_version += 1;
        Ok(Some(if disabled {
            inner.end_all(id, None)
        } else {
            Vec::new()
        }))
    }

    async fn create_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
        credential_version: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let user = record.user_id;
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        if !inner.user_at(user, credential_version) {
            return Ok(CreateOutcome::UserUnavailable);
        }
        inner.prune(user, now_ms);
        let mut evicted = Vec::new();
        if let Some(SessionLimit { max, policy }) = limit {
            let live = inner.index.get(&user).map_or(0, BTreeSet::len);
            let max = max as usize;
            if live >= max {
                if policy == LimitPolicy::Refuse {
                    return Ok(CreateOutcome::LimitReached);
                }
                let victims: Vec<_> = inner.index[&user]
                    .iter()
                    .take(live + 1 - max)
                    .map(|e| e.1)
                    .collect();
                for handle in victims {
                    inner.remove_entry(user, handle);
                    evicted.push(handle);
                }
            }
        }
        if inner.sessions.contains_key(&(user, *digest)) {
            return Err(StoreError::Corrupt("session digest collision".into()));
        }
        inner.sessions.insert((user, *digest), record.clone());
        inner.index.entry(user).or_default().insert((
            record.expires_ms(),
            record.handle,
            DigestKey(digest.0),
        ));
        Ok(CreateOutcome::Created { evicted })
    }

    async fn session(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<StoredSession>, StoreError> {
        let now = self.now_ms();
        let inner = self.lock();
        Ok(inner
            .sessions
            .get(&(user, *digest))
            .filter(|r| r.expires_ms() > now)
            .map(|record| StoredSession {
                record: record.clone(),
                data: inner
                    .data
                    .get(&(user, *digest))
                    .cloned()
                    .unwrap_or_default(),
            }))
    }

    async fn touch_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let user = record.user_id;
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        let Some(old) = inner.sessions.get(&(user, *digest)).cloned() else {
            return Ok(false);
        };
        if old.expires_ms() <= now_ms {
            return Ok(false);
        }
        // A re-authentication or a factor proof that landed after this renewal's read stays.
        let renewed = SessionRecord {
            authenticated_ms: old.authenticated_ms,
            second_factor: old.second_factor,
            factor_enrolled: old.factor_enrolled,
            ..record.clone()
        };
        inner.sessions.insert((user, *digest), renewed);
        // Re-index unconditionally: the session lives, so its index entry must too.
        let set = inner.index.entry(user).or_default();
        set.remove(&(old.expires_ms(), old.handle, DigestKey(digest.0)));
        set.insert((record.expires_ms(), record.handle, DigestKey(digest.0)));
        inner.prune(user, now_ms);
        Ok(true)
    }

    async fn reauthenticate_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
    ) -> Result<ReauthOutcome, StoreError> {
        let user = record.user_id;
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        if !inner.user_at(user, credential_version) {
            return Ok(ReauthOutcome::UserUnavailable);
        }
        match inner.sessions.get_mut(&(user, *digest)) {
            Some(stored) if stored.expires_ms() > now_ms => {
                stored.authenticated_ms = record.authenticated_ms;
                Ok(ReauthOutcome::Recorded)
            }
            _ => Ok(ReauthOutcome::SessionGone),
        }
    }

    async fn session_data(
        &self,
        user: Uuid,
        handle: Uuid,
    ) -> Result<Option<SessionData>, StoreError> {
        let now_ms = self.now_ms();
        let inner = self.lock();
        Ok(inner
            .live_digest(user, handle, now_ms)
            .map(|digest| inner.data.get(&(user, digest)).cloned().unwrap_or_default()))
    }

    async fn write_session_data(
        &self,
        user: Uuid,
        handle: Uuid,
        expected: u64,
        json: Option<&str>,
    ) -> Result<DataWrite, StoreError> {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        let Some(digest) = inner.live_digest(user, handle, now_ms) else {
            return Ok(DataWrite::Gone);
        };
        let stored = inner.data.entry((user, digest)).or_default();
        if stored.version != expected {
            return Ok(DataWrite::Conflict(stored.clone()));
        }
        stored.version += 1;
        stored.json = json.map(std::sync::Arc::from);
        Ok(DataWrite::Written(stored.version))
    }

    async fn revoke_session(
        &self,
        _digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        inner.prune(record.user_id, now_ms);
        Ok(inner.remove_entry(record.user_id, record.handle))
    }

    async fn revoke_session_by_handle(&self, user: Uuid, handle: Uuid) -> Result<bool, StoreError> {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        inner.prune(user, now_ms);
        Ok(inner.remove_entry(user, handle))
    }

    async fn list_sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        inner.prune(user, now_ms);
        let Some(set) = inner.index.get(&user) else {
            return Ok(Vec::new());
        };
        Ok(set
            .iter()
            .filter_map(|e| inner.sessions.get(&(user, TokenDigest(e.2.0))).cloned())
            .collect())
    }

    async fn revoke_all_sessions(
        &self,
        user: Uuid,
        except: Option<Uuid>,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(self.lock().end_all(user, except))
    }

    async fn hit(&self, key: &RateKey, window: Duration) -> Result<RateCount, StoreError> {
        let now = self.now_ms();
        let mut inner = self.lock();
        let entry = inner.counters.entry(key.clone()).or_insert((0, 0));
        if entry.1 <= now {
            *entry = (0, until(now, window));
        }
        entry.0 = entry.0.saturating_add(1);
        Ok(RateCount {
            count: entry.0,
            resets_in: Duration::from_millis(entry.1 - now),
        })
    }

    async fn peek(&self, key: &RateKey) -> Result<RateCount, StoreError> {
        let now = self.now_ms();
        Ok(match self.lock().counters.get(key) {
            Some(&(count, until)) if until > now => RateCount {
                count,
                resets_in: Duration::from_millis(until - now),
            },
            _ => RateCount {
                count: 0,
                resets_in: Duration::ZERO,
            },
        })
    }

    async fn refund(&self, key: &RateKey) -> Result<(), StoreError> {
        let now = self.now_ms();
        if let Some(entry) = self.lock().counters.get_mut(key)
            && entry.1 > now
        {
            entry.0 = entry.0.saturating_sub(1);
        }
        Ok(())
    }

    async fn publish(&self, event: &SessionEvent) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.last_event += 1;
        let seq = inner.last_event;
        inner.events.push_back((seq, event.clone()));
        while inner.events.len() > FEED_MAX_LEN {
            inner.events.pop_front();
        }
        drop(inner);
        // Concurrent publishers may get here out of order: the value only moves forward.
        self.published.send_if_modified(|last| {
            let newer = seq > *last;
            if newer {
                *last = seq;
            }
            newer
        });
        Ok(())
    }

    async fn await_events(
        &self,
        after: &str,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        // A position of another epoch (an earlier process) is behind everything of this one.
        let after_seq = match parse_id(after) {
            Some((epoch, seq)) if epoch == self.epoch => seq,
            Some((epoch, _)) if epoch > self.epoch => u64::MAX,
            Some(_) => 0,
            None => return Err(StoreError::Corrupt("event feed: bad position".into())),
        };
        let mut published = self.published.subscribe();
        let newer = tokio::time::timeout(wait, published.wait_for(|&seq| seq > after_seq)).await;
        Ok(match newer {
            Ok(Ok(seq)) => Some(format!("{}-{}", self.epoch, *seq)),
            _ => None,
        })
    }

    async fn read_events(&self, from: &FeedPosition, max: usize) -> Result<EventPage, StoreError> {
        let epoch = self.epoch;
        let inner = self.lock();
        // Before the first event the end is the start, `0-0`; afterwards ids are real entries.
        let last = if inner.last_event == 0 {
            (0, 0)
        } else {
            (epoch, inner.last_event)
        };
        let id = |(e, seq): (u64, u64)| format!("{e}-{seq}");
        let after = match from {
            FeedPosition::Latest => {
                return Ok(EventPage {
                    events: Vec::new(),
                    last_id: id(last),
                    reset: false,
                });
            }
            FeedPosition::After(position) => parse_id(position)
                .ok_or_else(|| StoreError::Corrupt("event feed: bad position".into()))?,
        };
        let first = inner.events.front().map(|(seq, _)| (epoch, *seq));
        // A position from another epoch (an earlier process) is gone unless it is the start.
        let foreign = after != (0, 0) && after.0 != epoch;
        if foreign || super::redis::position_gone(after, first, last) {
            return Ok(EventPage {
                events: Vec::new(),
                last_id: id(last),
                reset: true,
            });
        }
        let from_seq = if after == (0, 0) { 0 } else { after.1 };
        let events: Vec<(String, SessionEvent)> = inner
            .events
            .iter()
            .filter(|(seq, _)| *seq > from_seq)
            .take(max.max(1))
            .map(|(seq, e)| (id((epoch, *seq)), e.clone()))
            .collect();
        let last_id = events
            .last()
            .map_or_else(|| id(after), |(position, _)| position.clone());
        Ok(EventPage {
            events,
            last_id,
            reset: false,
        })
    }

    async fn begin_totp_enrollment(
        &self,
        user: Uuid,
        pending: &PendingTotp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let until = until(self.now_ms(), ttl);
        self.lock()
            .enrollments
            .insert(user, (pending.clone(), until));
        Ok(())
    }

    async fn totp_enrollment(&self, user: Uuid) -> Result<Option<PendingTotp>, StoreError> {
        let now = self.now_ms();
        Ok(self
            .lock()
            .enrollments
            .get(&user)
            .filter(|(_, until)| *until > now)
            .map(|(pending, _)| pending.clone()))
    }

    async fn prove_second_factor(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
        proof: &FactorUse,
    ) -> Result<FactorOutcome, StoreError> {
        let user = record.user_id;
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        if inner
            .sessions
            .get(&(user, *digest))
            .is_none_or(|s| s.expires_ms() <= now_ms)
        {
            return Ok(FactorOutcome::SessionGone);
        }
        if !inner.user_at(user, credential_version) {
            return Ok(FactorOutcome::UserUnavailable);
        }
        let enrollment = inner.enrollments.get(&user).cloned();
        let Some(account) = inner.users.get_mut(&user) else {
            return Ok(FactorOutcome::UserUnavailable);
        };
        let factors = &mut account.factors;
        match proof {
            FactorUse::Totp {
                step,
                sealed,
                resealed,
            } => {
                let Some(totp) = factors.totp.as_mut().filter(|t| t.sealed == *sealed) else {
                    return Ok(FactorOutcome::UserUnavailable);
                };
                if *step <= totp.last_step {
                    return Ok(FactorOutcome::Replayed);
                }
                totp.last_step = *step;
                if let Some(resealed) = resealed {
                    totp.sealed.clone_from(resealed);
                }
            }
            FactorUse::RecoveryCode(code) => {
                let Some(at) = factors.recovery_codes.iter().position(|c| c == code) else {
                    return Ok(FactorOutcome::WrongCode);
                };
                factors.recovery_codes.remove(at);
            }
            FactorUse::AddPasskey { credential, json } => {
                if factors.passkeys.iter().any(|p| p.id == *credential) {
                    return Ok(FactorOutcome::PasskeyExists);
                }
                factors.passkeys.push(StoredPasskey {
                    id: credential.clone(),
                    json: json.clone(),
                });
                account.credential_version += 1;
                inner.set_enrolled(user, true);
            }
            FactorUse::Passkey {
                credential,
                expected,
                new,
            } => {
                let Some(stored) = factors.passkeys.iter_mut().find(|p| p.id == *credential) else {
                    return Ok(FactorOutcome::UserUnavailable);
                };
                if stored.json != *expected {
                    return Ok(FactorOutcome::Replayed);
                }
                stored.json.clone_from(new);
            }
            FactorUse::EnrollTotp {
                pending,
                step,
                enrolled_ms,
            } => {
                if !enrollment.is_some_and(|(p, until)| p == *pending && until > now_ms) {
                    return Ok(FactorOutcome::EnrollmentGone);
                }
                factors.totp = Some(StoredTotp {
                    sealed: pending.sealed.clone(),
                    last_step: *step,
                    enrolled_ms: *enrolled_ms,
                });
                account.credential_version += 1;
                inner.enrollments.remove(&user);
                inner.set_enrolled(user, true);
            }
        }
        let left = inner
            .users
            .get(&user)
            .map_or(0, |u| u.factors.recovery_codes.len());
        if let Some(stored) = inner.sessions.get_mut(&(user, *digest)) {
            stored.second_factor = record.second_factor;
            stored.factor_enrolled = record.factor_enrolled;
        }
        Ok(FactorOutcome::Recorded {
            recovery_codes_left: left,
        })
    }

    async fn change_factors(
        &self,
        user: Uuid,
        credential_version: Option<u64>,
        change: &FactorChange,
        keep: Option<Uuid>,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut inner = self.lock();
        let Some(account) = inner.users.get_mut(&user) else {
            return Ok(None);
        };
        if credential_version.is_some_and(|v| v != account.credential_version) {
            return Ok(None);
        }
        let factors = &mut account.factors;
        match change {
            FactorChange::SetRecoveryCodes(codes) => factors.recovery_codes.clone_from(codes),
            FactorChange::RemoveTotp => factors.totp = None,
            FactorChange::RemovePasskey(credential) => {
                factors.passkeys.retain(|p| p.id != *credential);
            }
            FactorChange::Reset => *factors = UserFactors::default(),
        }
        // Recovery codes stand in for a factor: they go with the last one.
        let enrolled = factors.enrolled();
        if !enrolled {
            factors.recovery_codes.clear();
        }
        account.credential_version += 1;
        if matches!(change, FactorChange::RemoveTotp | FactorChange::Reset) {
            inner.enrollments.remove(&user);
        }
        let ended = inner.end_all(user, keep);
        inner.set_enrolled(user, enrolled);
        Ok(Some(ended))
    }

    async fn put_ceremony(&self, id: &str, state: &str, ttl: Duration) -> Result<(), StoreError> {
        let until = until(self.now_ms(), ttl);
        self.lock()
            .ceremonies
            .insert(id.to_owned(), (state.to_owned(), until));
        Ok(())
    }

    async fn take_ceremony(&self, id: &str) -> Result<Option<String>, StoreError> {
        let now = self.now_ms();
        Ok(self
            .lock()
            .ceremonies
            .remove(id)
            .filter(|(_, until)| *until > now)
            .map(|(state, _)| state))
    }

    async fn claim_passkey(&self, credential: &str, user: Uuid) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.passkey_claims.contains_key(credential) {
            return Ok(false);
        }
        inner.passkey_claims.insert(credential.to_owned(), user);
        Ok(true)
    }

    async fn release_passkey(&self, credential: &str, user: Uuid) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.passkey_claims.get(credential) == Some(&user) {
            inner.passkey_claims.remove(credential);
        }
        Ok(())
    }

    async fn update_passkey(
        &self,
        user: Uuid,
        credential: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let stored = inner
            .users
            .get_mut(&user)
            .and_then(|u| u.factors.passkeys.iter_mut().find(|p| p.id == credential));
        match stored {
            Some(stored) if stored.json == expected => {
                stored.json = new.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn create_console_session(
        &self,
        digest: &ConsoleDigest,
        session: &ConsoleSession,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        self.lock().console.insert(digest.clone(), session.clone());
        Ok(())
    }

    async fn console_session(
        &self,
        digest: &ConsoleDigest,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let now = self.now_ms();
        Ok(self
            .lock()
            .console
            .get(digest)
            .filter(|s| s.expires_ms > now)
            .cloned())
    }

    async fn end_console_session(&self, digest: &ConsoleDigest) -> Result<(), StoreError> {
        self.lock().console.remove(digest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::events::EventKind;

    fn event(store: &MemoryStore) -> SessionEvent {
        SessionEvent {
            kind: EventKind::Revoked,
            user_id: Uuid::now_v7(),
            handles: vec![Uuid::new_v4()],
            all: false,
            kept: None,
            at_ms: store.now_ms(),
            by: None,
        }
    }

    /// A reader that kept its position across a restart of the process must be told to reset,
    /// even once the new process has published more events than the old one had.
    #[tokio::test]
    async fn a_position_from_before_a_restart_is_reported_gone() {
        let before = MemoryStore::new();
        for _ in 0..3 {
            before.publish(&event(&before)).await.unwrap();
        }
        let position = before
            .read_events(&FeedPosition::After("0-0".into()), 10)
            .await
            .unwrap()
            .last_id;
        drop(before);
        tokio::time::sleep(Duration::from_millis(2)).await;

        let after = MemoryStore::new();
        let empty = after
            .read_events(&FeedPosition::After(position.clone()), 10)
            .await
            .unwrap();
        assert!(empty.reset, "restarted, nothing published yet");
        for _ in 0..5 {
            after.publish(&event(&after)).await.unwrap();
        }
        let page = after
            .read_events(&FeedPosition::After(position), 10)
            .await
            .unwrap();
        assert!(page.reset, "restarted, more events than before");
        assert!(page.events.is_empty());
        // Reading on from the answer's position works as usual.
        let from_start = after
            .read_events(&FeedPosition::After("0-0".into()), 10)
            .await
            .unwrap();
        assert_eq!(from_start.events.len(), 5);
        assert_eq!(from_start.last_id, page.last_id);
    }
}
