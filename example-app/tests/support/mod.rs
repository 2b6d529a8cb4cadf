//! What the browser tests share: child processes, ports, headless Chromium over WebDriver.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use test_support::free_port;

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
