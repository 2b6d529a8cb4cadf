//! The store conformance suite: the same behaviour from the embedded store and from Redis,
//! exercised through the `Store` trait.

use std::{sync::Arc, time::Duration};

use session_server::{
    config::{RedisConfig, RedisMode, WaitReplicas},
    domain::{
        assurance::SecondFactor,
        clock::Clock,
        rate_limit::RateKey,
        session::{ClientInfo, LimitPolicy, SessionLimit, SessionPolicy, SessionRecord},
        session_data::{DataWrite, SessionData},
        token::SessionToken,
        user::{UserRecord, Username},
    },
    store::{
        CreateOutcome, CreateUser, FactorChange, FactorOutcome, FactorUse, PendingTotp,
        ReauthOutcome, RevokeScope, Store, StoredSession, memory::MemoryStore, redis::RedisStore,
    },
};
use uuid::Uuid;

use secrecy::SecretString;

use crate::{
    deployments::{Cluster, MASTER, SentinelGroup},
    helpers::{Backend, RedisServer, unique_prefix},
};

struct Fixture {
    store: Arc<dyn Store>,
    redis: Option<Arc<RedisServer>>,
}

fn redis_config(mode: RedisMode, prefix: String) -> RedisConfig {
    RedisConfig {
        mode,
        // The default: on Cluster and Sentinel, ends go through the confirmed pipeline.
        wait_replicas: WaitReplicas::Auto,
        timeout: Duration::from_secs(2),
        prefix,
    }
}

fn fixture(backend: Backend) -> Fixture {
    let urls = |list: String| -> Vec<SecretString> {
        list.split(',')
            .map(|u| SecretString::from(u.to_owned()))
            .collect()
    };
    let (config, redis) = match backend {
        Backend::Memory => {
            return Fixture {
                store: Arc::new(MemoryStore::new()),
                redis: None,
            };
        }
        Backend::Redis => {
            let redis = RedisServer::start();
            let mode = RedisMode::Standalone {
                url: redis.url().into(),
            };
            (redis_config(mode, "sess".into()), Some(redis))
        }
        Backend::Cluster => {
            let mode = RedisMode::Cluster {
                nodes: urls(Cluster::shared().urls()),
            };
            (redis_config(mode, unique_prefix()), None)
        }
        Backend::Sentinel => {
            let mode = RedisMode::Sentinel {
                sentinels: urls(SentinelGroup::shared().urls()),
                master: MASTER.into(),
            };
            (redis_config(mode, unique_prefix()), None)
        }
    };
    Fixture {
        store: Arc::new(RedisStore::new(&config).unwrap()),
        redis,
    }
}

const POLICY: SessionPolicy = SessionPolicy {
    idle: Duration::from_secs(600),
    absolute: Duration::from_secs(3600),
    remember_idle: Duration::from_secs(600),
    remember_absolute: Duration::from_secs(7200),
    renew_fraction: 0.1,
};

/// The record a check reads, without app data.
fn plain(record: &SessionRecord) -> StoredSession {
    StoredSession {
        record: record.clone(),
        data: SessionData::default(),
    }
}

/// This host's wall clock, as the records a replica writes would carry.
fn now_ms() -> u64 {
    Clock::system().wall_ms()
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        id: Uuid::now_v7(),
        username: Username::parse(name).unwrap(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        disabled: false,
        created_ms: now_ms(),
        credential_version: 0,
        factors: Default::default(),
    }
}

async fn new_session(store: &dyn Store, user: &UserRecord) -> (SessionToken, SessionRecord) {
    let token = SessionToken::generate(user.id);
    let record = POLICY.new_record(
        user.id,
        user.username.as_str(),
        &ClientInfo::default(),
        now_ms(),
    );
    let outcome = store
        .create_session(&token.digest(), &record, None, user.credential_version)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
    (token, record)
}

async fn users_are_unique_by_name(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    assert_eq!(
        f.store.create_user(&alice).await.unwrap(),
        CreateUser::Created
    );
    let again = user("alice");
    assert_eq!(
        f.store.create_user(&again).await.unwrap(),
        CreateUser::UsernameTaken
    );
    let found = f
        .store
        .user_by_name(&alice.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, alice);
    assert_eq!(f.store.user_by_id(alice.id).await.unwrap(), Some(alice));
    assert_eq!(f.store.user_by_id(again.id).await.unwrap(), None);
}
crate::each_backend!(users_are_unique_by_name);

