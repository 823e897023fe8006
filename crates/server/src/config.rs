//! Command line and environment configuration. Every setting has a flag, an environment
//! variable and a default; invalid values stop the server with a message naming the setting.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use rkflow_api::Limits;
use rkflow_api::auth::{
    ARGON2_OWASP_SETTINGS, AuthConfig, DEFAULT_ARGON2_ITERATIONS, DEFAULT_ARGON2_MEMORY_KIB,
    argon2_meets_owasp,
};
use rkflow_domain::deadline::Calendar;
use std::net::SocketAddr;

/// Parses a comma-separated list; an invalid item stops the server naming the setting.
fn parse_list<T>(
    text: &str,
    setting: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| parse(item).ok_or_else(|| anyhow::anyhow!("{setting}: `{item}` is not valid")))
        .collect()
}

#[derive(Parser, Debug)]
#[command(
    name = "rkflow",
    version,
    about = "Workflow engine for (joint) rekenkamer investigations: GraphQL server and tools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the `serve` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run pending migrations, then serve the GraphQL API.
    Serve(ServeArgs),
    /// Run pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the permission table (who may do what, in which phase).
    Permissions,
    /// Write a consistent backup to a new file while the server may be running (SQLite:
    /// VACUUM INTO; PostgreSQL: pg_dump), then print its rows per table and audit chain state.
    Backup(BackupArgs),
    /// Put a SQLite backup in place as a new database (never over an existing one). For
    /// PostgreSQL use pg_restore (README, "Backups and restore").
    Restore(RestoreArgs),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a user with the ADMIN role. The password comes from RKFLOW_ADMIN_PASSWORD or is
    /// asked for without echo.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit hash chain and report the first broken event (exit code 1).
    Verify(DatabaseArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Database URL: a SQLite file (`rkflow.db`, `sqlite://path`) or `postgres://…`.
    #[arg(long, env = "RKFLOW_DATABASE_URL", default_value = "rkflow.db")]
    pub database_url: String,
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// The backup file to write; refused when it exists.
    #[arg(long, value_name = "FILE")]
    pub to: std::path::PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The SQLite backup file (written by `rkflow backup`).
    #[arg(long, value_name = "FILE")]
    pub from: std::path::PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RKFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Seed an empty database with the 2019 Bloemendaal–Heemstede demo and print its logins.
    #[arg(long, env = "RKFLOW_DEMO")]
    pub demo: bool,
    /// Start a manual clock at this instant (RFC 3339); it moves only by `advanceClock`.
    #[arg(long, env = "RKFLOW_MANUAL_CLOCK")]
    pub manual_clock: Option<String>,
    /// Serve GraphiQL at GET /graphql (default: only with --demo).
    #[arg(long, env = "RKFLOW_GRAPHIQL", action = clap::ArgAction::Set)]
    pub graphiql: Option<bool>,
    /// Answer introspection queries (default: only with --demo).
    #[arg(long, env = "RKFLOW_INTROSPECTION", action = clap::ArgAction::Set)]
    pub introspection: Option<bool>,
    /// Answer plain fields at once instead of through async-graphql's per-field futures (the
    /// same answers; `false` only to compare the two).
    #[arg(long, env = "RKFLOW_PLAIN_FIELDS", default_value_t = true, action = clap::ArgAction::Set)]
    pub plain_fields: bool,
    /// Origins allowed to call the API from a browser (CORS), comma-separated; none by
    /// default.
    #[arg(long, env = "RKFLOW_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Take the client address from the first X-Forwarded-For entry (only behind a proxy
    /// that sets it).
    #[arg(long, env = "RKFLOW_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Minutes without a request after which a session ends.
    #[arg(long, env = "RKFLOW_SESSION_IDLE_MINUTES", default_value_t = 60)]
    pub session_idle_minutes: i64,
    /// Hours after login after which a session ends regardless.
    #[arg(long, env = "RKFLOW_SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: i64,
    /// Failed logins per account within the window before TOO_MANY_REQUESTS.
    #[arg(
        long,
        env = "RKFLOW_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub login_max_failures_per_account: u64,
    /// Failed logins per client address within the window before TOO_MANY_REQUESTS.
    #[arg(
        long,
        env = "RKFLOW_LOGIN_MAX_FAILURES_PER_CLIENT",
        default_value_t = 50
    )]
    pub login_max_failures_per_client: u64,
    /// Window for counting failed logins, in minutes.
    #[arg(
        long,
        env = "RKFLOW_LOGIN_THROTTLE_WINDOW_MINUTES",
        default_value_t = 15
    )]
    pub login_throttle_window_minutes: i64,
    /// argon2id memory in KiB for new password hashes; with the iterations it must reach one of
    /// OWASP's settings (README, "Configuration").
    #[arg(long, env = "RKFLOW_ARGON2_MEMORY_KIB", default_value_t = DEFAULT_ARGON2_MEMORY_KIB)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new password hashes (see the memory).
    #[arg(long, env = "RKFLOW_ARGON2_ITERATIONS", default_value_t = DEFAULT_ARGON2_ITERATIONS)]
    pub argon2_iterations: u32,
    /// Deepest selection nesting an operation may have.
    #[arg(long, env = "RKFLOW_MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_query_depth: usize,
    /// Highest complexity an operation may have.
    #[arg(long, env = "RKFLOW_MAX_QUERY_COMPLEXITY", default_value_t = 5_000)]
    pub max_query_complexity: usize,
    /// Aliased fields one document may use.
    #[arg(long, env = "RKFLOW_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Field selections one document may make (fragments counted where spread).
    #[arg(long, env = "RKFLOW_MAX_FIELDS", default_value_t = 400)]
    pub max_fields: usize,
    /// Root fields one operation may select.
    #[arg(long, env = "RKFLOW_MAX_ROOT_FIELDS", default_value_t = 20)]
    pub max_root_fields: usize,
    /// Seconds a GraphQL request may run before it is stopped.
    #[arg(long, env = "RKFLOW_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// Seconds a shutdown (SIGTERM) waits for in-flight requests before it drops them.
    #[arg(long, env = "RKFLOW_SHUTDOWN_GRACE_SECONDS", default_value_t = 25)]
    pub shutdown_grace_seconds: u64,
    /// Seconds between the deadline scheduler's passes.
    #[arg(long, env = "RKFLOW_SCHEDULER_INTERVAL_SECONDS", default_value_t = 30)]
    pub scheduler_interval_seconds: u64,
    /// Reminders before a deadline, in days, comma-separated.
    #[arg(long, env = "RKFLOW_REMINDER_DAYS", default_value = "7,1")]
    pub reminder_days: String,
    /// Extra days equated to holidays for deadlines (YYYY-MM-DD, comma-separated).
    #[arg(long, env = "RKFLOW_EXTRA_HOLIDAYS", default_value = "")]
    pub extra_holidays: String,
    /// Decoded investigations kept in memory between reads (about 50 KB each; 0: none). Each
    /// read still fetches the investigation and its snapshot and uses a kept value only when
    /// both are byte for byte what it was built from.
    #[arg(long, env = "RKFLOW_READ_CACHE_ENTRIES", default_value_t = rkflow_store::read_cache::DEFAULT_ENTRIES)]
    pub read_cache_entries: usize,
    /// Pooled database connections (1–1000; default on PostgreSQL twice the cores, 4–32, on
    /// SQLite 4). A query holds one until its answer is computed; on PostgreSQL count them per
    /// replica against the server's `max_connections`.
    #[arg(long, env = "RKFLOW_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Serve Prometheus metrics at GET /metrics (unauthenticated: keep it off the public
    /// network).
    #[arg(long, env = "RKFLOW_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Serve /metrics on this address only, instead of on the main listener.
    #[arg(long, env = "RKFLOW_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Export traces over OTLP (HTTP/protobuf) to this collector, e.g.
    /// http://otel-collector:4318 (`/v1/traces` is appended); off when unset.
    #[arg(long, env = "RKFLOW_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// The validated settings of a server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub demo: bool,
    pub manual_clock: Option<DateTime<Utc>>,
    pub graphiql: bool,
    /// Browser origins allowed by CORS (none: no CORS headers at all).
    pub cors_origins: Vec<String>,
    pub trust_forwarded_for: bool,
    pub auth: AuthConfig,
    pub limits: Limits,
    /// How long one GraphQL request may run.
    pub request_timeout: std::time::Duration,
    /// How long a shutdown waits for in-flight requests and subscriptions; then the remaining
    /// connections are dropped (their transactions roll back).
    pub shutdown_grace: std::time::Duration,
    /// Time between scheduler passes.
    pub scheduler_interval: std::time::Duration,
    /// How long before a deadline reminders go out.
    pub reminder_offsets: Vec<chrono::Duration>,
    /// Rest days for deadlines beyond the statutory holidays.
    pub calendar: Calendar,
    /// Entries of the store's read cache (`rkflow_store::read_cache`).
    pub read_cache_entries: usize,
    /// Pooled database connections (`None`: the backend's default).
    pub database_max_connections: Option<u32>,
    /// Serve GET /metrics.
    pub metrics: bool,
    /// A separate address for /metrics (then the main listener does not serve it).
    pub metrics_listen: Option<SocketAddr>,
    /// The OTLP/HTTP traces URL (`…/v1/traces`) when trace export is on.
    pub otlp_endpoint: Option<String>,
}

