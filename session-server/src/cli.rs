//! Command line: `serve` (the default) and operator commands.
//!
//! `user add|passwd|disable|enable` work directly on the Redis store named by `REDIS_URL`,
//! with the same rules as the admin API (password hashing, atomic revocation). Passwords are read
//! from standard input, never from arguments (which other users can see in `ps`).

use std::{io::BufRead, path::PathBuf};

use clap::{Parser, Subcommand};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{
    config::{Config, Settings},
    state::AppState,
};

#[derive(Debug, Parser)]
#[command(
    name = "session-server",
    version,
    about = "Stateful cookie-session service on Redis."
)]
pub struct Cli {
    /// TOML file with settings (keys are the flag names with `_`); flags and environment win.
    /// Default: unset: no file.
    #[arg(long, env = "SESSION_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users in the Redis store.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Admin API keys.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Keys that seal TOTP secrets at rest (SESSION_FACTOR_KEYS).
    FactorKey {
        #[command(subcommand)]
        action: FactorKeyAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum FactorKeyAction {
    /// Generate a new random key as a SESSION_FACTOR_KEYS entry, `<id>:<base64>`. The id is
    /// one above the highest in the current SESSION_FACTOR_KEYS (1 without one): put the entry
    /// first, keep the old ones after it (see the second-factors guide on rotation).
    New,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; the password is read from standard input.
    Add { username: String },
    /// Set a user's password (read from standard input) and end all their sessions.
    Passwd { username: String },
    /// Disable a user and end all their sessions.
    Disable { username: String },
    /// Re-enable a disabled user.
    Enable { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyAction {
    /// Generate a new random API key; prints the key (give it to the client) and its digest (put
    /// it in SESSION_ADMIN_API_KEYS).
    New,
    /// Print the SHA-256 digest of a key read from standard input.
    Digest,
}

impl Cli {
    /// Merges flags/environment over the config file and validates.
    pub fn load_config(&self) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path).map_err(|e| e.to_string())?,
            None => Settings::default(),
        };
        Config::from_settings(self.settings.clone().or(file)).map_err(|e| e.to_string())
    }
}

fn read_stdin_line(what: &str) -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {what} from standard input: {e}"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        return Err(format!("no {what} on standard input"));
    }
    Ok(line)
}

/// Runs an operator command, printing its result. Returns an error message for the exit path.
pub async fn run_user_action(config: Config, action: UserAction) -> Result<(), String> {
    if config.redis.is_none() {
        return Err(
            "user commands need REDIS_URL: the embedded store lives inside a running server \
             process (use the admin API there)"
                .into(),
        );
    }
    let state = AppState::build(config).map_err(|e| e.to_string())?;
    let accounts = &state.accounts;
    let out = match action {
        UserAction::Add { username } => {
            let password = read_stdin_line("password")?;
            let user = accounts
                .register(&username, password, None)
                .await
                .map_err(|e| e.to_string())?;
            format!("created user {} ({})", user.username, user.id)
        }
        UserAction::Passwd { username } => {
            let user = accounts
                .find_by_name(&username)
                .await
                .map_err(|e| e.to_string())?;
            let password = read_stdin_line("password")?;
            let n = accounts
                .set_password(user.id, password, None)
                .await
                .map_err(|e| e.to_string())?;
            format!("password of {} set; {n} session(s) ended", user.username)
        }
        UserAction::Disable { username } => {
            let user = accounts
                .find_by_name(&username)
                .await
                .map_err(|e| e.to_string())?;
            let n = accounts
                .set_disabled(user.id, true, None)
                .await
                .map_err(|e| e.to_string())?;
            format!("disabled {}; {n} session(s) ended", user.username)
        }
        UserAction::Enable { username } => {
            let user = accounts
                .find_by_name(&username)
                .await
                .map_err(|e| e.to_string())?;
            accounts
                .set_disabled(user.id, false, None)
                .await
                .map_err(|e| e.to_string())?;
            format!("enabled {}", user.username)
        }
    };
    println!("{out}");
    Ok(())
}

/// Prints a new factor key entry, numbered after the keys of `current` (`SESSION_FACTOR_KEYS`).
pub fn run_factor_key_action(action: FactorKeyAction, current: Option<&str>) -> Result<(), String> {
    match action {
        FactorKeyAction::New => {
            let highest = current
                .unwrap_or_default()
                .split(',')
                .filter_map(|entry| entry.split_once(':')?.0.trim().parse::<u8>().ok())
                .max()
                .unwrap_or(0);
            let id = highest
                .checked_add(1)
                .ok_or("SESSION_FACTOR_KEYS already uses id 255; renumber the ring")?;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            use base64::Engine;
            println!(
                "{id}:{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            );
        }
    }
    Ok(())
}

/// Prints a new key and its digest, or the digest of a key from standard input.
pub fn run_api_key_action(action: ApiKeyAction) -> Result<(), String> {
    match action {
        ApiKeyAction::New => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let key = hex::encode(bytes);
            println!("key:    {key}");
            println!("digest: {}", hex::encode(Sha256::digest(key.as_bytes())));
        }
        ApiKeyAction::Digest => {
            let key = read_stdin_line("API key")?;
            println!("{}", hex::encode(Sha256::digest(key.trim().as_bytes())));
        }
    }
    Ok(())
}
