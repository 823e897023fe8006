//! Observability: `/metrics` (Prometheus text), request ids (header, error bodies, log lines),
//! the metrics settings, and the trace export (with the `otlp` feature: spans reach a fake
//! collector). The server tests run on SQLite and, when `RKFLOW_TEST_POSTGRES_URL` is set, on
//! a fresh PostgreSQL database.

mod support;

use rkflow_server::config::{Cli, Command as CliCommand, ServerConfig};
use rkflow_store::{Origin, accounts};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_rkflow");
const PASSWORD: &str = "a long secure passphrase 2019";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
const CREATE_MUNICIPALITY: &str =
    "mutation($name: String!) { createMunicipality(name: $name) { id } }";

// ---------------------------------------------------------------------------------------------
// Databases and servers

/// A database for one test: a fresh SQLite file or a fresh PostgreSQL database.
struct TestDatabase {
    label: &'static str,
    url: String,
    postgres: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl TestDatabase {
    fn sqlite() -> TestDatabase {
        let path = std::env::temp_dir().join(format!("rkflow-obs-{}.db", Uuid::new_v4().simple()));
        TestDatabase {
            label: "sqlite",
            url: format!("sqlite://{}?mode=rwc", path.display()),
            postgres: None,
            file: Some(path),
        }
    }

    async fn postgres() -> Option<TestDatabase> {
        let admin_url = std::env::var("RKFLOW_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())?;
        let (url, name) = support::create_postgres_database(&admin_url).await;
        Some(TestDatabase {
            label: "postgres",
            url,
            postgres: Some((admin_url.clone(), name)),
            file: None,
        })
    }

    /// SQLite, and PostgreSQL when configured.
    async fn all() -> Vec<TestDatabase> {
        let mut databases = vec![TestDatabase::sqlite()];
        databases.extend(TestDatabase::postgres().await);
        databases
    }

    async fn remove(self) {
        if let Some(path) = self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((admin_url, name)) = self.postgres {
            support::drop_postgres_database(&admin_url, &name).await;
        }
    }
}

struct Server {
    server: rkflow_server::RunningServer,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(url: &str, configure: impl FnOnce(&mut ServerConfig)) -> Server {
        let mut config = ServerConfig::for_tests(url);
        configure(&mut config);
        let server = rkflow_server::start(config, false)
            .await
            .expect("the server starts");
        Server {
            base: format!("http://{}", server.addr),
            server,
            http: reqwest::Client::new(),
        }
    }

    /// Creates an account with [`PASSWORD`].
    async fn create_user(&self, email: &str) {
        let api = &self.server.state.api;
        let hash = api
            .passwords
            .hash(PASSWORD)
            .await
            .map_err(|err| err.message)
            .expect("hash");
        let origin = Origin {
            actor: None,
            client: Some("test".into()),
        };
        accounts::create_user(&api.db, &origin, api.clock.now(), email, email, &hash)
            .await
            .expect("user");
    }

    /// Logs in as an account made by [`Server::create_user`]; the session's token.
    async fn login(&self, label: &str, email: &str) -> String {
        let (_, _, body) = self
            .gql(None, None, LOGIN, json!({ "e": email, "p": PASSWORD }))
            .await;
        body["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: a token in {body}"))
            .to_string()
    }

    /// POSTs one operation; the answer's status, `X-Request-Id` and body.
    async fn gql(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, String, Value) {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let id = header(&response, "x-request-id");
        (status, id, response.json().await.expect("JSON"))
    }

    async fn get(&self, path: &str, request_id: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        request.send().await.expect("the server answers")
    }

    /// Scrapes `/metrics`: every sample by its name and labels as written.
    async fn scrape(&self) -> Samples {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            header(&response, "content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        Samples::parse(&response.text().await.expect("text"))
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The samples of one scrape: `name{labels}` → value.
#[derive(Debug)]
struct Samples(BTreeMap<String, f64>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().expect("a number"),
            };
            samples.insert(series.to_string(), value);
        }
        Samples(samples)
    }

    fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no sample {series} in {:#?}", self.0))
    }

    /// 0 for a series not (yet) written.
    fn count(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }

    fn with_prefix(&self, prefix: &str) -> Vec<(&str, f64)> {
        self.0
            .iter()
            .filter(|(series, _)| series.starts_with(prefix))
            .map(|(series, value)| (series.as_str(), *value))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// After a login, failed logins up to the throttle, a FORBIDDEN mutation, an unknown field and
/// a probe, every counter moved by exactly what happened, under bounded labels; the histogram
/// has its buckets, the pool and scheduler gauges are there.
#[tokio::test]
async fn metrics_count_what_happened() {
    for db in TestDatabase::all().await {
        let label = db.label;
        let server = Server::start(&db.url, |config| {
            config.auth.max_failures_per_account = 2;
        })
        .await;
        server.create_user("user@obs.test").await;
        server.create_user("victim@obs.test").await;
        let before = server.scrape().await;

        let token = server.login(label, "user@obs.test").await;
        let mut failures = 0.0;
        let mut throttled = false;
        for _ in 0..5 {
            let (_, _, body) = server
                .gql(
                    None,
                    None,
                    LOGIN,
                    json!({ "e": "victim@obs.test", "p": "not the password at all" }),
                )
                .await;
            match body["errors"][0]["extensions"]["code"].as_str() {
                Some("UNAUTHENTICATED") => failures += 1.0,
                Some("TOO_MANY_REQUESTS") => {
                    throttled = true;
                    break;
                }
                other => panic!("{label}: unexpected answer {other:?}: {body}"),
            }
        }
        assert!(throttled, "{label}: the throttle answered");
        let (_, _, body) = server
            .gql(
                Some(&token),
                None,
                CREATE_MUNICIPALITY,
                json!({ "name": "X" }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{body}"
        );
        let (_, _, body) = server.gql(None, None, "{ noSuchField }", json!({})).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        let (_, _, body) = server
            .gql(
                Some(&token),
                None,
                "query Mine { ...F } fragment F on Query { me { email } }",
                json!({}),
            )
            .await;
        assert_eq!(body["data"]["me"]["email"], "user@obs.test", "{body}");
        assert_eq!(server.get("/healthz", None).await.status().as_u16(), 200);
        assert_eq!(server.get("/nowhere", None).await.status().as_u16(), 404);

        let after = server.scrape().await;
        let delta = |series: &str| after.count(series) - before.count(series);
        let requests = |operation: &str, outcome: &str| {
            delta(&format!(
                "rkflow_graphql_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}}"
            ))
        };
        assert_eq!(requests("login", "ok"), 1.0, "{label}");
        assert_eq!(requests("login", "UNAUTHENTICATED"), failures, "{label}");
        assert_eq!(requests("login", "TOO_MANY_REQUESTS"), 1.0, "{label}");
        assert_eq!(requests("createMunicipality", "FORBIDDEN"), 1.0, "{label}");
        assert_eq!(requests("unknown", "BAD_USER_INPUT"), 1.0, "{label}");
        assert_eq!(requests("me", "ok"), 1.0, "{label}: fragments are followed");
        assert_eq!(
            delta("rkflow_logins_total{outcome=\"success\"}"),
            1.0,
            "{label}"
        );
        assert_eq!(
            delta("rkflow_logins_total{outcome=\"failure\"}"),
            failures,
            "{label}"
        );
        assert_eq!(
            delta("rkflow_logins_total{outcome=\"throttled\"}"),
            1.0,
            "{label}"
        );
        // Only names of the schema become labels.
        for (series, _) in after.with_prefix("rkflow_graphql_requests_total{") {
            assert!(!series.contains("noSuchField"), "{series}");
        }

        // The histogram: its buckets, cumulative, the +Inf bucket equal to the count.
        let logins = failures + 2.0;
        let mut buckets: Vec<(f64, f64)> = after
            .with_prefix("rkflow_graphql_request_duration_seconds_bucket{operation=\"login\"")
            .into_iter()
            .map(|(series, value)| {
                let le = series
                    .split("le=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("a bound");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("a number")
                };
                (le, value)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.len() >= 10, "{label}: buckets {buckets:?}");
        assert!(
            buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{label}: cumulative {buckets:?}"
        );
        assert_eq!(
            after.value(
                "rkflow_graphql_request_duration_seconds_bucket{operation=\"login\",le=\"+Inf\"}"
            ),
            logins,
            "{label}"
        );
        assert_eq!(
            after.value("rkflow_graphql_request_duration_seconds_count{operation=\"login\"}"),
            logins,
            "{label}"
        );
        assert!(
            after.value("rkflow_graphql_request_duration_seconds_sum{operation=\"login\"}") > 0.0
        );

        // The other routes, by template.
        assert_eq!(
            delta("rkflow_http_requests_total{route=\"/healthz\",status=\"200\"}"),
            1.0,
            "{label}"
        );
        assert_eq!(
            delta("rkflow_http_requests_total{route=\"unmatched\",status=\"404\"}"),
            1.0,
            "{label}"
        );
        assert!(
            after.value("rkflow_http_requests_total{route=\"/metrics\",status=\"200\"}") >= 1.0
        );

        // The pool, the scheduler, subscriptions, the build.
        let idle = after.value("rkflow_db_pool_connections{state=\"idle\"}");
        let in_use = after.value("rkflow_db_pool_connections{state=\"in_use\"}");
        let max = after.value("rkflow_db_pool_max_connections");
        assert!(
            max >= 1.0 && idle + in_use >= 1.0 && idle + in_use <= max,
            "{label}"
        );
        assert!(after.value("rkflow_scheduler_passes_total{outcome=\"ok\"}") >= 1.0);
        assert_eq!(
            after.value("rkflow_scheduler_passes_total{outcome=\"error\"}"),
            0.0
        );
        let lag = after.value("rkflow_scheduler_lag_seconds");
        assert!(
            (0.0..30.0).contains(&lag),
            "{label}: lag {lag} is under the interval"
        );
        assert_eq!(after.value("rkflow_subscriptions_active"), 0.0);
        assert_eq!(
            after.value(&format!(
                "rkflow_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )),
            1.0
        );

        server.server.stop().await;
        db.remove().await;
    }
}

/// `RKFLOW_METRICS=false`: no /metrics. `RKFLOW_METRICS_LISTEN`: /metrics only there.
#[tokio::test]
async fn metrics_can_be_switched_off_or_moved() {
    let db = TestDatabase::sqlite();
    let server = Server::start(&db.url, |config| config.metrics = false).await;
    assert_eq!(server.get("/metrics", None).await.status().as_u16(), 404);
    assert!(server.server.metrics_addr.is_none());
    server.server.stop().await;

    let server = Server::start(&db.url, |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    assert_eq!(server.get("/metrics", None).await.status().as_u16(), 404);
    let metrics_addr = server.server.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr, server.server.addr);
    let response = server
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("rkflow_db_pool_max_connections"), "{text}");
    server.server.stop().await;
    db.remove().await;
}

/// A text the server has parsed before is not parsed again (the document cache): the answers
/// are those of a fresh parse, a text that does not parse is refused alike every time and not
/// kept, and `/metrics` counts the hits and misses.
#[tokio::test]
async fn repeated_operations_are_parsed_once() {
    for db in TestDatabase::all().await {
        let label = db.label;
        let server = Server::start(&db.url, |_| {}).await;
        server.create_user("reader@obs.test").await;
        let before = server.scrape().await;
        let token = server.login(label, "reader@obs.test").await;
        let mine = "query Mine($n: Int!) { me { email } investigations(first: $n) { totalCount } }";
        let mut answers = Vec::new();
        for _ in 0..3 {
            let (status, _, body) = server
                .gql(Some(&token), None, mine, json!({ "n": 1 }))
                .await;
            assert_eq!(status, 200, "{label}: {body}");
            assert_eq!(body["data"]["me"]["email"], "reader@obs.test", "{body}");
            answers.push(body);
        }
        assert!(
            answers.iter().all(|body| *body == answers[0]),
            "{label}: {answers:?}"
        );
        // Other variables, the same text: still the cached document, run with these values.
        let (_, _, body) = server
            .gql(Some(&token), None, mine, json!({ "n": "one" }))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        let mut refusals = Vec::new();
        for _ in 0..2 {
            let (_, _, body) = server
                .gql(Some(&token), None, "query Broken { me { email ", json!({}))
                .await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{body}"
            );
            assert!(body["data"].is_null(), "{label}: {body}");
            refusals.push(body["errors"][0]["message"].clone());
        }
        assert_eq!(refusals[0], refusals[1], "{label}");

        let after = server.scrape().await;
        let delta = |outcome: &str| {
            let series = format!("rkflow_document_cache_lookups_total{{outcome=\"{outcome}\"}}");
            after.value(&series) - before.value(&series)
        };
        // The login and `Mine` once each, the broken text twice; `Mine` again three times.
        assert_eq!(delta("miss"), 4.0, "{label}");
        assert_eq!(delta("hit"), 3.0, "{label}");
        server.server.stop().await;
        db.remove().await;
    }
}

/// `RKFLOW_DB_MAX_CONNECTIONS` sizes the pool (the gauge shows the pool's own limit); without
/// it each backend has its default.
#[tokio::test]
async fn the_pool_size_is_configurable() {
    for db in TestDatabase::all().await {
        let default = if db.postgres.is_some() {
            rkflow_store::db::default_postgres_connections()
        } else {
            rkflow_store::db::DEFAULT_SQLITE_CONNECTIONS
        };
        for (configured, expected) in [(None, default), (Some(3), 3)] {
            let server = Server::start(&db.url, |config| {
                config.database_max_connections = configured
            })
            .await;
            let text = server
                .get("/metrics", None)
                .await
                .text()
                .await
                .expect("text");
            assert!(
                text.lines()
                    .any(|line| line == format!("rkflow_db_pool_max_connections {expected}")),
                "{}: {configured:?} → {expected}:\n{text}",
                db.label
            );
            server.server.stop().await;
        }
        db.remove().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Request ids

/// Every response carries `X-Request-Id`: the client's when valid, else a new one; error
/// bodies (GraphQL errors and the server's own) carry the same id in `extensions.requestId`.
#[tokio::test]
async fn request_ids() {
    for db in TestDatabase::all().await {
        let label = db.label;
        let server = Server::start(&db.url, |_| {}).await;

        // Echoed when valid; generated otherwise.
        let response = server.get("/healthz", Some("client-id_42")).await;
        assert_eq!(header(&response, "x-request-id"), "client-id_42");
        let generated = header(&server.get("/healthz", None).await, "x-request-id");
        assert!(
            generated.len() == 32 && generated.chars().all(|c| c.is_ascii_hexdigit()),
            "{label}: generated {generated}"
        );
        let other = header(&server.get("/healthz", None).await, "x-request-id");
        assert_ne!(generated, other, "a new id per request");
        for invalid in ["has space", "semi;colon", &"x".repeat(65), "ü"] {
            let response = server
                .http
                .get(format!("{}/healthz", server.base))
                .header("x-request-id", invalid.as_bytes())
                .send()
                .await
                .expect("answer");
            let id = header(&response, "x-request-id");
            assert!(
                id.len() == 32 && id != invalid,
                "{label}: {invalid:?} → {id}"
            );
        }
        let exactly_64 = "a".repeat(64);
        let response = server.get("/healthz", Some(&exactly_64)).await;
        assert_eq!(header(&response, "x-request-id"), exactly_64);
        let response = server.get("/nowhere", Some("lost-1")).await;
        assert_eq!(response.status().as_u16(), 404);
        assert_eq!(header(&response, "x-request-id"), "lost-1");

        // GraphQL errors: the given id, or the generated one, in every error.
        let (_, id, body) = server
            .gql(None, Some("gql-err-1"), "{ noSuchField }", json!({}))
            .await;
        assert_eq!(id, "gql-err-1");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "gql-err-1");
        let (_, id, body) = server
            .gql(None, None, CREATE_MUNICIPALITY, json!({ "name": "X" }))
            .await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], id.as_str());
        assert_eq!(id.len(), 32);
        // A success carries the header but no errors.
        let (_, id, body) = server
            .gql(None, Some("ok-1"), "{ __typename }", json!({}))
            .await;
        assert_eq!(id, "ok-1");
        assert!(body.get("errors").is_none(), "{body}");

        // The server's own error bodies (content type, bad token, batches).
        let response = server
            .http
            .post(format!("{}/graphql", server.base))
            .header("content-type", "text/plain")
            .header("x-request-id", "own-415")
            .body("{}")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 415);
        assert_eq!(header(&response, "x-request-id"), "own-415");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "own-415");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        let response = server
            .http
            .post(format!("{}/graphql", server.base))
            .header("authorization", "Basic abc")
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("answer");
        let id = header(&response, "x-request-id");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], id.as_str());
        let response = server
            .http
            .post(format!("{}/graphql", server.base))
            .json(&json!([{ "query": "{ __typename }" }]))
            .send()
            .await
            .expect("answer");
        let id = header(&response, "x-request-id");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], id.as_str());
        let response = server
            .get(&format!("/files/versions/{}", Uuid::new_v4()), Some("dl-1"))
            .await;
        assert_eq!(response.status().as_u16(), 404);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errors"][0]["extensions"]["requestId"], "dl-1");

        server.server.stop().await;
        db.remove().await;
    }
}

