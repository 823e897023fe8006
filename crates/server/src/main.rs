//! `rkflow`: serve, migrate, print the schema, manage accounts, verify the audit chain, back up
//! and restore.

use anyhow::{Context as _, bail};
use clap::Parser;
use rkflow_api::auth::{AuthConfig, Passwords, check_password_for};
use rkflow_server::config::{AdminCommand, AuditCommand, Cli, Command, ServerConfig};
use rkflow_server::{open_database, start};
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: a request allocates and frees many small values
/// (rows, snapshots, GraphQL values) on whichever worker thread runs it, where glibc's
/// malloc and free took about a third of the server's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v3), which libmimalloc-sys does not name (the
/// benchmark's peak RSS shows whether it takes effect).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with mimalloc before it goes back to the system: 10 ms instead
/// of mimalloc's default second. A thread that goes idle (a blocking thread after an argon2
/// hash, a worker after a burst of dashboards) would otherwise keep its freed pages until it
/// allocates again (W1 at concurrency 16: peak RSS ~105 MB with the default, ~80 MB with 0).
/// With 0, every request's pages went back and were faulted in again: page faults took a fifth
/// of the server's CPU on W1 (BENCHMARKS.md, eleventh session). Measured at c=16 on
/// PostgreSQL, 0 → 10 ms: W1 server CPU 3.8 → 3.1 ms per request, 273 → 296–310 req/s, peak
/// RSS +3–5 MB; 100 ms gave 2.8 ms but took SQLite past 100 MB. `MIMALLOC_PURGE_DELAY`, when
/// set, still decides.
fn purge_freed_memory_soon() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_get/mi_option_set only read and write mimalloc's option table. The
    // default (1000 ms in v3's options.c) is checked first, so a mimalloc whose options are
    // numbered differently is left as it is.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}

/// See [`purge_freed_memory_soon`].
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// How often at most, in milliseconds, a worker thread that goes idle hands its freed memory
/// back ([`collect_when_idle`]); `RKFLOW_IDLE_COLLECT_MS` overrides it, 0 switches it off.
/// Measured on SQLite (BENCHMARKS.md, twelfth session): 10 ms and 50 ms both kept the peak
/// with logins at 90–97 MB (105–119 MB without); 10 ms cost logins and writes at concurrency 1
/// a tenth more CPU (memory given back between two requests was faulted in again), 50 ms
/// nothing measurable.
const IDLE_COLLECT_MS: u64 = 50;

/// The idle-collect interval from `RKFLOW_IDLE_COLLECT_MS` (unset: the default); `None`
/// switches the collection off.
fn idle_collect_interval(setting: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    let ms = match setting {
        None => IDLE_COLLECT_MS,
        Some(text) => text.trim().parse().map_err(|_| {
            format!(
                "RKFLOW_IDLE_COLLECT_MS must be a number of milliseconds (0: off), not {text:?}"
            )
        })?,
    };
    Ok((ms > 0).then(|| std::time::Duration::from_millis(ms)))
}

/// Whether a thread that last collected at `last` collects again at `now`.
fn collect_due(
    last: Option<std::time::Instant>,
    now: std::time::Instant,
    interval: std::time::Duration,
) -> bool {
    last.is_none_or(|at| now.duration_since(at) >= interval)
}

