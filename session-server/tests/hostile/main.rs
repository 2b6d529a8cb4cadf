//! Hostile input: property tests of every parser and codec, the fuzz oracles under proptest, a
//! table of bad requests against the real server over raw HTTP, and security properties (token
//! entropy, no user enumeration by status, body or time, no secrets in logs, metrics or errors).
//!
//! Run with `cargo test -p session-server --test hostile`. Everything talks to the real server
//! over loopback, against the embedded store and a private `redis-server`.

/// Runs an async test body on the embedded store and on a private standalone `redis-server`.
#[macro_export]
macro_rules! memory_and_redis {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::helpers::Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::helpers::Backend::Redis).await;
            }
        }
    };
}

#[allow(dead_code)]
#[path = "../api/deployments.rs"]
mod deployments;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

/// The fuzz targets' oracles (`fuzz/src/lib.rs`), shared so that proptest checks them too.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod oracles;

mod bad_requests;
mod console;
mod enumeration;
mod fuzz_props;
mod hashing;
mod logs;
mod props;
mod raw;
mod tokens;
