//! session-server: a stateful cookie-session service.
//!
//! Data flows one way: [`http`] (the edge) → [`domain`] (the rules) → [`store`] (Redis or the
//! embedded store). Nothing below imports anything above. [`config`] sits over all three: it
//! builds each part's settings, in types that part defines where it lies below ([`store`]'s
//! `RedisConfig`, the cookie's `CookieConfig`).

pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
