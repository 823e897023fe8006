//! Connecting, configuring and migrating the database; write transactions.

use crate::error::StoreResult;
use crate::read_cache::ReadCache;
use rkflow_domain::deadline::Calendar;
use rkflow_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Implements sea-orm's `ConnectionTrait` for `$type` by running every statement on its
/// field `$field` (the pool for [`Db`], the transaction for [`WriteTransaction`]).
macro_rules! delegate_connection {
    ($type:ty, $field:ident) => {
        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $type {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                self.$field.get_database_backend()
            }

            async fn execute_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                self.$field.execute_raw(stmt).await
            }

            async fn execute_unprepared(
                &self,
                sql: &str,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                self.$field.execute_unprepared(sql).await
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.$field.query_one_raw(stmt).await
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.$field.query_all_raw(stmt).await
            }
        }
    };
}
pub(crate) use delegate_connection;

/// The database the server uses, with its backend.
#[derive(Clone, Debug)]
pub struct Db {
    pub conn: DatabaseConnection,
    /// SQL statements executed since start (for tests and benchmarks that count them).
    pub statements: Arc<AtomicU64>,
    /// Rest days for deadlines (the configured extra holidays).
    pub calendar: Calendar,
    /// Decoded investigations kept between reads ([`crate::read_cache`]).
    pub read_cache: Arc<ReadCache>,
    /// The turns of this process's writers ([`Db::begin_write`], [`concurrent_writers`]).
    write_turns: Arc<Semaphore>,
}

/// How long SQLite waits for its write lock (its busy timeout), and how long a writer of this
/// process waits for its turn before that (on either backend).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many write transactions of this process run at once ([`Db::begin_write`]); the other
/// writers queue for a turn without holding a connection.
///
/// SQLite writes one transaction at a time. On PostgreSQL every write ends by taking the audit
/// chain's head (`audit::append`, a row lock), so writers only overlap the work before it, and
/// beyond a few they hold connections just to wait there: half the pool writes at once (at
/// least one), which leaves at least one connection beside the event listener's to reads and
/// to a command's answer, however long writers wait for a lock (from a pool of 3 up). Measured
/// (W3 at c=16, pool of 4, BENCHMARKS.md): 1 writer 221–225 req/s, 2 writers (pool of 5)
/// 273–278, 3 (pool of 7) 307–309.
pub fn concurrent_writers(postgres: bool, max_connections: u32) -> usize {
    if postgres {
        (max_connections / 2).max(1) as usize
    } else {
        1
    }
}

/// The key of the PostgreSQL advisory lock around migrations ("rkflow" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x726b_666c_6f77;

/// A failure of sqlx used directly (PostgreSQL locks and notifications) as a store error.
pub(crate) fn sqlx_error(err: sea_orm::sqlx::Error) -> crate::StoreError {
    crate::StoreError::Database(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
        Arc::new(err),
    )))
}

/// The SQLite file used when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rkflow.db?mode=rwc";

/// Turns what a user may type (`rkflow.db`, `sqlite:path`, `postgres://…`) into a URL.
pub fn normalize_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.to_string()
    } else if url.starts_with("sqlite:") {
        if url.contains("mode=") || url.contains(":memory:") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        }
    } else {
        format!("sqlite://{url}?mode=rwc")
    }
}

/// Pooled PostgreSQL connections when nothing else is configured: twice the cores this
/// process may use, between 4 and 32. Small rkflow installations run PostgreSQL on the same
/// machine, and PostgreSQL serves most where its active backends are about twice its cores: on
/// two cores a pool of 4 served W2 35–50 % and W1 15–30 % more requests per second than one
/// of 16, with less CPU per request on both sides (BENCHMARKS.md). Where PostgreSQL runs on
/// a machine of its own, size the pool to its cores with `RKFLOW_DB_MAX_CONNECTIONS`.
pub fn default_postgres_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(2 * cores).unwrap_or(u32::MAX).clamp(4, 32)
}

