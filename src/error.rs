//! What can go wrong in a service call, as types, and the codes clients
//! see. [`ErrorCode`] is the contract's one table of codes and HTTP
//! statuses; `graphql::errors` turns an [`AppError`] into a GraphQL error
//! and `web::error` into an HTTP answer.

use std::sync::Arc;

use axum::http::StatusCode;
use sea_orm::DbErr;

use crate::domain::InvalidInput;

/// The `extensions.code` of every error the API answers, with the HTTP
/// status of an answer that this error ends on its own (a GraphQL response
/// with data keeps 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    SessionExpired,
    SessionClosed,
    Conflict,
    InvalidLinkToken,
    ConfirmationExpired,
    IdempotencyKeyReused,
    PayloadTooLarge,
    QueryTooComplex,
    RateLimited,
    ServiceUnavailable,
    InternalServerError,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::SessionClosed => "SESSION_CLOSED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::InvalidLinkToken => "INVALID_LINK_TOKEN",
            ErrorCode::ConfirmationExpired => "CONFIRMATION_EXPIRED",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status of an answer this error ends as a whole.
    pub const fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadUserInput
            | ErrorCode::SessionExpired
            | ErrorCode::SessionClosed
            | ErrorCode::InvalidLinkToken
            | ErrorCode::ConfirmationExpired
            | ErrorCode::QueryTooComplex => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::IdempotencyKeyReused => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code a client sent back names, if it is one of ours.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadUserInput,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::SessionExpired,
        ErrorCode::SessionClosed,
        ErrorCode::Conflict,
        ErrorCode::InvalidLinkToken,
        ErrorCode::ConfirmationExpired,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::PayloadTooLarge,
        ErrorCode::QueryTooComplex,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalServerError,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client reads after an internal error, whatever its cause.
pub const INTERNAL_MESSAGE: &str = "internal server error; quote the requestId when reporting it";

/// The cause behind an internal error, kept for the log.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadInput(String),
    #[error("this API key's role ({role}) may not {action}")]
    Forbidden {
        role: &'static str,
        action: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the session has expired after {0} without activity; start a new session")]
    SessionExpired(String),
    #[error("the session is closed; start a new session")]
    SessionClosed,
    #[error("{0}")]
    Conflict(String),
    /// Whatever was wrong with a link token, the answer is the same.
    #[error("the link token is not valid; pass the ai_session value exactly as it arrived")]
    InvalidLinkToken,
    #[error("the confirmation expired at {0}; request a new one")]
    ConfirmationExpired(String),
    #[error(
        "this idempotencyKey was already used with a different payload; use a new key for a different request"
    )]
    IdempotencyKeyReused,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// The database could not be reached or stayed busy: nothing was
    /// committed and the same request may be retried.
    #[error("the database is busy or unreachable; nothing was committed, retry the request")]
    Unavailable(#[source] DbErr),
    /// A concurrent request wrote the same row first (a unique index said
    /// so). Services retry on it; it reaches a client only if the race
    /// repeats, and retrying then is still right.
    #[error("a concurrent request wrote the same record; nothing was committed, retry the request")]
    Raced,
    /// Anything else: logged with details, answered generically.
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Cause>,
    },
}

impl AppError {
    /// A bug or corrupt data, described for the log.
    pub fn internal(context: impl Into<String>) -> Self {
        AppError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// An internal error caused by `source`, whose chain reaches the log.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        AppError::Internal {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadInput(_) => ErrorCode::BadUserInput,
            AppError::Forbidden { .. } => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::SessionExpired(_) => ErrorCode::SessionExpired,
            AppError::SessionClosed => ErrorCode::SessionClosed,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::InvalidLinkToken => ErrorCode::InvalidLinkToken,
            AppError::ConfirmationExpired(_) => ErrorCode::ConfirmationExpired,
            AppError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            AppError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::Unavailable(_) | AppError::Raced => ErrorCode::ServiceUnavailable,
            AppError::Internal { .. } => ErrorCode::InternalServerError,
        }
    }

    /// The message a client sees. Internal errors say nothing of their cause.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal { .. } => INTERNAL_MESSAGE.to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs what the client will not see, with the whole cause chain. Called
    /// once, where the answer carrying this error is finished, inside the
    /// request's span (so the line carries the request id).
    pub fn log(&self) {
        match self {
            AppError::Internal { .. } => {
                tracing::error!(error = %Chain(self), "internal error");
            }
            AppError::Unavailable(_) => {
                tracing::warn!(error = %Chain(self), "database unavailable");
            }
            _ => {}
        }
    }
}

/// An error and its sources, `: `-separated.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Reads a value the server wrote to the database. One that does not parse
/// is corrupt data, an internal error, never the caller's fault.
pub fn stored<T>(column: &str, value: &str) -> Result<T, AppError>
where
    T: std::str::FromStr<Err = InvalidInput>,
{
    value
        .parse()
        .map_err(|e| AppError::internal_from(format!("stored {column} {value:?}"), e))
}

impl From<InvalidInput> for AppError {
    fn from(e: InvalidInput) -> Self {
        AppError::BadInput(e.0)
    }
}

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        if is_transient(&e) {
            AppError::Unavailable(e)
        } else {
            AppError::internal_from("database", e)
        }
    }
}

impl From<getrandom::Error> for AppError {
    fn from(e: getrandom::Error) -> Self {
        AppError::internal_from("random number generator", e)
    }
}

/// Whether PostgreSQL refused a statement for a serialization failure or
/// a deadlock: the transaction, made again, may well succeed.
pub fn is_serialization_failure(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as SqlxError;
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = e
    else {
        return false;
    };
    match sqlx.as_ref() {
        SqlxError::Database(db) => db
            .code()
            .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01")),
        _ => false,
    }
}

/// Whether a database error means "try again" (busy, locked, unreachable,
/// shutting down, serialization failure) rather than a bug.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as SqlxError;
    let runtime = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        SqlxError::Io(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed
        | SqlxError::Tls(_) => true,
        SqlxError::Database(db) => db.code().is_some_and(|code| {
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) and their extended codes.
            let sqlite_busy = code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
            // PostgreSQL: connection exceptions, shutdown, too many connections,
            // serialization failure and deadlock.
            let pg_transient = code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "53300" | "40001" | "40P01");
            sqlite_busy || pg_transient
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_refuses_with_a_client_or_server_status() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let status = code.http_status();
            let server_side = matches!(
                code,
                ErrorCode::ServiceUnavailable | ErrorCode::InternalServerError
            );
            assert_eq!(status.is_server_error(), server_side, "{code}");
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
        assert_eq!(ErrorCode::parse("NOT_A_CODE"), None);
        assert_eq!(
            ErrorCode::RateLimited.http_status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn an_internal_error_keeps_its_cause_for_the_log_but_not_the_client() {
        let e =
            AppError::internal_from("reading the ledger", std::io::Error::other("disk on fire"));
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        assert_eq!(
            Chain(&e).to_string(),
            "internal error: reading the ledger: disk on fire"
        );
        assert!(!e.public_message().contains("disk"));
        assert_eq!(e.code(), ErrorCode::InternalServerError);
    }
}
