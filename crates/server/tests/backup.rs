//! The restore drill, with the real binary: `rkflow backup` while a server is running and
//! writing, `rkflow restore` (SQLite) or `pg_restore` (PostgreSQL) into a fresh database, then
//! `rkflow audit verify`, the rows per table, and a server on the restored database that serves
//! the demo investigation.
//!
//! - Quiescent (SQLite): nothing writes; the backup's rows per table equal the source's, before
//!   and after.
//! - Busy (SQLite and, when `RKFLOW_TEST_POSTGRES_URL` is set, PostgreSQL): two clients create
//!   municipalities throughout the backup. The backup is one snapshot: its audit chain verifies
//!   (a torn copy would break it or cut the head off), every municipality in it has exactly its
//!   one creation event, the restored database has exactly the rows the backup printed, and it
//!   holds more than before the backup and no more than at the end.
//! - Refusals: an existing backup file, a missing source, an existing target database, a file
//!   that is not a database, a backup whose audit chain is broken, a PostgreSQL restore target,
//!   and (PostgreSQL) pg_dump missing from PATH.

mod support;

use futures::FutureExt as _;
use rkflow_server::RunningServer;
use rkflow_server::config::ServerConfig;
use rkflow_server::demo::{DEMO_PASSWORD, TITLE};
use rkflow_store::entity::audit_event;
use rkflow_store::{Db, backup};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_rkflow");
const CHAIR: &str = "glashouwer@rkc-bloemendaal.demo";
const ADMIN: &str = "admin@rkflow.demo";
const INVESTIGATION: &str = "{ investigations(first: 5) { edges { node {
    id title phase missingApprovals { name } approvals { commission { name } } } } } }";

// ---------------------------------------------------------------------------------------------
// The binary

/// Runs the binary (off the async workers) with none of the caller's RKFLOW_ variables.
async fn rkflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .stdin(Stdio::null())
            .env("RKFLOW_LOG", "warn");
        for (name, _) in std::env::vars() {
            if name.starts_with("RKFLOW_") && name != "RKFLOW_LOG" {
                command.env_remove(name);
            }
        }
        command.envs(env);
        command.output().expect("the binary runs")
    })
    .await
    .expect("the binary finished")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Asserts exit code 1 with `message` on stderr and no panic.
fn assert_refused(output: &Output, what: &str, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what} must fail with exit code 1\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    let text = stderr(output);
    assert!(
        text.contains(message),
        "{what}: expected `{message}` in {text}"
    );
    assert!(!text.contains("panicked"), "{what}: {text}");
}

/// The rows per table that `rkflow backup` / `rkflow restore` printed.
fn printed_counts(output: &Output) -> BTreeMap<String, u64> {
    let text = stdout(output);
    assert!(
        text.contains("audit chain intact"),
        "the summary shows an intact chain: {text}"
    );
    let counts: BTreeMap<String, u64> = text
        .lines()
        .skip_while(|line| *line != "rows per table:")
        .skip(1)
        .map_while(|line| line.strip_prefix("  "))
        .map(|line| {
            let (table, rows) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a summary line: {line}"));
            (table.to_string(), rows.trim().parse().expect("a row count"))
        })
        .collect();
    for table in ["audit_event", "investigation", "municipality", "app_user"] {
        assert!(
            counts.contains_key(table),
            "{table} is in the summary: {text}"
        );
    }
    counts
}

/// The rows per table of a database, opened afresh.
async fn counts_of(url: &str) -> BTreeMap<String, u64> {
    let db = Db::connect(url).await.expect("open the database");
    let counts = backup::table_counts(&db).await.expect("table counts");
    db.close().await;
    counts
}

/// Every municipality has exactly its one creation event: true only of a consistent snapshot,
/// since each is created with its event in one transaction.
async fn assert_municipalities_match_their_events(url: &str) {
    let db = Db::connect(url).await.expect("open the database");
    let counts = backup::table_counts(&db).await.expect("table counts");
    let created = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("municipality.created"))
        .count(&db.conn)
        .await
        .expect("count the events");
    assert_eq!(
        counts["municipality"], created,
        "one municipality.created event per municipality"
    );
    assert_eq!(
        counts["audit_event"],
        u64::try_from(
            backup::summary(&db)
                .await
                .expect("summary")
                .audit
                .events_checked
        )
        .unwrap(),
        "every event was checked"
    );
    db.close().await;
}

// ---------------------------------------------------------------------------------------------
// A server and its clients

