//! Helpers shared by the workspace's test suites (a dev-dependency only; never published).
//!
//! The suites of session-server, session-client and example-app all need a real Redis that
//! belongs to one test: nothing shared with other tests or with a developer's own Redis, nothing
//! left behind when the test ends. [`RedisServer`] is that, in one place, so every suite starts
//! Redis the same way and a fix to it (readiness, cleanup, port choice) reaches all of them.
//!
//! Standard library only, so depending on this crate costs no build time: replies are read over
//! a raw RESP connection rather than through a Redis client library.
//!
//! With the `otlp` feature, [`otlp::OtlpReceiver`] receives exported spans; with `passkey`,
//! [`passkey::Authenticator`] answers WebAuthn ceremonies.
#![warn(missing_docs)]

#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "passkey")]
pub mod passkey;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// A loopback port that was free a moment ago (the OS picks it; the listener is closed again).
///
/// Tests bind their servers to ports from here rather than to fixed ones, so that suites run in
/// parallel and on machines where other services already use the usual ports.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `redis-server` process owned by one test, on a free loopback port, stopped on drop.
///
/// It listens on 127.0.0.1 only, persists nothing (`--save ""`, `--appendonly no` unless extra
/// arguments say otherwise) and works in a temporary directory of its own, removed on drop: a test
/// starts from an empty database and leaves nothing behind. [`RedisServer::start`] returns only
/// once the server answers `PING`. It is handed out in an [`Arc`] because several application
/// instances under test often share one store.
///
/// Needs `redis-server` on the `PATH` (the workspace's test command installs it).
pub struct RedisServer {
    /// The loopback port it listens on.
    pub port: u16,
    child: Mutex<Option<Child>>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server with the default arguments.
    pub fn start() -> Arc<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments (e.g. `--maxmemory 2mb`), which come after the
    /// defaults and so override them.
    ///
    /// A port that was free when chosen can be taken before `redis-server` binds it (by another
    /// test's listener): the server then exits at once, and a fresh port is tried.
    pub fn start_with(extra: &[&str]) -> Arc<RedisServer> {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("session-test-redis-{port}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let server = RedisServer {
                port,
                child: Mutex::new(None),
                dir,
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            match server.launch() {
                Ok(()) => return Arc::new(server),
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn launch(&self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .args(&self.extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (the test command installs it)");
        *self.child() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .command(&["PING"])
                .is_some_and(|r| r.starts_with("+PONG"))
            {
                return Ok(());
            }
            if let Some(child) = self.child().as_mut()
                && child.try_wait().is_ok_and(|status| status.is_some())
            {
                return Err(format!(
                    "redis-server exited at start on port {}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server on port {} did not start", self.port))
    }

    /// The `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command over a raw connection; returns the raw RESP reply (`None` if the server
    /// cannot be reached or does not answer within 5 s).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        Self::command_on(self.port, args)
    }

    /// [`RedisServer::command`] for any loopback port (e.g. a Cluster or Sentinel node started
    /// some other way).
    pub fn command_on(port: u16, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut out = Vec::new();
        loop {
            let n = stream.read(&mut buf).ok()?;
            out.extend_from_slice(&buf[..n]);
            if n == 0 || resp_complete(&out) {
                break;
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// An integer reply (`:<n>`), e.g. of DBSIZE. Panics on any other reply.
    pub fn integer(&self, args: &[&str]) -> i64 {
        let reply = self.command(args).expect("redis reply");
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("not an integer: {reply}"))
    }

    /// All keys (test databases are tiny; never do this against a real deployment).
    pub fn keys(&self) -> Vec<String> {
        let reply = self.command(&["KEYS", "*"]).unwrap_or_default();
        reply
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.starts_with('$') && !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Stops the server abruptly (SIGKILL), as a crash would. The port stays reserved for
    /// [`RedisServer::restart`].
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (after [`RedisServer::kill`]; kills first if
    /// it is still running).
    pub fn restart(&self) {
        self.kill();
        if let Err(e) = self.launch() {
            panic!("{e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a buffer holds one complete RESP reply (enough for the replies tests read): a reply
/// can arrive in several reads, and the connection stays open after it.
fn resp_complete(buf: &[u8]) -> bool {
    fn parse(buf: &[u8], pos: usize) -> Option<usize> {
        let end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let line = std::str::from_utf8(&buf[pos + 1..end]).ok()?;
        match buf.get(pos)? {
            b'+' | b'-' | b':' => Some(end + 2),
            b'$' => {
                let len: i64 = line.parse().ok()?;
                if len < 0 {
                    return Some(end + 2);
                }
                let stop = end + 2 + len as usize + 2;
                (buf.len() >= stop).then_some(stop)
            }
            b'*' => {
                let n: i64 = line.parse().ok()?;
                let mut p = end + 2;
                for _ in 0..n.max(0) {
                    p = parse(buf, p)?;
                }
                Some(p)
            }
            _ => None,
        }
    }
    !buf.is_empty() && parse(buf, 0).is_some_and(|p| p == buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_complete_only_when_whole() {
        assert!(resp_complete(b"+PONG\r\n"));
        assert!(resp_complete(b":42\r\n"));
        assert!(resp_complete(b"$-1\r\n"));
        assert!(resp_complete(b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n"));
        assert!(!resp_complete(b""));
        assert!(!resp_complete(b"+PON"));
        assert!(!resp_complete(b"$5\r\nab"));
        assert!(!resp_complete(b"*2\r\n$1\r\na\r\n"));
    }

    #[test]
    fn a_server_starts_answers_restarts_and_is_gone_after_drop() {
        let redis = RedisServer::start();
        assert!(
            redis
                .command(&["SET", "k", "v"])
                .unwrap()
                .starts_with("+OK")
        );
        assert_eq!(redis.integer(&["DBSIZE"]), 1);
        assert_eq!(redis.keys(), ["k"]);
        redis.restart();
        assert_eq!(redis.integer(&["DBSIZE"]), 0, "nothing persisted");
        let (port, dir) = (redis.port, redis.dir.clone());
        drop(redis);
        assert!(RedisServer::command_on(port, &["PING"]).is_none());
        assert!(!dir.exists());
    }
}
