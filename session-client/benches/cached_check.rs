//! Cost of a `check` answered from the cache (criterion): the client's own work per call once a
//! session is cached and the event feed is alive. Needs redis-server (the session service runs
//! in-process on it).
//!
//!     cargo bench -p session-client --bench cached_check

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use session_client::{CacheSettings, SessionClient};

fn cached_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_server, client, cookie) = rt.block_on(async {
        let server = support::server().await;
        let cookie = server.sign_in("alice").await;
        let client = SessionClient::builder(&server.admin, support::KEY)
            .cache(CacheSettings::default())
            .build()
            .unwrap();
        for _ in 0..500 {
            client.check(&cookie).await.unwrap().unwrap();
            if client.is_cached(&cookie) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(client.is_cached(&cookie), "the session got cached");
        (server, client, cookie)
    });
    c.bench_function("check, answered from the cache", |b| {
        b.to_async(&rt).iter(|| async {
            client.check(&cookie).await.unwrap().unwrap();
        })
    });
}

criterion_group!(benches, cached_check);
criterion_main!(benches);
