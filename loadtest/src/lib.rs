//! Load generator for session-server and for services speaking the same session contract.
//!
//! `loadtest run` drives one topology (a load balancer over replicas, or one server) through the
//! scenarios and writes one JSON file of result rows; `loadtest report` turns the files of a run
//! into a Markdown table and an SVG chart. `loadtest/harness.sh` starts the topologies.

pub mod api;
pub mod probe;
pub mod progress;
pub mod report;
pub mod results;
pub mod scenarios;
pub mod stats;

/// Errors of the tool: reported with their message, never recovered from.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;
