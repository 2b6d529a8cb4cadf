//! The local cache of positive checks, and the rules under which it may answer.
//!
//! An entry answers only while (1) it is younger than `max_age`, (2) its session has not reached
//! its own expiry, and (3) the event feed has been heard from within `feed_staleness`. Events drop
//! entries as they arrive; an entry is stored only if no event arrived while its check was in
//! flight (the check could have raced a revocation).

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime},
};

use lru::LruCache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{CacheSettings, Session};

/// SHA-256 of the token: tokens themselves are not kept in memory longer than a call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(crate) fn of(token: &str) -> CacheKey {
        CacheKey(Sha256::digest(token.as_bytes()).into())
    }
}

struct Entry {
    session: Session,
    stored: Instant,
    expires: Option<SystemTime>,
}

pub(crate) struct Cache {
    settings: CacheSettings,
    entries: Mutex<LruCache<CacheKey, Entry>>,
    /// Bumped by every applied event batch and reset.
    epoch: AtomicU64,
    /// When the feed last answered, if it is healthy.
    feed_heard: Mutex<Option<Instant>>,
}

impl Cache {
    pub(crate) fn new(settings: CacheSettings) -> Cache {
        let capacity = NonZeroUsize::new(settings.max_entries.max(1)).unwrap_or(NonZeroUsize::MIN);
        Cache {
            settings,
            entries: Mutex::new(LruCache::new(capacity)),
            epoch: AtomicU64::new(0),
            feed_heard: Mutex::new(None),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<CacheKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn feed_fresh(&self) -> bool {
        let heard = *self
            .feed_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        heard.is_some_and(|t| t.elapsed() <= self.settings.feed_staleness)
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Session> {
        if !self.feed_fresh() {
            return None;
        }
        let mut entries = self.entries();
        let entry = entries.get(key)?;
        let expired = entry.stored.elapsed() > self.settings.max_age
            || entry.expires.is_none_or(|e| SystemTime::now() >= e);
        if expired {
            entries.pop(key);
            return None;
        }
        Some(entry.session.clone())
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Stores a positive answer obtained when the epoch was `epoch`.
    pub(crate) fn insert(&self, key: CacheKey, session: Session, epoch: u64) {
        let mut entries = self.entries();
        if self.epoch() != epoch || !self.feed_fresh() {
            return;
        }
        let expires = session.expires_at();
        entries.put(
            key,
            Entry {
                session,
                stored: Instant::now(),
                expires,
            },
        );
    }

    /// The feed answered: the cache may be trusted for another `feed_staleness`.
    pub(crate) fn feed_alive(&self) {
        *self
            .feed_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// The feed failed: the cache stops answering until it is heard again.
    pub(crate) fn feed_down(&self) {
        *self
            .feed_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Drops entries of sessions that ended: the named handles, or every session of a user but
    /// `kept`.
    pub(crate) fn invalidate(&self, user: Uuid, handles: &[Uuid], all: bool, kept: Option<Uuid>) {
        let mut entries = self.entries();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let doomed: Vec<CacheKey> = entries
            .iter()
            .filter(|(_, e)| {
                handles.contains(&e.session.handle)
                    || (all && e.session.user_id == user && Some(e.session.handle) != kept)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in doomed {
            entries.pop(&key);
        }
    }

    /// Forgets everything (the feed position was lost).
    pub(crate) fn clear(&self) {
        let mut entries = self.entries();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn session(user: Uuid) -> Session {
        let later =
            humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(600)).to_string();
        Session {
            user_id: user,
            username: "alice".into(),
            handle: Uuid::new_v4(),
            idle_expires_at: later.clone(),
            absolute_expires_at: later,
        }
    }

    fn cache() -> Cache {
        let c = Cache::new(CacheSettings {
            max_entries: 2,
            max_age: Duration::from_secs(60),
            feed_staleness: Duration::from_secs(60),
        });
        c.feed_alive();
        c
    }

    #[test]
    fn entries_answer_only_while_the_feed_is_alive() {
        let c = cache();
        let key = CacheKey::of("t1");
        c.insert(key, session(Uuid::new_v4()), c.epoch());
        assert!(c.get(&key).is_some());
        c.feed_down();
        assert!(c.get(&key).is_none());
        c.feed_alive();
        assert!(c.get(&key).is_some());
    }

    #[test]
    fn an_answer_that_raced_an_event_is_not_stored() {
        let c = cache();
        let epoch = c.epoch();
        c.invalidate(Uuid::new_v4(), &[], false, None);
        c.insert(CacheKey::of("t"), session(Uuid::new_v4()), epoch);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn events_drop_named_sessions_or_all_of_a_user_but_the_kept_one() {
        let c = cache();
        let user = Uuid::new_v4();
        let (a, b) = (session(user), session(user));
        c.insert(CacheKey::of("a"), a.clone(), c.epoch());
        c.insert(CacheKey::of("b"), b.clone(), c.epoch());
        c.invalidate(user, &[], true, Some(b.handle));
        assert!(c.get(&CacheKey::of("a")).is_none());
        assert!(c.get(&CacheKey::of("b")).is_some());
        c.invalidate(user, &[b.handle], false, None);
        assert!(c.get(&CacheKey::of("b")).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_honours_session_expiry() {
        let c = cache();
        for t in ["1", "2", "3"] {
            c.insert(CacheKey::of(t), session(Uuid::new_v4()), c.epoch());
        }
        assert_eq!(c.len(), 2);
        let mut expired = session(Uuid::new_v4());
        expired.idle_expires_at =
            humantime::format_rfc3339(SystemTime::now() - Duration::from_secs(1)).to_string();
        c.insert(CacheKey::of("old"), expired, c.epoch());
        assert!(c.get(&CacheKey::of("old")).is_none());
    }
}
