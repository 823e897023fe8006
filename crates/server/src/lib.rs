//! # rkflow (server)
//!
//! The binary's library: configuration, the HTTP server around the GraphQL schema, the demo
//! seed and the command line. [`start`] is what both `rkflow serve` and the end-to-end tests
//! run.

pub mod config;
pub mod demo;
pub mod http;

use anyhow::Context as _;
use config::ServerConfig;
use rkflow_api::auth::Passwords;
use rkflow_api::clock::Clock;
use rkflow_api::{ApiState, EventBus, RkflowSchema};
use rkflow_store::Db;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct AppState {
    pub api: ApiState,
    pub schema: RkflowSchema,
    pub config: ServerConfig,
}

/// A running server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    /// Demo logins (email, password) when the demo was seeded now.
    pub demo_logins: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    join: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = self.join.await;
    }

    /// Waits until the server stops (after a signal).
    pub async fn wait(self) {
        let _ = self.join.await;
    }
}

/// Opens and migrates the database.
pub async fn open_database(url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(url)))?;
    db.migrate()
        .await
        .context("migrating the database failed")?;
    Ok(db)
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Migrates, seeds the demo when asked, binds and serves until `shutdown` (or a signal when
/// `with_signals`).
pub async fn start(config: ServerConfig, with_signals: bool) -> anyhow::Result<RunningServer> {
    let mut db = open_database(&config.database_url).await?;
    db.calendar = config.calendar.clone();
    let clock = match config.manual_clock {
        Some(start) => Clock::manual(start),
        None => Clock::System,
    };
    let passwords =
        Passwords::new(&config.auth).map_err(|_| anyhow::anyhow!("invalid argon2 parameters"))?;
    passwords
        .warm_up()
        .await
        .map_err(|_| anyhow::anyhow!("argon2 does not work on this machine"))?;
    let api = ApiState {
        db: db.clone(),
        clock,
        auth: config.auth.clone(),
        passwords,
        events: EventBus::new(),
        reminder_offsets: config.reminder_offsets.clone(),
    };
    let demo_logins = if config.demo {
        demo::seed(&api).await.context("seeding the demo failed")?
    } else {
        Vec::new()
    };
    let schema = rkflow_api::schema::builder(config.limits)
        .data(api.clone())
        .finish();
    let state = AppState {
        api,
        schema,
        config: config.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let scheduler = spawn_scheduler(state.api.clone(), config.scheduler_interval);
    let app = http::router(state.clone())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .into_make_service_with_connect_info::<SocketAddr>();
    let join = tokio::spawn(async move {
        let stop = async move {
            if with_signals {
                tokio::select! {
                    _ = shutdown_rx => {}
                    _ = shutdown_signal() => {}
                }
            } else {
                let _ = shutdown_rx.await;
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %err, "server error");
        }
        scheduler.abort();
        db.close().await;
    });
    Ok(RunningServer {
        addr,
        state,
        demo_logins,
        shutdown: Some(shutdown_tx),
        join,
    })
}

/// The deadline scheduler: a pass every `interval`, also right after start.
fn spawn_scheduler(api: ApiState, interval: std::time::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = rkflow_api::scheduler::run_tick(&api).await {
                tracing::warn!(
                    code = err.code.as_str(),
                    "scheduler pass failed; retrying later"
                );
            }
        }
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
