//! `rkflow-bench`: the benchmark of issue 7 (see BENCHMARKS.md and deploy/bench/run.sh).
//!
//! - `seed`: a deterministic population written through the store.
//! - `load`: the HTTP load driver for the workloads W1–W4.
//! - `statements`: SQL statements per request, counted by the store's own counter on a server
//!   started in this process (`rkflow_server::start`) on the same database.
//! - `startup`: time from spawning `rkflow serve` to `/readyz` answering 200.
//! - `pgbench-scripts`: the raw SQL of W1–W3 as pgbench scripts, on the same data.
//! - `report`: the results file (JSON lines) as Markdown tables with the ratios.

mod load;
mod raw;
mod report;
mod rng;
mod seed;
mod stmts;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "rkflow-bench", about = "The rkflow benchmark (issue 7)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fill an empty database with a deterministic population.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 2000)]
        investigations: usize,
        #[arg(long, default_value_t = 2019)]
        seed: u64,
        /// Investigations seeded in parallel (SQLite serialises writers anyway).
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Run one workload against a running server.
    Load {
        #[arg(long)]
        url: String,
        #[arg(long, value_enum)]
        workload: load::Workload,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Seconds to measure.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Seconds to run before measuring.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// The server's pid: CPU time per request and peak RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Also measure the CPU time of every `postgres` process.
        #[arg(long)]
        postgres_cpu: bool,
        /// W1: investigations per page.
        #[arg(long, default_value_t = 50)]
        first: i64,
        #[arg(long, default_value = "")]
        label: String,
        /// Append the figures as one JSON line to this file.
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// Count SQL statements per request of W1–W4 (server started in this process).
    Statements {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 20)]
        requests: u64,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        json_out: Option<PathBuf>,
        /// Write marker statements around captured requests (PostgreSQL with
        /// log_statement = all; see pgbench-scripts).
        #[arg(long)]
        pg_marks: bool,
    },
    /// Time from spawning `rkflow serve` to /readyz answering 200.
    Startup {
        /// The rkflow binary.
        #[arg(long)]
        rkflow: PathBuf,
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 18089)]
        port: u16,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// Turn the statements the server ran for W1–W3 (captured from the PostgreSQL log by
    /// `statements --pg-marks`) into pgbench scripts.
    PgbenchScripts {
        /// The PostgreSQL server log.
        #[arg(long)]
        log: PathBuf,
        /// Byte offset in the log where the capture started.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Print the CPU seconds every `postgres` process has used so far (run.sh reads it before
    /// and after each pgbench run).
    PostgresCpu,
    /// Print the results file as Markdown.
    Report { results: PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed {
            database_url,
            investigations,
            seed,
            jobs,
        } => seed::seed(&database_url, investigations, seed, jobs).await,
        Command::Load {
            url,
            workload,
            concurrency,
            duration,
            warmup,
            server_pid,
            postgres_cpu,
            first,
            label,
            json_out,
        } => {
            load::load(load::LoadOptions {
                url,
                workload,
                concurrency,
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                server_pid,
                postgres_cpu,
                label,
                json_out,
                first,
            })
            .await
        }
        Command::Statements {
            database_url,
            requests,
            label,
            json_out,
            pg_marks,
        } => {
            stmts::statements(
                &database_url,
                requests,
                &label,
                json_out.as_deref(),
                pg_marks,
            )
            .await
        }
        Command::Startup {
            rkflow,
            database_url,
            runs,
            port,
            label,
            json_out,
        } => {
            stmts::startup(
                &rkflow,
                &database_url,
                runs,
                port,
                &label,
                json_out.as_deref(),
            )
            .await
        }
        Command::PgbenchScripts {
            log,
            offset,
            out_dir,
        } => raw::scripts(&log, offset, &out_dir),
        Command::PostgresCpu => {
            println!("{:.3}", load::postgres_cpu_seconds());
            Ok(())
        }
        Command::Report { results } => report::report(&results),
    }
}
