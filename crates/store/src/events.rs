//! Committed audit events across replicas (PostgreSQL only).
//!
//! Every `audit::append` on PostgreSQL sends `pg_notify('rkflow_events', {"from":…,"to":…})`
//! in its own transaction, so the notification exists exactly when the events do. Each
//! server holds one [`EventListener`] (sqlx `PgListener` on a connection of the server's
//! pool) and reads the rows the notifications name; the API hands them to its subscriptions.

use crate::audit::{Appended, EVENTS_CHANNEL};
use crate::db::{Db, sqlx_error};
use crate::error::StoreResult;
use sea_orm::sqlx::postgres::PgListener;

/// What the listener noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A transaction committed these events.
    Appended(Appended),
    /// The connection was lost and is listening again: notifications sent in between are
    /// lost, so the events since the last one seen must be read from the table.
    Reconnected,
}

/// A `LISTEN rkflow_events` connection that reconnects by itself.
pub struct EventListener {
    listener: PgListener,
}

impl EventListener {
    /// Listens on the server's pool; `None` on SQLite (one process: nothing to listen to).
    /// Once this returns, every later commit is noticed.
    pub async fn connect(db: &Db) -> StoreResult<Option<EventListener>> {
        if !db.is_postgres() {
            return Ok(None);
        }
        let pool = db.conn.get_postgres_connection_pool();
        let mut listener = PgListener::connect_with(pool).await.map_err(sqlx_error)?;
        listener.listen(EVENTS_CHANNEL).await.map_err(sqlx_error)?;
        Ok(Some(EventListener { listener }))
    }

    /// Waits for the next notification. An error means the database is unreachable right
    /// now (the next call tries to connect again).
    pub async fn next(&mut self) -> StoreResult<Notice> {
        loop {
            match self.listener.try_recv().await.map_err(sqlx_error)? {
                None => return Ok(Notice::Reconnected),
                Some(notification) => {
                    match serde_json::from_str::<Appended>(notification.payload()) {
                        Ok(appended) => return Ok(Notice::Appended(appended)),
                        Err(_) => tracing::warn!(
                            payload = notification.payload(),
                            "ignoring a malformed notification on {EVENTS_CHANNEL}"
                        ),
                    }
                }
            }
        }
    }
}
