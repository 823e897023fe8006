//! The domain's refusals. Each maps to one client-visible `extensions.code`.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// No or an invalid session.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller sees the object but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or the caller may not see it: the two are indistinguishable.
    #[error("not found")]
    NotFound,
    /// Invalid input, naming the offending field.
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    /// The state or a version does not allow this now; the message says what is missing.
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> DomainError {
        DomainError::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> DomainError {
        DomainError::Conflict(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> DomainError {
        DomainError::Forbidden(message.into())
    }

    /// The `extensions.code` this refusal carries.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Unauthenticated => "UNAUTHENTICATED",
            DomainError::Forbidden(_) => "FORBIDDEN",
            DomainError::NotFound => "NOT_FOUND",
            DomainError::BadInput { .. } => "BAD_USER_INPUT",
            DomainError::Conflict(_) => "CONFLICT",
        }
    }
}
