//! Tokens as the real server issues them: unique, well formed, random in every bit, routed to
//! their user, and never stored in a form that could be replayed.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::{
    helpers::{Backend, TestApp, session_cookie, spawn_app_with},
    oracles::is_token_shaped,
};

const TOKENS: usize = 1000;
const USERS: usize = 4;

struct Issued {
    token: String,
    user_id: String,
    handle: String,
}

async fn login(app: &TestApp, user: usize) -> Issued {
    let name = format!("user{user}");
    let r = app.login(&name, &format!("{name}-password")).await;
    assert_eq!(r.status(), 200);
    let cookie = session_cookie(&r).expect("a session cookie");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let v: Value = r.json().await.unwrap();
    Issued {
        token,
        user_id: v["user"]["id"].as_str().unwrap().replace('-', ""),
        handle: v["session"]["handle"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tokens_are_unique_well_formed_and_random_in_every_bit() {
    let started = std::time::Instant::now();
    let app = spawn_app_with(Backend::Redis, |s| {
        s.login_max_attempts_per_ip = Some(10 * TOKENS as u32);
        // Every issued session stays live, so that Redis can be searched for every token.
        s.max_sessions_per_user = Some(0);
        s.argon2_concurrency = Some(4);
    })
    .await;
    for u in 0..USERS {
        let name = format!("user{u}");
        assert_eq!(
            app.register(&name, &format!("{name}-password"))
                .await
                .status(),
            201
        );
    }
    let app = std::sync::Arc::new(app);
    let mut issued = Vec::with_capacity(TOKENS);
    let mut jobs = JoinSet::new();
    for i in 0..TOKENS {
        let app = app.clone();
        jobs.spawn(async move { login(&app, i % USERS).await });
        if jobs.len() >= 8 {
            issued.push(jobs.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(j) = jobs.join_next().await {
        issued.push(j.unwrap());
    }
    assert_eq!(issued.len(), TOKENS);

    let mut tokens = HashSet::new();
    let mut handles = HashSet::new();
    let mut secrets: Vec<[u8; 32]> = Vec::new();
    for i in &issued {
        assert!(is_token_shaped(&i.token), "{:?}", i.token);
        // The route part is the user's id (not secret), the secret part is 256 bits.
        assert_eq!(i.token[..32], i.user_id);
        assert!(!i.token.contains(&i.handle.replace('-', "")));
        let bytes = URL_SAFE_NO_PAD.decode(&i.token[33..]).unwrap();
        secrets.push(bytes.try_into().unwrap());
        assert!(tokens.insert(i.token.clone()), "a token was issued twice");
        assert!(
            handles.insert(i.handle.clone()),
            "a handle was issued twice"
        );
    }
    // Bits: every one of the 256 positions is set in about half of the secrets (mean 500,
    // standard deviation 16; the bound is over 7 deviations), and any two secrets differ in
    // about half of their bits (mean 128, deviation 8; the bound is 8 deviations).
    for bit in 0..256 {
        let set = secrets
            .iter()
            .filter(|s| s[bit / 8] & (1 << (bit % 8)) != 0)
            .count();
        assert!(
            (380..=620).contains(&set),
            "bit {bit} set in {set} of {TOKENS}"
        );
    }
    let mut closest = 256;
    for (i, a) in secrets.iter().enumerate() {
        for b in &secrets[i + 1..] {
            let d: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
            closest = closest.min(d);
        }
    }
    assert!(closest >= 64, "two secrets differ in only {closest} bits");

    // What Redis holds names sessions by digest only: no key and no stored value contains a
    // token or its secret, so a copy of the store yields no usable cookie.
    let redis = app.redis.clone().unwrap();
    let keys = redis.keys();
    let mut dump = keys.join("\n");
    let mut sessions = 0;
    for k in keys.iter().filter(|k| k.ends_with("}:sessions")) {
        sessions += redis.integer(&["HLEN", k]);
        dump.push_str(&redis.command(&["HGETALL", k]).unwrap());
    }
    assert_eq!(sessions, TOKENS as i64);
    for i in &issued {
        assert!(
            !dump.contains(&i.token[33..]),
            "a token secret is stored in Redis"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}
