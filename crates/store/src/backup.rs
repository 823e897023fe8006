//! Backups: a consistent copy of the database while the server keeps running, its description
//! (rows per table, the audit chain), and putting a SQLite backup in place.
//!
//! - SQLite: `VACUUM INTO` reads the database in one read transaction and writes that snapshot
//!   to a new file; under WAL the server's writers go on meanwhile. The copy is checked with
//!   `PRAGMA integrity_check` and described from the copy itself.
//! - PostgreSQL: `pg_dump --format=custom --no-owner` dumps the snapshot exported by a
//!   REPEATABLE READ transaction (`pg_export_snapshot`, `pg_dump --snapshot`), and the same
//!   transaction counts the rows and verifies the audit chain, so the summary describes exactly
//!   what the dump holds, however busy the server is. Restoring is `pg_restore` (README).

use crate::audit::verify_chain;
use crate::db::{Db, normalize_url};
use crate::error::StoreError;
use rkflow_domain::audit::Verification;
use rkflow_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    IsolationLevel, SqlxSqliteConnector, Statement, TransactionOptions, TransactionTrait,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Refused before anything was written (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DbErr> for BackupError {
    fn from(err: DbErr) -> BackupError {
        BackupError::Store(err.into())
    }
}

pub type BackupResult<T> = Result<T, BackupError>;

fn refused<T>(message: impl Into<String>) -> BackupResult<T> {
    Err(BackupError::Refused(message.into()))
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a backup holds: rows per table and the state of its audit chain, read from one
/// snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub counts: BTreeMap<String, u64>,
    pub audit: Verification,
}

/// The tables the migrations created: every table of the database (SQLite) or of the current
/// schema (PostgreSQL) except sea-orm's migration bookkeeping, by name.
pub async fn tables<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ? ORDER BY name"
        }
        _ => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> $1 ORDER BY 1"
        }
    };
    let bookkeeping = Migrator::migration_table_name().to_string();
    conn.query_all_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [bookkeeping.into()],
    ))
    .await?
    .iter()
    .map(|row| row.try_get::<String>("", "name"))
    .collect()
}

/// Rows per table in what `conn` sees (call it inside one transaction for one snapshot).
async fn count_rows<C: ConnectionTrait>(conn: &C) -> Result<BTreeMap<String, u64>, DbErr> {
    let backend = conn.get_database_backend();
    let mut counts = BTreeMap::new();
    for table in tables(conn).await? {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM \"{}\"",
            table.replace('"', "\"\"")
        );
        let row = conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
            .ok_or_else(|| DbErr::Custom(format!("COUNT(*) of {table} returned no row")))?;
        let n: i64 = row.try_get("", "n")?;
        counts.insert(table, u64::try_from(n).unwrap_or_default());
    }
    Ok(counts)
}

/// A read-only transaction over one snapshot of the whole database (REPEATABLE READ on
/// PostgreSQL; on SQLite a deferred transaction reads one snapshot from its first read on).
async fn begin_snapshot(conn: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let postgres = conn.get_database_backend() == DatabaseBackend::Postgres;
    conn.begin_with_options(TransactionOptions {
        isolation_level: postgres.then_some(IsolationLevel::RepeatableRead),
        access_mode: postgres.then_some(AccessMode::ReadOnly),
        sqlite_transaction_mode: None,
    })
    .await
}

/// Rows per table (every table the migrations create), from one snapshot.
pub async fn table_counts(db: &Db) -> Result<BTreeMap<String, u64>, StoreError> {
    let txn = begin_snapshot(&db.conn).await?;
    let counts = count_rows(&txn).await?;
    txn.commit().await?;
    Ok(counts)
}

async fn describe<C: ConnectionTrait>(conn: &C) -> Result<Summary, StoreError> {
    Ok(Summary {
        counts: count_rows(conn).await?,
        audit: verify_chain(conn).await?,
    })
}

/// Rows per table and the audit chain's state, from one snapshot.
pub async fn summary(db: &Db) -> Result<Summary, StoreError> {
    let txn = begin_snapshot(&db.conn).await?;
    let summary = describe(&txn).await?;
    txn.commit().await?;
    Ok(summary)
}

/// The file of a SQLite database URL, read as `Db::connect` reads it (`rkflow.db`,
/// `sqlite://path?…`); `None` for PostgreSQL and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let url = normalize_url(url);
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    SqliteConnectOptions::from_str(&url)
        .ok()
        .map(|options| options.get_filename().to_path_buf())
}

