//! Replica confirmation of the writes that end sessions.
//!
//! An acknowledged logout must survive the loss of the Redis node that applied it. Redis
//! replicates asynchronously, so the store asks for proof: the script of an end and a `WAIT` are
//! sent together, pipelined on one connection, and the end is acknowledged only when `WAIT`
//! reports enough replicas at that connection's replication offset. Otherwise the request
//! answers 503 (`store_unconfirmed`) and its event still goes to the feed (`domain::publisher`);
//! a retry converges, because every end is idempotent.
//!
//! Why a `WAIT` here never confirms a write it did not follow:
//! * `WAIT` confirms the last write *of its connection*. The script and its `WAIT` are one
//!   pipeline on one connection to one node. On Cluster the redis crate routes a pipeline by its
//!   first keyed command (the script) and retries a redirected pipeline (`MOVED`, `ASK`) whole,
//!   so the `WAIT` always runs on the node that ran the script, after it.
//! * A script that changed nothing (its session already gone, ended by another connection whose
//!   own end is not yet on a replica) would leave the connection's offset where it was, and
//!   `WAIT` would confirm an older write. Every confirmed script therefore starts with a barrier
//!   (`barrier` in `lua/lib.lua`): a key of the user's slot written and deleted again, which
//!   moves the offset past everything the script read.
//! * A `WAIT` whose script failed (`OOM`, a redirect that ran out of retries) counts for
//!   nothing: the request fails. The script goes by its digest (`EVALSHA`); a node that does not
//!   have it cached (restarted, newly promoted) answers `NOSCRIPT` without running anything, and
//!   the pipeline is sent again with the script's text (`EVAL`), under a timeout of its own.
//!
//! Which writes wait, and why (see the book, docs/src/operations/failover.md): every write that ends sessions
//! or changes what a credential can do (logout, revocations, password change and set, disable
//! and enable, a login that evicted sessions, and the feed events of ends). Logins, renewals,
//! re-authentications and session data do not: losing one in a failover costs a re-login, a
//! shorter session, a repeated password prompt or the last data write, never a session that was
//! ended coming back; waiting would make every login pay a round trip to a replica and fail
//! while a replica is away.

use std::{
    str::FromStr,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// While Redis reports no replica, it is asked again at most this often (an added replica is
/// taken into account within this time).
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How many Redis replicas must confirm a write that ends sessions before it is acknowledged
/// (`SESSION_REDIS_WAIT_REPLICAS`): `auto` or a number.
///
/// Parsed from a flag, the environment (`FromStr`) or the config file (`Deserialize`: a number
/// or a string), so the setting reads the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitReplicas {
    /// 1 wherever the topology has replicas: always with Sentinel; with Cluster or a standalone
    /// primary, once Redis reports a replica. 0 for a lone primary.
    #[default]
    Auto,
    /// Exactly this many (0: acknowledge without confirmation, which a failover can undo).
    Exactly(u32),
}

impl FromStr for WaitReplicas {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(WaitReplicas::Auto);
        }
        s.parse()
            .map(WaitReplicas::Exactly)
            .map_err(|_| format!("`{s}` is neither `auto` nor a number of replicas"))
    }
}

