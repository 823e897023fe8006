//! Client-visible errors. Every error carries `extensions.code`; database failures become
//! INTERNAL with a reference that is logged next to the real cause, never shown.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql turns any `Display`
//! type into an error by its text, and that path must never carry a database message.

use async_graphql::ErrorExtensions;
use rkflow_domain::DomainError;
use rkflow_store::StoreError;
use rkflow_store::sea_orm_err;

/// The codes the contract lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    TooManyRequests,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Conflict => "CONFLICT",
            Code::TooManyRequests => "TOO_MANY_REQUESTS",
            Code::Internal => "INTERNAL",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(Code::Unauthenticated, "log in first")
    }

    pub fn not_found() -> ApiError {
        ApiError::new(Code::NotFound, "not found")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Forbidden, message)
    }

    pub fn bad_input(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: Code::BadUserInput,
            message: format!("{field}: {}", message.into()),
            field: Some(field.to_string()),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Conflict, message)
    }

    /// An internal failure: logged with a reference, answered without detail.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(reference = %reference, error = %cause, "internal error");
        ApiError::new(
            Code::Internal,
            format!("internal error (reference {reference})"),
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> ApiError {
        match err {
            DomainError::Unauthenticated => ApiError::unauthenticated(),
            DomainError::Forbidden(message) => ApiError::forbidden(message),
            DomainError::NotFound => ApiError::not_found(),
            DomainError::BadInput { field, message } => ApiError::bad_input(&field, message),
            DomainError::Conflict(message) => ApiError::conflict(message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::Domain(domain) => domain.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<sea_orm_err::DbErr> for ApiError {
    fn from(err: sea_orm_err::DbErr) -> ApiError {
        ApiError::internal(&err)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> async_graphql::Error {
        let mut error = async_graphql::Error::new(err.message);
        let code = err.code.as_str();
        let field = err.field;
        error = error.extend_with(|_, extensions| {
            extensions.set("code", code);
            if let Some(field) = &field {
                extensions.set("field", field.as_str());
            }
        });
        error
    }
}