impl ServerConfig {
    /// Settings for tests: an address chosen by the OS, the given database, defaults else.
    pub fn for_tests(database_url: &str) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            database_url: database_url.to_string(),
            demo: false,
            manual_clock: None,
            graphiql: true,
            cors_origins: Vec::new(),
            trust_forwarded_for: true,
            auth: AuthConfig::default(),
            limits: Limits::default(),
            request_timeout: std::time::Duration::from_secs(30),
            shutdown_grace: std::time::Duration::from_secs(25),
            scheduler_interval: std::time::Duration::from_secs(30),
            reminder_offsets: vec![chrono::Duration::days(7), chrono::Duration::days(1)],
            calendar: Calendar::default(),
            read_cache_entries: rkflow_store::read_cache::DEFAULT_ENTRIES,
            database_max_connections: None,
            metrics: true,
            metrics_listen: None,
            otlp_endpoint: None,
        }
    }
}

/// The OTLP/HTTP traces URL for `RKFLOW_OTLP_ENDPOINT`: an http(s) URL with a host; a bare
/// collector address gets `/v1/traces` appended (as `OTEL_EXPORTER_OTLP_ENDPOINT` does).
pub fn otlp_traces_url(endpoint: &str) -> anyhow::Result<String> {
    let endpoint = endpoint.trim();
    let invalid = || {
        anyhow::anyhow!(
            "RKFLOW_OTLP_ENDPOINT / --otlp-endpoint: `{endpoint}` is not an http(s) URL like http://otel-collector:4318"
        )
    };
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(invalid)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || endpoint.contains(char::is_whitespace)
        || endpoint.contains(['?', '#'])
    {
        return Err(invalid());
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    })
}

