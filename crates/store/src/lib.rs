//! # rkflow-store: storage
//!
//! sea-orm entities and the repositories the API calls. Every state change runs in one write
//! transaction that re-reads (and on PostgreSQL row-locks) the state it decides on, asks the
//! domain crate for the decision, writes the changes and appends their audit events, then
//! commits. No rule is decided here.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod db;
pub mod entity;
pub mod error;
pub mod events;
pub mod investigations;
mod joins;
pub mod nodelay;
pub mod organisation;
mod positional;
pub mod read_cache;
pub mod reads;
pub mod snapshot;
mod statements;

pub use audit::Origin;
pub use db::{Db, WriteTransaction};
pub use error::{StoreError, StoreResult};
pub use reads::{ReadView, Reader};

/// The database error type, for callers that convert it.
pub mod sea_orm_err {
    pub use sea_orm::DbErr;
}