async fn sessions_round_trip_and_revoke(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    let digest = token.digest();
    assert_eq!(
        f.store.session(alice.id, &digest).await.unwrap(),
        Some(plain(&record))
    );
    assert_eq!(
        f.store.list_sessions(alice.id).await.unwrap(),
        vec![record.clone()]
    );
    assert!(f.store.revoke_session(&digest, &record).await.unwrap());
    assert_eq!(f.store.session(alice.id, &digest).await.unwrap(), None);
    assert!(!f.store.revoke_session(&digest, &record).await.unwrap());
    assert!(f.store.list_sessions(alice.id).await.unwrap().is_empty());
}
crate::each_backend!(sessions_round_trip_and_revoke);

async fn a_touch_never_revives_a_revoked_session(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    let renewed = POLICY.renewed(&record, now_ms() + 1000);
    assert!(
        f.store
            .touch_session(&token.digest(), &renewed)
            .await
            .unwrap()
    );
    assert_eq!(
        f.store.session(alice.id, &token.digest()).await.unwrap(),
        Some(plain(&renewed))
    );
    f.store.revoke_all_sessions(alice.id, None).await.unwrap();
    assert!(
        !f.store
            .touch_session(&token.digest(), &renewed)
            .await
            .unwrap()
    );
    assert_eq!(
        f.store.session(alice.id, &token.digest()).await.unwrap(),
        None
    );
}
crate::each_backend!(a_touch_never_revives_a_revoked_session);

async fn sessions_are_refused_for_unknown_and_disabled_users(backend: Backend) {
    let f = fixture(backend);
    let ghost = user("ghost");
    let token = SessionToken::generate(ghost.id);
    let record = POLICY.new_record(ghost.id, "ghost", &ClientInfo::default(), now_ms());
    let outcome = f
        .store
        .create_session(&token.digest(), &record, None, 0)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::UserUnavailable);

    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (t1, _) = new_session(&*f.store, &alice).await;
    let ended = f.store.set_disabled(alice.id, true).await.unwrap().unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(f.store.session(alice.id, &t1.digest()).await.unwrap(), None);
    let record = POLICY.new_record(alice.id, "alice", &ClientInfo::default(), now_ms());
    // At the current credential version: refused because the user is disabled.
    let version = f
        .store
        .user_by_id(alice.id)
        .await
        .unwrap()
        .unwrap()
        .credential_version;
    let outcome = f
        .store
        .create_session(
            &SessionToken::generate(alice.id).digest(),
            &record,
            None,
            version,
        )
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::UserUnavailable);
    assert_eq!(
        f.store.set_disabled(Uuid::now_v7(), true).await.unwrap(),
        None
    );
}
crate::each_backend!(sessions_are_refused_for_unknown_and_disabled_users);

async fn revoke_all_keeps_only_the_named_session(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (keep, keep_record) = new_session(&*f.store, &alice).await;
    let (other, other_record) = new_session(&*f.store, &alice).await;
    let ended = f
        .store
        .revoke_all_sessions(alice.id, Some(keep_record.handle))
        .await
        .unwrap();
    assert_eq!(ended, vec![other_record.handle]);
    assert!(
        f.store
            .session(alice.id, &keep.digest())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .session(alice.id, &other.digest())
            .await
            .unwrap()
            .is_none()
    );
}
crate::each_backend!(revoke_all_keeps_only_the_named_session);

async fn revoke_by_handle_only_touches_that_users_session(backend: Backend) {
    let f = fixture(backend);
    let (alice, bob) = (user("alice"), user("bob"));
    f.store.create_user(&alice).await.unwrap();
    f.store.create_user(&bob).await.unwrap();
    let (_, a) = new_session(&*f.store, &alice).await;
    let (bob_token, _) = new_session(&*f.store, &bob).await;
    assert!(
        !f.store
            .revoke_session_by_handle(bob.id, a.handle)
            .await
            .unwrap()
    );
    assert!(
        f.store
            .revoke_session_by_handle(alice.id, a.handle)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .revoke_session_by_handle(alice.id, a.handle)
            .await
            .unwrap()
    );
    assert!(
        f.store
            .session(bob.id, &bob_token.digest())
            .await
            .unwrap()
            .is_some()
    );
}
crate::each_backend!(revoke_by_handle_only_touches_that_users_session);

