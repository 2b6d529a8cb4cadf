//! The service's clock: milliseconds since the Unix epoch, as stored in records, scores and events.
//!
//! **One clock decides.** With Redis, every replica reads the time of Redis (`TIME`) at start and
//! every [`SYNC_EVERY`], and from then on counts forward on its own *monotonic* clock from the last
//! reading. A replica's wall clock, however wrong and however it jumps, therefore never enters a
//! deadline it writes or a lifetime it judges: all replicas agree with Redis to within half a round
//! trip of their last reading (readings slower than [`MAX_SYNC_RTT`] are discarded). Inside the
//! scripts, expiry of keys and pruning of indexes both use Redis's own clock, so no replica can
//! reorder them. Until its first reading (Redis unreachable since start) a replica uses its wall
//! clock; nothing can be written meanwhile, since writes need Redis.
//!
//! The embedded store is one process: its clock is this one, unsynchronised.
//!
//! How far the wall clock is from Redis is exported as `session_clock_offset_seconds`, and logged
//! as a warning past [`WARN_OFFSET`]: it does not change behaviour, but it matters to anything else
//! on the host that reads the wall clock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How often a replica reads Redis's time once it has a reading.
pub const SYNC_EVERY: Duration = Duration::from_secs(30);
/// Readings whose round trip took longer are too uncertain to adopt.
pub const MAX_SYNC_RTT: Duration = Duration::from_millis(500);
/// Wall-clock offsets beyond this are logged (they do not affect the service).
pub const WARN_OFFSET: Duration = Duration::from_secs(1);

/// A shared, cheap-to-clone clock. See the module documentation.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    /// Added to the system's wall clock: zero in production, a deliberate skew in tests.
    wall_skew_ms: i64,
    /// A monotonic origin and the wall time at that origin.
    origin: Instant,
    origin_wall_ms: u64,
    /// Reference time minus (origin wall time + monotonic time since origin), once synchronised.
    correction_ms: AtomicI64,
    synced: AtomicBool,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("synced", &self.is_synced())
            .field("wall_skew_ms", &self.inner.wall_skew_ms)
            .finish()
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock::with_wall_skew(0)
    }

    /// A clock whose wall clock reads `skew_ms` ahead of the system's (behind when negative):
    /// how tests give one replica of several a wrong clock.
    pub fn with_wall_skew(skew_ms: i64) -> Clock {
        let origin = Instant::now();
        let origin_wall_ms = system_ms().saturating_add_signed(skew_ms);
        Clock {
            inner: Arc::new(Inner {
                wall_skew_ms: skew_ms,
                origin,
                origin_wall_ms,
                correction_ms: AtomicI64::new(0),
                synced: AtomicBool::new(false),
            }),
        }
    }

    /// This host's wall clock (with any test skew).
    pub fn wall_ms(&self) -> u64 {
        system_ms().saturating_add_signed(self.inner.wall_skew_ms)
    }

    fn monotonic_ms(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.inner.origin);
        self.inner
            .origin_wall_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    /// Now: the reference clock (Redis) once synchronised, else the wall clock.
    pub fn now_ms(&self) -> u64 {
        if self.inner.synced.load(Ordering::Acquire) {
            self.monotonic_ms(Instant::now())
                .saturating_add_signed(self.inner.correction_ms.load(Ordering::Relaxed))
        } else {
            self.wall_ms()
        }
    }

    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    /// Adopts a reading of the reference clock taken between `sent` and `received`, assuming it
    /// was read halfway. Returns the wall clock's offset from the reference (reference − wall, ms),
    /// or `None` when the round trip was too slow to trust.
    pub fn adopt(&self, reference_ms: u64, sent: Instant, received: Instant) -> Option<i64> {
        let rtt = received.saturating_duration_since(sent);
        if rtt > MAX_SYNC_RTT {
            return None;
        }
        let midpoint = sent + rtt / 2;
        let local = self.monotonic_ms(midpoint);
        let correction = i64::try_from(i128::from(reference_ms) - i128::from(local)).ok()?;
        self.inner
            .correction_ms
            .store(correction, Ordering::Relaxed);
        self.inner.synced.store(true, Ordering::Release);
        let wall_now = self.wall_ms();
        let reference_now = self.now_ms();
        Some(i64::try_from(i128::from(reference_now) - i128::from(wall_now)).unwrap_or(i64::MAX))
    }
}

/// RFC 3339 text (UTC, milliseconds) for API responses.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsynchronised_clock_reads_the_wall_clock_with_its_skew() {
        let ahead = Clock::with_wall_skew(5_000);
        let diff = ahead.now_ms() as i64 - system_ms() as i64;
        assert!((4_900..=5_100).contains(&diff), "{diff}");
    }

    #[test]
    fn once_synchronised_a_skewed_clock_reads_the_reference_time() {
        for skew in [-7_000, 0, 5_000] {
            let clock = Clock::with_wall_skew(skew);
            let sent = Instant::now();
            // The reference is the true system time; the wall clock is off by `skew`.
            let reference = system_ms();
            let offset = clock.adopt(reference, sent, Instant::now()).unwrap();
            assert!((offset + skew).abs() <= 50, "skew {skew}: offset {offset}");
            let diff = clock.now_ms() as i64 - system_ms() as i64;
            assert!(diff.abs() <= 50, "skew {skew}: now is off by {diff} ms");
        }
    }

    #[test]
    fn a_slow_reading_is_not_adopted() {
        let clock = Clock::with_wall_skew(3_000);
        let sent = Instant::now();
        let late = sent + MAX_SYNC_RTT + Duration::from_millis(1);
        assert_eq!(clock.adopt(0, sent, late), None);
        assert!(!clock.is_synced());
    }
}