struct Server {
    running: RunningServer,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(url: &str, demo: bool) -> Server {
        let config = ServerConfig {
            demo,
            ..ServerConfig::for_tests(url)
        };
        let running = rkflow_server::start(config, false)
            .await
            .expect("the server starts");
        Server {
            base: format!("http://{}", running.addr),
            running,
            http: reqwest::Client::new(),
        }
    }

    fn db(&self) -> &Db {
        &self.running.state.api.db
    }

    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        gql(&self.http, &self.base, token, query, variables).await
    }

    async fn login(&self, email: &str) -> String {
        let data = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": DEMO_PASSWORD }),
            )
            .await;
        data["login"]["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// The demo investigation as the chair of Bloemendaal sees it.
    async fn investigation(&self) -> Value {
        let token = self.login(CHAIR).await;
        let data = self.gql(Some(&token), INVESTIGATION, json!({})).await;
        let edges = data["investigations"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), 1, "{data}");
        let node = edges[0]["node"].clone();
        assert_eq!(node["title"], TITLE);
        node
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

/// One GraphQL operation; errors fail the test.
async fn gql(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = http
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer");
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// Seeds the demo on `url` and has Bloemendaal's chair approve the research gate, so the
/// database holds the demo and audit events beyond the seed.
async fn seeded_server(url: &str) -> (Server, Value) {
    let server = Server::start(url, true).await;
    let chair = server.login(CHAIR).await;
    let before = server.investigation().await;
    assert_eq!(before["phase"], "RESEARCH");
    let approved = server
        .gql(
            Some(&chair),
            "mutation($id: ID!) { approvePhase(investigationId: $id, comment: \"Akkoord\", phase: RESEARCH) { phase } }",
            json!({ "id": before["id"] }),
        )
        .await;
    assert_eq!(approved["approvePhase"]["phase"], "RESEARCH");
    let view = server.investigation().await;
    assert_eq!(
        view["approvals"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    (server, view)
}

/// Clients creating municipalities until stopped; `written` counts the acknowledged ones.
struct Writers {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    async fn start(server: &Server, clients: usize) -> Writers {
        let token = server.login(ADMIN).await;
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|client| {
                let (http, base, token) = (server.http.clone(), server.base.clone(), token.clone());
                let (stop, written) = (stop.clone(), written.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        gql(
                            &http,
                            &base,
                            Some(&token),
                            "mutation($name: String!) { createMunicipality(name: $name) { id } }",
                            json!({ "name": format!("Drillgemeente {client}-{n}") }),
                        )
                        .await;
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let writers = Writers {
            stop,
            written,
            tasks,
        };
        // Writes are going on before the backup starts.
        while writers.written() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writers
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a writer failed");
        }
        self.written.load(Ordering::SeqCst)
    }
}

/// Takes a backup with the binary while `writers` write; returns its output.
async fn backup_while_writing(writers: &Writers, url: &str, to: &Path) -> Output {
    let started = writers.written();
    let output = rkflow(&["backup", "--to", path(to), "--database-url", url], &[]).await;
    let finished = writers.written();
    assert_success(&output, "rkflow backup while the server writes");
    assert_private(to);
    assert!(
        finished > started,
        "writes went on during the backup ({started} before, {finished} after)"
    );
    output
}

/// Takes a backup while two clients write; checks that it holds some of their writes and no
/// more than the database holds after it, and returns the counts it printed.
async fn busy_backup(
    server: &Server,
    url: &str,
    to: &Path,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    let writers = Writers::start(server, 2).await;
    let output = backup_while_writing(&writers, url, to).await;
    writers.stop().await;
    let in_backup = printed_counts(&output);
    let at_end = backup::table_counts(server.db()).await.expect("counts");
    assert!(
        in_backup["municipality"] > before["municipality"]
            && in_backup["municipality"] <= at_end["municipality"],
        "the backup holds some of the writes: before {}, backup {}, end {}",
        before["municipality"],
        in_backup["municipality"],
        at_end["municipality"]
    );
    in_backup
}

/// A backup holds password and session hashes: only its owner may read it.
fn assert_private(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file)
            .expect("the backup exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A directory for one test (a space and a quote in its name, for the quoting), removed
/// afterwards even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rkflow backup's drill {}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_backup_while_the_server_writes_and_restore_drill() {
    let dir = TempDir::new();
    let source = path(&dir.join("rkflow.db")).to_string();
    let (server, view) = seeded_server(&source).await;

    // Quiescent: the backup holds exactly what the source holds.
    let before = backup::table_counts(server.db()).await.expect("counts");
    let quiet = dir.join("quiet 'backup'.db");
    let output = rkflow(
        &["backup", "--to", path(&quiet), "--database-url", &source],
        &[],
    )
    .await;
    assert_success(&output, "rkflow backup");
    assert_private(&quiet);
    assert!(stdout(&output).contains("backup written to"));
    let after = backup::table_counts(server.db()).await.expect("counts");
    assert_eq!(before, after, "nothing wrote during the quiescent backup");
    assert_eq!(printed_counts(&output), before);
    assert!(before["audit_event"] > 0 && before["investigation"] == 1);

    let restored_quiet = path(&dir.join("restored-quiet.db")).to_string();
    let restore = rkflow(
        &[
            "restore",
            "--from",
            path(&quiet),
            "--database-url",
            &restored_quiet,
        ],
        &[],
    )
    .await;
    assert_success(&restore, "rkflow restore");
    assert_eq!(printed_counts(&restore), before);
    let verify = rkflow(&["audit", "verify", "--database-url", &restored_quiet], &[]).await;
    assert_success(&verify, "rkflow audit verify on the restored database");
    assert!(
        stdout(&verify).contains(&format!("{} events checked", before["audit_event"])),
        "{}",
        stdout(&verify)
    );
    assert_eq!(counts_of(&restored_quiet).await, before);

    // Busy: two clients write throughout the backup.
    let busy = dir.join("busy.db");
    let in_backup = busy_backup(&server, &source, &busy, &before).await;
    server.stop().await;

    let restored_busy = format!(
        "sqlite://{}?mode=rwc",
        dir.join("restored busy.db").display()
    );
    let restore = rkflow(
        &[
            "restore",
            "--from",
            path(&busy),
            "--database-url",
            &restored_busy,
        ],
        &[],
    )
    .await;
    assert_success(&restore, "rkflow restore of the busy backup");
    let verify = rkflow(&["audit", "verify", "--database-url", &restored_busy], &[]).await;
    assert_success(&verify, "rkflow audit verify on the busy restore");
    assert_eq!(counts_of(&restored_busy).await, in_backup);
    assert_municipalities_match_their_events(&restored_busy).await;

    // A server on each restored database serves the investigation as before.
    for url in [&restored_quiet, &restored_busy] {
        let server = Server::start(url, false).await;
        assert_eq!(server.investigation().await, view, "served from {url}");
        server.stop().await;
    }

    sqlite_refusals(&dir, &source, &quiet, &restored_quiet).await;
}

/// What `backup` and `restore` refuse, and that a refusal changes nothing.
async fn sqlite_refusals(dir: &TempDir, source: &str, backup_file: &Path, existing: &str) {
    let backup_bytes = std::fs::read(backup_file).expect("read the backup");
    let output = rkflow(
        &[
            "backup",
            "--to",
            path(backup_file),
            "--database-url",
            source,
        ],
        &[],
    )
    .await;
    assert_refused(&output, "a backup onto an existing file", "exists");
    assert_eq!(
        std::fs::read(backup_file).expect("read the backup"),
        backup_bytes
    );

    let missing = dir.join("missing.db");
    let output = rkflow(
        &[
            "backup",
            "--to",
            path(&dir.join("never.db")),
            "--database-url",
            path(&missing),
        ],
        &[],
    )
    .await;
    assert_refused(
        &output,
        "a backup of a missing database",
        "no SQLite database",
    );
    assert!(!missing.exists() && !dir.join("never.db").exists());

    let existing_counts = counts_of(existing).await;
    let output = rkflow(
        &[
            "restore",
            "--from",
            path(backup_file),
            "--database-url",
            existing,
        ],
        &[],
    )
    .await;
    assert_refused(&output, "a restore over an existing database", "exists");
    assert_eq!(counts_of(existing).await, existing_counts);

    let target = dir.join("target.db");
    let not_a_database = dir.join("notes.txt");
    std::fs::write(
        &not_a_database,
        "dit is geen database, maar een notitie\n".repeat(200),
    )
    .expect("write");
    let output = rkflow(
        &[
            "restore",
            "--from",
            path(&not_a_database),
            "--database-url",
            path(&target),
        ],
        &[],
    )
    .await;
    assert_refused(
        &output,
        "a restore of a file that is no database",
        "not a readable SQLite database",
    );
    assert!(!target.exists());

    // A backup whose audit chain was tampered with: `backup` reports it (exit 1, file kept),
    // `restore` refuses it.
    let tampered = path(&dir.join("tampered.db")).to_string();
    std::fs::copy(backup_file, &tampered).expect("copy");
    let db = Db::connect(&tampered).await.expect("open");
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::Data,
            Expr::value(r#"{"name":"Mallory"}"#),
        )
        .filter(audit_event::Column::Seq.eq(1))
        .exec(&db.conn)
        .await
        .expect("tamper");
    db.conn
        .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .expect("checkpoint");
    db.close().await;
    let tampered_backup = dir.join("tampered backup.db");
    let output = rkflow(
        &[
            "backup",
            "--to",
            path(&tampered_backup),
            "--database-url",
            &tampered,
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("audit chain BROKEN at event 1"),
        "{}",
        stdout(&output)
    );
    assert!(tampered_backup.exists(), "the backup is kept");
    let output = rkflow(
        &[
            "restore",
            "--from",
            path(&tampered_backup),
            "--database-url",
            path(&target),
        ],
        &[],
    )
    .await;
    assert_refused(
        &output,
        "a restore of a tampered backup",
        "broken at event 1",
    );
    assert!(!target.exists());

    let output = rkflow(
        &[
            "restore",
            "--from",
            path(backup_file),
            "--database-url",
            "postgres://rkflow@127.0.0.1:1/rkflow",
        ],
        &[],
    )
    .await;
    assert_refused(
        &output,
        "rkflow restore to PostgreSQL",
        "pg_restore --no-owner",
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A fresh PostgreSQL database, dropped by `remove`.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> PgDatabase {
        let (url, name) = support::create_postgres_database(admin_url).await;
        PgDatabase {
            admin_url: admin_url.to_string(),
            url,
            name,
        }
    }

    async fn remove(self) {
        support::drop_postgres_database(&self.admin_url, &self.name).await;
    }
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_backup_with_pg_dump_and_pg_restore_drill() {
    let Some(admin_url) = std::env::var("RKFLOW_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("RKFLOW_TEST_POSTGRES_URL is not set: the PostgreSQL backup drill is skipped");
        return;
    };
    if !on_path("pg_dump") || !on_path("pg_restore") {
        eprintln!("pg_dump or pg_restore is not on PATH: the PostgreSQL backup drill is skipped");
        return;
    }
    let source = PgDatabase::create(&admin_url).await;
    let restored = PgDatabase::create(&admin_url).await;
    // Drop the databases even when an assertion fails (the server's future is not Send, so
    // catch the panic in place).
    let outcome = std::panic::AssertUnwindSafe(postgres_drill(&source.url, &restored.url))
        .catch_unwind()
        .await;
    source.remove().await;
    restored.remove().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn postgres_drill(source: &str, restored: &str) {
    let dir = TempDir::new();
    let (server, view) = seeded_server(source).await;
    let before = backup::table_counts(server.db()).await.expect("counts");

    // pg_dump missing: a clear error naming it, and no file.
    let no_tools = dir.join("no tools");
    std::fs::create_dir_all(&no_tools).expect("mkdir");
    let nothing = dir.join("nothing.dump");
    let output = rkflow(
        &["backup", "--to", path(&nothing), "--database-url", source],
        &[("PATH", path(&no_tools))],
    )
    .await;
    assert_refused(
        &output,
        "rkflow backup without pg_dump",
        "pg_dump is not on PATH",
    );
    assert!(!nothing.exists());

    // Busy: the summary comes from the snapshot pg_dump dumps, so it is exact.
    let dump = dir.join("rkflow 'pg'.dump");
    let in_backup = busy_backup(&server, source, &dump, &before).await;
    server.stop().await;
    let output = rkflow(
        &["backup", "--to", path(&dump), "--database-url", source],
        &[],
    )
    .await;
    assert_refused(&output, "a backup onto an existing file", "exists");

    // The documented restore: pg_restore into an empty database, migrate, verify.
    let pg_restore = tokio::task::spawn_blocking({
        let (dump, restored) = (dump.clone(), restored.to_string());
        move || {
            Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname", &restored])
                .arg(&dump)
                .output()
                .expect("pg_restore runs")
        }
    })
    .await
    .expect("pg_restore finished");
    assert_success(&pg_restore, "pg_restore");
    assert_success(
        &rkflow(&["migrate", "--database-url", restored], &[]).await,
        "rkflow migrate on the restored database",
    );
    let verify = rkflow(&["audit", "verify", "--database-url", restored], &[]).await;
    assert_success(&verify, "rkflow audit verify on the restored database");
    assert_eq!(counts_of(restored).await, in_backup);
    assert_municipalities_match_their_events(restored).await;

    let server = Server::start(restored, false).await;
    assert_eq!(server.investigation().await, view);
    server.stop().await;

    let output = rkflow(
        &["restore", "--from", path(&dump), "--database-url", restored],
        &[],
    )
    .await;
    assert_refused(
        &output,
        "rkflow restore to PostgreSQL",
        "pg_restore --no-owner",
    );
}
