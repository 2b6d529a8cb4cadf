//! What the browser tests share: child processes, ports, headless Chromium over WebDriver, and
//! the waits that let a test follow the browser from page to page.
//!
//! The rule for every browser test: after anything that navigates (a click on a submit button,
//! a script that reloads, a `goto`), wait for what the next page *shows* with
//! [`wait_for_text`] or [`wait_for_count`]: content only that page has. Never the URL (it can
//! name the next page while the old one is still displayed, or name the old one when the next
//! is the same path), never a fixed time. Every lookup here goes through [`poll`], which takes a
//! page replaced under it (`StaleElementReference`, `NoSuchElement`) as "not yet" and looks
//! again, for at most [`PAGE_TIMEOUT`].

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, error::CmdError};
use session_server::config::Settings;
use sha2::{Digest, Sha256};
use test_support::free_port;

/// TOTP codes as an authenticator app computes them, for the tests that enrol a second factor.
#[allow(dead_code)]
pub mod codes;

/// Chromium's virtual authenticators, for the tests that make and use passkeys.
#[allow(dead_code)]
pub mod webauthn;

/// The session service as the browser tests run it: on `redis_url`, development cookie mode
/// (plain HTTP), `origin` allowed, loopback trusted as a proxy, cheap argon2, admin key `key`,
/// a fixed key for TOTP secrets (with Redis, TOTP needs one).
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
        factor_keys: Some("1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into()),
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

/// How long a page gets to show what a test waits for: far longer than a page takes here even
/// on two busy cores, so running out means the page never came, not that it was slow.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a wait looks at the page again: often enough to add little to a test, rarely
/// enough to leave the two cores to the browser and the servers.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// What one look at the page found.
pub enum Seen<T> {
    /// What the wait is for.
    Ready(T),
    /// Something else, described for the message if the wait runs out.
    NotYet(String),
}

/// Whether an error only means the page changed under the lookup (the next page not there
/// yet, or the element's page replaced by it), so that looking again can succeed. Chromium
/// reports an element whose page was replaced between finding it and reading it either as a
/// stale element or, from its inspector, as an unknown error saying the node "does not belong
/// to the document" (seen with Chromium 156.0.8078.114).
fn page_in_flux(e: &CmdError) -> bool {
    e.is_stale_element_reference()
        || e.is_no_such_element()
        || e.to_string()
            .contains("Node with given id does not belong to the document")
}

/// Looks at the page with `look` every [`POLL_EVERY`] until it finds what it is after, for at
/// most [`PAGE_TIMEOUT`]: the one loop every wait and lookup of these tests goes through, so
/// none of them can trip over a page that is still navigating. A page replaced mid-look counts
/// as "not yet"; any other WebDriver error fails at once. Running out panics with `what`, what
/// the page showed last and where the browser was.
pub async fn poll<T>(
    client: &Client,
    what: &str,
    mut look: impl AsyncFnMut() -> Result<Seen<T>, CmdError>,
) -> T {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let last = match look().await {
            Ok(Seen::Ready(value)) => return value,
            Ok(Seen::NotYet(seen)) => seen,
            Err(e) if page_in_flux(&e) => e.to_string(),
            Err(e) => panic!("{what}: {e}"),
        };
        if Instant::now() >= deadline {
            let at = client
                .current_url()
                .await
                .map_or_else(|e| format!("an unknown page ({e})"), |url| url.to_string());
            panic!("{what}: not there after {PAGE_TIMEOUT:?}; last saw {last}, at {at}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Waits until the first element matching `css` exists and its text contains `text`; returns
/// its whole text (for the test's own assertions). `why` says in the test's words what the
/// wait stands for; the failure message leads with it. Pick content only the expected page
/// shows (its heading, a message), so the page being left cannot satisfy the wait.
pub async fn wait_for_text(client: &Client, css: &str, text: &str, why: &str) -> String {
    let what = format!("{why} (waited for `{css}` showing {text:?})");
    poll(client, &what, async || {
        let shown = client.find(Locator::Css(css)).await?.text().await?;
        Ok(if shown.contains(text) {
            Seen::Ready(shown)
        } else {
            Seen::NotYet(format!("{shown:?}"))
        })
    })
    .await
}

/// Waits until exactly `count` elements match `css`: for a page whose difference from the one
/// before is how many of something it lists.
pub async fn wait_for_count(client: &Client, css: &str, count: usize, why: &str) {
    let what = format!("{why} (waited for {count} of `{css}`)");
    poll(client, &what, async || {
        let found = client.find_all(Locator::Css(css)).await?.len();
        Ok(if found == count {
            Seen::Ready(())
        } else {
            Seen::NotYet(format!("{found} of them"))
        })
    })
    .await
}

/// Types `text` into the element matching `css`, looking it up again if the page is replaced
/// under the lookup (the keys go to the page that is there once it settles).
pub async fn type_into(client: &Client, css: &str, text: &str) {
    let what = format!("typing into `{css}`");
    poll(client, &what, async || {
        client
            .find(Locator::Css(css))
            .await?
            .send_keys(text)
            .await?;
        Ok(Seen::Ready(()))
    })
    .await
}

/// Clicks the element matching `css`, looking it up again if the page is replaced under the
/// lookup. A click that navigates must be followed by a wait for what the next page shows.
pub async fn click(client: &Client, css: &str) {
    let what = format!("clicking `{css}`");
    poll(client, &what, async || {
        client.find(Locator::Css(css)).await?.click().await?;
        Ok(Seen::Ready(()))
    })
    .await
}