/// The real binary, in text and in JSON log format: the log line of a denied request carries
/// its request id (the request's span is on every line of the request).
#[test]
fn log_lines_carry_the_request_id() {
    for format in ["text", "json"] {
        let db = TestDatabase::sqlite();
        let mut server = spawn_binary(
            &db.url,
            &[("RKFLOW_LOG_FORMAT", format), ("RKFLOW_LOG", "info")],
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let id = format!("log-{format}-{}", Uuid::new_v4().simple());
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(format!("http://{}/graphql", server.addr))
                .header("x-request-id", &id)
                .json(&json!({ "query": CREATE_MUNICIPALITY, "variables": { "name": "X" } }))
                .send()
                .await
                .expect("answer");
            assert_eq!(header(&response, "x-request-id"), id);
        });
        let line = server.wait_for_line(|line| line.contains("request denied"));
        server.stop();
        assert!(line.contains(&id), "{format}: {line}");
        if format == "json" {
            let entry: Value = serde_json::from_str(&line).expect("a JSON line");
            assert_eq!(entry["span"]["request_id"], id.as_str(), "{line}");
            assert_eq!(entry["span"]["operation"], "createMunicipality", "{line}");
        } else {
            assert!(line.contains(&format!("request_id={id}")), "{line}");
        }
        let runtime_db = db;
        runtime.block_on(runtime_db.remove());
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

fn serve_config(args: &[&str]) -> anyhow::Result<ServerConfig> {
    let mut argv = vec!["rkflow", "serve"];
    argv.extend_from_slice(args);
    let cli = <Cli as clap::Parser>::try_parse_from(argv)?;
    match cli.command {
        CliCommand::Serve(args) => ServerConfig::try_from(args),
        _ => unreachable!("serve"),
    }
}

#[test]
fn metrics_and_trace_settings() {
    // Environment variables of the test run must not leak in.
    for name in [
        "RKFLOW_METRICS",
        "RKFLOW_METRICS_LISTEN",
        "RKFLOW_OTLP_ENDPOINT",
    ] {
        assert!(
            std::env::var_os(name).is_none(),
            "unset {name} to run this test"
        );
    }
    let config = serve_config(&[]).expect("defaults");
    assert!(config.metrics && config.metrics_listen.is_none() && config.otlp_endpoint.is_none());
    let config = serve_config(&["--metrics", "false"]).expect("off");
    assert!(!config.metrics);
    assert!(serve_config(&["--metrics", "maybe"]).is_err());
    let config = serve_config(&["--metrics-listen", "0.0.0.0:9090"]).expect("moved");
    assert_eq!(
        config.metrics_listen,
        Some("0.0.0.0:9090".parse().expect("address"))
    );
    let error = serve_config(&["--metrics-listen", "port 9090"]).expect_err("invalid");
    assert!(
        error.to_string().contains("RKFLOW_METRICS_LISTEN"),
        "{error}"
    );
    let error = serve_config(&["--metrics-listen", "127.0.0.1:8080"]).expect_err("same address");
    assert!(
        error.to_string().contains("RKFLOW_METRICS_LISTEN"),
        "{error}"
    );
    let error = serve_config(&["--metrics", "false", "--metrics-listen", "127.0.0.1:9090"])
        .expect_err("contradiction");
    assert!(error.to_string().contains("RKFLOW_METRICS"), "{error}");

    for invalid in [
        "collector:4318",
        "ftp://collector:4318",
        "http://",
        "http:///v1/traces",
        "http://user:secret@collector:4318",
        "http://collector:4318?x=1",
    ] {
        let error = serve_config(&["--otlp-endpoint", invalid]).expect_err(invalid);
        assert!(
            error.to_string().contains("RKFLOW_OTLP_ENDPOINT"),
            "{invalid}: {error}"
        );
    }
    let valid = serve_config(&["--otlp-endpoint", "http://collector:4318"]);
    if cfg!(feature = "otlp") {
        assert_eq!(
            valid.expect("valid").otlp_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    } else {
        let error = valid.expect_err("refused without the otlp feature");
        assert!(
            error.to_string().contains("RKFLOW_OTLP_ENDPOINT")
                && error.to_string().contains("--features otlp"),
            "{error}"
        );
    }
    for (given, url) in [
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        (
            "https://otlp.example.nl/v1/traces",
            "https://otlp.example.nl/v1/traces",
        ),
        (
            "http://10.0.0.1:4318/prefix",
            "http://10.0.0.1:4318/prefix/v1/traces",
        ),
    ] {
        assert_eq!(
            rkflow_server::config::otlp_traces_url(given).expect(given),
            url
        );
    }
    // An empty value means off.
    let config = serve_config(&["--otlp-endpoint", ""]).expect("empty is off");
    assert!(config.otlp_endpoint.is_none());
}

/// The binary refuses an invalid setting at start, naming it.
#[test]
fn the_binary_names_an_invalid_setting() {
    let output = rkflow_command(&[
        ("RKFLOW_DATABASE_URL", "sqlite::memory:"),
        ("RKFLOW_METRICS_LISTEN", "nowhere"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RKFLOW_METRICS_LISTEN"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The real binary

fn rkflow_command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("serve").stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RKFLOW_") || name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .env("RKFLOW_LISTEN", "127.0.0.1:0")
        .env("RKFLOW_ARGON2_MEMORY_KIB", "19456");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

struct Binary {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
}

fn spawn_binary(database_url: &str, env: &[(&str, &str)]) -> Binary {
    let mut env = env.to_vec();
    env.push(("RKFLOW_DATABASE_URL", database_url));
    let mut child = rkflow_command(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut binary = Binary {
        child,
        addr: String::new(),
        lines,
    };
    let line = binary.wait_for_line(|line| line.starts_with("rkflow serving on http://"));
    binary.addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_once("/graphql"))
        .map(|(addr, _)| addr.to_string())
        .expect("the address");
    binary
}

impl Binary {
    /// The next stdout line that matches (fails after 20 s).
    fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no such line from the server in time");
                }
            }
        }
    }

    /// SIGTERM, and waits for the exit (a clean one).
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status:?}");
                return;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not stop");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trace export

/// With `RKFLOW_OTLP_ENDPOINT` the binary sends its spans to the collector as service
/// `rkflow` over OTLP/HTTP (protobuf), at the latest when it stops.
#[cfg(feature = "otlp")]
#[test]
fn spans_reach_the_collector() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let collector = runtime.block_on(async {
        let received = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let received = received.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    received.lock().expect("lock").push((content_type, body));
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let db = TestDatabase::sqlite();
    let endpoint = format!("http://{collector}");
    let server = spawn_binary(
        &db.url,
        &[("RKFLOW_OTLP_ENDPOINT", &endpoint), ("RKFLOW_LOG", "info")],
    );
    let id = format!("traced-{}", Uuid::new_v4().simple());
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{}/graphql", server.addr))
            .header("x-request-id", &id)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200);
    });
    server.stop();
    let received = received.lock().expect("lock").clone();
    assert!(!received.is_empty(), "the collector got spans");
    let contains = |needle: &[u8]| {
        received
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|window| window == needle))
    };
    assert!(
        received
            .iter()
            .all(|(content_type, _)| content_type == "application/x-protobuf"),
        "{:?}",
        received.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    assert!(
        contains(b"service.name") && contains(b"rkflow"),
        "the service"
    );
    assert!(contains(b"POST /graphql"), "the request span");
    assert!(contains(id.as_bytes()), "the request id on the span");
    runtime.block_on(db.remove());
}