/// Run by every tokio worker thread just before it parks (has nothing to do): gives the
/// thread's empty pages back to mimalloc and purges what has waited past the purge delay
/// ([`purge_freed_memory_soon`]), at most once per `interval` per thread.
///
/// mimalloc purges only from within an allocation or a free, so without this a thread that
/// goes idle keeps what it freed until its next request, and the next burst's memory comes on
/// top of the last one's: W3's leftovers under W4's password hashes took SQLite's peak to
/// 105–119 MB, 90–97 MB with it.
fn collect_when_idle(interval: std::time::Duration) {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    LAST.with(|last| {
        if collect_due(last.get(), now, interval) {
            last.set(Some(now));
            // SAFETY: mi_collect frees the calling thread's own empty mimalloc pages and purges
            // the arenas' expired ranges; it touches no memory that is still allocated.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
    });
}

fn main() -> ExitCode {
    purge_freed_memory_soon();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    let setting = std::env::var("RKFLOW_IDLE_COLLECT_MS").ok();
    match idle_collect_interval(setting.as_deref()) {
        Ok(Some(interval)) => {
            runtime.on_thread_park(move || collect_when_idle(interval));
        }
        Ok(None) => {}
        Err(err) => {
            eprintln!("rkflow: {err}");
            return ExitCode::FAILURE;
        }
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(async_main()),
        Err(err) => {
            eprintln!("rkflow: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` checks its settings before logging starts: the trace export is one of them.
    let serve = match &cli.command {
        Command::Serve(args) => match ServerConfig::try_from(args.clone()) {
            Ok(config) => Some(config),
            Err(err) => {
                eprintln!("rkflow: {err:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let otlp = serve
        .as_ref()
        .and_then(|config| config.otlp_endpoint.as_deref());
    let telemetry = match rkflow_server::telemetry::init(otlp) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("rkflow: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = match run(cli, serve).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rkflow: {err:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

async fn run(cli: Cli, serve: Option<ServerConfig>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = match serve {
                Some(config) => config,
                None => ServerConfig::try_from(args)?,
            };
            let server = start(config.clone(), true).await?;
            if !server.demo_logins.is_empty() {
                println!("rkflow demo: the 2019 Bloemendaal–Heemstede investigation is ready.");
                println!(
                    "Log in with any of these accounts (password for all: {}):",
                    server.demo_logins[0].1
                );
                for (email, _) in &server.demo_logins {
                    println!("  {email}");
                }
            }
            println!(
                "rkflow serving on http://{}/graphql (GraphiQL {}), database {}",
                server.addr,
                if config.graphiql { "on" } else { "off" },
                rkflow_server::redact(&config.database_url)
            );
            server.wait().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            let db = open_database(&args.database_url).await?;
            let written = rkflow_store::snapshot::backfill(&db)
                .await
                .context("writing investigation snapshots failed")?;
            println!("migrations applied; {written} investigation snapshots written");
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            print!("{}", rkflow_api::schema::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Permissions => {
            print!("{}", rkflow_domain::permission::render_table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    database,
                },
        } => {
            let password = match std::env::var("RKFLOW_ADMIN_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let first = rpassword::prompt_password("Password for the new admin: ")
                        .context("reading the password")?;
                    let again = rpassword::prompt_password("Repeat the password: ")
                        .context("reading the password")?;
                    if first != again {
                        bail!("the passwords differ");
                    }
                    first
                }
            };
            check_password_for(&password, &email, &name).map_err(|e| anyhow::anyhow!(e.message))?;
            let db = open_database(&database.database_url).await?;
            let passwords =
                Passwords::new(&AuthConfig::default()).map_err(|e| anyhow::anyhow!(e.message))?;
            let hash = passwords
                .hash(&password)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let created =
                rkflow_store::accounts::create_admin(&db, chrono::Utc::now(), &email, &name, &hash)
                    .await
                    .map_err(|err| match err {
                        rkflow_store::StoreError::Domain(domain) => anyhow::anyhow!("{domain}"),
                        other => anyhow::anyhow!(other),
                    })?;
            println!("created admin {} ({})", created.email, created.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => {
            let url = &args.database.database_url;
            let summary = rkflow_store::backup::backup(url, &args.to)
                .await
                .with_context(|| format!("no backup of {} made", rkflow_server::redact(url)))?;
            println!("backup written to {}", args.to.display());
            Ok(print_summary(&summary))
        }
        Command::Restore(args) => {
            let url = &args.database.database_url;
            let summary = rkflow_store::backup::restore_sqlite(&args.from, url)
                .await
                .context("nothing restored")?;
            println!(
                "restored {} as {} (migrated when the server starts or by `rkflow migrate`)",
                args.from.display(),
                rkflow_server::redact(url)
            );
            Ok(print_summary(&summary))
        }
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => {
            let db = open_database(&args.database_url).await?;
            let result = rkflow_store::audit::verify_chain(&db.conn).await?;
            if result.intact {
                println!(
                    "audit chain intact: {} events checked",
                    result.events_checked
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "audit chain BROKEN at event {} ({} events checked)",
                    result.first_broken_seq.unwrap_or_default(),
                    result.events_checked
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// Prints a backup's rows per table and audit chain; exit code 1 when the chain is broken.
fn print_summary(summary: &rkflow_store::backup::Summary) -> ExitCode {
    println!("rows per table:");
    for (table, rows) in &summary.counts {
        println!("  {table:<32} {rows:>10}");
    }
    let audit = &summary.audit;
    if audit.intact {
        println!(
            "audit chain intact: {} events checked",
            audit.events_checked
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "audit chain BROKEN at event {} ({} events checked)",
            audit.first_broken_seq.unwrap_or_default(),
            audit.events_checked
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_idle_collect_interval_comes_from_the_environment() {
        assert_eq!(
            idle_collect_interval(None),
            Ok(Some(Duration::from_millis(IDLE_COLLECT_MS)))
        );
        assert_eq!(idle_collect_interval(Some("0")), Ok(None));
        assert_eq!(
            idle_collect_interval(Some(" 200 ")),
            Ok(Some(Duration::from_millis(200)))
        );
        for unreadable in ["soon", "", "-5", "1.5"] {
            let err = idle_collect_interval(Some(unreadable)).unwrap_err();
            assert!(err.contains("RKFLOW_IDLE_COLLECT_MS"), "{err}");
        }
    }

    #[test]
    fn a_thread_collects_at_most_once_per_interval() {
        let interval = Duration::from_millis(50);
        let start = Instant::now();
        assert!(collect_due(None, start, interval));
        assert!(!collect_due(Some(start), start, interval));
        assert!(!collect_due(
            Some(start),
            start + Duration::from_millis(49),
            interval
        ));
        assert!(collect_due(Some(start), start + interval, interval));
    }

    #[test]
    fn collecting_on_an_idle_thread_keeps_live_memory_intact() {
        let interval = Duration::from_millis(IDLE_COLLECT_MS);
        let kept: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 64 * 1024]).collect();
        drop((0..64).map(|_| vec![0u8; 64 * 1024]).collect::<Vec<_>>());
        collect_when_idle(interval);
        collect_when_idle(interval);
        for (i, block) in kept.iter().enumerate() {
            assert!(block.iter().all(|&b| usize::from(b) == i));
        }
    }
}
