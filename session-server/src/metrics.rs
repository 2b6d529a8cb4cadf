//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! Labels never carry tokens, usernames or user ids: only routes (patterns, not paths), methods,
//! status codes and outcome names.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Prefix of every metric name.
const NAMESPACE: &str = "session";

/// The `result` values of `session_logins_total` (besides `error`, an unexpected failure).
pub const LOGIN_RESULTS: [&str; 4] = ["ok", "failed", "limited", "busy"];
/// The `reason` values of `session_sessions_revoked_total`.
pub const END_REASONS: [&str; 8] = [
    "logout",
    "replaced",
    "revoked",
    "revoke_all",
    "password_change",
    "user_disabled",
    "limit",
    "factors_changed",
];
/// The `result` values of `session_second_factors_total`.
pub const SECOND_FACTOR_RESULTS: [&str; 4] = ["ok", "wrong", "reused", "refused"];
/// The `kind` values of `session_store_errors_total`.
pub const STORE_ERROR_KINDS: [&str; 4] = ["unavailable", "full", "unconfirmed", "corrupt"];

/// What a metric is, for its documentation (the reference page is generated from this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDoc {
    /// The full name, as scraped.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub help: String,
    pub labels: Vec<String>,
}

/// All metrics of one server process.
pub struct Metrics {
    registry: Registry,
    catalogue: Vec<MetricDoc>,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub logins: IntCounterVec,
    pub second_factors: IntCounterVec,
    pub sessions_created: IntCounter,
    pub sessions_revoked: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub argon2_queue_depth: IntGauge,
    pub redis_connections: IntGauge,
    pub events_pending: IntGauge,
    pub events_dropped: IntCounter,
    pub clock_offset: Gauge,
    pub clock_synced: IntGauge,
    /// Writes that end sessions, confirmed by the required replicas (see `store::replication`).
    pub store_ends_confirmed: IntCounter,
    /// Writes that end sessions that reached Redis but were not confirmed in time (503).
    pub store_ends_unconfirmed: IntCounter,
    pub store_replicas_required: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some(NAMESPACE.into()), None).unwrap_or_default();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by listener, route, method and status",
            ),
            &["listener", "route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["listener", "route", "method"],
        )
        .expect("valid metric");
        let logins = IntCounterVec::new(
            Opts::new(
                "logins_total",
                "Login attempts (passwords and passkey sign-ins) by result: ok, failed, limited, busy",
            ),
            &["result"],
        )
        .expect("valid metric");
        let second_factors = IntCounterVec::new(
            Opts::new(
                "second_factors_total",
                "Second-factor proofs (TOTP and recovery codes, at login, step-up or enrolment) by result: ok, wrong (a wrong code), reused (a TOTP step already used), refused (the session ended, the factors changed or the enrolment expired meanwhile)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let sessions_created =
            IntCounter::new("sessions_created_total", "Sessions created").expect("valid metric");
        let sessions_revoked = IntCounterVec::new(
            Opts::new(
                "sessions_revoked_total",
                "Sessions ended before expiry, by reason: logout, replaced (a session presented at a new login), revoked, revoke_all, password_change, user_disabled, limit (evicted by the per-user cap), factors_changed (a second factor removed or reset, recovery codes regenerated)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let store_errors = IntCounterVec::new(
            Opts::new(
                "store_errors_total",
                "Requests that failed in the store, by kind: unavailable, full, unconfirmed, corrupt",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let argon2_queue_depth = IntGauge::new(
            "argon2_queue_depth",
            "Password hashes waiting for a hashing slot",
        )
        .expect("valid metric");
        let redis_connections = IntGauge::new(
            "redis_connections",
            "Open Redis connections (one per thread that uses Redis)",
        )
        .expect("valid metric");
        let events_pending = IntGauge::new(
            "events_pending",
            "Session events waiting in this replica's outbox for the store",
        )
        .expect("valid metric");
        let events_dropped = IntCounter::new(
            "events_dropped_total",
            "Session events dropped because the outbox was full",
        )
        .expect("valid metric");
        let clock_offset = Gauge::new(
            "clock_offset_seconds",
            "Redis's clock minus this host's wall clock at the last reading (the service runs on Redis's)",
        )
        .expect("valid metric");
        let clock_synced = IntGauge::new(
            "clock_synced",
            "1 once this replica runs on Redis's clock, 0 before its first reading",
        )
        .expect("valid metric");
        let store_ends_confirmed = IntCounter::new(
            "store_ends_confirmed_total",
            "Writes that end sessions, acknowledged once the required Redis replicas confirmed them",
        )
        .expect("valid metric");
        let store_ends_unconfirmed = IntCounter::new(
            "store_ends_unconfirmed_total",
            "Writes that end sessions that fewer replicas than required confirmed in time (answered 503)",
        )
        .expect("valid metric");
        let store_replicas_required = IntGauge::new(
            "store_replicas_required",
            "Redis replicas that must confirm a write that ends sessions (SESSION_REDIS_WAIT_REPLICAS)",
        )
        .expect("valid metric");
        let mut m = Metrics {
            registry,
            catalogue: Vec::new(),
            http_requests,
            http_duration,
            logins,
            second_factors,
            sessions_created,
            sessions_revoked,
            store_errors,
            argon2_queue_depth,
            redis_connections,
            events_pending,
            events_dropped,
            clock_offset,
            clock_synced,
            store_ends_confirmed,
            store_ends_unconfirmed,
            store_replicas_required,
        };
        let collectors: [(Box<dyn prometheus::core::Collector>, &'static str); 16] = [
            (Box::new(m.http_requests.clone()), "counter"),
            (Box::new(m.http_duration.clone()), "histogram"),
            (Box::new(m.logins.clone()), "counter"),
            (Box::new(m.second_factors.clone()), "counter"),
            (Box::new(m.sessions_created.clone()), "counter"),
            (Box::new(m.sessions_revoked.clone()), "counter"),
            (Box::new(m.store_errors.clone()), "counter"),
            (Box::new(m.argon2_queue_depth.clone()), "gauge"),
            (Box::new(m.redis_connections.clone()), "gauge"),
            (Box::new(m.events_pending.clone()), "gauge"),
            (Box::new(m.events_dropped.clone()), "counter"),
            (Box::new(m.clock_offset.clone()), "gauge"),
            (Box::new(m.clock_synced.clone()), "gauge"),
            (Box::new(m.store_ends_confirmed.clone()), "counter"),
            (Box::new(m.store_ends_unconfirmed.clone()), "counter"),
            (Box::new(m.store_replicas_required.clone()), "gauge"),
        ];
        for (c, kind) in collectors {
            m.catalogue
                .extend(c.desc().into_iter().map(|desc| MetricDoc {
                    name: format!("{NAMESPACE}_{}", desc.fq_name),
                    kind,
                    help: desc.help.clone(),
                    labels: desc.variable_labels.clone(),
                }));
            m.registry.register(c).expect("metric names are unique");
        }
        // Every known outcome starts at 0, so that its series exists before the first event:
        // otherwise `rate()` and `increase()` miss that first event (a series that appears at 1
        // has no earlier sample to count from) and dashboards show no data instead of 0.
        for (counter, values) in [
            (&m.logins, &LOGIN_RESULTS[..]),
            (&m.second_factors, &SECOND_FACTOR_RESULTS[..]),
            (&m.sessions_revoked, &END_REASONS[..]),
            (&m.store_errors, &STORE_ERROR_KINDS[..]),
        ] {
            for value in values {
                counter.with_label_values(&[value]);
            }
        }
        m
    }

    /// Counts `n` revocations for `reason`.
    pub fn revoked(&self, reason: &str, n: usize) {
        if n > 0 {
            self.sessions_revoked
                .with_label_values(&[reason])
                .inc_by(n as u64);
        }
    }

    /// Counts a second factor's proof by its result (see [`SECOND_FACTOR_RESULTS`]).
    pub fn second_factor(&self, result: &str) {
        self.second_factors.with_label_values(&[result]).inc();
    }

    /// Every metric this process exports, in registration order.
    pub fn catalogue(&self) -> &[MetricDoc] {
        &self.catalogue
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered metric families into a Vec does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_outcome_is_exported_at_zero_and_named_in_the_help() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for (name, label, values) in [
            ("session_logins_total", "result", &LOGIN_RESULTS[..]),
            (
                "session_second_factors_total",
                "result",
                &SECOND_FACTOR_RESULTS[..],
            ),
            ("session_sessions_revoked_total", "reason", &END_REASONS[..]),
            ("session_store_errors_total", "kind", &STORE_ERROR_KINDS[..]),
        ] {
            let help = &metrics
                .catalogue()
                .iter()
                .find(|m| m.name == name)
                .unwrap()
                .help;
            for value in values {
                assert!(
                    text.contains(&format!("{name}{{{label}=\"{value}\"}} 0\n")),
                    "{name} {value}"
                );
                assert!(help.contains(value), "{name}'s help names {value}");
            }
        }
    }
}
