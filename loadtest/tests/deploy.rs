//! The container healthcheck of `session-server/Dockerfile`, run as written against a real
//! session-server (with the service stage's path, /readyz): healthy when the store answers,
//! unhealthy when it does not or when nothing listens, without a container engine. (The image
//! itself is built and its healthcheck run by the engine in deploy/compose-test.sh.)

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn server_bin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "session-server",
            "--bin",
            "session-server",
        ])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building session-server failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("debug/session-server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The exec-form argv of the Dockerfile's `HEALTHCHECK ... CMD [...]` instruction.
fn healthcheck_argv() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("session-server/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK instruction");
    let json = &line[line.find("CMD").expect("CMD form") + 3..];
    serde_json::from_str(json.trim()).expect("exec-form JSON array")
}

fn healthy(port: u16) -> bool {
    let argv = healthcheck_argv();
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("HEALTHCHECK_PORT", port.to_string())
        .env("HEALTHCHECK_PATH", "/readyz")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the healthcheck command runs")
        .success()
}

/// A session-server child process, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(port: u16, redis_url: Option<&str>) -> Server {
    let mut cmd = Command::new(server_bin());
    cmd.env("SESSION_PUBLIC_ADDR", format!("127.0.0.1:{port}"))
        .env("SESSION_ADMIN_ADDR", "127.0.0.1:0")
        .env("SESSION_LOG", "error")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = redis_url {
        cmd.env("REDIS_URL", url);
    }
    let server = Server(cmd.spawn().expect("session-server starts"));
    // Listening: the TCP port accepts (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "session-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn the_healthcheck_is_the_readiness_of_the_store() {
    let argv = healthcheck_argv();
    assert_eq!(argv[0], "bash", "{argv:?}");
    // The service's stage (the last one) points the healthcheck at /readyz on its public port.
    let dockerfile = std::fs::read_to_string(root().join("session-server/Dockerfile")).unwrap();
    let service_stage = dockerfile
        .rsplit_once("AS session-server")
        .expect("a session-server stage")
        .1;
    assert!(service_stage.contains("HEALTHCHECK_PATH=/readyz"));
    assert!(service_stage.contains("HEALTHCHECK_PORT=8080"));

    let port = free_port();
    let _ready = start_server(port, None);
    assert!(healthy(port), "healthy with its store answering");

    // Redis that does not answer: the process is up, but not ready.
    let dead_redis = free_port();
    let port2 = free_port();
    let _unready = start_server(port2, Some(&format!("redis://127.0.0.1:{dead_redis}")));
    assert!(!healthy(port2), "unhealthy while its store is unreachable");

    assert!(!healthy(free_port()), "unhealthy when nothing listens");
}
