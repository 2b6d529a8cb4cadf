//! Recording latencies (HDR histograms, microseconds) and outcomes per worker, merged at the end.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::results::Latency;

/// Highest latency recorded exactly: one minute. Longer ones saturate (no request waits that
/// long: every request has a timeout).
const MAX_US: u64 = 60_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

pub fn summarize(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// Live counters shown by the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

/// One worker's record of a phase.
#[derive(Debug)]
pub struct Recorder {
    pub all: Histogram<u64>,
    pub ops: BTreeMap<&'static str, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    pub revoked_accepted: u64,
    pub revoked_checks: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            all: histogram(),
            ops: BTreeMap::new(),
            errors: BTreeMap::new(),
            revoked_accepted: 0,
            revoked_checks: 0,
        }
    }
}

impl Recorder {
    /// Records one request of operation `op` that took `took`; `error` names what went wrong.
    pub fn record(&mut self, live: &Live, op: &'static str, took: Duration, error: Option<String>) {
        let us = took.as_micros().min(MAX_US as u128) as u64;
        self.all.saturating_record(us.max(1));
        self.ops
            .entry(op)
            .or_insert_with(histogram)
            .saturating_record(us.max(1));
        live.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(kind) = error {
            live.errors.fetch_add(1, Ordering::Relaxed);
            *self.errors.entry(format!("{op}: {kind}")).or_default() += 1;
        }
    }

    pub fn error(&mut self, live: &Live, kind: String) {
        live.errors.fetch_add(1, Ordering::Relaxed);
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.all.add(&other.all).expect("same histogram bounds");
        for (op, h) in other.ops {
            self.ops
                .entry(op)
                .or_insert_with(histogram)
                .add(&h)
                .expect("same histogram bounds");
        }
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.revoked_accepted += other.revoked_accepted;
        self.revoked_checks += other.revoked_checks;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn op_latencies(&self) -> BTreeMap<String, Latency> {
        self.ops
            .iter()
            .map(|(op, h)| (op.to_string(), summarize(h)))
            .collect()
    }
}

/// How long and how much a phase may run: whichever bound comes first ends it.
#[derive(Debug)]
pub struct Budget {
    pub deadline: Instant,
    remaining: AtomicU64,
}

impl Budget {
    pub fn new(duration: Duration, max_requests: u64) -> Budget {
        Budget {
            deadline: Instant::now() + duration,
            remaining: AtomicU64::new(max_requests),
        }
    }

    /// Takes one request from the budget; false once time or count is spent.
    pub fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline || self.remaining.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_recorded_values() {
        let live = Live::default();
        let mut r = Recorder::default();
        for ms in 1..=1000u64 {
            r.record(&live, "check", Duration::from_millis(ms), None);
        }
        let l = summarize(&r.all);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(live.requests.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn merging_adds_counts_and_errors() {
        let live = Live::default();
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.record(&live, "check", Duration::from_millis(1), None);
        b.record(&live, "check", Duration::from_millis(2), Some("500".into()));
        b.revoked_accepted = 1;
        a.merge(b);
        assert_eq!(a.all.len(), 2);
        assert_eq!(a.error_count(), 1);
        assert_eq!(a.errors.get("check: 500"), Some(&1));
        assert_eq!(a.revoked_accepted, 1);
    }

    #[test]
    fn a_budget_ends_on_count() {
        let b = Budget::new(Duration::from_secs(60), 3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
        assert!(b.expired());
    }

    #[test]
    fn a_budget_ends_on_time() {
        let b = Budget::new(Duration::ZERO, 1000);
        assert!(!b.take());
    }
}
