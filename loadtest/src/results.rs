//! What a run writes: one file per topology, rows per scenario phase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Redis work per request, from `INFO commandstats` and `INFO cpu` deltas over the phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RedisCost {
    /// All commands per request, the probe's own `INFO` calls excluded.
    pub commands_per_request: f64,
    /// Per command name (lower case), per request.
    pub by_command: BTreeMap<String, f64>,
    /// Redis CPU time (user + system) per request, microseconds.
    pub cpu_us_per_request: f64,
}

/// One measured phase of one scenario on one topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// What was measured: `session-server`, `actix-session`, ...
    pub target: String,
    /// `checks`, `storm: checks alone`, `storm: checks + logins`, `storm: logins`, `web mix`,
    /// `revocation`, `revocation: background checks`.
    pub scenario: String,
    pub replicas: u32,
    /// `haproxy` (through the load balancer) or `direct`.
    pub via: String,
    /// Requests completed in the measured window (for `revocation`: revocations).
    pub requests: u64,
    pub seconds: f64,
    pub rate: f64,
    /// Latency of the phase's requests; for `revocation`, the propagation time (from the
    /// revocation's answer to another replica's rejection of the session).
    pub latency: Latency,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Revoked (or logged out) sessions that a replica still accepted. `None`: not measured.
    pub revoked_accepted: Option<u64>,
    /// Checks of revoked sessions made (each must be refused).
    pub revoked_checks: Option<u64>,
    pub redis: Option<RedisCost>,
    /// CPU time per request by process role (`replicas`, `haproxy`, `loadtest`), microseconds.
    pub cpu_us_per_request: BTreeMap<String, f64>,
    /// Busy share of each CPU of the machine over the phase, percent.
    pub cpu_busy_pct: Vec<f64>,
    /// CPU not accounted to the measured processes during the phase, percent of one core: other
    /// processes, and kernel work (e.g. loopback packet processing) not charged to ours.
    pub other_cpu_pct: Option<f64>,
    /// Per operation (web mix): latency and count.
    pub ops: BTreeMap<String, Latency>,
    /// Offered rate for open-loop phases (requests per second), 0 for flat out.
    pub offered_rate: f64,
    pub connections: u32,
}

/// Redis memory per live session, measured while the sessions were created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    pub users: u64,
    pub sessions: u64,
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    pub bytes_per_session: f64,
    pub keys_after: u64,
    /// `MEMORY USAGE` summed by key kind (user sessions, user, username, event feed, ...), bytes.
    #[serde(default)]
    pub by_kind: BTreeMap<String, u64>,
}

/// One `loadtest run`: one topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunFile {
    pub target: String,
    pub replicas: u32,
    pub via: String,
    /// Seconds since the Unix epoch at start.
    pub started_unix: u64,
    /// The command line that produced the file.
    pub command: String,
    pub memory: Option<Memory>,
    pub rows: Vec<Row>,
    /// Scenarios skipped and why.
    pub skipped: Vec<String>,
}

impl RunFile {
    pub fn total_errors(&self) -> u64 {
        self.rows.iter().map(|r| r.errors).sum()
    }

    pub fn total_revoked_accepted(&self) -> u64 {
        self.rows.iter().filter_map(|r| r.revoked_accepted).sum()
    }
}
