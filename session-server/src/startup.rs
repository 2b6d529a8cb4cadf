//! Builds the actix-web servers (public, admin and, if configured, forward-auth) on shared
//! state, bound and ready to run.
//!
//! Binding happens in [`Application::build`], so tests can ask for port 0 and read the ports.

use std::{future::Future, io, net::TcpListener, pin::Pin};

use actix_web::{
    App, HttpServer,
    dev::{Server, ServerHandle},
    middleware::from_fn,
    web,
};

use crate::{
    config::Config,
    http::{
        admin, console, health,
        middleware::{Listener, telemetry},
        public,
    },
    state::{AppState, Overrides},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The servers, bound, plus handles to stop them.
pub struct Application {
    public_port: u16,
    admin_port: u16,
    forward_auth_port: Option<u16>,
    handles: Vec<ServerHandle>,
    state: web::Data<AppState>,
    run: Pin<Box<dyn Future<Output = io::Result<()>> + Send>>,
}

fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })
}

/// A listener's routes.
type Routes = fn(&mut web::ServiceConfig);

/// The admin listener: the admin API and the admin console.
fn admin_and_console(cfg: &mut web::ServiceConfig) {
    admin::routes(cfg);
    console::routes(cfg);
}

fn server(
    state: web::Data<AppState>,
    listener: TcpListener,
    name: &'static str,
) -> io::Result<Server> {
    let config = &state.config.listeners;
    let (workers, shutdown, max_body) = (
        config.workers,
        config.shutdown_timeout.as_secs().max(1),
        config.max_body_bytes,
    );
    let app_state = state.clone();
    Ok(HttpServer::new(move || {
        let (probes, api): (Routes, Routes) = match name {
            "admin" => (health::routes, admin_and_console),
            "forward-auth" => (health::probes, admin::forward_auth_routes),
            _ => (health::routes, public::routes),
        };
        App::new()
            .app_data(app_state.clone())
            .app_data(web::Data::new(Listener(name)))
            .app_data(web::PayloadConfig::new(max_body))
            // The API first: routes are tried in order, and the session check is the hottest.
            .configure(api)
            .configure(probes)
            .wrap(from_fn(telemetry))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    // Signals are handled once for both servers (see `run_until_stopped`): actix's own handler
    // stops the whole runtime as soon as the first server is idle, cutting the other's requests.
    .disable_signals()
    .listen(listener)?
    .run())
}

impl Application {
    /// Builds the store and services and binds both listeners. Must be called inside a Tokio
    /// (or actix) runtime.
    pub fn build(config: Config) -> Result<Application, StartupError> {
        Self::build_with(config, Overrides::default())
    }

    /// [`Application::build`] with parts replaced (see [`Overrides`]): how the test suites give
    /// replicas skewed clocks and hold requests at exact points.
    pub fn build_with(config: Config, overrides: Overrides) -> Result<Application, StartupError> {
        let addrs = &config.listeners;
        let public_listener = bind(addrs.public_addr)?;
        let admin_listener = bind(addrs.admin_addr)?;
        let forward_auth_listener = addrs.forward_auth_addr.map(bind).transpose()?;
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_default();
        let (public_port, admin_port) = (port(&public_listener), port(&admin_listener));
        let forward_auth_port = forward_auth_listener.as_ref().map(port);
        let state = web::Data::new(AppState::build_with(config, overrides)?);
        if state.store.kind() == "memory" {
            tracing::warn!(
                "EMBEDDED STORE IN USE: sessions live in this process only. They are NOT shared \
                 across replicas (a logout or revocation on one replica is invisible to the \
                 others) and are lost on restart. Set REDIS_URL for production."
            );
        }
        for setting in &state.config.ignored_settings {
            tracing::warn!(setting, "this setting no longer has an effect; remove it");
        }
        if state.config.web.admin_api_key_digests.is_empty() {
            tracing::warn!(
                "no SESSION_ADMIN_API_KEYS configured: the admin API refuses every request"
            );
        }
        let io_err = |addr| move |source| StartupError::Bind { addr, source };
        let addrs = &state.config.listeners;
        let public_server =
            server(state.clone(), public_listener, "public").map_err(io_err(addrs.public_addr))?;
        let admin_server =
            server(state.clone(), admin_listener, "admin").map_err(io_err(addrs.admin_addr))?;
        let mut servers = vec![public_server, admin_server];
        if let (Some(listener), Some(addr)) = (forward_auth_listener, addrs.forward_auth_addr) {
            if addr.ip().is_unspecified() {
                tracing::warn!(
                    %addr,
                    "the forward-auth listener needs no API key and is bound to every interface; \
                     bind it to an address only the reverse proxy reaches"
                );
            }
            servers.push(server(state.clone(), listener, "forward-auth").map_err(io_err(addr))?);
        }
        let handles = servers.iter().map(Server::handle).collect();
        let run = Box::pin(async move {
            futures_util::future::join_all(servers)
                .await
                .into_iter()
                .collect::<io::Result<()>>()
        });
        Ok(Application {
            public_port,
            admin_port,
            forward_auth_port,
            handles,
            state,
            run,
        })
    }

    pub fn public_port(&self) -> u16 {
        self.public_port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The forward-auth listener's port, when `SESSION_FORWARD_AUTH_ADDR` is set.
    pub fn forward_auth_port(&self) -> Option<u16> {
        self.forward_auth_port
    }

    /// Handles that stop every server (gracefully or not).
    pub fn handles(&self) -> Vec<ServerHandle> {
        self.handles.clone()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until every server stops. SIGTERM or SIGINT stops them gracefully: no new
    /// connections, in-flight requests finish (up to `SESSION_SHUTDOWN_TIMEOUT`).
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let handles = self.handles;
        tokio::spawn(async move {
            if wait_for_shutdown_signal().await.is_ok() {
                tracing::info!("shutdown signal received; draining in-flight requests");
                futures_util::future::join_all(handles.iter().map(|h| h.stop(true))).await;
            }
        });
        let served = self.run.await;
        // Events of ends that were not acknowledged still belong in the feed.
        let left = self.state.publisher.flush(OUTBOX_FLUSH).await;
        if left > 0 {
            tracing::error!(
                left,
                "stopped with session events still unpublished; caches may keep those sessions until their max age"
            );
        }
        served
    }
}

/// How long a stopping replica keeps trying to publish the events in its outbox.
const OUTBOX_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

async fn wait_for_shutdown_signal() -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