/// Writes a consistent backup of the database at `url` to the new file `target` while the
/// server may keep writing, and describes what the backup holds. Never changes the source's
/// content. `target` is created first, exclusively and readable by its owner only (a backup
/// holds password and session hashes); a failed backup removes it again.
pub async fn backup(url: &str, target: &Path) -> BackupResult<Summary> {
    let sqlite = sqlite_file(url);
    if let Some(source) = &sqlite
        && !source.is_file()
    {
        return refused(format!(
            "there is no SQLite database at {}",
            source.display()
        ));
    }
    let db = Db::connect(url).await?;
    let result = match create_private(target) {
        Err(err) => Err(err),
        Ok(()) => {
            let written = if sqlite.is_some() {
                backup_sqlite(&db, target).await
            } else if db.is_postgres() {
                backup_postgres(&db, url, target).await
            } else {
                refused("backups are made of SQLite files and PostgreSQL databases only")
            };
            if written.is_err() {
                let _ = std::fs::remove_file(target);
            }
            written
        }
    };
    db.close().await;
    result
}

/// Creates `target` empty, refusing an existing file, with mode 0600 on Unix.
fn create_private(target: &Path) -> BackupResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(target) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => refused(format!(
            "{} exists; a backup is only written to a new file",
            target.display()
        )),
        Err(err) => Err(io_error(format!("creating {}", target.display()))(err)),
    }
}

/// `VACUUM INTO` the (empty) target, its path bound as a parameter, never spliced into SQL;
/// then `PRAGMA integrity_check` and the summary on the copy.
async fn backup_sqlite(db: &Db, target: &Path) -> BackupResult<Summary> {
    let Some(path) = target.to_str() else {
        return refused(format!(
            "the backup path {} is not valid UTF-8",
            target.display()
        ));
    };
    db.conn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "VACUUM INTO ?",
            [path.into()],
        ))
        .await?;
    check_sqlite_file(target).await
}

/// Opens a SQLite file read-only, runs `PRAGMA integrity_check` and describes it.
async fn check_sqlite_file(path: &Path) -> BackupResult<Summary> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(
            SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .create_if_missing(false),
        );
    let conn = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    let result = check_and_describe(&conn, path).await;
    let _ = conn.close().await;
    result
}

async fn check_and_describe(conn: &DatabaseConnection, path: &Path) -> BackupResult<Summary> {
    let not_a_database = |err: DbErr| {
        BackupError::Refused(format!(
            "{} is not a readable SQLite database ({err})",
            path.display()
        ))
    };
    let problems: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .map_err(not_a_database)?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return refused(format!(
            "{} fails PRAGMA integrity_check: {}",
            path.display(),
            problems.join("; ")
        ));
    }
    let txn = begin_snapshot(conn).await?;
    if !tables(&txn)
        .await?
        .iter()
        .any(|table| table == "audit_head")
    {
        return refused(format!("{} is not an rkflow database", path.display()));
    }
    let summary = describe(&txn).await?;
    txn.commit().await?;
    Ok(summary)
}

/// Runs `pg_dump` on the snapshot of a REPEATABLE READ transaction that also describes it.
async fn backup_postgres(db: &Db, url: &str, target: &Path) -> BackupResult<Summary> {
    let txn = begin_snapshot(&db.conn).await?;
    let snapshot: String = txn
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT pg_export_snapshot() AS id",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("pg_export_snapshot returned no row".into()))?
        .try_get("", "id")?;
    let summary = describe(&txn).await?;
    let (url, password) = split_password(url);
    let target_owned = target.to_path_buf();
    let dumped = tokio::task::spawn_blocking(move || {
        pg_dump(&url, password.as_deref(), &snapshot, &target_owned)
    })
    .await
    .map_err(|err| BackupError::Refused(format!("pg_dump did not finish: {err}")))?;
    // The snapshot must stay open until pg_dump has imported it; it changes nothing.
    txn.rollback().await?;
    dumped.map(|()| summary)
}

