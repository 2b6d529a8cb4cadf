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
    Rfc3339(ms).to_string()
}

/// A time in ms since the Unix epoch that serializes as RFC 3339 text (UTC, milliseconds:
/// `2026-11-29T06:19:33.000Z`), formatted on the stack: every check answers with four of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

/// The last instant RFC 3339's four-digit years can write; later times are written as it.
const LAST_WRITABLE_MS: u64 = 253_402_300_799_999;

impl Rfc3339 {
    /// The 24 bytes of text.
    pub fn text(self) -> [u8; 24] {
        let ms = self.0.min(LAST_WRITABLE_MS);
        let days = ms / 86_400_000;
        let in_day = ms % 86_400_000;
        let (year, month, day) = civil_from_days(days);
        let (hh, mm, ss, milli) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, hh);
        put(14, 2, mm);
        put(17, 2, ss);
        put(20, 3, milli);
        out
    }

    fn as_str(text: &[u8; 24]) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(text).unwrap_or_default()
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Rfc3339::as_str(&self.text()))
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Rfc3339::as_str(&self.text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_text_matches_humantime_across_the_calendar() {
        let humantime = |ms: u64| {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        };
        // Leap days, century rules (2000, 2100), the epoch, ends of days and years.
        let mut samples = vec![
            0,
            951_782_400_000,
            951_868_799_999,
            4_107_542_400_000,
            1_798_761_599_999,
            253_402_300_799_999,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x % 253_402_300_800_000);
        }
        for ms in samples {
            assert_eq!(Rfc3339(ms).to_string(), humantime(ms), "{ms}");
            assert_eq!(
                serde_json::to_string(&Rfc3339(ms)).unwrap(),
                format!("\"{}\"", humantime(ms))
            );
        }
        // Past the year 9999, the last writable instant.
        assert_eq!(Rfc3339(u64::MAX).to_string(), "9999-12-31T23:59:59.999Z");
    }

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
