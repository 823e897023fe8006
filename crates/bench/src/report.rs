//! The results file (JSON lines from `load`, `statements`, `startup` and run.sh's pgbench
//! lines) as Markdown tables, with rkflow / raw-SQL ratios.

use anyhow::Context as _;
use serde_json::Value;
use std::path::Path;

fn number(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

/// The columns of a backend's table, in order; each row has one cell per column.
const COLUMNS: [&str; 15] = [
    "workload",
    "c",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU ms/req",
    "postgres CPU ms/req",
    "driver CPU ms/req",
    "statements/req",
    "peak RSS MB",
    "raw SQL tx/s",
    "raw SQL: postgres CPU ms/tx",
    "raw SQL: pgbench CPU ms/tx",
    "rkflow / raw",
];

/// One Markdown table row: `| a | b | … |`.
fn table_row(cells: impl IntoIterator<Item = String>) -> String {
    let cells: Vec<String> = cells.into_iter().collect();
    format!("| {} |", cells.join(" | "))
}

pub fn report(results: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of_kind = |kind: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["kind"] == Value::String(kind.into()))
            .collect()
    };
    let mut labels: Vec<String> = Vec::new();
    for line in of_kind("rkflow") {
        let label = line["label"].as_str().unwrap_or("").to_string();
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    for label in &labels {
        println!("### {label}\n");
        println!("{}", table_row(COLUMNS.iter().map(|c| c.to_string())));
        println!("|{}", "---|".repeat(COLUMNS.len()));
        for line in of_kind("rkflow")
            .into_iter()
            .filter(|l| l["label"].as_str() == Some(label))
        {
            let workload = line["workload"].as_str().unwrap_or("");
            let concurrency = line["concurrency"].as_u64().unwrap_or(0);
            let statements = of_kind("statements").into_iter().find(|s| {
                s["label"].as_str() == Some(label)
                    && s["workload"].as_str() == Some(workload)
                    && s["first"].as_i64() == Some(50)
            });
            let raw = of_kind("pgbench").into_iter().find(|p| {
                p["label"].as_str() == Some(label)
                    && p["workload"].as_str() == Some(workload)
                    && p["concurrency"].as_u64() == Some(concurrency)
            });
            let rps = number(line, "rps");
            let raw_tps = raw.and_then(|r| number(r, "tps"));
            let ratio = match (rps, raw_tps) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b * 100.0),
                _ => None,
            };
            let cells: [String; COLUMNS.len()] = [
                workload.to_uppercase(),
                concurrency.to_string(),
                fmt(rps, 1),
                fmt(number(line, "p50_ms"), 2),
                fmt(number(line, "p99_ms"), 2),
                line["errors"].as_u64().unwrap_or(0).to_string(),
                fmt(number(line, "server_cpu_ms_per_req"), 2),
                fmt(number(line, "postgres_cpu_ms_per_req"), 2),
                fmt(number(line, "driver_cpu_ms_per_req"), 2),
                fmt(
                    statements.and_then(|s| number(s, "statements_per_request")),
                    1,
                ),
                fmt(number(line, "peak_rss_kb").map(|kb| kb / 1024.0), 1),
                fmt(raw_tps, 1),
                fmt(raw.and_then(|r| number(r, "postgres_cpu_ms_per_tx")), 2),
                fmt(raw.and_then(|r| number(r, "pgbench_cpu_ms_per_tx")), 2),
                ratio.map_or("–".into(), |r| format!("{r:.0} %")),
            ];
            println!("{}", table_row(cells));
        }
        println!();
        let w1: Vec<String> = of_kind("statements")
            .into_iter()
            .filter(|s| s["label"].as_str() == Some(label) && s["workload"] == "w1")
            .map(|s| {
                format!(
                    "first {}: {}",
                    s["first"].as_i64().unwrap_or(0),
                    fmt(number(s, "statements_per_request"), 1)
                )
            })
            .collect();
        if !w1.is_empty() {
            println!(
                "W1 statements per request by page size: {}\n",
                w1.join(", ")
            );
        }
        for startup in of_kind("startup")
            .into_iter()
            .filter(|s| s["label"].as_str() == Some(label))
        {
            println!(
                "Start-up to ready: median {} ms (min {} ms, max {} ms, {} runs)\n",
                fmt(number(startup, "median_ms"), 0),
                fmt(number(startup, "min_ms"), 0),
                fmt(number(startup, "max_ms"), 0),
                startup["runs"].as_u64().unwrap_or(0)
            );
        }
    }
    for info in of_kind("info") {
        if let Some(text) = info["text"].as_str() {
            println!("- {text}");
        }
    }
    Ok(())
}
