//! The local multi-replica harness, run for real and briefly: redis-server, two session-server
//! replicas, HAProxy and the example app on 127.0.0.1 (a login through the app is checked), all
//! four scenarios for two seconds each. Sessions revoked
//! through one replica must be refused by the other at once (zero revoked-but-accepted), nothing
//! may fail, and every process the harness started must be gone afterwards, also when the run
//! fails.
//!
//! Needs redis-server, haproxy and curl (`./scripts/test.sh` installs them).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use loadtest::results::RunFile;

/// The harness takes about 20 s here; this only stops a hung run.
const LIMIT: Duration = Duration::from_secs(150);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The session-server and example-app binaries of this workspace (dev profile), built if
/// needed. Under `cargo test --workspace` they are already built and this is a no-op.
fn bins() -> (PathBuf, PathBuf) {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "session-server",
            "-p",
            "example-app",
            "--bins",
        ])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building session-server and example-app failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("debug");
    (target.join("session-server"), target.join("example-app"))
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The harness's output goes to `harness.log` in its output directory (shown on failure).
fn harness(out: &Path, loadtest_bin: &Path, env: &[(&str, &str)]) -> Command {
    let log = std::fs::File::create(out.join("harness.log")).unwrap();
    let (server, app) = bins();
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("loadtest/harness.sh"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env("OUT", out)
        .env("SERVER_BIN", server)
        .env("APP_BIN", app)
        .env("LOADTEST_BIN", loadtest_bin)
        .env("PEERS", "")
        .env("PIN", "0")
        .env("REPLICAS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Waits for the harness, at most [`LIMIT`]; a run over the limit is stopped (its trap then
/// stops what it started) and fails the test.
fn wait_bounded(mut child: Child) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!("harness did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The processes the harness started (`name pid` lines).
fn started(out: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(out.join("pids.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some((name.to_owned(), pid.parse().ok()?))
        })
        .collect()
}

fn assert_all_stopped(out: &Path) {
    let procs = started(out);
    assert!(!procs.is_empty(), "the harness recorded what it started");
    for (name, pid) in procs {
        // Stopped and reaped by the harness: no such process any more.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) still running after the harness ended"
        );
    }
}

#[test]
fn two_replicas_behind_haproxy_refuse_revoked_sessions_everywhere() {
    let out = out_dir("two-replicas");
    let started_at = Instant::now();
    let child = harness(
        &out,
        Path::new(env!("CARGO_BIN_EXE_loadtest")),
        &[
            ("SCENARIOS", "checks,logins,mix,revocation"),
            ("DURATION", "2"),
            ("WARMUP", "0"),
            ("CONNECTIONS", "8"),
            ("SESSIONS", "16"),
            ("USERS", "8"),
            ("LOGIN_CONCURRENCY", "4"),
            ("STORM_CHECK_RATE", "200"),
            ("MIX_USERS", "4"),
            ("PAGE_VIEWS", "10"),
            ("REVOCATIONS", "60"),
            ("REVOCATION_WORKERS", "3"),
        ],
    )
    .spawn()
    .expect("bash runs the harness");
    let status = wait_bounded(child);
    assert!(
        status.success(),
        "harness failed: {status}\n{}",
        std::fs::read_to_string(out.join("harness.log")).unwrap_or_default()
    );
    eprintln!("harness run took {:?}", started_at.elapsed());

    let file: RunFile = serde_json::from_slice(
        &std::fs::read(out.join("raw/session-server-2-r1.json")).expect("result file"),
    )
    .expect("valid result file");
    assert_eq!(file.replicas, 2);
    assert_eq!(file.via, "haproxy");
    let row = |name: &str| {
        file.rows
            .iter()
            .find(|r| r.scenario == name)
            .unwrap_or_else(|| panic!("no {name} row in {:?}", file.rows))
    };
    for name in [
        "checks",
        "storm: checks alone",
        "storm: checks + logins",
        "storm: logins",
        "web mix",
        "revocation: background checks",
    ] {
        assert!(row(name).requests > 0, "{name}: no requests");
    }
    assert_eq!(file.total_errors(), 0, "errors: {:#?}", file.rows);

    let revocation = row("revocation");
    assert!(
        revocation.requests >= 3,
        "too few revocations: {revocation:?}"
    );
    assert_eq!(revocation.revoked_accepted, Some(0), "{revocation:?}");
    // Each revocation was checked on the other replica until refused: the propagation count.
    assert_eq!(revocation.ops["propagation"].count, revocation.requests);
    assert!(revocation.revoked_checks.unwrap() >= revocation.requests);
    for method in ["revoke: logout", "revoke: by handle", "revoke: all others"] {
        assert!(
            revocation.ops.contains_key(method),
            "{method} not exercised: {:?}",
            revocation.ops.keys()
        );
    }
    let mix = row("web mix");
    assert_eq!(mix.revoked_accepted, Some(0), "{mix:?}");
    assert!(mix.revoked_checks.unwrap() > 0);

    // Session checks cost exactly one Redis command (an HMGET of the session's field and its
    // app data field), also behind the load balancer.
    let checks = row("checks").redis.as_ref().expect("redis costs measured");
    assert!(
        (checks.by_command["hmget"] - 1.0).abs() < 0.01,
        "HMGETs per check: {checks:?}"
    );
    let memory = file.memory.as_ref().expect("memory measured");
    assert_eq!(memory.sessions, 16);
    // 16 sessions of ~140 bytes are within the noise of `used_memory` (client buffers move by
    // more), so its delta may even be negative here; what the sessions hold is measured by key
    // kind (`MEMORY USAGE`).
    assert!(
        memory.by_kind.get("user sessions").is_some_and(|b| *b > 0),
        "{memory:?}"
    );

    let log = std::fs::read_to_string(out.join("harness.log")).unwrap();
    assert!(
        log.contains("example app: register, login, signed-in page, logout through it: ok"),
        "{log}"
    );
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| revocation (revocations/s; latency = propagation) | 2 |"));
    assert!(
        std::fs::read_to_string(out.join("scaling.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    assert_all_stopped(&out);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_failed_run_still_stops_everything_it_started() {
    let out = out_dir("failure");
    // A load generator that fails at once: the harness must fail and clean up.
    let child = harness(&out, Path::new("/bin/false"), &[("REPLICAS", "2")])
        .spawn()
        .expect("bash runs the harness");
    let status = wait_bounded(child);
    assert!(!status.success(), "the harness reports the failure");
    let names: Vec<String> = started(&out).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.iter().any(|n| n.starts_with("example-app"))
            && names.iter().any(|n| n.starts_with("haproxy"))
            && names.iter().filter(|n| n.starts_with("replica")).count() == 2
            && names.iter().any(|n| n.starts_with("redis")),
        "started: {names:?}"
    );
    assert_all_stopped(&out);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_signal_during_the_load_stops_everything_at_once() {
    let out = out_dir("signal");
    let mut child = harness(
        &out,
        Path::new(env!("CARGO_BIN_EXE_loadtest")),
        &[
            ("SCENARIOS", "checks"),
            ("DURATION", "60"),
            ("CONNECTIONS", "4"),
            ("SESSIONS", "4"),
            ("USERS", "2"),
            ("APP", "0"),
        ],
    )
    .spawn()
    .expect("bash runs the harness");
    // Wait (bounded) until the load generator runs, then interrupt the harness.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started(&out).iter().any(|(name, _)| name == "loadtest") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "harness ended early:\n{}",
            std::fs::read_to_string(out.join("harness.log")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the load never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let signalled = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_bounded(child);
    assert!(!status.success(), "a stopped run is not a success");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "took {:?} to stop a 60 s load",
        signalled.elapsed()
    );
    assert_all_stopped(&out);
    std::fs::remove_dir_all(&out).ok();
}