async fn password_replacement_is_compare_and_set(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (keep, keep_record) = new_session(&*f.store, &alice).await;
    let (other, _) = new_session(&*f.store, &alice).await;
    let stale = f
        .store
        .replace_password_hash(alice.id, 99, "new", RevokeScope::All)
        .await
        .unwrap();
    assert_eq!(stale, None);
    let ended = f
        .store
        .replace_password_hash(
            alice.id,
            alice.credential_version,
            "new-hash",
            RevokeScope::AllExcept(keep_record.handle),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        f.store
            .user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
    assert!(
        f.store
            .session(alice.id, &keep.digest())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .session(alice.id, &other.digest())
            .await
            .unwrap()
            .is_none()
    );
}
crate::each_backend!(password_replacement_is_compare_and_set);

async fn the_session_cap_evicts_or_refuses(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let evict = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::EvictOldest,
    });
    let mut records = Vec::new();
    for i in 0..3u64 {
        let token = SessionToken::generate(alice.id);
        // Later sessions expire later, so the first is the least recently active.
        let record =
            POLICY.new_record(alice.id, "alice", &ClientInfo::default(), now_ms() + i * 10);
        let outcome = f
            .store
            .create_session(&token.digest(), &record, evict, 0)
            .await
            .unwrap();
        let expected = if i < 2 { vec![] } else { vec![records[0]] };
        assert_eq!(outcome, CreateOutcome::Created { evicted: expected });
        records.push(record.handle);
    }
    assert_eq!(f.store.list_sessions(alice.id).await.unwrap().len(), 2);
    let refuse = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::Refuse,
    });
    let record = POLICY.new_record(alice.id, "alice", &ClientInfo::default(), now_ms());
    let outcome = f
        .store
        .create_session(
            &SessionToken::generate(alice.id).digest(),
            &record,
            refuse,
            0,
        )
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::LimitReached);
    assert_eq!(f.store.list_sessions(alice.id).await.unwrap().len(), 2);
}
crate::each_backend!(the_session_cap_evicts_or_refuses);

async fn expired_sessions_leave_nothing_behind(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let short = SessionPolicy {
        idle: Duration::from_millis(150),
        ..POLICY
    };
    let token = SessionToken::generate(alice.id);
    let record = short.new_record(alice.id, "alice", &ClientInfo::default(), now_ms());
    f.store
        .create_session(&token.digest(), &record, None, 0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        f.store.session(alice.id, &token.digest()).await.unwrap(),
        None
    );
    assert!(f.store.list_sessions(alice.id).await.unwrap().is_empty());
    if let Some(redis) = &f.redis {
        // Only the user record is left: every session-related key expired or was pruned.
        let keys = redis.keys();
        assert!(
            keys.iter()
                .all(|k| k.ends_with(":user") || k.contains(":name:")),
            "{keys:?}"
        );
    }
}
crate::each_backend!(expired_sessions_leave_nothing_behind);

async fn an_expired_session_among_live_ones_is_gone_for_every_operation(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let short = SessionPolicy {
        idle: Duration::from_millis(150),
        ..POLICY
    };
    let token = SessionToken::generate(alice.id);
    let record = short.new_record(alice.id, "alice", &ClientInfo::default(), now_ms());
    f.store
        .create_session(&token.digest(), &record, None, 0)
        .await
        .unwrap();
    let (live_token, live) = new_session(&*f.store, &alice).await;
    tokio::time::sleep(Duration::from_millis(250)).await;

    assert_eq!(
        f.store.list_sessions(alice.id).await.unwrap(),
        vec![live.clone()]
    );
    let renewed = short.renewed(&record, now_ms());
    assert!(
        !f.store
            .touch_session(&token.digest(), &renewed)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .revoke_session_by_handle(alice.id, record.handle)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .revoke_session(&token.digest(), &record)
            .await
            .unwrap()
    );
    if let Some(redis) = &f.redis {
        // Pruned from the user's hash, which lives on with the other session.
        let key = format!("sess:{{{}}}:sessions", alice.id.simple());
        assert_eq!(redis.integer(&["HLEN", &key]), 1);
        assert!(redis.integer(&["PTTL", &key]) > 500_000);
    }
    assert_eq!(
        f.store
            .session(alice.id, &live_token.digest())
            .await
            .unwrap(),
        Some(plain(&live))
    );
}
crate::each_backend!(an_expired_session_among_live_ones_is_gone_for_every_operation);