/// Pooled SQLite connections when nothing else is configured. SQLite runs its reads in the
/// server's process, on the cores the server has, and one write at a time: four connections
/// keep two cores busy, and each holds its own page cache and malloc arena (about 3 MB under
/// load). Measured against eight: the same throughput on two cores, 15–20 MB less peak RSS
/// (BENCHMARKS.md). More cores: `RKFLOW_DB_MAX_CONNECTIONS`.
pub const DEFAULT_SQLITE_CONNECTIONS: u32 = 4;

impl Db {
    /// Connects with the default pool size. SQLite gets WAL, a busy timeout, foreign keys and
    /// `synchronous=FULL`, so an acknowledged write survives a crash.
    pub async fn connect(url: &str) -> StoreResult<Db> {
        Db::connect_with(url, None).await
    }

    /// Connects with at most `max_connections` pooled connections (`None`: the backend's
    /// default). An in-memory SQLite database always has one: it lives in that connection.
    pub async fn connect_with(url: &str, max_connections: Option<u32>) -> StoreResult<Db> {
        let url = normalize_url(url);
        let sqlite = url.starts_with("sqlite:");
        let memory = url.contains(":memory:");
        let pool_size = match (sqlite, memory) {
            (true, true) => 1,
            (true, false) => max_connections.unwrap_or(DEFAULT_SQLITE_CONNECTIONS),
            (false, _) => max_connections.unwrap_or_else(default_postgres_connections),
        };
        let mut options = ConnectOptions::new(url.clone());
        options
            .sqlx_logging(false)
            .acquire_timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(5));
        if sqlite {
            // One pinned connection keeps an in-memory database alive. Nothing can end a
            // SQLite connection behind the pool's back, so it is not pinged before use.
            options
                .test_before_acquire(false)
                .max_connections(pool_size)
                .min_connections(1)
                .idle_timeout(None::<Duration>)
                .map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
        } else {
            // sqlx pings a connection (a round trip) before handing it out: kept, although
            // every statement outside a transaction pays it, because it is what lets the
            // pool drop connections whose backend died (a restart, `pg_terminate_backend`)
            // before a request meets them (`crates/server/tests/crash.rs`, R2; pinging only
            // connections idle for a second failed requests there). BENCHMARKS.md has its cost.
            // A query's read transaction skips it and begins again when its `BEGIN` fails
            // (`ReadView::begin`).
            options.max_connections(pool_size).min_connections(1);
            // Every new connection: TCP_NODELAY, which sqlx leaves off (`crate::nodelay`).
            // (This replaces sea-orm's own `after_connect`, used only for a schema search path,
            // which rkflow does not set.)
            let port = url
                .parse::<PgConnectOptions>()
                .map(|parsed| parsed.get_port())
                .unwrap_or(5432);
            options.map_sqlx_postgres_pool_opts(move |pool| {
                pool.after_connect(move |_, _| {
                    Box::pin(async move {
                        crate::nodelay::set_on_sockets_to(port);
                        Ok(())
                    })
                })
            });
        }
        let mut conn = Database::connect(options).await?;
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        conn.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(Db {
            conn,
            statements,
            calendar: Calendar::default(),
            read_cache: Arc::new(ReadCache::default()),
            write_turns: Arc::new(Semaphore::new(concurrent_writers(!sqlite, pool_size))),
        })
    }

    /// Statements executed so far.
    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DatabaseBackend::Postgres
    }

    /// Runs pending migrations (all of them on a fresh database). On PostgreSQL several
    /// replicas may start at once: a session-level advisory lock, held on one dedicated
    /// connection while the migrations run, lets one of them migrate while the others wait and
    /// then find nothing pending. PostgreSQL releases the lock if the process dies.
    pub async fn migrate(&self) -> StoreResult<()> {
        if !self.is_postgres() {
            Migrator::up(&self.conn, None).await?;
            return Ok(());
        }
        use sea_orm::sqlx;
        let pool = self.conn.get_postgres_connection_pool();
        let mut lock = pool.acquire().await.map_err(sqlx_error)?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .fetch_one(&mut *lock)
            .await
            .map_err(sqlx_error)?;
        if !locked {
            tracing::info!("another replica is migrating the database; waiting for it");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *lock)
                .await
                .map_err(sqlx_error)?;
        }
        let migrated = Migrator::up(&self.conn, None).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *lock)
            .await;
        if unlocked.is_err() {
            // Ending the session is what releases the lock for certain.
            lock.close_on_drop();
        }
        migrated?;
        Ok(())
    }

    /// Names of the migrations not yet applied.
    pub async fn pending_migrations(&self) -> StoreResult<Vec<String>> {
        Ok(Migrator::get_pending_migrations(&self.conn)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect())
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is taken
    /// before the state is read and two writers never both decide on the same state; on
    /// PostgreSQL the commands lock the rows they decide on (`SELECT … FOR UPDATE`).
    ///
    /// A writer that waits for a lock holds its pooled connection while it waits: SQLite's
    /// writer polls for the write lock (sleeps of up to 100 ms within the busy timeout), and
    /// PostgreSQL's for the audit chain's head. So the writers of this process first queue for
    /// a turn ([`concurrent_writers`]), first come first served, without a connection; the
    /// transaction holds the turn until it ends. Measured on SQLite (W3 at 16 concurrent
    /// writers, BENCHMARKS.md): p99 594 → 159 ms, peak RSS 84 → 76 MB. Other processes on the
    /// same database still meet the busy timeout or the row locks.
    pub async fn begin_write(&self) -> StoreResult<WriteTransaction> {
        let turn = tokio::time::timeout(
            SQLITE_BUSY_TIMEOUT,
            self.write_turns.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            DbErr::Custom(format!(
                "no turn to write within {} s",
                SQLITE_BUSY_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|_| DbErr::Custom("the database is closing".to_string()))?;
        let transaction = self
            .conn
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await?;
        Ok(WriteTransaction {
            transaction,
            _turn: turn,
        })
    }

    /// Starts a read-only snapshot (for reads that must be consistent, e.g. verification).
    pub async fn begin_read(&self) -> StoreResult<DatabaseTransaction> {
        Ok(self.conn.begin().await?)
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// A write transaction from [`Db::begin_write`]: sea-orm's transaction (which it dereferences
/// to) and this process's turn to write, given to the next writer when the transaction ends
/// (commit, rollback or drop).
pub struct WriteTransaction {
    transaction: DatabaseTransaction,
    _turn: OwnedSemaphorePermit,
}

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.transaction.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.transaction.rollback().await
    }
}

impl Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.transaction
    }
}

delegate_connection!(WriteTransaction, transaction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_writes_one_transaction_at_a_time_whatever_the_pool() {
        for pool in [1, 4, 16, 1000] {
            assert_eq!(concurrent_writers(false, pool), 1);
        }
    }

    #[test]
    fn postgres_writers_leave_connections_to_readers_and_the_listener() {
        for pool in 1..=1000 {
            let writers = concurrent_writers(true, pool);
            assert!(writers >= 1, "{pool}");
            if pool >= 3 {
                // The listener's connection, the writers', and at least one for reads.
                let readers = pool as usize - 1 - writers;
                assert!(
                    readers >= 1,
                    "{pool}: {writers} writers leave none to reads"
                );
            }
        }
        assert_eq!(concurrent_writers(true, 2), 1);
        assert_eq!(concurrent_writers(true, 4), 2);
        assert_eq!(concurrent_writers(true, 16), 8);
    }

    #[test]
    fn the_default_postgres_pool_is_twice_the_cores_within_bounds() {
        let pool = default_postgres_connections();
        assert!((4..=32).contains(&pool), "{pool}");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(pool as usize, (2 * cores).clamp(4, 32));
    }
}
