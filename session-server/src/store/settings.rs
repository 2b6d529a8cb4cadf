//! What the Redis store is given at start: where the deployment is, and how to behave on it.
//!
//! Defined here, by the store that consumes it, so that the store depends on nothing above it;
//! `config` builds a [`RedisConfig`] from the settings and validates it there.

use std::time::Duration;

use secrecy::SecretString;

use super::replication::WaitReplicas;

/// How the Redis deployment is reached. URLs may carry passwords, so they are never printed.
#[derive(Debug, Clone)]
pub enum RedisMode {
    Standalone {
        url: SecretString,
    },
    Cluster {
        nodes: Vec<SecretString>,
    },
    Sentinel {
        sentinels: Vec<SecretString>,
        master: String,
    },
}

/// Connection settings for the Redis store.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub mode: RedisMode,
    /// Replicas that must confirm the writes that end sessions (see `replication.rs`).
    pub wait_replicas: WaitReplicas,
    pub timeout: Duration,
    pub prefix: String,
}
