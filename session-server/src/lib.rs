//! session-server: a stateful cookie-session service.
//!
//! Data flows one way: [`http`] (the edge) → [`domain`] (the rules) → [`store`] (Redis or the
//! embedded store). Nothing below imports anything above.

pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
