//! Where reads run: the pool, or one request's read transaction ([`ReadView`]).
//!
//! A GraphQL query reads through a [`ReadView::snapshot`]: its statements run on one pooled
//! connection in one read-only transaction, opened at the first statement and ended by
//! [`ReadView::finish`]. The answer then shows the database at one moment (PostgreSQL:
//! `REPEATABLE READ`; SQLite: a deferred transaction, whose first read fixes the WAL snapshot),
//! and on PostgreSQL the request pays the pool's checkout and return once instead of once per
//! statement (sqlx pings a connection on both; see BENCHMARKS.md). The view skips the checkout
//! ping when an idle connection is at hand: a dead one fails at `BEGIN`, which is then begun
//! again on a tested connection ([`ReadView::begin`]). On PostgreSQL the
//! transaction opens in one round trip (`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`
//! and `SET LOCAL plan_cache_mode`, [`POSTGRES_READ_SNAPSHOT`]), sent through sqlx itself:
//! sea-orm would send `BEGIN` and `SET TRANSACTION`, a round trip more for every query.
//!
//! Rule for callers: while a view's transaction is open, the request must not wait for a
//! second pooled connection — everything it reads goes through the view, and writes (the
//! session's keep-alive, the audit of content reads) run after [`ReadView::finish`]. Otherwise
//! as many requests as the pool has connections could each hold one and wait for another.
//! Mutations and subscriptions read through a [`ReadView::pooled`] view: they write on pooled
//! connections of their own, and a subscription lives far longer than a request.

use crate::db::Db;
use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::{PgConnection, Postgres};
use sea_orm::sqlx::{self, AssertSqlSafe, Executor};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Mutex;

/// The text of [`POSTGRES_READ_PLAN_MODE`], for `concat!`.
macro_rules! read_plan_mode {
    () => {
        "SET LOCAL plan_cache_mode = force_generic_plan"
    };
}

/// How a PostgreSQL read view opens its transaction: one snapshot for all its statements, a
/// refusal of any write, and generic plans ([`POSTGRES_READ_PLAN_MODE`]), all in the one round
/// trip of `BEGIN`.
const POSTGRES_READ_SNAPSHOT: &str = concat!(
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; ",
    read_plan_mode!()
);

/// What a PostgreSQL read view sends after its `BEGIN`, in the same simple query: generic plans.
///
/// A read's statements are prepared once per connection (sqlx keeps them) and bind their
/// values, so PostgreSQL's plan cache may plan each of them once. Left to itself
/// (`plan_cache_mode = auto`) it plans the listing anew at every execution, because it
/// estimates the generic plan of `LIMIT $n` and of a rapporteur's `user_id = $m` above the
/// custom plans it makes with the values, although both plans have the same shape; the long
/// `IN` lists of a page's users and commissions were planned anew too. The plans of rkflow's
/// reads do not depend on the values (ids, a limit, a phase), so the read transaction asks for
/// the generic plan: pgbench replaying the dashboard's statements with bound values served
/// ~20 % more transactions per second with it (BENCHMARKS.md, eighteenth session). `SET LOCAL`
/// ends with the transaction: the connection's other statements (the commands') keep `auto`.
pub const POSTGRES_READ_PLAN_MODE: &str = read_plan_mode!();

/// A connection the investigation reads can run on ([`Db`] or a [`ReadView`]), with the
/// database it reads (for the read cache and the calendar).
pub trait Reader: ConnectionTrait {
    fn db(&self) -> &Db;
}

impl Reader for Db {
    fn db(&self) -> &Db {
        self
    }
}

// The pool: each statement on any pooled connection.
crate::db::delegate_connection!(Db, conn);

/// One request's reads (see the module documentation).
pub struct ReadView {
    db: Db,
    transaction: Option<Mutex<Transaction>>,
}

enum Transaction {
    NotStarted,
    /// SQLite: sea-orm's deferred transaction.
    Open(DatabaseTransaction),
    /// PostgreSQL: a sqlx transaction, begun with [`POSTGRES_READ_SNAPSHOT`].
    OpenPostgres(sqlx::Transaction<'static, Postgres>),
    /// Ended by [`ReadView::finish`]; a later read (none is expected) uses the pool.
    Finished,
}

impl ReadView {
    /// Every statement on any pooled connection, as [`Db`] itself.
    pub fn pooled(db: &Db) -> ReadView {
        ReadView {
            db: db.clone(),
            transaction: None,
        }
    }

    /// One read-only transaction, opened at the first statement.
    pub fn snapshot(db: &Db) -> ReadView {
        ReadView {
            db: db.clone(),
            transaction: Some(Mutex::new(Transaction::NotStarted)),
        }
    }

