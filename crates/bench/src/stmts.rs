//! Statements per request (the store's counter, read from a server in this process) and
//! start-up time (a spawned `rkflow serve`).

use crate::load::{self, Client, Workload};
use anyhow::{Context as _, bail};
use rkflow_server::config::ServerConfig;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts the server in this process on `url` and runs each workload `requests` times, one
/// after the other, reading `Db::statement_count()` around them.
///
/// With `marks` (PostgreSQL), the first `CAPTURED` requests of W1 (50), W2 and W3 are each
/// wrapped in marker statements sent on a connection of our own, so that with
/// `log_statement = all` the server log shows exactly which statements each request ran
/// (`pgbench-scripts` turns them into the raw-SQL baseline).
pub async fn statements(
    url: &str,
    requests: u64,
    label: &str,
    json_out: Option<&Path>,
    marks: bool,
) -> anyhow::Result<()> {
    let marker = if marks {
        Some(rkflow_store::Db::connect(url).await?)
    } else {
        None
    };
    let mut config = ServerConfig::for_tests(url);
    // No scheduler pass during the count (the first one runs right at start).
    config.scheduler_interval = Duration::from_secs(3600);
    let server = rkflow_server::start(config, false).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = Client::new(&format!("http://{}", server.addr))?;
    let db = server.state.api.db.clone();
    let cases = [
        (Workload::W1, 50),
        (Workload::W1, 10),
        (Workload::W1, 1),
        (Workload::W2, 50),
        (Workload::W3, 50),
        (Workload::W4, 50),
    ];
    for (workload, first) in cases {
        let prepared = load::prepare(&client, workload, first).await?;
        load::one(&client, &prepared, 0).await?;
        let before = db.statement_count();
        for n in 1..=requests {
            let mark = match &marker {
                Some(db) if n <= CAPTURED && first == 50 && workload != Workload::W4 => Some(db),
                _ => None,
            };
            if let Some(db) = mark {
                mark_log(db, workload, n, "begin").await?;
            }
            load::one(&client, &prepared, n)
                .await
                .with_context(|| format!("{} request {n}", workload.name()))?;
            if let Some(db) = mark {
                mark_log(db, workload, n, "end").await?;
            }
        }
        let per_request = (db.statement_count() - before) as f64 / requests as f64;
        let per_request = per_request.max(0.0);
        let shown = if workload == Workload::W1 {
            format!("w1 (first {first})")
        } else {
            workload.name().to_string()
        };
        println!("{label} {shown}: {per_request:.2} statements per request");
        if let Some(path) = json_out {
            load::append_line(
                path,
                &json!({
                    "kind": "statements",
                    "label": label,
                    "workload": workload.name(),
                    "first": first,
                    "statements_per_request": per_request,
                }),
            )?;
        }
    }
    server.stop().await;
    Ok(())
}

/// Requests per workload whose statements are captured for the pgbench scripts.
pub const CAPTURED: u64 = 10;

/// A marker in the PostgreSQL log: `rkflow-bench-mark <workload> <n> <begin|end>`.
async fn mark_log(
    db: &rkflow_store::Db,
    workload: Workload,
    n: u64,
    edge: &str,
) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    db.conn
        .execute_unprepared(&format!(
            "SELECT 'rkflow-bench-mark {} {n} {edge}'",
            workload.name()
        ))
        .await?;
    // The log is written by each backend; give the server's last line time to land first.
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// Spawns `rkflow serve` `runs` times and measures the time until /readyz answers 200.
pub async fn startup(
    rkflow: &Path,
    url: &str,
    runs: usize,
    port: u16,
    label: &str,
    json_out: Option<&Path>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let mut child = std::process::Command::new(rkflow)
            .args(["serve", "--database-url", url, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("RKFLOW_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", rkflow.display()))?;
        loop {
            if let Ok(response) = http.get(&ready).send().await
                && response.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                bail!("rkflow was not ready within 30 s");
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("rkflow exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{label} start-up to ready: median {median:.0} ms, min {:.0} ms, max {:.0} ms ({} runs)",
        times[0],
        times[times.len() - 1],
        times.len()
    );
    if let Some(path) = json_out {
        load::append_line(
            path,
            &json!({ "kind": "startup", "label": label, "median_ms": median, "min_ms": times[0],
                     "max_ms": times[times.len() - 1], "runs": times.len() }),
        )?;
    }
    Ok(())
}
