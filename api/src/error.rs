//! The one error type at the API's edge, mapped once to GraphQL's `extensions.code`.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql converts any
//! `Display` error with a bare `?` and silently drops its code. Resolvers return
//! `Result<T, ApiError>` instead, and the conversion below keeps the code.
//! Internal failures are logged with their cause where they happen and reach clients only
//! as "internal error".

use async_graphql::ErrorExtensions;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// No valid session or API key, or wrong credentials.
    Unauthenticated(String),
    /// The password was right but the account has two-factor authentication.
    TotpRequired,
    Forbidden(String),
    NotFound(String),
    Validation(String),
    Conflict(String),
    /// Too many attempts; the message says when to try again.
    RateLimited(String),
    LimitExceeded(String),
    /// The channel's conversation window is closed; the message says what is allowed.
    WindowClosed(String),
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::TotpRequired => "TOTP_REQUIRED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Validation(_) => "VALIDATION",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::RateLimited(_) => "RATE_LIMITED",
            ApiError::LimitExceeded(_) => "LIMIT_EXCEEDED",
            ApiError::WindowClosed(_) => "WINDOW_CLOSED",
            ApiError::Internal => "INTERNAL",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::Validation(m)
            | ApiError::Conflict(m)
            | ApiError::RateLimited(m)
            | ApiError::LimitExceeded(m)
            | ApiError::WindowClosed(m) => m.clone(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::TotpRequired => "a two-factor code is required".into(),
            ApiError::Internal => "internal error".into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(what.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(message.into())
    }

    /// Logs an unexpected failure with its context and returns the opaque internal error.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        ApiError::Internal
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        async_graphql::Error::new(err.message()).extend_with(|_, ext| ext.set("code", code))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::internal("database error", err)
    }
}

/// True when `err` is a violation of the named unique index or constraint.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some(constraint))
}