    /// Ends the transaction, if one was opened, and hands its connection back to the pool
    /// without waiting for the database.
    ///
    /// The transaction is rolled back, not committed: nothing was written in it, so both end
    /// it alike, but a rollback needs no round trip of its own. Dropping it queues `ROLLBACK`
    /// on the connection, and the pool sends it together with the ping with which sqlx checks
    /// every connection it takes back, in a task of its own; the request goes on at once. A
    /// connection that fails there is closed instead of kept.
    pub async fn finish(&self) {
        let Some(transaction) = &self.transaction else {
            return;
        };
        let mut state = transaction.lock().await;
        drop(std::mem::replace(&mut *state, Transaction::Finished));
    }

    async fn begin(db: &Db) -> Result<Transaction, DbErr> {
        if db.is_postgres() {
            let pool = db.conn.get_postgres_connection_pool();
            // An idle connection is taken without the ping with which the pool tests every
            // connection it hands out (a round trip). If its backend died meanwhile (a restart,
            // `pg_terminate_backend`), its `BEGIN` fails; nothing has happened on it, the pool
            // closes it on its return, and the view begins on a connection the pool tests.
            if let Ok(Some(transaction)) = pool.try_begin_with(POSTGRES_READ_SNAPSHOT).await {
                return Ok(Transaction::OpenPostgres(transaction));
            }
            pool.begin_with(POSTGRES_READ_SNAPSHOT)
                .await
                .map(Transaction::OpenPostgres)
                .map_err(begin_error)
        } else {
            // A deferred transaction: SQLite fixes its snapshot at the first read.
            db.conn.begin().await.map(Transaction::Open)
        }
    }
}

/// A statement as sqlx runs it on PostgreSQL (what sea-orm's own driver does).
fn postgres_query(stmt: Statement) -> sqlx::query::Query<'static, Postgres, SqlxValues> {
    let values = stmt.values.unwrap_or(Values(Vec::new()));
    sqlx::query_with(AssertSqlSafe(stmt.sql), SqlxValues(values))
}

/// sqlx's errors as sea-orm reports them, so callers see one kind of error on every path.
fn query_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn exec_error(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err)))
}

fn begin_error(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => query_error(other),
    }
}

/// Runs a statement through the view: `$sea` on a sea-orm connection (the pool, or SQLite's
/// transaction, opened first), `$postgres` on PostgreSQL's transaction (opened first).
macro_rules! through_view {
    ($view:expr, |$conn:ident| $sea:expr, |$pg:ident| $postgres:expr) => {{
        let view: &ReadView = $view;
        match &view.transaction {
            None => {
                let $conn = &view.db.conn;
                $sea
            }
            Some(transaction) => {
                let mut state = transaction.lock().await;
                if matches!(*state, Transaction::NotStarted) {
                    // Boxed: the pool's futures would otherwise make every statement's future
                    // (created, and copied, four times per query) as large as theirs.
                    *state = Box::pin(ReadView::begin(&view.db)).await?;
                }
                match &mut *state {
                    Transaction::Open($conn) => $sea,
                    Transaction::OpenPostgres(transaction) => {
                        // sea-orm's metric callback counts the other paths' statements.
                        view.db.statements.fetch_add(1, Ordering::Relaxed);
                        let $pg: &mut PgConnection = &mut **transaction;
                        $postgres
                    }
                    Transaction::NotStarted | Transaction::Finished => {
                        let $conn = &view.db.conn;
                        $sea
                    }
                }
            }
        }
    }};
}

#[async_trait::async_trait]
impl ConnectionTrait for ReadView {
    fn get_database_backend(&self) -> DbBackend {
        self.db.backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        through_view!(self, |conn| conn.execute_raw(stmt).await, |pg| {
            postgres_query(stmt)
                .execute(pg)
                .await
                .map(ExecResult::from)
                .map_err(exec_error)
        })
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        through_view!(self, |conn| conn.execute_unprepared(sql).await, |pg| pg
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .map(ExecResult::from)
            .map_err(exec_error))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        through_view!(self, |conn| conn.query_one_raw(stmt).await, |pg| {
            postgres_query(stmt)
                .fetch_optional(pg)
                .await
                .map(|row| row.map(QueryResult::from))
                .map_err(query_error)
        })
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        through_view!(self, |conn| conn.query_all_raw(stmt).await, |pg| {
            postgres_query(stmt)
                .fetch_all(pg)
                .await
                .map(|rows| rows.into_iter().map(QueryResult::from).collect())
                .map_err(query_error)
        })
    }
}

impl Reader for ReadView {
    fn db(&self) -> &Db {
        &self.db
    }
}