/// `pg_dump --format=custom --no-owner --snapshot … --file …`; the password goes through
/// `PGPASSWORD`, never the command line (which other users of the host can read).
fn pg_dump(url: &str, password: Option<&str>, snapshot: &str, target: &Path) -> BackupResult<()> {
    let mut command = std::process::Command::new("pg_dump");
    command
        .arg("--format=custom")
        .arg("--no-owner")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(target)
        .arg("--dbname")
        .arg(url)
        .stdin(std::process::Stdio::null());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return refused(
                "pg_dump is not on PATH: install the PostgreSQL client tools (pg_dump of the \
                 server's major version or newer), or back up with your own tooling (README, \
                 \"Backups and restore\")",
            );
        }
        Err(err) => return Err(io_error("running pg_dump")(err)),
    };
    if output.status.success() {
        Ok(())
    } else {
        refused(format!(
            "pg_dump failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A PostgreSQL URL without its password, and the password percent-decoded (as libpq and
/// sqlx read it).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return (url.to_string(), None);
    };
    let Some(colon) = url[scheme_end..at].find(':').map(|i| scheme_end + i) else {
        return (url.to_string(), None);
    };
    let password = percent_decode(&url[colon + 1..at]);
    (format!("{}{}", &url[..colon], &url[at..]), Some(password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Puts a SQLite backup in place as the database at `url`, which must not exist yet: checks
/// the backup (integrity, an intact audit chain), copies it next to the target and links it in,
/// so the database appears whole or not at all and an existing one is never overwritten.
/// Returns the backup's summary. The server migrates the restored database at start.
pub async fn restore_sqlite(backup: &Path, url: &str) -> BackupResult<Summary> {
    let Some(target) = sqlite_file(url) else {
        return refused(
            "rkflow restore puts a SQLite backup in place; restore a PostgreSQL dump with \
             `pg_restore --no-owner --dbname <url> <file>` into an empty database, then run \
             `rkflow migrate` and `rkflow audit verify` (README, \"Backups and restore\")",
        );
    };
    for suffix in ["", "-wal", "-journal"] {
        let mut existing = target.clone().into_os_string();
        existing.push(suffix);
        let existing = PathBuf::from(existing);
        if existing.exists() {
            return refused(format!(
                "{} exists; restore only creates a new database (move the old one away first)",
                existing.display()
            ));
        }
    }
    if !backup.is_file() {
        return refused(format!("there is no backup file at {}", backup.display()));
    }
    let summary = check_sqlite_file(backup).await?;
    if !summary.audit.intact {
        return refused(format!(
            "the audit chain of {} is broken at event {}; not restored",
            backup.display(),
            summary.audit.first_broken_seq.unwrap_or_default()
        ));
    }
    let backup = backup.to_path_buf();
    tokio::task::spawn_blocking(move || place_copy(&backup, &target))
        .await
        .map_err(|err| BackupError::Refused(format!("the copy did not finish: {err}")))??;
    Ok(summary)
}

/// Copies `from` to a temporary file beside `to`, syncs it, and hard-links it as `to` (which
/// fails when `to` appeared meanwhile).
fn place_copy(from: &Path, to: &Path) -> BackupResult<()> {
    let directory = match to.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to.file_name().map_or_else(
        || "rkflow.db".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let temporary = directory.join(format!(".{name}.restore-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        std::fs::copy(from, &temporary)
            .map_err(io_error(format!("copying to {}", temporary.display())))?;
        std::fs::File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(io_error(format!("syncing {}", temporary.display())))?;
        match std::fs::hard_link(&temporary, to) {
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => refused(format!(
                "{} appeared meanwhile; not overwritten",
                to.display()
            )),
            other => other.map_err(io_error(format!("creating {}", to.display()))),
        }
    })();
    let _ = std::fs::remove_file(&temporary);
    if result.is_ok() {
        // Make the new directory entry durable.
        let _ = std::fs::File::open(&directory).and_then(|dir| dir.sync_all());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://rkflow:s3cr%40t%3A@db:5432/rkflow?sslmode=require"),
            (
                "postgres://rkflow@db:5432/rkflow?sslmode=require".to_string(),
                Some("s3cr@t:".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1/test"),
            ("postgres://postgres@127.0.0.1/test".to_string(), None)
        );
        assert_eq!(
            split_password("postgres://db/rkflow?user=a@b"),
            ("postgres://db/rkflow?user=a@b".to_string(), None)
        );
    }

    #[test]
    fn sqlite_files_of_urls() {
        assert_eq!(sqlite_file("rkflow.db"), Some(PathBuf::from("rkflow.db")));
        assert_eq!(
            sqlite_file("sqlite:///var/lib/rkflow/rk%20flow.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/rkflow/rk flow.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/rkflow"), None);
    }
}
