//! The command line, run as the real binary: help texts, `schema`, `migrate`, `admin create`
//! and `audit verify`, on SQLite and (when `RKFLOW_TEST_POSTGRES_URL` is set) PostgreSQL.

use rkflow_api::auth::{AuthConfig, Passwords};
use rkflow_store::entity::audit_event;
use rkflow_store::{Db, accounts};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use std::process::{Command, Output, Stdio};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_rkflow");
const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../graphql/schema.graphql");
const ADMIN_PASSWORD: &str = "a long secure passphrase 2019";

/// Runs the binary with a clean environment for its own variables.
fn rkflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .env("RKFLOW_LOG", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("RKFLOW_") && name != "RKFLOW_LOG" {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
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

fn assert_failure(output: &Output, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what} must fail with exit code 1\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

#[test]
fn help_of_every_command() {
    let commands: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "serve",
                "migrate",
                "schema",
                "admin",
                "audit",
                "permissions",
            ],
        ),
        (
            &["serve"],
            &[
                "--listen",
                "--database-url",
                "--manual-clock",
                "--demo",
                "--trust-forwarded-for",
                "RKFLOW_DATABASE_URL",
            ],
        ),
        (&["migrate"], &["--database-url"]),
        (&["schema"], &["schema"]),
        (&["admin"], &["create"]),
        (
            &["admin", "create"],
            &[
                "--email",
                "--name",
                "--database-url",
                "RKFLOW_ADMIN_PASSWORD",
            ],
        ),
        (&["audit"], &["verify"]),
        (&["audit", "verify"], &["--database-url"]),
        (&["permissions"], &["permission"]),
    ];
    for (command, mentions) in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = rkflow(&args, &[]);
        assert_success(&output, &format!("rkflow {}", args.join(" ")));
        let text = stdout(&output);
        assert!(
            text.contains("Usage: rkflow"),
            "rkflow {}: {text}",
            args.join(" ")
        );
        for mention in *mentions {
            assert!(
                text.contains(mention),
                "rkflow {} does not mention {mention}: {text}",
                args.join(" ")
            );
        }
    }
    let version = rkflow(&["--version"], &[]);
    assert_success(&version, "rkflow --version");
    assert!(stdout(&version).contains(env!("CARGO_PKG_VERSION")));
    let unknown = rkflow(&["frobnicate"], &[]);
    assert!(!unknown.status.success(), "an unknown command fails");
    assert!(stderr(&unknown).contains("frobnicate"));
}

#[test]
fn schema_output_equals_the_committed_file() {
    let output = rkflow(&["schema"], &[]);
    assert_success(&output, "rkflow schema");
    let printed = stdout(&output);
    let committed = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_else(|err| {
        panic!("{SCHEMA_FILE} cannot be read ({err}); create it with `rkflow schema > graphql/schema.graphql`")
    });
    assert!(
        printed == committed,
        "graphql/schema.graphql differs from `rkflow schema`; regenerate it with `cargo run -- schema > graphql/schema.graphql`"
    );
    for needed in [
        "type Query",
        "type Mutation",
        "type Subscription",
        "advanceClock",
    ] {
        assert!(printed.contains(needed), "the schema lacks {needed}");
    }
}

#[test]
fn permissions_prints_the_table() {
    let output = rkflow(&["permissions"], &[]);
    assert_success(&output, "rkflow permissions");
    let text = stdout(&output);
    assert!(text.starts_with("action | who | phases"), "{text}");
    for needed in [
        "approvePhase",
        "ParticipatingChair",
        "PROPOSAL",
        "submitDocumentVersion",
    ] {
        assert!(text.contains(needed), "the table lacks {needed}: {text}");
    }
}

