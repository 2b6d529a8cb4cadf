//! Runs the example app. Settings from the environment:
//! `APP_ADDR` (default 127.0.0.1:3000), `SESSION_PUBLIC_URL` (default http://127.0.0.1:8080),
//! `SESSION_ADMIN_URL` (default http://127.0.0.1:8081), `SESSION_API_KEY` (required),
//! `SESSION_COOKIE_NAME` (default `session`, session-server's development-mode name),
//! `APP_FRESH_AUTH_MAX_AGE` (seconds; when set, "log out everywhere" asks for the password again
//! if the last one is older). Traces: OpenTelemetry's standard `OTEL_*` variables (see
//! `telemetry.rs`).

use example_app::{AppConfig, build, telemetry};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let telemetry = telemetry::init();
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let Ok(api_key) = std::env::var("SESSION_API_KEY") else {
        eprintln!("example-app: set SESSION_API_KEY to an admin API key of session-server");
        std::process::exit(2);
    };
    let config = AppConfig {
        addr: env("APP_ADDR", "127.0.0.1:3000").parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("APP_ADDR: {e}"))
        })?,
        session_public_url: env("SESSION_PUBLIC_URL", "http://127.0.0.1:8080"),
        session_admin_url: env("SESSION_ADMIN_URL", "http://127.0.0.1:8081"),
        api_key,
        cookie_name: env("SESSION_COOKIE_NAME", "session"),
        fresh_auth_max_age: match std::env::var("APP_FRESH_AUTH_MAX_AGE") {
            Ok(secs) => Some(std::time::Duration::from_secs(secs.parse().map_err(
                |e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("APP_FRESH_AUTH_MAX_AGE: {e}"),
                    )
                },
            )?)),
            Err(_) => None,
        },
    };
    let (server, port) = build(config)?;
    tracing::info!(port, "example app listening");
    let served = server.await;
    telemetry.shutdown();
    served
}
