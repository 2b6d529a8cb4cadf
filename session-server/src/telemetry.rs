//! Logging: a tracing subscriber writing text or JSON lines to stdout.
//!
//! Audit events are ordinary events with target `audit` (filter them with
//! `SESSION_LOG=audit=info`). They carry user ids and session handles, never tokens, passwords or
//! password hashes: those types do not print their secrets even through `Debug`.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber (a no-op if one is already installed, as in tests).
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
