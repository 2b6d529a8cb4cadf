//! The embedded store: everything in this process, behind one mutex.
//!
//! It exists so the service runs with nothing else installed. It keeps the same invariants as the
//! Redis store (one lock makes every operation atomic) but shares nothing with other processes:
//! with more than one replica, sessions are not shared and a revocation on one replica is not seen
//! by the others. Entries expire lazily on access and in a periodic sweep.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use uuid::Uuid;

use super::{CreateOutcome, CreateUser, RevokeScope, Store, StoreError};
use crate::domain::{
    clock::now_ms,
    events::{EventPage, FEED_MAX_LEN, FeedPosition, SessionEvent, parse_id},
    rate_limit::{RateCount, RateKey},
    session::{LimitPolicy, SessionLimit, SessionRecord},
    token::TokenDigest,
    user::{UserRecord, Username},
};

#[derive(Default)]
struct Inner {
    users: HashMap<Uuid, UserRecord>,
    names: HashMap<Username, Uuid>,
    /// Session records by (user, digest); the record's own expiry is its TTL.
    sessions: HashMap<(Uuid, TokenDigest), SessionRecord>,
    /// Per-user index ordered by (expiry, handle), like the Redis sorted set.
    index: HashMap<Uuid, BTreeSet<(u64, Uuid, DigestKey)>>,
    counters: HashMap<RateKey, (u32, u64)>,
    /// The event feed: (sequence, event), ids are `<sequence>-0`.
    events: std::collections::VecDeque<(u64, SessionEvent)>,
    last_event: u64,
}

/// [`TokenDigest`] with an order, for the index set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DigestKey([u8; 16]);

impl Inner {
    fn prune(&mut self, user: Uuid, now: u64) {
        if let Some(set) = self.index.get_mut(&user) {
            while let Some(&first) = set.first() {
                if first.0 > now {
                    break;
                }
                set.pop_first();
                self.sessions.remove(&(user, TokenDigest(first.2.0)));
            }
            if set.is_empty() {
                self.index.remove(&user);
            }
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
            self.sessions.remove(&(user, TokenDigest(entry.2.0)));
        }
        if set.is_empty() {
            self.index.remove(&user);
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
        self.sessions
            .remove(&(user, TokenDigest(entry.2.0)))
            .is_some()
    }

    fn sweep(&mut self, now: u64) {
        let users: Vec<Uuid> = self.index.keys().copied().collect();
        for user in users {
            self.prune(user, now);
        }
        self.sessions.retain(|_, r| r.expires_ms() > now);
        self.counters.retain(|_, (_, until)| *until > now);
    }
}

/// In-process [`Store`].
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Starts the background sweep that bounds memory held by expired entries. It stops when the
    /// last handle to the store is dropped.
    pub fn spawn_sweeper(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                lock(&inner).sweep(now_ms());
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

fn until(window: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
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
        expected: &str,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut inner = self.lock();
        match inner.users.get_mut(&id) {
            Some(user) if user.password_hash == expected => user.password_hash = new.to_owned(),
            _ => return Ok(None),
        }
        Ok(Some(match revoke {
            RevokeScope::None => Vec::new(),
            RevokeScope::All => inner.end_all(id, None),
            RevokeScope::AllExcept(keep) => inner.end_all(id, Some(keep)),
        }))
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
        now_ms: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let user = record.user_id;
        let mut inner = self.lock();
        if inner.users.get(&user).is_none_or(|u| u.disabled) {
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
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = now_ms();
        Ok(self
            .lock()
            .sessions
            .get(&(user, *digest))
            .filter(|r| r.expires_ms() > now)
            .cloned())
    }

    async fn touch_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let user = record.user_id;
        let mut inner = self.lock();
        let Some(old) = inner.sessions.get(&(user, *digest)).cloned() else {
            return Ok(false);
        };
        if old.expires_ms() <= now_ms {
            return Ok(false);
        }
        inner.sessions.insert((user, *digest), record.clone());
        if let Some(set) = inner.index.get_mut(&user)
            && set.remove(&(old.expires_ms(), old.handle, DigestKey(digest.0)))
        {
            set.insert((record.expires_ms(), record.handle, DigestKey(digest.0)));
        }
        inner.prune(user, now_ms);
        Ok(true)
    }

    async fn revoke_session(
        &self,
        _digest: &TokenDigest,
        record: &SessionRecord,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        inner.prune(record.user_id, now_ms);
        Ok(inner.remove_entry(record.user_id, record.handle))
    }

    async fn revoke_session_by_handle(
        &self,
        user: Uuid,
        handle: Uuid,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        inner.prune(user, now_ms);
        Ok(inner.remove_entry(user, handle))
    }

    async fn list_sessions(
        &self,
        user: Uuid,
        now_ms: u64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
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
        let now = now_ms();
        let mut inner = self.lock();
        let entry = inner.counters.entry(key.clone()).or_insert((0, 0));
        if entry.1 <= now {
            *entry = (0, until(window));
        }
        entry.0 = entry.0.saturating_add(1);
        Ok(RateCount {
            count: entry.0,
            resets_in: Duration::from_millis(entry.1 - now),
        })
    }

    async fn peek(&self, key: &RateKey) -> Result<RateCount, StoreError> {
        let now = now_ms();
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

    async fn reset(&self, key: &RateKey) -> Result<(), StoreError> {
        self.lock().counters.remove(key);
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
        Ok(())
    }

    async fn read_events(&self, from: &FeedPosition, max: usize) -> Result<EventPage, StoreError> {
        let inner = self.lock();
        let last_id = format!("{}-0", inner.last_event);
        let after = match from {
            FeedPosition::Latest => {
                return Ok(EventPage {
                    events: Vec::new(),
                    last_id,
                    reset: false,
                });
            }
            FeedPosition::After(id) => parse_id(id)
                .ok_or_else(|| StoreError::Corrupt("event feed: bad position".into()))?,
        };
        let first = inner.events.front().map(|(seq, _)| (*seq, 0));
        let gone = after.1 != 0 || super::redis::position_gone(after, first, (inner.last_event, 0));
        if gone {
            return Ok(EventPage {
                events: Vec::new(),
                last_id,
                reset: true,
            });
        }
        let events: Vec<(String, SessionEvent)> = inner
            .events
            .iter()
            .filter(|(seq, _)| *seq > after.0)
            .take(max.max(1))
            .map(|(seq, e)| (format!("{seq}-0"), e.clone()))
            .collect();
        let last_id = events
            .last()
            .map_or_else(|| format!("{}-0", after.0), |(id, _)| id.clone());
        Ok(EventPage {
            events,
            last_id,
            reset: false,
        })
    }
}
