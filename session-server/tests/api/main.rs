//! Black-box tests: the real server over HTTP, against the embedded store and against a real
//! `redis-server` started by the harness.

mod deployments;
mod failover;
mod faults;
mod ha;
mod helpers;
mod links;

mod account;
mod admin;
mod checker;
mod cli;
mod clock_skew;
mod conformance;
mod console;
mod contract;
mod dashboard;
mod docs;
mod factors;
mod forward_auth;
mod login;
mod operations;
mod passkeys;
mod races;
mod redis_only;
mod round_trips;
mod session_features;
mod sessions;
mod shutdown;
mod soak;
mod traces;
