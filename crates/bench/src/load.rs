//! The load driver: logs in, prepares what a workload needs, then runs it from `concurrency`
//! workers for a fixed duration and reports requests/s, latency percentiles and errors, and
//! (with `--server-pid`) the server's CPU time per request and peak RSS from /proc.

use crate::seed;
use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// W1: the chair's dashboard (dashboard.graphql plus the deadlines).
pub const DASHBOARD: &str = r#"query Dashboard($first: Int = 50, $after: String) {
  investigations(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id
        title
        phase
        suspended
        commissions { id name }
        missingApprovals { name }
        deadlines { kind status dueAt }
        documents { kind title latestVersion { number createdAt author { name } } }
      }
    }
  }
}"#;

/// W2: one investigation (investigation.graphql plus deadlines and responses).
pub const INVESTIGATION: &str = r#"query Investigation($id: ID!) {
  investigation(id: $id) {
    id
    title
    phase
    suspended
    researchQuestions
    commissions { name municipalities { name council { id name } college { id name } } }
    rapporteurs { user { name } commission { name } }
    documents {
      id
      kind
      title
      versions { id number sha256 sizeBytes mediaType downloadUrl createdAt note author { name } }
    }
    approvals { phase commission { name } approvedBy { name } approvedAt comment }
    missingApprovals { name }
    gateRequirements
    rebuttalMode
    recommendations { number text addressee }
    deadlines { kind status dueAt college { name } }
    responses { id late filedAt counted signedBy { name } version { number sizeBytes } }
    publishedAt
    createdAt
  }
}"#;

/// W3: submit-version.graphql.
pub const SUBMIT: &str = r#"mutation Submit($input: SubmitDocumentVersionInput!) {
  submitDocumentVersion(input: $input) { id number sha256 sizeBytes mediaType downloadUrl }
}"#;

/// W4: login.graphql.
pub const LOGIN: &str = r#"mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    token
    expiresAt
    user { id name roles { role commission { name } municipality { name } } }
  }
}"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
        }
    }
}

/// A GraphQL client for one server.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub endpoint: String,
}

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Client {
            http,
            endpoint: format!("{}/graphql", base.trim_end_matches('/')),
        })
    }

    /// One operation; `Ok` with the data when the answer is 200 without errors.
    pub async fn gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() || body.get("errors").is_some() {
            bail!("status {status}: {}", body.get("errors").unwrap_or(&body));
        }
        Ok(body["data"].clone())
    }

    pub async fn login(&self, email: &str) -> anyhow::Result<String> {
        let data = self
            .gql(
                None,
                LOGIN,
                json!({ "email": email, "password": seed::PASSWORD }),
            )
            .await
            .with_context(|| format!("logging in as {email}"))?;
        data["login"]["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token"))
    }
}

/// What the workers of one workload share.
pub struct Prepared {
    pub workload: Workload,
    pub token: String,
    /// W2: investigations to read; W3: investigations to write to.
    pub ids: Vec<String>,
    /// W4: accounts to log in as.
    pub emails: Vec<String>,
    /// W3: the 20 KB Markdown body.
    pub body: String,
    pub first: i64,
}

/// Logs in and finds what the workload needs (the chair of the first commission reads; its
/// first member writes).
pub async fn prepare(client: &Client, workload: Workload, first: i64) -> anyhow::Result<Prepared> {
    let reader = seed::chair_email(0);
    let writer = seed::member_email(0);
    let mut prepared = Prepared {
        workload,
        token: String::new(),
        ids: Vec::new(),
        emails: Vec::new(),
        body: String::new(),
        first,
    };
    match workload {
        Workload::W1 => prepared.token = client.login(&reader).await?,
        Workload::W2 => {
            prepared.token = client.login(&reader).await?;
            let data = client
                .gql(
                    Some(&prepared.token),
                    "query { investigations(first: 50) { edges { node { id } } } }",
                    json!({}),
                )
                .await?;
            prepared.ids = ids_of(&data);
        }
        Workload::W3 => {
            prepared.token = client.login(&writer).await?;
            let data = client
                .gql(
                    Some(&prepared.token),
                    "query { investigations(first: 100, phase: RESEARCH) { edges { node { id suspended } } } }",
                    json!({}),
                )
                .await?;
            prepared.ids = data["investigations"]["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["node"]["suspended"] == Value::Bool(false))
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_string))
                .collect();
            let mut rng = crate::rng::Rng::new(7);
            prepared.body = seed::markdown_text(&mut rng, "Onderzoeksrapport", 20 * 1024);
            prepared.body.truncate(20 * 1024);
        }
        Workload::W4 => {
            prepared.emails = seed::all_emails(seed::MUNICIPALITIES.len());
        }
    }
    if matches!(workload, Workload::W2 | Workload::W3) && prepared.ids.is_empty() {
        bail!(
            "no investigations for {}: is the database seeded?",
            workload.name()
        );
    }
    Ok(prepared)
}

fn ids_of(data: &Value) -> Vec<String> {
    data["investigations"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["id"].as_str().map(str::to_string))
        .collect()
}

