//! How many Redis round trips a login and a check wait for, counted on the real server.
//!
//! The store is wrapped in a recorder (a test hook of `Application::build_with`) that notes when
//! each call starts and ends. Calls issued together (joined futures) start before any of them
//! ends; a call that starts after an earlier one ended had to wait for it. The number of such
//! sequential waves is the number of round trips the request waited for.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::{Method, header};
use session_server::{
    domain::{
        console::{ConsoleDigest, ConsoleSession},
        events::{EventPage, FeedPosition, SessionEvent},
        rate_limit::{RateCount, RateKey},
        session::{SessionLimit, SessionRecord},
        session_data::{DataWrite, SessionData},
        token::TokenDigest,
        user::{UserRecord, Username},
    },
    state::Overrides,
    store::{
        CreateOutcome, CreateUser, FactorChange, FactorOutcome, FactorUse, PendingTotp,
        ReauthOutcome, RevokeScope, Store, StoreError, StoredSession,
    },
};
use uuid::Uuid;

use crate::helpers::{RedisServer, spawn_with_overrides, test_settings};

/// A call to the store: its name and when it started and ended.
type Call = (&'static str, Instant, Instant);

struct Recorder {
    inner: Arc<dyn Store>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    async fn note<T>(&self, name: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.calls
            .lock()
            .unwrap()
            .push((name, started, Instant::now()));
        result
    }
}

#[async_trait]
impl Store for Recorder {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn create_user(&self, user: &UserRecord) -> Result<CreateUser, StoreError> {
        self.note("create_user", self.inner.create_user(user)).await
    }
    async fn user_by_name(&self, name: &Username) -> Result<Option<UserRecord>, StoreError> {
        // Two commands in sequence: the name's id, then the record.
        self.note(
            "user_by_name (2 round trips)",
            self.inner.user_by_name(name),
        )
        .await
    }
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        self.note("user_by_id", self.inner.user_by_id(id)).await
    }
    async fn replace_password_hash(
        &self,
        id: Uuid,
        expected_version: u64,
        new: &str,
        revoke: RevokeScope,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let call = self
            .inner
            .replace_password_hash(id, expected_version, new, revoke);
        self.note("replace_password_hash", call).await
    }
    async fn rehash_password(
        &self,
        id: Uuid,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let call = self.inner.rehash_password(id, expected, new);
        self.note("rehash_password", call).await
    }
    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        self.note("set_disabled", self.inner.set_disabled(id, disabled))
            .await
    }
    async fn create_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
        credential_version: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let call = self
            .inner
            .create_session(digest, record, limit, credential_version);
        self.note("create_session", call).await
    }
    async fn session(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<StoredSession>, StoreError> {
        self.note("session", self.inner.session(user, digest)).await
    }
    async fn reauthenticate_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
    ) -> Result<ReauthOutcome, StoreError> {
        let call = self
            .inner
            .reauthenticate_session(digest, record, credential_version);
        self.note("reauthenticate_session", call).await
    }
    async fn session_data(
        &self,
        user: Uuid,
        handle: Uuid,
    ) -> Result<Option<SessionData>, StoreError> {
        self.note("session_data", self.inner.session_data(user, handle))
            .await
    }
    async fn write_session_data(
        &self,
        user: Uuid,
        handle: Uuid,
        expected: u64,
        json: Option<&str>,
    ) -> Result<DataWrite, StoreError> {
        let call = self.inner.write_session_data(user, handle, expected, json);
        self.note("write_session_data", call).await
    }
    async fn touch_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        self.note("touch_session", self.inner.touch_session(digest, record))
            .await
    }
    async fn session_confirmed(
        &self,
        user: Uuid,
        digest: &TokenDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.note(
            "session_confirmed",
            self.inner.session_confirmed(user, digest),
        )
        .await
    }
    async fn revoke_session(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
    ) -> Result<bool, StoreError> {
        self.note("revoke_session", self.inner.revoke_session(digest, record))
            .await
    }
    async fn revoke_session_by_handle(&self, user: Uuid, handle: Uuid) -> Result<bool, StoreError> {
        let call = self.inner.revoke_session_by_handle(user, handle);
        self.note("revoke_session_by_handle", call).await
    }
    async fn list_sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        self.note("list_sessions", self.inner.list_sessions(user))
            .await
    }
    async fn revoke_all_sessions(
        &self,
        user: Uuid,
        except: Option<Uuid>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let call = self.inner.revoke_all_sessions(user, except);
        self.note("revoke_all_sessions", call).await
    }
    async fn hit(&self, key: &RateKey, window: Duration) -> Result<RateCount, StoreError> {
        self.note("hit", self.inner.hit(key, window)).await
    }
    async fn peek(&self, key: &RateKey) -> Result<RateCount, StoreError> {
        self.note("peek", self.inner.peek(key)).await
    }
    async fn refund(&self, key: &RateKey) -> Result<(), StoreError> {
        self.note("refund", self.inner.refund(key)).await
    }
    async fn publish(&self, event: &SessionEvent) -> Result<(), StoreError> {
        self.note("publish", self.inner.publish(event)).await
    }
    // The feed's readers and follower run beside requests, not in them: not recorded.
    async fn read_events(&self, from: &FeedPosition, max: usize) -> Result<EventPage, StoreError> {
        self.inner.read_events(from, max).await
    }
    async fn await_events(
        &self,
        after: &str,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        self.inner.await_events(after, wait).await
    }
    async fn create_console_session(
        &self,
        digest: &ConsoleDigest,
        session: &ConsoleSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.note(
            "create_console_session",
            self.inner.create_console_session(digest, session, ttl),
        )
        .await
    }
    async fn console_session(
        &self,
        digest: &ConsoleDigest,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        self.note("console_session", self.inner.console_session(digest))
            .await
    }
    async fn end_console_session(&self, digest: &ConsoleDigest) -> Result<(), StoreError> {
        self.note(
            "end_console_session",
            self.inner.end_console_session(digest),
        )
        .await
    }
    async fn begin_totp_enrollment(
        &self,
        user: Uuid,
        pending: &PendingTotp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let call = self.inner.begin_totp_enrollment(user, pending, ttl);
        self.note("begin_totp_enrollment", call).await
    }
    async fn totp_enrollment(&self, user: Uuid) -> Result<Option<PendingTotp>, StoreError> {
        self.note("totp_enrollment", self.inner.totp_enrollment(user))
            .await
    }
    async fn prove_second_factor(
        &self,
        digest: &TokenDigest,
        record: &SessionRecord,
        credential_version: u64,
        proof: &FactorUse,
    ) -> Result<FactorOutcome, StoreError> {
        let call = self
            .inner
            .prove_second_factor(digest, record, credential_version, proof);
        self.note("prove_second_factor", call).await
    }
    async fn put_ceremony(&self, id: &str, state: &str, ttl: Duration) -> Result<(), StoreError> {
        self.note("put_ceremony", self.inner.put_ceremony(id, state, ttl))
            .await
    }
    async fn take_ceremony(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.note("take_ceremony", self.inner.take_ceremony(id))
            .await
    }
    async fn claim_passkey(&self, credential: &str, user: Uuid) -> Result<bool, StoreError> {
        self.note("claim_passkey", self.inner.claim_passkey(credential, user))
            .await
    }
    async fn release_passkey(&self, credential: &str, user: Uuid) -> Result<(), StoreError> {
        self.note(
            "release_passkey",
            self.inner.release_passkey(credential, user),
        )
        .await
    }
    async fn update_passkey(
        &self,
        user: Uuid,
        credential: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let call = self.inner.update_passkey(user, credential, expected, new);
        self.note("update_passkey", call).await
    }
    async fn change_factors(
        &self,
        user: Uuid,
        credential_version: Option<u64>,
        change: &FactorChange,
        keep: Option<Uuid>,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let call = self
            .inner
            .change_factors(user, credential_version, change, keep);
        self.note("change_factors", call).await
    }
}

