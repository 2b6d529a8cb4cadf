//! The HTTP edge: parse requests, call the domain, shape responses. Errors become HTTP only in
//! `error.rs`.

pub mod admin;
pub mod body;
pub mod check_body;
pub mod client_ip;
pub mod console;
pub mod cookie;
pub mod credentials;
pub mod csrf;
pub mod device;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod origin;
pub mod public;
pub mod redirect;
pub mod schema;
pub mod views;
