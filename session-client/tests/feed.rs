//! The cache's freshness rule against a stand-in for the service whose feed answers can be slowed
//! down: freshness counts from when a poll was sent, so answers that arrive late never keep the
//! cache answering past `feed_staleness`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use session_client::{CacheSettings, SessionClient};

/// A stand-in for session-server's admin listener. `POST /admin/v1/sessions/check` finds every
/// token to be a live session of alice's; `GET /admin/v1/events` answers an empty page after
/// `delay_ms` if set, or else after the `wait` the poll asked for, like a long poll with no event.
struct Stub {
    url: String,
    delay_ms: Arc<AtomicU64>,
    /// The query string of every feed poll, in order.
    polls: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let delay_ms = Arc::new(AtomicU64::new(0));
        let polls = Arc::new(Mutex::new(Vec::new()));
        let (delay, seen) = (delay_ms.clone(), polls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (delay, seen) = (delay.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &delay, &seen));
            }
        });
        Stub {
            url,
            delay_ms,
            polls,
        }
    }
}

/// Answers one request, then closes the connection.
fn serve(stream: TcpStream, delay_ms: &AtomicU64, polls: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let answer = match path {
        "/admin/v1/sessions/check" => serde_json::json!({
            "active": true,
            "user": {"id": "0190a0e0-0000-7000-8000-000000000001", "username": "alice"},
            "session": {
                "handle": "0190a0e0-0000-7000-8000-000000000002",
                "idle_expires_at": "2100-01-01T00:00:00Z",
                "absolute_expires_at": "2100-01-01T00:00:00Z",
            },
        }),
        "/admin/v1/events" => {
            polls.lock().unwrap().push(query.to_owned());
            let asked: f64 = query
                .split('&')
                .find_map(|p| p.strip_prefix("wait="))
                .and_then(|w| w.parse().ok())
                .unwrap_or(0.0);
            let delay = match delay_ms.load(Ordering::SeqCst) {
                0 => Duration::from_secs_f64(asked),
                ms => Duration::from_millis(ms),
            };
            std::thread::sleep(delay);
            serde_json::json!({"events": [], "last_id": "1-0", "reset": false})
        }
        _ => serde_json::Value::Null,
    };
    let body = answer.to_string();
    let status = if answer.is_null() {
        "404 Not Found"
    } else {
        "200 OK"
    };
    let _ = write!(
        reader.get_mut(),
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_answers_that_arrive_after_the_staleness_bound_never_let_the_cache_answer() {
    let stub = Stub::start();
    // Each poll asks for a 50 ms wait and is given up after 150 ms.
    let client = SessionClient::builder(&stub.url, "key")
        .cache(CacheSettings {
            feed_staleness: Duration::from_millis(100),
            ..CacheSettings::default()
        })
        .build()
        .unwrap();
    let token = "some-token";

    // Answers 50 ms after each poll was sent: the cache answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.is_cached(token) {
        assert!(client.check(token).await.unwrap().is_some());
        assert!(Instant::now() < deadline, "the answer was never cached");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Now every answer arrives 130 ms after its poll was sent: later than the 100 ms bound, so
    // none of them proves anything, however recently it arrived.
    stub.delay_ms.store(130, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (mut checks, mut cached) = (0, 0);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(client.check(token).await.unwrap().is_some());
        checks += 1;
        if client.is_cached(token) {
            cached += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cached, 0, "cached in {cached} of {checks} checks");

    // The client asked for the feed's end first, then for 50 ms waits in decimal seconds.
    let polls = stub.polls.lock().unwrap();
    assert!(polls.len() > 5, "{polls:?}");
    assert!(polls[0].starts_with("after=latest&"), "{}", polls[0]);
    for query in &polls[1..] {
        assert_eq!(query, "after=1-0&wait=0.050&max=1000");
    }
}
