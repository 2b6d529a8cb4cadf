//! Floor: the least a session check costs on session-server's own stack, with none of its work.
//!
//! actix-web with one worker, mimalloc, and one redis-rs multiplexed connection opened and driven
//! by the worker thread, as session-server's store does; the same release profile (fat LTO) and
//! the same crate versions, because it is built as an example of the session-server package.
//! `GET /v1/session` sends one `HMGET` of a session-sized record and answers the peers' fixed
//! body (`{"user":"alice"}`), under redis-rs's own reply timeout (one timer per command, as the
//! store's timeout is for session-server). No cookie, token, hash, decoding, middleware or metrics:
//! whatever session-server adds over this is the session layer's own cost, and what this costs
//! over the actix-web hello world is the price of one Redis round trip on this stack.
//!
//! Spoken to in the peers' contract (PORT, REDIS_URL; no login), so `bench/instructions.sh
//! peer:<binary>` and `bench/cpu-split.sh` (FLOOR_BIN) measure it beside the others.
//! `BODY_BYTES=<n>` pads the body to n bytes, to price the size of session-server's answer apart
//! from the work of making it (its who-am-I body is about 500 bytes, 575 with the two headers the
//! floor does not send).
//!
//!     cargo build --release -p session-server --example check_floor

use std::{cell::RefCell, sync::OnceLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use deadpool_redis::redis::{self, aio::MultiplexedConnection};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The hash and field read per check: a user's sessions hash and a digest-sized field.
const KEY: &str = "floor:sessions:0196a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const FIELD: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const DATA_FIELD: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:d";

thread_local! {
    /// This worker's connection, opened on first use so its driver runs on the worker's runtime.
    static CONNECTION: RefCell<Option<MultiplexedConnection>> = const { RefCell::new(None) };
}

async fn connection(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    if let Some(conn) = CONNECTION.with_borrow(Clone::clone) {
        return Ok(conn);
    }
    let conn = client.get_multiplexed_async_connection().await?;
    CONNECTION.set(Some(conn.clone()));
    Ok(conn)
}

/// The two fields an `HMGET` of a session reads: the record and its app data.
type Fields = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The answer's body, made once: a `&'static str` goes out without a copy or an allocation.
static BODY: OnceLock<String> = OnceLock::new();

/// The peers' `{"user":"alice"}`, padded to `BODY_BYTES` if that is longer.
fn body() -> String {
    let plain = r#"{"user":"alice"}"#;
    let want = std::env::var("BODY_BYTES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let pad = want.saturating_sub(plain.len() + r#","pad":"""#.len());
    if pad == 0 {
        return plain.to_owned();
    }
    format!(r#"{{"user":"alice","pad":"{}"}}"#, "x".repeat(pad))
}

async fn check(client: web::Data<redis::Client>) -> HttpResponse {
    let reply: redis::RedisResult<Fields> = async {
        let mut conn = connection(&client).await?;
        redis::cmd("HMGET")
            .arg(KEY)
            .arg(FIELD)
            .arg(DATA_FIELD)
            .query_async(&mut conn)
            .await
    }
    .await;
    match reply {
        Ok((Some(_), _)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(BODY.get().map_or("", String::as_str)),
        Ok((None, _)) => HttpResponse::Unauthorized().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18100);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).map_err(std::io::Error::other)?;
    // A record the size of a session's (57 bytes), so the reply is as long as a real check's.
    let mut setup = client
        .get_multiplexed_async_connection()
        .await
        .map_err(std::io::Error::other)?;
    let _: () = redis::cmd("HSET")
        .arg(KEY)
        .arg(FIELD)
        .arg([b'r'; 57].as_slice())
        .query_async(&mut setup)
        .await
        .map_err(std::io::Error::other)?;
    let client = web::Data::new(client);
    BODY.get_or_init(body);
    HttpServer::new(move || {
        App::new()
            .app_data(client.clone())
            .route("/v1/session", web::get().to(check))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