/// `migrate`, `admin create` and `audit verify` on one fresh database, checked through the
/// store afterwards. `url` is what an operator passes as --database-url.
async fn migrate_create_admin_and_verify(url: &str) {
    let migrate = rkflow(&["migrate", "--database-url", url], &[]);
    assert_success(&migrate, "rkflow migrate");
    assert!(stdout(&migrate).contains("migrations applied"));
    let again = rkflow(&["migrate", "--database-url", url], &[]);
    assert_success(&again, "a second rkflow migrate (nothing to do)");

    let create = |email: &str, password: &str| {
        rkflow(
            &[
                "admin",
                "create",
                "--email",
                email,
                "--name",
                "Ada Beheerder",
                "--database-url",
                url,
            ],
            &[("RKFLOW_ADMIN_PASSWORD", password)],
        )
    };
    let short = create("admin@example.org", "kort");
    assert_failure(&short, "a too short admin password");
    assert!(
        stderr(&short).contains("at least 12 characters"),
        "a clear message: {}",
        stderr(&short)
    );
    let common = create("admin@example.org", "Password123!");
    assert_failure(&common, "a common admin password");
    assert!(stderr(&common).contains("common"), "{}", stderr(&common));
    for output in [&short, &common] {
        assert!(!stdout(output).contains("created admin"));
    }

    let created = create("Admin@Example.org", ADMIN_PASSWORD);
    assert_success(&created, "rkflow admin create");
    assert!(
        stdout(&created).contains("created admin admin@example.org"),
        "{}",
        stdout(&created)
    );
    let duplicate = create("admin@example.org", ADMIN_PASSWORD);
    assert_failure(&duplicate, "a second admin with the same email");
    let message = stderr(&duplicate);
    assert!(
        message.contains("a user with this email address exists"),
        "a clear message: {message}"
    );
    assert!(!message.contains("panicked"), "{message}");
    for output in [&short, &common, &created, &duplicate] {
        assert!(
            !stdout(output).contains(ADMIN_PASSWORD) && !stderr(output).contains(ADMIN_PASSWORD),
            "the password is never printed"
        );
    }

    let verify = rkflow(&["audit", "verify", "--database-url", url], &[]);
    assert_success(&verify, "rkflow audit verify");
    let report = stdout(&verify);
    assert!(report.contains("audit chain intact"), "{report}");

    // What was stored: one user, an ADMIN, whose password verifies against a strong hash.
    let db = Db::connect(url).await.expect("open the database");
    let users = accounts::list_users(&db.conn).await.expect("users");
    assert_eq!(users.len(), 1, "the failed creates stored nothing");
    let admin = &users[0];
    assert_eq!(admin.email, "admin@example.org");
    assert_eq!(admin.name, "Ada Beheerder");
    assert!(!admin.disabled);
    assert!(
        admin
            .password_hash
            .starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
        "{}",
        admin.password_hash
    );
    let passwords = Passwords::new(&AuthConfig::default())
        .map_err(|e| e.message)
        .expect("passwords");
    let (matches, rehash) = passwords
        .verify(Some(admin.password_hash.clone()), ADMIN_PASSWORD)
        .await
        .map_err(|e| e.message)
        .expect("verify");
    assert!(matches && !rehash);
    let grants = accounts::grants_of(&db.conn, admin.id)
        .await
        .expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant.role, rkflow_domain::Role::Admin);
    assert_eq!(grants[0].grant.scope, rkflow_domain::Scope::Global);
    let events = audit_event::Entity::find()
        .all(&db.conn)
        .await
        .expect("events");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.created", "role.granted"]);
    assert!(
        report.contains(&format!("{} events checked", events.len())),
        "{report}"
    );

    // A tampered event is reported with exit code 1.
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::Data,
            Expr::value(r#"{"name":"Mallory"}"#),
        )
        .filter(audit_event::Column::Seq.eq(events[0].seq))
        .exec(&db.conn)
        .await
        .expect("tamper");
    db.close().await;
    let broken = rkflow(&["audit", "verify", "--database-url", url], &[]);
    assert_failure(&broken, "rkflow audit verify on a tampered log");
    assert!(
        stdout(&broken).contains(&format!("BROKEN at event {}", events[0].seq)),
        "{}",
        stdout(&broken)
    );
}

#[tokio::test]
async fn migrate_admin_create_and_audit_verify_on_sqlite() {
    let path = std::env::temp_dir().join(format!("rkflow-cli-{}.db", Uuid::new_v4().simple()));
    let url = path.display().to_string();
    migrate_create_admin_and_verify(&url).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{url}{suffix}"));
    }
}

#[tokio::test]
async fn migrate_admin_create_and_audit_verify_on_postgres() {
    let Ok(admin_url) = std::env::var("RKFLOW_TEST_POSTGRES_URL") else {
        eprintln!("RKFLOW_TEST_POSTGRES_URL is not set: PostgreSQL skipped");
        return;
    };
    if admin_url.is_empty() {
        return;
    }
    let name = format!("test_{}", Uuid::new_v4().simple());
    let admin = Db::connect(&admin_url).await.expect("connect");
    admin
        .conn
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    let url = format!("{base}/{name}");
    // Drop the database even when an assertion fails.
    let outcome = tokio::spawn({
        let url = url.clone();
        async move { migrate_create_admin_and_verify(&url).await }
    })
    .await;
    let _ = admin
        .conn
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    admin.close().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[test]
fn database_errors_are_clear_and_hide_the_password() {
    let output = rkflow(
        &[
            "migrate",
            "--database-url",
            "postgres://rkflow:s3cret-pw@127.0.0.1:1/rkflow",
        ],
        &[],
    );
    assert_failure(&output, "migrate against a closed port");
    let message = stderr(&output);
    assert!(message.contains("cannot open the database"), "{message}");
    assert!(
        !message.contains("s3cret-pw"),
        "the password leaked: {message}"
    );
}
