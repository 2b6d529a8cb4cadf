//! Operator commands of the real binary, against a real Redis.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use sha2::{Digest, Sha256};

use crate::helpers::{RedisServer, spawn_app_on};

pub fn run(redis: &RedisServer, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args(args)
        .env_clear()
        .env("REDIS_URL", redis.url())
        .env("SESSION_LOG", "off")
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_reset_and_disable_users_from_the_command_line() {
    let redis = RedisServer::start();
    let out = run(&redis, &["user", "add", "Alice"], "first-password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user alice"));
    let out = run(&redis, &["user", "add", "alice"], "first-password\n");
    assert!(!out.status.success(), "a second alice is refused");

    let app = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let browser = crate::helpers::Browser {
        cookie: crate::helpers::session_cookie(&app.login("alice", "first-password").await)
            .unwrap(),
    };

    let out = run(&redis, &["user", "passwd", "alice"], "second-password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.whoami(&browser).await.status(),
        401,
        "passwd ends every session"
    );
    assert_eq!(app.login("alice", "first-password").await.status(), 401);
    let browser = crate::helpers::Browser {
        cookie: crate::helpers::session_cookie(&app.login("alice", "second-password").await)
            .unwrap(),
    };

    let out = run(&redis, &["user", "disable", "alice"], "");
    assert!(out.status.success());
    assert_eq!(
        app.whoami(&browser).await.status(),
        401,
        "disable ends every session"
    );
    assert_eq!(app.login("alice", "second-password").await.status(), 401);
    let out = run(&redis, &["user", "enable", "alice"], "");
    assert!(out.status.success());
    assert_eq!(app.login("alice", "second-password").await.status(), 200);

    let out = run(&redis, &["user", "add", "bob"], "");
    assert!(!out.status.success(), "no password on stdin");
}

#[test]
fn user_commands_explain_that_they_need_redis() {
    let out = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args(["user", "disable", "alice"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("REDIS_URL"));
}

#[test]
fn api_key_new_prints_a_key_and_its_digest() {
    let out = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args(["api-key", "new"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (key, digest) = (field("key:"), field("digest:"));
    assert_eq!(key.len(), 64);
    assert_eq!(hex::encode(Sha256::digest(key.as_bytes())), digest);
}

#[test]
fn factor_key_new_prints_an_entry_numbered_after_the_current_keys() {
    let new = |current: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_session-server"));
        command.args(["factor-key", "new"]).env_clear();
        if let Some(current) = current {
            command.env("SESSION_FACTOR_KEYS", current);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let first = new(None);
    let (id, key) = first.split_once(':').unwrap();
    assert_eq!(id, "1");
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
            .len(),
        32
    );
    let second = new(Some(&first));
    assert!(second.starts_with("2:"), "{second}");
    assert_ne!(second[2..], first[2..]);
    // The entry is one the server accepts, first in a ring with the old key.
    session_server::domain::factors::secret_box::FactorKeys::parse(&format!("{second},{first}"))
        .unwrap();
}
