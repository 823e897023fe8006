//! # rkflow (server)
//!
//! The binary's library: configuration, the HTTP server around the GraphQL schema, the demo
//! seed and the command line. [`start`] is what both `rkflow serve` and the end-to-end tests
//! run.

pub mod config;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod request_id;
pub mod serve;
pub mod telemetry;

use anyhow::Context as _;
use config::ServerConfig;
use metrics::Metrics;
use rkflow_api::auth::Passwords;
use rkflow_api::clock::Clock;
use rkflow_api::schema::GuardedSchema;
use rkflow_api::{ApiState, EventBus};
use rkflow_store::Db;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What every HTTP handler shares. axum clones it for every request (each `State` extractor
/// and layer), so it is one `Arc`: cloning the fields themselves allocated (the
/// configuration's strings and lists; 0.5 % of the server's CPU on W2 in a profile, within the
/// noise of an A/B run).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// The fields of [`AppState`].
pub struct SharedState {
    pub api: ApiState,
    pub schema: GuardedSchema,
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    /// Ends subscription sockets at shutdown.
    pub shutdown: serve::Shutdown,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// How long a shutdown waits, after the grace period for requests, for the scheduler, the
/// event listener and the pool to close (25 + 3 s stays below Kubernetes' 30 s).
const AFTER_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// A running server.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where /metrics is served when it has its own listener (`RKFLOW_METRICS_LISTEN`).
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    /// Demo logins (email, password) when the demo was seeded now.
    pub demo_logins: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    join: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (within the grace period; then drops
    /// them), ends subscriptions, stops the background tasks, closes the pool, and waits.
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
    open_database_with(url, None).await
}

/// [`open_database`] with at most `max_connections` pooled connections (`None`: the default).
pub async fn open_database_with(url: &str, max_connections: Option<u32>) -> anyhow::Result<Db> {
    let db = Db::connect_with(url, max_connections)
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
    let mut db = open_database_with(&config.database_url, config.database_max_connections).await?;
    db.calendar = config.calendar.clone();
    db.read_cache = std::sync::Arc::new(rkflow_store::read_cache::ReadCache::new(
        config.read_cache_entries,
    ));
    let events = if db.is_postgres() {
        EventBus::fed_by_database()
    } else {
        EventBus::new()
    };
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
    let metrics = Arc::new(Metrics::new(&rkflow_api::schema::sdl()));
    let api = ApiState {
        db: db.clone(),
        clock,
        auth: config.auth.clone(),
        passwords,
        events: events.clone(),
        reminder_offsets: config.reminder_offsets.clone(),
        logins: rkflow_api::auth::LoginObserver::new({
            let metrics = metrics.clone();
            move |outcome| metrics.login(outcome)
        }),
    };
    // Subscriptions hear of every commit through the database when replicas may share it.
    let listener_task = rkflow_api::events::start_listener(&db, &events)
        .await
        .context("listening for committed audit events failed")?;
    let demo_logins = if config.demo {
        demo::seed(&api).await.context("seeding the demo failed")?
    } else {
        Vec::new()
    };
    // Investigations written before the snapshot existed (or with an older format) are read
    // from their tables until this has written theirs.
    tokio::spawn({
        let db = db.clone();
        async move {
            match rkflow_store::snapshot::backfill(&db).await {
                Ok(0) => {}
                Ok(written) => tracing::info!(written, "investigation snapshots written"),
                Err(err) => tracing::warn!(error = %err, "writing investigation snapshots failed"),
            }
        }
    });
    let schema = rkflow_api::schema::GuardedSchema::new(config.limits, api.clone());
    let state = AppState(Arc::new(SharedState {
        api,
        schema,
        config: config.clone(),
        metrics: metrics.clone(),
        shutdown: serve::Shutdown::new(events.clone()),
    }));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_server = match config.metrics_listen {
        Some(metrics_listen) if config.metrics => {
            let listener = tokio::net::TcpListener::bind(metrics_listen)
                .await
                .with_context(|| {
                    format!("cannot listen on {metrics_listen} (RKFLOW_METRICS_LISTEN)")
                })?;
            let metrics_addr = listener.local_addr()?;
            let app = http::metrics_router(state.clone());
            let task = tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, app).await {
                    tracing::error!(error = %err, "metrics server error");
                }
            });
            Some((metrics_addr, task))
        }
        _ => None,
    };
    let metrics_addr = metrics_server.as_ref().map(|(addr, _)| *addr);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let scheduler = spawn_scheduler(state.api.clone(), config.scheduler_interval, metrics);
    let app = http::router(state.clone())
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_id::make_span)
                .on_response(request_id::on_response),
        )
        .layer(axum::middleware::from_fn(request_id::middleware));
    let shutdown = state.shutdown.clone();
    let grace = config.shutdown_grace;
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
        };
        // Stops accepting, ends the subscriptions (closing the event bus also stops the
        // scheduler and the listener) and drains the connections within the grace period.
        let drained = serve::serve(listener, app, stop, &shutdown, grace).await;
        // The scheduler finishes the pass under way (one transaction per investigation), the
        // listener gives its connection back, the pool closes: all within a few seconds more.
        let deadline = tokio::time::Instant::now() + AFTER_DRAIN;
        for (task, name) in [
            (Some(scheduler), "scheduler"),
            (listener_task, "event listener"),
        ] {
            let Some(mut task) = task else { continue };
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("shutting down: the {name} did not stop in time; dropped");
                task.abort();
            }
        }
        if let Some((_, task)) = metrics_server {
            task.abort();
        }
        // A dropped request's connection may be stuck (behind a lock): not worth waiting for;
        // the process ends the session, and the database rolls its transaction back.
        let deadline = if drained {
            deadline
        } else {
            deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(500))
        };
        if tokio::time::timeout_at(deadline, db.close()).await.is_err() {
            tracing::warn!(
                "shutting down: connections still busy; ending their sessions (the database rolls back what they had begun)"
            );
        }
        tracing::info!("shut down");
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        demo_logins,
        shutdown: Some(shutdown_tx),
        join,
    })
}

/// The deadline scheduler: a pass every `interval`, also right after start, until the event
/// bus closes at shutdown (a pass under way finishes first).
fn spawn_scheduler(
    api: ApiState,
    interval: std::time::Duration,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = api.events.closed() => break,
            }
            let result = rkflow_api::scheduler::run_tick(&api).await;
            metrics.scheduler_pass(result.is_ok());
            if let Err(err) = result {
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