impl TryFrom<ServeArgs> for ServerConfig {
    type Error = anyhow::Error;

    fn try_from(args: ServeArgs) -> anyhow::Result<ServerConfig> {
        let listen: SocketAddr = args.listen.parse().with_context(|| {
            format!(
                "RKFLOW_LISTEN / --listen: `{}` is not an address like 127.0.0.1:8080",
                args.listen
            )
        })?;
        let manual_clock = match &args.manual_clock {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .with_context(|| format!("--manual-clock: `{text}` is not an RFC 3339 time like 2019-03-21T09:00:00+01:00"))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        if args.session_idle_minutes < 1 {
            bail!("RKFLOW_SESSION_IDLE_MINUTES must be at least 1");
        }
        if args.session_absolute_hours < 1 {
            bail!("RKFLOW_SESSION_ABSOLUTE_HOURS must be at least 1");
        }
        if args.login_max_failures_per_account < 1 {
            bail!("RKFLOW_LOGIN_MAX_FAILURES_PER_ACCOUNT must be at least 1");
        }
        if args.login_max_failures_per_client < 1 {
            bail!("RKFLOW_LOGIN_MAX_FAILURES_PER_CLIENT must be at least 1");
        }
        if args.login_throttle_window_minutes < 1 {
            bail!("RKFLOW_LOGIN_THROTTLE_WINDOW_MINUTES must be at least 1");
        }
        if !argon2_meets_owasp(args.argon2_memory_kib, args.argon2_iterations) {
            let settings = ARGON2_OWASP_SETTINGS
                .iter()
                .map(|(memory, iterations)| format!("{memory}/{iterations}"))
                .collect::<Vec<_>>()
                .join(", ");
            bail!(
                "RKFLOW_ARGON2_MEMORY_KIB and RKFLOW_ARGON2_ITERATIONS must reach one of OWASP's argon2id settings (KiB/iterations): {settings}"
            );
        }
        if !(3..=64).contains(&args.max_query_depth) {
            bail!("RKFLOW_MAX_QUERY_DEPTH must be between 3 and 64");
        }
        if !(100..=1_000_000).contains(&args.max_query_complexity) {
            bail!("RKFLOW_MAX_QUERY_COMPLEXITY must be between 100 and 1000000");
        }
        if args
            .db_max_connections
            .is_some_and(|connections| !(1..=1_000).contains(&connections))
        {
            bail!("RKFLOW_DB_MAX_CONNECTIONS must be between 1 and 1000");
        }
        if !(1..=600).contains(&args.request_timeout_seconds) {
            bail!("RKFLOW_REQUEST_TIMEOUT_SECONDS must be between 1 and 600");
        }
        if !(1..=600).contains(&args.shutdown_grace_seconds) {
            bail!(
                "RKFLOW_SHUTDOWN_GRACE_SECONDS / --shutdown-grace-seconds must be between 1 and 600 (keep it below the orchestrator's kill timeout, 30 s in Kubernetes)"
            );
        }
        if args.max_aliases > 1_000 || args.max_root_fields == 0 || args.max_fields < 50 {
            bail!(
                "RKFLOW_MAX_ALIASES must be at most 1000, RKFLOW_MAX_ROOT_FIELDS at least 1 and RKFLOW_MAX_FIELDS at least 50"
            );
        }
        if args.scheduler_interval_seconds < 1 {
            bail!("RKFLOW_SCHEDULER_INTERVAL_SECONDS must be at least 1");
        }
        let reminder_offsets = parse_list(&args.reminder_days, "RKFLOW_REMINDER_DAYS", |text| {
            text.parse::<u32>()
                .ok()
                .filter(|days| (1..=365).contains(days))
                .map(|days| chrono::Duration::days(i64::from(days)))
        })?;
        let extra_holidays = parse_list(&args.extra_holidays, "RKFLOW_EXTRA_HOLIDAYS", |text| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
        })?;
        let metrics_listen = match &args.metrics_listen {
            Some(text) if !text.trim().is_empty() => {
                let addr: SocketAddr = text.trim().parse().with_context(|| {
                    format!(
                        "RKFLOW_METRICS_LISTEN / --metrics-listen: `{text}` is not an address like 0.0.0.0:9090"
                    )
                })?;
                if addr == listen && addr.port() != 0 {
                    bail!("RKFLOW_METRICS_LISTEN must differ from RKFLOW_LISTEN ({listen})");
                }
                Some(addr)
            }
            _ => None,
        };
        if metrics_listen.is_some() && !args.metrics {
            bail!("RKFLOW_METRICS_LISTEN is set but RKFLOW_METRICS is false: unset one of them");
        }
        let otlp_endpoint = match &args.otlp_endpoint {
            Some(text) if !text.trim().is_empty() => {
                let url = otlp_traces_url(text)?;
                if !cfg!(feature = "otlp") {
                    bail!(
                        "RKFLOW_OTLP_ENDPOINT / --otlp-endpoint is set, but this rkflow was built without trace export: build it with `cargo build --release --features otlp`, or unset the setting"
                    );
                }
                Some(url)
            }
            _ => None,
        };
        let cors_origins = parse_list(&args.cors_origins, "RKFLOW_CORS_ORIGINS", |origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && origin != "*";
            valid.then(|| origin.to_string())
        })?;
        Ok(ServerConfig {
            request_timeout: std::time::Duration::from_secs(args.request_timeout_seconds),
            shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_seconds),
            scheduler_interval: std::time::Duration::from_secs(args.scheduler_interval_seconds),
            metrics: args.metrics,
            metrics_listen,
            otlp_endpoint,
            reminder_offsets,
            calendar: Calendar {
                extra_holidays: extra_holidays.into_iter().collect(),
            },
            read_cache_entries: args.read_cache_entries,
            database_max_connections: args.db_max_connections,
            listen,
            database_url: args.database.database_url,
            demo: args.demo,
            manual_clock,
            graphiql: args.graphiql.unwrap_or(args.demo),
            cors_origins,
            trust_forwarded_for: args.trust_forwarded_for,
            auth: AuthConfig {
                idle_timeout: chrono::Duration::minutes(args.session_idle_minutes),
                absolute_timeout: chrono::Duration::hours(args.session_absolute_hours),
                throttle_window: chrono::Duration::minutes(args.login_throttle_window_minutes),
                max_failures_per_account: args.login_max_failures_per_account,
                max_failures_per_client: args.login_max_failures_per_client,
                argon2_memory_kib: args.argon2_memory_kib,
                argon2_iterations: args.argon2_iterations,
                argon2_parallelism: 1,
            },
            limits: Limits {
                max_depth: args.max_query_depth,
                max_complexity: args.max_query_complexity,
                introspection: args.introspection.unwrap_or(args.demo),
                plain_fields: args.plain_fields,
                document: rkflow_api::limits::DocumentLimits {
                    max_aliases: args.max_aliases,
                    max_fields: args.max_fields,
                    max_root_fields: args.max_root_fields,
                    ..Default::default()
                },
            },
        })
    }
}