async fn throttle_counters_count_within_a_window(backend: Backend) {
    let f = fixture(backend);
    let key = RateKey::ip_attempts("192.0.2.7".parse().unwrap(), 64);
    for expected in 1..=3 {
        let c = f.store.hit(&key, Duration::from_millis(300)).await.unwrap();
        assert_eq!(c.count, expected);
        assert!(c.resets_in <= Duration::from_millis(300) && !c.resets_in.is_zero());
    }
    assert_eq!(f.store.peek(&key).await.unwrap().count, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(f.store.peek(&key).await.unwrap().count, 0);
    assert_eq!(
        f.store
            .hit(&key, Duration::from_secs(5))
            .await
            .unwrap()
            .count,
        1
    );
    // Giving back the one hit leaves nothing counted.
    f.store.refund(&key).await.unwrap();
    assert_eq!(f.store.peek(&key).await.unwrap().count, 0);
}
crate::each_backend!(throttle_counters_count_within_a_window);

async fn the_event_feed_replays_from_a_position_and_reports_lost_ones(backend: Backend) {
    use session_server::domain::events::{EventKind, FeedPosition, SessionEvent};
    let f = fixture(backend);
    let user = Uuid::now_v7();
    let start = f
        .store
        .read_events(&FeedPosition::Latest, 10)
        .await
        .unwrap();
    assert!(!start.reset);
    for kind in [EventKind::Login, EventKind::Revoked, EventKind::RevokedAll] {
        let event = SessionEvent {
            all: kind == EventKind::RevokedAll,
            kind,
            user_id: user,
            handles: vec![Uuid::new_v4()],
            kept: None,
            at_ms: now_ms(),
            by: None,
        };
        f.store.publish(&event).await.unwrap();
    }
    let all = f
        .store
        .read_events(&FeedPosition::After(start.last_id.clone()), 10)
        .await
        .unwrap();
    assert!(!all.reset);
    let kinds: Vec<_> = all.events.iter().map(|(_, e)| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [EventKind::Login, EventKind::Revoked, EventKind::RevokedAll]
    );
    assert!(
        all.events
            .iter()
            .all(|(_, e)| e.user_id == user && e.handles.len() == 1)
    );
    assert!(all.events[2].1.all);

    let rest = f
        .store
        .read_events(&FeedPosition::After(all.events[0].0.clone()), 10)
        .await
        .unwrap();
    assert_eq!(rest.events.len(), 2);
    let page = f
        .store
        .read_events(&FeedPosition::After(all.events[0].0.clone()), 1)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.last_id, all.events[1].0);
    let nothing = f
        .store
        .read_events(&FeedPosition::After(all.last_id.clone()), 10)
        .await
        .unwrap();
    assert!(nothing.events.is_empty() && !nothing.reset);
    assert_eq!(nothing.last_id, all.last_id);
    // A position beyond the feed's end (as after a restart that lost the feed) is gone.
    let ahead = f
        .store
        .read_events(&FeedPosition::After("99999999999999-0".into()), 10)
        .await
        .unwrap();
    assert!(ahead.reset);

    if let Some(redis) = &f.redis {
        // Trimmed past the position: gone too.
        redis
            .command(&["XTRIM", "sess:events", "MAXLEN", "0"])
            .unwrap();
        let trimmed = f
            .store
            .read_events(&FeedPosition::After(all.events[0].0.clone()), 10)
            .await
            .unwrap();
        assert!(trimmed.reset);
        assert!(
            redis.integer(&["PTTL", "sess:events"]) > 0,
            "the feed expires when idle"
        );
    }
}
crate::each_backend!(the_event_feed_replays_from_a_position_and_reports_lost_ones);