impl std::fmt::Display for WaitReplicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReplicas::Auto => f.write_str("auto"),
            WaitReplicas::Exactly(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for WaitReplicas {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(WaitReplicas::Exactly(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The Redis deployment the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Cluster,
    Sentinel,
}

/// How many replicas must confirm an end, and what the confirmations have been.
pub struct ReplicaPolicy {
    setting: WaitReplicas,
    topology: Topology,
    /// `auto`: a replica was seen once. From then on every end waits for one: a replica that
    /// drops out does not make the service acknowledge ends it cannot confirm.
    seen: AtomicBool,
    /// `auto`, no replica seen: when Redis may be asked again.
    next_probe: Mutex<Option<Instant>>,
    /// The last number decided, for `/readyz`.
    required: AtomicU32,
    /// The outcome of the last confirmed write (see [`Outcome`]).
    last: AtomicU8,
}

/// The outcome of a confirmed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    None = 0,
    Confirmed = 1,
    Unconfirmed = 2,
}

/// What `/readyz` reports about confirmations.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmationReport {
    /// `SESSION_REDIS_WAIT_REPLICAS`: `auto` or a number.
    pub setting: String,
    /// Replicas that must confirm an end now.
    pub replicas_required: u32,
    /// The last end that had to be confirmed: `confirmed`, `unconfirmed` (answered 503), or
    /// `none` yet.
    pub last_end: &'static str,
}

impl ReplicaPolicy {
    pub fn new(setting: WaitReplicas, topology: Topology) -> ReplicaPolicy {
        let policy = ReplicaPolicy {
            setting,
            topology,
            seen: AtomicBool::new(false),
            next_probe: Mutex::new(None),
            required: AtomicU32::new(0),
            last: AtomicU8::new(Outcome::None as u8),
        };
        if let Some(n) = policy.known() {
            policy.required.store(n, Ordering::Relaxed);
        }
        policy
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The number of replicas to wait for, when it is known without asking Redis: set by
    /// configuration, Sentinel (which implies a replica), a replica already seen, or a lone
    /// primary asked less than [`PROBE_EVERY`] ago. `None`: ask Redis, then [`Self::observe`].
    pub fn known(&self) -> Option<u32> {
        if let WaitReplicas::Exactly(n) = self.setting {
            return Some(n);
        }
        if self.topology == Topology::Sentinel || self.seen.load(Ordering::Relaxed) {
            return Some(1);
        }
        let next = *self
            .next_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        next.is_some_and(|at| Instant::now() < at).then_some(0)
    }

    /// Records how many replicas Redis reported; returns the number to wait for.
    pub fn observe(&self, replicas: u32) -> u32 {
        let required = if replicas > 0 {
            self.seen.store(true, Ordering::Relaxed);
            1
        } else {
            *self
                .next_probe
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + PROBE_EVERY);
            0
        };
        self.required.store(required, Ordering::Relaxed);
        required
    }

    /// Records the outcome of a confirmed write.
    pub fn record(&self, outcome: Outcome) {
        self.last.store(outcome as u8, Ordering::Relaxed);
    }

    pub fn report(&self) -> ConfirmationReport {
        ConfirmationReport {
            setting: self.setting.to_string(),
            replicas_required: self.required.load(Ordering::Relaxed),
            last_end: match self.last.load(Ordering::Relaxed) {
                1 => "confirmed",
                2 => "unconfirmed",
                _ => "none",
            },
        }
    }
}

/// Replicas attached to a standalone primary, from its `INFO replication`.
pub fn standalone_replicas(info: &str) -> u32 {
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Replicas in a Cluster, from `CLUSTER NODES`: every node flagged as a replica, failed ones
/// included (a replica that is away is still part of the topology, and ends must wait for it).
pub fn cluster_replicas(nodes: &str) -> u32 {
    let replicas = nodes
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(2)
                .is_some_and(|flags| flags.split(',').any(|f| f == "slave" || f == "replica"))
        })
        .count();
    u32::try_from(replicas).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_to_wait_for_are_auto_or_a_number() {
        assert_eq!("auto".parse(), Ok(WaitReplicas::Auto));
        assert_eq!(" AUTO ".parse(), Ok(WaitReplicas::Auto));
        assert_eq!("2".parse(), Ok(WaitReplicas::Exactly(2)));
        assert_eq!("0".parse(), Ok(WaitReplicas::Exactly(0)));
        for bad in ["", "-1", "one", "1.5"] {
            assert!(bad.parse::<WaitReplicas>().is_err(), "{bad:?}");
        }
        assert_eq!(WaitReplicas::Auto.to_string(), "auto");
        assert_eq!(WaitReplicas::Exactly(3).to_string(), "3");
    }

    #[test]
    fn sentinel_and_a_number_are_known_without_asking() {
        assert_eq!(
            ReplicaPolicy::new(WaitReplicas::Auto, Topology::Sentinel).known(),
            Some(1)
        );
        for topology in [Topology::Standalone, Topology::Cluster, Topology::Sentinel] {
            let fixed = ReplicaPolicy::new(WaitReplicas::Exactly(2), topology);
            assert_eq!(fixed.known(), Some(2));
            assert_eq!(fixed.report().replicas_required, 2);
        }
    }

    #[test]
    fn auto_asks_until_a_replica_is_seen_then_keeps_waiting_for_one() {
        let policy = ReplicaPolicy::new(WaitReplicas::Auto, Topology::Standalone);
        assert_eq!(policy.known(), None, "asks Redis first");
        assert_eq!(policy.observe(0), 0);
        assert_eq!(
            policy.known(),
            Some(0),
            "a lone primary, asked a moment ago"
        );
        assert_eq!(policy.observe(1), 1);
        assert_eq!(policy.known(), Some(1));
        // The replica drops out: ends keep waiting for one rather than go unconfirmed.
        assert_eq!(policy.known(), Some(1));
        assert_eq!(policy.report().replicas_required, 1);
    }

    #[test]
    fn replicas_are_counted_from_redis_replies() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=1,state=online,offset=1,lag=0\r\n";
        assert_eq!(standalone_replicas(info), 2);
        assert_eq!(
            standalone_replicas("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
            0
        );
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected
d4 127.0.0.1:7004@17004 slave,fail b2 0 0 2 connected
";
        assert_eq!(cluster_replicas(nodes), 2);
        assert_eq!(cluster_replicas(&nodes.replace("slave", "master")), 0);
    }

    #[test]
    fn the_report_names_the_last_outcome() {
        let policy = ReplicaPolicy::new(WaitReplicas::Auto, Topology::Sentinel);
        assert_eq!(policy.report().last_end, "none");
        policy.record(Outcome::Unconfirmed);
        assert_eq!(policy.report().last_end, "unconfirmed");
        policy.record(Outcome::Confirmed);
        assert_eq!(policy.report().last_end, "confirmed");
        assert_eq!(policy.report().setting, "auto");
    }
}
