//! Entry point: parse the command line, load and validate configuration, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use session_server::{
    cli::{Cli, Command, run_api_key_action, run_factor_key_action, run_user_action},
    startup::Application,
    telemetry,
};

/// mimalloc: a request allocates and frees many small objects on one worker thread, which it
/// serves from thread-local pages (see `bench/results/` for the measured difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("session-server: {message}");
            return ExitCode::from(2);
        }
    };
    let telemetry = telemetry::init(&config.logging, config.traces.as_ref());
    let result = match cli.command {
        None | Some(Command::Serve) => serve(config).await,
        Some(Command::User { action }) => run_user_action(config, action).await,
        Some(Command::ApiKey { action }) => run_api_key_action(action),
        Some(Command::FactorKey { action }) => {
            run_factor_key_action(action, cli.settings.factor_keys.as_deref())
        }
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("session-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: session_server::config::Config) -> Result<(), String> {
    let (public, admin) = (config.listeners.public_addr, config.listeners.admin_addr);
    let app = Application::build(config).map_err(|e| e.to_string())?;
    tracing::info!(
        public = %public, public_port = app.public_port(), admin = %admin, admin_port = app.admin_port(),
        forward_auth_port = ?app.forward_auth_port(), store = app.state().store.kind(), "session-server listening"
    );
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    tracing::info!("session-server stopped");
    Ok(())
}