async fn a_renewal_never_undoes_a_reauthentication_that_raced_it(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    let digest = token.digest();
    // A check read the record and will renew it; meanwhile the user re-authenticates.
    let renewal = POLICY.renewed(&record, now_ms() + 5_000);
    let proved = SessionPolicy::reauthenticated(&record, record.created_ms + 7_000);
    assert_eq!(
        f.store
            .reauthenticate_session(&digest, &proved, 0)
            .await
            .unwrap(),
        ReauthOutcome::Recorded
    );
    assert!(f.store.touch_session(&digest, &renewal).await.unwrap());
    let stored = f.store.session(alice.id, &digest).await.unwrap().unwrap();
    assert_eq!(stored.record.authenticated_ms, record.created_ms + 7_000);
    assert_eq!(stored.record.idle_expires_ms, renewal.idle_expires_ms);
    // The other order: the re-authentication keeps the renewal.
    let later = SessionPolicy::reauthenticated(&stored.record, record.created_ms + 9_000);
    f.store
        .reauthenticate_session(&digest, &later, 0)
        .await
        .unwrap();
    let stored = f.store.session(alice.id, &digest).await.unwrap().unwrap();
    assert_eq!(stored.record.idle_expires_ms, renewal.idle_expires_ms);
    assert_eq!(stored.record.authenticated_ms, record.created_ms + 9_000);
}
crate::each_backend!(a_renewal_never_undoes_a_reauthentication_that_raced_it);

async fn a_reauthentication_verified_before_a_credential_change_is_refused(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    // The password changes (this session kept) between the proof and its recording.
    f.store
        .replace_password_hash(
            alice.id,
            0,
            "$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3",
            RevokeScope::AllExcept(record.handle),
        )
        .await
        .unwrap()
        .unwrap();
    let proved = SessionPolicy::reauthenticated(&record, record.created_ms + 3_000);
    assert_eq!(
        f.store
            .reauthenticate_session(&token.digest(), &proved, 0)
            .await
            .unwrap(),
        ReauthOutcome::UserUnavailable
    );
    assert_eq!(
        f.store
            .reauthenticate_session(&token.digest(), &proved, 1)
            .await
            .unwrap(),
        ReauthOutcome::Recorded
    );
    f.store.revoke_all_sessions(alice.id, None).await.unwrap();
    assert_eq!(
        f.store
            .reauthenticate_session(&token.digest(), &proved, 1)
            .await
            .unwrap(),
        ReauthOutcome::SessionGone
    );
}
crate::each_backend!(a_reauthentication_verified_before_a_credential_change_is_refused);

