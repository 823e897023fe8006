//! Store errors: a refusal by the rules, or a database failure (never shown to clients).

use rkflow_domain::DomainError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Stored data that the code cannot read (a bug or an edit behind the app's back).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn corrupt(what: impl Into<String>) -> StoreError {
        StoreError::Corrupt(what.into())
    }

    /// Whether the database refused a uniqueness constraint (a concurrent writer won).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(err) => matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
