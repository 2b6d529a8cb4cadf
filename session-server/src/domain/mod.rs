//! The rules of the service, free of HTTP and of any particular store.

pub mod accounts;
pub mod assurance;
pub mod clock;
pub mod console;
pub mod error;
pub mod events;
pub mod factors;
pub mod feed_watch;
pub mod mfa;
pub mod password;
pub mod publisher;
pub mod rate_limit;
pub mod record;
pub mod session;
pub mod session_data;
pub mod sessions;
pub mod token;
pub mod user;
pub mod user_agent;
