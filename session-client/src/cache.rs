//! The local cache of positive checks, and the rules under which it may answer.
//!
//! An entry answers only while (1) it is younger than `max_age`, (2) its session has not reached
//! its own expiry, and (3) the feed is proven current within `feed_staleness`: a poll *sent* less
//! than `feed_staleness` ago was answered and its events applied. The answer to a poll holds every
//! event appended before the poll was sent, so an event appended at T has dropped its entries by
//! T + `feed_staleness`, or the cache has stopped answering; how long answers take to arrive does
//! not stretch this. Events drop entries as they arrive; an entry is stored only if no event
//! arrived while its check was in flight (the check could have raced a revocation).

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
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
    /// When the latest poll that proved the cache current was sent, if the feed is healthy.
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

    pub(crate) fn feed_staleness(&self) -> Duration {
        self.settings.feed_staleness
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

    /// The events of a poll sent at `sent_at` are applied, and they are all the events appended
    /// before then: the cache may be trusted until `sent_at + feed_staleness`. Never moves the
    /// time back.
    pub(crate) fn feed_alive(&self, sent_at: Instant) {
        let mut heard = self
            .feed_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *heard = Some(heard.map_or(sent_at, |t| t.max(sent_at)));
    }

    /// The feed failed: the cache stops answering until it is heard again.
    pub(crate) fn feed_down(&self) {
        *self
            .feed_heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Drops entries of sessions of `user` that ended: the named handles, or all of them but
    /// `kept`. Other users' entries are never touched, whatever handles the event names.
    pub(crate) fn invalidate(&self, user: Uuid, handles: &[Uuid], all: bool, kept: Option<Uuid>) {
        let mut entries = self.entries();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let doomed: Vec<CacheKey> = entries
            .iter()
            .filter(|(_, e)| {
                e.session.user_id == user
                    && (handles.contains(&e.session.handle)
                        || (all && Some(e.session.handle) != kept))
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
            ..Session::default()
        }
    }

    fn cache() -> Cache {
        let c = Cache::new(CacheSettings {
            max_entries: 2,
            max_age: Duration::from_secs(60),
            feed_staleness: Duration::from_secs(60),
        });
        c.feed_alive(Instant::now());
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
        c.feed_alive(Instant::now());
        assert!(c.get(&key).is_some());
    }

    /// An instant `ago` in the past.
    fn before_now(ago: Duration) -> Instant {
        Instant::now()
            .checked_sub(ago)
            .expect("the monotonic clock started long enough ago")
    }

    #[test]
    fn freshness_counts_from_when_the_poll_was_sent_not_from_its_answer() {
        let c = cache();
        let key = CacheKey::of("t");
        c.insert(key, session(Uuid::new_v4()), c.epoch());
        c.feed_down();
        // An answer arriving now, to a poll sent longer than `feed_staleness` ago, proves nothing
        // about the events of the last `feed_staleness`.
        c.feed_alive(before_now(Duration::from_secs(61)));
        assert!(c.get(&key).is_none());
        assert!(!c.feed_fresh());
        c.feed_alive(before_now(Duration::from_secs(1)));
        assert!(c.get(&key).is_some());
    }

    #[test]
    fn an_older_send_time_never_moves_freshness_back() {
        let c = cache();
        let key = CacheKey::of("t");
        c.insert(key, session(Uuid::new_v4()), c.epoch());
        c.feed_alive(before_now(Duration::from_secs(61)));
        assert!(c.get(&key).is_some(), "still trusted from the later send");
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
    fn an_event_touches_only_its_own_users_entries() {
        let c = cache();
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let bobs = session(bob);
        c.insert(CacheKey::of("bob"), bobs.clone(), c.epoch());
        // An event of alice's naming bob's handle leaves bob's entry alone.
        c.invalidate(alice, &[bobs.handle], false, None);
        c.invalidate(alice, &[bobs.handle], true, None);
        assert!(c.get(&CacheKey::of("bob")).is_some());
        c.invalidate(bob, &[bobs.handle], false, None);
        assert!(c.get(&CacheKey::of("bob")).is_none());
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