/// The calls in waves: a wave starts with a call that started after every call before it ended.
/// Returns the round trips waited for (a `user_by_name` counts its two) and a description.
fn round_trips(mut calls: Vec<Call>) -> (usize, String) {
    calls.sort_by_key(|c| c.1);
    let mut waves: Vec<Vec<&'static str>> = Vec::new();
    let mut wave_end: Option<Instant> = None;
    let mut extra = 0;
    for (name, started, ended) in calls {
        match wave_end {
            Some(end) if started < end => {
                waves.last_mut().unwrap().push(name);
                wave_end = Some(end.max(ended));
            }
            _ => {
                waves.push(vec![name]);
                wave_end = Some(ended);
            }
        }
        if name.starts_with("user_by_name") {
            extra += 1;
        }
    }
    let text = waves
        .iter()
        .map(|w| w.join(" + "))
        .collect::<Vec<_>>()
        .join(" -> ");
    (waves.len() + extra, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_waits_for_three_redis_round_trips_and_a_check_for_one() {
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let recorded = calls.clone();
    let overrides = Overrides {
        wrap_store: Some(Arc::new(move |inner| {
            Arc::new(Recorder {
                inner,
                calls: recorded.clone(),
            }) as Arc<dyn Store>
        })),
        ..Default::default()
    };
    let redis = RedisServer::start();
    let mut settings = test_settings();
    settings.redis_url = Some(redis.url());
    let app = spawn_with_overrides(settings, Some(redis), overrides).await;
    assert_eq!(app.register("alice", "alice-password").await.status(), 201);

    for attempt in ["first", "second"] {
        calls.lock().unwrap().clear();
        let r = app.login("alice", "alice-password").await;
        assert_eq!(r.status(), 200);
        let (trips, waves) = round_trips(std::mem::take(&mut *calls.lock().unwrap()));
        // The budgets and the name's id, the user record, then the session's creation beside
        // the reservation's release. A login that evicts a session over the per-user cap, or
        // with SESSION_FEED_LOGINS, publishes after that: a fourth.
        assert_eq!(
            waves, "hit + hit + user_by_name (2 round trips) -> create_session + refund",
            "{attempt} login"
        );
        assert_eq!(trips, 3, "{attempt} login: {waves}");
    }

    let browser = app.signed_in("alice").await;
    calls.lock().unwrap().clear();
    assert_eq!(app.whoami(&browser).await.status(), 200);
    let (trips, waves) = round_trips(std::mem::take(&mut *calls.lock().unwrap()));
    assert_eq!((trips, waves.as_str()), (1, "session"));

    // With app data, the admin check reads it in that same one round trip.
    let who: serde_json::Value = app.whoami(&browser).await.json().await.unwrap();
    let path = format!(
        "/admin/v1/users/{}/sessions/{}/data",
        who["user"]["id"].as_str().unwrap(),
        who["session"]["handle"].as_str().unwrap()
    );
    let r = app
        .admin(Method::PATCH, &path)
        .header(header::CONTENT_TYPE, "application/merge-patch+json")
        .body(format!(r#"{{"flash":"{}"}}"#, "x".repeat(200)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    calls.lock().unwrap().clear();
    let check: serde_json::Value = app
        .admin(Method::POST, "/admin/v1/sessions/check")
        .json(&serde_json::json!({"cookie": browser.cookie}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["data"]["flash"].as_str().map(str::len), Some(200));
    let (trips, waves) = round_trips(std::mem::take(&mut *calls.lock().unwrap()));
    assert_eq!((trips, waves.as_str()), (1, "session"));
}
