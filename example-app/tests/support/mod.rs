//! What the browser tests share: child processes, ports, headless Chromium over WebDriver.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use session_server::config::Settings;
use sha2::{Digest, Sha256};
use test_support::free_port;

/// The session service as the browser tests run it: on `redis_url`, development cookie mode
/// (plain HTTP), `origin` allowed, loopback trusted as a proxy, cheap argon2, admin key `key`.
pub fn service_settings(redis_url: String, origin: &str, key: &str) -> Settings {
    Settings {
        redis_url: Some(redis_url),
        public_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: Some("127.0.0.1:0".parse().unwrap()),
        workers: Some(1),
        cookie_secure: Some(false),
        allowed_origins: Some(origin.to_owned()),
        trusted_proxies: Some("127.0.0.1".into()),
        argon2_memory_kib: Some(1024),
        argon2_iterations: Some(1),
        admin_api_keys: Some(hex::encode(Sha256::digest(key.as_bytes()))),
        log: Some("off".into()),
        ..Settings::default()
    }
}

/// A child process killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the programs exist; when one is missing the test skips, except where
/// `BROWSER_TESTS=required` (set by `scripts/test.sh`, which installs them all).
pub fn available(programs: &[&str]) -> bool {
    let missing: Vec<_> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    assert_ne!(
        std::env::var("BROWSER_TESTS").as_deref(),
        Ok("required"),
        "{missing:?} are required here (scripts/test.sh installs them)"
    );
    eprintln!("SKIPPED: {missing:?} missing (Debian packages; see scripts/test.sh)");
    false
}

/// chromedriver on a free port, stopped on drop.
pub fn chromedriver() -> (Process, String) {
    let port = free_port();
    let driver = Process(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "chromedriver");
    (driver, format!("http://127.0.0.1:{port}"))
}

/// A headless Chromium with its own profile (its own cookie jar).
pub async fn browser(driver: &str, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1200,800",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a WebDriver session in headless Chromium")
}

/// A fresh directory under `base` for this process.
pub fn tempdir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