/// One request of the workload; `n` spreads requests over ids and accounts.
pub async fn one(client: &Client, prepared: &Prepared, n: u64) -> anyhow::Result<()> {
    let token = Some(prepared.token.as_str());
    match prepared.workload {
        Workload::W1 => {
            let data = client
                .gql(token, DASHBOARD, json!({ "first": prepared.first }))
                .await?;
            let edges = data["investigations"]["edges"]
                .as_array()
                .map_or(0, Vec::len);
            if edges == 0 {
                bail!("an empty dashboard");
            }
        }
        Workload::W2 => {
            let id = &prepared.ids[(n as usize) % prepared.ids.len()];
            let data = client
                .gql(token, INVESTIGATION, json!({ "id": id }))
                .await?;
            if data["investigation"].is_null() {
                bail!("investigation {id} not found");
            }
        }
        Workload::W3 => {
            let id = &prepared.ids[(n as usize) % prepared.ids.len()];
            // The first line differs per request, the rest is the same 20 KB.
            let mut content = format!("<!-- bench {n} -->\n");
            content.push_str(&prepared.body[..prepared.body.len() - content.len()]);
            client
                .gql(
                    token,
                    SUBMIT,
                    json!({ "input": {
                        "investigationId": id,
                        "kind": "RESEARCH_REPORT",
                        "content": content,
                    } }),
                )
                .await?;
        }
        Workload::W4 => {
            let email = &prepared.emails[(n as usize) % prepared.emails.len()];
            client.login(email).await?;
        }
    }
    Ok(())
}

/// CPU time (user + system) of a process in seconds, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A field of /proc/<pid>/status in kB (VmHWM, VmRSS).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds of every process named `postgres` (the server and its backends).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            total += cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    total
}

pub struct LoadOptions {
    pub url: String,
    pub workload: Workload,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub server_pid: Option<u32>,
    pub postgres_cpu: bool,
    pub label: String,
    pub json_out: Option<std::path::PathBuf>,
    pub first: i64,
}

/// Runs the workload and prints (and appends as JSON) its figures.
pub async fn load(options: LoadOptions) -> anyhow::Result<()> {
    let client = Client::new(&options.url)?;
    let prepared = Arc::new(prepare(&client, options.workload, options.first).await?);
    // Warm-up: connections, caches, the session's first touch.
    run_for(&client, &prepared, options.concurrency, options.warmup).await;
    let cpu_before = options.server_pid.and_then(cpu_seconds);
    let pg_before = options.postgres_cpu.then(postgres_cpu_seconds);
    let started = Instant::now();
    let (mut latencies, errors, first_error) =
        run_for(&client, &prepared, options.concurrency, options.duration).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = options.server_pid.and_then(cpu_seconds);
    let pg_after = options.postgres_cpu.then(postgres_cpu_seconds);
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index] as f64 / 1000.0
    };
    let rps = requests as f64 / elapsed;
    let cpu_ms = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if requests > 0 => {
            Some((after - before) * 1000.0 / requests as f64)
        }
        _ => None,
    };
    let pg_cpu_ms = match (pg_before, pg_after) {
        (Some(before), Some(after)) if requests > 0 => {
            Some((after - before) * 1000.0 / requests as f64)
        }
        _ => None,
    };
    let hwm = options.server_pid.and_then(|pid| status_kb(pid, "VmHWM"));
    let rss = options.server_pid.and_then(|pid| status_kb(pid, "VmRSS"));
    println!(
        "{} {} c={}: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {} ok, {} errors{}{}{}",
        options.label,
        options.workload.name(),
        options.concurrency,
        rps,
        percentile(0.50),
        percentile(0.99),
        requests,
        errors,
        cpu_ms.map_or(String::new(), |c| format!(", server CPU {c:.2} ms/req")),
        pg_cpu_ms.map_or(String::new(), |c| format!(", postgres CPU {c:.2} ms/req")),
        hwm.map_or(String::new(), |h| format!(
            ", peak RSS {:.1} MB",
            h as f64 / 1024.0
        )),
    );
    if let Some(error) = &first_error {
        println!("  first error: {error}");
    }
    if let Some(path) = &options.json_out {
        let line = json!({
            "kind": "rkflow",
            "label": options.label,
            "workload": options.workload.name(),
            "concurrency": options.concurrency,
            "seconds": elapsed,
            "requests": requests,
            "errors": errors,
            "rps": rps,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "server_cpu_ms_per_req": cpu_ms,
            "postgres_cpu_ms_per_req": pg_cpu_ms,
            "peak_rss_kb": hwm,
            "rss_kb": rss,
            "first_error": first_error,
        });
        append_line(path, &line)?;
    }
    Ok(())
}

pub fn append_line(path: &std::path::Path, line: &Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{line}")?;
    Ok(())
}

/// Runs `concurrency` workers for `duration`; returns latencies (µs) of the successes, the
/// error count and the first error.
async fn run_for(
    client: &Client,
    prepared: &Arc<Prepared>,
    concurrency: usize,
    duration: Duration,
) -> (Vec<u32>, u64, Option<String>) {
    if duration.is_zero() {
        return (Vec::new(), 0, None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let prepared = prepared.clone();
        let stop = stop.clone();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                match one(&client, &prepared, n).await {
                    Ok(()) => {
                        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32)
                    }
                    Err(err) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(format!("{err:#}"));
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        if let Ok((latencies, e, first)) = worker.await {
            all.extend(latencies);
            errors += e;
            if first_error.is_none() {
                first_error = first;
            }
        }
    }
    (all, errors, first_error)
}