async fn session_data_is_compare_and_set_and_ends_with_its_session_by_every_path(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(new_session(&*f.store, &alice).await);
    }
    for (_, record) in &sessions {
        let none = f.store.session_data(alice.id, record.handle).await.unwrap();
        assert_eq!(none, Some(SessionData::default()));
        assert_eq!(
            f.store
                .write_session_data(alice.id, record.handle, 0, Some(r#"{"n":1}"#))
                .await
                .unwrap(),
            DataWrite::Written(1)
        );
    }
    let (token, first) = &sessions[0];
    // A write from a stale version changes nothing and says what is there.
    match f
        .store
        .write_session_data(alice.id, first.handle, 0, Some(r#"{"n":2}"#))
        .await
        .unwrap()
    {
        DataWrite::Conflict(now) => {
            assert_eq!(now.version, 1);
            assert_eq!(now.json.as_deref(), Some(r#"{"n":1}"#));
        }
        other => panic!("{other:?}"),
    }
    // Read with the session in one step.
    let stored = f
        .store
        .session(alice.id, &token.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data.version, 1);
    // Renewals leave it alone.
    let renewed = POLICY.renewed(first, now_ms() + 1_000);
    assert!(
        f.store
            .touch_session(&token.digest(), &renewed)
            .await
            .unwrap()
    );
    assert_eq!(
        f.store
            .session_data(alice.id, first.handle)
            .await
            .unwrap()
            .map(|d| d.version),
        Some(1)
    );
    // Ended by digest, by handle, and all but one: each takes its data along.
    assert!(
        f.store
            .revoke_session(&token.digest(), first)
            .await
            .unwrap()
    );
    assert!(
        f.store
            .revoke_session_by_handle(alice.id, sessions[1].1.handle)
            .await
            .unwrap()
    );
    f.store
        .revoke_all_sessions(alice.id, Some(sessions[3].1.handle))
        .await
        .unwrap();
    for (_, record) in &sessions[..3] {
        assert_eq!(
            f.store.session_data(alice.id, record.handle).await.unwrap(),
            None
        );
        assert_eq!(
            f.store
                .write_session_data(alice.id, record.handle, 1, None)
                .await
                .unwrap(),
            DataWrite::Gone
        );
    }
    assert_eq!(
        f.store
            .session_data(alice.id, sessions[3].1.handle)
            .await
            .unwrap()
            .map(|d| d.version),
        Some(1)
    );
    if let Some(redis) = &f.redis {
        // The survivor's session and data fields, nothing else.
        let key = format!("sess:{{{}}}:sessions", alice.id.simple());
        assert_eq!(redis.integer(&["HLEN", &key]), 2);
    }
}
crate::each_backend!(session_data_is_compare_and_set_and_ends_with_its_session_by_every_path);

/// A TOTP enrolment pending for `record`'s session, with a stand-in sealed secret.
async fn pending_totp(store: &dyn Store, user: &UserRecord, record: &SessionRecord) -> PendingTotp {
    let pending = PendingTotp {
        session: record.handle,
        sealed: vec![7; 49],
    };
    store
        .begin_totp_enrollment(user.id, &pending, Duration::from_secs(60))
        .await
        .unwrap();
    pending
}

async fn a_factor_proof_and_a_renewal_racing_it_keep_both(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    let (other_token, other) = new_session(&*f.store, &alice).await;
    let digest = token.digest();
    // A check read the record and will renew it; meanwhile the user enrols TOTP in the session.
    let renewal = POLICY.renewed(&record, now_ms() + 5_000);
    let pending = pending_totp(&*f.store, &alice, &record).await;
    let proved = SessionRecord {
        factor_enrolled: true,
        ..record.with_second_factor(SecondFactor::Totp, record.created_ms + 3_000)
    };
    let enroll = FactorUse::EnrollTotp {
        pending: pending.clone(),
        step: 100,
        enrolled_ms: now_ms(),
    };
    assert_eq!(
        f.store
            .prove_second_factor(&digest, &proved, 0, &enroll)
            .await
            .unwrap(),
        FactorOutcome::Recorded {
            recovery_codes_left: 0
        }
    );
    assert!(f.store.touch_session(&digest, &renewal).await.unwrap());
    let stored = f.store.session(alice.id, &digest).await.unwrap().unwrap();
    assert_eq!(stored.record.second_factor, proved.second_factor);
    assert!(stored.record.factor_enrolled);
    assert_eq!(stored.record.idle_expires_ms, renewal.idle_expires_ms);
    // The enrolment marked the user's other session, and raised the credential version.
    let other_stored = f
        .store
        .session(alice.id, &other_token.digest())
        .await
        .unwrap()
        .unwrap();
    assert!(other_stored.record.factor_enrolled);
    assert_eq!(other_stored.record.second_factor, None);
    let stored_user = f.store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored_user.credential_version, 1);
    let totp = stored_user.factors.totp.expect("TOTP enrolled");
    assert_eq!((totp.sealed, totp.last_step), (pending.sealed.clone(), 100));
    // The enrolment is used up.
    assert_eq!(f.store.totp_enrollment(alice.id).await.unwrap(), None);
    assert_eq!(
        f.store
            .prove_second_factor(&digest, &proved, 1, &enroll)
            .await
            .unwrap(),
        FactorOutcome::EnrollmentGone
    );
    // A step-up of the other session with a later code; the same step again is a replay, in
    // either session.
    let totp_use = |step| FactorUse::Totp {
        step,
        sealed: pending.sealed.clone(),
        resealed: None,
    };
    let other_proved = other.with_second_factor(SecondFactor::Totp, other.created_ms + 1_000);
    for (step, expected) in [
        (100, FactorOutcome::Replayed),
        (
            101,
            FactorOutcome::Recorded {
                recovery_codes_left: 0,
            },
        ),
        (101, FactorOutcome::Replayed),
    ] {
        assert_eq!(
            f.store
                .prove_second_factor(&other_token.digest(), &other_proved, 1, &totp_use(step))
                .await
                .unwrap(),
            expected,
            "step {step}"
        );
    }
    // A proof checked against an older credential version is refused, whatever it is.
    assert_eq!(
        f.store
            .prove_second_factor(&digest, &proved, 0, &totp_use(102))
            .await
            .unwrap(),
        FactorOutcome::UserUnavailable
    );
}
crate::each_backend!(a_factor_proof_and_a_renewal_racing_it_keep_both);

async fn recovery_codes_are_used_once_and_factor_changes_end_other_sessions(backend: Backend) {
    let f = fixture(backend);
    let alice = user("alice");
    f.store.create_user(&alice).await.unwrap();
    let (token, record) = new_session(&*f.store, &alice).await;
    let pending = pending_totp(&*f.store, &alice, &record).await;
    let enrolled = SessionRecord {
        factor_enrolled: true,
        ..record.with_second_factor(SecondFactor::Totp, record.created_ms)
    };
    let enroll = FactorUse::EnrollTotp {
        pending,
        step: 1,
        enrolled_ms: now_ms(),
    };
    f.store
        .prove_second_factor(&token.digest(), &enrolled, 0, &enroll)
        .await
        .unwrap();
    let codes: Vec<[u8; 16]> = (1..=10).map(|i| [i; 16]).collect();
    // The enrolment raised the credential version: logins verify against the new one.
    let alice = f.store.user_by_id(alice.id).await.unwrap().unwrap();
    let (pending_token, pending_login) = new_session(&*f.store, &alice).await;
    // Setting codes ends the user's other sessions, and needs the version read.
    assert_eq!(
        f.store
            .change_factors(
                alice.id,
                Some(0),
                &FactorChange::SetRecoveryCodes(codes.clone()),
                Some(record.handle)
            )
            .await
            .unwrap(),
        None
    );
    let ended = f
        .store
        .change_factors(
            alice.id,
            Some(1),
            &FactorChange::SetRecoveryCodes(codes.clone()),
            Some(record.handle),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, vec![pending_login.handle]);
    assert!(
        f.store
            .session(alice.id, &pending_token.digest())
            .await
            .unwrap()
            .is_none()
    );
    let alice = f.store.user_by_id(alice.id).await.unwrap().unwrap();
    let (login_token, login) = new_session(&*f.store, &alice).await;
    let proved = login.with_second_factor(SecondFactor::RecoveryCode, login.created_ms);
    let code = FactorUse::RecoveryCode(codes[3]);
    assert_eq!(
        f.store
            .prove_second_factor(&login_token.digest(), &proved, 2, &code)
            .await
            .unwrap(),
        FactorOutcome::Recorded {
            recovery_codes_left: 9
        }
    );
    assert_eq!(
        f.store
            .prove_second_factor(&login_token.digest(), &proved, 2, &code)
            .await
            .unwrap(),
        FactorOutcome::WrongCode
    );
    let stored = f.store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.factors.recovery_codes.len(), 9);
    assert!(!stored.factors.recovery_codes.contains(&codes[3]));
    // Removing TOTP takes the recovery codes with it, ends every other session, and leaves the
    // kept one without the enrolled mark.
    let ended = f
        .store
        .change_factors(
            alice.id,
            Some(2),
            &FactorChange::RemoveTotp,
            Some(record.handle),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, vec![login.handle]);
    let stored = f.store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.factors, Default::default());
    assert_eq!(stored.credential_version, 3);
    let kept = f
        .store
        .session(alice.id, &token.digest())
        .await
        .unwrap()
        .unwrap();
    assert!(!kept.record.factor_enrolled);
    assert_eq!(kept.record.second_factor, enrolled.second_factor);
    // An administrator's reset ends every session, whatever the version.
    let ended = f
        .store
        .change_factors(alice.id, None, &FactorChange::Reset, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, vec![record.handle]);
    assert_eq!(
        f.store
            .change_factors(Uuid::now_v7(), None, &FactorChange::Reset, None)
            .await
            .unwrap(),
        None
    );
}
crate::each_backend!(recovery_codes_are_used_once_and_factor_changes_end_other_sessions);
