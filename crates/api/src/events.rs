//! Audit events as they are committed, for subscriptions, in one process or several.
//!
//! On SQLite (one process) the resolvers hand their events to the [`EventBus`] after the
//! commit. On PostgreSQL several replicas may share the database: every transaction that
//! appends audit events also sends `pg_notify` (see `rkflow_store::audit::append`), and each
//! server runs one listener ([`start_listener`]) that reads the announced rows and delivers
//! them to its own subscribers; `publish` then does nothing, so a subscriber gets every event
//! exactly once whichever replica wrote it.

use rkflow_store::entity::audit_event;
use rkflow_store::events::{EventListener, Notice};
use rkflow_store::{Db, StoreResult, audit};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Events read per statement when the listener catches up.
const PAGE: u64 = 500;

/// Audited reads are not announced, as in one process (where only commands publish): a
/// client that re-reads an investigation on every event would otherwise be sent its own read,
/// and read again, forever.
const NOT_ANNOUNCED: &str = "document.read";

/// Audit events as they are committed, and the end of every subscription at shutdown.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<audit_event::Model>>,
    /// Whether the database's notifications feed this bus (PostgreSQL) instead of `publish`.
    from_database: bool,
    /// Set once at shutdown: every subscription ends.
    closed: Arc<watch::Sender<bool>>,
    /// Subscriptions still running.
    live: Arc<watch::Sender<usize>>,
}

impl EventBus {
    /// A bus fed by `publish` after each commit (one process: SQLite, and tests).
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(1024);
        EventBus {
            sender,
            from_database: false,
            closed: Arc::new(watch::channel(false).0),
            live: Arc::new(watch::channel(0).0),
        }
    }

    /// A bus fed by the database's notifications through [`start_listener`] (PostgreSQL:
    /// events committed by any replica).
    pub fn fed_by_database() -> EventBus {
        EventBus {
            from_database: true,
            ..EventBus::new()
        }
    }

    /// Hands over the events this process has just committed. When the database feeds the
    /// bus, the listener delivers them (with everybody else's), so this does nothing.
    pub fn publish(&self, events: Vec<audit_event::Model>) {
        if !self.from_database {
            self.deliver(events);
        }
    }

    fn deliver(&self, events: Vec<audit_event::Model>) {
        for event in events {
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// A new subscription; it ends by itself once the bus is closed.
    pub fn subscribe(&self) -> Subscription {
        self.live.send_modify(|live| *live += 1);
        Subscription {
            receiver: self.sender.subscribe(),
            closed: self.closed.subscribe(),
            _live: LiveGuard(self.live.clone()),
        }
    }

    /// Ends every subscription (at shutdown); later subscriptions end at once.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the bus is closed.
    pub async fn closed(&self) {
        let _ = self.closed.subscribe().wait_for(|closed| *closed).await;
    }

    /// Resolves once the bus is closed and every subscription has ended (its client has been
    /// told `complete`).
    pub async fn drained(&self) {
        self.closed().await;
        let _ = self.live.subscribe().wait_for(|live| *live == 0).await;
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// Counts a subscription as live until it is dropped.
struct LiveGuard(Arc<watch::Sender<usize>>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|live| *live = live.saturating_sub(1));
    }
}

/// One subscriber's view of the bus.
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<audit_event::Model>>,
    closed: watch::Receiver<bool>,
    _live: LiveGuard,
}

impl Subscription {
    /// The next event, or `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Arc<audit_event::Model>> {
        loop {
            tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => return None,
                received = self.receiver.recv() => match received {
                    Ok(event) => return Some(event),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "subscriber lagged behind; events skipped");
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// On PostgreSQL: listens for committed events (from this and every other replica) and
/// delivers them to `bus`, until the bus is closed. Returns once it listens, so that every
/// event committed afterwards reaches the subscribers; `None` on SQLite.
pub async fn start_listener(db: &Db, bus: &EventBus) -> StoreResult<Option<JoinHandle<()>>> {
    let Some(listener) = EventListener::connect(db).await? else {
        return Ok(None);
    };
    // Events committed before now are nobody's business: subscriptions start now.
    let mut seen = audit::head_seq(&db.conn).await?;
    let (db, bus) = (db.clone(), bus.clone());
    Ok(Some(tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let Some(current) = listener.as_mut() else {
                // After a failure: listen again first, then read what was missed meanwhile.
                let connected = tokio::select! {
                    _ = bus.closed() => break,
                    connected = EventListener::connect(&db) => connected,
                };
                match connected {
                    Ok(fresh) => {
                        tracing::info!("event listener: listening again; catching up");
                        listener = fresh;
                        if let Err(err) = catch_up(&db, &bus, &mut seen, None).await {
                            tracing::warn!(error = %err, "event listener: reading events failed; retrying with the next notification");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event listener: the database is unreachable; retrying in 1 s");
                        tokio::select! {
                            _ = bus.closed() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
                continue;
            };
            let notice = tokio::select! {
                _ = bus.closed() => break,
                notice = current.next() => notice,
            };
            let through = match notice {
                Ok(Notice::Appended(appended)) => {
                    if appended.to <= seen {
                        continue;
                    }
                    if appended.from > seen + 1 {
                        tracing::warn!(
                            first = seen + 1,
                            last = appended.from - 1,
                            "event listener: events were committed without their notification \
                             reaching this server; delivering them from the table"
                        );
                    }
                    Some(appended.to)
                }
                Ok(Notice::Reconnected) => {
                    tracing::warn!(
                        "event listener: the connection was lost and is back; catching up"
                    );
                    None
                }
                Err(err) => {
                    tracing::warn!(error = %err, "event listener: the connection failed; listening again");
                    listener = None;
                    continue;
                }
            };
            if let Err(err) = catch_up(&db, &bus, &mut seen, through).await {
                tracing::warn!(error = %err, "event listener: reading events failed; retrying with the next notification");
            }
        }
        tracing::debug!("event listener stopped");
    })))
}

/// Delivers the investigation events after `seen` up to `through` (the head when `None`),
/// moving `seen` along with what has been delivered.
async fn catch_up(
    db: &Db,
    bus: &EventBus,
    seen: &mut i64,
    through: Option<i64>,
) -> StoreResult<()> {
    let through = match through {
        Some(through) => through,
        None => audit::head_seq(&db.conn).await?,
    };
    // Nobody subscribed on this server: nothing to read.
    if through > *seen && bus.sender.receiver_count() > 0 {
        loop {
            let page = audit::investigation_events_between(&db.conn, *seen, through, PAGE).await?;
            let full = page.len() as u64 == PAGE;
            let Some(last) = page.last().map(|event| event.seq) else {
                break;
            };
            bus.deliver(
                page.into_iter()
                    .filter(|event| event.action != NOT_ANNOUNCED)
                    .collect(),
            );
            *seen = last;
            if !full {
                break;
            }
        }
    }
    *seen = (*seen).max(through);
    Ok(())
}
